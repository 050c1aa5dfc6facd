"""Golden outputs: the exact notes the built-in model writes for 3 files x accompany / infill / continue x 2
seeds, through the command line. Recorded before the architecture redesign (issue 22) so that a refactor
that changes what a musician gets shows up here; a deliberate change of behaviour re-records the file with
``python tests/test_golden.py --record`` and says why in its commit.

The output is read back with symusic (not amt's reader) as one row per note: track name, program, channel
of the first note's track, onset tick, duration ticks, pitch, velocity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden" / "outputs.json"
FILES = {
    "chorale": REPO / "demo" / "examples" / "bach_chorale_bwv66.6.mid",
    "quartet": REPO / "demo" / "examples" / "mozart_quartet_k156_opening.mid",
    "trumpet": REPO / "tests" / "data" / "reference" / "synth_tempo_trumpet_drums.mid",
}
TASKS = {
    "accompany": ["accompany", "--keep-part", "1"],
    "infill": ["infill", "--start", "2", "--end", "5"],
    "continue": ["continue", "--seconds", "3"],
}
SEEDS = (0, 1)
CASES = [(f, t, s) for f in FILES for t in TASKS for s in SEEDS]


def _notes(path: Path) -> list[list]:
    import symusic

    score = symusic.Score(str(path))
    rows = []
    for track in score.tracks:
        for note in track.notes:
            rows.append([track.name, 128 if track.is_drum else track.program, note.time, note.duration,
                         note.pitch, note.velocity])
    return sorted(rows, key=lambda row: (row[2], row[4], row[1], row[0], row[3], row[5]))


def _run(file: str, task: str, seed: int, out: Path) -> list[list]:
    from amt.cli import main

    command, *flags = TASKS[task]
    status = main([command, str(FILES[file]), *flags, "--seed", str(seed), "--quiet", "--out", str(out)])
    assert status == 0
    return _notes(out)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize(("file", "task", "seed"), CASES)
def test_golden_output(golden: dict, file: str, task: str, seed: int, tmp_path: Path) -> None:
    key = f"{file}/{task}/{seed}"
    assert _run(file, task, seed, tmp_path / "out.mid") == golden[key], f"{key} differs from its golden notes"


def _record() -> None:
    import tempfile

    outputs = {}
    with tempfile.TemporaryDirectory() as folder:
        for file, task, seed in CASES:
            outputs[f"{file}/{task}/{seed}"] = _run(file, task, seed, Path(folder) / "out.mid")
            print(file, task, seed, len(outputs[f"{file}/{task}/{seed}"]), "notes", flush=True)
    GOLDEN.write_text(json.dumps(outputs, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        _record()
