"""Monophonic parts (and legato): each new pitched instrument plays one note at a time.

A new note of a part ends the part's previous note if that one still sounds, as on a monophonic
synthesizer: the model chose to move the part on, and the earlier duration was drawn before the model said
which part the note was for. With ``legato`` the previous note also holds over a rest until this one starts.
No two notes of one part start together. The model's window keeps the durations it drew; the output and
every later constraint see the notes as they will sound, so a part's newest note is reported to the
callback only once its end is settled (by the part's next note, or the passing of its end). Drums are
exempt.
"""

from __future__ import annotations

import numpy as np
import torch

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.tokenization.notes import EVENT_DURATIONS, EVENT_NOTES, event_span
from amt.tokenization.vocab import DRUMS, MAX_DUR, MAX_INSTR, MAX_PITCH


def monophonic_parts(allowed_notes: torch.Tensor) -> np.ndarray:
    """The pitched instruments that may get new notes under the request's note filter: the parts that
    ``monophonic`` binds."""
    pitched = allowed_notes[:-1].view(MAX_INSTR, MAX_PITCH).any(dim=1).cpu().numpy()
    pitched[DRUMS] = False
    return np.flatnonzero(pitched)


class Monophonic(Constraint):
    def __init__(self, parts: np.ndarray, rows: int, legato: bool):
        self.parts, self.part_set, self.legato = parts, frozenset(parts.tolist()), legato
        self.last_onset = np.full((rows, MAX_INSTR), -1, dtype=np.int64)  # onset of each one's newest note
        # Per row, part -> its newest note while a later note of the part could still cut it short.
        self.open: list[dict[int, np.ndarray]] = [{} for _ in range(rows)]

    @classmethod
    def build(cls, setup: Setup) -> Monophonic | None:
        options = setup.options
        if not options.monophonic:
            return None
        return cls(monophonic_parts(setup.allowed_notes), setup.rows, options.legato)

    def earliest_note(self, decoder, low: np.ndarray) -> np.ndarray:
        if not len(self.parts):
            return low
        # A part may start a note at any onset but that of its newest one.
        free = (self.last_onset[:, self.parts] < low[:, None]).any(axis=1)
        return np.where(free, low, low + 1)

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        busy = self.last_onset == choice.onset[:, None]  # two notes of one part never start together
        busy[:, DRUMS] = False
        choice.instrument_ok &= ~busy

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        onset, _ = event_span(triple)
        instrument = EVENT_NOTES.value(int(triple[2])) // MAX_PITCH
        self.last_onset[row, instrument] = onset
        if instrument not in self.part_set:
            return
        previous = self.open[row].pop(instrument, None)
        if previous is not None:
            previous_onset, previous_end = event_span(previous)
            if previous_end > onset or self.legato:
                previous[1] = EVENT_DURATIONS.token(min(onset - previous_onset, MAX_DUR - 1))
            decoder.report(row, previous)
        self.open[row][instrument] = triple

    def holds(self, triple: np.ndarray) -> bool:
        return EVENT_NOTES.value(int(triple[2])) // MAX_PITCH in self.part_set

    def settle(self, decoder, row: int, until: int | None) -> None:
        for instrument, triple in list(self.open[row].items()):
            if until is not None and (self.legato or event_span(triple)[1] > until):
                continue
            del self.open[row][instrument]
            decoder.report(row, triple)

    def select(self, index: np.ndarray) -> None:
        self.last_onset = self.last_onset[index]
        self.open = [self.open[i] for i in index]
