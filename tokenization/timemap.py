"""One time map: a piece's tempo and meter, converting between model ticks, seconds, beats and bars.

The model thinks in seconds (10 ms ticks, ``TIME_RESOLUTION`` per second); musicians, MIDI files and DAWs
think in quarter-note beats and bars through a tempo map and time signatures. Every conversion between the
two lives here: the sampler's grid and beats (``amt.sampling``), the DAW bridge's beats (``amt.plugins``).

A map is built from a MIDI file's ``MidiMeta`` (``from_meta``: positions are whole MIDI ticks and the
arithmetic is exact, as in ``MidiMeta``'s own conversions) or from a DAW's tempo points and time signatures
in beats (``from_beats``). Each tempo holds until the next, so seconds are a piecewise-linear, increasing
function of beats. A file without tempo is at 120 bpm and without time signatures in 4/4 (the MIDI
standard's defaults, ``TimeMap()``); its bar lines are then unknown (``metered`` is False) and no beat is
strong. The beat is the time signature's counting unit: the denominator's note value, or three of them in
compound meters (6/8, 9/8, 12/8: dotted quarters); the first beat of each bar is strong.

Model tick 0 may lie ``offset`` ticks after beat 0 (a DAW region far into a project is shown to the model
from near its start): tick conversions subtract it, seconds and beats are from beat 0. Written over numpy
(tempo maps are a handful of points), free of torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from amt.tokenization.midi import DEFAULT_TICKS_PER_BEAT, MidiMeta
from amt.tokenization.vocab import TIME_RESOLUTION

DEFAULT_BPM = 120.0
"""Tempo of music that does not say (the MIDI standard's default)."""
DEFAULT_METER = (4, 4)
"""Time signature of music that does not say (the MIDI standard's default)."""


class TimeMapError(ValueError):
    """A tempo or meter map that cannot be used (unordered, non-positive, a meter change off a bar line)."""


@dataclass(frozen=True)
class TimeMap:
    """Tempo and meter in *units*: ``units_per_beat`` per quarter note (a MIDI file's ticks per beat, or 1
    for a map given in beats). ``tempos``: (unit, seconds per quarter note) with the first at 0; ``meters``:
    (unit, numerator, denominator) with the first at 0; ``whole_units``: positions are whole units (MIDI
    ticks), rounded as a MIDI file must; ``metered``: the bar lines are known; ``offset``: model tick 0 lies
    this many 10 ms ticks after unit 0. ``TimeMap()`` is music that says nothing: a MIDI file at 120 bpm in
    4/4 with unknown bar lines."""

    tempos: tuple[tuple[float, float], ...] = ((0, 60 / DEFAULT_BPM),)
    meters: tuple[tuple[float, int, int], ...] = ((0, *DEFAULT_METER),)
    units_per_beat: int = DEFAULT_TICKS_PER_BEAT
    whole_units: bool = True
    metered: bool = False
    offset: int = 0

    def __post_init__(self):
        units = np.array([float(u) for u, _ in self.tempos])
        per_quarter = np.array([float(t) for _, t in self.tempos])
        if not len(units) or units[0] != 0:
            raise TimeMapError("the tempo map must start at beat 0")
        if not (np.all(np.isfinite(per_quarter)) and np.all(per_quarter > 0)):
            raise TimeMapError("tempos must be positive, finite beats per minute")
        if np.any(np.diff(units) <= 0):
            raise TimeMapError("tempo map beats must be strictly increasing")
        # A MIDI file's arithmetic is exact in integers (held in float64, below 2**53): per unit, whole
        # microseconds per quarter note; at each tempo's start, microseconds x units_per_beat (MidiMeta's
        # N). A map in beats: seconds per unit, and seconds at each tempo's start.
        per_unit = np.rint(per_quarter * 1e6) if self.whole_units else per_quarter / self.units_per_beat
        starts = np.concatenate([[0.0], np.cumsum(np.diff(units) * per_unit[:-1])])
        object.__setattr__(self, "_tempo", (units, per_unit, starts))
        if not self.meters or self.meters[0][0] != 0:
            raise TimeMapError("the time signature map must start at beat 0")
        first_bar = [1.0]  # bar number of each meter's start (a file's meter may change mid-bar)
        for before, meter in zip(self.meters, self.meters[1:], strict=False):
            bars = (meter[0] - before[0]) / self._bar_units(before)
            first_bar.append(first_bar[-1] + (round(bars) if abs(bars - round(bars)) <= 1e-6 else bars))
        object.__setattr__(self, "_first_bar", first_bar)

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_meta(cls, meta: MidiMeta) -> TimeMap:
        """The map of a MIDI file: its tempos and time signatures in MIDI ticks (120 bpm and 4/4 where it
        says nothing, see ``MidiMeta.tempo_map``)."""
        ticks, us, _ = meta.tempo_map()
        per_quarter = us / 1e6
        meters = [(int(t), int(n), int(d)) for t, n, d in meta.time_signatures]
        metered = bool(meters)
        if not meters or meters[0][0] > 0:
            meters.insert(0, (0, *DEFAULT_METER))
        return cls(tempos=tuple(zip(ticks.tolist(), per_quarter.tolist(), strict=True)), meters=tuple(meters),
                   units_per_beat=meta.ticks_per_beat, whole_units=True, metered=metered)

    @classmethod
    def from_beats(cls, tempos: Sequence[tuple[float, float]],
                   meters: Sequence[tuple[float, int, int]] = ((0, *DEFAULT_METER),)) -> TimeMap:
        """The map of a DAW project: ``tempos`` are (beat, bpm) sorted by beat, the first at beat 0;
        ``meters`` are (beat, numerator, denominator), the first at beat 0, each change on a bar line of
        the meter before it (as in every DAW)."""
        per_quarter = [60.0 / float(bpm) if float(bpm) > 0 else math.nan for _, bpm in tempos]
        time_map = cls(tempos=tuple((float(b), t) for (b, _), t in zip(tempos, per_quarter, strict=True)),
                       meters=tuple((float(b), int(n), int(d)) for b, n, d in meters), units_per_beat=1,
                       whole_units=False, metered=True)
        bars = np.diff(time_map._first_bar)
        for (beat, *_), count in zip(meters[1:], bars, strict=True):
            if count <= 0 or abs(count - round(count)) > 1e-6:
                raise TimeMapError(f"time signature change at beat {beat} is not on a bar line")
        return time_map

    @classmethod
    def of(cls, clock: MidiMeta | TimeMap) -> TimeMap:
        """``clock`` itself when it is a map (a DAW's, in beats), else its MIDI file's (``from_meta``)."""
        return clock if isinstance(clock, TimeMap) else cls.from_meta(clock)

    def shifted(self, offset: int) -> TimeMap:
        """This map with model tick 0 at ``offset`` 10 ms ticks after beat 0."""
        return replace(self, offset=int(offset))

    # -- seconds and beats -----------------------------------------------------------------------------------
    def _seconds(self, units: np.ndarray) -> np.ndarray:
        units_at, per_unit, starts = self._tempo
        seg = np.clip(np.searchsorted(units_at, units, side="right") - 1, 0, len(units_at) - 1)
        if self.whole_units:
            return (starts[seg] + (units - units_at[seg]) * per_unit[seg]) / (1e6 * self.units_per_beat)
        return starts[seg] + (units - units_at[seg]) * per_unit[seg]

    def _units(self, seconds: np.ndarray) -> np.ndarray:
        units_at, per_unit, starts = self._tempo
        n = np.rint(seconds * 1e6 * self.units_per_beat) if self.whole_units else seconds
        seg = np.clip(np.searchsorted(starts, n, side="right") - 1, 0, len(units_at) - 1)
        units = (n - starts[seg]) / per_unit[seg]
        # Whole units: the nearest, halves up (the quotients are never within float error of a half).
        return units_at[seg] + (np.floor(units + 0.5) if self.whole_units else units)

    def to_seconds(self, beats: np.ndarray | float) -> np.ndarray | float:
        """Seconds from beat 0 of positions in quarter-note beats."""
        out = self._seconds(np.asarray(beats, dtype=np.float64) * self.units_per_beat)
        return float(out) if np.ndim(out) == 0 else out

    def to_beats(self, seconds: np.ndarray | float) -> np.ndarray | float:
        """Quarter-note beats from beat 0 of positions in seconds (inverse of ``to_seconds``)."""
        out = self._units(np.asarray(seconds, dtype=np.float64)) / self.units_per_beat
        return float(out) if np.ndim(out) == 0 else out

    def mean_bpm(self, start: float, end: float) -> float:
        """The average tempo over ``[start, end)`` beats (beats per minute of wall time)."""
        return 60.0 * (end - start) / (self.to_seconds(end) - self.to_seconds(start))

    # -- model ticks -----------------------------------------------------------------------------------------
    def _ticks(self, units: np.ndarray) -> np.ndarray:
        return np.rint(self._seconds(units) * TIME_RESOLUTION).astype(np.int64) - self.offset

    def _units_at_tick(self, tick: int) -> float:
        return float(self._units(np.asarray((tick + self.offset) / TIME_RESOLUTION)))

    def beats_to_ticks(self, beats: np.ndarray | float) -> np.ndarray:
        """Model ticks (10 ms, rounded) of positions in beats."""
        return self._ticks(np.atleast_1d(np.asarray(beats, dtype=np.float64)) * self.units_per_beat)

    def ticks_to_beats(self, ticks: np.ndarray | int) -> np.ndarray | float:
        """Beats of model ticks."""
        return self.to_beats((np.asarray(ticks, dtype=np.float64) + self.offset) / TIME_RESOLUTION)

    def grid_ticks(self, step: Fraction | float, end: int) -> np.ndarray:
        """Ascending model ticks in ``[0, end]`` of a grid with a line every ``step`` quarter notes from beat
        0 (``Fraction(1, 4)``: sixteenths; ``1``: quarter notes), through the tempo map. Only the lines
        from tick 0 on are built, so a span far into a project costs what one at its start does."""
        step = Fraction(step).limit_denominator(1 << 20)
        per_step = self.units_per_beat * step  # units per grid line, exact
        first = math.floor(Fraction(self._units_at_tick(0)) / per_step)
        last = math.floor(Fraction(self._units_at_tick(end)) / per_step) + 1
        k = np.arange(first, last + 1, dtype=np.int64)
        units = k * (self.units_per_beat * step.numerator) / step.denominator
        if self.whole_units:
            units = np.rint(units)
        ticks = np.unique(self._ticks(units))
        return ticks[(ticks >= 0) & (ticks <= end)]

    # -- bars and beats --------------------------------------------------------------------------------------
    def _bar_units(self, meter: tuple[float, int, int]) -> float:
        return self.units_per_beat * 4 * meter[1] / meter[2]

    def _beat_units(self, meter: tuple[float, int, int]) -> float:
        """Units per beat: the denominator's note value, three of them in compound meters (6/8, 9/8, 12/8)."""
        _, numerator, denominator = meter
        unit = self.units_per_beat * 4 / denominator
        return unit * 3 if denominator == 8 and numerator % 3 == 0 and numerator > 3 else unit

    def bar_to_beat(self, bar: float) -> float:
        """The beat where (fractional) ``bar`` falls: bar 1 is beat 0, bar 2.5 is half-way through bar 2."""
        if bar < 1:
            raise TimeMapError(f"bar {bar} is before bar 1")
        i = max(k for k, first in enumerate(self._first_bar) if first <= bar)
        start = self.meters[i][0]
        return (start + (bar - self._first_bar[i]) * self._bar_units(self.meters[i])) / self.units_per_beat

    def starts_bar(self, beats: np.ndarray) -> np.ndarray:
        """Whether each of ``beats`` (at or after beat 0) falls on a bar line."""
        units = np.asarray(beats, dtype=np.float64) * self.units_per_beat
        starts = np.array([m[0] for m in self.meters], dtype=np.float64)
        bars = np.array([self._bar_units(m) for m in self.meters])
        i = np.searchsorted(starts, units, side="right") - 1
        position = (units - starts[i]) / bars[i]
        return np.abs(position - np.rint(position)) < 1e-6

    def beats(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(model ticks, strong) of the beats from the last one at or before tick 0 up to tick ``end``
        (exclusive): ascending ticks, and whether each starts a bar (all False when ``metered`` is False)."""
        low, last = self._units_at_tick(0), self._units_at_tick(end)
        positions, strong = [], []
        for i, meter in enumerate(self.meters):
            start = meter[0]
            stop = self.meters[i + 1][0] if i + 1 < len(self.meters) else last + 1
            beat = self._beat_units(meter)
            skip = max(0, math.floor((low - start) / beat))  # beats of this meter before tick 0's
            here = np.arange(start + skip * beat if skip else start, stop, beat)
            positions.append(here)
            strong.append(np.isclose((here - start) % self._bar_units(meter), 0) & self.metered)
        units, strong_beats = np.concatenate(positions), np.concatenate(strong)
        if self.whole_units:
            units = np.rint(units)
        ticks = self._ticks(units)
        keep = ticks < end
        ticks, first = np.unique(ticks[keep], return_index=True)
        return ticks, strong_beats[keep][first]
