"""The notes of an event array as plain columns in musical units (seconds, pitch, instrument)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amt.tokenization.vocab import DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, REST, TIME_OFFSET, TIME_RESOLUTION


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
        index = np.flatnonzero(events[:, 2] != REST)
        note = events[index, 2] - NOTE_OFFSET
        return cls(
            onsets=(events[index, 0] - TIME_OFFSET) / TIME_RESOLUTION,
            durations=(events[index, 1] - DUR_OFFSET) / TIME_RESOLUTION,
            pitches=note % MAX_PITCH,
            instruments=note // MAX_PITCH,
            tracks=(np.full(len(index), -1, dtype=np.int64) if tracks is None
                    else np.asarray(tracks, dtype=np.int64)[index]),
            index=index,
        )
