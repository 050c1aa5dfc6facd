"""Key weight: new pitched notes outside the key of the kept music around them keep only a share of their
probability.

The key follows modulations: it is estimated over a sliding window of ``WINDOW`` ticks of the kept notes
(prompt and controls) centred on each ``HOP`` of the span being written, each pitch class weighed by how long
it sounds within the window, with the Krumhansl-Schmuckler profiles of ``tonality``; the whole piece's
shares are added with weight ``PRIOR``, so that a window leaves the piece's key only where its own notes say
so clearly. A window with fewer than ``MIN_NOTES`` kept pitched notes, or a profile correlation below
``CLARITY``, says too little and takes the whole piece's key instead. The estimates are made once per
request; drawing a note only looks its window up. Where no key is clear (too few kept notes, atonal or
chromatic music, drums only) the weight is off. A weight, not a ban: chromatic passing notes stay possible.
"""

from __future__ import annotations

import numpy as np

from amt.sampling.tonality import key_correlation, key_fits, key_pitch_classes
from amt.tokenization.vocab import MAX_PITCH, TIME_RESOLUTION

KEY_WEIGHT = 0.3
"""Default ``SamplingOptions.key_weight``: chosen on validation pieces (MODEL_CARD.md)."""
CLARITY = 0.6
"""Lowest profile correlation at which the key counts as clear (diatonic music scores about 0.8-0.95)."""
MIN_NOTES = 8
"""Fewer kept pitched notes than this (in the piece, or in a window) say too little about the key."""
WINDOW = 8 * TIME_RESOLUTION
"""Ticks of kept music a local key is estimated from: a few bars, long enough to hear a key, short enough to
follow a modulation (chosen on validation pieces, MODEL_CARD.md)."""
PRIOR = 1.0
"""Weight of the whole piece's pitch-class shares added to each window's: a window's key differs from the
piece's only where its own notes say so clearly, not where a few bars of melody lean on the dominant
(chosen on validation pieces, MODEL_CARD.md)."""
HOP = TIME_RESOLUTION
"""Ticks between window centres: new notes starting within one hop share its window's key."""


def key_log_weights(key: tuple[int, str] | None, weight: float) -> np.ndarray:
    """Log-weights ``[MAX_PITCH]``: 0 for pitches in ``key`` (and for all pitches where it is None),
    ``log(weight)`` for the others."""
    if key is None:
        return np.zeros(MAX_PITCH)
    in_key = np.isin(np.arange(MAX_PITCH) % 12, sorted(key_pitch_classes(*key)))
    return np.where(in_key, 0.0, np.log(weight))


def sounding_time(onsets: np.ndarray, ends: np.ndarray, pitches: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """``[len(ticks), 12]``: for each tick, how long each pitch class has sounded before it (summed over
    notes). Window histograms are differences of two rows; exact, since the sums are piecewise linear between
    the notes' onsets and ends."""
    out = np.zeros((len(ticks), 12))
    for pc in range(12):
        mine = pitches % 12 == pc
        if not mine.any():
            continue
        times = np.concatenate([onsets[mine], ends[mine]])
        order = np.argsort(times, kind="stable")
        times = times[order]
        sounding = np.cumsum(np.concatenate([np.ones(mine.sum()), -np.ones(mine.sum())])[order])
        # sounding[k]: notes of this pitch class sounding between times[k] and times[k + 1]
        covered = np.concatenate([[0.0], np.cumsum(sounding[:-1] * np.diff(times))])
        out[:, pc] = np.interp(ticks, times, covered)
    return out


class KeyWeight:
    """Log-weights for new pitched notes from the key of the kept notes around their onsets (module doc).

    ``key`` is the whole piece's key (None where unclear), ``keys`` the key of each window of the span
    ``[start, end)`` (None where no key applies), ``why_off`` a line where the weight is off and ``notes``
    lines on what was estimated how."""

    def __init__(self, onsets: np.ndarray, ends: np.ndarray, pitches: np.ndarray, weight: float,
                 start: int, end: int):
        self.key: tuple[int, str] | None = None
        self.keys: list[tuple[int, str] | None] = []
        self.why_off = ""
        self.notes: list[str] = []
        self.start = start
        self._log_weights: np.ndarray | None = None  # [windows, MAX_PITCH]
        if weight >= 1.0:
            self.why_off = "key weight 1 (off)"
            return
        if len(pitches) < MIN_NOTES:
            self.why_off = f"key weight off: {len(pitches)} kept pitched notes say too little about the key"
            return
        ends = np.maximum(ends, onsets + 1)  # a note without duration still counts, for one tick
        tonic, mode, clarity = key_correlation(pitches, (ends - onsets).astype(np.float64))
        if clarity >= CLARITY:
            self.key = (tonic, mode)
        self.keys = self._window_keys(onsets, ends, pitches, start, end)
        if all(key is None for key in self.keys):
            self.why_off = f"key weight off: the key is unclear (profile correlation {clarity:.2f})"
            return
        if self.key is None:
            self.notes.append(f"key weight: the whole piece's key is unclear (profile correlation "
                              f"{clarity:.2f}); weighed only where the kept notes around show one")
        table = {key: key_log_weights(key, weight) for key in set(self.keys)}
        self._log_weights = np.stack([table[key] for key in self.keys])

    def _window_keys(self, onsets, ends, pitches, start: int, end: int) -> list[tuple[int, str] | None]:
        """The key of each window over ``[start, end)``: its own where clear, else the whole piece's."""
        centres = start + HOP // 2 + HOP * np.arange(max(1, -(-(end - start) // HOP)))
        lows, highs = centres - WINDOW // 2, centres + WINDOW - WINDOW // 2
        covered = sounding_time(onsets, ends, pitches, np.concatenate([lows, highs]))
        histograms = covered[len(centres):] - covered[:len(centres)]
        whole = np.bincount(pitches % 12, weights=(ends - onsets).astype(np.float64), minlength=12)
        shares = histograms / np.maximum(histograms.sum(axis=1, keepdims=True), 1)
        tonics, minors, clarities = key_fits(shares + PRIOR * whole / whole.sum())
        counts = np.searchsorted(np.sort(onsets), highs) - np.searchsorted(np.sort(ends), lows, side="right")
        return [(int(t), "minor" if m else "major") if n >= MIN_NOTES and r >= CLARITY else self.key
                for t, m, r, n in zip(tonics, minors, clarities, counts, strict=True)]

    @property
    def on(self) -> bool:
        """Whether any window has a key to weigh by."""
        return self._log_weights is not None

    def at(self, onsets: np.ndarray) -> np.ndarray:
        """Log-weights ``[len(onsets), MAX_PITCH]`` for new notes starting at the ticks ``onsets``."""
        index = np.clip((np.asarray(onsets) - self.start) // HOP, 0, len(self.keys) - 1)
        return self._log_weights[index]
