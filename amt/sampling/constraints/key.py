"""Key weight as a constraint: new pitched notes outside the key of the kept music keep ``key_weight`` of
their probability (the estimate and the weights are ``keyweight``'s; off where the key is unclear)."""

from __future__ import annotations

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.sampling.keyweight import KeyWeight


class Key(Constraint):
    def __init__(self, weight: KeyWeight):
        self.log_weights = weight.log_weights  # [MAX_PITCH]

    @classmethod
    def build(cls, setup: Setup) -> Key | None:
        onsets, ends, pitches = setup.kept_pitched
        weight = KeyWeight(pitches, ends - onsets, setup.options.key_weight)
        if weight.why_off:
            setup.notes.append(weight.why_off)
        return None if weight.log_weights is None else cls(weight)

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        choice.weigh_pitches()[choice.note_ok] += self.log_weights
