"""Tokenization speed: events per second, one process, on tests/data/reference and synthetic MIDI.

    python bench/tokenization.py [--synthetic 300] [--repeat 3] [--record]

Rows of the table:
  end to end        ``read_midi(bytes)``: parse the MIDI bytes, then tokenize (the path ``amt prepare`` takes)
  parse stage       the part of ``read_midi`` that decodes track chunks into merged message arrays
  tokenize alone    the part of ``read_midi`` that turns parsed messages into events (tempo map, note pairing,
                    programs, rounding): ``amt.tokenization.midi`` parses bytes itself rather than starting
                    from a ``symusic.Score`` (see its docstring for why), so there is no public "tokenize a
                    parsed score" entry point; this row times its ``_meta`` and ``_notes`` stages from inside
                    the end-to-end run
  symusic parse     ``symusic.Score.from_midi`` alone, for scale (parsing only, no tokens)
  mido baseline     the original implementation's approach, written here compactly: iterate the merged
                    tracks with mido (message times in seconds), pair note-on/off per (channel, pitch) in
                    Python; run on a subset, it is ~100x slower
  prepare, N workers   ``prepare_corpus`` over the files on disk (hashing, tokenizing, writing the corpus)

Files are read into memory first, so disk speed is not measured (except by the prepare rows). Timings are
the best of ``--repeat`` runs, in CPU seconds of this process for the single-process rows (the machine this
was written on is shared, and wall time there mostly measures the other jobs) and in wall seconds for the
2-worker row. ``--record`` replaces the "Tokenization" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

import mido
import numpy as np
import symusic

from amt.tokenization import midi
from amt.tokenization.corpus import prepare_corpus
from amt.tokenization.midi import read_midi
from amt.tokenization.notes import EVENT_DURATIONS, EVENT_NOTES, EVENT_TIMES
from amt.tokenization.vocab import DRUMS, MAX_DUR, TIME_RESOLUTION

from results import record_section

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference"


def write_synthetic(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` deterministic multi-track files: 2-8 tracks, tempo changes, drums, 300-3,000 notes each."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        score = symusic.Score(480)
        for tick, qpm in zip(np.arange(0, 480 * 400, 480 * 64), rng.uniform(60, 180, 400), strict=False):
            score.tempos.append(symusic.Tempo(int(tick), qpm=float(qpm)))
        for t in range(int(rng.integers(2, 9))):
            is_drum = t == 0 and rng.random() < 0.5
            track = symusic.Track(name=f"track {t}", program=int(rng.integers(0, 128)), is_drum=is_drum)
            n = int(rng.integers(300, 3000)) // 4
            onsets = np.sort(rng.integers(0, 480 * 400, n))
            durations = rng.integers(10, 480 * 4, n)
            pitches = rng.integers(21, 109, n)
            for onset, duration, pitch in zip(onsets, durations, pitches, strict=True):
                track.notes.append(symusic.Note(int(onset), int(duration), int(pitch), 90))
            score.tracks.append(track)
        path = folder / f"synthetic_{k:04d}.mid"
        score.dump_midi(str(path))
        paths.append(path)
    return paths


def mido_events(data: bytes) -> np.ndarray:
    """Baseline tokenizer in the style of the original implementation: mido, one Python step per message."""
    programs = [0] * 16
    open_notes: dict[tuple[int, int], deque] = defaultdict(deque)
    notes = []  # (onset s, order, duration s, note)
    now = 0.0
    for order, message in enumerate(mido.MidiFile(file=io.BytesIO(data))):  # merged tracks, seconds
        now += message.time
        if message.type == "program_change":
            programs[message.channel] = message.program
        elif message.type == "note_on" and message.velocity > 0:
            instrument = DRUMS if message.channel == 9 else programs[message.channel]
            open_notes[message.channel, message.note].append((now, order, 128 * instrument + message.note))
        elif message.type in ("note_on", "note_off") and open_notes[message.channel, message.note]:
            onset, first, note = open_notes[message.channel, message.note].popleft()
            notes.append((onset, first, now - onset, note))
    for pending in open_notes.values():
        notes.extend((onset, first, 0.25, note) for onset, first, note in pending)
    notes.sort()
    return np.array(
        [
            (EVENT_TIMES.token(round(TIME_RESOLUTION * onset)),
             EVENT_DURATIONS.token(min(round(TIME_RESOLUTION * d), MAX_DUR - 1)), EVENT_NOTES.token(note))
            for onset, _, d, note in notes
        ],
        dtype=np.int64,
    ).reshape(-1, 3)


def best_time(run: Callable[[], int], repeat: int, clock: Callable[[], float] = time.process_time):
    """(best time in seconds, events) over ``repeat`` runs of ``run``, which returns its event count.

    Single-process rows use CPU time (``time.process_time``): on a shared machine, wall time mostly measures
    the other jobs. Rows with worker processes need wall time.
    """
    best, events = float("inf"), 0
    for _ in range(repeat):
        start = clock()
        events = run()
        best = min(best, clock() - start)
    return best, events


def stage_time(run: Callable[[], object], stages: tuple[str, ...], repeat: int) -> float:
    """Best total time spent in the ``amt.tokenization.midi`` functions named ``stages`` during ``run``."""
    spent = [0.0]

    def timed(function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - start

        return wrapper

    originals = {name: getattr(midi, name) for name in stages}
    best = float("inf")
    try:
        for name, function in originals.items():
            setattr(midi, name, timed(function))  # read_midi looks its stages up as module globals
        for _ in range(repeat):
            spent[0] = 0.0
            run()
            best = min(best, spent[0])
    finally:
        for name, function in originals.items():
            setattr(midi, name, function)
    return best


def peak_rss_mb(sources: list[Path], out: Path) -> float:
    """Peak resident memory, in MB, of a fresh Python process that prepares ``sources`` with one worker."""
    code = (
        "import resource, sys\n"
        "from amt.tokenization.corpus import prepare_corpus\n"
        "prepare_corpus(sys.argv[2:], sys.argv[1], workers=1, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"  # KiB on Linux
    )
    result = subprocess.run([sys.executable, "-c", code, str(out), *map(str, sources)], capture_output=True,
                            text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def machine() -> str:
    """The CPU model and core count, for the results file."""
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        pass
    versions = f"Python {platform.python_version()}, numpy {np.__version__}, symusic {symusic.__version__}"
    return f"{os.cpu_count()}-core CPU ({model}), {versions}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=300, help="synthetic files to generate (300)")
    parser.add_argument("--baseline-files", type=int, default=30, help="files for the mido baseline")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write the table to bench/RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "midi")
        folder.mkdir()
        paths = sorted(REFERENCE.glob("*.mid")) + write_synthetic(folder, args.synthetic)
        blobs = [path.read_bytes() for path in paths]
        baseline = blobs[: len(sorted(REFERENCE.glob("*.mid"))) + args.baseline_files]
        # Compare like with like: the baseline must produce the tokenizer's events.
        agree = sum(np.array_equal(mido_events(b), read_midi(b).events) for b in baseline)
        agreement = f"The mido baseline's events equal read_midi's on {agree} of {len(baseline)} files."
        print(agreement)
        rows = []

        def row(name: str, files: int, seconds: float, events: int, clock: str = "CPU") -> None:
            rows.append((name, files, events, seconds, clock))
            print(f"{name:<22} {files:>6} files {events:>11,} events {seconds:8.3f} s {clock:<4} "
                  f"{events / seconds:>13,.0f} events/s {files / seconds:>9,.1f} files/s", flush=True)

        seconds, events = best_time(lambda: sum(len(read_midi(b).events) for b in blobs), args.repeat)
        row("end to end", len(blobs), seconds, events)
        tokenize = stage_time(lambda: [read_midi(b) for b in blobs], ("_meta", "_notes"), args.repeat)
        row("parse stage", len(blobs), seconds - tokenize, events)
        row("tokenize alone", len(blobs), tokenize, events)
        row("symusic parse", len(blobs), best_time(lambda: len([symusic.Score.from_midi(b) for b in blobs]),
                                                   args.repeat)[0], events)
        row("mido baseline", len(baseline), *best_time(lambda: sum(len(mido_events(b)) for b in baseline), 1))
        for workers in (1, 2):
            out = Path(tmp, f"corpus-{workers}")

            def prepare(out: Path = out, workers: int = workers) -> int:
                return prepare_corpus([folder, REFERENCE], out, workers=workers, force=True,
                                      progress=False)["events"]

            row(f"prepare, {workers} worker{'s' if workers > 1 else ''}", len(paths),
                *best_time(prepare, args.repeat, time.process_time if workers == 1 else time.perf_counter),
                clock="CPU" if workers == 1 else "wall")
        # Memory must not grow with the corpus: peak RSS of a fresh process preparing N and 4N files.
        more = Path(tmp, "more")
        more.mkdir()
        write_synthetic(more, 3 * args.synthetic, seed=1)
        rss = [peak_rss_mb([folder], Path(tmp, "rss-1")), peak_rss_mb([folder, more], Path(tmp, "rss-4"))]

    table = ["| run | files | events | seconds | events/s | files/s |", "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {n} | {f} | {e:,} | {s:.3f} {c} | {e / s:,.0f} | {f / s:,.1f} |" for n, f, e, s, c in rows]
    per_core = next(f / s for n, f, _, s, _ in rows if n == "prepare, 1 worker")
    notes = [
        agreement,
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared; "
        "the 2-worker row competes with other jobs for its 2 cores).",
        f"Estimate for 200,000 files on 16 cores, from the 1-worker prepare rate ({per_core:,.0f} files/s) "
        f"and linear scaling: {200_000 / (16 * per_core) / 60:.1f} minutes for files of this size "
        f"(mean {rows[0][2] / rows[0][1]:,.0f} events per file).",
        f"Peak memory (RSS) of `prepare_corpus`, 1 worker, in a fresh process: {rss[0]:.0f} MB for "
        f"{args.synthetic} files, {rss[1]:.0f} MB for {4 * args.synthetic} files.",
    ]
    print("\n".join([*table, "", *notes]))
    if args.record:
        record("\n".join(table), notes, args)


def record(table: str, notes: list[str], args: argparse.Namespace) -> None:
    """Replace (or add) the "Tokenization" section of bench/RESULTS.md."""
    section = (
        f"Machine: {machine()}.\n"
        "Command: `python bench/tokenization.py "
        f"--synthetic {args.synthetic} --repeat {args.repeat} --record` "
        f"({time.strftime('%Y-%m-%d')}); single process except the prepare rows.\n\n{table}\n\n"
        + "\n".join(notes)
        + "\n"
    )
    record_section("## Tokenization", section)


if __name__ == "__main__":
    main()
