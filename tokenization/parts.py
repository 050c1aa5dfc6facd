"""The parts of a piece, as a musician names them: a part is the notes of one (track, channel, program).

Real files rarely tell parts apart by program (exported scores put every voice on program 0) or by track
name (unnamed, or "Piano" twice), so parts are numbered: ``amt info`` lists them and ``--keep-part N``
picks them. Numbers follow track order, then channel, then program, so they do not depend on the notes'
timing. CLI, demo and DAW bridge all pick kept notes through ``keep_mask``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from amt.tokenization import ops
from amt.tokenization.errors import GenerationError
from amt.tokenization.midi import GM_INSTRUMENT_NAMES, MidiTokens
from amt.tokenization.vocab import DRUMS, DUR_OFFSET, TIME_OFFSET, TIME_RESOLUTION

CHORD_SHARE = 0.3
"""A part is "chords" when at least this share of its notes start together with another of its notes."""
ROLES = ("melody", "bass", "chords", "drums", "inner")
"""Role guesses: the top line, the bottom line, a part playing chords, percussion, a line in between."""


@dataclass(frozen=True)
class Part:
    """One part of a piece, as ``amt info`` lists it (times in seconds, pitches as MIDI numbers)."""

    number: int  # 1-based: what --keep-part takes
    track: int  # index into the file's track chunks (-1: unknown, e.g. notes from a DAW)
    name: str  # the track's name, "" when it has none
    channel: int  # MIDI channel 0-15 (-1: unknown)
    program: int  # General MIDI program, 128 = drums
    notes: int
    low: int
    high: int
    start: float
    end: float
    role: str

    @property
    def instrument(self) -> str:
        """The General MIDI name of the part's program."""
        return GM_INSTRUMENT_NAMES[self.program]

    @property
    def label(self) -> str:
        """A short name for lists: "2 Alto (Acoustic Grand Piano)"; "3 Violin" for a track without a name
        or named after its instrument."""
        if not self.name or self.name.casefold() == self.instrument.casefold():
            return f"{self.number} {self.instrument}"
        return f"{self.number} {self.name} ({self.instrument})"

    def as_dict(self) -> dict:
        """The part as JSON-ready values, its instrument name included."""
        return {**asdict(self), "instrument": self.instrument}


def part_keys(midi: MidiTokens) -> np.ndarray:
    """(N, 3) int64: each note's (track, channel, program); channel -1 where the file did not say."""
    channels = np.full(len(midi), -1) if midi.channels is None else midi.channels
    return np.stack([midi.tracks.astype(np.int64), np.asarray(channels, np.int64),
                     ops.instrument_of(midi.events[:, 2]).astype(np.int64)], axis=1).reshape(-1, 3)


def part_index(midi: MidiTokens) -> np.ndarray:
    """Each note's part as a 0-based index into ``find_parts(midi)``."""
    if len(midi) == 0:
        return np.zeros(0, np.int64)
    _, index = np.unique(part_keys(midi), axis=0, return_inverse=True)
    return index.reshape(-1)


def find_parts(midi: MidiTokens) -> list[Part]:
    """The parts of ``midi``, numbered from 1, each with its range, time span and a role guess."""
    if len(midi) == 0:
        return []
    keys, index = np.unique(part_keys(midi), axis=0, return_inverse=True)
    index = index.reshape(-1)
    onsets = midi.events[:, 0] - TIME_OFFSET
    ends = onsets + midi.events[:, 1] - DUR_OFFSET
    pitches = ops.pitch_of(midi.events[:, 2])
    names = midi.meta.track_names
    roles = _roles(keys[:, 2], [pitches[index == k] for k in range(len(keys))],
                   [onsets[index == k] for k in range(len(keys))])
    parts = []
    for k, (track, channel, program) in enumerate(keys.tolist()):
        mine = index == k
        parts.append(Part(
            number=k + 1, track=track, name=names[track].strip() if 0 <= track < len(names) else "",
            channel=channel, program=program, notes=int(mine.sum()), low=int(pitches[mine].min()),
            high=int(pitches[mine].max()), start=float(onsets[mine].min()) / TIME_RESOLUTION,
            end=float(ends[mine].max()) / TIME_RESOLUTION, role=roles[k]))
    return parts


def _roles(programs: np.ndarray, pitches: list[np.ndarray], onsets: list[np.ndarray]) -> list[str]:
    """Guess each part's role: drums by program; chords when many of its notes start together; of the single
    lines, the highest (by median pitch) is the melody and, when there are others, the lowest the bass."""
    roles = []
    for program, onset in zip(programs.tolist(), onsets, strict=True):
        _, counts = np.unique(onset, return_counts=True)
        together = counts[counts > 1].sum() / len(onset)
        roles.append("drums" if program == DRUMS else "chords" if together >= CHORD_SHARE else "inner")
    lines = [k for k, role in enumerate(roles) if role == "inner"]
    pitched = [k for k, role in enumerate(roles) if role != "drums"]
    if lines:
        medians = {k: float(np.median(pitches[k])) for k in pitched}
        top = max(lines, key=lambda k: medians[k])
        if medians[top] >= max(medians.values()) - 12:  # a line an octave under the chords is no melody
            roles[top] = "melody"
        bottom = min(lines, key=lambda k: medians[k])
        if bottom != top and medians[bottom] <= min(medians.values()):
            roles[bottom] = "bass"
    return roles


def describe(parts: Sequence[Part]) -> str:
    """The parts on one line, for error messages: "1 Soprano (Acoustic Grand Piano), 2 ..."."""
    return ", ".join(part.label for part in parts) or "none (the file has no notes)"


def keep_mask(midi: MidiTokens, *, parts: Sequence[int] | None = None, tracks: Sequence[str] | None = None,
              instruments: Sequence[int] | None = None) -> np.ndarray:
    """Boolean per note: the notes of the chosen parts (numbers from ``find_parts``), tracks (names, without
    regard to case or surrounding spaces; duplicate names pick every such track) or General MIDI
    programs. Give at most one of the three; none keeps nothing. A choice the file does not have raises a
    one-line ``GenerationError`` that lists what it has."""
    given = [choice for choice in (parts, tracks, instruments) if choice]
    if len(given) > 1:
        raise GenerationError("keep parts, tracks or instruments, not several of them")
    if not given:
        return np.zeros(len(midi), dtype=bool)
    found = find_parts(midi)
    if parts:
        missing = sorted({int(n) for n in parts} - {p.number for p in found})
        if missing:
            raise GenerationError(f"no part {', '.join(map(str, missing))} in {midi.source or 'the file'}; "
                                  f"its parts are {describe(found)}")
        return np.isin(part_index(midi), [int(n) - 1 for n in parts])
    if tracks:
        wanted = {name.strip().casefold() for name in tracks}
        missing = sorted(wanted - {p.name.casefold() for p in found})
        if missing:
            raise GenerationError(f"no track named {', '.join(map(repr, missing))} has notes in "
                                  f"{midi.source or 'the file'}; its parts are {describe(found)}")
        return np.isin(part_index(midi), [p.number - 1 for p in found if p.name.casefold() in wanted])
    missing = sorted({int(i) for i in instruments} - {p.program for p in found})
    if missing:
        raise GenerationError(f"no part plays instrument(s) {missing} in {midi.source or 'the file'}; its "
                              f"parts are {describe(found)}")
    return np.isin(ops.instrument_of(midi.events[:, 2]), [int(i) for i in instruments])
