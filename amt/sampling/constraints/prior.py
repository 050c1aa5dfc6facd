"""Harmony-prior weight as a constraint: on beats, a new pitched note's probability is multiplied by the
harmony prior's probability of its pitch class given what sounds then (kept notes and the row's new ones),
raised to ``harmony_prior`` (``amt.sampling.harmonyprior``: counted from the training chorales, separately
for bar starts and other beats). Unlike the chord weight's two levels (fits a chord or not), the prior ranks
the candidates: the root and the third of an open fifth above the seventh, a doubled root above a doubled
third, as Bach's voices choose them. Off the beat nothing (passing notes stay free); 0 is off."""

from __future__ import annotations

import numpy as np

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup, sounding_pitches
from amt.sampling.harmonyprior import shipped_prior
from amt.tokenization.vocab import MAX_PITCH

_PITCH_CLASS = np.arange(MAX_PITCH) % 12


class Prior(Constraint):
    def __init__(self, setup: Setup, beats: dict[int, bool]):
        self.kept = setup.kept_pitched
        self.strength = setup.options.harmony_prior
        self.prior = shipped_prior()
        self.beats = beats  # beat tick -> strong

    @classmethod
    def build(cls, setup: Setup) -> Prior | None:
        if setup.options.harmony_prior <= 0.0:
            return None
        ticks, strong = setup.beats
        if not len(ticks):
            setup.notes.append("harmony prior off: no beats")
            return None
        if not strong.any():
            setup.notes.append("harmony prior: no bar starts (no meter), other beats' counts on every beat")
        return cls(setup, dict(zip(ticks.tolist(), strong.tolist(), strict=True)))

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        for r in np.flatnonzero(choice.note_ok):
            tick = int(choice.onset[r])
            strong = self.beats.get(tick)
            if strong is None:
                continue
            sounding = sounding_pitches(decoder, r, tick, self.kept)
            if not sounding:  # the prior of the empty set is uniform: nothing to weigh
                continue
            log_p = np.log(self.prior.probabilities(sounding, strong))
            # Relative to the likeliest pitch class, so the weight moves mass among pitches, not onto REST.
            choice.weigh_pitches()[r] += self.strength * (log_p - log_p.max())[_PITCH_CLASS]
