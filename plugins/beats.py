"""Beats <-> seconds with a DAW tempo map, and bars -> beats with its meter map.

The model thinks in seconds (10 ms ticks); a DAW thinks in quarter-note beats with a tempo map. Each tempo
point holds until the next, so seconds are a piecewise-linear, strictly increasing function of beats and
the two conversions are exact inverses (up to float rounding). DAW tempo maps are small (a handful of
points), so this is written over numpy arrays rather than borrowed from a MIDI library whose maps are in
integer ticks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amt.plugins.protocol import RequestError


class TempoMap:
    """A tempo map: ``points`` are ``(beat, bpm)`` pairs sorted by beat, the first at beat 0."""

    def __init__(self, points: Sequence[tuple[float, float]]):
        beats = np.asarray([float(b) for b, _ in points], dtype=np.float64)
        bpm = np.asarray([float(t) for _, t in points], dtype=np.float64)
        if len(beats) == 0 or beats[0] != 0:
            raise RequestError("the tempo map must start at beat 0", 422)
        if not (np.all(np.isfinite(bpm)) and np.all(bpm > 0)):
            raise RequestError("tempos must be positive, finite beats per minute", 422)
        if np.any(np.diff(beats) <= 0):
            raise RequestError("tempo map beats must be strictly increasing", 422)
        self.beats = beats
        self.bpm = bpm
        self.seconds_per_beat = 60.0 / bpm
        # Seconds at which each tempo point starts.
        self.seconds = np.concatenate([[0.0], np.cumsum(np.diff(beats) * self.seconds_per_beat[:-1])])

    def to_seconds(self, beats: np.ndarray | float) -> np.ndarray | float:
        """Seconds from the project start of positions given in beats."""
        b = np.asarray(beats, dtype=np.float64)
        i = np.searchsorted(self.beats, b, side="right") - 1
        i = np.clip(i, 0, len(self.beats) - 1)
        out = self.seconds[i] + (b - self.beats[i]) * self.seconds_per_beat[i]
        return float(out) if np.ndim(out) == 0 else out

    def to_beats(self, seconds: np.ndarray | float) -> np.ndarray | float:
        """Beats from the project start of positions given in seconds (inverse of ``to_seconds``)."""
        s = np.asarray(seconds, dtype=np.float64)
        i = np.searchsorted(self.seconds, s, side="right") - 1
        i = np.clip(i, 0, len(self.seconds) - 1)
        out = self.beats[i] + (s - self.seconds[i]) / self.seconds_per_beat[i]
        return float(out) if np.ndim(out) == 0 else out

    def mean_bpm(self, start: float, end: float) -> float:
        """The average tempo over ``[start, end)`` beats (beats per minute of wall time)."""
        return 60.0 * (end - start) / (self.to_seconds(end) - self.to_seconds(start))


class MeterMap:
    """A meter map: ``points`` are ``(beat, numerator, denominator)``, sorted, the first at beat 0.

    Each meter change must fall on a bar line of the meter before it, as in every DAW.
    """

    def __init__(self, points: Sequence[tuple[float, int, int]]):
        if not points or points[0][0] != 0:
            raise RequestError("the time signature map must start at beat 0", 422)
        self.starts: list[float] = []  # beat where each meter starts
        self.first_bar: list[int] = []  # bar number (1-based) of that beat
        self.bar_beats: list[float] = []  # quarter notes per bar
        for beat, numerator, denominator in points:
            length = numerator * 4.0 / denominator
            if self.starts:
                bars = (beat - self.starts[-1]) / self.bar_beats[-1]
                if bars <= 0 or abs(bars - round(bars)) > 1e-6:
                    raise RequestError(f"time signature change at beat {beat} is not on a bar line", 422)
                self.first_bar.append(self.first_bar[-1] + round(bars))
            else:
                self.first_bar.append(1)
            self.starts.append(float(beat))
            self.bar_beats.append(length)

    def starts_bar(self, beats: np.ndarray) -> np.ndarray:
        """Whether each of ``beats`` (at or after beat 0) falls on a bar line."""
        beats = np.asarray(beats, dtype=np.float64)
        i = np.searchsorted(self.starts, beats, side="right") - 1
        bars = (beats - np.asarray(self.starts)[i]) / np.asarray(self.bar_beats)[i]
        return np.abs(bars - np.rint(bars)) < 1e-6

    def bar_to_beat(self, bar: float) -> float:
        """The beat where (fractional) ``bar`` falls: bar 1 is beat 0, bar 2.5 is half-way through bar 2."""
        if bar < 1:
            raise RequestError(f"bar {bar} is before bar 1", 422)
        i = max(k for k, first in enumerate(self.first_bar) if first <= bar)
        return self.starts[i] + (bar - self.first_bar[i]) * self.bar_beats[i]
