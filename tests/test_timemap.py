"""The time map: beats <-> seconds <-> model ticks through a tempo map, bars through a meter map, grids and
beats exactly as a MIDI file's own tick arithmetic gives them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amt.tokenization.midi import MidiMeta, read_midi
from amt.tokenization.timemap import TimeMap, TimeMapError

from conftest import REFERENCE_DIR as REFERENCE

TEMPO_FILE = REFERENCE / "synth_tempo_trumpet_drums.mid"  # 100 bpm, 150 bpm from beat 8


def test_tempo_map_converts_piecewise():
    tempo = TimeMap.from_beats([(0, 120), (4, 60), (6, 240)])
    # 4 beats at 0.5 s, 2 beats at 1 s, then 0.25 s per beat.
    assert tempo.to_seconds(4) == pytest.approx(2.0)
    assert tempo.to_seconds(5) == pytest.approx(3.0)
    assert tempo.to_seconds(6) == pytest.approx(4.0)
    assert tempo.to_seconds(10) == pytest.approx(5.0)
    assert tempo.to_beats(3.0) == pytest.approx(5.0)
    assert tempo.mean_bpm(4, 10) == pytest.approx(60 * 6 / 3.0)
    assert tempo.beats_to_ticks([4, 10]).tolist() == [200, 500]
    assert tempo.shifted(100).beats_to_ticks([4, 10]).tolist() == [100, 400]  # model tick 0 is at 1 s
    assert tempo.shifted(100).ticks_to_beats(400) == pytest.approx(10.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.25, 64), st.floats(20, 300)), min_size=0, max_size=6),
    st.floats(20, 300),
    st.lists(st.floats(0, 200), min_size=1, max_size=20),
)
def test_beats_seconds_round_trip(changes, first_bpm, beats):
    points = [(0.0, first_bpm)]
    for gap, bpm in changes:
        points.append((points[-1][0] + gap, bpm))
    tempo = TimeMap.from_beats(points)
    b = np.array(beats)
    seconds = tempo.to_seconds(b)
    assert np.all(np.diff(tempo.to_seconds(np.sort(b))) >= 0)
    np.testing.assert_allclose(tempo.to_beats(seconds), b, rtol=0, atol=1e-9)


def test_bad_maps_are_refused_with_the_reason():
    for points, reason in (([(1, 120)], "start at beat 0"), ([(0, 0)], "positive"),
                           ([(0, 120), (0, 90)], "increasing"), ([(0, float("nan"))], "positive")):
        with pytest.raises(TimeMapError, match=reason):
            TimeMap.from_beats(points)
    with pytest.raises(TimeMapError, match="bar line"):
        TimeMap.from_beats([(0, 120)], [(0, 4, 4), (6, 3, 4)])
    with pytest.raises(TimeMapError, match="time signature map must start"):
        TimeMap.from_beats([(0, 120)], [(2, 4, 4)])


def test_bars_through_the_meter_map():
    meter = TimeMap.from_beats([(0, 120)], [(0, 4, 4), (8, 3, 4), (14, 6, 8)])
    assert meter.bar_to_beat(1) == 0
    assert meter.bar_to_beat(2.5) == 6  # half-way through bar 2 (4/4)
    assert meter.bar_to_beat(3) == 8  # 3/4 starts at bar 3
    assert meter.bar_to_beat(5) == 14  # 6/8 (3 beats per bar) from bar 5
    assert meter.bar_to_beat(6) == 17
    assert meter.starts_bar(np.array([0, 4, 6, 8, 11, 14, 15.5, 17])).tolist() == [
        True, True, False, True, True, True, False, True]
    with pytest.raises(TimeMapError, match="before bar 1"):
        meter.bar_to_beat(0.5)


def test_beats_are_the_meters_counting_unit_and_bar_starts_are_strong():
    # 3/4 then 6/8 from beat 6, at 60 bpm (a quarter note is 100 ticks): 6/8 counts dotted quarters.
    time_map = TimeMap.from_beats([(0, 60)], [(0, 3, 4), (6, 6, 8)])
    ticks, strong = time_map.beats(1200)
    assert ticks.tolist() == [0, 100, 200, 300, 400, 500, 600, 750, 900, 1050]
    assert ticks[strong].tolist() == [0, 300, 600, 900]
    # A file without time signatures: 120 bpm quarter notes, bar lines unknown.
    ticks, strong = TimeMap().beats(200)
    assert ticks.tolist() == [0, 50, 100, 150] and not strong.any()
    # Far into a project only the beats from model tick 0 on are built (with the one before it).
    ticks, _ = time_map.shifted(10_000_000).beats(300)
    assert len(ticks) <= 4 and ticks[0] <= 0 < ticks[1]


def test_a_files_grid_and_beats_match_its_own_tick_arithmetic():
    # The file map rounds grid lines to whole MIDI ticks as MidiMeta does: the same ticks, exactly, through
    # the tempo change (100 bpm, then 150 bpm) and at grids that do not divide the file's resolution.
    meta = read_midi(TEMPO_FILE).meta
    time_map = TimeMap.from_meta(meta)
    for steps in (1, 2, 3, 4, 7, 12, 24):
        assert np.array_equal(time_map.grid_ticks(Fraction(1, steps), 5000), meta.grid_ticks(steps, 5000))
    assert time_map.grid_ticks(Fraction(1, 4), 100).tolist() == [0, 15, 30, 45, 60, 75, 90]
    # A map without tempo is the MIDI standard's 120 bpm: a sixteenth is 12.5 ticks, rounded half to even.
    assert TimeMap().grid_ticks(Fraction(1, 4), 50).tolist() == [0, 12, 25, 38, 50]
    assert np.array_equal(TimeMap().grid_ticks(Fraction(1, 7), 3000), MidiMeta().grid_ticks(7, 3000))


def test_a_grid_far_into_a_project_is_built_from_model_tick_0():
    time_map = TimeMap.from_beats([(0, 120)]).shifted(500_000)  # model tick 0 is beat 10,000
    steps = time_map.grid_ticks(Fraction(1, 64), 200)
    assert steps[0] == 0 and steps[-1] <= 200 and len(steps) < 64 * 2 * 2 + 2
    assert np.all(np.diff(steps) >= 0)
