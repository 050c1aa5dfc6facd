"""Peak memory of reading one big MIDI file, each run in a fresh process.

    python bench/parse_memory.py [--notes 8300000] [--record]

Generates single-track files of dense notes (running status, 6 bytes a note: the most notes a byte can
hold, so the worst case per byte) and reads each with ``read_midi`` in a subprocess, reporting its peak
resident memory (``ru_maxrss``) and what ``read_midi`` answered. Rows: the big file with the default
``MAX_MESSAGES`` (refused), the same file with the limit raised (``AMT_MAX_MIDI_MESSAGES``: parsed, as every
file was before the limit), and a file just under the default limit. ``--record`` replaces the "Parse memory"
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amt.tokenization.midi import MAX_MESSAGES, MAX_MESSAGES_VARIABLE

from results import record_section

CHILD = """
import json, resource, sys, time
from amt.errors import MidiError
from amt.tokenization.midi import read_midi
start = time.perf_counter()
try:
    answer = f"{len(read_midi(sys.argv[1])):,} notes"
except MidiError as error:
    answer = "refused: " + str(error).split(": ", 1)[1]
print(json.dumps({"answer": answer, "seconds": time.perf_counter() - start,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def dense_file(path: Path, notes: int) -> int:
    """Write a type-0 file of ``notes`` notes, one tick apart (6 bytes a note); returns its size."""
    pitch = (36 + np.arange(notes) % 60).astype(np.uint8)
    body = np.stack([np.ones(notes, np.uint8), pitch, np.full(notes, 64, np.uint8), np.ones(notes, np.uint8),
                     pitch, np.zeros(notes, np.uint8)], 1)
    track = b"\x00\x90" + body.tobytes()[1:] + b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    data = header + (480).to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + track
    path.write_bytes(data)
    return len(data)


def measure(path: Path, limit: int | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if limit is not None:
        env[MAX_MESSAGES_VARIABLE] = str(limit)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=8_300_000, help="notes of the big file")
    parser.add_argument("--record", action="store_true", help="write the table to bench/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big, under = Path(tmp) / "big.mid", Path(tmp) / "under.mid"
        runs = [(big, args.notes, None, f"default limit ({MAX_MESSAGES:,} messages)"),
                (big, args.notes, 4 * args.notes, "limit raised"),
                (under, MAX_MESSAGES // 2 - 1, None, "default limit")]
        for path, notes, limit, label in runs:
            size = path.stat().st_size if path.exists() else dense_file(path, notes)
            result = measure(path, limit)
            rows.append((f"{notes:,}", f"{size / 2**20:.1f}", label, result["answer"],
                         f"{result['peak'] / 2**20:,.0f}", f"{result['peak'] / size:.1f}",
                         f"{result['seconds']:.1f}"))
    table = ["| notes | MiB | limit | read_midi | peak RSS (MiB) | peak / file size | seconds |",
             "|---:|---:|---|---|---:|---:|---:|", *("| " + " | ".join(row) + " |" for row in rows)]
    text = "\n".join(table)
    print(text)
    if args.record:
        machine = (f"Machine: {os.cpu_count()}-core CPU, Python {platform.python_version()}, "
                   f"numpy {np.__version__}. Command: `python bench/parse_memory.py --notes {args.notes} "
                   f"--record` ({time.strftime('%Y-%m-%d')}); each row in a fresh process (the interpreter "
                   "and numpy alone take about 35 MiB).")
        record_section("## Parse memory", f"{machine}\n\n{text}")


if __name__ == "__main__":
    main()
