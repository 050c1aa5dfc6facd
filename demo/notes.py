"""The notes of an event array as plain columns in display units (seconds), for the piano roll.

Decoding is ``amt.tokenization.notes.Notes``'s; this adds what the demo draws with: seconds instead of ticks,
each note's track, and its row in the event array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amt.tokenization.notes import Notes, is_rest
from amt.tokenization.vocab import TIME_RESOLUTION


@dataclass(frozen=True)
class NoteArrays:
    """One row per sounding note (REST padding events are dropped); ``index`` points back into the events."""

    onsets: np.ndarray  # float seconds
    durations: np.ndarray  # float seconds
    pitches: np.ndarray  # int MIDI pitch
    instruments: np.ndarray  # int GM program, or DRUMS
    tracks: np.ndarray  # int track index, -1 where unknown
    index: np.ndarray  # int row in the event array

    def __len__(self) -> int:
        return len(self.onsets)

    @classmethod
    def from_events(cls, events: np.ndarray, tracks: np.ndarray | None = None) -> NoteArrays:
        """Columns of the notes in an (N, 3) event array with absolute times."""
        events = np.asarray(events, dtype=np.int64).reshape(-1, 3)
        index = np.flatnonzero(~is_rest(events))
        notes = Notes.decode(events[index])
        return cls(
            onsets=notes.onsets / TIME_RESOLUTION,
            durations=notes.durations / TIME_RESOLUTION,
            pitches=notes.pitches,
            instruments=notes.instruments,
            tracks=(np.full(len(index), -1, dtype=np.int64) if tracks is None
                    else np.asarray(tracks, dtype=np.int64)[index]),
            index=index,
        )
