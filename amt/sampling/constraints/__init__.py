"""The decoding constraints, one module each, and the registry that builds the active ones for a request.

Each entry of ``REGISTRY`` is a constraint class with ``build(setup) -> Constraint | None`` (None when the
request leaves it off; it may add a line to ``setup.notes`` saying why). The order is the order in which the
engine calls the hooks: the instrument budget and monophonic parts settle which instruments may play
before the parallels rule looks at them; a monophonic part cuts its previous note before polyphony counts
what still sounds; the key, chord, harmony-prior, register and bass weights add up in that order. Adding a
constraint is a new module here, its line below and its tests.
"""

from __future__ import annotations

from amt.sampling.constraints.base import Constraint, NoteChoice, Setup
from amt.sampling.constraints.bass import Bass
from amt.sampling.constraints.chord import Chord
from amt.sampling.constraints.density import Density
from amt.sampling.constraints.grid import Grid
from amt.sampling.constraints.instruments import InstrumentBudget
from amt.sampling.constraints.key import Key
from amt.sampling.constraints.monophonic import Monophonic
from amt.sampling.constraints.parallels import Parallels
from amt.sampling.constraints.polyphony import Polyphony
from amt.sampling.constraints.prior import Prior
from amt.sampling.constraints.register import Register

REGISTRY: list = [
    InstrumentBudget,  # max_instruments
    Monophonic,  # monophonic, legato
    Polyphony,  # polyphony
    Density,  # density
    Grid,  # grid (through the time map)
    Parallels,  # no_parallels, beat_parallels
    Key,  # key_weight
    Chord,  # chord_weight (on the time map's beats)
    Prior,  # harmony_prior (on the time map's beats)
    Register,  # register_weight
    Bass,  # bass_weight (on the time map's bar lines)
]
"""Constraint classes in hook order; ``build`` makes the active ones."""


def build(setup: Setup) -> list[Constraint]:
    """The constraints ``setup``'s request turns on, in ``REGISTRY`` order."""
    built = (cls.build(setup) for cls in REGISTRY)
    return [c for c in built if c is not None]


__all__ = ["REGISTRY", "Constraint", "NoteChoice", "Setup", "build"]
