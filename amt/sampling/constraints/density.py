"""Density target: the count of new notes stays within a second's worth (at least 4) of ``density`` x
elapsed time.

A note that would run ahead of the budget waits (its onset is pushed later); when the count falls behind,
the next onset may not be later than where the budget catches up, and neither REST nor the zero duration
that leads to it is allowed. The range is soft: where it cannot be met together with the hard bounds (a
voice to wait for), it yields.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.tokenization.vocab import TIME_RESOLUTION


def density_slack(density: float) -> float:
    """How many notes the count may run ahead of or behind the density budget: a second's worth, at
    least 4 so that a chord fits."""
    return max(4.0, density)


def density_bounds(density: float, notes: int, start: int) -> tuple[int, int]:
    """Earliest and latest onset (ticks) for the next new note, given ``notes`` new notes so far since
    ``start``: earlier would run ahead of ``density`` notes/s by more than the slack, later would fall
    behind by more than the slack."""
    slack = density_slack(density)
    per_note = TIME_RESOLUTION / density
    earliest = start + math.ceil((notes + 1 - slack) * per_note)
    latest = start + math.floor((notes + slack) * per_note)
    return earliest, latest


def density_behind(density: float, notes: int, start: int, time: int) -> bool:
    """Whether, at onset ``time``, the new notes so far are at or behind the density budget (so a REST
    would only widen the gap)."""
    return notes + 1 <= density * (time - start) / TIME_RESOLUTION


class Density(Constraint):
    def __init__(self, density: float, start: int, rows: int):
        self.density, self.start = density, start
        self.notes = np.zeros(rows, dtype=np.int64)  # new notes so far per row

    @classmethod
    def build(cls, setup: Setup) -> Density | None:
        density = setup.options.density
        return cls(density, setup.start, setup.rows) if density else None

    def onset_range(self, decoder, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for r in range(len(low)):
            earliest, latest = density_bounds(self.density, int(self.notes[r]), self.start)
            low[r], high[r] = max(low[r], earliest), min(high[r], latest)
        return low, high

    def _behind(self, onsets: np.ndarray) -> np.ndarray:
        """Per row, whether the new notes so far are at or behind the budget at its onset."""
        return np.array([density_behind(self.density, int(n), self.start, int(t))
                         for n, t in zip(self.notes, onsets, strict=True)], dtype=bool)

    def duration_mask(self, decoder, mask: torch.Tensor, onset: np.ndarray) -> torch.Tensor:
        # A zero duration is the way to REST (the engine's note mask): a row behind the budget may not take
        # it, or it could rest at one tick again and again while the budget holds time back (a whole
        # harmonisation fell silent that way). A row with no other duration keeps it.
        for r in np.flatnonzero(self._behind(onset)):
            if mask[r, 1:].any():
                mask[r, 0] = False
        return mask

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        choice.rest_ok &= ~self._behind(choice.onset)

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        self.notes[row] += 1

    def select(self, index: np.ndarray) -> None:
        self.notes = self.notes[index]
