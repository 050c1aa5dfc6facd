"""Musical attributes of generated notes (density, polyphony): their measure and the distance used to rank
candidates. The decoding bounds that steer them are constraints (``constraints.density``, ``.polyphony``)."""

from __future__ import annotations

import math

import numpy as np

from amt.tokenization.notes import end_ticks, onset_ticks
from amt.tokenization.vocab import REST, TIME_RESOLUTION


def measure(events: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """Density (notes/s) and mean polyphony of the notes in ``events`` (absolute-tick event tokens, RESTs
    ignored) over the span ``[start, end)`` ticks."""
    span = max(end - start, 1)
    notes = events[events[:, 2] != REST] if len(events) else events
    if len(notes) == 0:
        return 0.0, 0.0
    onsets = onset_ticks(notes)
    ends = np.minimum(end_ticks(notes), end)
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
