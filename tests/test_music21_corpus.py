"""The music21 corpus conversion: distinct programs per part, pickups, the split by work and melody."""

from __future__ import annotations

import json
import random

import pytest

from amt.errors import AmtError
from amt.tokenization.corpus import read_split_file
from amt.tokenization.midi import read_midi
from amt.training.music21_corpus import (
    SOURCES,
    assign_splits,
    beat_melody,
    convert_file,
    convert_music21_corpus,
    corpus_root,
    edit_distance,
    melody_key,
    merge_tune_groups,
    same_tune,
    split_files,
    work_id,
)
from amt.training.parts import assign_programs, program_from_name, role_from_name, voice_from_name


def test_voice_and_instrument_names():
    names = ("Soprano", "Cantus", "Altus", "Tenor 2", "Bassus", "Quinto")
    assert [voice_from_name(n) for n in names] == ["soprano", "soprano", "alto", "tenor", "bass", None]
    assert program_from_name("Basso continuo") == 19  # an instrument, not the bass voice
    assert program_from_name("Violin II") == 40 and program_from_name("Violoncello") == 42
    assert program_from_name("Viola") == 41 and program_from_name("Horn 1") == 60
    assert program_from_name("Soprano") is None
    # Vocal music: a voice named first is that voice whatever doubles it; continuo is an instrument.
    assert role_from_name("Soprano\rOboe 1,2\rViolin1", vocal=True) == ("soprano", 64)
    assert role_from_name("Bass\rContinuo", vocal=True) == ("bass", 67)
    assert role_from_name("Basso continuo", vocal=True) == ("instrument", 19)
    assert role_from_name("Horn 1", vocal=True) == ("instrument", 60)
    assert role_from_name("Recorder 1", vocal=True) == ("instrument", 74)
    assert role_from_name("Cornet 2", vocal=True) == ("instrument", 56)
    assert role_from_name("Quinto", vocal=True) is None
    assert role_from_name("Alto", vocal=False) is None  # instrumental music: no voices


def test_programs_are_distinct_and_musical():
    satb = [("soprano", 64), ("alto", 65), ("tenor", 66), ("bass", 67)]
    assert assign_programs(satb) == [64, 65, 66, 67]
    # A chorale with a horn doubling a voice: the horn keeps its program, the voices theirs.
    assert assign_programs([("instrument", 60), *satb]) == [60, 64, 65, 66, 67]
    # Palestrina's divided voices take the matching brass instrument.
    divided = [("soprano", 64), ("soprano", 64), ("alto", 65), ("tenor", 66), ("tenor", 66), ("bass", 67)]
    assert assign_programs(divided) == [64, 56, 65, 66, 57, 67]
    # A quartet: the second violin takes the fiddle, never the viola's program.
    quartet = [("instrument", 40), ("instrument", 40), ("instrument", 41), ("instrument", 42)]
    assert assign_programs(quartet) == [40, 110, 41, 42]
    six = [("soprano", 64), ("alto", 65), ("tenor", 66), ("tenor", 66), ("baritone", 57), ("bass", 67)]
    assert len(set(assign_programs(six))) == 6
    # A part classed as a voice by register alone yields the voice's program to the part named for it:
    # Canto, Quinto (an alto by register), Alto, Tenor, Basso.
    madrigal = [("soprano", 64), ("alto", 65), ("alto", 65), ("tenor", 66), ("bass", 67)]
    assert assign_programs(madrigal, named=[True, False, True, True, True]) == [64, 60, 65, 66, 67]
    assert assign_programs(madrigal) == [64, 65, 60, 66, 67]  # by score order when nothing is named


def test_melody_key_is_transposition_invariant():
    tune = [67, 67, 69, 71, 72, 71, 69, 67]
    assert melody_key(tune) == melody_key([p - 5 for p in tune]) == "+0 +2 +2 +1 -1 -2 -2"
    assert melody_key(list(range(40)), 4) == "+1 +1 +1"


def _setting(tune: list[int], *, transpose: int = 0, ornament: int | None = None, pickup: bool = False
             ) -> list[int]:
    """The beat melody of a chorale singing ``tune`` one note a beat (480 ticks): transposed, with a passing
    note between beats ``ornament`` and the next, or a pickup beat before it."""
    onsets, pitches = [], []
    shift = 480 if pickup else 0
    if pickup:
        onsets.append(0)
        pitches.append(tune[0] + transpose - 5)
    for k, p in enumerate(tune):
        onsets.append(shift + 480 * k)
        pitches.append(p + transpose)
        if k == ornament:
            onsets.append(shift + 480 * k + 240)
            pitches.append(p + transpose + 1)
    return beat_melody(onsets, pitches, range(0, max(onsets) + 1, 480))


def test_settings_of_one_tune_match_through_ornaments_transposition_and_pickups():
    rng = random.Random(1)
    tune = [67 + rng.choice((-2, -1, 0, 1, 2)) * 2 for _ in range(24)]
    plain = _setting(tune)
    assert plain == _setting(tune, transpose=-3)
    assert _setting(tune, ornament=3) == plain  # a passing note between beats is not on a beat
    assert same_tune(plain, _setting(tune, pickup=True, transpose=2))
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 5]) == 2
    other = [67 + rng.choice((-3, -1, 0, 2, 4)) for _ in range(24)]
    assert not same_tune(plain, _setting(other))


def test_no_test_tune_is_near_a_training_tune():
    # 60 tunes, each set one to four times with ornaments, pickups and transpositions, under groups keyed by
    # exact notes (as the old interval key did): every setting its own group, so settings of one tune used to
    # land in different splits.
    rng = random.Random(7)
    records = []
    for t in range(60):
        tune = [60 + rng.randrange(12) for _ in range(24)]
        for s in range(rng.randrange(1, 5)):
            tune_of_setting = _setting(tune, transpose=rng.randrange(-4, 5), pickup=rng.random() < 0.3,
                                       ornament=rng.randrange(24) if rng.random() < 0.5 else None)
            records.append({"path": f"bach_chorales/{t}-{s}.mid", "source": "bach_chorales",
                            "group": f"melody:{t}-{s}", "tune": tune_of_setting})
    def leaks(splits):
        train = [r["tune"] for r in records if splits[r["path"]] == "train"]
        return sum(any(edit_distance(r["tune"], u) <= 4 for u in train)
                   for r in records if splits[r["path"]] == "test")

    assert leaks(assign_splits(records)) > 0  # the old grouping leaks
    merge_tune_groups(records)
    splits = assign_splits(records)
    assert leaks(splits) == 0
    assert list(splits.values()).count("test") >= 20


def test_work_ids_group_movements_and_sections():
    assert work_id(SOURCES["quartets"], "beethoven/opus18no1/movement2.mxl") == "beethoven/opus18no1"
    assert work_id(SOURCES["palestrina"], "palestrina/Sanctus_rpt_02_b.krn") == "palestrina/Sanctus_02"
    assert work_id(SOURCES["palestrina"], "palestrina/Credo_11.krn") == "palestrina/Credo_11"


def _records(n: int, groups: int, source: str = "bach_chorales") -> list[dict]:
    return [{"path": f"{source}/{i}.mid", "source": source, "group": f"melody:{i % groups}"}
            for i in range(n)]


def test_split_keeps_groups_together_and_is_deterministic():
    records = _records(407, 299) + _records(200, 200, "palestrina")
    splits = assign_splits(records)
    by_group: dict[str, set[str]] = {}
    for record in records:
        by_group.setdefault(record["group"], set()).add(splits[record["path"]])
    assert all(len(s) == 1 for s in by_group.values())
    chorales = [splits[r["path"]] for r in records if r["source"] == "bach_chorales"]
    assert chorales.count("test") >= 49 and chorales.count("valid") >= 20 and chorales.count("train") > 300
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert assign_splits(shuffled) == splits
    small = _records(60, 60)
    assert list(assign_splits(small).values()).count("test") == 40  # the chorale minimum


def test_convert_chorales(tmp_path):
    pytest.importorskip("music21")
    manifest = convert_music21_corpus(tmp_path, ["bach_chorales"], limit=3, log=None)
    files = manifest["files"]
    assert [f["path"] for f in files] == ["bach_chorales/bwv1.6.mid", "bach_chorales/bwv10.7.mid",
                                          "bach_chorales/bwv101.7.mid"]
    assert manifest["summary"]["bach_chorales"]["files"] == 3 and not manifest["failed"]
    for record in files:
        midi = read_midi(tmp_path / record["path"])
        programs = {p["name"]: p["program"] for p in record["parts"]}
        assert {programs[v] for v in ("Soprano", "Alto", "Tenor", "Bass")} == {64, 65, 66, 67}
        assert set(midi.instruments()) == set(programs.values())  # no empty part, one program each
        assert record["group"].startswith("melody:") and record["seconds"] == pytest.approx(
            midi.duration_seconds, abs=0.05)
    assert {p["name"]: p["program"] for p in files[0]["parts"]}["Horn 2"] == 60
    split = json.loads((tmp_path / "split.json").read_text())
    assert sorted(p for paths in split.values() for p in paths) == sorted(f["path"] for f in files)
    # The split file is the one `amt prepare --split-file` reads.
    assert read_split_file(tmp_path / "split.json") == {
        (tmp_path / f["path"]).resolve(): f["split"] for f in files}
    found = [split_files(tmp_path, split) for split in ("train", "valid", "test")]
    assert sorted(p for paths in found for p in paths) == [tmp_path / f["path"] for f in files]
    with pytest.raises(AmtError, match="unknown music21 source"):
        convert_music21_corpus(tmp_path, ["essen"])


def test_pickup_bar_is_delayed_to_its_beat(tmp_path):
    pytest.importorskip("music21")
    root = corpus_root()
    (record,) = convert_file(root / "bach" / "bwv66.6.mxl", SOURCES["bach_chorales"], tmp_path, root)
    midi = read_midi(tmp_path / record["path"])
    # BWV 66.6 opens with a one-beat pickup in 4/4: its first note sounds on beat 4 of an empty first bar.
    first_onset = midi.meta.seconds_to_ticks(float(midi.events[0, 0]) / 100)
    assert abs(first_onset - 3 * midi.meta.ticks_per_beat) <= 8  # 10 ms of rounding
    assert midi.meta.time_signatures[0][1:] == (4, 4)
