"""The MIDI writer never writes a file its own reader refuses: long gaps, many tracks, far-off notes."""

import numpy as np
import pytest

from amt.errors import MidiError, TokenError
from amt.tokenization.midi import (
    MAX_TRACKS,
    MidiMeta,
    events_to_midi_bytes,
    read_midi,
    write_midi,
)
from amt.tokenization.vocab import DUR_OFFSET, NOTE_OFFSET, TIME_OFFSET, TIME_RESOLUTION


def _events(onsets, durations=None, pitch=60):
    onsets = np.asarray(onsets, dtype=np.int64)
    durations = np.full(len(onsets), 50) if durations is None else np.asarray(durations)
    notes = np.full(len(onsets), NOTE_OFFSET + pitch)
    return np.stack([onsets + TIME_OFFSET, durations + DUR_OFFSET, notes], 1)


def test_a_gap_of_2_to_the_28_midi_ticks_reads_back():
    # 32,000 ticks per quarter at 1 ms per quarter: a MIDI tick lasts 31.25 ns, so 10 s of silence is
    # 3.2e8 ticks, over the 2^28 - 1 a four-byte delta time can hold.
    meta = MidiMeta(ticks_per_beat=32_000, tempos=((0, 60_000.0),))
    events = _events([0, 10 * TIME_RESOLUTION, 30 * TIME_RESOLUTION])
    back = read_midi(events_to_midi_bytes(events, meta=meta))
    np.testing.assert_array_equal(back.events, events)


def test_a_note_longer_than_2_to_the_28_midi_ticks_reads_back():
    meta = MidiMeta(ticks_per_beat=32_000, tempos=((0, 60_000.0),))
    events = _events([0], durations=[9 * TIME_RESOLUTION])  # 2.9e8 ticks from its note-on to its note-off
    back = read_midi(events_to_midi_bytes(events, meta=meta))
    np.testing.assert_array_equal(back.events, events)


def test_notes_beyond_what_the_reader_accepts_are_refused_on_write(tmp_path):
    # `amt detokenize` of a token file whose times add up to days: a clear error, no file.
    events = _events([0, 25 * 3600 * TIME_RESOLUTION])
    out = tmp_path / "far.mid"
    with pytest.raises(TokenError, match="24 hours"):
        write_midi(out, events)
    assert not out.exists()


def test_a_tempo_the_reader_refuses_is_refused_on_write():
    with pytest.raises(TokenError, match="tempo"):
        events_to_midi_bytes(_events([0]), meta=MidiMeta(tempos=((0, 100_000.0),)))


def _many_track_file(tracks: int) -> bytes:
    """A type-1 file with one note in each of ``tracks`` track chunks (no tempo track)."""
    body = b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
    chunk = b"MTrk" + len(body).to_bytes(4, "big") + body
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + tracks.to_bytes(2, "big")
    return header + (480).to_bytes(2, "big") + chunk * tracks


def test_a_file_with_as_many_tracks_as_the_reader_accepts_fails_clearly_on_write(tmp_path):
    midi = read_midi(_many_track_file(MAX_TRACKS))
    assert len(midi.meta.track_names) == MAX_TRACKS
    out = tmp_path / "out.mid"
    with pytest.raises(TokenError, match="tracks"):
        write_midi(out, midi.events, meta=midi.meta, velocities=midi.velocities, tracks=midi.tracks)
    assert not out.exists()


def test_one_track_fewer_round_trips():
    midi = read_midi(_many_track_file(MAX_TRACKS - 1))
    data = events_to_midi_bytes(midi.events, meta=midi.meta, velocities=midi.velocities, tracks=midi.tracks)
    back = read_midi(data)
    np.testing.assert_array_equal(back.events, midi.events)
    np.testing.assert_array_equal(back.tracks, midi.tracks + 1)  # after the tempo track


def test_reader_still_refuses_more_tracks_than_its_limit():
    with pytest.raises(MidiError, match="tracks"):
        read_midi(_many_track_file(MAX_TRACKS + 1))


def test_detokenize_refuses_tokens_it_could_not_write_readably(tmp_path, capsys):
    from amt.cli import main

    tokens = tmp_path / "far.txt"
    tokens.write_text(" ".join(map(str, _events([0, 25 * 3600 * TIME_RESOLUTION]).reshape(-1).tolist())))
    out = tmp_path / "far.mid"
    assert main(["detokenize", str(tokens), "--out", str(out)]) == 2
    assert "24 hours" in capsys.readouterr().err
    assert not out.exists()


def _dense_file(notes: int) -> bytes:
    """One track of ``notes`` notes with running status: 6 bytes a note."""
    pitch = 60 + np.arange(notes) % 24
    body = np.stack([np.ones(notes), pitch, np.full(notes, 64), np.ones(notes), pitch, np.zeros(notes)], 1)
    track = b"\x00\x90" + body.astype(np.uint8).tobytes()[1:] + b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + (480).to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + track


def test_a_file_with_more_messages_than_the_limit_is_refused_naming_the_limit(monkeypatch):
    data = _dense_file(3000)  # 6,001 messages with the end of track
    assert len(read_midi(data, max_messages=6001)) == 3000
    with pytest.raises(MidiError, match=r"6,000.*AMT_MAX_MIDI_MESSAGES"):
        read_midi(data, max_messages=6000)
    monkeypatch.setenv("AMT_MAX_MIDI_MESSAGES", "5000")
    with pytest.raises(MidiError, match="5,000"):
        read_midi(data)
    monkeypatch.setenv("AMT_MAX_MIDI_MESSAGES", "7000")
    assert len(read_midi(data)) == 3000
    monkeypatch.setenv("AMT_MAX_MIDI_MESSAGES", "many")
    with pytest.raises(MidiError, match="AMT_MAX_MIDI_MESSAGES"):
        read_midi(data)


@pytest.mark.slow
def test_the_default_limit_refuses_a_file_of_millions_of_notes_in_bounded_memory():
    import tracemalloc

    from amt.tokenization.midi import MAX_MESSAGES

    data = _dense_file(MAX_MESSAGES // 2 + 1)
    tracemalloc.start()
    try:
        with pytest.raises(MidiError, match="messages"):
            read_midi(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * len(data)  # bytes a file byte may cost while parsing (about 16 measured)
