"""Bass weight: the lowest new part behaves as a bass, moving on the bar and favouring chord roots.

On a bar's first beat (the time map's strong beats) two weights apply to a new pitched note:

- When the lowest new note sounding there was struck before the bar line (a bass held across it), a new note
  that would not go below it keeps ``bass_weight`` of its probability: the bass is struck again on the bar,
  as in the composers' accompaniments (on validation pieces the lowest accompaniment note was struck on 92%
  of bar starts in the originals, 66-71% in the model's before this weight).
- A new note that would become the lowest new note there keeps ``ROOT_WEIGHT`` of its probability unless
  its pitch class is the root of a triad or seventh chord holding everything that sounds (``chords``):
  root-position harmony on the bar, inversions still possible.

A weight, not a rule: a held pedal or a first inversion stays within reach. Off without bar lines (a file
with no time signature) and with ``bass_weight`` 1.
"""

from __future__ import annotations

import numpy as np

from amt.sampling.chords import chord_roots
from amt.sampling.constraints.base import Constraint, NoteChoice, Setup, new_sounding
from amt.tokenization.vocab import MAX_PITCH

ROOT_WEIGHT = 0.3
"""Share kept on a bar's first beat by a new lowest note that is no chord root (chosen on validation pieces
with ``bass_weight``'s default; MODEL_CARD.md)."""
_PITCHES = np.arange(MAX_PITCH)


class Bass(Constraint):
    def __init__(self, setup: Setup, bars: set[int]):
        self.kept = setup.kept_pitched
        self.held = np.log(setup.options.bass_weight)
        self.bars = bars

    @classmethod
    def build(cls, setup: Setup) -> Bass | None:
        if setup.options.bass_weight >= 1.0:
            return None
        ticks, strong = setup.beats
        if not strong.any():
            setup.notes.append("bass weight off: no bar lines (the file has no time signature)")
            return None
        return cls(setup, set(ticks[strong].tolist()))

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        onsets, ends, pitches = self.kept
        for r in np.flatnonzero(choice.note_ok):
            tick = int(choice.onset[r])
            if tick not in self.bars:
                continue
            new = new_sounding(decoder, r, tick)
            weights = choice.weigh_pitches()[r]
            lowest = MAX_PITCH
            if new:
                struck, lowest = min(new, key=lambda note: note[1])
                if struck != tick:
                    weights[lowest <= _PITCHES] += self.held
            sounding = [*pitches[(onsets <= tick) & (tick < ends)].tolist(), *(p for _, p in new)]
            roots = chord_roots(sounding)
            if roots.any():  # a set that fits no chord has no root to prefer
                weights[(lowest > _PITCHES) & ~roots[_PITCHES % 12]] += np.log(ROOT_WEIGHT)
