"""A learned harmony prior: the pitch class a voice takes on a beat, given the pitch classes sounding.

Counted from Bach chorales (the training split, by ``amt.training.harmonyprior``): at every beat where all
four voices sound, for each voice and each non-empty subset of the other three voices, one observation "with
these pitch classes sounding, the voice took this one". Counting the subsets, not only the full set of the
other three, makes the table answer the question a sampler asks, where only some voices are written yet
(``P(x | what sounds so far)``).

The table is transposition-invariant: a set and its pitch class are stored relative to the set's canonical
rotation (the rotation with the smallest 12-bit mask), so every key shares the counts and the prior knows
intervals (chord shapes and doublings), not keys; the key is the key weight's business. Strong beats (bar
starts) and other beats have separate tables. Every set's estimate is interpolated with its subsets'
(additive backoff, so an unseen set falls back on them):
``P(x | S) = (c(S, x) + BACKOFF * mean_s P(x | S - {s})) / (c(S) + BACKOFF)``, down to the empty set, where
every pitch class has 1/12.

The sampler's harmony-prior weight (``constraints.prior``) reads the shipped counts
(``harmony-prior.txt`` beside this module); counting and scoring them is ``amt.training.harmonyprior``'s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.sampling.chords import pitch_class_mask

PRIOR_FILE = Path(__file__).with_name("harmony-prior.txt")
"""The shipped counts (Bach chorales of the training split)."""
BACKOFF = 4.0
"""Pseudo-count given to the backed-off estimate: a set seen fewer times leans more on its subsets."""
_ROTATIONS = np.arange(12)


def rotate(mask: int, steps: int) -> int:
    """The mask of the set transposed up by ``steps`` semitones."""
    steps %= 12
    return ((mask << steps) | (mask >> (12 - steps))) & 0xFFF


def canonical(mask: int) -> tuple[int, list[int]]:
    """(the smallest rotation of ``mask``, every transposition ``k`` that gives it): a symmetric set (the
    empty set, a diminished seventh, an augmented triad) has several."""
    rotations = [rotate(mask, k) for k in range(12)]
    low = min(rotations)
    return low, [k for k in range(12) if rotations[k] == low]


class HarmonyPrior:
    """Counts ``[canonical set] -> [12]`` for strong beats and other beats, with the backoff estimate."""

    def __init__(self, counts: dict[bool, dict[int, np.ndarray]] | None = None):
        self.counts: dict[bool, dict[int, np.ndarray]] = counts or {True: {}, False: {}}
        self._cache: dict[tuple[bool, int], np.ndarray] = {}

    def add(self, sounding: Iterable[int], pitch_class: int, strong: bool, weight: float = 1.0) -> None:
        """Count one observation: with ``sounding`` pitch classes, a voice took ``pitch_class``."""
        low, shifts = canonical(pitch_class_mask(sounding))
        row = self.counts[strong].setdefault(low, np.zeros(12))
        for k in shifts:  # a symmetric set: spread the observation over its equivalent transpositions
            row[(pitch_class + k) % 12] += weight / len(shifts)
        self._cache.clear()

    def probabilities(self, sounding: Iterable[int], strong: bool) -> np.ndarray:
        """``P(x | sounding)`` for the 12 pitch classes x (sums to 1)."""
        mask = pitch_class_mask(sounding)
        low, shifts = canonical(mask)
        relative = self._relative(strong, low)
        return relative[(_ROTATIONS + shifts[0]) % 12]

    def _relative(self, strong: bool, low: int) -> np.ndarray:
        """The estimate for a canonical set, indexed by pitch class relative to that set."""
        key = (strong, low)
        if key in self._cache:
            return self._cache[key]
        if low == 0:
            estimate = np.full(12, 1 / 12)
        else:
            members = [pc for pc in range(12) if low >> pc & 1]
            backoff = np.mean([self.probabilities([m for m in members if m != drop], strong)
                               for drop in members], axis=0)
            row = self.counts[strong].get(low)
            total = 0.0 if row is None else float(row.sum())
            estimate = backoff if row is None else (row + BACKOFF * backoff) / (total + BACKOFF)
        self._cache[key] = estimate
        return estimate

    def observations(self, strong: bool) -> float:
        """Observations counted for strong beats (True) or other beats."""
        return float(sum(row.sum() for row in self.counts[strong].values()))

    def to_text(self, header: str = "") -> str:
        """The counts as text: comment lines, then ``strong mask c0 ... c11`` per set (whole numbers where
        they are whole)."""
        lines = [f"# {line}" for line in header.splitlines()]
        lines.append("# strong(1)/other beat(0), canonical 12-bit set mask, counts of the 12 pitch classes "
                     "relative to that set")
        for strong in (True, False):
            for low in sorted(self.counts[strong]):
                cells = " ".join(f"{c:g}" for c in np.round(self.counts[strong][low], 3))
                lines.append(f"{int(strong)} {low} {cells}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, name: str = "harmony prior") -> HarmonyPrior:
        """Read what :meth:`to_text` wrote; a malformed line raises AmtError naming it."""
        counts: dict[bool, dict[int, np.ndarray]] = {True: {}, False: {}}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.split()
            try:
                strong, low, values = cells[0] == "1", int(cells[1]), np.array(cells[2:], dtype=np.float64)
            except (ValueError, IndexError):
                raise AmtError(f"{name}: line {number} is not 'strong mask c0 ... c11'") from None
            if len(values) != 12 or cells[0] not in ("0", "1") or not 0 <= low < 4096 or (values < 0).any():
                raise AmtError(f"{name}: line {number} is not 'strong mask c0 ... c11'")
            counts[strong][low] = values
        return cls(counts)


@functools.lru_cache(maxsize=1)
def shipped_prior() -> HarmonyPrior:
    """The prior counted from the training chorales (``PRIOR_FILE``), read once."""
    if not PRIOR_FILE.is_file():
        raise AmtError(f"{PRIOR_FILE}: the harmony prior's counts are missing (build them with "
                       "`python -m amt.training.harmonyprior CHORALE_DIR`)")
    return HarmonyPrior.from_text(PRIOR_FILE.read_text(), str(PRIOR_FILE))


def prior_log_weights(sounding_pitch_classes: Iterable[int], strong: bool,
                      prior: HarmonyPrior | None = None) -> np.ndarray:
    """``[12]`` natural-log probabilities of each pitch class for a new note on a beat (a bar start when
    ``strong``) while ``sounding_pitch_classes`` sound; the shipped prior unless ``prior`` is given."""
    return np.log((prior or shipped_prior()).probabilities(sounding_pitch_classes, strong))
