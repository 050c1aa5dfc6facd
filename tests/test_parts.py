"""Parts, not programs: listing a file's parts, keeping them by number, writing for the replaced parts, kept
notes back tick-exact, output that ends with the music, and the CLI's progress bar, on small real files
whose parts all share program 0 (tests/partfiles.py)."""

from __future__ import annotations

import io
import itertools
import json
import sys

import mido
import numpy as np
import pytest
import torch
from partfiles import BARS, BPM, song, track_notes

from amt.cli import main
from amt.errors import GenerationError
from amt.models import create_model, save_model, tiny_config
from amt.sampling import SamplingOptions, accompany, infill
from amt.tokenization import ops
from amt.tokenization.midi import events_to_midi_bytes, read_midi
from amt.tokenization.parts import find_parts, keep_mask, part_index
from amt.tokenization.vocab import DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET

from conftest import REFERENCE_DIR, REPO_ROOT

torch.set_num_threads(1)
MUSIC_SECONDS = BARS * 4 * 60 / BPM  # where the last note of the song ends (the bass ends a 16th earlier)
QUARTET = REPO_ROOT / "demo" / "examples" / "mozart_quartet_k156_opening.mid"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


def _tracks(data: bytes) -> list[list[tuple]]:
    """The notes of each track with notes, in track order."""
    return [notes for _, notes in track_notes(data)]


def _named(data: bytes) -> dict[str, list[tuple]]:
    """The notes of each track by name (tracks of one name together)."""
    out: dict[str, list[tuple]] = {}
    for name, notes in track_notes(data):
        out[name] = sorted(out.get(name, []) + notes)
    return out


def test_parts_of_a_file_whose_parts_share_program_0_and_have_no_names():
    midi = read_midi(song(), name="song.mid")
    parts = find_parts(midi)
    assert [(p.number, p.name, p.channel, p.program, p.role) for p in parts] == [
        (1, "", 0, 0, "melody"), (2, "", 1, 0, "chords"), (3, "", 2, 0, "bass")]
    assert [p.notes for p in parts] == [8 * BARS, 6 * BARS, BARS]
    assert (parts[0].low, parts[0].high, parts[2].low, parts[2].high) == (67, 79, 38, 45)
    assert parts[0].start == 0.0 and abs(parts[0].end - MUSIC_SECONDS) < 0.01
    assert np.array_equal(np.bincount(part_index(midi)), [p.notes for p in parts])


def test_duplicate_track_names_are_told_apart_by_number():
    midi = read_midi(song(names=("Piano", "Piano", None)), name="song.mid")
    assert [p.label for p in find_parts(midi)] == [
        "1 Piano (Acoustic Grand Piano)", "2 Piano (Acoustic Grand Piano)", "3 Acoustic Grand Piano"]
    assert keep_mask(midi, parts=[2]).sum() == 6 * BARS
    assert keep_mask(midi, tracks=[" piano"]).sum() == 14 * BARS  # a name picks every track of that name
    assert keep_mask(midi, instruments=[0]).all()
    with pytest.raises(GenerationError) as error:
        keep_mask(midi, parts=[4])
    message = str(error.value)
    assert "\n" not in message and message.startswith("no part 4 in song.mid; its parts are 1 Piano")
    assert message.endswith("3 Acoustic Grand Piano")
    with pytest.raises(GenerationError, match="not several"):
        keep_mask(midi, parts=[1], tracks=["Piano"])


def test_amt_info_prints_one_line_per_part_and_json(tmp_path, capsys):
    path = tmp_path / "song.mid"
    path.write_bytes(song(names=("Voice", None, "Voice")))
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: 3 parts, {15 * BARS} notes, {MUSIC_SECONDS:.1f} s"
    assert lines[2].split() == ["1", "Voice", "1", "0", "Acoustic", "Grand", "Piano", str(8 * BARS), "67-79",
                                f"0.0-{MUSIC_SECONDS:.1f}", "melody"]
    assert lines[3].split()[:3] == ["2", "-", "2"] and lines[4].split()[-1] == "bass"
    assert main(["info", str(path), "--json"]) == 0
    parts = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in parts] == ["Voice", "", "Voice"]
    assert parts[1]["instrument"] == "Acoustic Grand Piano" and parts[1]["role"] == "chords"


@pytest.mark.parametrize("content", [b"garbage", b"MThd\x00\x00\x00\x06\x00\x01", b""])
def test_amt_info_refuses_a_file_that_is_not_midi_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("amt info: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert main(["info", str(tmp_path / "missing.mid")]) == 2


def test_notes_read_from_a_file_are_written_back_tick_exact_and_end_with_the_music():
    data = song()
    midi = read_midi(data)
    back = midi.to_midi_bytes()
    assert _tracks(back) == _tracks(data)  # on/off ticks, pitch, velocity, channel, per track
    # Through 10 ms event times alone the 16th grid of 95 bpm is lost: the test can fail.
    plain = events_to_midi_bytes(midi.events, meta=midi.meta, velocities=midi.velocities, tracks=midi.tracks)
    assert _tracks(plain) != _tracks(data)
    # The input's conductor track runs 40 beats past the music; the output stops with the last note.
    assert mido.MidiFile(file=io.BytesIO(data)).length > MUSIC_SECONDS + 20
    assert abs(mido.MidiFile(file=io.BytesIO(back)).length - MUSIC_SECONDS) < 0.01


def test_accompany_writes_each_replaced_part_in_its_own_track_and_keeps_the_melody_tick_exact(model):
    data = song()
    (result,) = accompany(model, read_midi(data), keep_parts=[1], options=SamplingOptions(seed=1))
    assert result.summary == "Acoustic Grand Piano (part 2), Acoustic Grand Piano (part 3)"
    written = result.midi.to_midi_bytes()
    tracks = _named(written)
    assert tracks["Acoustic Grand Piano"] == _tracks(data)[0]  # the melody (unnamed: its GM name)
    chords, bass = tracks["Acoustic Grand Piano (part 2)"], tracks["Acoustic Grand Piano (part 3)"]
    # Each replaced part gets its share (48 chord notes to 8 bass notes in the input), by register.
    assert abs(len(chords) - 48 / 56 * (len(chords) + len(bass))) <= 1 and bass
    assert min(n[2] for n in chords) >= max(n[2] for n in bass)
    assert min(n[2] for n in chords + bass) >= 38 and max(n[2] for n in chords + bass) <= 64  # their range
    assert mido.MidiFile(file=io.BytesIO(written)).length <= MUSIC_SECONDS + 0.01


def test_new_notes_sit_exactly_on_the_files_grid_when_asked(model):
    data = song()  # 95 bpm: a 16th is 157.89 ms, between 10 ms ticks
    (result,) = accompany(model, read_midi(data), keep_parts=[1], options=SamplingOptions(seed=5, grid=4))
    assert result.generated.sum() > 0
    new = [n for _, notes in track_notes(result.midi.to_midi_bytes())[1:] for n in notes]
    assert len(new) == result.generated.sum()
    assert all(on % 120 == 0 and off % 120 == 0 for on, off, *_ in new)  # 480 ticks per quarter / 4
    (free,) = accompany(model, read_midi(data), keep_parts=[1],
                        options=SamplingOptions(seed=5, file_grid=False))
    new = [n for _, notes in track_notes(free.midi.to_midi_bytes())[1:] for n in notes]
    assert not all(on % 120 == 0 for on, *_ in new)  # without a grid, the model's 10 ms timing


def test_accompany_gives_a_quartet_its_viola_and_cello(model):
    quartet = read_midi(QUARTET)
    quartet = quartet.take(quartet.events[:, 0] - TIME_OFFSET < 600)
    (result,) = accompany(model, quartet, keep_parts=[1], options=SamplingOptions(seed=0))
    # The bundled quartet plays violin II on GM 110 (a second chair's program, as the corpus maps it).
    assert result.summary == "Fiddle (part 2 Violin II), Viola (part 3 Viola), Cello (part 4 Cello)"
    tracks = _named(result.midi.to_midi_bytes())
    assert all(tracks.get(name) for name in ("Violin I", "Fiddle", "Viola", "Cello"))
    assert set(ops.instrument_of(result.midi.events[result.generated, 2]).tolist()) == {110, 41, 42}


def test_a_melody_alone_gets_a_piano(model):
    (result,) = accompany(model, read_midi(song(parts=1)), keep_parts=[1], options=SamplingOptions(seed=2))
    assert result.summary == "Acoustic Grand Piano (default ensemble)"
    assert result.generated.sum() > 0
    assert set(np.array(result.midi.meta.track_names)[result.midi.tracks[result.generated]]) == {
        "Acoustic Grand Piano"}


def test_infill_keeps_the_chosen_part_inside_the_span(model):
    data = song(names=("Voice", "Piano", "Piano"))
    midi = read_midi(data)
    start, end = midi.meta.bar_to_seconds(3), midi.meta.bar_to_seconds(5)
    (result,) = infill(model, midi, start=start, end=end, keep_parts=[1], options=SamplingOptions(seed=3))
    tracks = _named(result.midi.to_midi_bytes())
    assert tracks["Voice"] == _named(data)["Voice"]  # the whole voice, bars 3-4 included, tick-exact
    onsets = (result.midi.events[:, 0] - TIME_OFFSET) / 100
    new = result.generated
    assert new.sum() > 0 and (onsets[new] >= start - 0.01).all() and (onsets[new] < end).all()
    ends = onsets + (result.midi.events[:, 1] - DUR_OFFSET) / 100
    assert (ends[new] <= end + 0.01).all()  # the music after the span is not blurred by held new notes
    names = np.array(result.midi.meta.track_names)[result.midi.tracks]
    assert set(names[new]) <= {"Piano"}  # new notes go to the parts they replace, on their channels
    assert set(result.midi.channels[new].tolist()) <= {1, 2}
    pitches = ops.pitch_of(result.midi.events[new, 2])
    assert pitches.min() >= 38 and pitches.max() <= 64  # the replaced parts' range over the whole piece
    piano = [n for n in _named(data)["Piano"]]
    span = (round(start * BPM / 60 * 480), round(end * BPM / 60 * 480))
    outside = [n for n in piano if not span[0] <= n[0] < span[1]]
    assert set(outside) <= set(tracks["Piano"])  # the piano outside the span is kept tick-exact
    assert not {n for n in piano if span[0] <= n[0] < span[1]} & set(tracks["Piano"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("parts")
    save_model(model, folder / "model")
    (folder / "song.mid").write_bytes(song())
    return folder


def test_cli_keep_part_for_accompany_and_infill(folder, capsys):
    common = ["--model", str(folder / "model"), "--seed", "4", "--quiet"]
    assert main(["accompany", str(folder / "song.mid"), "--keep-part", "1", "--out", str(folder / "a.mid"),
                 *common]) == 0
    assert "new notes written for: Acoustic Grand Piano (part 2), Acoustic Grand Piano (part 3)" in \
        capsys.readouterr().out
    assert _tracks((folder / "a.mid").read_bytes())[0] == _tracks(song())[0]
    assert main(["infill", str(folder / "song.mid"), "--start-bar", "5", "--end-bar", "6", "--keep-part", "1",
                 "3", "--out", str(folder / "i.mid"), *common]) == 0
    written = _tracks((folder / "i.mid").read_bytes())
    assert written[0] == _tracks(song())[0] and written[2] == _tracks(song())[2]  # melody and bass kept
    assert main(["accompany", str(folder / "song.mid"), "--keep-part", "7", "--out", str(folder / "x.mid"),
                 *common]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.endswith("its parts are 1 Acoustic Grand Piano, "
                                                "2 Acoustic Grand Piano, 3 Acoustic Grand Piano")
    assert not (folder / "x.mid").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_progress_bar_with_time_left_on_a_terminal_unless_quiet(folder, monkeypatch, quiet):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["continue", str(folder / "song.mid"), "--seconds", "2", "--model", str(folder / "model"),
            "--out", str(folder / "c.mid"), *(["--quiet"] if quiet else [])]
    assert main(argv) == 0
    shown = terminal.getvalue()
    assert ("left" in shown and "elapsed" in shown) != quiet


def test_bridge_infill_keeps_a_locked_track_inside_the_region_and_names_new_tracks_by_gm(tmp_path):
    from amt.plugins.engine import Limits, event_to_note, plan_request
    from amt.plugins.midifile import request_from_midi

    path = tmp_path / "song.mid"
    path.write_bytes(song())
    request = request_from_midi(path, task="infill", region=(3, 4), unit="bars", locked={"tracks": [0]})
    plan = plan_request(request, Limits())
    assert plan.region == (8.0, 12.0)  # bar 3 of 4/4, in beats
    melody_inside = {n.id for n in request.notes if n.track == 0 and 8 <= n.start < 12}
    assert melody_inside and melody_inside <= set(plan.locked_ids)  # the melody goes on through the region
    assert not melody_inside & set(plan.replaced_ids)
    assert {n.track for n in request.notes if n.id in plan.replaced_ids} == {1, 2}
    controls = plan.piece.events[plan.kept & ~plan.prompt, 0] - TIME_OFFSET
    assert (controls < plan.end_tick).sum() == len(melody_inside)  # it conditions the new notes
    event = np.array([plan.start_tick + 1 + TIME_OFFSET, DUR_OFFSET + 20, NOTE_OFFSET + 47 * MAX_PITCH + 48])
    note = event_to_note(plan, event)
    assert note is not None and note.track_name == "Timpani"  # GM 47's own name, not its family


def test_single_lines_for_replaced_parts_that_share_a_program(model):
    chorale = read_midi(REFERENCE_DIR / "bach_bwv66.6.mid")  # SATB, every voice on program 0
    chorale = chorale.take(chorale.events[:, 0] - TIME_OFFSET < 1000)
    options = SamplingOptions(seed=6, monophonic=True)
    (result,) = accompany(model, chorale, keep_parts=[1], options=options)
    tracks = dict(track_notes(result.midi.to_midi_bytes()))
    lines = [tracks.get(f"Acoustic Grand Piano ({voice})", []) for voice in ("Alto", "Tenor", "Bass")]
    assert all(lines), "a replaced voice got no notes"
    for line in lines:  # one note at a time in each voice (the model wrote them as separate instruments)
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(line))
    medians = [np.median([n[2] for n in line]) for line in lines]
    assert medians == sorted(medians, reverse=True)  # alto above tenor above bass
    assert set(ops.instrument_of(result.midi.events[:, 2]).tolist()) == {0}  # all back on program 0
