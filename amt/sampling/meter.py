"""A piece's beats and its rhythmic grid, from its tempo map and time signatures.

The beat is the time signature's counting unit: the denominator's note value, or three of them in compound
meters (6/8, 9/8, 12/8: dotted quarters). The first beat of each bar is *strong*. A file without time
signatures has quarter-note beats and no strong beats (its bar lines are unknown). Used by the sampler's
chord weight and by the accompaniment yardstick.
"""

from __future__ import annotations

import numpy as np

from amt.tokenization.midi import MidiMeta
from amt.tokenization.vocab import TIME_RESOLUTION

GRID_TOLERANCE = 1
"""Ticks (10 ms) an onset may lie from a grid step and still count as on it (rounding of the conversion)."""
ON_GRID_SHARE = 0.85
"""``file_grid``: the share of the kept onsets a grid must hold to be the file's grid."""


def _beat_length(numerator: int, denominator: int, ticks_per_beat: int) -> float:
    unit = ticks_per_beat * 4 / denominator
    compound = denominator == 8 and numerator % 3 == 0 and numerator > 3
    return unit * 3 if compound else unit


def beats(meta: MidiMeta, end: int) -> tuple[np.ndarray, np.ndarray]:
    """(onset ticks, strong) of the beats that start before event tick ``end``: ascending 10 ms ticks, and
    whether each is the first beat of a bar (all False when the file has no time signature)."""
    last = int(meta.seconds_to_ticks(end / TIME_RESOLUTION))  # MIDI ticks
    signatures = list(meta.time_signatures)
    metered = bool(signatures)
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    midi_ticks, strong = [], []
    for i, (start, numerator, denominator) in enumerate(signatures):
        stop = signatures[i + 1][0] if i + 1 < len(signatures) else last + 1
        beat = _beat_length(numerator, denominator, meta.ticks_per_beat)
        bar = meta.ticks_per_beat * 4 * numerator / denominator
        positions = np.arange(start, stop, beat)
        midi_ticks.append(positions)
        strong.append(np.isclose((positions - start) % bar, 0) & metered)
    positions, strong_beats = np.concatenate(midi_ticks), np.concatenate(strong)
    seconds = meta.ticks_to_numerator(np.rint(positions).astype(np.int64)) / (1e6 * meta.ticks_per_beat)
    ticks = np.rint(seconds * TIME_RESOLUTION).astype(np.int64)
    keep = ticks < end
    ticks, strong_beats = ticks[keep], strong_beats[keep]
    ticks, first = np.unique(ticks, return_index=True)
    return ticks, strong_beats[first]


def on_grid(onsets: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Boolean per onset: within ``GRID_TOLERANCE`` ticks of a step of ``grid`` (ascending ticks)."""
    onsets = np.asarray(onsets, dtype=np.int64)
    if not len(grid):
        return np.zeros(len(onsets), dtype=bool)
    i = np.clip(np.searchsorted(grid, onsets), 1, len(grid) - 1) if len(grid) > 1 else np.zeros_like(onsets)
    nearest = np.minimum(np.abs(grid[i] - onsets), np.abs(grid[np.maximum(i - 1, 0)] - onsets))
    return nearest <= GRID_TOLERANCE


def file_grid(meta: MidiMeta, onsets: np.ndarray) -> int | None:
    """Steps per quarter note of the grid the notes at ``onsets`` use: 4 (sixteenths), 12 (sixteenths and
    eighth-note triplets) where triplets are needed, or None when neither holds ``ON_GRID_SHARE`` of them
    (free timing: a played-in performance)."""
    onsets = np.asarray(onsets, dtype=np.int64)
    if not len(onsets):
        return None
    end = int(onsets.max()) + 1
    for steps in (4, 12):
        if on_grid(onsets, meta.grid_ticks(steps, end + TIME_RESOLUTION)).mean() >= ON_GRID_SHARE:
            return steps
    return None
