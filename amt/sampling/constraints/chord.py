"""Chord weight as a constraint: on beats, new pitched notes that would not fit one triad or seventh chord
with the notes sounding then (kept and the row's new ones) keep ``chord_weight`` of their probability on
strong beats (bar starts), its square root on other beats (the weights are ``chordweight``'s). The beats
and bar lines are the time map's."""

from __future__ import annotations

import numpy as np

from amt.sampling.chordweight import chord_log_weights
from amt.sampling.constraints.base import Constraint, NoteChoice, Setup, sounding_pitches


class Chord(Constraint):
    def __init__(self, setup: Setup, beats: dict[int, bool]):
        self.kept = setup.kept_pitched
        self.weight = setup.options.chord_weight
        self.beats = beats  # beat tick -> strong

    @classmethod
    def build(cls, setup: Setup) -> Chord | None:
        if setup.options.chord_weight >= 1.0:
            return None
        ticks, strong = setup.beats
        if not len(ticks):
            setup.notes.append("chord weight off: no beats")
            return None
        if not strong.any():
            setup.notes.append("chord weight: no strong beats (no meter), the lighter weight on every beat")
        return cls(setup, dict(zip(ticks.tolist(), strong.tolist(), strict=True)))

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        for r in np.flatnonzero(choice.note_ok):
            tick = int(choice.onset[r])
            strong = self.beats.get(tick)
            if strong is None:
                continue
            weights = chord_log_weights(sounding_pitches(decoder, r, tick, self.kept), strong, self.weight)
            if weights is not None:
                choice.weigh_pitches()[r] += weights
