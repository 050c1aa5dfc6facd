"""The tasks (accompany, infill, continue) on real MIDI files, from the library and from the ``amt`` CLI.

A tiny randomly initialised model writes the notes; what is checked is what the tasks promise whatever
the weights: kept notes come back unchanged, new notes land where they were asked for, files are written
completely or not at all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from amt.cli import main
from amt.errors import GenerationError
from amt.models import DEFAULT_MODEL, create_model, save_model, tiny_config
from amt.sampling import Generation, SamplingOptions, accompany, continue_piece, infill
from amt.tokenization.midi import MidiTokens, read_midi, write_midi
from amt.tokenization.vocab import DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET

from conftest import REFERENCE_DIR as REFERENCE

torch.set_num_threads(1)


def clip(midi: MidiTokens, ticks: int) -> MidiTokens:
    """The notes of ``midi`` that start in the first ``ticks``."""
    keep = midi.events[:, 0] - TIME_OFFSET < ticks
    return MidiTokens(midi.events[keep], midi.velocities[keep], midi.tracks[keep], midi.meta, midi.source)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


@pytest.fixture(scope="module")
def quartet() -> MidiTokens:
    return clip(read_midi(REFERENCE / "beethoven_opus18no1_movement1.mid"), 1200)


@pytest.fixture(scope="module")
def chorale() -> MidiTokens:
    return clip(read_midi(REFERENCE / "bach_bwv66.6.mid"), 1250)


def onsets(events: np.ndarray) -> np.ndarray:
    return events[:, 0] - TIME_OFFSET


def kept_part(generation: Generation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    old = ~generation.generated
    midi = generation.midi
    return midi.events[old], midi.velocities[old], midi.tracks[old]


def new_part(generation: Generation) -> np.ndarray:
    return generation.midi.events[generation.generated]


def test_accompany_keeps_the_kept_instrument_unchanged(model, quartet):
    out = accompany(model, quartet, keep_instruments=[40], options=SamplingOptions(seed=0), variations=2)
    assert len(out) == 2
    violin = (quartet.events[:, 2] - NOTE_OFFSET) // MAX_PITCH == 40
    end = int((onsets(quartet.events) + quartet.events[:, 1] - DUR_OFFSET).max())
    for generation in out:
        events, velocities, tracks = kept_part(generation)
        assert np.array_equal(events, quartet.events[violin])
        assert np.array_equal(velocities, quartet.velocities[violin])
        assert np.array_equal(tracks, quartet.tracks[violin])
        new = new_part(generation)
        assert len(new) > 0 and (onsets(new) >= 0).all() and (onsets(new) < end).all()
        # The input's meta, plus a track for each replaced part (viola and cello: both violins are kept).
        assert generation.midi.meta == dataclasses.replace(
            quartet.meta, track_names=(*quartet.meta.track_names, "Viola", "Cello"))
        assert (np.diff(onsets(generation.midi.events)) >= 0).all()
        # New notes take a velocity from the input's.
        new_velocities = generation.midi.velocities[generation.generated]
        assert new_velocities.min() >= quartet.velocities.min()
        assert new_velocities.max() <= quartet.velocities.max()
    assert not np.array_equal(new_part(out[0]), new_part(out[1]))


def test_accompany_by_track_name_and_with_instrument_restriction(model, chorale):
    options = SamplingOptions(seed=1, instruments=[33], pitch_range=(28, 55))
    (generation,) = accompany(model, chorale, keep_tracks=["soprano"], options=options)
    soprano = chorale.tracks == chorale.meta.track_names.index("Soprano")
    assert np.array_equal(kept_part(generation)[0], chorale.events[soprano])
    new = new_part(generation)
    assert len(new) > 0
    assert set(((new[:, 2] - NOTE_OFFSET) // MAX_PITCH).tolist()) == {33}
    pitches = (new[:, 2] - NOTE_OFFSET) % MAX_PITCH
    assert pitches.min() >= 28 and pitches.max() <= 55


def test_accompany_rejects_what_the_file_does_not_have(model, quartet, chorale):
    # One line that lists the file's parts by number, name and instrument.
    with pytest.raises(GenerationError, match=r"\[0\].*1 Violin I \(Violin\), .*4 Cello$"):
        accompany(model, quartet, keep_instruments=[0])
    with pytest.raises(GenerationError, match=r"'flute'.*Soprano"):
        accompany(model, chorale, keep_tracks=["Flute"])
    with pytest.raises(GenerationError, match=r"no part 9 .*4 Bass"):
        accompany(model, chorale, keep_parts=[9])
    with pytest.raises(GenerationError, match="parts, tracks or instruments"):
        accompany(model, chorale)


def test_new_notes_get_a_track_of_their_own_unless_they_extend_a_part(model, chorale):
    (accompanied,) = accompany(model, chorale, keep_tracks=["Soprano"], options=SamplingOptions(seed=1))
    # New parts, not the soprano's: each on a track of its own after the input's.
    assert (accompanied.midi.tracks[accompanied.generated] >= len(chorale.meta.track_names)).all()
    # Every voice of the chorale is a piano: new piano notes join the voice with the most notes.
    options = SamplingOptions(seed=3, instruments=[0])
    (continued,) = continue_piece(model, chorale, seconds=2.0, options=options)
    assert continued.generated.sum() > 0
    assert (continued.midi.tracks[continued.generated] == np.bincount(chorale.tracks).argmax()).all()


def test_infill_writes_only_inside_the_span(model, chorale):
    out = infill(model, chorale, start=4.0, end=9.0, options=SamplingOptions(seed=2), variations=2)
    outside = (onsets(chorale.events) < 400) | (onsets(chorale.events) >= 900)
    for generation in out:
        events, velocities, _ = kept_part(generation)
        assert np.array_equal(events, chorale.events[outside])
        assert np.array_equal(velocities, chorale.velocities[outside])
        new = new_part(generation)
        assert len(new) > 0 and (onsets(new) >= 400).all() and (onsets(new) < 900).all()


@pytest.mark.parametrize(("start", "end", "message"), [
    (5.0, 5.0, "empty span"), (7.0, 3.0, "empty span"), (13.0, 14.0, "beyond"), (2.0, 40.0, "beyond"),
])
def test_infill_rejects_bad_spans(model, chorale, start, end, message):
    with pytest.raises(GenerationError, match=message):
        infill(model, chorale, start=start, end=end)


def test_continue_adds_music_after_the_end(model, chorale):
    end = int((onsets(chorale.events) + chorale.events[:, 1] - DUR_OFFSET).max())
    (generation,) = continue_piece(model, chorale, seconds=3.0, options=SamplingOptions(seed=3))
    assert np.array_equal(kept_part(generation)[0], chorale.events)
    new = new_part(generation)
    assert len(new) > 0 and (onsets(new) >= end).all() and (onsets(new) < end + 300).all()
    with pytest.raises(GenerationError):
        continue_piece(model, chorale, seconds=0)


# -- the command line ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory, model, chorale, quartet):
    folder = tmp_path_factory.mktemp("cli")
    save_model(model, folder / "model")
    for name, midi in (("chorale", chorale), ("quartet", quartet)):
        write_midi(folder / f"{name}.mid", midi.events, meta=midi.meta, velocities=midi.velocities,
                   tracks=midi.tracks)
    return folder


def midi_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix == ".mid" or ".tmp" in p.name}


def test_cli_infill_by_bars_writes_one_file_per_variation(files, capsys):
    out = files / "filled.mid"
    rc = main(["infill", str(files / "chorale.mid"), "--start-bar", "2", "--end-bar", "3", "--model",
               str(files / "model"), "--variations", "2", "--seed", "4", "--out", str(out)])
    assert rc == 0
    source = read_midi(files / "chorale.mid")
    bar = 2.5  # 4/4 at 96 quarter notes per minute
    outputs = [files / "filled-1.mid", files / "filled-2.mid"]
    for path in outputs:
        written = read_midi(path)
        assert written.meta.tempos == source.meta.tempos
        assert written.meta.time_signatures == source.meta.time_signatures
        old = (onsets(source.events) < 100 * bar) | (onsets(source.events) >= 300 * bar)
        inside = (onsets(written.events) >= 100 * bar) & (onsets(written.events) < 300 * bar)
        assert len(written.events) - inside.sum() == old.sum()
    assert str(outputs[0]) in capsys.readouterr().out


def test_cli_accompany_and_continue(files):
    assert main(["accompany", str(files / "quartet.mid"), "--keep-instrument", "40", "--instruments", "41",
                 "42", "--model", str(files / "model"), "--seed", "5", "--out", str(files / "acc.mid")]) == 0
    written, source = read_midi(files / "acc.mid"), read_midi(files / "quartet.mid")
    violin = lambda e: e[(e[:, 2] - NOTE_OFFSET) // MAX_PITCH == 40]  # noqa: E731
    assert np.array_equal(np.unique(violin(written.events), axis=0), np.unique(violin(source.events), axis=0))
    assert main(["continue", str(files / "chorale.mid"), "--seconds", "2", "--model", str(files / "model"),
                 "--density", "3", "--polyphony", "2", "--candidates", "2",
                 "--out", str(files / "more.mid")]) == 0
    assert len(read_midi(files / "more.mid").events) > len(read_midi(files / "chorale.mid").events)


def test_accompany_starts_with_the_music_not_with_the_silence_before_it(model, chorale):
    # A pickup bar written late leaves silence before the first note: no new part starts in it.
    late = chorale.events.copy()
    late[:, 0] += 300
    piece = MidiTokens(late, chorale.velocities, chorale.tracks, chorale.meta, chorale.source)
    out = accompany(model, piece, keep_tracks=["Soprano"], options=SamplingOptions(seed=2, instruments=[65]),
                    variations=3)
    news = [new_part(g) for g in out]
    assert sum(map(len, news)) > 0 and all((onsets(new) >= 300).all() for new in news)


def test_cli_accompany_on_the_files_grid_with_monophonic_parts(files):
    out = files / "grid.mid"
    assert main(["accompany", str(files / "chorale.mid"), "--keep-track", "Soprano", "--instruments", "65",
                 "66", "67", "--monophonic", "--grid", "4", "--model", str(files / "model"), "--seed", "7",
                 "--out", str(out)]) == 0
    written = read_midi(out)
    is_new = (written.events[:, 2] - NOTE_OFFSET) // MAX_PITCH != 0
    new = written.events[is_new]
    assert len(new)
    # Starts and ends on the file's own 16th-note grid lines, exactly (in MIDI ticks, as a DAW shows them).
    assert (written.midi_ticks[is_new] % (written.meta.ticks_per_beat // 4) == 0).all()
    for instrument in (65, 66, 67):
        starts, ends = written.midi_ticks[(written.events[:, 2] - NOTE_OFFSET) // MAX_PITCH == instrument].T
        assert (starts[1:] >= np.maximum.accumulate(ends)[:-1]).all()


def test_cli_accompany_with_legato_parts_on_the_grid(files):
    out = files / "legato.mid"
    assert main(["accompany", str(files / "chorale.mid"), "--keep-track", "Soprano", "--instruments", "65",
                 "66", "67", "--monophonic", "--legato", "--no-parallels", "--beat-parallels", "0",
                 "--grid", "4", "--model", str(files / "model"), "--seed", "7", "--out", str(out)]) == 0
    written = read_midi(out)
    assert ((written.events[:, 2] - NOTE_OFFSET) // MAX_PITCH != 0).any()
    for instrument in (65, 66, 67):  # in MIDI ticks: on the file's grid lines, as a DAW shows them
        starts, ends = written.midi_ticks[(written.events[:, 2] - NOTE_OFFSET) // MAX_PITCH == instrument].T
        assert (starts[1:] == ends[:-1]).all()  # no rest once the part has entered


def test_cli_accompany_keeps_the_kept_track_and_its_name(files):
    out = files / "soprano.mid"
    assert main(["accompany", str(files / "chorale.mid"), "--keep-track", "Soprano", "--instruments", "33",
                 "--model", str(files / "model"), "--seed", "6", "--out", str(out)]) == 0
    source, written = read_midi(files / "chorale.mid"), read_midi(out)
    assert source.meta.track_names[1:] == ("Soprano", "Alto", "Tenor", "Bass")
    names = np.array(written.meta.track_names)[written.tracks]
    soprano = source.tracks == source.meta.track_names.index("Soprano")
    assert np.array_equal(written.events[names == "Soprano"], source.events[soprano])
    assert np.array_equal(written.velocities[names == "Soprano"], source.velocities[soprano])
    assert set(names.tolist()) == {"Soprano", "Electric Bass (finger)"}  # new notes: named after GM 33


@pytest.mark.parametrize("args", [
    ["accompany", "{dir}/quartet.mid", "--keep-instrument", "7"],
    ["accompany", "{dir}/chorale.mid", "--keep-track", "Oboe"],
    ["infill", "{dir}/chorale.mid", "--start", "3", "--end", "3"],
    ["infill", "{dir}/chorale.mid", "--start", "30", "--end", "40"],
    ["infill", "{dir}/chorale.mid", "--start", "3"],
    ["continue", "{dir}/missing.mid", "--seconds", "2"],
    ["continue", "{dir}/chorale.mid", "--seconds", "2", "--top-p", "1.5"],
    ["continue", "{dir}/chorale.mid", "--seconds", "2", "--legato"],  # legato needs --monophonic
    ["continue", "{dir}/chorale.mid", "--seconds", "2", "--monophonic", "--beat-parallels", "0"],  # alone
    ["continue", "{dir}/chorale.mid", "--seconds", "2", "--monophonic", "--no-parallels", "--beat-parallels",
     "2"],
    ["continue", "{dir}/chorale.mid", "--seconds", "2", "--out", "{dir}/no/such/folder/x.mid"],
])
def test_cli_bad_input_is_an_error_and_writes_nothing(files, capsys, args):
    before = midi_files(files)
    argv = [a.format(dir=files) for a in args] + ["--model", str(files / "model"), "--variations", "2"]
    if "--out" not in argv:
        argv += ["--out", str(files / "bad.mid")]
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err
    assert midi_files(files) == before


def test_cli_model_errors_are_reported(files, capsys):
    argv = ["continue", str(files / "chorale.mid"), "--seconds", "1", "--out", str(files / "m.mid")]
    assert main([*argv, "--model", str(files / "nothing-here")]) == 2
    if not (DEFAULT_MODEL / "config.json").is_file():
        assert main(argv) == 2
        assert "--model" in capsys.readouterr().err
    assert not (files / "m.mid").exists()


def test_cli_demo_and_run_write_the_same_notes_for_one_request(files, model):
    """The CLI and the demo both state an infill as one Request and call run: the same piece, span and seed
    give the same notes through each."""
    from amt.demo import callbacks
    from amt.sampling import Request, Span, run

    path = files / "chorale.mid"
    out = files / "one-request.mid"
    assert main(["infill", str(path), "--start", "2", "--end", "6", "--seed", "11", "--model",
                 str(files / "model"), "--out", str(out)]) == 0
    piece = read_midi(path)
    (direct,) = run(model, piece, Request("infill", span=Span(2.0, 6.0), options=SamplingOptions(seed=11)))
    assert np.array_equal(read_midi(out).events, read_midi(direct.midi.to_midi_bytes()).events)
    form = callbacks.Request(task="infill", span_start=2.0, span_end=6.0, seed="11", variations=1)
    [shown], _ = callbacks.generate(model, callbacks.load_piece(path), form, files / "demo", renderer=None)
    assert np.array_equal(read_midi(shown.midi_path).events, read_midi(out).events)


def test_span_units_and_bad_requests(chorale):
    from amt.sampling import Request, Span, run

    meta = dataclasses.replace(chorale.meta, tempos=((0, 120.0),), time_signatures=((0, 4, 4),), _tempo_us=())
    assert Span(2, 3, "bars").seconds(meta) == pytest.approx((2.0, 6.0))  # 2 s a bar, end bar included
    assert Span(1, 3, "beats").seconds(meta) == pytest.approx((0.5, 1.5))
    with pytest.raises(GenerationError, match="bars count from 1"):
        Span(0, 1, "bars").seconds(meta)
    with pytest.raises(GenerationError, match="infill needs the span"):
        run(None, chorale, Request("infill"))
    with pytest.raises(GenerationError, match="top_p"):
        run(None, chorale, Request("continue", seconds=1, options=SamplingOptions(top_p=2)))


def test_a_request_keeps_notes_one_by_one_in_a_span_given_in_beats(model, chorale):
    """A Request with a ``kept`` mask (a DAW's locks) writes inside its span in beats, through its own time
    map (a DAW's, shifted to the piece's tick 0), around exactly the kept notes, which come back unchanged."""
    from amt.sampling import Request, Span, run
    from amt.tokenization.timemap import TimeMap

    time_map = TimeMap.from_beats([(0, 90.0)]).shifted(100)  # piece tick 0 is 1 s into the project
    kept = np.zeros(len(chorale.events), bool)
    kept[::2] = True  # every other note, whatever its part
    request = Request("infill", kept=kept, span=Span(6, 12, "beats"), time_map=time_map, grid_step=0.5,
                      options=SamplingOptions(seed=3), variations=2)
    start, end = request.span.ticks(time_map)
    assert (start, end) == (300, 700)  # 4 s and 8 s into the project at 90 bpm, less the 1 s offset
    generations = run(model, chorale, request)
    assert len(generations) == 2
    for generation in generations:
        new = generation.midi.events[generation.generated]
        assert len(new) and np.all((onsets(new) >= start) & (onsets(new) < end))
        assert np.array_equal(np.sort(generation.midi.events[~generation.generated], axis=0),
                              np.sort(chorale.events[kept], axis=0))
        beats = time_map.ticks_to_beats(onsets(new))
        assert np.allclose(beats * 2, np.rint(beats * 2), atol=0.02)  # on the half-beat grid, to 10 ms
    with pytest.raises(GenerationError, match="not both"):
        run(model, chorale, Request("infill", kept=kept, keep_parts=[1], span=Span(6, 12, "beats")))
    with pytest.raises(GenerationError, match="kept marks"):
        run(model, chorale, Request("infill", kept=kept[1:], span=Span(6, 12, "beats")))
