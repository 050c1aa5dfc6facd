"""No parallels: with ``monophonic``, no new part moves in parallel fifths or octaves with another single-line
part (``no_parallels``), and such moves from one beat to the next keep only ``beat_parallels`` of their
probability (0 forbids them).

The parts' lines (kept notes and each row's new ones) and the rule itself live in ``voicing``; this module
asks it, for each row about to draw a note, which pitches each part may not take. A legato note lasts until
its part's next one, so the rule sees it held.
"""

from __future__ import annotations

import numpy as np
import torch

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.sampling.constraints.monophonic import monophonic_parts
from amt.sampling.voicing import PartLines
from amt.tokenization.notes import EVENT_NOTES, event_span
from amt.tokenization.vocab import MAX_INSTR, MAX_PITCH


class Parallels(Constraint):
    def __init__(self, setup: Setup):
        options = setup.options
        self.parts = monophonic_parts(setup.allowed_notes)
        self.part_set = frozenset(self.parts.tolist())
        self.legato, self.beat_parallels = options.legato, options.beat_parallels
        self.lines = PartLines(setup.kept, setup.rows)
        self.beats = None  # [beats] ascending ticks, where beat_parallels weighs moves from the previous beat
        if options.beat_parallels < 1.0:
            self.beats = setup.beats[0]

    @classmethod
    def build(cls, setup: Setup) -> Parallels | None:
        return cls(setup) if setup.options.no_parallels else None

    def _previous_beat(self, onset: int) -> int | None:
        """The beat before ``onset`` when ``onset`` is itself a beat and ``beat_parallels`` applies."""
        if self.beats is None:
            return None
        i = int(np.searchsorted(self.beats, onset))
        if i == 0 or i == len(self.beats) or self.beats[i] != onset:
            return None
        return int(self.beats[i - 1])

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        rows = len(choice.onset)
        pitches_ok = np.ones((rows, MAX_INSTR, MAX_PITCH), dtype=bool)
        weighed = np.zeros((rows, MAX_INSTR, MAX_PITCH), dtype=bool) if self.beats is not None else None
        for r in np.flatnonzero(choice.note_ok):
            tick = int(choice.onset[r])
            since = self._previous_beat(tick)
            for instrument in self.parts[choice.instrument_ok[r, self.parts]]:
                instrument = int(instrument)
                pitches_ok[r, instrument] = ~self.lines.parallel_pitches(r, instrument, tick)
                if since is not None:
                    weighed[r, instrument] = self.lines.parallel_pitches(r, instrument, tick, since)
        if weighed is not None and self.beat_parallels == 0.0:
            pitches_ok &= ~weighed
        elif weighed is not None and weighed.any():
            weights = np.where(weighed, np.log(self.beat_parallels), 0.0).reshape(rows, -1)
            weights = np.concatenate([weights, np.zeros((rows, 1))], axis=1)  # REST
            weights = torch.from_numpy(weights).float().to(decoder.device)
            choice.log_weights = weights if choice.log_weights is None else choice.log_weights + weights
        pitches_ok = torch.from_numpy(pitches_ok.reshape(rows, -1)).to(decoder.device)
        choice.notes_ok = pitches_ok if choice.notes_ok is None else choice.notes_ok & pitches_ok

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        onset, end = event_span(triple)
        note = EVENT_NOTES.value(int(triple[2]))
        instrument = note // MAX_PITCH
        # A legato note lasts until the part's next one: the voice-leading rule must see it held.
        line_end = np.iinfo(np.int64).max if self.legato and instrument in self.part_set else end
        self.lines.add(row, instrument, onset, line_end, note % MAX_PITCH)

    def select(self, index: np.ndarray) -> None:
        self.lines.select(index)
