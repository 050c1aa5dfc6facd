"""The constraint protocol: a constraint registered in ``constraints.REGISTRY`` is built for a request and
the engine calls its hooks (a forbidden pitch never appears, its per-row state follows the rows when
variations finish early)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from amt.models import create_model, tiny_config
from amt.sampling import SamplingOptions, constraints, generate
from amt.sampling.constraints import Constraint, NoteChoice, Setup
from amt.tokenization import ops
from amt.tokenization.vocab import CONTROL_OFFSET, DUR_OFFSET, MAX_INSTR, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET

FORBIDDEN = 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


def melody(start: int, stop: int, step: int = 50) -> np.ndarray:
    return np.array([[TIME_OFFSET + t, DUR_OFFSET + 40, NOTE_OFFSET + 60 + (t // step) % 12]
                     for t in range(start, stop, step)], dtype=np.int64)


class NoE4(Constraint):
    """Forbids pitch 64 (E4) on every instrument, and counts per row what it heard."""

    built: ClassVar[list[NoE4]] = []

    def __init__(self, rows: int):
        self.heard = [[] for _ in range(rows)]  # per row, the notes heard
        self.rows_seen: list[int] = []
        self.agreed: list[bool] = []  # per finished row: it heard exactly the notes the row returns

    @classmethod
    def build(cls, setup: Setup) -> NoE4:
        cls.built.append(cls(setup.rows))
        return cls.built[-1]

    def note_choice(self, decoder, choice: NoteChoice) -> None:
        ok = torch.ones(len(choice.onset), MAX_INSTR, MAX_PITCH, dtype=torch.bool, device=decoder.device)
        ok[:, :, FORBIDDEN] = False
        ok = ok.reshape(len(choice.onset), -1)
        choice.notes_ok = ok if choice.notes_ok is None else choice.notes_ok & ok
        self.rows_seen.append(len(choice.onset))

    def hear(self, decoder, row: int, triple: np.ndarray) -> None:
        self.heard[row].append(triple.copy())

    def settle(self, decoder, row: int, until: int | None) -> None:
        if until is None:  # the row is done
            mine, its = self.heard[row], decoder.generated[row]
            same = len(mine) == len(its) and all(np.array_equal(a, b) for a, b in zip(mine, its, strict=True))
            self.agreed.append(same)

    def select(self, index: np.ndarray) -> None:
        self.heard = [self.heard[i] for i in index]


@pytest.fixture
def registered(monkeypatch):
    NoE4.built.clear()
    monkeypatch.setattr(constraints, "REGISTRY", [*constraints.REGISTRY, NoE4])
    return NoE4.built


def test_a_registered_constraint_masks_notes(model, registered):
    kwargs = dict(history=melody(0, 300), controls=melody(400, 1500) + CONTROL_OFFSET, start_time=300,
                  end_time=1500, variations=3,
                  options=SamplingOptions(seed=3, top_p=1.0, instruments=[0], pitch_range=(60, 67)))
    out = generate(model, **kwargs)
    assert len(registered) == 1 and registered[0].rows_seen
    new = np.concatenate(out)
    assert len(new) > 30 and not (ops.pitch_of(new[:, 2]) == FORBIDDEN).any()
    # Without it the tiny model does write that pitch (one of the 8 the request allows): the mask, not
    # chance, kept it out.
    constraints.REGISTRY.remove(NoE4)
    free = np.concatenate(generate(model, **kwargs))
    assert (ops.pitch_of(free[:, 2]) == FORBIDDEN).any()


def test_a_constraints_state_follows_the_rows_when_variations_finish_early(model, registered):
    # Rows finish at different steps (the batch shrinks): each row's state must stay with its row, so what
    # the constraint heard in a row is exactly the notes that row returns.
    out = generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300,
                   end_time=900, variations=6, options=SamplingOptions(seed=5))
    (constraint,) = registered
    assert len(set(constraint.rows_seen)) > 1  # the batch did shrink
    assert len(out) == 6 and all(len(new) for new in out)
    assert len(constraint.agreed) == 6 and all(constraint.agreed)


def test_hooks_a_constraint_does_not_implement_are_not_called():
    class Silent(Constraint):
        pass

    assert not any(constraints.base.overrides(Silent(), hook) for hook in constraints.base.HOOKS)
    assert constraints.base.overrides(NoE4(1), "note_choice") and not constraints.base.overrides(NoE4(1),
                                                                                                  "onset_mask")
