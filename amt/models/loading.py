"""Model folders in the Hugging Face layout: ``config.json`` + ``model.safetensors`` (or sharded with
``model.safetensors.index.json``), read from a local path or downloaded by Hub id.

Weights are only ever read with safetensors: pickled ``pytorch_model.bin`` files can run code when loaded,
so a folder that has only those is refused with a message saying how to convert it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from amt.errors import ModelError
from amt.fileio import atomic_paths, atomic_write_text
from amt.models.base import CausalLM
from amt.models.config import GPTConfig, MambaConfig, ModelConfig, config_from_dict
from amt.tokenization.vocab import VOCAB_SIZE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")
HUB_PATTERNS = [CONFIG_NAME, "*.safetensors", WEIGHTS_INDEX_NAME]  # never download pickles


def create_model(config: ModelConfig) -> CausalLM:
    """A randomly initialised model for ``config`` (a GPTConfig or MambaConfig)."""
    if isinstance(config, GPTConfig):
        from amt.models.gpt import GPT

        return GPT(config)
    if isinstance(config, MambaConfig):
        from amt.models.mamba import Mamba

        return Mamba(config)
    raise ModelError(f"create_model expects a GPTConfig or MambaConfig, got {type(config).__name__}")


def _model_class(config: ModelConfig) -> type[CausalLM]:
    if isinstance(config, GPTConfig):
        from amt.models.gpt import GPT

        return GPT
    from amt.models.mamba import Mamba

    return Mamba


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "\\" not in name


def resolve_folder(name_or_path: str | os.PathLike) -> Path:
    """The local folder of a model: ``name_or_path`` itself if it exists, else a Hub snapshot.

    Downloads (config and safetensors files only) happen only for a Hub id (``owner/name``) that is not a
    local path; ``HF_HUB_OFFLINE=1`` restricts this to the local Hub cache. Raises ModelError.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path} is a file; a model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path
    name = str(name_or_path)
    if not _is_hub_id(name):
        raise ModelError(f"no model folder at {name} (and it is not a Hub id of the form owner/name)")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(name, allow_patterns=HUB_PATTERNS))
    except (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        offline = " (HF_HUB_OFFLINE is set: only the local Hub cache was searched)" \
            if constants.HF_HUB_OFFLINE else ""
        raise ModelError(f"cannot get model {name!r} from the Hugging Face Hub{offline}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if not any(folder.glob("*.safetensors")):
        raise ModelError(
            f"Hub model {name!r} has no safetensors weights. The published AMT checkpoints ship only a "
            "pickled pytorch_model.bin, which amt does not load because unpickling can run code. "
            + _conversion_hint(name)
        )
    return folder


def _conversion_hint(source: str | Path) -> str:
    return ("Convert it once, if you trust its source, with transformers: python -c \"import transformers; "
            f"transformers.GPT2LMHeadModel.from_pretrained('{source}').save_pretrained('FOLDER')\" "
            "and pass that FOLDER as the model")


def read_config(folder: Path) -> ModelConfig:
    """Read and check ``config.json`` of a model folder; raises ModelError."""
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise ModelError(f"{folder}: missing {CONFIG_NAME}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{file}: cannot read it as JSON ({e})") from e
    try:
        config = config_from_dict(data)
    except ModelError as e:
        raise ModelError(f"{file}: {e}") from e
    if config.vocab_size != VOCAB_SIZE:
        raise ModelError(f"{folder}: the model has a vocabulary of {config.vocab_size:,} tokens; amt needs "
                         f"the AMT vocabulary of {VOCAB_SIZE:,}")
    return config


def _weight_files(folder: Path) -> list[Path]:
    single = folder / WEIGHTS_NAME
    if single.is_file():
        return [single]
    index = folder / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{index}: not a valid safetensors index ({e})") from e
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelError(f"{folder}: shards listed in {WEIGHTS_INDEX_NAME} are missing: "
                             f"{', '.join(missing)}")
        return [folder / s for s in shards]
    pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
    if pickles:
        raise ModelError(
            f"{folder}: has only pickled weights ({', '.join(pickles)}), which amt does not load because "
            "unpickling can run code. " + _conversion_hint(folder)
        )
    raise ModelError(f"{folder}: missing weights ({WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME})")


def _read_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(file, device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"{file}: not a readable safetensors file ({e})") from e
    return tensors


def _summary(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_tensors(folder: Path, model: CausalLM, state: dict[str, torch.Tensor]) -> None:
    expected = {name: p.shape for name, p in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors {_summary(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_summary(unexpected)}")
    wrong = [f"{name} {tuple(state[name].shape)} (config says {tuple(shape)})"
             for name, shape in expected.items() if name in state and state[name].shape != shape]
    if wrong:
        problems.append(f"wrong shapes: {_summary(wrong)}")
    if problems:
        raise ModelError(f"{folder}: weights do not match config.json: {'; '.join(problems)}")


_INITIALISERS = ("normal_", "uniform_", "zeros_", "ones_", "constant_", "kaiming_uniform_", "trunc_normal_")


@contextlib.contextmanager
def _initialisers_off() -> Iterator[None]:
    """Make the ``torch.nn.init`` functions that modules call in their constructors do nothing (restored on
    exit). Used only while building a model whose every tensor is then replaced by a checkpoint's."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def load_model(name_or_path: str | os.PathLike, *, device: Any = None,
               dtype: torch.dtype | None = None) -> CausalLM:
    """Load a model folder (``config.json`` + safetensors weights) or a Hugging Face Hub id.

    ``model_type`` "gpt2" gives a ``GPT`` (published AMT checkpoints load unchanged), "mamba" a ``Mamba``.
    Floating weights are cast to ``dtype`` (default float32) and moved to ``device`` (default CPU). The model
    is returned in eval mode. Raises ModelError for a missing folder, a wrong vocabulary, missing,
    unexpected or misshapen tensors, or pickle-only weights.
    """
    folder = resolve_folder(name_or_path)
    config = read_config(folder)
    tensors = _read_tensors(_weight_files(folder))
    cls = _model_class(config)
    # Build on the meta device with the initialisers switched off: no time or memory spent on a random init
    # that is overwritten at once (even on meta, the first initialiser call costs ~1 s of dispatch set-up).
    with torch.device("meta"), _initialisers_off():
        model = cls(config)
    state = cls.state_dict_from_checkpoint(tensors)
    _check_tensors(folder, model, state)
    dtype = dtype or torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    return model.to(device or "cpu").eval()


def save_model(model: CausalLM, path: str | os.PathLike) -> None:
    """Write ``model`` to the folder ``path`` as ``config.json`` + ``model.safetensors``.

    Each file is written to a temporary file in the folder and renamed into place, weights first, so a
    crash never leaves a half-written file. A GPT folder loads in ``transformers`` as a ``GPT2LMHeadModel``.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ModelError(f"cannot save a model to {folder}: it is a file")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.checkpoint_state_dict().items()}
    with atomic_paths([folder / WEIGHTS_NAME]) as (tmp,):
        save_file(tensors, tmp, metadata={"format": "pt"})
    stale_index = folder / WEIGHTS_INDEX_NAME  # would describe other weights than the file just written
    stale_index.unlink(missing_ok=True)
    config = json.dumps(model.config.to_dict(), indent=2) + "\n"
    atomic_write_text(folder / CONFIG_NAME, config)
