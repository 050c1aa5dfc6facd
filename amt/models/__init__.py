"""Causal language models over the AMT vocabulary: a GPT-2 Transformer and a Mamba-2 backbone.

A model is a Hugging Face style folder (``config.json`` + ``model.safetensors``), loaded by path or Hub id::

    model = load_model("stanford-crfm/music-small-800k")     # or a local folder
    logits = model(input_ids)                                 # [B, T, V]
    state = model.init_state(batch_size=4)
    logits, state = model.step(prompt_ids, state)             # prefill, then one token at a time
"""

from __future__ import annotations

from pathlib import Path

from amt.errors import ModelError
from amt.models.base import CausalLM, State, save_model
from amt.models.config import GPTConfig, MambaConfig, ModelConfig, config_from_dict, tiny_config
from amt.models.gpt import GPT, KVCache
from amt.models.loading import create_model, load_model
from amt.models.mamba import Mamba, MambaState

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "default"
"""The built-in model folder shipped with the package (amt/checkpoints/default)."""


PUBLISHED_MODELS: dict[str, str] = {
    "stanford-crfm/music-small-800k": "128 M parameters, about 0.5 GB",
    "stanford-crfm/music-medium-800k": "360 M parameters, about 1.4 GB",
    "stanford-crfm/music-large-800k": "780 M parameters, about 3.1 GB",
}
"""The published AMT models on the Hugging Face Hub (Thickstun et al.), with the size of their float32
``pytorch_model.bin`` (downloaded on first use, then converted once to safetensors)."""


def resolve_model_name(name: str | None) -> str:
    """``name`` itself, or the built-in model folder when ``name`` is None; raises ModelError if that is
    not installed."""
    if name is not None:
        return name
    if not (DEFAULT_MODEL / "config.json").is_file():
        raise ModelError("no built-in model is installed yet; pass --model PATH_OR_HUB_ID")
    return str(DEFAULT_MODEL)


__all__ = [
    "DEFAULT_MODEL",
    "GPT",
    "PUBLISHED_MODELS",
    "CausalLM",
    "GPTConfig",
    "KVCache",
    "Mamba",
    "MambaConfig",
    "MambaState",
    "ModelConfig",
    "State",
    "config_from_dict",
    "create_model",
    "load_model",
    "resolve_model_name",
    "save_model",
    "tiny_config",
]
