"""Training configuration: a YAML file with four sections (model, data, optim, train), read into dataclasses.

Every key is checked: an unknown key, a value of the wrong type or out of range raises
:class:`amt.errors.ConfigError` naming the file and the key, so a typo never trains silently with a default.
The ``model`` section is the ``config.json`` of the model to create (``model_type`` picks the backbone); it is
ignored when training starts from ``--init`` (the initial model brings its own shape).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amt.errors import ConfigError


@dataclass
class DataConfig:
    """Where the corpus is and how training sequences are drawn from it."""

    corpus: str = "corpus"
    """Folder written by ``amt prepare`` (a relative path is taken from the working directory)."""
    train_split: str = "train"
    valid_split: str = "valid"
    autoregress: float = 0.1
    """Share of plain sequences (AUTOREGRESS flag)."""
    span: float = 0.1
    """Share of span anticipation: after exponential gaps (mean ``span_gap`` s), spans become controls."""
    random: float = 0.4
    """Share of random-subset anticipation: each event is a control with a probability drawn per sequence."""
    instrument: float = 0.4
    """Share of instrument anticipation: a random non-empty proper subset of instruments become controls."""
    span_gap: float = 20.0
    span_length: float = 5.0
    random_rate: list[float] = field(default_factory=lambda: [0.1, 0.9])
    transpose: int = 0
    """Pitch augmentation of training sequences: each segment is transposed by a random whole number of
    semitones in [-transpose, transpose] (drums never; validation never). 0: no augmentation."""
    source_weights: dict[str, float] = field(default_factory=dict)
    """Sampling weight of training pieces by source: a piece whose path (relative to the folder
    ``amt prepare`` read) starts with a key takes that key's weight, e.g. ``{"bach_chorales/": 3}``;
    others weigh 1. Validation is not reweighted."""
    workers: int = 0
    """DataLoader worker processes building sequences (0: in the training process)."""

    def validate(self) -> None:
        shares = (self.autoregress, self.span, self.random, self.instrument)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError("objective shares (autoregress, span, random, instrument) must be >= 0, "
                             "not all 0")
        if self.span_gap <= 0 or self.span_length <= 0:
            raise ValueError("span_gap and span_length must be positive (seconds)")
        if len(self.random_rate) != 2 or not 0 <= self.random_rate[0] <= self.random_rate[1] <= 1:
            raise ValueError("random_rate must be [low, high] with 0 <= low <= high <= 1")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if not 0 <= self.transpose <= 24:
            raise ValueError("transpose must be between 0 and 24 semitones")
        if any(not (w >= 0 and w != float("inf")) for w in self.source_weights.values()):
            raise ValueError("source_weights must be finite numbers >= 0")


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up and a cosine decay to ``min_lr``."""

    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 100
    weight_decay: float = 0.1
    """Applied to matrices only (no decay on norms, biases, embeddings)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""

    def validate(self) -> None:
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError("need 0 < lr and 0 <= min_lr <= lr")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.eps <= 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must be >= 0, eps > 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("betas must be two numbers in [0, 1)")


@dataclass
class TrainConfig:
    """The loop: length, batch, precision, validation and checkpoint cadence."""

    steps: int = 1000
    batch_size: int = 8
    """Sequences per device per micro-step."""
    grad_accum: int = 1
    seed: int = 0
    precision: str = "auto"
    """"auto" (bf16 autocast on CUDA, float32 on CPU), "bf16" (autocast on any device) or "fp32"."""
    compile: bool = False
    block_logits: bool = True
    """Compute the training loss over the one vocabulary block possible at each position (see blocks.py);
    validation then also reports the block loss and picks the best model by it."""
    note_loss_weight: float = 1.0
    """Weight of the targets that are an event's note (which voice, which pitch) in the block loss, the
    others weighing 1: above 1 the step spends more of itself on pitch, which the diagnosis in MODEL_CARD.md
    found underfitted while rhythm was memorised. Needs ``block_logits``."""
    structured_embedding: bool = False
    """Train the token embedding as free rows plus shared structure (time and duration features,
    instrument + pitch; see embedding.py). Saved models are ordinary checkpoints either way."""
    eval_every: int = 200
    eval_sequences: int = 64
    save_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    out: str = "runs/train"
    device: str = "auto"
    init: str | None = None
    """Model folder or Hub id to start from (fine-tuning); ``--init`` overrides it. None: a new model."""
    then: str | None = None
    """A config (shipped name or path) to train next, from this run's ``best/`` (its own ``init`` is
    replaced): a second stage, so that one ``amt train`` reproduces a model trained in stages."""

    def validate(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_sequences", "save_every",
                     "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError('precision must be "auto", "bf16" or "fp32"')
        if not self.note_loss_weight > 0:
            raise ValueError("note_loss_weight must be > 0")
        if self.note_loss_weight != 1 and not self.block_logits:
            raise ValueError("note_loss_weight needs block_logits: true (the note targets are a block)")


@dataclass
class Config:
    """A whole training configuration; ``source`` is the YAML file it came from (None if built in code)."""

    model: dict[str, Any] = field(default_factory=lambda: {"model_type": "gpt2"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for YAML/JSON): the four sections."""
        return {
            "model": dict(self.model),
            "data": dataclasses.asdict(self.data),
            "optim": dataclasses.asdict(self.optim),
            "train": dataclasses.asdict(self.train),
        }

    def model_config(self):
        """The model's config object (``amt.models`` GPTConfig or MambaConfig); raises ConfigError."""
        from amt.errors import ModelError
        from amt.models.config import CONFIG_CLASSES, config_from_dict

        where = self.source or "config"
        model_type = self.model.get("model_type")
        if model_type not in CONFIG_CLASSES:
            raise ConfigError(f"{where}: model.model_type must be one of {', '.join(CONFIG_CLASSES)}, "
                              f"got {model_type!r}")
        known = {f.name for f in dataclasses.fields(CONFIG_CLASSES[model_type])} | {"model_type"}
        unknown = sorted(set(self.model) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown model key(s) {', '.join(unknown)} for {model_type}")
        try:
            return config_from_dict(self.model)
        except ModelError as error:
            raise ConfigError(f"{where}: model: {error}") from error


SECTIONS = {"data": DataConfig, "optim": OptimConfig, "train": TrainConfig}


def _check_type(value: Any, annotation: Any) -> Any:
    """Return ``value`` coerced to ``annotation`` (int -> float allowed) or raise TypeError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option)
            except TypeError:
                continue
        raise TypeError(f"expected {annotation}, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping, got {value!r}")
        key_type, value_type = typing.get_args(annotation)
        return {_check_type(k, key_type): _check_type(v, value_type) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_check_type(v, item) for v in value]
    if annotation is type(None):
        if value is None:
            return None
        raise TypeError(f"expected null, got {value!r}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise TypeError(f"expected {annotation.__name__}, got {value!r}")
    if not isinstance(value, annotation):
        raise TypeError(f"expected {annotation.__name__}, got {value!r}")
    return value


def _section(cls: type, data: Any, name: str, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: section {name!r} must be a mapping")
    fields = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in {name}: {', '.join(unknown)} "
                          f"(known: {', '.join(fields)})")
    values = {}
    for key, value in data.items():
        try:
            values[key] = _check_type(value, fields[key])
        except TypeError as error:
            raise ConfigError(f"{where}: {name}.{key}: {error}") from None
    section = cls(**values)
    try:
        section.validate()
    except ValueError as error:
        raise ConfigError(f"{where}: {name}: {error}") from None
    return section


def config_from_dict(data: Any, *, source: str | None = None) -> Config:
    """Build a :class:`Config` from the parsed YAML mapping; raises ConfigError on any bad key or value."""
    where = source or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a training config must be a YAML mapping with sections "
                          "model, data, optim, train")
    unknown = sorted(set(data) - {"model", *SECTIONS})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)} "
                          "(known: model, data, optim, train)")
    model = data.get("model") or {"model_type": "gpt2"}
    if not isinstance(model, dict):
        raise ConfigError(f"{where}: section 'model' must be a mapping")
    sections = {name: _section(cls, data.get(name), name, where) for name, cls in SECTIONS.items()}
    config = Config(model=dict(model), source=source, **sections)
    config.model_config()  # fail now, not after the corpus is opened
    return config


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""The shipped configs (tiny, default, default-chorales, amt-small, amt-medium, amt-large, finetune)."""


def load_config(path: str | os.PathLike) -> Config:
    """Read a training config YAML file, or a shipped one by name ("tiny", "amt-small", ...).

    Relative paths inside the config are taken from the working directory. Raises ConfigError for a missing
    or malformed file.
    """
    import yaml

    path = Path(path)
    if not path.is_file() and (CONFIG_DIR / f"{path}.yaml").is_file():
        path = CONFIG_DIR / f"{path}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: training config not found (shipped configs: {shipped})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return config_from_dict(data, source=str(path))
