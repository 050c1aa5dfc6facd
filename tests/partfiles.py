"""Small multi-part MIDI files as real files are: every part on program 0 (no program change at all), tracks
without names or with the same name twice, notes on a 16th grid of a tempo whose grid is not on 10 ms ticks,
and a conductor track whose end-of-track comes long after the music."""

from __future__ import annotations

import io

import mido

TICKS_PER_BEAT = 480
BPM = 95  # a 16th lasts 157.89 ms: the grid falls between 10 ms model ticks
BARS = 8
LATE_END_BEATS = 40  # the conductor track ends this many beats after the music (about 25 s)
MELODY = (67, 69, 71, 72, 74, 72, 71, 69, 67, 71, 74, 79, 76, 74, 72, 71)
CHORDS = ((55, 59, 62), (57, 60, 64), (55, 59, 62), (57, 60, 64))
BASS = (43, 45, 38, 43)


def _track(name: str | None, channel: int, notes: list[tuple[int, int, int, int]]) -> mido.MidiTrack:
    """A track of (start tick, length in ticks, pitch, velocity) notes on ``channel``, program 0 implied."""
    track = mido.MidiTrack()
    if name is not None:
        track.append(mido.MetaMessage("track_name", name=name, time=0))
    messages = []
    for start, length, pitch, velocity in notes:
        messages.append((start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        messages.append((start + length, 0, mido.Message("note_off", channel=channel, note=pitch)))
    now = 0
    for tick, _, message in sorted(messages, key=lambda m: (m[0], m[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    return track


def song(names: tuple[str | None, ...] = (None, None, None), parts: int = 3) -> bytes:
    """A song of ``parts`` parts (melody, chords, bass; all program 0) with the given track names (None: no
    name), as MIDI bytes."""
    sixteenth = TICKS_PER_BEAT // 4
    melody, chords, bass = [], [], []
    for bar in range(BARS):
        at = bar * 4 * TICKS_PER_BEAT
        for k in range(8):  # eighths, the odd ones as a dotted 16th + 16th for a real grid
            pitch = MELODY[(bar * 8 + k) % len(MELODY)]
            length = 3 * sixteenth if k % 2 == 0 else sixteenth
            start = at + (k // 2) * TICKS_PER_BEAT + (0 if k % 2 == 0 else 3 * sixteenth)
            melody.append((start, length, pitch, 90 + k))
        for half in range(2):
            for pitch in CHORDS[(2 * bar + half) % len(CHORDS)]:
                chords.append((at + 2 * half * TICKS_PER_BEAT, 2 * TICKS_PER_BEAT - sixteenth, pitch, 64))
        bass.append((at, 4 * TICKS_PER_BEAT - sixteenth, BASS[bar % len(BASS)], 75))
    end = BARS * 4 * TICKS_PER_BEAT
    conductor = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM), time=end + LATE_END_BEATS * TICKS_PER_BEAT),
    ])
    file = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    file.tracks.append(conductor)
    for k, notes in enumerate((melody, chords, bass)[:parts]):
        file.tracks.append(_track(names[k] if k < len(names) else None, k, notes))
    out = io.BytesIO()
    file.save(file=out)
    return out.getvalue()


def track_notes(data: bytes) -> list[tuple[str, list[tuple[int, int, int, int, int]]]]:
    """(name, notes) of each track with notes, in file order; notes as sorted (on tick, off tick, pitch,
    velocity, channel), read with mido: what a DAW shows."""
    file = mido.MidiFile(file=io.BytesIO(data))
    out = []
    for index, track in enumerate(file.tracks):
        name, now, open_notes, notes = f"#{index}", 0, {}, []
        for message in track:
            now += message.time
            if message.type == "track_name":
                name = message.name
            elif message.type == "note_on" and message.velocity > 0:
                open_notes.setdefault((message.channel, message.note), []).append((now, message.velocity))
            elif message.type in ("note_on", "note_off"):
                start, velocity = open_notes[message.channel, message.note].pop(0)
                notes.append((start, now, message.note, velocity, message.channel))
        if notes:
            out.append((name, sorted(notes)))
    return out
