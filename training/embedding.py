"""A structured parametrisation of the tied token embedding, for training on little data.

In the AMT vocabulary every value is its own token: 10,000 onset times, 1,000 durations, 16,512
(instrument, pitch) notes, each again as a control. A plain embedding learns each row only from the
positions where that exact token occurs, and nothing tells it that onset 1,250 lies next to 1,251 or that
a violin's C4 and a flute's C4 are the same pitch. With ~100 hours of music (a few million tokens) most rows
are seen too rarely to be learned: our first built-in model, trained that way, predicted onsets barely
better than uniformly within a second.

During training the embedding matrix ``E`` (which is also the output layer) is instead

    E = F + S(theta)

where ``F`` is the usual free matrix and ``S`` is shared structure:

- time ``t`` (event or control): ``W_time @ fourier(t)``, sines and cosines of ``t`` at the harmonics of
  the ``REST_INTERVAL + 1`` = 101 ticks an event onset may take after the previous one (see
  :mod:`amt.training.blocks`) and at longer, geometrically spaced periods, plus a learned offset for
  controls;
- duration ``d``: ``W_duration @ fourier(d)``, plus a control offset;
- note ``128 * i + p``: ``instrument[i] + pitch[p]``, plus a control offset;
- REST and the special tokens: nothing (their free rows are seen often enough).

Because the output layer is tied, ``S`` also shapes the logits: the score of onset ``t`` is a sum of
sinusoids in ``t``. The harmonics of 101 ticks are a complete Fourier basis of the 101 onsets the grammar
allows after the previous onset ``p``, so any preference over the gap ``t - p`` (a chord, a beat later, an
eighth later) is a linear function of the sinusoids of ``t`` whose coefficients are the previous onset's
features rotated: for a given preference, one linear map, the same wherever ``p`` lies. The score of a
note is an instrument score plus a pitch score. Each row keeps its free part, so nothing the plain
embedding can express is lost.

It is a training-time device only: :func:`attach` registers ``S`` with ``torch.nn.utils.parametrize``,
and checkpoints store the materialised ``E`` (``CausalLM.checkpoint_state_dict``), so every saved model is
an ordinary checkpoint of the published format. The parameters ``theta`` are saved beside it (see
``checkpoint.py``) so that a run resumes exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from amt.tokenization.vocab import (
    MAX_DUR,
    MAX_INSTR,
    MAX_NOTE,
    MAX_PITCH,
    MAX_TIME,
    REST_INTERVAL,
    SPECIAL_OFFSET,
    VOCAB_SIZE,
)


def geometric_periods(shortest: float, longest: float, count: int) -> torch.Tensor:
    """``count`` periods spaced geometrically from ``shortest`` to ``longest``."""
    return torch.logspace(math.log10(shortest), math.log10(longest), count, dtype=torch.float64)


STRUCTURED_ROWS = SPECIAL_OFFSET
"""Rows ``0 .. STRUCTURED_ROWS - 1``: all but the special tokens. All carry structure but REST, whose
structure is zero (a fresh model's REST row thus starts at zero and is learned from there)."""
_WINDOW = REST_INTERVAL + 1
TIME_PERIODS = torch.cat([_WINDOW / torch.arange(1, _WINDOW // 2 + 1, dtype=torch.float64),
                          geometric_periods(2.0 * _WINDOW, 2.0 * MAX_TIME, 12)])
"""Periods (ticks) of the onset features: the 50 harmonics of the 101-tick onset window, then 12 periods
from two windows to twice the longest sequence (where in the piece, not just where after the last note)."""
DURATION_PERIODS = geometric_periods(2.5, 4.0 * MAX_DUR, 24)
"""Periods of the duration features."""


def fourier_features(size: int, periods: torch.Tensor) -> torch.Tensor:
    """``[size, 2 * len(periods)]``: cosines then sines of ``0 .. size - 1`` at each period."""
    angles = 2 * math.pi * torch.arange(size, dtype=torch.float64)[:, None] / periods[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=1).float()


class StructuredEmbedding(nn.Module):
    """The parametrisation ``F -> F + S(theta)`` of a ``[VOCAB_SIZE, dim]`` token embedding (see the module
    docstring). ``init_std`` sets the scale of each part of ``S`` at initialisation, like the free rows'."""

    def __init__(self, dim: int, init_std: float = 0.02):
        super().__init__()
        time = fourier_features(MAX_TIME, TIME_PERIODS)
        duration = fourier_features(MAX_DUR, DURATION_PERIODS)
        # Derived from constants, so not saved: non-persistent buffers.
        self.register_buffer("time_features", time, persistent=False)
        self.register_buffer("duration_features", duration, persistent=False)
        # The features have unit energy per frequency: this std gives rows of std init_std.
        self.time = nn.Parameter(torch.randn(dim, time.shape[1]) * init_std / math.sqrt(len(TIME_PERIODS)))
        self.duration = nn.Parameter(torch.randn(dim, duration.shape[1]) * init_std
                                     / math.sqrt(len(DURATION_PERIODS)))
        self.instrument = nn.Parameter(torch.randn(MAX_INSTR, dim) * init_std / math.sqrt(2))
        self.pitch = nn.Parameter(torch.randn(MAX_PITCH, dim) * init_std / math.sqrt(2))
        self.control = nn.Parameter(torch.zeros(3, dim))  # offsets of control times, durations, notes

    def structure(self) -> torch.Tensor:
        """``S(theta)``, ``[VOCAB_SIZE, dim]`` in vocabulary order (events, REST, controls, specials)."""
        time = self.time_features @ self.time.T
        duration = self.duration_features @ self.duration.T
        note = (self.instrument[:, None, :] + self.pitch[None, :, :]).reshape(MAX_NOTE, -1)
        nothing = time.new_zeros(1, time.shape[1])
        events = [time, duration, note, nothing]  # REST has no structure
        controls = [time + self.control[0], duration + self.control[1], note + self.control[2]]
        structure = torch.cat([*events, *controls])
        return torch.cat([structure, structure.new_zeros(VOCAB_SIZE - len(structure), structure.shape[1])])

    def forward(self, free: torch.Tensor) -> torch.Tensor:
        return free + self.structure().to(free.dtype)


def token_embedding(model: nn.Module) -> nn.Embedding:
    """The tied input/output embedding of a CausalLM (GPT or Mamba)."""
    for embedding in (getattr(getattr(model, "transformer", None), "wte", None),
                      getattr(getattr(model, "backbone", None), "embedding", None)):
        if isinstance(embedding, nn.Embedding):
            return embedding
    raise TypeError(f"{type(model).__name__} has no token embedding this parametrisation knows")


def attach(model: nn.Module, state: dict[str, torch.Tensor] | None = None, *,
           fresh: bool = False) -> StructuredEmbedding:
    """Give ``model``'s token embedding the structured parametrisation.

    By default the embedding keeps its value: the free part becomes ``E - S(theta)``, so the model computes
    exactly what it did before, with a new ``theta`` (fine-tuning) or the saved ``state``
    (:func:`structure_state`) when a run resumes. ``fresh`` (a new model) instead zeroes the free part of
    every structured row, so that at first those embeddings are their structure alone, not structure plus
    random noise that rare rows would take long to unlearn. Returns the parametrisation module.
    """
    embedding = token_embedding(model)
    weight = embedding.weight
    if weight.shape[0] != VOCAB_SIZE:
        raise ValueError(f"the structured embedding needs the AMT vocabulary ({VOCAB_SIZE} tokens), "
                         f"not {weight.shape[0]}")
    module = StructuredEmbedding(weight.shape[1]).to(weight.device)
    if state is not None:
        module.load_state_dict(state)
    with torch.no_grad():
        if fresh:
            weight[:STRUCTURED_ROWS] = 0.0
        else:
            weight -= module.structure().to(weight.dtype)
    parametrize.register_parametrization(embedding, "weight", module)
    return module


def structure_state(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The parameters ``theta`` of an attached parametrisation (None when there is none), for checkpoints."""
    embedding = token_embedding(model)
    if not parametrize.is_parametrized(embedding, "weight"):
        return None
    (module,) = embedding.parametrizations.weight
    return {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
