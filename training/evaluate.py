"""Evaluation of a model on a corpus split: loss per token, bits per event, perplexity by token kind.

Sequences are built by :class:`~amt.training.data.SequenceBuilder` with a fixed seed, once per *condition*
(a named objective mix): ``plain`` (AUTOREGRESS sequences, no controls) and ``anticipate`` (the span,
random-subset and instrument objectives in their training proportions). Comparing the two measures what
anticipation buys instead of assuming it. A condition is only a name and a mix, so new ones (e.g.
harmonisation: the melody as controls) are one entry in ``CONDITIONS``.

Scoring goes through a *scorer*: any callable mapping a ``[B, T]`` LongTensor of tokens to ``[B, T - 1]``
natural-log negative log-likelihoods of tokens 1..T-1. :func:`model_scorer` wraps a model (the full
55,028-token softmax by default; with ``grammar=True`` the softmax over the block of tokens the grammar allows
at each position, which is the distribution the sampler draws from and the one an n-gram baseline defines);
another scorer (the n-gram baseline) plugs into :func:`evaluate` unchanged.

Metrics (over every target token of every sequence, flags excluded since they are given):

- ``loss_per_token``: mean NLL in nats over all targets (events, controls and separators);
- ``bits_per_event``: summed NLL of the onset, duration and note tokens of each *event* triple (REST
  events included, controls excluded: they are given as conditioning), in bits, divided by the number of
  event triples;
- ``perplexity_onset`` / ``_duration`` / ``_note``: exp of the mean NLL at event onset, duration and note
  targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from amt.tokenization.notes import EVENT_DURATIONS, EVENT_NOTES, EVENT_TIMES
from amt.tokenization.vocab import REST
from amt.training.blocks import block_cross_entropy
from amt.training.data import ANTICIPATION_MIX, PLAIN_MIX, Objective, SequenceBuilder

Scorer = Callable[[torch.Tensor], torch.Tensor]

CONDITIONS: dict[str, dict[Objective, float]] = {"plain": PLAIN_MIX, "anticipate": ANTICIPATION_MIX}
"""Named objective mixes evaluated by ``amt eval``."""

KINDS = ("onset", "duration", "note")


def token_kinds(targets: np.ndarray) -> np.ndarray:
    """0/1/2 for event onset/duration/note (REST included) targets, -1 for controls and special tokens."""
    kinds = np.full(targets.shape, -1, dtype=np.int8)
    kinds[EVENT_TIMES.holds(targets)] = 0
    kinds[EVENT_DURATIONS.holds(targets)] = 1
    kinds[EVENT_NOTES.holds(targets) | (targets == REST)] = 2
    return kinds


@dataclass
class Tally:
    """Running sums of NLL (nats) and counts, overall and per event token kind."""

    nll: float = 0.0
    tokens: int = 0
    kind_nll: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    kind_tokens: list[int] = field(default_factory=lambda: [0, 0, 0])

    def add(self, nll: np.ndarray, targets: np.ndarray) -> None:
        """Add per-token NLLs of ``targets`` (same shape)."""
        self.nll += float(nll.sum(dtype=np.float64))
        self.tokens += nll.size
        kinds = token_kinds(targets)
        for kind in range(len(KINDS)):
            selected = kinds == kind
            self.kind_nll[kind] += float(nll[selected].sum(dtype=np.float64))
            self.kind_tokens[kind] += int(selected.sum())

    def metrics(self) -> dict[str, float | int]:
        """The reported numbers (see the module docstring); NaN where nothing was counted."""
        events = self.kind_tokens[2]
        result: dict[str, float | int] = {
            "tokens": self.tokens,
            "events": events,
            "loss_per_token": self.nll / self.tokens if self.tokens else math.nan,
            "bits_per_event": sum(self.kind_nll) / events / math.log(2) if events else math.nan,
        }
        for kind, name in enumerate(KINDS):
            count = self.kind_tokens[kind]
            result[f"perplexity_{name}"] = math.exp(self.kind_nll[kind] / count) if count else math.nan
        return result


def model_scorer(model, *, autocast_dtype: torch.dtype | None = None, chunk: int = 2048,
                 grammar: bool = False) -> Scorer:
    """A scorer computing NLLs with a CausalLM ``model`` (no gradients): over the full vocabulary, or with
    ``grammar`` over each position's block (:func:`~amt.training.blocks.block_cross_entropy`). A model trained
    with the block loss is never taught to put zero mass on impossible tokens, so only the grammar numbers
    measure what it samples.

    The output layer runs on ``chunk`` positions at a time: a whole batch of 55,028-way logits would take
    ~225 MB per 1,024 positions in float32.
    """
    device = model.output_weight().device

    @torch.no_grad()
    def score(tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.to(device)
        targets = tokens[:, 1:].reshape(-1)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                            enabled=autocast_dtype is not None):
            hidden = model.hidden_states(tokens[:, :-1])
            if grammar:
                return block_cross_entropy(hidden, model.output_weight(), tokens[:, :-1], tokens[:, 1:],
                                           reduction="none")
            hidden = hidden.reshape(-1, hidden.shape[-1])
            nll = torch.cat([F.cross_entropy(model.logits(hidden[i:i + chunk]).float(), targets[i:i + chunk],
                                             reduction="none") for i in range(0, len(targets), chunk)])
        return nll.reshape(tokens.shape[0], -1)

    return score


def score_sequences(scorer: Scorer, sequences: np.ndarray, *, batch_size: int = 8) -> Tally:
    """Score ``[N, T]`` token sequences in batches; returns the tally of their NLLs."""
    tally = Tally()
    for start in range(0, len(sequences), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(sequences[start:start + batch_size]))
        nll = scorer(batch).float().cpu().numpy()
        tally.add(nll, batch[:, 1:].numpy())
    return tally


def build_sequences(builder: SequenceBuilder, count: int, *, first: int = 0) -> np.ndarray:
    """Sequences ``first .. first + count - 1`` of ``builder`` as an ``[count, length]`` array."""
    return np.stack([builder.build(first + i) for i in range(count)])


def evaluate(scorer: Scorer, corpus, pieces: np.ndarray, *, sequences: int = 128, seed: int = 0,
             batch_size: int = 8, conditions: Mapping[str, Mapping[Objective, float]] = CONDITIONS,
             progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float | int]]:
    """Metrics per condition over ``sequences`` deterministic sequences drawn from ``pieces`` of ``corpus``.

    The same ``seed`` gives the same sequences for every model, so numbers are comparable across models.
    """
    results = {}
    for name, mix in conditions.items():
        if progress is not None:
            progress(name)
        builder = SequenceBuilder(corpus, pieces, seed=seed, mix=mix)
        tally = score_sequences(scorer, build_sequences(builder, sequences), batch_size=batch_size)
        results[name] = {"sequences": sequences, **tally.metrics()}
    return results


COLUMNS: Sequence[tuple[str, str, str]] = (
    ("sequences", "sequences", "{:d}"),
    ("tokens", "tokens", "{:,d}"),
    ("loss_per_token", "loss/token", "{:.4f}"),
    ("bits_per_event", "bits/event", "{:.3f}"),
    ("perplexity_onset", "ppl onset", "{:.2f}"),
    ("perplexity_duration", "ppl duration", "{:.2f}"),
    ("perplexity_note", "ppl note", "{:.2f}"),
)


def format_table(results: Mapping[str, Mapping[str, float | int]]) -> str:
    """A plain-text table, one row per condition."""
    header = ["condition", *(title for _, title, _ in COLUMNS)]
    rows = [[name, *(fmt.format(metrics[key]) for key, _, fmt in COLUMNS)]
            for name, metrics in results.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
