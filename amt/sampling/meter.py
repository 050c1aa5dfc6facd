"""A file's beats and the rhythmic grid its notes use, through its time map (``TimeMap``).

The beats and bar lines themselves are the time map's (``TimeMap.beats``: the time signature's counting
unit, the first beat of each bar strong); this module finds which grid a file's notes keep to
(``file_grid``), for the tasks' default grid and the accompaniment yardstick.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from amt.tokenization.midi import MidiMeta
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import TIME_RESOLUTION

GRID_TOLERANCE = 1
"""Ticks (10 ms) an onset may lie from a grid step and still count as on it (rounding of the conversion)."""
ON_GRID_SHARE = 0.85
"""``file_grid``: the share of the kept onsets a grid must hold to be the file's grid."""


def beats(meta: MidiMeta, end: int) -> tuple[np.ndarray, np.ndarray]:
    """(onset ticks, strong) of the beats that start before event tick ``end`` (``TimeMap.beats``)."""
    return TimeMap.from_meta(meta).beats(end)


def on_grid(onsets: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Boolean per onset: within ``GRID_TOLERANCE`` ticks of a step of ``grid`` (ascending ticks)."""
    onsets = np.asarray(onsets, dtype=np.int64)
    if not len(grid):
        return np.zeros(len(onsets), dtype=bool)
    i = np.clip(np.searchsorted(grid, onsets), 1, len(grid) - 1) if len(grid) > 1 else np.zeros_like(onsets)
    nearest = np.minimum(np.abs(grid[i] - onsets), np.abs(grid[np.maximum(i - 1, 0)] - onsets))
    return nearest <= GRID_TOLERANCE


def file_grid(clock: MidiMeta | TimeMap, onsets: np.ndarray) -> int | None:
    """Steps per quarter note of the grid the notes at ``onsets`` use: 4 (sixteenths), 12 (sixteenths and
    eighth-note triplets) where triplets are needed, or None when neither holds ``ON_GRID_SHARE`` of them
    (free timing: a played-in performance). ``clock``: the piece's meta or time map (``TimeMap.of``)."""
    onsets = np.asarray(onsets, dtype=np.int64)
    if not len(onsets):
        return None
    end = int(onsets.max()) + 1
    time_map = TimeMap.of(clock)
    for steps in (4, 12):
        grid = time_map.grid_ticks(Fraction(1, steps), end + TIME_RESOLUTION)
        if on_grid(onsets, grid).mean() >= ON_GRID_SHARE:
            return steps
    return None
