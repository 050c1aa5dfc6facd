"""The Mutopia conversion: licences, entry files, programs from staff names, the reserved split, failures.

The compile tests write a tiny repository of LilyPond files (not the Mutopia Project's) and need the
``lilypond`` program; they are skipped without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import symusic

from amt.errors import AmtError
from amt.tokenization.corpus import read_split_file
from amt.training.mutopia_corpus import (
    RESERVED_FILE,
    Piece,
    convert_mutopia,
    entry_file,
    find_pieces,
    group_pieces,
    header_instruments,
    licence_of,
    midi_parts,
    normalise_title,
    read_reserved,
    work_of,
)

needs_lilypond = pytest.mark.skipif(shutil.which("lilypond") is None, reason="lilypond is not installed")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _piece(src: Path, folder: str, *, title: str, composer: str = "TestC", licence: str = "Public Domain",
           instrument: str = "Piano", staves: str | None = None, midi: bool = True, version: str = "2.24.0"
           ) -> None:
    """A one-file piece in Mutopia's layout: ``src/folder/<last part>.ly``."""
    staves = staves or r'\new Staff = "melody" { \relative c'' { c4 d e f g1 } }'
    midi_block = r"\midi { }" if midi else ""
    _write(src / folder / f"{folder.rsplit('/', 1)[-1]}.ly", f"""\\version "{version}"
\\header {{
  title = "{title}"
  mutopiatitle = "{title}"
  mutopiacomposer = "{composer}"
  mutopiainstrument = "{instrument}"
  license = "{licence}"
  maintainer = "A. Typesetter"
  footer = "Mutopia-2026/01/01-1"
}}
\\score {{
  << {staves} >>
  \\layout {{ }}
  {midi_block}
}}
""")


# ---------------------------------------------------------------------------------------------------------
# Without LilyPond


def test_licences_from_the_field_and_from_old_taglines():
    assert licence_of({"license": "Public Domain"}, []) == ("public-domain", "Public Domain")
    assert licence_of({"license": "Creative Commons Attribution 4.0"}, []) == ("cc-by", "CC BY 4.0")
    assert licence_of({"license": "Creative Commons Attribution-ShareAlike 3.0 (Unported)"}, []) == (
        "cc-by-sa", "CC BY-SA 3.0")
    tagline = r'\with-url #"http://creativecommons.org/licenses/by-sa/2.5" http://creativecommons.org/...'
    assert licence_of({}, [tagline]) == ("cc-by-sa", "CC BY-SA 2.5")
    assert licence_of({}, ['"http://creativecommons.org/licenses/by/3.0"']) == ("cc-by", "CC BY 3.0")
    assert licence_of({}, ["This sheet music has been placed in the public domain by the typesetter"]) == (
        "public-domain", "Public Domain")
    assert licence_of({}, ["no statement at all"]) is None


def test_entry_file_of_a_multi_file_piece(tmp_path):
    lys = tmp_path / "solace" / "solace-lys"
    _write(lys / "header.ly", 'title = "Solace"')
    _write(lys / "partOne.ly", "partOne = { c'4 }")
    _write(lys / "violin-part.ly", '\\include "partOne.ly"\n\\score { \\partOne \\layout { } }')
    _write(lys / "joplin_solace.ly", '\\include "header.ly"\n\\include "partOne.ly"\n'
                                     '\\score { \\partOne \\midi { } }')
    assert entry_file(tmp_path / "solace") == lys / "joplin_solace.ly"  # the one that makes MIDI
    _write(tmp_path / "one" / "one.ly", "\\score { c'4 }")
    assert entry_file(tmp_path / "one") == tmp_path / "one" / "one.ly"
    with pytest.raises(AmtError, match="ftp"):
        find_pieces(tmp_path)


def test_programs_from_staff_names():
    score = symusic.Score(384)
    for name, program, pitch in (("violinoI:", 0, 76), ("violoncello:", 0, 48), ("upper:", 0, 72),
                                 ("lower:", 0, 48), ("chant:", 22, 70), ("chant:", 71, 70)):
        track = symusic.Track(name=name, program=program)
        track.notes.append(symusic.Note(0, 384, pitch, 80))
        score.tracks.append(track)
    parts, _, _ = midi_parts(score.dumps_midi(), "Voice, Violin, Cello and Piano")
    by_name = {p.name: p for p in parts}
    assert by_name["violinoI"].program == 40 and by_name["violoncello"].program == 42
    # The two piano staves are one piano; the voice (doubled on two MIDI instruments) is one soprano part.
    assert by_name["upper"].program == 0 and len(by_name["upper"].notes) == 2 and "lower" not in by_name
    assert by_name["chant"].role == "soprano" and by_name["chant"].program == 64
    assert len(by_name["chant"].notes) == 1
    # An unnamed staff takes the instrument of a one-instrument header; two guitars get distinct programs.
    guitars = symusic.Score(384)
    for name in ("a:", "b:"):
        track = symusic.Track(name=name, program=0)
        track.notes.append(symusic.Note(0, 384, 60, 80))
        guitars.tracks.append(track)
    assert [p.program for p in midi_parts(guitars.dumps_midi(), "Guitar")[0]] == [24, 25]
    assert header_instruments("Guitar").single == 24 and not header_instruments("Guitar").vocal
    song = header_instruments("Voice and Organ")
    assert song.vocal and song.single is None and song.keyboard == 19
    assert not header_instruments("String Ensemble: Violins, Violas, Cello, Double Bass").vocal
    assert header_instruments("Choir (SATB)").vocal
    # In a song, a melody staff is the singer and the hands are the keyboard; names are split into words.
    song_score = symusic.Score(384)
    for name, pitch in (("melStaff:", 72), ("rightHand:", 67), ("leftHand:", 48), ("alto_one:", 62)):
        track = symusic.Track(name=name, program=0)
        track.notes.append(symusic.Note(0, 384, pitch, 80))
        song_score.tracks.append(track)
    parts = midi_parts(song_score.dumps_midi(), "Voice and Piano")[0]
    assert [(p.name, p.role, p.program) for p in parts] == [
        ("melStaff", "soprano", 64), ("rightHand", "instrument", 0), ("alto_one", "alto", 65)]


def _p(path: str, title: str, composer: str = "TestC") -> Piece:
    return Piece(path, "x.ly", {"mutopiatitle": title, "mutopiacomposer": composer}, ("public-domain", "PD"))


def test_groups_by_work_and_by_tune():
    assert normalise_title("Heidenröslein (arr. for guitar)") == "heidenroslein"
    assert work_of("ftp/SorF/O35/sorf_op35_no9") == "ftp/SorF/O35" and work_of("ftp/JoplinS/maple") == (
        "ftp/JoplinS/maple")
    pieces = [_p("ftp/Traditional/Greensleeves", "Greensleeves", "Traditional"),
              _p("ftp/Someone/greensleeves_guitar", "Greensleeves (guitar)", "Someone"),
              _p("ftp/SorF/O35/no1", "Etude No. 1", "SorF"), _p("ftp/SorF/O35/no2", "Etude No. 2", "SorF"),
              _p("ftp/SorF/menuet", "Menuet", "SorF"), _p("ftp/BachJS/menuet", "Menuet", "BachJS")]
    groups = group_pieces(pieces)
    assert groups["ftp/Traditional/Greensleeves"] == groups["ftp/Someone/greensleeves_guitar"]
    assert groups["ftp/SorF/O35/no1"] == groups["ftp/SorF/O35/no2"]  # one work
    assert groups["ftp/SorF/menuet"] != groups["ftp/BachJS/menuet"]  # a generic title links nothing
    assert group_pieces(list(reversed(pieces))) == groups  # independent of order


def test_reserved_list_is_packaged_and_collections_name_their_pieces(tmp_path):
    text = RESERVED_FILE.read_text()
    assert "ftp/Traditional/Greensleeves" in text and "collections/blakeop2" in text
    pieces = ["ftp/BlakeB/Op2/no1", "ftp/BlakeB/Op2/no2", "ftp/Other/x"]
    _write(tmp_path / "collections" / "book" / "build.sh", 'lilypond -I"../../ftp/BlakeB/Op2/no1/no1-lys" '
                                                           '-I"../../ftp/BlakeB/Op2/no2/no2-lys" book.ly')
    _write(tmp_path / "reserved.txt", "# comment\nftp/Other/x\ncollections/book\nftp/Gone/y\n")
    reserved, missing = read_reserved(tmp_path / "reserved.txt", tmp_path, pieces)
    assert reserved == set(pieces) and missing == ["ftp/Gone/y"]


# ---------------------------------------------------------------------------------------------------------
# Compiling a tiny repository


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("mutopia")
    _piece(src, "ftp/Traditional/Greensleeves", title="Greensleeves", composer="Traditional")
    _piece(src, "ftp/ArrangerA/greensleeves_guitar", title="Greensleeves", composer="ArrangerA",
           licence="Creative Commons Attribution 4.0", instrument="Guitar")
    # Two movements of one work: an old file (convert-ly, the unfold patch) and a four-staff score.
    _piece(src, "ftp/TestC/O7/no1", title="Sonatina No. 1", version="2.10.0",
           staves=r"""\new Staff = "melody"
                      \applyMusic #unfold-repeats { \repeat volta 2 { c'4 d' e' f' } }""")
    _piece(src, "ftp/TestC/O7/no2", title="Sonatina No. 2", instrument="Voice, Violin, Cello and Piano",
           staves=r"""\new Staff = "voice" { c''1 } \new Staff = "violin" { g'1 }
                  \new Staff = "cello" { \clef bass c1 }
                  \new PianoStaff << \new Staff = "upper" { e'1 }
                                     \new Staff = "lower" { \clef bass c1 } >>""")
    # A reserved piece left out by the licence filter still keeps its other arrangements out of training.
    _piece(src, "ftp/SharerS/sa", title="Scarborough Fair",
           licence="Creative Commons Attribution-ShareAlike 4.0")
    _piece(src, "ftp/TestC/fair", title="Scarborough Fair")
    _piece(src, "ftp/TestC/broken", title="Broken", staves=r'\new Staff = "x" { c4 \nosuchcommand d4 }')
    _piece(src, "ftp/TestC/silent", title="No MIDI", midi=False)
    _write(src / "reserved.txt", "ftp/Traditional/Greensleeves\nftp/SharerS/sa\n")
    return src


@pytest.fixture(scope="module")
def converted(repository, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out")
    report = convert_mutopia(repository, out, workers=2, timeout=120,
                             reserved_file=repository / "reserved.txt", log=None)
    return out, report


@needs_lilypond
def test_compiles_with_licence_filter_and_failure_reasons(converted):
    out, report = converted
    assert report["pieces"] == 8
    assert report["skipped"] == {"licence not chosen: cc-by-sa": 1}
    assert report["failed"] == {"lilypond error": 1, "no \\midi block": 1}
    assert {f["piece"] for f in report["failures"]} == {"ftp/TestC/broken", "ftp/TestC/silent"}
    manifest = json.loads((out / "manifest.json").read_text())
    records = {r["piece"]: r for r in manifest["files"]}
    assert len(records) == report["compiled"] == 5 and "ftp/SharerS/sa" not in records
    assert records["ftp/TestC/O7/no1"]["notes"] == 8  # convert-ly and the unfold patch: the repeat is played
    parts = records["ftp/TestC/O7/no2"]["parts"]
    assert [(p["name"], p["role"], p["program"]) for p in parts] == [
        ("voice", "soprano", 64), ("violin", "instrument", 40), ("cello", "instrument", 42),
        ("upper", "instrument", 0)]  # the lower piano staff is merged into the piano
    guitar = records["ftp/ArrangerA/greensleeves_guitar"]
    assert guitar["licence"] == "CC BY 4.0" and guitar["parts"][0]["program"] == 24
    assert guitar["typesetter"] == "A. Typesetter" and guitar["mutopia_id"] == "Mutopia-2026/01/01-1"
    written = symusic.Score(str(out / guitar["path"]))
    assert [t.program for t in written.tracks] == [24]


@needs_lilypond
def test_reserved_tunes_and_works_stay_together(converted):
    out, _ = converted
    records = {r["piece"]: r for r in json.loads((out / "manifest.json").read_text())["files"]}
    assert records["ftp/Traditional/Greensleeves"]["split"] == "test"
    # Another arrangement of the reserved tune, in another composer's folder, is test too.
    assert records["ftp/ArrangerA/greensleeves_guitar"]["split"] == "test"
    assert records["ftp/TestC/fair"]["split"] == "test"
    assert records["ftp/TestC/O7/no1"]["split"] == records["ftp/TestC/O7/no2"]["split"] != "test"
    rest = {r["split"] for p, r in records.items() if "reen" not in p and "fair" not in p}
    assert rest <= {"train", "valid"}
    splits = read_split_file(out / "split.json")
    assert splits[(out / records["ftp/Traditional/Greensleeves"]["path"]).resolve()] == "test"


@needs_lilypond
def test_output_is_deterministic_and_share_alike_only_when_asked(repository, converted, tmp_path):
    out, _ = converted
    again = tmp_path / "again"
    convert_mutopia(repository, again, workers=1, timeout=120, reserved_file=repository / "reserved.txt",
                    log=None)
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*")) if p.is_file()}
    assert first == second
    shared = tmp_path / "sa"
    report = convert_mutopia(repository, shared, licences=["public-domain", "cc-by", "cc-by-sa"],
                             composers=["SharerS"], reserved_file=repository / "reserved.txt", log=None)
    assert report["compiled"] == 1 and report["skipped"] == {}
    sa_file = shared / json.loads((shared / "manifest.json").read_text())["files"][0]["path"]
    assert sa_file.is_file()
    # Converting again without CC-BY-SA removes the file the earlier run wrote, so prepare cannot see it.
    report = convert_mutopia(repository, shared, composers=["SharerS"],
                             reserved_file=repository / "reserved.txt", log=None)
    assert report["compiled"] == 0 and not sa_file.exists()
    slow = convert_mutopia(repository, tmp_path / "slow", timeout=1e-6, composers=["Traditional"],
                           reserved_file=repository / "reserved.txt", log=None)
    assert slow["failed"] == {"timeout": 1} and slow["compiled"] == 0
    with pytest.raises(AmtError, match="unknown licence"):
        convert_mutopia(repository, shared, licences=["cc-by-nc"], log=None)
