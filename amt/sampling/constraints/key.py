"""Key weight as a constraint: new pitched notes outside the key of the kept music around their onset keep
``key_weight`` of their probability (the sliding-window estimate and the weights are ``keyweight``'s, made
once per request; off where no key is clear)."""

from __future__ import annotations

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.sampling.keyweight import KeyWeight


class Key(Constraint):
    def __init__(self, weight: KeyWeight):
        self.weight = weight

    @classmethod
    def build(cls, setup: Setup) -> Key | None:
        onsets, ends, pitches = setup.kept_pitched
        weight = KeyWeight(onsets, ends, pitches, setup.options.key_weight, setup.start, setup.end)
        setup.notes.extend([weight.why_off] if weight.why_off else weight.notes)
        return cls(weight) if weight.on else None

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        rows = choice.note_ok
        choice.weigh_pitches()[rows] += self.weight.at(choice.onset[rows])
