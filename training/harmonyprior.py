"""A learned harmony prior: the pitch class a voice takes on a beat, given the pitch classes sounding.

Counted from Bach chorales (the training split): at every beat where all four voices sound, for each voice
and each non-empty subset of the other three voices, one observation "with these pitch classes sounding, the
voice took this one". Counting the subsets, not only the full set of the other three, makes the table answer
the question a sampler asks, where only some voices are written yet (``P(x | what sounds so far)``).

The table is transposition-invariant: a set and its pitch class are stored relative to the set's canonical
rotation (the rotation with the smallest 12-bit mask), so every key shares the counts and the prior knows
intervals (chord shapes and doublings), not keys; the key is the key weight's business. Strong beats (bar
starts) and other beats have separate tables. Every set's estimate is interpolated with its subsets'
(additive backoff, so an unseen set falls back on them):
``P(x | S) = (c(S, x) + BACKOFF * mean_s P(x | S - {s})) / (c(S) + BACKOFF)``, down to the empty set, where
every pitch class has 1/12.

The counts live in ``training/data/harmony-prior.txt`` (built by ``python -m amt.training.harmonyprior``; see
MODEL_CARD.md, "Why the model does not harmonise yet"). Torch-free: the sampler could call
:func:`prior_log_weights` per note, but it does not yet (see the diagnosis for the evidence).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.fileio import atomic_write_text

PRIOR_FILE = Path(__file__).parent / "data" / "harmony-prior.txt"
"""The shipped counts (Bach chorales of the training split)."""
BACKOFF = 4.0
"""Pseudo-count given to the backed-off estimate: a set seen fewer times leans more on its subsets."""
_ROTATIONS = np.arange(12)


def mask_of(pitch_classes: Iterable[int]) -> int:
    """The 12-bit mask of a set of pitch classes (any integers; taken mod 12)."""
    bits = 0
    for pc in pitch_classes:
        bits |= 1 << (int(pc) % 12)
    return bits


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
        low, shifts = canonical(mask_of(sounding))
        row = self.counts[strong].setdefault(low, np.zeros(12))
        for k in shifts:  # a symmetric set: spread the observation over its equivalent transpositions
            row[(pitch_class + k) % 12] += weight / len(shifts)
        self._cache.clear()

    def probabilities(self, sounding: Iterable[int], strong: bool) -> np.ndarray:
        """``P(x | sounding)`` for the 12 pitch classes x (sums to 1)."""
        mask = mask_of(sounding)
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
    ``strong``) while ``sounding_pitch_classes`` sound; the shipped prior unless ``prior`` is given. Added
    (scaled) to a model's log-probabilities, this is a sampling weight; it has not been wired in."""
    return np.log((prior or shipped_prior()).probabilities(sounding_pitch_classes, strong))


def count_chorales(chorales: Sequence, programs=None) -> HarmonyPrior:
    """Count a prior from chorales (``MidiTokens`` with the four voices on their programs): see the module
    docstring."""
    import itertools

    from amt.sampling.meter import beats
    from amt.training.harmony import VOICE_PROGRAMS, Voices, beat_pitches

    prior = HarmonyPrior()
    for midi in chorales:
        voices = Voices.from_midi(midi, programs or VOICE_PROGRAMS)
        ticks, strong = beats(midi.meta, max(voices.end(), 1))
        grid = beat_pitches(voices, ticks)
        for row, on_bar in zip(grid, strong, strict=True):
            if (row < 0).any():
                continue
            for v in range(4):
                others = [int(p) for i, p in enumerate(row) if i != v]
                for size in (1, 2, 3):
                    for subset in itertools.combinations(others, size):
                        prior.add(subset, int(row[v]), bool(on_bar))
    return prior


RULE_OUTSIDE = 0.05
"""The triad rule as a distribution: this share of the mass spread over the pitch classes that fit no chord
with what sounds (Bach's voices take such a pitch class on about 5% of beats), the rest over those that do."""


def rule_probabilities(sounding: Iterable[int]) -> np.ndarray:
    """``[12]``: the hand-written triad/seventh rule (``amt.sampling.chords``) as a distribution; uniform
    where it says nothing (no note sounds, or what sounds already fits no chord)."""
    from amt.sampling.chords import chord_tones

    tones = chord_tones(sounding)
    fitting = int(tones.sum())
    if fitting in (0, 12):
        return np.full(12, 1 / 12)
    return np.where(tones, (1 - RULE_OUTSIDE) / fitting, RULE_OUTSIDE / (12 - fitting))


def evaluate_prior(prior: HarmonyPrior, chorales: Sequence, programs=None) -> dict[str, dict[str, float]]:
    """How well each predictor gives an alto, tenor or bass pitch class from the other three voices' at the
    beats where all four sound: ``{predictor: {"bits", "top1", "top3", "beats"}}`` for the prior, the triad
    rule and uniform (bits: mean -log2 of the probability of Bach's pitch class; top-k: expected share in
    the k likeliest, ties broken at random)."""
    from amt.sampling.meter import beats
    from amt.training.harmony import VOICE_PROGRAMS, Voices, beat_pitches

    predictors = {"prior": prior.probabilities, "rule": lambda s, _: rule_probabilities(s),
                  "uniform": lambda s, _: np.full(12, 1 / 12)}
    scores: dict[str, list[tuple[float, float, float]]] = {name: [] for name in predictors}
    for midi in chorales:
        voices = Voices.from_midi(midi, programs or VOICE_PROGRAMS)
        ticks, strong = beats(midi.meta, max(voices.end(), 1))
        for row, on_bar in zip(beat_pitches(voices, ticks), strong, strict=True):
            if (row < 0).any():
                continue
            for v in (1, 2, 3):
                others, target = [int(p) for i, p in enumerate(row) if i != v], int(row[v]) % 12
                for name, predict in predictors.items():
                    q = predict(others, bool(on_bar))
                    # Ties (the rule's equal chord tones) are broken at random: the expected hit rate.
                    above, equal = int((q > q[target]).sum()), int((q == q[target]).sum())
                    hit = [min(max((k - above) / equal, 0.0), 1.0) for k in (1, 3)]
                    scores[name].append((-float(np.log2(q[target])), hit[0], hit[1]))
    return {name: {"bits": float(np.mean([s[0] for s in rows])), "top1": float(np.mean([s[1] for s in rows])),
                   "top3": float(np.mean([s[2] for s in rows])), "beats": len(rows)}
            for name, rows in scores.items() if rows}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: count the prior from the training chorales of a music21 conversion."""
    from amt.tokenization.midi import read_midi
    from amt.training.music21_corpus import split_files

    parser = argparse.ArgumentParser(prog="python -m amt.training.harmonyprior", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("chorales", help="folder made by `python -m amt.training.music21_corpus`")
    parser.add_argument("--split", default="train", choices=("train", "valid"),
                        help="the split counted (default train; never test)")
    parser.add_argument("--out", default=str(PRIOR_FILE), help=f"counts file (default {PRIOR_FILE})")
    parser.add_argument("--evaluate", choices=("valid",),
                        help="instead of counting: score the counts file against the rule on this split")
    args = parser.parse_args(argv)
    try:
        if args.evaluate:
            files = sorted(split_files(args.chorales, args.evaluate))
            prior = HarmonyPrior.from_text(Path(args.out).read_text(), args.out)
            print(f"alto/tenor/bass pitch class from the other three voices, {len(files)} {args.evaluate} "
                  "chorales")
            print("| predictor | bits | top-1 | top-3 | voice-beats |\n|---|---:|---:|---:|---:|")
            for name, row in evaluate_prior(prior, [read_midi(path) for path in files]).items():
                print(f"| {name} | {row['bits']:.3f} | {row['top1']:.3f} | {row['top3']:.3f} | "
                      f"{row['beats']} |")
            return 0
        files = sorted(split_files(args.chorales, args.split))
        if not files:
            raise SystemExit(f"{args.chorales}: no chorales in its {args.split} split")
        prior = count_chorales([read_midi(path) for path in files])
        header = (f"Harmony prior counted by `python -m amt.training.harmonyprior` from the {len(files)} "
                  f"{args.split}-split chorales of the music21 conversion\n(observations: strong beats "
                  f"{prior.observations(True):.0f}, other beats {prior.observations(False):.0f})")
        atomic_write_text(Path(args.out), prior.to_text(header))
        print(f"{args.out}: {len(prior.counts[True])} + {len(prior.counts[False])} sets from {len(files)} "
              f"chorales ({prior.observations(True):.0f} strong-beat and {prior.observations(False):.0f} "
              "other-beat observations)")
        return 0
    except AmtError as error:  # a bad folder or counts file: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
