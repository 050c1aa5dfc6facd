"""The web demo's callbacks, without a browser: loading and checking input, the form's validation, the piano
roll, audio rendering (and its absence), and whole generations with a tiny random model."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from amt.demo import audio, callbacks
from amt.demo.callbacks import DemoInputError, Request
from amt.demo.notes import NoteArrays
from amt.demo.pianoroll import KEPT_ALPHA, plot_pianoroll
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes, read_midi, write_midi

FLUTE, CELLO, VIOLIN = 73, 42, 40
HAS_FLUIDSYNTH = audio.find_renderer()[0] is not None


def write_duet(path, seconds: float = 4.0) -> None:
    """A flute melody (one note every half second) over cello half notes, 120 BPM in 4/4."""
    melody = np.arange(0.0, seconds, 0.5)
    bass = np.arange(0.0, seconds, 1.0)
    notes = midi_tokens_from_notes(
        onsets=np.concatenate([melody, bass, bass]),
        durations=np.concatenate([np.full(len(melody), 0.45), np.full(2 * len(bass), 0.95)]),
        pitches=np.concatenate([72 + np.arange(len(melody)) % 5, np.full(len(bass), 48),
                                np.full(len(bass), 55)]),
        instruments=np.concatenate([np.full(len(melody), FLUTE), np.full(2 * len(bass), CELLO)]),
        meta=MidiMeta(ticks_per_beat=480, tempos=((0, 120.0),), time_signatures=((0, 4, 4),)),
    )
    write_midi(path, notes.events, meta=notes.meta, velocities=notes.velocities)


@pytest.fixture(scope="module")
def duet_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("duet") / "duet.mid"
    write_duet(path)
    return path


@pytest.fixture(scope="module")
def duet(duet_path):
    return callbacks.load_piece(duet_path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from amt.models import create_model, load_model, tiny_config

    folder = tmp_path_factory.mktemp("tiny-model")
    create_model(tiny_config()).save_pretrained(folder)
    return load_model(folder, device="cpu")


# ----------------------------------------------------------------------------------------------- input


def test_load_piece_lists_parts_and_guesses_the_melody(duet):
    assert len(duet.notes) == 8 + 4 + 4
    assert duet.duration == pytest.approx(3.95)
    assert [part.label for part in duet.parts] == ["1 Cello", "2 Flute"]  # tracks named after instruments
    assert callbacks.part_choices(duet) == [("1 Cello: 8 notes, chords", "1"),
                                            ("2 Flute: 8 notes, melody", "2")]
    melody = callbacks.guess_melody(duet.parts)
    assert melody.label == "2 Flute"
    assert duet.parts[0].role == "chords"  # two-note chords throughout
    summary = callbacks.describe_piece(duet)
    assert "duet" in summary and "16 notes" in summary and "120 bpm" in summary and "4/4" in summary


def test_guess_melody_prefers_the_melody_role_then_the_highest_part():
    def part(number, role, high):
        return callbacks.Part(number, number, "", 0, 128 if role == "drums" else 0, 10, high - 12, high, 0.0,
                              1.0, role)

    chords, line, drums, bass = part(1, "chords", 84), part(2, "melody", 76), part(3, "drums", 90), \
        part(4, "bass", 50)
    assert callbacks.guess_melody([chords, line, drums, bass]) is line
    assert callbacks.guess_melody([bass, chords, drums]) is chords
    assert callbacks.guess_melody([drums]) is None


def test_bundled_examples_load_with_a_melody():
    examples = callbacks.list_examples()
    assert len(examples) >= 2
    for path in examples.values():
        piece = callbacks.load_piece(path)
        assert 15 <= piece.duration <= 30
        assert len(piece.parts) == 4
        assert callbacks.guess_melody(piece.parts) is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty (0 bytes)"),
        (b"this is a text file, not music\n", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\x90", "not a MIDI file"),
    ],
)
def test_bad_uploads_get_a_readable_message(tmp_path, content, message):
    path = tmp_path / "upload.mid"
    path.write_bytes(content)
    with pytest.raises(DemoInputError, match=re.escape(message)) as error:
        callbacks.load_piece(path)
    assert "upload.mid" in str(error.value)


def test_oversized_and_missing_uploads_are_refused(tmp_path):
    big = tmp_path / "big.mid"
    with open(big, "wb") as f:
        f.truncate(callbacks.MAX_UPLOAD_BYTES + 1)  # sparse: no need to write 5 MB
    with pytest.raises(DemoInputError, match="limit is 5 MB"):
        callbacks.load_piece(big)
    with pytest.raises(DemoInputError, match="Upload a MIDI file"):
        callbacks.load_piece(None)
    with pytest.raises(DemoInputError, match="missing"):
        callbacks.load_piece(tmp_path / "gone.mid")


def test_a_file_without_notes_is_refused(tmp_path):
    path = tmp_path / "silence.mid"
    write_midi(path, np.zeros((0, 3), np.int64))
    with pytest.raises(DemoInputError, match="has no notes"):
        callbacks.load_piece(path)


def test_long_pieces_are_clipped_and_say_so(tmp_path):
    path = tmp_path / "long.mid"
    write_duet(path, seconds=12.0)
    piece = callbacks.load_piece(path, max_seconds=5.0)
    assert piece.original_duration == pytest.approx(11.95)
    assert piece.duration <= 5.0
    assert (piece.notes.onsets < 5.0).all()
    assert "first 5 s" in callbacks.describe_piece(piece)


def test_unnamed_and_duplicate_tracks_are_listed_by_number(tmp_path):
    from partfiles import song

    (tmp_path / "song.mid").write_bytes(song(names=("Piano", "Piano", None)))
    piece = callbacks.load_piece(tmp_path / "song.mid")
    assert [value for _, value in callbacks.part_choices(piece)] == ["1", "2", "3"]
    assert [label for label, _ in callbacks.part_choices(piece)] == [
        "1 Piano (Acoustic Grand Piano): 64 notes, melody",
        "2 Piano (Acoustic Grand Piano): 48 notes, chords", "3 Acoustic Grand Piano: 8 notes, bass"]
    assert callbacks.keep_selection(piece, ["2"]) == {"keep_parts": [2]}


# ------------------------------------------------------------------------------------------ the form


def test_parse_instruments_accepts_numbers_names_and_labels():
    assert callbacks.parse_instruments([40, "42", "violin", "Flute (73)", "Drums", 40]) == [40, 42, 73, 128]
    with pytest.raises(DemoInputError, match="Unknown instrument 'kazooo'"):
        callbacks.parse_instruments(["kazooo"])
    with pytest.raises(DemoInputError, match="200 is not an instrument"):
        callbacks.parse_instruments(["200"])


def test_span_in_seconds_and_bars(duet):
    assert callbacks.resolve_span(duet, 1.0, 2.5, "seconds") == (1.0, 2.5)
    # 4/4 at 120 BPM: a bar lasts 2 s, and the end bar is included.
    assert callbacks.resolve_span(duet, 2, 2, "bars") == (pytest.approx(2.0), pytest.approx(3.95))
    for start, end, unit, message in [
        (3.0, 2.0, "seconds", "end must come after the start"),
        (5.0, 6.0, "seconds", "outside the piece, which lasts 4.0 s"),
        (1.0, 9.0, "seconds", "outside the piece"),
        (0, 1, "bars", "count from 1"),
        (1, 5, "bars", "outside the piece"),
        (None, 2.0, "seconds", "Give the start and the end"),
    ]:
        with pytest.raises(DemoInputError, match=message):
            callbacks.resolve_span(duet, start, end, unit)


def test_keep_selection_takes_part_numbers_and_refuses_empty_or_unknown(duet):
    flute = callbacks.guess_melody(duet.parts)
    assert callbacks.keep_selection(duet, [str(flute.number)]) == {"keep_parts": [2]}
    assert callbacks.keep_selection(duet, ["2 Flute: 8 notes, melody", 1]) == {"keep_parts": [1, 2]}
    assert callbacks.keep_selection(duet, [], required=False) == {}
    with pytest.raises(DemoInputError, match="at least one part"):
        callbacks.keep_selection(duet, [])
    with pytest.raises(DemoInputError, match="99: no such part in duet; its parts are 1 Cello, 2 Flute"):
        callbacks.keep_selection(duet, ["99"])


def test_sampling_options_check_ranges():
    options = callbacks.sampling_options(Request(task="continue", top_p=0.9, temperature=0.8, density=0,
                                                 instruments=["Violin"]), seed=5)
    assert (options.top_p, options.temperature, options.seed) == (0.9, 0.8, 5)
    assert list(options.instruments) == [VIOLIN] and options.density is None
    assert options.grid is None and not options.monophonic
    options = callbacks.sampling_options(Request(task="continue", grid="1/16", monophonic=True), seed=5)
    assert options.grid == 4 and options.monophonic
    assert not options.legato and not options.no_parallels
    # The single-line rules make new parts monophonic even when that box is left unticked.
    options = callbacks.sampling_options(Request(task="accompany", legato=True, no_parallels=True), seed=5)
    assert options.monophonic and options.legato and options.no_parallels
    options.validate()
    for request, message in [
        (Request(task="continue", grid="1/5"), "Grid '1/5'"),
        (Request(task="continue", top_p=0.0), "top_p"),
        (Request(task="continue", temperature=0.0), "temperature"),
        (Request(task="continue", density=-1.0), "density"),
    ]:
        with pytest.raises(DemoInputError, match=message):
            callbacks.sampling_options(request, seed=0)
    assert callbacks.resolve_seed(7.0) == callbacks.resolve_seed(" 7 ") == 7
    assert 0 <= callbacks.resolve_seed(None) < 2**31 and 0 <= callbacks.resolve_seed("") < 2**31
    for bad in (-3, "1.5", "abc"):
        with pytest.raises(DemoInputError, match="whole number"):
            callbacks.resolve_seed(bad)


def test_sampling_options_carry_the_musical_weights_and_check_their_range():
    from amt.sampling import SamplingOptions

    defaults, options = SamplingOptions(), callbacks.sampling_options(Request(task="accompany"), seed=1)
    for name in ("key_weight", "chord_weight", "register_weight", "file_density"):
        assert getattr(options, name) == getattr(defaults, name) == getattr(Request, name)
    assert defaults.key_weight < 1 and defaults.chord_weight < 1 and defaults.register_weight < 1
    options = callbacks.sampling_options(Request(task="accompany", key_weight=0.5, chord_weight=1.0,
                                                 register_weight=0.05, file_density=False), seed=1)
    assert (options.key_weight, options.chord_weight, options.register_weight) == (0.5, 1.0, 0.05)
    assert options.file_density is False and options.density is None
    options.validate()
    for name, bad in (("key", 0.0), ("chord", 1.5), ("register", -0.2)):
        with pytest.raises(DemoInputError, match=rf"^{name}_weight must be in \(0, 1\] \(1 is off\), "
                           rf"got {bad}\.$"):
            callbacks.sampling_options(Request(task="accompany", **{f"{name}_weight": bad}), seed=1)


# -------------------------------------------------------------------------------------- piano roll


def test_pianoroll_colours_parts_and_tells_kept_from_new_notes(duet):
    labels = [p.label for p in duet.parts]
    figure = callbacks.piece_pianoroll(duet)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["1 Cello: 8 notes", "2 Flute: 8 notes"]
    assert all(c.get_facecolor()[0][3] == 1.0 for c in figure.axes[0].collections)  # an input: all solid
    input_colours = [c.get_facecolor()[0][:3].tolist() for c in figure.axes[0].collections]
    assert input_colours[0] != input_colours[1]

    generated = duet.notes.instruments == CELLO
    generated[np.flatnonzero(generated)[:2]] = False  # two cello notes kept, six new
    figure = plot_pianoroll(duet.notes, duet.part_of, labels, generated=generated, region=(0, 4))
    axes = figure.axes[0]
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == ["1 Cello: 2 kept, 6 new", "2 Flute: 8 kept", "kept notes: pale, dashed",
                      "new notes: solid"]
    styles = sorted((round(float(c.get_facecolor()[0][3]), 2), c.get_linestyle()[0][1] is not None)
                    for c in axes.collections)
    assert styles == [(round(KEPT_ALPHA, 2), True)] * 2 + [(1.0, False)]  # kept: pale and dashed
    # A part keeps its colour from the input to a variation, whatever else the variation holds.
    keys = [(p.track, p.channel, p.program) for p in duet.parts]
    figure = plot_pianoroll(duet.notes, 1 - duet.part_of, labels[::-1], colour_keys=keys[::-1],
                            known_keys=keys)
    assert [c.get_facecolor()[0][:3].tolist() for c in figure.axes[0].collections] == input_colours[::-1]
    assert len(axes.patches) == 1  # the shaded generation region


# ------------------------------------------------------------------------------------------ audio


def test_without_fluidsynth_audio_is_reported_unavailable(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    renderer, why = audio.find_renderer()
    assert renderer is None
    assert "Audio is unavailable" in why and "fluidsynth" in why


def test_a_missing_soundfont_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/fluidsynth")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    renderer, why = audio.find_renderer()
    assert renderer is None and "nope.sf2 is not a file" in why


@pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="FluidSynth and a General MIDI soundfont are not installed")
def test_fluidsynth_renders_flac(duet_path, tmp_path):
    renderer, _ = audio.find_renderer()
    out = renderer.render(duet_path, tmp_path / "duet.flac")
    data = out.read_bytes()
    assert data[:4] == b"fLaC" and len(data) > 10_000
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary file left


@pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="FluidSynth and a General MIDI soundfont are not installed")
def test_a_render_failure_is_an_audio_error(tmp_path):
    renderer, _ = audio.find_renderer()
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    with pytest.raises(audio.AudioError, match="FluidSynth could not render"):
        renderer.render(bad, tmp_path / "bad.flac")
    assert not (tmp_path / "bad.flac").exists()


# ------------------------------------------------------------------------------------- generation


def test_continue_writes_midi_marks_new_notes_and_reports_progress(model, duet, tmp_path):
    updates = []
    request = Request(task="continue", continue_seconds=1.0, variations=2, seed=11)
    variations, status = callbacks.generate(model, duet, request, tmp_path, renderer=None,
                                            progress=lambda fraction, message: updates.append(fraction))
    assert len(variations) == 2 and "seed 11" in status and "2 variations" in status
    for variation in variations:
        assert variation.audio_path is None
        back = read_midi(variation.midi_path)
        notes = NoteArrays.from_events(back.events)
        assert len(notes) == len(duet.notes) + variation.new_notes  # every input note kept
        new_onsets = np.sort(notes.onsets)[len(duet.notes):]
        assert (new_onsets >= duet.duration - 0.01).all() and (new_onsets < duet.duration + 1.0).all()
        assert variation.figure.axes[0].get_title(loc="left").startswith("Variation")
    assert all(0.0 <= u <= 1.0 for u in updates) and updates  # saving steps report progress at least


def test_same_seed_same_music(model, duet, tmp_path):
    request = Request(task="infill", span_start=1.0, span_end=2.0, seed=3)
    first, _ = callbacks.generate(model, duet, request, tmp_path / "a", renderer=None)
    second, _ = callbacks.generate(model, duet, request, tmp_path / "b", renderer=None)
    assert first[0].midi_path.read_bytes() == second[0].midi_path.read_bytes()
    notes = NoteArrays.from_events(read_midi(first[0].midi_path).events)
    outside = (notes.onsets < 1.0) | (notes.onsets >= 2.0)
    assert outside.sum() == ((duet.notes.onsets < 1.0) | (duet.notes.onsets >= 2.0)).sum()


@pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="FluidSynth and a General MIDI soundfont are not installed")
def test_accompany_keeps_the_melody_and_renders_audio(model, duet, tmp_path):
    renderer, _ = audio.find_renderer()
    melody = callbacks.guess_melody(duet.parts)
    request = Request(task="accompany", keep=[str(melody.number)], seed=5, instruments=["Cello", "Viola"])
    (variation,), status = callbacks.generate(model, duet, request, tmp_path, renderer=renderer)
    assert "accompaniment" in status
    assert variation.audio_path.read_bytes()[:4] == b"fLaC"
    notes = NoteArrays.from_events(read_midi(variation.midi_path).events)
    flute = notes.instruments == FLUTE
    assert flute.sum() == 8  # the kept melody, unchanged
    assert set(notes.instruments[~flute].tolist()) <= {CELLO, 41}  # new notes only where allowed


def test_written_variations_keep_the_kept_track_and_its_name(model, tmp_path):
    melody = np.arange(0.0, 3.0, 0.5)
    notes = midi_tokens_from_notes(
        onsets=np.concatenate([melody, [0.0, 1.5]]), durations=np.full(len(melody) + 2, 0.4),
        pitches=np.concatenate([72 + np.arange(len(melody)) % 5, [48, 43]]),
        instruments=np.concatenate([np.full(len(melody), FLUTE), [CELLO, CELLO]]),
        tracks=np.concatenate([np.full(len(melody), 1), [2, 2]]),
        meta=MidiMeta(track_names=("", "Tune", "Low line")),
    )
    write_midi(tmp_path / "named.mid", notes.events, meta=notes.meta, velocities=notes.velocities,
               tracks=notes.tracks)
    piece = callbacks.load_piece(tmp_path / "named.mid")
    tune = next(part for part in piece.parts if part.name == "Tune")
    request = Request(task="accompany", keep=[str(tune.number)], seed=5, instruments=["Viola"])
    (variation,), _ = callbacks.generate(model, piece, request, tmp_path / "out", renderer=None)
    back = read_midi(variation.midi_path)
    names = np.array(back.meta.track_names)[back.tracks]
    assert np.array_equal(back.events[names == "Tune"], notes.events[notes.tracks == 1])
    assert set(names.tolist()) == {"Tune", "Viola"}  # the new part is named after its instrument


def test_generation_errors_are_demo_errors(model, duet, tmp_path):
    for request, message in [
        (Request(task="accompany", keep=[]), "at least one part"),
        (Request(task="infill", span_start=3.0, span_end=9.0), "outside the piece"),
        (Request(task="continue", continue_seconds=0.0), "Continue for"),
        (Request(task="continue", variations=9), "1 to 8 variations"),
        (Request(task="remix"), "Unknown task"),
    ]:
        with pytest.raises(DemoInputError, match=message):
            callbacks.generate(model, duet, request, tmp_path, renderer=None)
    assert not os.listdir(tmp_path)  # nothing half-written


# ----------------------------------------------------------------------------- the page, no browser


def test_page_callbacks_turn_errors_into_messages(model, tmp_path):
    from amt.demo.app import DemoApp

    app = DemoApp(model, renderer=None, workdir=tmp_path / "work")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    piece, _, *_, status = app.load_upload(str(bad))
    assert piece is None and "not a MIDI file" in status
    outputs = app.generate(None, "continue", [], None, None, "seconds", 5, 1, 0.95, 1.0, "", [], 0,
                           progress=lambda *a, **k: None)
    assert "Upload a MIDI file" in outputs[0]
    assert "Audio is unavailable" in app.audio_note
    generate = next(fn for fn in app.blocks.fns.values() if fn.name == "generate")
    assert generate.queue and generate.concurrency_limit == 1  # one request runs the model at a time


def test_page_threads_the_musical_knobs_to_the_request(model, duet, tmp_path, monkeypatch):
    from amt.demo.app import DemoApp

    app = DemoApp(model, renderer=None, workdir=tmp_path / "work")
    sliders = {c.elem_id: c for c in app.blocks.blocks.values() if getattr(c, "elem_id", None)}
    for name in ("key", "chord", "register", "bass"):
        slider = sliders[f"{name}-weight"]
        default = getattr(Request, f"{name}_weight")
        assert (slider.minimum, slider.maximum, slider.value) == (0.01, 1.0, default)
    prior = sliders["harmony-prior"]
    assert (prior.minimum, prior.maximum, prior.value) == (0.0, 2.0, Request.harmony_prior)
    assert sliders["file-density"].value is True and sliders["grid"].value == "file"
    generate = next(fn for fn in app.blocks.fns.values() if fn.name == "generate")
    assert [c.elem_id for c in generate.inputs][-6:] == ["key-weight", "chord-weight", "harmony-prior",
                                                       "register-weight", "bass-weight", "file-density"]

    seen = []
    monkeypatch.setattr(callbacks, "generate", lambda model, piece, request, *a, **k: (seen.append(request)
                                                                                         or ([], "done")))
    outputs = app.generate(duet, "accompany", ["2"], None, None, "seconds", 5, 1, 0.95, 1.0, "3", [],
                           0, "file", False, False, False, 0.2, 0.4, 1.5, 1.0, 0.5, False,
                           progress=lambda *a, **k: None)
    assert outputs[0] == "done"
    options = callbacks.sampling_options(seen[0], seed=3)
    assert (options.key_weight, options.chord_weight, options.harmony_prior, options.register_weight,
            options.bass_weight) == (0.2, 0.4, 1.5, 1.0, 0.5)
    assert options.file_density is False
    monkeypatch.undo()
    # Out of range from the API (the sliders stop at 0.01): a one-line message, nothing generated.
    outputs = app.generate(duet, "accompany", ["2"], None, None, "seconds", 5, 1, 0.95, 1.0, "3", [],
                           0, "file", False, False, False, 0.0, 0.4, 0.5, 1.0, 1.0, True,
                           progress=lambda *a, **k: None)
    assert "key_weight must be in (0, 1] (1 is off), got 0.0." in outputs[0] and "\n" not in outputs[0]


def test_progress_adapter_averages_variations_and_throttles():
    updates = []
    adapter = callbacks.ProgressAdapter(lambda fraction, message: updates.append((fraction, message)), 2,
                                        interval=0.0)
    event = np.zeros(3, np.int64)
    adapter(0, event, 0.5)
    adapter(1, event, 1.0)
    adapter(0, event, 0.2)  # a late note of a row never moves the bar back
    assert [round(f, 3) for f, _ in updates] == [0.225, 0.675, 0.675]
    assert updates[-1][1] == "Generating: 3 new notes"
    quiet = callbacks.ProgressAdapter(lambda *update: updates.append(update), 1, interval=3600.0)
    for _ in range(5):
        quiet(0, event, 0.1)
    assert len(updates) == 4  # the first update only, then throttled


def test_progress_adapter_reports_at_once_on_a_machine_just_booted(monkeypatch):
    # time.monotonic() counts from boot on Linux: a machine up 5 s must still see the first update.
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: 5.0)
    updates = []
    adapter = callbacks.ProgressAdapter(lambda *update: updates.append(update), 1, interval=3600.0)
    adapter(0, np.zeros(3, np.int64), 0.5)
    assert len(updates) == 1


def test_a_one_track_file_offers_its_instruments(tmp_path):
    import mido

    track = mido.MidiTrack([mido.Message("program_change", channel=0, program=VIOLIN),
                            mido.Message("program_change", channel=1, program=CELLO)])
    for step in range(4):
        track += [mido.Message("note_on", channel=0, note=76 + step, velocity=80, time=0),
                  mido.Message("note_on", channel=1, note=48, velocity=80, time=0),
                  mido.Message("note_off", channel=0, note=76 + step, time=240),
                  mido.Message("note_off", channel=1, note=48, time=0)]
    path = tmp_path / "type0.mid"
    mido.MidiFile(type=0, tracks=[track]).save(path)
    piece = callbacks.load_piece(path)
    assert [p.label for p in piece.parts] == ["1 Violin", "2 Cello"]  # one track, two channels
    melody = callbacks.guess_melody(piece.parts)
    assert melody.program == VIOLIN
    assert callbacks.keep_selection(piece, [str(melody.number)]) == {"keep_parts": [1]}


def test_infill_keeps_a_chosen_part_and_the_roll_shows_parts(model, tmp_path):
    from partfiles import song, track_notes

    (tmp_path / "song.mid").write_bytes(song(names=("Voice", None, None)))
    piece = callbacks.load_piece(tmp_path / "song.mid")
    request = Request(task="infill", keep=["1"], span_start=3, span_end=4, span_unit="bars", seed=2)
    (variation,), status = callbacks.generate(model, piece, request, tmp_path / "out", renderer=None)
    assert "keeping part 1" in status
    written = dict(track_notes(variation.midi_path.read_bytes()))
    assert written["Voice"] == dict(track_notes(song(names=("Voice", None, None))))["Voice"]  # tick-exact
    legend = [t.get_text() for t in variation.figure.axes[0].get_legend().get_texts()]
    assert legend[0] == "1 Voice (Acoustic Grand Piano): 64 kept"
    assert any(text.endswith(" new") and "kept" in text for text in legend[1:3])  # chords/bass rewritten
    variation.figure.savefig(tmp_path / "roll.png")
    if os.environ.get("AMT_ROLL_PNG"):  # to look at it
        shutil.copyfile(tmp_path / "roll.png", os.environ["AMT_ROLL_PNG"])


def test_accompany_by_default_writes_the_replaced_parts(model, tmp_path):
    from partfiles import song

    (tmp_path / "song.mid").write_bytes(song())
    piece = callbacks.load_piece(tmp_path / "song.mid")
    request = Request(task="accompany", keep=["1"], seed=4)
    (variation,), status = callbacks.generate(model, piece, request, tmp_path / "out", renderer=None)
    assert "New notes for: Acoustic Grand Piano (part 2), Acoustic Grand Piano (part 3)." in status
    back = read_midi(variation.midi_path)
    assert back.meta.track_names[-2:] == ("Acoustic Grand Piano (part 2)", "Acoustic Grand Piano (part 3)")
    assert back.duration_seconds <= piece.duration + 0.01  # nothing rings on past the music


def _flac_seconds(path) -> float:
    """Length of a FLAC file from its STREAMINFO block (sample rate and total samples)."""
    info = path.read_bytes()[8:42]
    rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    return (((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")) / rate


@pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="FluidSynth and a General MIDI soundfont are not installed")
def test_input_audio_ends_with_the_music_not_with_a_late_end_of_track(tmp_path):
    from partfiles import song

    (tmp_path / "song.mid").write_bytes(song())  # its conductor track ends about 25 s after the music
    piece = callbacks.load_piece(tmp_path / "song.mid")
    renderer, _ = audio.find_renderer()
    rendered = callbacks.render_input_audio(piece, tmp_path / "out", renderer)
    original = renderer.render(tmp_path / "song.mid", tmp_path / "original.flac")
    assert _flac_seconds(original) > piece.duration + 20  # what the demo played before
    assert piece.duration < _flac_seconds(rendered) < piece.duration + 4  # the notes' release, no more
