"""Instrument budget: the output (kept and new notes) uses at most ``max_instruments`` instruments.

A new note may take an instrument the row already uses (kept or new) or, while the row is under budget, any
other the request allows. REST is not an instrument. A request that could write no note at all (the kept
music fills the budget with none of the requested instruments) is refused up front.
"""

from __future__ import annotations

import numpy as np

from amt.errors import GenerationError
from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.tokenization import ops
from amt.tokenization.notes import EVENT_NOTES
from amt.tokenization.vocab import MAX_INSTR, MAX_PITCH


class InstrumentBudget(Constraint):
    def __init__(self, present: np.ndarray, rows: int, budget: int):
        self.used = np.tile(present, (rows, 1))  # [rows, MAX_INSTR]
        self.budget = budget

    @classmethod
    def build(cls, setup: Setup) -> InstrumentBudget:
        options = setup.options
        kept = setup.kept[~ops.is_rest(setup.kept), 2]
        present = np.zeros(MAX_INSTR, dtype=bool)
        present[np.unique(ops.instrument_of(kept))] = True
        if options.instruments is not None and present.sum() >= options.max_instruments \
                and not present[list(options.instruments)].any():
            raise GenerationError(
                f"the music already uses {int(present.sum())} instruments (max_instruments "
                f"{options.max_instruments}) and none of the requested ones: no new note could be written"
            )
        return cls(present, setup.rows, options.max_instruments)

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        room = self.used.sum(axis=1) < self.budget
        choice.instrument_ok &= self.used | room[:, None]

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        self.used[row, EVENT_NOTES.value(int(triple[2])) // MAX_PITCH] = True

    def select(self, index: np.ndarray) -> None:
        self.used = self.used[index]
