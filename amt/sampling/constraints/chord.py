"""Chord weight as a constraint: on beats, new pitched notes that would not fit one triad or seventh chord
with the notes sounding then (kept and the row's new ones) keep ``chord_weight`` of their probability on
strong beats (bar starts), its square root on other beats (the weights are ``chordweight``'s). The beats
and bar lines are the time map's."""

from __future__ import annotations

import numpy as np

from amt.sampling.chordweight import chord_log_weights
from amt.sampling.constraints.base import BeatWeight
from amt.sampling.options import SamplingOptions


class Chord(BeatWeight):
    name = "chord weight"
    unmetered = "the lighter weight on every beat"

    @classmethod
    def on(cls, options: SamplingOptions) -> bool:
        return options.chord_weight < 1.0

    def log_weights(self, sounding: list[int], strong: bool) -> np.ndarray | None:
        return chord_log_weights(sounding, strong, self.options.chord_weight)
