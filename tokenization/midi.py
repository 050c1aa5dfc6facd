"""MIDI files <-> event arrays in the token format of the published Anticipatory Music Transformer models.

Reading follows the semantics of the original implementation (which iterated mido's merged message stream),
so our tokens equal the reference outputs token for token:

* all tracks are merged into one stream ordered by absolute MIDI tick; messages at the same tick keep track
  order, then message order within the track;
* ``set_tempo`` in any track applies to the whole file (default 500,000 us per quarter note);
* a note's instrument is the last ``program_change`` on its channel before the note-on (default 0); channel
  10 (index 9) is ``DRUMS``; a ``note_on`` with velocity 0 is a note-off;
* note-offs close the oldest open note of the same (channel, pitch), across tracks (first in, first out); a
  note-off with nothing open is ignored; a note never closed lasts ``UNCLOSED_NOTE_DURATION``; durations are
  clipped to ``MAX_DUR - 1``.

Times are computed exactly: the time of MIDI tick ``T`` times 100 is the rational number ``N(T) / D`` with
``N(T) = sum(ticks in each tempo segment * us per quarter)`` and ``D = 10,000 * ticks_per_beat``, rounded
half to even; a duration is the rounded difference of the two exact times. The original accumulated float
seconds message by message instead, which can land on the other side of an exact half tick; on the shared
reference files both agree token for token.

Why our own MIDI parser rather than symusic's: symusic 0.6.0 (measured) drops notes that are never closed,
pairs note-offs only within a track, splits a track by channel and program and so loses the message order of
simultaneous notes on different channels of one track (every type-0 file), and does not expose track indices.
Each of these changes the tokens. The parser below does the sequential part (finding where each message
starts, which depends on running status and variable lengths) in a tight loop over message starts only;
decoding, merging, note pairing, program lookup and time conversion are vectorised numpy. Writing goes
through the same byte-level representation, and ``events_to_score`` hands the bytes to symusic for callers
that want a ``symusic.Score``.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from amt.tokenization.errors import MidiError, TokenError
from amt.tokenization.fileio import atomic_write_bytes
from amt.tokenization.vocab import (
    DRUMS,
    DUR_OFFSET,
    MAX_DUR,
    MAX_PITCH,
    NOTE_OFFSET,
    REST,
    TIME_OFFSET,
    TIME_RESOLUTION,
    UNCLOSED_NOTE_DURATION,
)

if TYPE_CHECKING:
    import symusic

MAX_FILE_BYTES = 64 * 2**20
"""Files larger than this are refused before parsing (real MIDI files are rarely over 1 MB)."""
MAX_MESSAGES = 2_000_000
"""MIDI messages a file may hold (a note is two): about a million notes, far beyond real music. Parsing costs
about 270 bytes of memory a message plus 16 a byte of the file. Raised by ``read_midi(max_messages=...)`` or
the environment variable named by ``MAX_MESSAGES_VARIABLE`` (which reaches ``amt prepare``'s workers too)."""
MAX_MESSAGES_VARIABLE = "AMT_MAX_MIDI_MESSAGES"
MAX_TRACKS = 10_000
"""Track chunks a file may have, read or written (the writer adds a tempo track to the ones with notes)."""
MIN_TEMPO = 1_000
"""Microseconds per quarter note: faster than 60,000 BPM is not music but a corrupt file."""
MAX_SECONDS = 24 * 3600
"""A piece longer than a day is a corrupt file (absurd tempo or delta times), not music."""
DEFAULT_TEMPO = 500_000
DEFAULT_TICKS_PER_BEAT = 480
DEFAULT_VELOCITY = 80
DRUM_CHANNEL = 9

# fmt: off
GM_INSTRUMENT_NAMES: tuple[str, ...] = (
    # 0-7: piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # 8-15: chromatic percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # 16-23: organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    # 24-31: guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    # 32-39: bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # 40-47: strings
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp",
    "Timpani",
    # 48-55: ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Voice", "Orchestra Hit",
    # 56-63: brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2",
    # 64-71: reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    # 72-79: pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # 80-87: synth lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # 88-95: synth pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    # 96-103: synth effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # 104-111: ethnic
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # 112-119: percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum",
    "Reverse Cymbal",
    # 120-127: sound effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
    "Drums",
)
# fmt: on
"""General MIDI program names, indexed by instrument number (128 = ``DRUMS``, channel 10)."""
assert len(GM_INSTRUMENT_NAMES) == DRUMS + 1


# ----------------------------------------------------------------------------------------------------------
# Side information


@dataclass(frozen=True)
class MidiMeta:
    """What the tokens drop, kept so that output MIDI can carry it.

    ``tempos`` are ``(midi tick, quarter notes per minute)`` with the first at tick 0; ``time_signatures`` are
    ``(midi tick, numerator, denominator)``; ``track_names`` has one entry per track chunk of the file.
    """

    ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT
    tempos: tuple[tuple[int, float], ...] = ((0, 120.0),)
    time_signatures: tuple[tuple[int, int, int], ...] = ()
    track_names: tuple[str, ...] = ()
    # Exact microseconds per quarter of each entry of ``tempos`` when read from a file (a BPM float cannot
    # always give them back exactly); empty: derived from ``tempos``.
    _tempo_us: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def tempo_map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start tick, us per quarter, N at start) of each tempo segment, exact integers (see module doc)."""
        ticks = np.array([t for t, _ in self.tempos] or [0], dtype=np.int64)
        if self._tempo_us:
            us = np.array(self._tempo_us, dtype=np.int64)
        else:
            us = np.array(
                [round(60_000_000 / bpm) for _, bpm in self.tempos] or [DEFAULT_TEMPO], dtype=np.int64
            )
        if ticks[0] != 0:
            ticks = np.concatenate([[0], ticks])
            us = np.concatenate([[DEFAULT_TEMPO], us])
        start = np.concatenate([[0], np.cumsum(np.diff(ticks) * us[:-1])]).astype(np.int64)
        return ticks, us, start

    @property
    def denominator(self) -> int:
        """``D``: ``N(T) / D`` is the time of MIDI tick ``T`` in event ticks (10 ms)."""
        return 1_000_000 * self.ticks_per_beat // TIME_RESOLUTION

    def ticks_to_numerator(self, ticks: np.ndarray) -> np.ndarray:
        """``N(T)`` for MIDI ticks: microseconds * ticks_per_beat, exact in int64."""
        starts, us, n0 = self.tempo_map()
        ticks = np.asarray(ticks, dtype=np.int64)
        seg = np.searchsorted(starts, ticks, side="right") - 1
        return n0[seg] + (ticks - starts[seg]) * us[seg]

    def ticks_to_seconds(self, ticks: np.ndarray | int) -> np.ndarray | float:
        """Seconds at MIDI ticks, through the tempo map."""
        n = self.ticks_to_numerator(np.atleast_1d(ticks)) / (1e6 * self.ticks_per_beat)
        return float(n[0]) if np.ndim(ticks) == 0 else n

    def seconds_to_ticks(self, seconds: np.ndarray | float) -> np.ndarray | int:
        """The nearest MIDI ticks to times in seconds, through the tempo map."""
        n = np.rint(np.atleast_1d(np.asarray(seconds, dtype=np.float64)) * 1e6 * self.ticks_per_beat)
        ticks = _numerator_to_ticks(self, n.astype(np.int64))
        return int(ticks[0]) if np.ndim(seconds) == 0 else ticks

    def grid_ticks(self, steps_per_beat: int, end: int) -> np.ndarray:
        """Event ticks (10 ms, rounded) of a grid of ``steps_per_beat`` steps per quarter note through the
        tempo map (1: the beats, 4: sixteenths), from the start up to and including tick ``end``."""
        if steps_per_beat < 1:
            raise ValueError(f"steps_per_beat must be at least 1, got {steps_per_beat}")
        last = int(self.seconds_to_ticks(end / TIME_RESOLUTION)) * steps_per_beat // self.ticks_per_beat + 1
        midi_ticks = np.arange(last + 1) * self.ticks_per_beat / steps_per_beat
        seconds = self.ticks_to_numerator(np.rint(midi_ticks).astype(np.int64)) / (1e6 * self.ticks_per_beat)
        ticks = np.unique(np.rint(seconds * TIME_RESOLUTION).astype(np.int64))
        return ticks[ticks <= end]

    def snap_to_grid(self, ticks: np.ndarray, steps_per_beat: int) -> np.ndarray:
        """The MIDI ticks of the grid lines (``steps_per_beat`` per quarter note) at event times ``ticks``
        (10 ms), where one lies within a 10 ms tick of it; -1 elsewhere. A note the sampler put on the grid
        of ``grid_ticks`` is written on the exact grid line, not the nearest MIDI tick to its 10 ms time."""
        ticks = np.asarray(ticks, dtype=np.int64)
        step = self.ticks_per_beat / steps_per_beat
        midi = np.asarray(self.seconds_to_ticks(ticks / TIME_RESOLUTION), dtype=np.int64).reshape(-1)
        line = np.rint(np.rint(midi / step) * step).astype(np.int64)
        seconds = np.asarray(self.ticks_to_seconds(line), dtype=np.float64).reshape(-1)
        return np.where(np.abs(seconds * TIME_RESOLUTION - ticks) <= 1, line, -1)

    def bar_to_seconds(self, bar: float) -> float:
        """Seconds at the start of ``bar`` (1 = the start; fractions are positions in the bar).

        Uses the time signatures (4/4 until the first one) and the tempo map.
        """
        if bar < 1:
            raise ValueError(f"bars count from 1, got {bar}")
        signatures = list(self.time_signatures) or [(0, 4, 4)]
        if signatures[0][0] != 0:
            signatures.insert(0, (0, 4, 4))
        remaining, tick = bar - 1, 0.0
        for i, (start, numerator, denominator) in enumerate(signatures):
            bar_ticks = self.ticks_per_beat * 4 * numerator / denominator
            end = signatures[i + 1][0] if i + 1 < len(signatures) else None
            bars_here = (end - start) / bar_ticks if end is not None else float("inf")
            if remaining <= bars_here:
                tick = start + remaining * bar_ticks
                break
            remaining -= bars_here
        whole = int(tick)
        return float(self.ticks_to_seconds(whole)) + (tick - whole) * (
            float(self.ticks_to_seconds(whole + 1)) - float(self.ticks_to_seconds(whole))
        )


def _numerator_to_ticks(meta: MidiMeta, n: np.ndarray) -> np.ndarray:
    """Inverse of ``ticks_to_numerator``, rounded to the nearest MIDI tick."""
    starts, us, n0 = meta.tempo_map()
    seg = np.searchsorted(n0, n, side="right") - 1
    return starts[seg] + (2 * (n - n0[seg]) + us[seg]) // (2 * us[seg])


def _round_half_even(n: np.ndarray, d: int) -> np.ndarray:
    """``round(n / d)`` with ties to even, exactly, for int64 ``n`` and positive ``d``."""
    q, r = np.divmod(n, d)
    up = (2 * r > d) | ((2 * r == d) & (q % 2 == 1))
    return q + up


@dataclass(frozen=True)
class MidiTokens:
    """A MIDI file as an event array plus the side information the tokens drop.

    ``events`` is (N, 3) int64 (time, duration, note) tokens with absolute times from the start of the piece,
    ordered by onset (file order on ties); ``velocities`` (N,) uint8 and ``tracks`` (N,) int32 (index into
    ``meta.track_names``, -1 if unknown) are per note.

    Read from a file, each note also knows where it was: ``channels`` (N,) its MIDI channel 0-15 and
    ``midi_ticks`` (N, 2) the MIDI ticks of its note-on and note-off (-1: unknown, e.g. a new note or a note
    never closed). The writer puts such notes back exactly there, so kept notes come back tick-exact rather
    than through 10 ms event times. ``None``: unknown for every note.
    """

    events: np.ndarray
    velocities: np.ndarray
    tracks: np.ndarray
    meta: MidiMeta
    source: str | None = None
    channels: np.ndarray | None = None
    midi_ticks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.events)

    def take(self, index: np.ndarray) -> MidiTokens:
        """The notes at ``index`` (a boolean mask or positions), every per-note array alike."""
        return MidiTokens(
            self.events[index], self.velocities[index], self.tracks[index], self.meta, self.source,
            None if self.channels is None else self.channels[index],
            None if self.midi_ticks is None else self.midi_ticks[index],
        )

    def to_midi_bytes(self) -> bytes:
        """This piece as a standard MIDI file (``events_to_midi_bytes`` with every per-note array)."""
        return events_to_midi_bytes(self.events, meta=self.meta, velocities=self.velocities,
                                    tracks=self.tracks, channels=self.channels, midi_ticks=self.midi_ticks)

    def write(self, path: str | os.PathLike) -> None:
        """Write this piece to a MIDI file atomically (notes read from a file come back tick-exact)."""
        atomic_write_bytes(path, self.to_midi_bytes())

    def instruments(self) -> tuple[int, ...]:
        """The sorted instrument numbers that play at least one note."""
        notes = self.events[:, 2]
        notes = notes[notes != REST]
        return tuple(int(i) for i in np.unique((notes - NOTE_OFFSET) // MAX_PITCH))

    @property
    def duration_seconds(self) -> float:
        """Seconds until the last note ends."""
        if len(self.events) == 0:
            return 0.0
        ends = self.events[:, 0] - TIME_OFFSET + self.events[:, 1] - DUR_OFFSET
        return float(ends.max()) / TIME_RESOLUTION


# ----------------------------------------------------------------------------------------------------------
# Reading


def _vlq_lengths(b: np.ndarray) -> np.ndarray:
    """For every byte position, the length of a variable-length quantity starting there (0: over 4 bytes)."""
    n = len(b)
    position = np.arange(n, dtype=np.int32)
    end = np.where(b < 0x80, position, np.int32(n + 8))
    end = np.minimum.accumulate(end[::-1])[::-1]  # first terminating byte at or after each position
    end -= position  # in place: this runs over every byte of the file, so memory is counted in bytes a byte
    del position
    end += 1
    end[end > 4] = 0  # the standard allows at most 4 bytes
    return end.astype(np.int8)


def _vlq_values(padded: np.ndarray, at: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Values of the variable-length quantities starting at ``at`` (``padded``: the bytes plus 4 zeros)."""
    value = np.zeros(len(at), np.int64)
    for k in range(4):
        value = np.where(length > k, (value << 7) | (padded[at + k] & 0x7F).astype(np.int64), value)
    return value


# Per status byte: 0 data byte (running status), 1 or 2 channel message with that many data bytes, 3 meta
# or sysex, 4 undefined in a file.
_KIND_OF_STATUS = np.array([0] * 0x80 + [2] * 0x40 + [1] * 0x20 + [2] * 0x10 + [4] * 0x10, dtype=np.int8)
_KIND_OF_STATUS[[0xF0, 0xF7, 0xFF]] = 3


_WALK_BLOCK = 1 << 16
"""Bytes walked between checks of the message count (a check per message would slow the walk)."""


def _message_starts(kind, explicit_next, status_pos, starts, ends, tracks, name, max_messages) -> np.ndarray:
    """Byte positions where messages start, in order; MidiError past ``max_messages`` messages.

    Where a message starts depends on the length of the one before (and, with running status, on the last
    status byte): a sequential chain, walked here with one cheap step per message over precomputed tables
    (memoryviews: no conversion of whole tables to lists). Vectorising the walk by pointer doubling over all
    byte positions was measured slower on real files.
    """
    kinds = memoryview(np.ascontiguousarray(kind, dtype=np.int8))
    nexts = memoryview(np.ascontiguousarray(explicit_next, dtype=np.int32))
    status = memoryview(np.ascontiguousarray(status_pos, dtype=np.int32))
    found = array("q")  # 8 bytes a message (a list of ints costs 40)
    add = found.append
    truncated = "track {} is truncated (a message runs past the end of its chunk)"
    for track, start, end in zip(tracks.tolist(), starts.tolist(), ends.tolist(), strict=True):
        p, running = start, 0
        while p < end:
            stop = min(end, p + _WALK_BLOCK)
            while p < stop:
                k = kinds[p]
                add(p)
                if k == 0:
                    if running == 0:
                        raise MidiError(name, f"running status without a status byte in track {track}")
                    p = status[p] + running
                elif k < 3:
                    running = k
                    p = nexts[p]
                elif k == 3:
                    p = nexts[p]
                elif k == 4:
                    raise MidiError(name, f"invalid message in track {track}")
                else:
                    raise MidiError(name, truncated.format(track))
            if len(found) > max_messages:
                raise MidiError(name, f"over {max_messages:,} MIDI messages (a note is two), the limit for "
                                f"one file: set {MAX_MESSAGES_VARIABLE}=N to raise it")
        if p != end:
            raise MidiError(name, truncated.format(track))
    return np.frombuffer(found, dtype=np.int64)


def _parse_tracks(chunks: list[memoryview], name: str, max_messages: int):
    """Decode the messages of all track chunks at once: arrays in (track, message) order.

    The tables over every byte of the file are kept to a few: they cost about 16 bytes a byte at the peak.
    """
    buffer = b"".join(chunks)
    b = np.frombuffer(buffer, dtype=np.uint8)
    n = len(b)
    sizes = np.array([len(c) for c in chunks], dtype=np.int64)
    chunk_start = np.cumsum(sizes) - sizes
    starts = chunk_start[sizes > 0]
    if n == 0:
        empty = np.zeros(0, np.int64)
        return buffer, empty, empty, empty, empty, empty, empty
    chunk_end = chunk_start + sizes
    vlen = _vlq_lengths(b)
    padded = np.concatenate([b, np.zeros(4, np.uint8)])
    status_pos = np.arange(n, dtype=np.int32)
    status_pos += vlen
    cut = np.zeros(n, dtype=bool)  # the status byte lies past the end of the chunk
    for a, e in zip(chunk_start.tolist(), chunk_end.tolist(), strict=True):
        cut[a:e] = status_pos[a:e] >= e
    cut &= vlen > 0
    np.minimum(status_pos, n - 1, out=status_pos)
    sb = b[status_pos]
    kind = _KIND_OF_STATUS[sb]
    # Channel messages: the next starts after the data bytes. Meta and sysex (few): after their payload.
    explicit_next = status_pos + 1
    explicit_next += kind
    system = np.flatnonzero(kind == 3)
    raw_len_pos = status_pos[system] + np.where(sb[system] == 0xFF, 2, 1)
    len_pos = np.minimum(raw_len_pos, n - 1)
    payload_len = _vlq_values(padded, len_pos, vlen[len_pos])
    explicit_next[system] = np.minimum(len_pos + vlen[len_pos] + payload_len, np.iinfo(np.int32).max)
    kind[system[vlen[len_pos] == 0]] = 4
    kind[vlen == 0] = 4
    kind[cut] = 5  # cut off by the end of the chunk
    system_end = chunk_end[np.searchsorted(chunk_start, system, side="right") - 1]
    kind[system[(raw_len_pos >= system_end) & (vlen[system] > 0)]] = 5
    del cut, system, raw_len_pos, len_pos, payload_len, system_end
    s = _message_starts(kind, explicit_next, status_pos, starts, chunk_end[sizes > 0], np.flatnonzero(sizes),
                        name, max_messages)
    del kind, explicit_next

    track = (np.searchsorted(chunk_start, s, side="right") - 1).astype(np.int64)
    sp = status_pos[s].astype(np.int64)
    status = sb[s].astype(np.int64)
    running = status < 0x80
    if running.any():
        explicit = (status >= 0x80) & (status < 0xF0)
        # The walk checked that each track's first channel message has its status byte.
        last = np.maximum.accumulate(np.where(explicit, np.arange(len(s)), -1))
        status = np.where(running, status[np.maximum(last, 0)], status)
    first = np.where(running, sp, sp + 1)
    d1, d2 = padded[first].astype(np.int64), padded[first + 1].astype(np.int64)
    is_channel = status < 0xF0
    two = (status < 0xC0) | (status >= 0xE0)
    bad = is_channel & ((d1 >= 0x80) | (two & (d2 >= 0x80)))
    if bad.any():
        i = int(np.argmax(bad))
        what = "note pitch" if 0x80 <= status[i] < 0xA0 and d1[i] >= 0x80 else "data byte"
        raise MidiError(name, f"{what} above 127 in track {int(track[i])}")
    is_meta = status == 0xFF
    length_pos = np.minimum(np.where(is_meta, sp + 2, sp + 1), n - 1)
    payload_len = np.where(is_channel, 0, _vlq_values(padded, length_pos, vlen[length_pos]))
    payload_pos = np.where(is_channel, 0, length_pos + vlen[length_pos])
    delta = _vlq_values(padded, s, vlen[s])
    tick = np.cumsum(delta)
    track_first = np.flatnonzero(np.diff(track, prepend=-1))
    tick -= np.repeat(tick[track_first] - delta[track_first], np.diff(np.append(track_first, len(s))))
    data1 = np.where(is_meta, padded[sp + 1].astype(np.int64), np.where(is_channel, d1, 0))
    data2 = np.where(is_channel, np.where(two, d2, 0), payload_pos)
    return buffer, tick, track, status, data1, data2, payload_len


def _read_bytes(source: str | os.PathLike | bytes, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = name or "<bytes>"
        if len(data) > max_bytes:
            raise MidiError(label, f"file is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
        return data, label
    label = name or str(source)
    try:
        size = os.stat(source).st_size
        if size > max_bytes:
            raise MidiError(label, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        with open(source, "rb") as f:
            return f.read(max_bytes + 1), label
    except OSError as error:
        raise MidiError(label, f"cannot read file ({error.strerror or error})") from None


def _message_limit(max_messages: int | None, name: str) -> int:
    """``max_messages``, else the environment's ``AMT_MAX_MIDI_MESSAGES``, else ``MAX_MESSAGES``."""
    if max_messages is not None:
        return max_messages
    text = os.environ.get(MAX_MESSAGES_VARIABLE)
    if text is None:
        return MAX_MESSAGES
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise MidiError(name, f"{MAX_MESSAGES_VARIABLE} must be a whole number, got {text!r}") from None


def _split_chunks(data: bytes, name: str) -> tuple[int, int, list[memoryview]]:
    """Check the header; return (format, ticks per beat, track chunks: views of ``data``, not copies)."""
    if not data:
        raise MidiError(name, "empty file")
    if data[:4] != b"MThd":
        raise MidiError(name, "not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiError(name, "truncated MIDI header")
    header_len = int.from_bytes(data[4:8], "big")
    fmt, ntracks, division = (int.from_bytes(data[i : i + 2], "big") for i in (8, 10, 12))
    if header_len < 6:
        raise MidiError(name, f"bad MIDI header length {header_len}")
    if division & 0x8000:
        raise MidiError(name, "SMPTE time division is not supported (only ticks per quarter note)")
    if division == 0:
        raise MidiError(name, "ticks per quarter note is 0")
    if fmt > 2:
        raise MidiError(name, f"unknown MIDI format {fmt}")
    if fmt == 2:
        raise MidiError(name, "MIDI format 2 (independent sequences) is not supported")
    if ntracks > MAX_TRACKS:
        raise MidiError(name, f"{ntracks:,} tracks, over the limit of {MAX_TRACKS:,}")
    chunks: list[memoryview] = []
    view = memoryview(data)
    p = 8 + header_len
    while p + 8 <= len(data) and len(chunks) < ntracks:
        kind, size = data[p : p + 4], int.from_bytes(data[p + 4 : p + 8], "big")
        if p + 8 + size > len(data):
            raise MidiError(name, f"truncated MIDI file (track {len(chunks)} runs past the end of the file)")
        if kind == b"MTrk":
            chunks.append(view[p + 8 : p + 8 + size])
        p += 8 + size
    if len(chunks) < ntracks:
        raise MidiError(name, f"truncated MIDI file: header announces {ntracks} tracks, found {len(chunks)}")
    return fmt, division, chunks


def read_midi(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_messages: int | None = None,
) -> MidiTokens:
    """Read a standard MIDI file (path or bytes) into events plus side information.

    Raises ``MidiError`` (naming the file and the reason) for anything that is not a readable MIDI file:
    empty, not MIDI, truncated, SMPTE timing, zero or absurd tempo, data bytes above 127, too many tracks,
    over ``max_bytes`` or over ``max_messages`` MIDI messages (default: the environment variable
    ``AMT_MAX_MIDI_MESSAGES``, else ``MAX_MESSAGES``), which bounds the memory parsing takes.
    """
    data, label = _read_bytes(source, name, max_bytes)
    limit = _message_limit(max_messages, label)
    _, tpb, chunks = _split_chunks(data, label)
    buffer, tick, track, status, data1, data2, length = _parse_tracks(chunks, label, limit)
    order = np.argsort(tick, kind="stable")  # concatenation is in (track, message) order: stable = mido merge
    tick, track, status, data1, data2, length = (
        a[order] for a in (tick, track, status, data1, data2, length)
    )

    meta = _meta(buffer, len(chunks), tick, track, status, data1, data2, length, tpb, label)
    return _notes(tick, track, status, data1, data2, meta, label, source if name is None else name)


def _meta(
    buffer: bytes, ntracks: int, tick, track, status, data1, data2, length, tpb: int, name: str
) -> MidiMeta:
    """Tempo map, time signatures and track names from the merged meta messages."""
    is_meta = status == 0xFF
    tempo_idx = np.flatnonzero(is_meta & (data1 == 0x51))
    tempo_ticks: list[int] = []
    tempo_us: list[int] = []
    for i in tempo_idx.tolist():
        if length[i] != 3:
            raise MidiError(name, f"malformed set_tempo (payload of {int(length[i])} bytes, expected 3)")
        at = int(data2[i])
        us = int.from_bytes(buffer[at : at + 3], "big")
        if us < MIN_TEMPO:
            raise MidiError(
                name, f"absurd tempo of {us} microseconds per quarter note at tick {int(tick[i])}"
            )
        t = int(tick[i])
        if tempo_ticks and tempo_ticks[-1] == t:  # the last change at a tick is the one in force after it
            tempo_us[-1] = us
        elif tempo_us and tempo_us[-1] == us:
            continue
        else:
            tempo_ticks.append(t)
            tempo_us.append(us)
    if not tempo_ticks or tempo_ticks[0] != 0:
        tempo_ticks.insert(0, 0)
        tempo_us.insert(0, DEFAULT_TEMPO)
    signatures = []
    for i in np.flatnonzero(is_meta & (data1 == 0x58)).tolist():
        at = int(data2[i])
        if length[i] >= 2 and buffer[at + 1] < 16:
            signatures.append((int(tick[i]), int(buffer[at]), 2 ** int(buffer[at + 1])))
    names = [""] * ntracks
    for i in np.flatnonzero(is_meta & (data1 == 0x03)).tolist()[::-1]:  # first name in each track wins
        at = int(data2[i])
        names[track[i]] = buffer[at : at + int(length[i])].decode("latin-1").strip("\x00")
    return MidiMeta(
        ticks_per_beat=tpb,
        tempos=tuple((t, 60_000_000 / us) for t, us in zip(tempo_ticks, tempo_us, strict=True)),
        time_signatures=tuple(signatures),
        track_names=tuple(names),
        _tempo_us=tuple(tempo_us),
    )


def _notes(tick, track, status, data1, data2, meta: MidiMeta, name: str, source) -> MidiTokens:
    """Pair note-ons with note-offs (FIFO per channel and pitch) and convert to event tokens."""
    kind = status & 0xF0
    channel = status & 0x0F
    is_note = (kind == 0x80) | (kind == 0x90)
    note_idx = np.flatnonzero(is_note)
    is_on = (kind[note_idx] == 0x90) & (data2[note_idx] > 0)
    key = channel[note_idx] * MAX_PITCH + data1[note_idx]

    # FIFO pairing, vectorised. Within a key, the open count is a walk (+1 on, -1 off) reflected at 0: an
    # off that finds nothing open is ignored. Because the oldest open note is closed first, the j-th valid
    # off of a key closes the j-th on of that key.
    by_key = np.argsort(key.astype(np.int16), kind="stable")  # 16-bit keys: numpy radix-sorts them
    k_sorted, on_sorted = key[by_key], is_on[by_key]
    m = len(by_key)
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = k_sorted[1:] != k_sorted[:-1]
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    step = np.where(on_sorted, 1, -1)
    walk = np.cumsum(step)
    walk = walk - (walk - step)[group_start][group]  # restart the walk at each key
    # Running minimum within each key: shift each key's values below all earlier keys'.
    shift = group * (2 * m + 2)
    low = np.minimum.accumulate(walk - shift) + shift
    open_after = walk - np.minimum(low, 0)
    open_before = np.concatenate([[0], open_after[:-1]])
    open_before[group_start] = 0
    valid_off = ~on_sorted & (open_before > 0)
    ons_before_group = (np.cumsum(on_sorted) - on_sorted)[group_start]
    off_rank = np.cumsum(valid_off) - 1
    off_rank = off_rank - (off_rank - valid_off + 1)[group_start][group]
    on_list = by_key[on_sorted]  # positions (in note_idx) of ons, grouped by key, in file order
    closes = on_list[ons_before_group[group[valid_off]] + off_rank[valid_off]]
    off_at = np.full(len(note_idx), -1, dtype=np.int64)
    off_at[closes] = note_idx[by_key[valid_off]]

    on_msg = note_idx[is_on]
    off_msg = off_at[is_on]
    # Instrument: the last program change on the channel before the note-on, in merged order.
    chan = channel[on_msg]
    program = np.zeros(len(on_msg), dtype=np.int64)
    pc_idx = np.flatnonzero(kind == 0xC0)
    if len(pc_idx):
        for c in np.unique(channel[pc_idx]).tolist():
            changes = pc_idx[channel[pc_idx] == c]
            mine = chan == c
            before = np.searchsorted(changes, on_msg[mine]) - 1
            program[mine] = np.where(before >= 0, data1[changes[np.maximum(before, 0)]], 0)
    instrument = np.where(chan == DRUM_CHANNEL, DRUMS, program)

    denominator = meta.denominator
    if len(tick) and int(tick[-1]) * max(meta._tempo_us) >= 2**62:  # would overflow the exact int64 times
        raise MidiError(name, "absurd length: the delta times add up to years (corrupt file)")
    n_on = meta.ticks_to_numerator(tick[on_msg])
    if len(on_msg) and n_on[-1] // denominator > MAX_SECONDS * TIME_RESOLUTION:
        raise MidiError(
            name, "absurd length: notes start more than 24 hours in (corrupt tempo or delta times)"
        )
    onset = _round_half_even(n_on, denominator)
    closed = off_msg >= 0
    n_off = meta.ticks_to_numerator(tick[np.where(closed, off_msg, on_msg)])
    duration = np.where(closed, _round_half_even(n_off - n_on, denominator), UNCLOSED_NOTE_DURATION)
    duration = np.minimum(duration, MAX_DUR - 1)
    events = np.stack(
        [onset + TIME_OFFSET, duration + DUR_OFFSET, NOTE_OFFSET + MAX_PITCH * instrument + data1[on_msg]],
        axis=1,
    ).astype(np.int64)
    return MidiTokens(
        events=events.reshape(-1, 3),
        velocities=data2[on_msg].astype(np.uint8),
        tracks=track[on_msg].astype(np.int32),
        meta=meta,
        source=None if source is None or isinstance(source, bytes | bytearray | memoryview) else str(source),
        channels=chan.astype(np.int8),
        midi_ticks=np.stack([tick[on_msg], np.where(closed, tick[np.maximum(off_msg, 0)], -1)], 1)
        .reshape(-1, 2),
    )


def midi_tokens_from_notes(
    onsets: np.ndarray,
    durations: np.ndarray,
    pitches: np.ndarray,
    instruments: np.ndarray,
    *,
    velocities: np.ndarray | None = None,
    tracks: np.ndarray | None = None,
    meta: MidiMeta | None = None,
    source: str | None = None,
) -> MidiTokens:
    """Build ``MidiTokens`` from plain note arrays (times in seconds), e.g. notes sent by a DAW.

    Times are rounded to 10 ms ticks (half to even), durations clipped to ``MAX_DUR - 1``; notes are ordered
    by onset, keeping the given order on ties.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    ticks = np.rint(onsets * TIME_RESOLUTION).astype(np.int64)
    durs = np.clip(
        np.rint(np.asarray(durations, np.float64) * TIME_RESOLUTION).astype(np.int64), 0, MAX_DUR - 1
    )
    pitches = np.asarray(pitches, dtype=np.int64)
    instruments = np.asarray(instruments, dtype=np.int64)
    if len(pitches) and (pitches.min() < 0 or pitches.max() >= MAX_PITCH):
        raise MidiError(source, "pitch outside 0..127")
    if len(instruments) and (instruments.min() < 0 or instruments.max() > DRUMS):
        raise MidiError(source, "instrument outside 0..128")
    if len(ticks) and ticks.min() < 0:
        raise MidiError(source, "negative onset")
    order = np.argsort(ticks, kind="stable")
    events = np.stack(
        [ticks + TIME_OFFSET, durs + DUR_OFFSET, NOTE_OFFSET + MAX_PITCH * instruments + pitches], 1
    )
    n = len(ticks)
    vel = np.full(n, DEFAULT_VELOCITY, np.uint8) if velocities is None else np.asarray(velocities, np.uint8)
    trk = np.full(n, -1, np.int32) if tracks is None else np.asarray(tracks, np.int32)
    return MidiTokens(events[order].reshape(-1, 3), vel[order], trk[order], meta or MidiMeta(), source)


# ----------------------------------------------------------------------------------------------------------
# Writing

_MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


MAX_DELTA = 2**28 - 1
"""The longest delta time the standard allows (a variable-length quantity of at most 4 bytes)."""
_NO_OP = b"\xff\x01\x00"
"""An empty text event: bridges a gap longer than ``MAX_DELTA``; readers ignore it."""


def _track_chunk(messages: list[tuple[int, int, int, bytes]]) -> bytes:
    """A track chunk from (tick, tie order, tie order, message bytes), sorted, with end of track."""
    messages.sort(key=lambda m: m[:3])
    body = bytearray()
    now = 0
    for tick, _, _, raw in messages:
        while tick - now > MAX_DELTA:  # fine MIDI ticks (e.g. 32,000 per fast quarter) and a long gap
            body += _vlq(MAX_DELTA) + _NO_OP
            now += MAX_DELTA
        body += _vlq(tick - now)
        body += raw
        now = tick
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _meta_message(kind: int, payload: bytes) -> bytes:
    return bytes([0xFF, kind]) + _vlq(len(payload)) + payload


def _midi_ticks(meta: MidiMeta, onset: np.ndarray, duration: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MIDI ticks of note-ons and note-offs that read back to exactly these onsets and durations.

    The nearest MIDI tick is usually right; where the tempo map's resolution is close to 10 ms, a neighbour
    may be the one that rounds back correctly, so up to two ticks either side are tried.
    """
    d = meta.denominator
    on = _numerator_to_ticks(meta, onset * d)
    for delta in (0, -1, 1, -2, 2):
        wrong = _round_half_even(meta.ticks_to_numerator(on), d) != onset
        if not wrong.any():
            break
        candidate = np.maximum(on + delta * wrong, 0)
        fixed = _round_half_even(meta.ticks_to_numerator(candidate), d) == onset
        on = np.where(wrong & fixed, candidate, on)
    n_on = meta.ticks_to_numerator(on)
    # Start from the tick nearest the note's end time, the one a note starting there gets: a line of notes
    # that end where the next begins stays without overlaps in MIDI ticks too.
    off = np.maximum(_numerator_to_ticks(meta, (onset + duration) * d), on)
    for delta in (0, -1, 1, -2, 2):
        wrong = _round_half_even(meta.ticks_to_numerator(off) - n_on, d) != duration
        if not wrong.any():
            break
        candidate = np.maximum(off + delta * wrong, on)
        fixed = _round_half_even(meta.ticks_to_numerator(candidate) - n_on, d) == duration
        off = np.where(wrong & fixed, candidate, off)
    return on, off


def _voices(instrument: np.ndarray, pitch: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """A voice number per note such that, per (instrument, pitch, voice), note-offs come in note-on order.

    MIDI readers pair note-offs with note-ons first in, first out per (channel, pitch), so a note that starts
    inside a longer note of the same pitch and ends first would be read back with the wrong durations unless
    it goes on another channel (same program): voice 0 for almost every note, 1.. for such overlaps.
    """
    voice = np.zeros(len(pitch), dtype=np.int64)
    last_off: dict[tuple[int, int], list[int]] = {}
    for j, (i, p, t_off) in enumerate(zip(instrument.tolist(), pitch.tolist(), off.tolist(), strict=True)):
        ends = last_off.setdefault((i, p), [])
        v = next((k for k, end in enumerate(ends) if end <= t_off), len(ends))
        if v == len(ends):
            ends.append(t_off)
        ends[v] = t_off
        voice[j] = v
    return voice


def _group_names(meta: MidiMeta, groups: list[tuple[int, int]]) -> list[str]:
    """The name of each output track ``(track index, instrument)``: the input track's name, with the
    instrument added where that track is split into several; the General MIDI name if it has none."""
    names = meta.track_names
    split = {t for t in {t for t, _ in groups} if sum(1 for u, _ in groups if u == t) > 1}
    out = []
    for t, inst in groups:
        name = names[t].strip() if t >= 0 else ""
        instrument = GM_INSTRUMENT_NAMES[inst]
        out.append(instrument if not name else f"{name} ({instrument})" if t in split else names[t])
    return out


def _side_array(values: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A per-note side array (``channels``, ``midi_ticks``) as int64 of ``shape``; None: all unknown (-1)."""
    if values is None:
        return np.full(shape, -1, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    if values.shape != shape:
        raise TokenError(f"{what} of shape {values.shape} for {shape[0]} events, expected {shape}")
    return values


def events_to_midi_bytes(
    events: np.ndarray,
    *,
    meta: MidiMeta | None = None,
    velocities: np.ndarray | None = None,
    tracks: np.ndarray | None = None,
    channels: np.ndarray | None = None,
    midi_ticks: np.ndarray | None = None,
) -> bytes:
    """Encode event tokens (absolute times, REST events are skipped) as a type-1 standard MIDI file.

    Reading the result back gives the same events (simultaneous notes of different output tracks in track
    order) whenever a MIDI tick lasts at most 10 ms (always with the default 480 ticks per quarter at 120 BPM)
    and for events read from a MIDI file and written with its own ``meta``. Events read from a file and
    written with their ``tracks`` and ``meta`` come back in the same order, track names included, when each
    of its tracks plays one instrument.

    Layout: track 0 holds the tempo map and time signatures (``meta``'s, else 120 BPM at 480 ticks per
    quarter); then one track per (input track, instrument) pair: ``tracks`` gives each event's index into
    ``meta.track_names`` (-1 or ``None``: no track). Tracks with an index come first, in index order, each
    named as in ``meta`` (plus the instrument when one input track holds several); then events without
    one, a track per instrument in instrument order, named after its General MIDI instrument, as are tracks
    whose name is empty.
    Drums go on channel 10. Each melodic instrument gets one of the 15 other channels, in instrument order,
    with a program change at the start. A note that starts inside a longer note of the same instrument and
    pitch goes to an extra channel with the same program (see ``_voices``), when one is free. With more
    than 15 such channels, channels are reused round-robin and every note-on on a shared channel is preceded
    by its program change, so each note still reads back with its own instrument; only two instruments that
    share a channel and hold the same pitch at the same time can have their note-offs paired differently
    (first in, first out, as every MIDI reader does). Overlapping same-pitch drum notes share channel 10.

    ``channels`` and ``midi_ticks`` (see ``MidiTokens``; -1 where unknown) put notes read from a file with
    this ``meta`` back on their own channel and MIDI ticks (tick-exact kept notes); other notes take the
    channels no such note uses. The tempo map and meter stop at the last note-off: a conductor track that
    ran on past the music in the input does not make the output longer.
    """
    events = np.asarray(events, dtype=np.int64).reshape(-1, 3)
    notes = events[:, 2]
    keep = notes != REST
    if velocities is not None:
        velocities = np.asarray(velocities).reshape(-1)
        if len(velocities) != len(events):
            raise TokenError(f"{len(velocities)} velocities for {len(events)} events")
        velocities = velocities[keep]
    meta = meta or MidiMeta()
    if tracks is None:
        track = np.full(int(keep.sum()), -1, dtype=np.int64)
    else:
        track = np.asarray(tracks, dtype=np.int64).reshape(-1)
        if len(track) != len(events):
            raise TokenError(f"{len(track)} track indices for {len(events)} events")
        track = track[keep]
        if len(track) and (track.min() < -1 or track.max() >= len(meta.track_names)):
            raise TokenError(f"track indices must be -1 or index the {len(meta.track_names)} track names of "
                             f"meta, got {int(track.min())}..{int(track.max())}")
    given_channel = _side_array(channels, (len(events),), "channels")[keep]
    given_ticks = _side_array(midi_ticks, (len(events), 2), "midi_ticks")[keep]
    events = events[keep]
    onset = events[:, 0] - TIME_OFFSET
    duration = events[:, 1] - DUR_OFFSET
    note = events[:, 2] - NOTE_OFFSET
    if len(events) and (
        onset.min() < 0
        or duration.min() < 0
        or duration.max() >= MAX_DUR
        or note.min() < 0
        or note.max() >= MAX_PITCH * (DRUMS + 1)
    ):
        raise TokenError("events must be (time, duration, note) event tokens (controls: use from_controls)")
    # What the reader refuses is refused here, before anything is written.
    if len(events) and onset.max() > MAX_SECONDS * TIME_RESOLUTION:
        raise TokenError(f"a note starts {onset.max() / TIME_RESOLUTION / 3600:.1f} hours in: MIDI files "
                         f"here end within {MAX_SECONDS // 3600} hours")
    starts, us, _ = meta.tempo_map()
    if us.min() < MIN_TEMPO or us.max() >= 2**24:
        raise TokenError(f"tempo out of range: {60e6 / us.max():.4g}-{60e6 / us.min():.4g} quarter notes per "
                         f"minute (a MIDI file holds {60e6 / (2**24 - 1):.4g}-{60e6 / MIN_TEMPO:.4g})")
    instrument, pitch = note // MAX_PITCH, note % MAX_PITCH
    velocity = (
        np.full(len(events), DEFAULT_VELOCITY)
        if velocities is None
        else np.clip(velocities.astype(int), 1, 127)
    )
    on, off = _midi_ticks(meta, onset, duration)
    known = given_ticks[:, 0] >= 0
    on = np.where(known, given_ticks[:, 0], on)
    off = np.where(known & (given_ticks[:, 1] >= on), given_ticks[:, 1], np.maximum(off, on))
    music_end = int(off.max(initial=0))

    conductor: list[tuple[int, int, int, bytes]] = []
    for t, u in zip(starts.tolist(), us.tolist(), strict=True):
        if t == 0 or t < music_end:
            conductor.append((t, 0, len(conductor), _meta_message(0x51, int(u).to_bytes(3, "big"))))
    for t, numerator, denominator in meta.time_signatures:
        if t > 0 and t >= music_end:
            continue
        power = max(int(denominator), 1).bit_length() - 1
        conductor.append((t, 0, len(conductor), _meta_message(0x58, bytes([numerator, power, 24, 8]))))
    chunks = [_track_chunk(conductor)]

    # Output tracks, in the order a reader merges their simultaneous messages: indexed tracks, then the rest.
    groups = sorted(set(zip(track.tolist(), instrument.tolist(), strict=True)), key=lambda g: (g[0] < 0, g))
    if 1 + len(groups) > MAX_TRACKS:
        raise TokenError(f"{1 + len(groups):,} tracks to write (a tempo track and one per track and "
                         f"instrument with notes), over the {MAX_TRACKS:,} a MIDI file here may have")
    rank = {g: k for k, g in enumerate(groups)}
    group = np.array([rank[g] for g in zip(track.tolist(), instrument.tolist(), strict=True)], dtype=np.int64)
    # Voices are assigned in the order the note-ons will be read back (tick, then track, then file order),
    # the order in which first-in-first-out pairing sees them.
    read = np.lexsort((np.arange(len(events)), group, on))
    voice = np.empty(len(events), dtype=np.int64)
    voice[read] = _voices(instrument[read], pitch[read], on[read], off[read])
    # Logical channels (instrument, voice) get physical channels: every instrument's first voice before any
    # extra voice, so extra channels are only used when free; beyond 15, channels are shared.
    # Notes with a channel of their own (read from a file) keep it; the others share out the rest.
    fixed = given_channel >= 0
    logical = sorted({(v, i) for i, v in zip(instrument[~fixed].tolist(), voice[~fixed].tolist(), strict=True)
                      if i != DRUMS})
    taken = set(given_channel[fixed].tolist())
    free = [c for c in _MELODIC_CHANNELS if c not in taken] or list(_MELODIC_CHANNELS)
    channel_of = {(i, v): free[k % len(free)] for k, (v, i) in enumerate(logical)}
    channel = np.array([c if f else DRUM_CHANNEL if i == DRUMS else channel_of[i, v] for i, v, c, f in zip(
        instrument.tolist(), voice.tolist(), given_channel.tolist(), fixed.tolist(), strict=True)], np.int64)
    programs_on: dict[int, set[int]] = {}
    for c, i in zip(channel.tolist(), instrument.tolist(), strict=True):
        if i != DRUMS:
            programs_on.setdefault(c, set()).add(i)
    for k, ((_, inst), name) in enumerate(zip(groups, _group_names(meta, groups), strict=True)):
        messages = [(0, 0, -2, _meta_message(0x03, name.encode("latin-1", errors="replace")))]
        idx = np.flatnonzero(group == k).tolist()
        for c in sorted(set(channel[idx].tolist())):
            if inst != DRUMS and len(programs_on[c]) == 1:
                messages.append((0, 0, -1, bytes([0xC0 | c, inst])))
        for j in idx:  # at one tick: note-ons (file order) before note-offs (in the order their notes began)
            p = int(pitch[j])
            c = int(channel[j])
            if inst != DRUMS and len(programs_on[c]) > 1:
                messages.append((int(on[j]), 0, 2 * j, bytes([0xC0 | c, inst])))
            messages.append((int(on[j]), 0, 2 * j + 1, bytes([0x90 | c, p, int(velocity[j])])))
            messages.append((int(off[j]), 1, j, bytes([0x80 | c, p, 0])))
        chunks.append(_track_chunk(messages))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + len(chunks).to_bytes(2, "big")
    header += int(meta.ticks_per_beat).to_bytes(2, "big")
    return header + b"".join(chunks)


def write_midi(
    path: str | os.PathLike,
    events: np.ndarray,
    *,
    meta: MidiMeta | None = None,
    velocities: np.ndarray | None = None,
    tracks: np.ndarray | None = None,
) -> None:
    """Write event tokens to a MIDI file atomically (see ``events_to_midi_bytes`` for the layout)."""
    atomic_write_bytes(path, events_to_midi_bytes(events, meta=meta, velocities=velocities, tracks=tracks))


def events_to_score(
    events: np.ndarray,
    *,
    meta: MidiMeta | None = None,
    velocities: np.ndarray | None = None,
    tracks: np.ndarray | None = None,
) -> symusic.Score:
    """Event tokens as a ``symusic.Score`` (the MIDI file of ``events_to_midi_bytes``, parsed by symusic)."""
    import symusic

    data = events_to_midi_bytes(events, meta=meta, velocities=velocities, tracks=tracks)
    return symusic.Score.from_midi(data)
