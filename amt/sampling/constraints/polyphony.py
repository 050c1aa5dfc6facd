"""Polyphony cap: at most ``ceil(1.5 x polyphony)`` new notes sound at once; a note waits for a free voice.

The cap steers the mean number of new notes sounding at once (``SamplingOptions.polyphony``) towards its
target from above; candidates (``attributes.distance``) rank the rest. A note's end is read as it will
sound, after a monophonic part cut it short (``monophonic`` hears each note first).
"""

from __future__ import annotations

import math

import numpy as np

from amt.sampling.constraints.base import Constraint, Setup
from amt.tokenization.notes import event_span


def polyphony_cap(polyphony: float) -> int:
    """Most new notes that may sound at once for a target mean polyphony."""
    return max(1, math.ceil(1.5 * polyphony))


def polyphony_earliest(note_ends: list[int], cap: int) -> int | None:
    """Earliest onset (ticks) at which fewer than ``cap`` of the notes ending at ``note_ends`` still sound;
    None when that holds already at any time."""
    if len(note_ends) < cap:
        return None
    return sorted(note_ends, reverse=True)[cap - 1]


class Polyphony(Constraint):
    def __init__(self, cap: int, rows: int):
        self.cap = cap
        # Per row, the new notes that may still sound (their arrays: a later cut shows in their end).
        self.sounding: list[list[np.ndarray]] = [[] for _ in range(rows)]

    @classmethod
    def build(cls, setup: Setup) -> Polyphony | None:
        polyphony = setup.options.polyphony
        return cls(polyphony_cap(polyphony), setup.rows) if polyphony else None

    def earliest_note(self, decoder, low: np.ndarray) -> np.ndarray:
        for r in range(len(low)):
            earliest = polyphony_earliest([event_span(t)[1] for t in self.sounding[r]], self.cap)
            if earliest is not None:
                low[r] = max(low[r], earliest)
        return low

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        onset, _ = event_span(triple)
        self.sounding[row] = [*(t for t in self.sounding[row] if event_span(t)[1] > onset), triple]

    def select(self, index: np.ndarray) -> None:
        self.sounding = [self.sounding[i] for i in index]
