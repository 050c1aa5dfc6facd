"""Counting and scoring the harmony prior (``amt.sampling.harmonyprior``) from Bach chorales.

``python -m amt.training.harmonyprior CHORALE_DIR`` counts the shipped table from the training chorales of a
music21 conversion; ``--evaluate valid`` scores it against the hand-written triad rule and uniform at
predicting Bach's alto, tenor and bass pitch classes (MODEL_CARD.md, "Why the model does not harmonise yet").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.fileio import atomic_write_text
from amt.sampling.harmonyprior import PRIOR_FILE, HarmonyPrior


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
