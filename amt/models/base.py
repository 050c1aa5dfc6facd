"""The causal language model interface shared by the GPT and Mamba backbones, and how a model writes
its folder.

A model writes itself (``save_pretrained``, ``save_model``: ``config.json`` + ``model.safetensors``); reading
a folder back needs every backbone class, so it lives in ``loading``, which imports this module and never the
other way round (no import cycle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from amt.errors import ModelError
from amt.fileio import atomic_paths, atomic_write_text
from amt.models.config import ModelConfig

StateT = TypeVar("StateT", bound="State")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"


class State(Protocol):
    """What a backbone carries between ``step`` calls (a KV cache, or convolution + SSM states)."""

    length: int  # tokens consumed so far

    def select(self: StateT, index: torch.Tensor) -> StateT:
        """A new state holding the batch rows ``index`` (reorder, subset or repeat variations)."""
        ...


def check_input_ids(input_ids: torch.Tensor, vocab_size: int, batch_size: int | None = None) -> None:
    """Raise ModelError unless ``input_ids`` is a ``[B, T]`` integer tensor, T >= 1, of tokens in the
    vocabulary (and ``B == batch_size`` when given: the batch of a decoding state)."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0 or input_ids.is_floating_point():
        raise ModelError(f"input_ids must be a [batch, length >= 1] integer tensor, got {input_ids.dtype} "
                         f"of shape {tuple(input_ids.shape)}")
    if batch_size is not None and input_ids.shape[0] != batch_size:
        raise ModelError(f"batch of {input_ids.shape[0]} sequences for a state of {batch_size}")
    low, high = input_ids.min().item(), input_ids.max().item()
    if low < 0 or high >= vocab_size:
        raise ModelError(f"token {low if low < 0 else high} is outside the vocabulary of {vocab_size:,}")


class CausalLM(nn.Module):
    """A causal language model over the AMT vocabulary.

    Subclasses implement ``hidden_states``, ``init_state`` and ``step``; the output layer is the (tied)
    token embedding, exposed by ``output_weight`` so training can score a block of the vocabulary at a time.
    """

    config: ModelConfig
    max_positions: int | None  # the longest sequence the model accepts; None when unbounded (Mamba)
    # Checkpoint names the loader compares with config.json before building: the token embedding
    # [vocab_size, hidden_size] and the prefix of the numbered layers ("PREFIX0.", "PREFIX1." ...).
    embedding_key: ClassVar[str]
    layer_prefix: ClassVar[str]

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, V]`` for every position of ``input_ids`` ``[B, T]`` (causal)."""
        return self.logits(self.hidden_states(input_ids))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the output layer to hidden states ``[..., D]``."""
        return nn.functional.linear(hidden, self.output_weight())

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[B, T, D]`` (after the last norm, before the output layer)."""
        raise NotImplementedError

    def output_weight(self) -> torch.Tensor:
        """The output layer's weight ``[V, D]`` (tied to the token embedding)."""
        raise NotImplementedError

    def init_state(self, batch_size: int) -> State:
        """An empty decoding state for ``batch_size`` sequences on the model's device and dtype."""
        raise NotImplementedError

    def advance(self, input_ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Consume ``T >= 1`` new tokens ``[B, T]`` after those ``state`` has seen: their final hidden states
        ``[B, T, D]`` and the updated state (updated in place where possible). A sampler that needs only a
        block of the vocabulary applies that block of ``output_weight`` itself."""
        raise NotImplementedError

    def step(self, input_ids: torch.Tensor, state: State, *, last_only: bool = False
             ) -> tuple[torch.Tensor, State]:
        """Consume ``T >= 1`` new tokens ``[B, T]`` after those ``state`` has seen.

        Returns logits ``[B, T, V]`` (``[B, 1, V]`` for the last token only when ``last_only``, which saves
        memory on a long prefill) and the updated state (updated in place where possible).
        """
        hidden, state = self.advance(input_ids, state)
        return self.logits(hidden[:, -1:] if last_only else hidden), state

    # Checkpoint conversion: the tensor names and layouts in model.safetensors may differ from state_dict().
    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors to write to ``model.safetensors`` (names and layouts of the checkpoint format)."""
        return self.plain_state_dict()

    def plain_state_dict(self) -> dict[str, torch.Tensor]:
        """``state_dict()`` with each tensor reparametrised by ``torch.nn.utils.parametrize`` (as training
        may do to the embedding) replaced by its current value under its plain name, as a model without the
        parametrisation would hold it."""
        state = dict(self.state_dict())
        for name, module in self.named_modules():
            if not parametrize.is_parametrized(module):
                continue
            prefix = f"{name}." if name else ""
            for tensor_name in module.parametrizations:
                inner = f"{prefix}parametrizations.{tensor_name}."
                for key in [k for k in state if k.startswith(inner)]:
                    del state[key]
                state[prefix + tensor_name] = getattr(module, tensor_name).detach()
        return state

    @classmethod
    def state_dict_from_checkpoint(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map checkpoint tensors to ``state_dict()`` names and layouts; raises ModelError on conflicts."""
        return tensors

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.output_weight().device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.output_weight().dtype

    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` to the folder ``path`` (see ``save_model``)."""
        save_model(self, path)


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
