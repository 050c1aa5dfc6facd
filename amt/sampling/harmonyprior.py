"""A learned harmony prior: the pitch class a voice takes on a beat, given the pitches sounding.

Counted from Bach chorales (the training split, by ``amt.training.harmonyprior``): at every beat where all
four voices sound, for each voice and each non-empty subset of the other three voices, one observation "with
these pitches sounding, the voice took this pitch class". Counting the subsets, not only the full set of the
other three, makes the table answer the question a sampler asks, where only some voices are written yet
(``P(x | what sounds so far)``).

What sounds is read as a *voicing*: how many notes sound on each pitch class (at most ``DOUBLINGS``), not only
which pitch classes sound. With C in two voices and E in one, Bach's fourth voice takes G four times in five;
with C and E alone it is as likely to double the root. A table of pitch-class sets cannot tell the two apart,
and a sampler guided by it doubles notes where Bach completes the chord.

The table is transposition-invariant: a voicing and its pitch class are stored relative to the voicing's
canonical transposition (the one whose count vector is smallest), so every key shares the counts and the
prior knows intervals (chord shapes and doublings), not keys; the key is the key weight's business. Strong
beats (bar starts) and other beats have separate tables. Every voicing's estimate is interpolated with those
of the voicings one note smaller (additive backoff, so an unseen voicing falls back on them):
``P(x | V) = (c(V, x) + BACKOFF * mean_v P(x | V - v)) / (c(V) + BACKOFF)``, down to silence, where every
pitch class has 1/12.

The sampler's harmony-prior weight (``constraints.prior``) reads the shipped counts
(``harmony-prior.txt`` beside this module); counting and scoring them is ``amt.training.harmonyprior``'s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from amt.errors import AmtError

PRIOR_FILE = Path(__file__).with_name("harmony-prior.txt")
"""The shipped counts (Bach chorales of the training split)."""
BACKOFF = 4.0
"""Pseudo-count given to the backed-off estimate: a voicing seen fewer times leans more on smaller ones."""
DOUBLINGS = 3
"""Notes counted per pitch class: four voices put at most three on one in practice (more read as three)."""
_ROTATIONS = np.arange(12)

Voicing = tuple[int, ...]
"""Notes sounding on each of the 12 pitch classes (0 to ``DOUBLINGS``)."""


def voicing(pitches: Iterable[int]) -> Voicing:
    """The voicing of some pitches (any integers; taken mod 12)."""
    counts = [0] * 12
    for pitch in pitches:
        pc = int(pitch) % 12
        counts[pc] = min(counts[pc] + 1, DOUBLINGS)
    return tuple(counts)


def rotate(notes: Voicing, steps: int) -> Voicing:
    """The voicing transposed up by ``steps`` semitones."""
    steps %= 12
    return notes[-steps:] + notes[:-steps] if steps else notes


def canonical(notes: Voicing) -> tuple[Voicing, list[int]]:
    """(the smallest transposition of ``notes``, every ``k`` such that transposing up by ``k`` gives it): a
    symmetric voicing (silence, a diminished seventh, an augmented triad) has several."""
    rotations = [rotate(notes, k) for k in range(12)]
    low = min(rotations)
    return low, [k for k in range(12) if rotations[k] == low]


class HarmonyPrior:
    """Counts ``[canonical voicing] -> [12]`` for strong beats and other beats, with the backoff estimate."""

    def __init__(self, counts: dict[bool, dict[Voicing, np.ndarray]] | None = None):
        self.counts: dict[bool, dict[Voicing, np.ndarray]] = counts or {True: {}, False: {}}
        self._cache: dict[tuple[bool, Voicing], np.ndarray] = {}

    def add(self, sounding: Iterable[int], pitch_class: int, strong: bool, weight: float = 1.0) -> None:
        """Count one observation: with the pitches ``sounding``, a voice took ``pitch_class``."""
        low, shifts = canonical(voicing(sounding))
        row = self.counts[strong].setdefault(low, np.zeros(12))
        for k in shifts:  # a symmetric voicing: spread the observation over its equivalent transpositions
            row[(pitch_class + k) % 12] += weight / len(shifts)
        self._cache.clear()

    def probabilities(self, sounding: Iterable[int], strong: bool) -> np.ndarray:
        """``P(x | sounding)`` for the 12 pitch classes x (sums to 1)."""
        return self._absolute(strong, voicing(sounding))

    def _relative(self, strong: bool, low: Voicing) -> np.ndarray:
        """The estimate for a canonical voicing, indexed by pitch class relative to it."""
        key = (strong, low)
        if key in self._cache:
            return self._cache[key]
        if not any(low):
            estimate = np.full(12, 1 / 12)
        else:
            smaller = [(*low[:pc], low[pc] - 1, *low[pc + 1:]) for pc in range(12) if low[pc]]
            backoff = np.mean([self._absolute(strong, notes) for notes in smaller], axis=0)
            row = self.counts[strong].get(low)
            total = 0.0 if row is None else float(row.sum())
            estimate = backoff if row is None else (row + BACKOFF * backoff) / (total + BACKOFF)
        self._cache[key] = estimate
        return estimate

    def _absolute(self, strong: bool, notes: Voicing) -> np.ndarray:
        """The estimate for any voicing, indexed by pitch class."""
        low, shifts = canonical(notes)
        return self._relative(strong, low)[(_ROTATIONS + shifts[0]) % 12]

    def observations(self, strong: bool) -> float:
        """Observations counted for strong beats (True) or other beats."""
        return float(sum(row.sum() for row in self.counts[strong].values()))

    def to_text(self, header: str = "") -> str:
        """The counts as text: comment lines, then ``strong voicing c0 ... c11`` per voicing (the voicing as
        12 digits, its notes on C to B; whole numbers where they are whole)."""
        lines = [f"# {line}" for line in header.splitlines()]
        lines.append("# strong(1)/other beat(0), canonical voicing (notes on each pitch class C..B), "
                     "counts of the 12 pitch classes relative to that voicing")
        for strong in (True, False):
            for low in sorted(self.counts[strong]):
                cells = " ".join(f"{c:g}" for c in np.round(self.counts[strong][low], 3))
                lines.append(f"{int(strong)} {''.join(map(str, low))} {cells}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, name: str = "harmony prior") -> HarmonyPrior:
        """Read what :meth:`to_text` wrote; a malformed line raises AmtError naming it."""
        counts: dict[bool, dict[Voicing, np.ndarray]] = {True: {}, False: {}}
        digits = "".join(map(str, range(DOUBLINGS + 1)))
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.split()
            try:
                values = np.array(cells[2:], dtype=np.float64)
            except ValueError:
                values = np.zeros(0)
            if (len(cells) != 14 or cells[0] not in ("0", "1") or len(cells[1]) != 12
                    or not set(cells[1]) <= set(digits) or (values < 0).any()):
                raise AmtError(f"{name}: line {number} is not 'strong voicing c0 ... c11'")
            counts[cells[0] == "1"][tuple(int(d) for d in cells[1])] = values
        return cls(counts)


@functools.lru_cache(maxsize=1)
def shipped_prior() -> HarmonyPrior:
    """The prior counted from the training chorales (``PRIOR_FILE``), read once."""
    if not PRIOR_FILE.is_file():
        raise AmtError(f"{PRIOR_FILE}: the harmony prior's counts are missing (build them with "
                       "`python -m amt.training.harmonyprior CHORALE_DIR`)")
    return HarmonyPrior.from_text(PRIOR_FILE.read_text(), str(PRIOR_FILE))

