"""Notes and their tokens: the one place that turns onsets, durations, instruments and pitches into token ids
and back.

Every token block is an offset plus a value (``amt.tokenization.vocab``); code outside tokenization never adds
or subtracts an offset itself (a test checks), it calls these functions, so a change of the format is a change
here. Three levels, from the raw vocabulary up:

- ``Block``: one block of the vocabulary (event times, control durations, ...): ``token``, ``value``,
  ``holds``. What the n-gram model and the training losses, which walk the vocabulary, need.
- Functions of (N, 3) triples: ``onset_ticks``, ``duration_ticks``, ``end_ticks``, ``instrument_of``,
  ``pitch_of``, ``is_rest``, ``is_control``, and ``note_tokens``/``encode`` for the way back. A triple's block
  (event or control) is read from its note token, as the times of a whole piece may run past
  ``CONTROL_OFFSET``. They are vectorised numpy; ``Block`` methods work on ints and torch tensors too.
- ``Notes``: decoded notes as typed columns (onset and duration ticks, instrument, pitch, control flag), for
  code that works with whole notes rather than one column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from amt.tokenization.errors import TokenError
from amt.tokenization.vocab import (
    ADUR_OFFSET,
    ANOTE_OFFSET,
    ATIME_OFFSET,
    CONTROL_OFFSET,
    DUR_OFFSET,
    MAX_DUR,
    MAX_NOTE,
    MAX_PITCH,
    MAX_TIME,
    NOTE_OFFSET,
    REST,
    SPECIAL_OFFSET,
    TIME_OFFSET,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Block:
    """A block of the vocabulary: tokens ``offset .. offset + size - 1`` stand for values ``0 .. size - 1``.

    The methods are plain arithmetic and comparisons, so they take ints, numpy arrays and torch tensors.
    """

    offset: int
    size: int

    @property
    def tokens(self) -> range:
        """Every token of the block, in value order."""
        return range(self.offset, self.offset + self.size)

    def token(self, value: T) -> T:
        """The token(s) of ``value`` (not range-checked)."""
        return value + self.offset

    def value(self, token: T) -> T:
        """The value(s) of ``token`` (not range-checked: a token of another block gives a value outside)."""
        return token - self.offset

    def holds(self, token: T) -> T:
        """True where ``token`` is in the block."""
        return (token >= self.offset) & (token < self.offset + self.size)


EVENT_TIMES = Block(TIME_OFFSET, MAX_TIME)
EVENT_DURATIONS = Block(DUR_OFFSET, MAX_DUR)
EVENT_NOTES = Block(NOTE_OFFSET, MAX_NOTE)
"""Note tokens ``128 * instrument + pitch``; REST, the token right after the block, is not in it."""
CONTROL_TIMES = Block(ATIME_OFFSET, MAX_TIME)
CONTROL_DURATIONS = Block(ADUR_OFFSET, MAX_DUR)
CONTROL_NOTES = Block(ANOTE_OFFSET, MAX_NOTE)


def is_control_token(tokens: T) -> T:
    """Per token (any block): True for the tokens of controls (time, duration or note)."""
    return (tokens >= CONTROL_OFFSET) & (tokens < SPECIAL_OFFSET)


def as_triples(tokens: np.ndarray | Iterable[int]) -> np.ndarray:
    """``tokens`` as an (N, 3) int64 array (accepts a flat token list or an array of triples)."""
    array = np.asarray(tokens, dtype=np.int64)
    if array.size % 3:
        raise TokenError(f"{array.size} tokens is not a whole number of (time, duration, note) triples")
    return array.reshape(-1, 3)


def is_control(tokens: np.ndarray) -> np.ndarray:
    """Per triple: True for controls (anticipated events), False for events and special triples."""
    return is_control_token(as_triples(tokens)[:, 2])


def is_rest(tokens: np.ndarray) -> np.ndarray:
    """Per triple: True for REST events (padding, not notes)."""
    return as_triples(tokens)[:, 2] == REST


def _per_block(tokens: np.ndarray, column: int, event: Block, control: Block) -> np.ndarray:
    """One column of event and control triples as values, each by its own block (read from the note)."""
    tokens = as_triples(tokens)
    values = tokens[:, column]
    return np.where(tokens[:, 2] >= CONTROL_OFFSET, control.value(values), event.value(values))


def onset_ticks(tokens: np.ndarray) -> np.ndarray:
    """Onset ticks of events and controls alike (the time token without its block offset)."""
    return _per_block(tokens, 0, EVENT_TIMES, CONTROL_TIMES)


def duration_ticks(tokens: np.ndarray) -> np.ndarray:
    """Duration ticks of events and controls alike."""
    return _per_block(tokens, 1, EVENT_DURATIONS, CONTROL_DURATIONS)


def end_ticks(tokens: np.ndarray) -> np.ndarray:
    """The tick at which each note ends (onset + duration)."""
    return onset_ticks(tokens) + duration_ticks(tokens)


def event_span(triple: np.ndarray) -> tuple[int, int]:
    """(onset, end) ticks of one event triple as ints: the sampler hears one note at a time, where the
    array functions above would cost more than the arithmetic."""
    onset = EVENT_TIMES.value(int(triple[0]))
    return onset, onset + EVENT_DURATIONS.value(int(triple[1]))


def _note_values(note_tokens: np.ndarray) -> np.ndarray:
    notes = np.asarray(note_tokens, dtype=np.int64)
    return np.where(notes >= CONTROL_OFFSET, CONTROL_NOTES.value(notes), EVENT_NOTES.value(notes))


def instrument_of(note_tokens: np.ndarray) -> np.ndarray:
    """Instrument numbers (0..127, 128 = drums) of event or control note tokens."""
    return _note_values(note_tokens) // MAX_PITCH


def pitch_of(note_tokens: np.ndarray) -> np.ndarray:
    """MIDI pitches (0..127) of event or control note tokens."""
    return _note_values(note_tokens) % MAX_PITCH


def note_tokens(instruments: np.ndarray | int, pitches: np.ndarray | int, control: bool = False
                ) -> np.ndarray:
    """The note tokens of (instrument, pitch) pairs, as events or as controls."""
    return (CONTROL_NOTES if control else EVENT_NOTES).token(MAX_PITCH * np.asarray(instruments) + pitches)


def encode(onsets: np.ndarray, durations: np.ndarray, instruments: np.ndarray, pitches: np.ndarray,
           control: bool = False) -> np.ndarray:
    """(N, 3) int64 triples of notes given as columns of ticks, instruments and pitches (events, or controls
    when ``control``)."""
    time, duration = (CONTROL_TIMES, CONTROL_DURATIONS) if control else (EVENT_TIMES, EVENT_DURATIONS)
    columns = [time.token(np.asarray(onsets)), duration.token(np.asarray(durations)),
               note_tokens(instruments, pitches, control)]
    return np.stack(columns, axis=1).astype(np.int64).reshape(-1, 3)


@dataclass(frozen=True)
class Notes:
    """Decoded notes, one row per triple: onset and duration in ticks, instrument, pitch, and whether the
    note is a control (an anticipated event) rather than an event."""

    onsets: np.ndarray
    durations: np.ndarray
    instruments: np.ndarray
    pitches: np.ndarray
    controls: np.ndarray

    def __len__(self) -> int:
        return len(self.onsets)

    @property
    def ends(self) -> np.ndarray:
        """The tick at which each note ends."""
        return self.onsets + self.durations

    @classmethod
    def decode(cls, tokens: np.ndarray) -> Notes:
        """The notes of (N, 3) event or control triples; raises TokenError for a REST or a special triple
        (drop RESTs first: ``tokens[~is_rest(tokens)]``)."""
        tokens = as_triples(tokens)
        if (is_rest(tokens) | (tokens[:, 2] >= SPECIAL_OFFSET)).any():
            raise TokenError("Notes.decode expects notes: drop REST and special triples first")
        return cls(onset_ticks(tokens), duration_ticks(tokens), instrument_of(tokens[:, 2]),
                   pitch_of(tokens[:, 2]), is_control(tokens))

    def encode(self) -> np.ndarray:
        """The (N, 3) triples of these notes, events and controls each in their own blocks."""
        out = np.empty((len(self), 3), dtype=np.int64)
        for control in (False, True):
            rows = self.controls == control
            out[rows] = encode(self.onsets[rows], self.durations[rows], self.instruments[rows],
                               self.pitches[rows], control)
        return out
