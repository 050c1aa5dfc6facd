"""Harmonisation metrics on hand-built four-voice progressions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from amt.errors import AmtError
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes
from amt.training.harmony import (
    BACH_COMPASS,
    DIAGNOSTIC,
    SATB_RANGES,
    VOICE_PROGRAMS,
    HarmonyError,
    Tally,
    Voices,
    beat_pitches,
    beat_ticks,
    estimate_key,
    format_harmony_table,
    harmonize_report,
    key_pitch_classes,
    random_harmonization,
)

META = MidiMeta(ticks_per_beat=480, tempos=((0, 60.0),))  # one beat per second
C_MAJOR = key_pitch_classes(0, "major")


def chorale(voices: dict[str, list[int]], *, beat: float = 1.0):
    """One note per beat per voice (pitch -1: a rest), as MidiTokens on the sax-quartet programs."""
    onsets, durations, pitches, instruments = [], [], [], []
    for voice, line in voices.items():
        for i, pitch in enumerate(line):
            if pitch >= 0:
                onsets.append(i * beat)
                durations.append(beat)
                pitches.append(pitch)
                instruments.append(VOICE_PROGRAMS[voice])
    return midi_tokens_from_notes(np.array(onsets), np.array(durations), np.array(pitches),
                                  np.array(instruments), meta=META, source="test")


def score(piece, reference=None, key=C_MAJOR) -> dict[str, float]:
    tally = Tally()
    tally.add(Voices.from_midi(piece), Voices.from_midi(reference or piece), key)
    return tally.metrics()


# C major, I - V6: no parallels, no crossings, all in range.
CLEAN = {"soprano": [72, 71], "alto": [67, 67], "tenor": [64, 62], "bass": [48, 55]}


def test_clean_progression_scores_zero():
    metrics = score(chorale(CLEAN))
    assert metrics["parallel_fifths"] == 0 and metrics["parallel_octaves"] == 0
    assert metrics["voice_crossings"] == 0 and metrics["out_of_range"] == 0
    assert metrics["in_key"] == 1 and metrics["chord_agreement"] == 1
    assert metrics["notes_per_beat"] == 1 and metrics["voice_coverage"] == 1


def test_parallel_fifth_counted_once_per_pair_move():
    # Soprano C5 -> D5 over alto F4 -> G4: a fifth moving up to a fifth. Tenor and bass avoid any other.
    piece = chorale({"soprano": [72, 74], "alto": [65, 67], "tenor": [60, 59], "bass": [53, 53]})
    metrics = score(piece)
    assert metrics["parallel_fifths"] == pytest.approx(1 / 6)  # 6 voice pairs x 1 move
    assert metrics["parallel_octaves"] == 0


def test_parallel_octave_and_static_fifths():
    # Soprano/alto fall from a fifth to a fifth; tenor/bass rise from an octave to an octave.
    piece = chorale({"soprano": [79, 74], "alto": [72, 67], "tenor": [60, 62], "bass": [48, 50]})
    metrics = score(piece)
    assert metrics["parallel_octaves"] == pytest.approx(1 / 6)
    assert metrics["parallel_fifths"] == pytest.approx(1 / 6)
    # A repeated fifth (tenor/bass hold G3/C3) is not a parallel; soprano/alto leave their fifth for a ninth.
    static = chorale({"soprano": [72, 74], "alto": [65, 60], "tenor": [55, 55], "bass": [48, 48]})
    assert score(static)["parallel_fifths"] == 0


def test_voice_crossing_and_out_of_range():
    # Alto above soprano on beat 2; bass at B0 (23), far below E2.
    piece = chorale({"soprano": [72, 67], "alto": [67, 69], "tenor": [60, 60], "bass": [48, 23]})
    metrics = score(piece)
    assert metrics["voice_crossings"] == pytest.approx(1 / 6)  # 3 adjacent pairs x 2 beats
    assert metrics["out_of_range"] == pytest.approx(1 / 6)  # 6 written notes, one out of range
    assert SATB_RANGES["bass"][0] > 23


def test_in_key_and_chord_agreement():
    reference = chorale(CLEAN)
    # An F# in the alto on beat 1: out of C major, and beat 1's pitch classes {C, E, F#} vs Bach's {C, E, G}.
    piece = chorale({**CLEAN, "alto": [66, 67]})
    metrics = score(piece, reference)
    assert metrics["in_key"] == pytest.approx(5 / 6)
    assert metrics["chord_agreement"] == pytest.approx((2 / 4 + 1) / 2)


def test_density_and_coverage():
    # The tenor plays eighth notes, the bass rests on beat 2.
    notes = [("soprano", 0, 1, 72), ("soprano", 1, 1, 71), ("alto", 0, 1, 67), ("alto", 1, 1, 67),
             ("tenor", 0, 0.5, 64), ("tenor", 0.5, 0.5, 65), ("tenor", 1, 0.5, 62), ("tenor", 1.5, 0.5, 60),
             ("bass", 0, 1, 48)]
    voice, onset, duration, pitch = zip(*notes, strict=True)
    piece = midi_tokens_from_notes(np.array(onset, float), np.array(duration, float), np.array(pitch),
                                   np.array([VOICE_PROGRAMS[v] for v in voice]), meta=META)
    metrics = score(piece, chorale(CLEAN))
    assert metrics["notes_per_beat"] == pytest.approx(7 / 6)  # alto 2 + tenor 4 + bass 1, 3 voices x 2 beats
    assert metrics["voice_coverage"] == pytest.approx(5 / 6)


def test_beat_grid_follows_tempo_map():
    meta = MidiMeta(ticks_per_beat=480, tempos=((0, 60.0), (960, 120.0)))
    assert beat_ticks(meta, 350).tolist() == [0, 100, 200, 250, 300]
    voices = Voices.from_midi(chorale({"soprano": [72, -1, 74], "bass": [48, 50, -1]}))
    grid = beat_pitches(voices, beat_ticks(META, 300))
    assert grid[:, 0].tolist() == [72, -1, 74] and grid[:, 3].tolist() == [48, 50, -1]


def test_a_voice_is_where_its_newest_note_is():
    # Soprano C5 then B4, the C5's end rounded one tick past the B4's onset: at beat 2 the soprano sings B4.
    # Bass C3 and E3 starting together (divided): the lower is the bass's pitch.
    empty = (np.zeros(0, np.int64),) * 3
    voices = Voices({"soprano": (np.array([0, 100]), np.array([101, 200]), np.array([72, 71])),
                     "alto": empty, "tenor": empty,
                     "bass": (np.array([0, 0]), np.array([200, 200]), np.array([52, 48]))}, META)
    grid = beat_pitches(voices, np.array([0, 100]))
    assert grid[:, 0].tolist() == [72, 71] and grid[:, 3].tolist() == [48, 48]


def test_key_estimation():
    c_major = np.array([60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60])
    assert estimate_key(c_major) == (0, "major")
    a_minor = np.array([57, 59, 60, 62, 64, 65, 68, 69, 64, 57, 60, 57])
    assert estimate_key(a_minor) == (9, "minor")
    assert 8 in key_pitch_classes(9, "minor")  # the raised seventh, G#
    with pytest.raises(AmtError):
        estimate_key(np.array([], dtype=np.int64))


def test_random_baseline_keeps_soprano_rhythm_key_and_bachs_compass():
    reference = chorale({"soprano": [72, 74, 76, 77, 79, 77, 76, 74, 72], "alto": [67] * 9,
                         "tenor": [60] * 9, "bass": [48] * 9})
    out = random_harmonization(reference, np.random.default_rng(0))
    voices = Voices.from_midi(out)
    np.testing.assert_array_equal(voices.notes["soprano"][2], Voices.from_midi(reference).notes["soprano"][2])
    for voice in ("alto", "tenor", "bass"):
        onsets, _, pitches = voices.notes[voice]
        np.testing.assert_array_equal(onsets, voices.notes["soprano"][0])
        low, high = BACH_COMPASS[voice]
        assert pitches.min() >= low and pitches.max() <= high
        assert set((pitches % 12).tolist()) <= C_MAJOR
    # Bach's compass reaches past the textbook ranges (the bass down to C2): random notes can leave them,
    # so the out-of-range row can tell a system that keeps to the ranges from random notes.
    many = Voices.from_midi(random_harmonization(chorale({"soprano": [72] * 400, "alto": [67] * 400,
                                                          "tenor": [60] * 400, "bass": [48] * 400}),
                                                 np.random.default_rng(0)))
    bass = many.notes["bass"][2]
    assert (bass < SATB_RANGES["bass"][0]).any() and (bass >= SATB_RANGES["bass"][0]).mean() > 0.5


def test_report_and_table():
    reference = chorale({"soprano": [72, 74, 76, 74, 72, 71, 72, 74],
                         "alto": [67, 65, 67, 65, 64, 62, 64, 65],
                         "tenor": [64, 62, 60, 59, 60, 55, 55, 59], "bass": [48, 50, 48, 43, 45, 43, 48, 43]})
    crossed = chorale({"soprano": [72, 74, 76, 74, 72, 71, 72, 74], "alto": [76, 77, 79, 77, 76, 74, 76, 77],
                       "tenor": [64, 62, 60, 59, 60, 55, 55, 59], "bass": [48, 50, 48, 43, 45, 43, 48, 43]})
    report = harmonize_report([[reference, crossed]], [reference], random_samples=2, seed=1)
    assert report["samples"] == 2 and report["pieces"] == 1 and report["random_samples"] == 2
    assert report["bach"]["chord_agreement"] == 1
    assert report["model"]["voice_crossings"] == pytest.approx(report["bach"]["voice_crossings"] / 2 + 8 / 48)
    assert report == harmonize_report([[reference, crossed]], [reference], random_samples=2, seed=1)
    assert set(report["closer_to_bach"]) == {"parallel_fifths", "parallel_octaves", "voice_crossings",
                                             "out_of_range", "in_key", "chord_agreement", "notes_per_beat",
                                             "chord_forming", "short_notes"}
    # Bach's voices in this piece: 8 beats, C-G-C-G-Am-G-C-G shapes all fitting a chord; no short notes.
    assert report["bach"]["short_notes"] == 0
    assert report["bach"]["chord_forming"] > report["random"]["chord_forming"]
    assert report["all_closer"] == all(report["closer_to_bach"].values())
    table = format_harmony_table(report)
    assert "parallel fifths" in table and table.count("\n") == 11
    assert table.count("(diagnostic)") == len(DIAGNOSTIC) == 1
    with pytest.raises(HarmonyError, match="lacks"):
        harmonize_report([reference], [chorale({"soprano": [72]})])
