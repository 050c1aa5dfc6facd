"""Register weight as a constraint: new pitched notes at or above the melody (the highest kept note sounding
at their onset) keep ``register_weight`` of their probability (the weights are ``amt.sampling.register``'s;
off where the kept music lies low)."""

from __future__ import annotations

import numpy as np

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.sampling.register import register_applies, register_log_weights


class Register(Constraint):
    def __init__(self, setup: Setup):
        self.kept = setup.kept_pitched
        self.weight = setup.options.register_weight

    @classmethod
    def build(cls, setup: Setup) -> Register | None:
        if setup.options.register_weight >= 1.0:
            return None
        why_off = register_applies(setup.kept_pitched[2])
        if why_off:
            setup.notes.append(why_off)
            return None
        return cls(setup)

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        onsets, ends, pitches = self.kept
        for r in np.flatnonzero(choice.note_ok):
            tick = int(choice.onset[r])
            kept = pitches[(onsets <= tick) & (tick < ends)]
            below = register_log_weights(int(kept.max()) if len(kept) else None, self.weight)
            if below is not None:
                choice.weigh_pitches()[r] += below
