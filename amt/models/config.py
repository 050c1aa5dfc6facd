"""Model configurations: plain dataclasses that read and write Hugging Face style ``config.json`` dicts.

``GPTConfig`` uses the key names of ``transformers.GPT2Config`` so that a published AMT checkpoint folder
loads unchanged and a folder we save loads in ``transformers`` as a ``GPT2LMHeadModel``. ``MambaConfig`` is
our own format (``model_type`` "mamba", architecture "AmtMamba2LMHeadModel").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from amt.errors import ModelError
from amt.tokenization.vocab import CONTEXT_SIZE, VOCAB_SIZE

ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu", "silu", "swish")
"""Values of GPT-2's ``activation_function`` that the GPT backbone implements."""


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from the keys of ``data`` it knows; unknown keys (HF extras) are ignored."""
    if not isinstance(data, dict):
        raise ModelError(f"a model config must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError) as e:
        raise ModelError(f"invalid {cls.__name__}: {e}") from e


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ModelError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


@dataclass
class GPTConfig:
    """A GPT-2 configuration (key names as in ``transformers.GPT2Config``).

    Defaults are the AMT-small shape (12 layers x 768, 12 heads) on the AMT vocabulary.
    """

    model_type: ClassVar[str] = "gpt2"

    vocab_size: int = VOCAB_SIZE
    n_positions: int = CONTEXT_SIZE
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None means 4 * n_embd, as in GPT-2
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = True
    # Upcasting only changes rounding in half precision; SDPA already accumulates in float32, so the flag
    # is read (to accept the published configs) and has no other effect.
    reorder_and_upcast_attn: bool = False
    tie_word_embeddings: bool = True
    embd_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        _check_positive(self, "vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
        if self.n_embd % self.n_head:
            raise ModelError(f"GPTConfig: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.activation_function not in ACTIVATIONS:
            raise ModelError(
                f"GPTConfig: activation_function {self.activation_function!r} is not supported "
                f"(one of {', '.join(ACTIVATIONS)})"
            )
        if not self.tie_word_embeddings:
            raise ModelError("GPTConfig: only tied input/output embeddings are supported "
                             "(tie_word_embeddings must be true)")

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream (the token embedding's columns)."""
        return self.n_embd

    @property
    def inner_dim(self) -> int:
        """Width of the MLP hidden layer."""
        return self.n_inner or 4 * self.n_embd

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` contents: loadable by ``transformers`` as a ``GPT2LMHeadModel``."""
        return {
            "model_type": self.model_type,
            "architectures": ["GPT2LMHeadModel"],
            **dataclasses.asdict(self),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Read a GPT-2 ``config.json`` dict (ours or a ``transformers`` one); raises ModelError."""
        return _from_dict(cls, data)


@dataclass
class MambaConfig:
    """A Mamba-2 (SSD) language model configuration; names follow ``mamba_ssm``'s ``Mamba2`` module.

    The mixer width is ``expand * d_model``, split into heads of ``headdim`` channels; every head has a
    scalar decay and shares ``d_state``-dimensional B/C projections within its group (``ngroups``).
    ``chunk_size`` is the block length of the chunked scan (64 was fastest on CPU).
    """

    model_type: ClassVar[str] = "mamba"
    architecture: ClassVar[str] = "AmtMamba2LMHeadModel"

    vocab_size: int = VOCAB_SIZE
    d_model: int = 768
    n_layer: int = 24
    d_state: int = 64
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 64
    norm_epsilon: float = 1e-5
    dt_min: float = 0.001
    dt_max: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        _check_positive(self, "vocab_size", "d_model", "n_layer", "d_state", "d_conv", "expand", "headdim",
                        "ngroups", "chunk_size")
        if self.d_conv < 2:
            raise ModelError(f"MambaConfig: d_conv must be at least 2, got {self.d_conv}")
        if self.d_inner % self.headdim:
            raise ModelError(f"MambaConfig: expand * d_model = {self.d_inner} is not a multiple of "
                             f"headdim {self.headdim}")
        if self.nheads % self.ngroups:
            raise ModelError(f"MambaConfig: {self.nheads} heads do not split into {self.ngroups} groups")

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream (the token embedding's columns)."""
        return self.d_model

    @property
    def d_inner(self) -> int:
        """Width of the mixer (channels of the SSM)."""
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        """Number of SSM heads."""
        return self.d_inner // self.headdim

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` contents."""
        data = dataclasses.asdict(self)
        return {"model_type": self.model_type, "architectures": [self.architecture], **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MambaConfig:
        """Read our Mamba ``config.json`` dict; raises ModelError for another architecture."""
        architectures = data.get("architectures") if isinstance(data, dict) else None
        if architectures and cls.architecture not in architectures:
            raise ModelError(
                f"config.json describes {architectures}, not amt's {cls.architecture}: Hugging Face "
                "MambaForCausalLM checkpoints use another layout and cannot be loaded"
            )
        return _from_dict(cls, data)


ModelConfig = GPTConfig | MambaConfig
CONFIG_CLASSES: dict[str, type[GPTConfig] | type[MambaConfig]] = {"gpt2": GPTConfig, "mamba": MambaConfig}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Pick the config class by ``model_type`` and read ``data``; raises ModelError for unknown types."""
    if not isinstance(data, dict):
        raise ModelError(f"a model config must be a JSON object, got {type(data).__name__}")
    model_type = data.get("model_type")
    if model_type not in CONFIG_CLASSES:
        raise ModelError(f"unsupported model_type {model_type!r} (amt loads {', '.join(CONFIG_CLASSES)})")
    return CONFIG_CLASSES[model_type].from_dict(data)


def tiny_config(backbone: str = "gpt2") -> ModelConfig:
    """A tiny model on the full vocabulary (~3.6M parameters, nearly all embedding) for tests and CI."""
    if backbone == "gpt2":
        return GPTConfig(n_embd=64, n_layer=2, n_head=4)
    if backbone == "mamba":
        return MambaConfig(d_model=64, n_layer=2, d_state=16, headdim=32)
    raise ModelError(f"unknown backbone {backbone!r} (one of {', '.join(CONFIG_CLASSES)})")
