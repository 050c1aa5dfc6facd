"""The sampler's musical weights (key, chord, register) and the file's grid and density defaults: each moves
what is drawn the intended way on a tiny model, and each is switched off, with a note, where it cannot
apply (no meter, an atonal piece, drums only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amt.models import create_model, tiny_config
from amt.sampling import SamplingOptions, accompany, generate, keyweight
from amt.sampling.chords import chord_roots, chord_tones, fits_chord
from amt.sampling.harmonyprior import shipped_prior
from amt.sampling.keyweight import KeyWeight, key_log_weights, sounding_time
from amt.sampling.meter import beats, file_grid, on_grid
from amt.sampling.tonality import key_pitch_classes
from amt.tokenization import ops
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes
from amt.tokenization.notes import end_ticks, onset_ticks
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import CONTROL_OFFSET, DRUMS, DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET

torch.set_num_threads(1)
OFF = dict(key_weight=1.0, chord_weight=1.0, harmony_prior=0.0, register_weight=1.0, bass_weight=1.0)
C_MAJOR_TUNE = (72, 74, 76, 77, 79, 81, 83, 84, 79, 76, 72, 74, 76, 72)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


def tune(pitches=C_MAJOR_TUNE, step: int = 50, program: int = 0, bars: int = 3) -> np.ndarray:
    """Event tokens: the pitches repeated, one every ``step`` ticks."""
    rows = []
    for k in range(bars * len(pitches)):
        rows.append((TIME_OFFSET + k * step, DUR_OFFSET + step, NOTE_OFFSET + MAX_PITCH * program
                     + pitches[k % len(pitches)]))
    return np.array(rows, dtype=np.int64)


C_AND_E_HELD = np.array([[TIME_OFFSET + t, DUR_OFFSET + 900, NOTE_OFFSET + MAX_PITCH + p]
                         for t in (0, 900, 1800) for p in (60, 64)])
"""Kept: C4 and E4 held through 27 s on instrument 1, no melody."""
EVERY_BEAT_STRONG = TimeMap(meters=((0, 1, 4),), metered=True)  # a bar of one quarter note: 1/4
BEAT_TICKS = EVERY_BEAT_STRONG.beats(6000)[0]


def new_notes(model, controls: np.ndarray, seeds=range(3), time_map=None, **options) -> list[np.ndarray]:
    end = int(controls[:, 0].max()) - TIME_OFFSET
    out = []
    for seed in seeds:
        out += generate(model, history=np.zeros((0, 3), np.int64), controls=controls + CONTROL_OFFSET,
                        start_time=0, end_time=end, variations=4, time_map=time_map,
                        options=SamplingOptions(seed=seed, instruments=[33], pitch_range=(40, 90), top_p=1.0,
                                                **options))
    return out


def test_chords_and_keys():
    assert fits_chord([0, 4, 7]) and fits_chord([2, 5, 8, 11]) and fits_chord([4, 7]) and fits_chord([])
    assert fits_chord([0, 1])  # Db major 7 holds C and Db
    assert not fits_chord([0, 1, 2]) and not fits_chord([0, 2, 4])
    # C E and: F (F maj7), F# (F# half-dim), G (C), G# (aug), A (A minor), Bb (C7), B (C maj7); not C#, D, Eb
    assert set(np.flatnonzero(chord_tones([0, 4]))) == {0, 4, 5, 6, 7, 8, 9, 10, 11}
    assert not chord_tones([0, 1, 2]).any()
    assert key_pitch_classes(9, "minor") >= {9, 11, 0, 2, 4, 5, 8}


def test_key_weight_makes_out_of_key_notes_rarer(model):
    controls = tune()
    key = sorted(key_pitch_classes(0, "major"))

    def out_of_key(**options):
        pitches = np.concatenate([ops.pitch_of(n[:, 2]) for n in new_notes(model, controls, **options)])
        assert len(pitches) > 50
        return float((~np.isin(pitches % 12, key)).mean())

    free, weighed = out_of_key(**OFF), out_of_key(**{**OFF, "key_weight": 0.1})
    assert weighed < free - 0.15


def test_chord_weight_makes_beats_fit_a_chord(model):
    # Kept: C and E held through, no melody. A new note on a beat fits a chord with them unless it is C#, D
    # or Eb (and chords of several new notes must fit too).
    controls, every_beat_strong, beat_ticks = C_AND_E_HELD, EVERY_BEAT_STRONG, BEAT_TICKS

    def fitting(**options):
        fit = total = 0
        for new in new_notes(model, controls, grid=4, time_map=every_beat_strong, **{**OFF, **options}):
            times, pitches = new[:, 0] - TIME_OFFSET, ops.pitch_of(new[:, 2])
            for onset in np.unique(times[np.isin(times, beat_ticks)]):
                total += 1
                fit += fits_chord([0, 4, *pitches[times == onset].tolist()])
        assert total > 20
        return fit / total

    assert fitting(chord_weight=0.01) > fitting(chord_weight=1.0) + 0.08


def test_chord_weight_hears_the_beats_a_note_is_held_over(model):
    # Kept: C and E held through. A new note struck between beats and held over one is weighed on the beats
    # it sounds through: with the weight on, it fits a chord with C and E there far more often.
    controls, every_beat_strong, beat_ticks = C_AND_E_HELD, EVERY_BEAT_STRONG, BEAT_TICKS

    def fitting_when_held(**options):
        fit = total = 0
        for new in new_notes(model, controls, grid=4, time_map=every_beat_strong, **{**OFF, **options}):
            onsets, ends = onset_ticks(new), end_ticks(new)
            pitches = ops.pitch_of(new[:, 2])
            for onset, end, pitch in zip(onsets, ends, pitches, strict=True):
                if not np.isin(onset, beat_ticks) and ((beat_ticks > onset) & (beat_ticks < end)).any():
                    total += 1
                    fit += fits_chord([0, 4, int(pitch)])
        assert total > 20
        return fit / total

    assert fitting_when_held(chord_weight=0.01) > fitting_when_held(chord_weight=1.0) + 0.1


def test_harmony_prior_favours_bachs_choices_on_the_beat(model):
    # Kept: C and E held through; one new monophonic part. Given C and E, Bach's voices take G, C, A or E on
    # nine beats in ten (the shipped prior); the tiny untrained model about four in ten.
    controls, every_beat_strong, beat_ticks = C_AND_E_HELD, EVERY_BEAT_STRONG, BEAT_TICKS

    def bachs_choices(**options):
        pitches = []
        for new in new_notes(model, controls, grid=4, time_map=every_beat_strong, monophonic=True,
                             **{**OFF, **options}):
            on_beat = np.isin(new[:, 0] - TIME_OFFSET, beat_ticks)
            pitches += (ops.pitch_of(new[on_beat, 2]) % 12).tolist()
        assert len(pitches) > 40
        return float(np.isin(pitches, [7, 0, 9, 4]).mean())

    free = bachs_choices()
    assert free < 0.6 and bachs_choices(harmony_prior=1.0) > free + 0.3


def test_the_shipped_prior_ranks_chord_tones_first():
    prior = shipped_prior()
    assert set(prior.probabilities([0, 4], True).argsort()[-2:]) == {0, 7}  # C E: G, or double the root
    assert prior.probabilities([7, 11, 2], False).argmax() == 7  # a G major triad: double the root
    assert prior.probabilities([0, 4, 7], True)[1] < 0.01  # no C# against a C major triad


def test_register_weight_keeps_notes_below_the_melody(model):
    controls = tune()

    def below(**options):
        share = []
        for new in new_notes(model, controls, **options):
            times = new[:, 0] - TIME_OFFSET
            melody = np.array(C_MAJOR_TUNE)[(times // 50) % len(C_MAJOR_TUNE)]
            share.append(ops.pitch_of(new[:, 2]) < melody)
        return float(np.concatenate(share).mean())

    assert below(**{**OFF, "register_weight": 0.05}) > below(**OFF) + 0.2


def test_chord_roots_name_the_chords_holding_a_set():
    roots = chord_roots([0, 4])  # C-E lies in C major (and its sevenths), A minor, Ab and E augmented
    assert roots[0] and roots[9] and roots[8] and roots[4] and not roots[2] and not roots[7]
    assert not chord_roots([0, 1, 2]).any() and chord_roots([]).all()


def test_bass_weight_strikes_the_lowest_note_on_the_bar(model):
    controls = tune()
    bars = TimeMap(meters=((0, 1, 4),), metered=True)  # every quarter note (50 ticks) starts a bar
    bar_ticks = bars.beats(6000)[0]

    def struck(**options):
        hits = total = 0
        for new in new_notes(model, controls, grid=4, time_map=bars, **{**OFF, **options}):
            onsets, pitches = new[:, 0] - TIME_OFFSET, ops.pitch_of(new[:, 2])
            ends = onsets + new[:, 1] - DUR_OFFSET
            for tick in bar_ticks:
                sounding = np.flatnonzero((onsets <= tick) & (tick < ends))
                if len(sounding):
                    total += 1
                    hits += onsets[sounding[np.argmin(pitches[sounding])]] == tick
        assert total > 20
        return hits / total

    # The tiny model seldom starts a note on the bar at all; where it does, the held bass gives way.
    assert struck(bass_weight=0.01) > 2 * struck(bass_weight=1.0) + 0.02


def piece(pitches=C_MAJOR_TUNE, *, meter=True, drums=False, step: float = 0.25):
    """A melody (program 0) over a bass part (program 33) on sixteenths at 120 bpm, in 4/4 or no meter."""
    n = 3 * len(pitches)
    onsets = np.arange(n) * step
    melody_pitch = np.array([pitches[k % len(pitches)] for k in range(n)])
    programs = (DRUMS, DRUMS) if drums else (0, 33)
    bass = np.array([36 if drums else 48] * n)
    meta = MidiMeta(time_signatures=((0, 4, 4),) if meter else ())
    m = len(onsets[::2])
    return midi_tokens_from_notes(np.concatenate([onsets, onsets[::2]]), np.full(n + m, step),
                                  np.concatenate([melody_pitch, bass[::2]]),
                                  np.concatenate([np.full(n, programs[0]), np.full(m, programs[1])]),
                                  meta=meta, source="test piece")


def test_accompany_puts_notes_on_the_files_grid_at_its_density(model):
    midi = piece()
    options = SamplingOptions(seed=0, instruments=[33])
    out = accompany(model, midi, keep_instruments=[0], options=options, variations=2)
    grid = midi.meta.grid_ticks(4, 2000)
    replaced_rate = (len(midi.events) - 42) / (midi.events[:, 0].max() - TIME_OFFSET) * 100
    for g in out:
        new = g.midi.events[g.generated]
        assert len(new) and on_grid(new[:, 0] - TIME_OFFSET, grid).all()
        rate = len(new) / (midi.events[:, 0].max() - TIME_OFFSET) * 100
        assert 0.5 * replaced_rate <= rate <= 1.6 * replaced_rate
    free = accompany(model, midi, keep_instruments=[0], variations=2,
                     options=SamplingOptions(seed=0, instruments=[33], file_grid=False, file_density=False))
    assert any(not on_grid(g.midi.events[g.generated][:, 0] - TIME_OFFSET, grid).all() for g in free)


def test_meter_and_grid_of_a_file():
    meta = MidiMeta(time_signatures=((0, 6, 8),))
    ticks, strong = beats(meta, 300)  # 6/8 at 120 quarters/min: a dotted-quarter beat every 75 ticks
    assert ticks.tolist() == [0, 75, 150, 225] and strong.tolist() == [True, False, True, False]
    ticks, strong = beats(MidiMeta(), 200)
    assert ticks.tolist() == [0, 50, 100, 150] and not strong.any()
    triplets = np.array([0, 17, 33, 50, 67, 83, 100, 112])
    assert file_grid(MidiMeta(), triplets) == 12 and file_grid(MidiMeta(), np.array([0, 25, 50])) == 4
    assert file_grid(MidiMeta(), np.array([0, 7, 19, 41, 58, 89])) is None


@pytest.mark.parametrize(("kind", "expected"), [
    ("no meter", "no strong beats"),
    ("no meter", "bass weight off: no bar lines"),
    ("no meter", "harmony prior: no strong beats"),
    ("atonal", "key is unclear"),
    ("drums only", "no kept pitched notes"),
    ("bass kept", "lies low"),
])
def test_pieces_where_a_weight_cannot_apply_run_with_a_note(model, kind, expected):
    if kind == "no meter":
        midi = piece(meter=False)
    elif kind == "atonal":
        midi = piece(pitches=tuple(range(60, 72)))
    elif kind == "drums only":
        midi = piece(drums=True)
    else:
        midi = piece()
    keep = {"drums only": DRUMS, "bass kept": 33}.get(kind, 0)
    out = accompany(model, midi, keep_instruments=[keep], variations=1,
                    options=SamplingOptions(seed=0, instruments=[0 if kind == "bass kept" else 33],
                                            pitch_range=(36, 84)))
    assert out[0].generated.any()
    assert any(expected in note for note in out[0].notes), out[0].notes


def test_file_density_counts_only_the_parts_being_written(model):
    # Melody, a bass in eighths (program 33) and a busy obbligato part in sixteenths (program 40) that the
    # request drops: the new bass must match the bass's density, not bass + obbligato.
    base = piece()
    busy = np.arange(0, 10.5, 0.125)
    midi = midi_tokens_from_notes(
        np.concatenate([(base.events[:, 0] - TIME_OFFSET) / 100, busy]),
        np.concatenate([(base.events[:, 1] - DUR_OFFSET) / 100, np.full(len(busy), 0.125)]),
        np.concatenate([ops.pitch_of(base.events[:, 2]), np.full(len(busy), 84)]),
        np.concatenate([ops.instrument_of(base.events[:, 2]), np.full(len(busy), 40)]), meta=base.meta)
    bass_notes = int((ops.instrument_of(base.events[:, 2]) == 33).sum())
    out = accompany(model, midi, keep_instruments=[0], variations=2,
                    options=SamplingOptions(seed=0, instruments=[33], key_weight=1.0, chord_weight=1.0))
    for g in out:
        assert 0.5 * bass_notes <= int(g.generated.sum()) <= 1.6 * bass_notes


F_SHARP_TUNE = tuple(p + 6 for p in C_MAJOR_TUNE)
F_SHARP_ONLY = sorted(key_pitch_classes(6, "major") - key_pitch_classes(0, "major"))  # F# G# A# C# D#


def modulating(f_sharp_bars: int = 6, step: int = 25) -> np.ndarray:
    """Melody events: the C major tune 9 times (31.5 s), then the same tune in F# major ``f_sharp_bars``
    times (21 s by default: C major still rules the whole piece), one note a step."""
    c_part, f_sharp_part = tune(C_MAJOR_TUNE, step, bars=9), tune(F_SHARP_TUNE, step, bars=f_sharp_bars)
    f_sharp_part[:, 0] += len(c_part) * step
    return np.concatenate([c_part, f_sharp_part])


def test_key_weight_follows_a_modulation_and_falls_back_to_the_whole_piece():
    events = modulating()
    onsets = events[:, 0] - TIME_OFFSET
    ends, pitches = onsets + events[:, 1] - DUR_OFFSET, ops.pitch_of(events[:, 2])
    weight = KeyWeight(onsets, ends, pitches, 0.3, start=0, end=7000)
    assert weight.key == (0, "major") and weight.on and not weight.why_off
    c_major, f_sharp = key_log_weights((0, "major"), 0.3), key_log_weights((6, "major"), 0.3)
    assert c_major[60] == 0 and c_major[61] == np.log(0.3) and f_sharp[61] == 0 and f_sharp[60] == np.log(0.3)
    early, late, after = weight.at(np.array([1000, 2500])), weight.at(np.array([4200, 4900])), \
        weight.at(np.array([6000, 6999, 9000]))
    assert (early == c_major).all() and (late == f_sharp).all()
    assert (after == c_major).all()  # no kept notes within half a window: the whole piece's key
    assert (weight.keys[10], weight.keys[45], weight.keys[65]) == ((0, "major"), (6, "major"), (0, "major"))
    # Fewer than MIN_NOTES in every window (notes 2.5 s apart): the whole piece's key throughout.
    ticks = np.arange(28) * 250
    sparse = KeyWeight(ticks, ticks + 250, np.array(C_MAJOR_TUNE * 2), 0.3, start=0, end=7000)
    assert sparse.key == (0, "major") and set(sparse.keys) == {sparse.key}


def test_key_weight_without_a_whole_piece_key_weighs_only_the_clear_windows():
    events = modulating(f_sharp_bars=9)  # as long in F# major as in C major: no whole-piece key
    onsets = events[:, 0] - TIME_OFFSET
    weight = KeyWeight(onsets, onsets + 25, ops.pitch_of(events[:, 2]), 0.3, start=0, end=int(onsets.max()))
    assert weight.key is None and weight.on and "whole piece's key is unclear" in weight.notes[0]
    assert weight.keys[5] == (0, "major") and weight.keys[-5] == (6, "major") and None in weight.keys
    assert (weight.at(np.array([weight.keys.index(None) * 100])) == 0).all()
    chromatic = np.arange(120) % 12 + 60
    ticks = np.arange(120) * 25
    assert "key is unclear" in KeyWeight(ticks, ticks + 25, chromatic, 0.3, 0, 3000).why_off


def test_window_histograms_are_the_time_each_pitch_class_sounds():
    rng = np.random.default_rng(0)
    onsets = rng.integers(0, 1000, 40)
    ends, pitches = onsets + rng.integers(1, 300, 40), rng.integers(40, 80, 40)
    ticks = np.array([-5, 0, 17, 333, 640, 999, 1400])
    expected = np.zeros((len(ticks), 12))
    for o, e, p in zip(onsets, ends, pitches, strict=True):
        expected[:, p % 12] += np.clip(ticks - o, 0, e - o)
    assert np.allclose(sounding_time(onsets, ends, pitches, ticks), expected)


def test_windowed_key_weight_writes_the_second_key_after_a_modulation(model, monkeypatch):
    controls = modulating()
    second_half = 3150 + keyweight.WINDOW // 2  # past the modulation by half a window

    def f_sharp_share() -> float:
        new = np.concatenate(new_notes(model, controls, seeds=range(2), **{**OFF, "key_weight": 0.1}))
        late = ops.pitch_of(new[:, 2])[new[:, 0] - TIME_OFFSET >= second_half]
        assert len(late) > 40
        return float(np.isin(late % 12, F_SHARP_ONLY).mean())

    windowed = f_sharp_share()
    monkeypatch.setattr(keyweight, "WINDOW", 10**7)  # every window is the whole piece: the global key
    assert windowed > f_sharp_share() + 0.3
