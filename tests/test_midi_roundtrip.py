"""MIDI -> events -> MIDI -> events is exact, and written files carry the side information."""

from __future__ import annotations

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

from amt.errors import TokenError
from amt.tokenization import ops
from amt.tokenization.midi import (
    GM_INSTRUMENT_NAMES,
    MidiMeta,
    events_to_midi_bytes,
    events_to_score,
    midi_tokens_from_notes,
    read_midi,
    write_midi,
)
from amt.tokenization.vocab import DRUMS, DUR_OFFSET, MAX_DUR, NOTE_OFFSET, REST

NAMES = [
    "bach_bwv66.6",
    "beethoven_opus18no1_movement1",
    "mozart_k156_movement1",
    "synth_tempo_trumpet_drums",
]


def by_instrument(events: np.ndarray) -> np.ndarray:
    """Written files hold one track per instrument, so simultaneous notes of different instruments come back
    in instrument order; notes of one instrument keep their order."""
    return events[np.lexsort((ops.instrument_of(events[:, 2]), events[:, 0]))]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_meta", [True, False])
def test_reference_files_round_trip(reference_dir, name, with_meta, tmp_path):
    original = read_midi(reference_dir / f"{name}.mid")
    path = tmp_path / "out.mid"
    meta = original.meta if with_meta else None
    write_midi(path, original.events, meta=meta, velocities=original.velocities)
    back = read_midi(path)
    order = np.lexsort((ops.instrument_of(original.events[:, 2]), original.events[:, 0]))
    assert np.array_equal(back.events, original.events[order])
    assert np.array_equal(back.velocities, original.velocities[order])
    if with_meta:
        assert back.meta.ticks_per_beat == original.meta.ticks_per_beat
        assert back.meta.tempos == original.meta.tempos
        assert back.meta.time_signatures == original.meta.time_signatures
    else:
        assert back.meta.tempos == ((0, 120.0),)
    # A second trip is exact as arrays, tie order included.
    write_midi(path, back.events, meta=back.meta, velocities=back.velocities)
    assert np.array_equal(read_midi(path).events, back.events)
    assert not [p for p in tmp_path.iterdir() if p.name != "out.mid"]  # no temporary files left


def test_tracks_are_named_after_instruments_with_drums_on_channel_10(reference_dir):
    original = read_midi(reference_dir / "synth_tempo_trumpet_drums.mid")
    score = events_to_score(original.events, meta=original.meta)
    named = {track.name: track for track in score.tracks if track.notes}
    assert set(named) == {GM_INSTRUMENT_NAMES[56], GM_INSTRUMENT_NAMES[DRUMS]}
    assert named["Trumpet"].program == 56 and not named["Trumpet"].is_drum
    assert named["Drums"].is_drum
    assert isinstance(score, symusic.Score)


def test_more_than_15_melodic_instruments(tmp_path):
    instruments = np.arange(20) * 5  # 20 melodic programs, each on its own pitch
    onset = np.repeat(np.arange(0, 200, 50), 20)
    events = np.stack(
        [
            onset,
            np.full(len(onset), DUR_OFFSET + 80),
            NOTE_OFFSET + 128 * np.tile(instruments, 4) + 40 + np.tile(np.arange(20), 4),
        ],
        axis=1,
    )
    back = read_midi(events_to_midi_bytes(events))
    assert back.instruments() == tuple(int(i) for i in instruments)
    assert np.array_equal(back.events, by_instrument(events))


def test_overlapping_notes_of_one_pitch_keep_their_durations():
    # A note that starts inside a longer note of the same pitch and ends first: first-in-first-out pairing
    # would swap the durations if both were on one channel.
    events = np.array(
        [
            [0, DUR_OFFSET + 300, NOTE_OFFSET + 60],
            [100, DUR_OFFSET + 50, NOTE_OFFSET + 60],
            [100, DUR_OFFSET + 0, NOTE_OFFSET + 60],
            [400, DUR_OFFSET + 999, NOTE_OFFSET + 60],
        ]
    )
    assert np.array_equal(read_midi(events_to_midi_bytes(events)).events, events)


def test_rests_are_skipped_and_bad_tokens_refused(tmp_path):
    events = np.array([[0, DUR_OFFSET + 10, NOTE_OFFSET + 60], [100, DUR_OFFSET, REST]])
    assert np.array_equal(read_midi(events_to_midi_bytes(events)).events, events[:1])
    with pytest.raises(TokenError):
        write_midi(tmp_path / "bad.mid", ops.to_controls(events[:1]))
    assert not list(tmp_path.iterdir())


def test_meta_conversions(reference_dir):
    meta = read_midi(reference_dir / "synth_tempo_trumpet_drums.mid").meta  # 100 BPM, 150 BPM from tick 768
    assert meta.ticks_per_beat == 96
    assert meta.ticks_to_seconds(768) == pytest.approx(4.8)
    assert meta.ticks_to_seconds(768 + 96) == pytest.approx(5.2)
    assert meta.seconds_to_ticks(5.2) == 768 + 96
    assert np.array_equal(meta.seconds_to_ticks(np.array([0.0, 0.6])), [0, 96])
    assert meta.bar_to_seconds(1) == 0.0
    assert meta.bar_to_seconds(3) == pytest.approx(4.8)  # 4/4 by default: bars of 384 ticks
    assert meta.bar_to_seconds(3.25) == pytest.approx(5.2)


def test_midi_tokens_from_notes():
    meta = MidiMeta(ticks_per_beat=480, tempos=((0, 60.0),), time_signatures=((0, 3, 4),))
    notes = midi_tokens_from_notes(
        np.array([1.0, 0.5]),
        np.array([0.25, 20.0]),
        np.array([60, 64]),
        np.array([0, DRUMS]),
        velocities=np.array([90, 100]),
        meta=meta,
    )
    assert notes.events.tolist() == [
        [50, DUR_OFFSET + MAX_DUR - 1, NOTE_OFFSET + 128 * DRUMS + 64],
        [100, DUR_OFFSET + 25, NOTE_OFFSET + 60],
    ]
    assert notes.velocities.tolist() == [100, 90]
    assert notes.instruments() == (0, DRUMS)
    assert notes.meta.bar_to_seconds(2) == pytest.approx(3.0)


@st.composite
def event_arrays(draw):
    count = draw(st.integers(0, 40))
    instruments = draw(st.lists(st.integers(0, 127), min_size=1, max_size=4))
    onset = np.sort(np.array(draw(st.lists(st.integers(0, 3000), min_size=count, max_size=count)), np.int64))
    duration = np.array(draw(st.lists(st.integers(0, MAX_DUR - 1), min_size=count, max_size=count)), np.int64)
    instrument = np.array(
        draw(st.lists(st.sampled_from(instruments), min_size=count, max_size=count)), np.int64
    )
    pitch = np.array(draw(st.lists(st.integers(0, 127), min_size=count, max_size=count)), np.int64)
    return np.stack([onset, DUR_OFFSET + duration, NOTE_OFFSET + 128 * instrument + pitch], axis=1).reshape(
        -1, 3
    )


@settings(max_examples=150, deadline=None)
@given(
    events=event_arrays(),
    tempo=st.sampled_from([None, 63.0, 120.0, 133.0]),
    ticks_per_beat=st.sampled_from([96, 480, 10080]),
)
def test_random_event_arrays_round_trip(events, tempo, ticks_per_beat):
    """Any event array survives when a MIDI tick is at most 10 ms (here: 63 BPM x 96 ticks = 9.9 ms);
    with coarser ticks only times that fall on MIDI ticks can, e.g. events read from such a file."""
    meta = None if tempo is None else MidiMeta(ticks_per_beat=ticks_per_beat, tempos=((0, tempo),))
    velocities = (np.arange(len(events)) % 126 + 1).astype(np.uint8)
    back = read_midi(events_to_midi_bytes(events, meta=meta, velocities=velocities))
    order = np.lexsort((ops.instrument_of(events[:, 2]), events[:, 0]))
    assert np.array_equal(back.events, events[order])
    assert np.array_equal(back.velocities, velocities[order])


@pytest.mark.parametrize("suffix", ["events", "padded", "interleaved"])
def test_detokenize_cli_reads_every_reference_format(reference_dir, suffix, tmp_path):
    from amt.cli import main

    name = "synth_tempo_trumpet_drums"
    out = tmp_path / "out.mid"
    assert main(["detokenize", str(reference_dir / f"{name}.{suffix}.txt"), "--out", str(out)]) == 0
    original = read_midi(reference_dir / f"{name}.mid").events
    assert np.array_equal(read_midi(out).events, by_instrument(original))  # controls became notes again


def test_detokenize_cli_places_packed_pieces_one_after_another(reference_dir, tmp_path):
    from amt.cli import main

    out = tmp_path / "line.mid"
    assert main(["detokenize", str(reference_dir / "bach_bwv66.6.packed-line0.txt"), "--out", str(out)]) == 0
    events = read_midi(out).events
    first = read_midi(reference_dir / "bach_bwv66.6.mid").events
    assert np.array_equal(events[: len(first)], first)  # the plain copy comes first, unchanged
    assert events[len(first), 0] >= (first[:, 0] + first[:, 1] - DUR_OFFSET).max()


def expected_track_name(meta: MidiMeta, track: int, instrument: int, split: bool) -> str:
    """What ``events_to_midi_bytes`` names the output track of a note (see its docstring)."""
    name = meta.track_names[track].strip() if track >= 0 else ""
    if not name:
        return GM_INSTRUMENT_NAMES[instrument]
    return f"{name} ({GM_INSTRUMENT_NAMES[instrument]})" if split else meta.track_names[track]


@pytest.mark.parametrize("name", NAMES)
def test_reference_files_keep_their_tracks_and_track_names(reference_dir, name, tmp_path):
    original = read_midi(reference_dir / f"{name}.mid")
    path = tmp_path / "out.mid"
    write_midi(path, original.events, meta=original.meta, velocities=original.velocities,
               tracks=original.tracks)
    back = read_midi(path)
    # Each reference track plays one instrument: the file comes back in its own order, ties included.
    assert np.array_equal(back.events, original.events)
    assert np.array_equal(back.velocities, original.velocities)
    instruments = ops.instrument_of(original.events[:, 2])
    names = [expected_track_name(original.meta, t, i, False)
             for t, i in zip(original.tracks, instruments, strict=True)]
    assert [back.meta.track_names[t] for t in back.tracks] == names
    write_midi(path, back.events, meta=back.meta, velocities=back.velocities, tracks=back.tracks)
    again = read_midi(path)
    assert np.array_equal(again.events, back.events)
    assert again.meta.track_names == back.meta.track_names


def test_beethoven_parts_keep_their_names_and_new_notes_are_named_after_their_instrument(reference_dir):
    quartet = read_midi(reference_dir / "beethoven_opus18no1_movement1.mid")
    assert quartet.meta.track_names == ("", "Violin I", "Violin II", "Viola", "Cello")
    # As the sampler writes an accompaniment: Violin I kept, everything else new (no track).
    tracks = np.where(quartet.tracks == 1, 1, -1)
    score = events_to_score(quartet.events, meta=quartet.meta, velocities=quartet.velocities, tracks=tracks)
    counts: dict[str, int] = {}
    for track in score.tracks:  # symusic splits a track by channel: overlapping notes use a second one
        counts[track.name] = counts.get(track.name, 0) + len(track.notes)
    counts.pop("", None)
    assert counts == {
        "Violin I": int((quartet.tracks == 1).sum()),
        "Violin": int((quartet.tracks == 2).sum()),  # Violin II's notes, now new, share program 40
        "Viola": int((quartet.tracks == 3).sum()),
        "Cello": int((quartet.tracks == 4).sum()),
    }
    back = read_midi(events_to_midi_bytes(quartet.events, meta=quartet.meta, tracks=tracks))
    assert back.meta.track_names == ("", "Violin I", "Violin", "Viola", "Cello")


def test_one_track_of_several_instruments_is_split_and_bad_track_indices_refused():
    piano, violin = NOTE_OFFSET + 60, NOTE_OFFSET + 40 * 128 + 67
    events = np.array([[0, DUR_OFFSET + 50, piano], [0, DUR_OFFSET + 50, violin]])
    meta = MidiMeta(track_names=("Song",))
    back = read_midi(events_to_midi_bytes(events, meta=meta, tracks=np.array([0, 0])))
    assert back.meta.track_names == ("", "Song (Acoustic Grand Piano)", "Song (Violin)")
    assert np.array_equal(back.events, events)
    for bad in ([0, 1], [-2, 0], [0]):
        with pytest.raises(TokenError):
            events_to_midi_bytes(events, meta=meta, tracks=np.array(bad))


@settings(max_examples=150, deadline=None)
@given(events=event_arrays(), data=st.data())
def test_random_event_arrays_with_tracks_round_trip(events, data):
    """Notes of one instrument spread over several tracks (as in a string quartet's two violins), simultaneous
    and overlapping, still read back with their own durations, in (onset, output track) order."""
    meta = MidiMeta(track_names=("", "A", "B", ""))
    tracks = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=len(events), max_size=len(events))),
                      dtype=np.int64)
    back = read_midi(events_to_midi_bytes(events, meta=meta, tracks=tracks))
    instruments = ops.instrument_of(events[:, 2]).tolist()
    pairs = list(zip(tracks.tolist(), instruments, strict=True))
    groups = sorted(set(pairs), key=lambda g: (g[0] < 0, g))
    rank = np.array([groups.index(g) for g in pairs], dtype=np.int64)
    order = np.lexsort((rank, events[:, 0]))
    assert np.array_equal(back.events, events[order])
    split = {t for t, _ in groups if sum(u == t for u, _ in groups) > 1}
    names = [expected_track_name(meta, *pairs[j], pairs[j][0] in split) for j in order]
    assert [back.meta.track_names[t] for t in back.tracks] == names


def test_simultaneous_notes_of_one_pitch_on_two_tracks_keep_their_durations():
    # Note 0 is on the later track: its note-on is read second, so it must not share a channel with note 1,
    # or note 1 (read first) would be closed by note 0's earlier note-off.
    events = np.array([[0, DUR_OFFSET + 50, NOTE_OFFSET + 60], [0, DUR_OFFSET + 300, NOTE_OFFSET + 60]])
    meta = MidiMeta(track_names=("", "Left", "Right"))
    back = read_midi(events_to_midi_bytes(events, meta=meta, tracks=np.array([2, 1])))
    assert np.array_equal(back.events, events[::-1])
    assert [back.meta.track_names[t] for t in back.tracks] == ["Left", "Right"]
