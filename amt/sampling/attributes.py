"""Musical attributes of generated notes (density, polyphony): the decoding bounds that steer them and
the distance used to rank candidates."""

from __future__ import annotations

import math

import numpy as np

from amt.tokenization.vocab import DUR_OFFSET, REST, TIME_OFFSET, TIME_RESOLUTION


def density_slack(density: float) -> float:
    """How many notes the count may run ahead of or behind the density budget: a second's worth, at
    least 4 so that a chord fits."""
    return max(4.0, density)


def density_bounds(density: float, notes: int, start: int) -> tuple[int, int]:
    """Earliest and latest onset (ticks) for the next new note, given ``notes`` new notes so far since
    ``start``: earlier would run ahead of ``density`` notes/s by more than the slack, later would fall
    behind by more than the slack."""
    slack = density_slack(density)
    per_note = TIME_RESOLUTION / density
    earliest = start + math.ceil((notes + 1 - slack) * per_note)
    latest = start + math.floor((notes + slack) * per_note)
    return earliest, latest


def density_behind(density: float, notes: int, start: int, time: int) -> bool:
    """Whether, at onset ``time``, the new notes so far are at or behind the density budget (so a REST
    would only widen the gap)."""
    return notes + 1 <= density * (time - start) / TIME_RESOLUTION


def polyphony_cap(polyphony: float) -> int:
    """Most new notes that may sound at once for a target mean polyphony."""
    return max(1, math.ceil(1.5 * polyphony))


def polyphony_earliest(note_ends: list[int], cap: int) -> int | None:
    """Earliest onset (ticks) at which fewer than ``cap`` of the notes ending at ``note_ends`` still sound;
    None when that holds already at any time."""
    if len(note_ends) < cap:
        return None
    return sorted(note_ends, reverse=True)[cap - 1]


def measure(events: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """Density (notes/s) and mean polyphony of the notes in ``events`` (absolute-tick event tokens, RESTs
    ignored) over the span ``[start, end)`` ticks."""
    span = max(end - start, 1)
    notes = events[events[:, 2] != REST] if len(events) else events
    if len(notes) == 0:
        return 0.0, 0.0
    onsets = notes[:, 0] - TIME_OFFSET
    ends = np.minimum(onsets + notes[:, 1] - DUR_OFFSET, end)
    sounding = np.clip(ends - np.maximum(onsets, start), 0, None).sum()
    return len(notes) * TIME_RESOLUTION / span, float(sounding) / span


def distance(events: np.ndarray, start: int, end: int, density: float | None,
             polyphony: float | None) -> float:
    """How far ``events`` are from the targets: the sum of absolute log ratios (0 when both are met)."""
    measured_density, measured_polyphony = measure(events, start, end)
    total = 0.0
    for measured, target in ((measured_density, density), (measured_polyphony, polyphony)):
        if target is not None:
            total += abs(math.log((measured + 0.1) / (target + 0.1)))
    return total
