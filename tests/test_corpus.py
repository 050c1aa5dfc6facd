"""Corpus preparation and reading: ``amt prepare`` over real, generated and broken MIDI files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import symusic

from amt.cli import main
from amt.errors import CorpusError
from amt.tokenization.corpus import (
    EVENTS_FILE,
    MANIFEST,
    PIECES_FILE,
    REPORT_FILE,
    SOURCES_FILE,
    SPLITS,
    Corpus,
    find_midi_files,
    format_summary,
    prepare_corpus,
    problem_kind,
    split_of,
)
from amt.tokenization.midi import read_midi
from amt.tokenization.vocab import DRUMS, DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_RESOLUTION


def write_score(path: Path, tracks: list[tuple[int, bool, list[tuple[float, float, int]]]]) -> None:
    """Write a MIDI file at 120 BPM: each track is (program, is_drum, [(onset s, duration s, pitch)])."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, qpm=120))
    for program, is_drum, notes in tracks:
        track = symusic.Track(name=f"program {program}", program=program, is_drum=is_drum)
        for onset, duration, pitch in notes:  # 960 MIDI ticks per second at 120 BPM
            track.notes.append(symusic.Note(round(onset * 960), round(duration * 960), pitch, 80))
        score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


@pytest.fixture(scope="module")
def reference_files(reference_dir: Path) -> list[Path]:
    return sorted(reference_dir.glob("*.mid"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, reference_files: list[Path]) -> Path:
    """A folder tree of good, duplicate, long and bad MIDI files (and one non-MIDI file to ignore)."""
    root = tmp_path_factory.mktemp("sources")
    for path in reference_files:
        (root / "reference").mkdir(exist_ok=True)
        shutil.copy(path, root / "reference" / path.name)
    rng = np.random.default_rng(0)
    for k, (name, program) in enumerate([("a/strings.MID", 48), ("a/b/piano.midi", 0), ("c/organ.mid", 19)]):
        onsets, durations = np.sort(rng.uniform(0, 30, 60)), rng.uniform(0.05, 12, 60)  # some over 10 s
        notes = list(zip(onsets.tolist(), durations.tolist(), rng.integers(30, 90, 60).tolist(), strict=True))
        drums = [(0.5 * i, 0.1, 42) for i in range(20 + k)]
        write_score(root / "generated" / name, [(program, False, notes), (0, True, drums)])
    # Twenty minutes long: absolute ticks far beyond uint16, every gap well under the 655 s limit.
    write_score(root / "generated" / "long.mid", [(73, False, [(60.0 * i, 1.0, 70) for i in range(21)])])
    write_score(root / "bad" / "silence.mid", [(73, False, [(0.0, 1.0, 70), (700.0, 1.0, 72)])])
    write_score(root / "bad" / "no_notes.mid", [])
    (root / "bad" / "empty.mid").write_bytes(b"")
    (root / "bad" / "nested" / "deeper").mkdir(parents=True)
    (root / "bad" / "nested" / "garbage.midi").write_bytes(rng.bytes(300))
    (root / "bad" / "nested" / "deeper" / "truncated.mid").write_bytes(reference_files[0].read_bytes()[:200])
    (root / "x").mkdir()
    shutil.copy(reference_files[0], root / "x" / "duplicate.mid")  # after reference/ in path order
    (root / "notes.txt").write_text("not a MIDI file: ignored by suffix")
    return root


@pytest.fixture(scope="module")
def corpus_dir(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpora") / "corpus"
    prepare_corpus([sources], out, workers=1, progress=False)
    return out


def folder_bytes(path: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(path.iterdir())}


def test_finds_midi_files_recursively_in_sorted_order(sources: Path) -> None:
    names = [name for _, name in find_midi_files([sources])]
    assert names == sorted(names)
    assert "generated/a/strings.MID" in names and "generated/a/b/piano.midi" in names
    assert "bad/nested/deeper/truncated.mid" in names and "notes.txt" not in names
    single = find_midi_files([sources / "x" / "duplicate.mid", sources])  # a file reached twice: listed once
    assert single[0][1] == "duplicate.mid" and len(single) == len(names)
    with pytest.raises(CorpusError, match="no such file"):
        find_midi_files([sources / "missing"])


def test_events_read_back_equal_the_tokenizer(
    sources: Path, corpus_dir: Path, reference_files: list[Path]
) -> None:
    corpus = Corpus(corpus_dir)
    names = [corpus.source(i) for i in range(len(corpus))]
    expected = {f"reference/{path.name}" for path in reference_files} | {
        "generated/a/strings.MID", "generated/a/b/piano.midi", "generated/c/organ.mid", "generated/long.mid"
    }
    assert set(names) == expected and names == sorted(names)
    for i, name in enumerate(names):
        midi = read_midi(sources / name)
        events = corpus.events(i)
        assert events.dtype == np.int64 and events.shape == midi.events.shape
        np.testing.assert_array_equal(events, midi.events)
        assert corpus.instruments(i) == tuple(midi.instruments())
        assert corpus.duration(i) == pytest.approx(midi.duration_seconds)
    assert corpus.event_counts().tolist() == [len(corpus.events(i)) for i in range(len(corpus))]
    long = corpus.events(names.index("generated/long.mid"))
    assert long[-1, 0] == 1200 * TIME_RESOLUTION  # 20 minutes: past what one uint16 can hold
    assert corpus.instruments(names.index("generated/long.mid")) == (73,)
    assert DRUMS in corpus.instruments(names.index("generated/c/organ.mid"))
    assert (long[:, 1] >= DUR_OFFSET).all() and (long[:, 2] == NOTE_OFFSET + MAX_PITCH * 73 + 70).all()
    with pytest.raises(IndexError):
        corpus.events(len(corpus))


def test_split_is_decided_by_content_hash(sources: Path, corpus_dir: Path) -> None:
    corpus = Corpus(corpus_dir)
    parts = [corpus.split(name) for name in SPLITS]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(corpus)))
    for i in range(len(corpus)):
        digest = hashlib.sha256((sources / corpus.source(i)).read_bytes()).digest()
        assert corpus.sha256(i) == digest.hex()
        assert i in corpus.split(split_of(digest))
    with pytest.raises(CorpusError, match="unknown split"):
        corpus.split("validation")
    # The rule itself: about 3% valid and 5% test over many hashes, and a pure function of the hash.
    rng = np.random.default_rng(1)
    drawn = [split_of(rng.bytes(32)) for _ in range(20_000)]
    assert 0.025 < drawn.count("valid") / len(drawn) < 0.035
    assert 0.045 < drawn.count("test") / len(drawn) < 0.055
    for bucket, split in [(0, "valid"), (2, "valid"), (3, "test"), (7, "test"), (8, "train"), (99, "train")]:
        assert split_of((100 * 12345 + bucket).to_bytes(8, "big") + bytes(24)) == split


def test_bad_and_duplicate_files_are_reported(corpus_dir: Path, reference_files: list[Path]) -> None:
    report = json.loads((corpus_dir / REPORT_FILE).read_text())
    kind_of = {name: kind for kind, files in report["skipped_files"].items() for name in files}
    problem_of = {name: text for files in report["skipped_files"].values() for name, text in files.items()}
    assert set(kind_of) == {
        "bad/empty.mid", "bad/nested/garbage.midi", "bad/nested/deeper/truncated.mid",
        "bad/no_notes.mid", "bad/silence.mid",
    }
    assert report["skipped"] == {kind: len(files) for kind, files in report["skipped_files"].items()}
    assert kind_of["bad/no_notes.mid"] == "no notes" and kind_of["bad/empty.mid"] == "empty file"
    # Problems are counted by kind (numbers blanked out); each file keeps its full message.
    assert kind_of["bad/silence.mid"] == "silence of N s between two onsets (a corpus stores gaps up to N s)"
    assert problem_of["bad/silence.mid"].startswith("silence of 700.0 s")
    truncated = "bad/nested/deeper/truncated.mid"
    assert "truncated" in kind_of[truncated] and kind_of[truncated] == problem_kind(problem_of[truncated])
    assert not any(c.isdigit() for c in kind_of[truncated])
    assert report["duplicates"] == {
        "count": 1, "files": [{"file": "x/duplicate.mid", "same_as": f"reference/{reference_files[0].name}"}]
    }
    manifest = json.loads((corpus_dir / MANIFEST).read_text())
    assert manifest["files"] == {"found": len(reference_files) + 10, "pieces": report["pieces"],
                                 "duplicates": 1, "skipped": 5, "skipped_by_reason": report["skipped"]}
    assert sum(split["pieces"] for split in manifest["splits"].values()) == len(Corpus(corpus_dir))
    assert "no notes" in format_summary(manifest)


def test_cli_is_deterministic_across_runs_and_worker_counts(
    sources: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-corpus"
    assert main(["prepare", str(sources), "--out", str(out), "--workers", "2"]) == 0
    assert "train" in capsys.readouterr().out
    assert folder_bytes(out) == folder_bytes(corpus_dir)  # workers 2 vs workers 1
    assert main(["prepare", str(sources), "--out", str(out), "--workers", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["prepare", str(sources), "--out", str(out), "--workers", "1", "--force"]) == 0
    assert folder_bytes(out) == folder_bytes(corpus_dir)  # a second run, replacing the first
    batched = tmp_path / "batched"  # chunks of 1 file: results arrive in several batches, still in order
    prepare_corpus([sources], batched, workers=2, chunksize=1, progress=False)
    assert folder_bytes(batched) == folder_bytes(corpus_dir)
    shutil.rmtree(batched)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cli-corpus"]  # no temporary folders left
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    assert main(["prepare", str(sources), "--out", str(precious), "--force"]) == 2
    assert "not a corpus" in capsys.readouterr().err
    assert (precious / "thesis.txt").read_text() == "keep me"
    assert main(["prepare", str(sources / "bad"), "--out", str(tmp_path / "none")]) == 2
    assert "none of the" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_oversized_and_unreadable_files_are_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference_files: list[Path]
) -> None:
    import amt.tokenization.midi

    src = tmp_path / "src"
    src.mkdir()
    by_size = sorted(reference_files, key=lambda path: path.stat().st_size)
    small, big = by_size[0], by_size[-1]
    shutil.copy(big, src / "big.mid")
    shutil.copy(small, src / "small.mid")
    (src / "dangling.mid").symlink_to(tmp_path / "missing.mid")
    limit = small.stat().st_size
    monkeypatch.setattr(amt.tokenization.midi, "MAX_FILE_BYTES", limit)  # workers=1: read in this process
    manifest = prepare_corpus([src], tmp_path / "corpus", workers=1, progress=False)
    assert manifest["files"]["skipped_by_reason"] == {
        "file is N bytes, over the N-byte limit": 1, "unreadable file (No such file or directory)": 1
    }
    assert [Corpus(tmp_path / "corpus").source(i) for i in range(manifest["pieces"])] == ["small.mid"]


def test_split_file_places_listed_files(sources: Path, tmp_path: Path, reference_files: list[Path]) -> None:
    split_file = tmp_path / "split.json"
    bach = f"reference/{reference_files[0].name}"
    placed = {"test": ["generated/long.mid", "generated/a/strings.MID"], "valid": [bach]}
    split_file.write_text(json.dumps({k: [str(sources / n) for n in v] for k, v in placed.items()}))
    out = tmp_path / "corpus"
    manifest = prepare_corpus([sources], out, workers=1, progress=False, split_files=[split_file])
    corpus = Corpus(out)
    names = [corpus.source(i) for i in range(len(corpus))]
    for i, name in enumerate(names):
        listed = [split for split, files in placed.items() if name in files]
        expected = listed[0] if listed else split_of(bytes.fromhex(corpus.sha256(i)))
        assert i in corpus.split(expected)
    assert manifest["split_rule"].endswith("3 pieces placed by split files instead")
    twice = json.dumps({"train": [bach], "test": [bach]})
    for bad, message in [
        ("[1, 2]", "expected an object"), ('{"validation": []}', "expected an object"),
        (twice, "in both train and test"), ('{"test": "a.mid"}', "list of paths"), ("{", ""),
    ]:
        split_file.write_text(bad)
        with pytest.raises(CorpusError, match=f"not a usable split file.*{message}"):
            prepare_corpus([sources], tmp_path / "other", progress=False, split_files=[split_file])
    assert not (tmp_path / "other").exists()


def test_split_files_of_two_sources_are_read_together(sources: Path, tmp_path: Path) -> None:
    """Each corpus builder writes its own split.json; `amt prepare A B --split-file A/.. --split-file B/..`
    places the files of both, and refuses a file that the two place in different splits."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({"test": [str(sources / "generated/long.mid")]}))
    second.write_text(json.dumps({"valid": [str(sources / "generated/a/strings.MID")]}))
    out = tmp_path / "corpus"
    prepare_corpus([sources], out, workers=1, progress=False, split_files=[first, second])
    corpus = Corpus(out)
    split_by_name = {corpus.source(i): split for split in SPLITS for i in corpus.split(split)}
    assert split_by_name["generated/long.mid"] == "test"
    assert split_by_name["generated/a/strings.MID"] == "valid"
    second.write_text(json.dumps({"train": [str(sources / "generated/long.mid")]}))
    with pytest.raises(CorpusError, match=r"long\.mid: in test by one split file, train by .*second\.json"):
        prepare_corpus([sources], tmp_path / "other", progress=False, split_files=[first, second])
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: shutil.rmtree(d), "no such corpus folder"),
        (lambda d: (d / MANIFEST).unlink(), "not a corpus folder"),
        (lambda d: (d / MANIFEST).write_text("{"), "not a corpus folder"),
        (lambda d: (d / MANIFEST).write_text(
            (d / MANIFEST).read_text().replace('"format_version": 1', '"format_version": 99')), "version 99"),
        (lambda d: (d / EVENTS_FILE).write_bytes((d / EVENTS_FILE).read_bytes()[:-6]), "events.u16 has"),
        (lambda d: (d / PIECES_FILE).unlink(), "pieces.bin"),
        (lambda d: (d / SOURCES_FILE).write_text('"one.mid"\n'), "index does not match"),
        (lambda d: (d / SOURCES_FILE).write_text("not json\n"), "sources.jsonl"),
    ],
)
def test_corrupt_corpus_raises_corpus_error(corpus_dir: Path, tmp_path: Path, damage, message: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(corpus_dir, broken)
    damage(broken)
    with pytest.raises(CorpusError, match=message):
        Corpus(broken)
