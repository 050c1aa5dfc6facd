"""What a musician waits for: loading the built-in model, and `accompany` writing a chorale's lower voices.

Times, in one process: loading the packaged default model, then `amt.sampling.accompany` on the held-out demo
chorale (BWV 388, soprano kept as controls, alto/tenor/bass written) clipped to ``--seconds`` of music, for
``--repeat`` seeds (interleaved), sampled four ways: freely (the default options, top-p 0.95); freely without
the key, chord and register weights and the file's grid and density (their cost); with the grid and density
but without the three weights (the weights' own cost); and as chorale voices (the settings of ``amt eval
--harmonize``, ``harmony.SAMPLING``: monophonic legato voices on a sixteenth grid, no parallel fifths or
octaves). Prints a table; ``--record`` replaces the "Accompany" section of bench/RESULTS.md.

    python bench/accompany.py --seconds 20 --repeat 3 --record
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amt.cli import default_threads
from amt.models import DEFAULT_MODEL, load_model
from amt.sampling import SamplingOptions, accompany
from amt.tokenization import ops
from amt.tokenization.midi import MidiTokens, read_midi
from amt.tokenization.notes import onset_ticks
from amt.tokenization.vocab import TIME_RESOLUTION
from amt.training import harmony

from results import record_section

CHORALE = Path(__file__).resolve().parent.parent / "demo" / "examples" / "bach_chorale_bwv388_held_out.mid"
SOPRANO, LOWER_VOICES = 64, [65, 66, 67]


def clip(midi: MidiTokens, seconds: float) -> MidiTokens:
    """The notes of ``midi`` that start in its first ``seconds``."""
    keep = onset_ticks(midi.events) < round(seconds * TIME_RESOLUTION)
    return MidiTokens(midi.events[keep], midi.velocities[keep], midi.tracks[keep], midi.meta, midi.source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=default_threads(), help="default: amt's own default")
    parser.add_argument("--record", action="store_true", help="write the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    model = load_model(args.model)
    load_seconds = time.perf_counter() - start
    piece = clip(read_midi(CHORALE), args.seconds)
    soprano = int(np.sum(ops.instrument_of(piece.events[:, 2]) == SOPRANO))

    def free(seed: int) -> MidiTokens:
        options = SamplingOptions(seed=seed, instruments=LOWER_VOICES)
        return accompany(model, piece, keep_instruments=[SOPRANO], options=options)[0].midi

    def free_unweighted(seed: int) -> MidiTokens:
        # The cost of issue 18's defaults, measured in the same run: free sampling without them.
        options = SamplingOptions(seed=seed, instruments=LOWER_VOICES, key_weight=1.0, chord_weight=1.0,
                                  harmony_prior=0.0, register_weight=1.0, bass_weight=1.0, file_grid=False,
                                  file_density=False)
        return accompany(model, piece, keep_instruments=[SOPRANO], options=options)[0].midi

    def free_without_prior(seed: int) -> MidiTokens:
        # The harmony prior's own cost: the defaults with only the prior off.
        options = SamplingOptions(seed=seed, instruments=LOWER_VOICES, harmony_prior=0.0)
        return accompany(model, piece, keep_instruments=[SOPRANO], options=options)[0].midi

    def free_grid_density_only(seed: int) -> MidiTokens:
        # Without the key, chord, prior, register and bass weights: the file's grid and density stay on.
        options = SamplingOptions(seed=seed, instruments=LOWER_VOICES, key_weight=1.0, chord_weight=1.0,
                                  harmony_prior=0.0, register_weight=1.0, bass_weight=1.0)
        return accompany(model, piece, keep_instruments=[SOPRANO], options=options)[0].midi

    def chorale_voices(seed: int) -> MidiTokens:
        return harmony.harmonize(model, [piece], samples=1, seed=seed)[0][0]

    rows = ["| what | value |", "|---|---:|",
            f"| load the model ({Path(args.model).name}) | {load_seconds:.2f} s |"]
    tasks = {"free sampling": free, "free sampling, harmony prior off": free_without_prior,
             "free sampling, musical weights off": free_unweighted,
             "free sampling, file grid and density only": free_grid_density_only,
             "chorale voices": chorale_voices}
    times: dict[str, list[float]] = {name: [] for name in tasks}
    notes: dict[str, list[int]] = {name: [] for name in tasks}
    for seed in range(args.repeat):
        # Interleaved, one seed of each task after the other: the machine's load drifts over a run, and
        # the rows are compared with each other.
        for name, task in tasks.items():
            start = time.perf_counter()
            result = task(seed)
            times[name].append(time.perf_counter() - start)
            notes[name].append(len(result.events) - soprano)
    for name in tasks:
        rows += [
            f"| accompany, {name}: {args.seconds:g} s of music ({soprano} soprano notes kept), median of "
            f"{args.repeat} | {statistics.median(times[name]):.2f} s |",
            f"| accompany, {name}: fastest / slowest | {min(times[name]):.2f} / {max(times[name]):.2f} s |",
            f"| accompany, {name}: new notes per run (median) | {statistics.median(notes[name]):g} |",
            f"| accompany, {name}: new notes per second of wall time | "
            f"{sum(notes[name]) / sum(times[name]):.0f} |",
        ]
    table = "\n".join(rows)
    print(table)
    if args.record:
        machine = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{args.threads} torch threads, torch {torch.__version__}, load average "
                   f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}. "
                   f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.")
        model = "" if args.model == str(DEFAULT_MODEL) else f"--model {args.model} "
        command = (f"Command: `python bench/accompany.py {model}--seconds {args.seconds:g} "
                   f"--repeat {args.repeat} --threads {args.threads} --record`.")
        record_section("## Accompany", f"{machine}\n{command}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
