"""Harmony-prior weight as a constraint: on beats, a new pitched note's probability is multiplied by the
harmony prior's probability of its pitch class given what sounds then (kept notes and the row's new ones, a
doubled pitch class counted twice), raised to ``harmony_prior`` (``amt.sampling.harmonyprior``: counted from
the training chorales, separately for bar starts and other beats). Unlike the chord weight's two levels (fits
a chord or not), the prior ranks the candidates: the root and the third of an open fifth above the seventh, a
doubled root above a doubled third, the missing fifth once the root is doubled, as Bach's voices choose them.
Off the beat nothing (passing notes stay free); 0 is off."""

from __future__ import annotations

import numpy as np

from amt.sampling.constraints.base import BeatWeight
from amt.sampling.harmonyprior import shipped_prior
from amt.sampling.options import SamplingOptions
from amt.tokenization.vocab import MAX_PITCH

_PITCH_CLASS = np.arange(MAX_PITCH) % 12


class Prior(BeatWeight):
    name = "harmony prior"
    unmetered = "the other beats' counts on every beat"

    @classmethod
    def on(cls, options: SamplingOptions) -> bool:
        return options.harmony_prior > 0.0

    def log_weights(self, sounding: list[int], strong: bool) -> np.ndarray | None:
        if not sounding:  # the prior of the empty set is uniform: nothing to weigh
            return None
        # BeatWeight makes it relative to the likeliest pitch, so it moves mass among pitches, not onto REST.
        log_p = np.log(shipped_prior().probabilities(sounding, strong))
        return self.options.harmony_prior * log_p[_PITCH_CLASS]
