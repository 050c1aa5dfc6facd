"""Operations on event arrays: padding, anticipation (interleaving controls), and choosing controls.

Every function takes and returns (N, 3) int64 arrays of (time, duration, note) token triples (see
``amt.tokenization.vocab``) and is vectorised numpy. The per-triple readers (``as_triples``, ``onset_ticks``,
``instrument_of``, ``pitch_of``, ``is_rest``, ``is_control``) live in ``amt.tokenization.notes``; the ones
ops uses are importable from here too. Events and controls are ordered by onset. Times of a
whole piece are absolute and may run past ``CONTROL_OFFSET``, so a triple's block (event, control, special)
is read from its note token, never from its time token.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from amt.tokenization.errors import TokenError
from amt.tokenization.notes import as_triples, instrument_of, is_control, is_rest, onset_ticks, pitch_of
from amt.tokenization.vocab import (
    ATIME_OFFSET,
    CONTROL_OFFSET,
    DELTA,
    DRUMS,
    DUR_OFFSET,
    MAX_PITCH,
    REST,
    REST_INTERVAL,
    SPECIAL_OFFSET,
    TIME_OFFSET,
    TIME_RESOLUTION,
)


def translate(tokens: np.ndarray, dt: int) -> np.ndarray:
    """Shift every onset (events and controls) by ``dt`` ticks."""
    out = as_triples(tokens).copy()
    out[:, 0] += dt
    if len(out) and onset_ticks(out).min() < 0:
        raise TokenError(f"shifting by {dt} ticks makes an onset negative")
    return out


def _pitched(tokens: np.ndarray) -> np.ndarray:
    """Per triple: True for notes with a pitch (events or controls, not drums, RESTs or special triples)."""
    notes = tokens[:, 2]
    return ~is_rest(tokens) & (notes < SPECIAL_OFFSET) & (instrument_of(notes) != DRUMS)


def transpose(tokens: np.ndarray, semitones: int) -> np.ndarray:
    """Shift the pitch of every pitched note (events and controls) by ``semitones``; drums and RESTs keep
    theirs. Raises TokenError if a pitch would leave 0..127."""
    out = as_triples(tokens).copy()
    pitched = _pitched(out)
    pitches = pitch_of(out[pitched, 2]) + semitones
    if len(pitches) and (pitches.min() < 0 or pitches.max() >= MAX_PITCH):
        raise TokenError(f"transposing by {semitones} semitones takes a pitch outside 0..{MAX_PITCH - 1}")
    out[pitched, 2] += semitones
    return out


def transposition_range(tokens: np.ndarray, limit: int) -> tuple[int, int]:
    """The widest ``(low, high)`` within ``[-limit, limit]`` that :func:`transpose` accepts for ``tokens``."""
    tokens = as_triples(tokens)
    pitched = _pitched(tokens)
    if not pitched.any():
        return 0, 0
    pitches = pitch_of(tokens[pitched, 2])
    return max(-limit, -int(pitches.min())), min(limit, MAX_PITCH - 1 - int(pitches.max()))


def to_controls(events: np.ndarray) -> np.ndarray:
    """Events as controls (every token shifted by ``CONTROL_OFFSET``); RESTs have no control form."""
    events = as_triples(events)
    if is_rest(events).any():
        raise TokenError("REST events cannot become controls")
    if len(events) and events[:, 2].max() >= CONTROL_OFFSET:
        raise TokenError("to_controls expects event tokens")
    return events + CONTROL_OFFSET


def from_controls(controls: np.ndarray) -> np.ndarray:
    """Controls back as the events they anticipate."""
    controls = as_triples(controls)
    if len(controls) and not is_control(controls).all():
        raise TokenError("from_controls expects control tokens")
    return controls - CONTROL_OFFSET


def pad(events: np.ndarray, end_time: int | None = None) -> np.ndarray:
    """Insert REST events so that no gap between onsets exceeds ``REST_INTERVAL`` ticks (1 s).

    Before each event whose onset is more than 1 s after the previous onset (the first gap counts from 0),
    RESTs are placed at +1 s steps from the previous onset; the same is done after the last event up to
    ``end_time`` (None or 0: the last onset, so nothing is added). RESTs have duration 0.
    """
    events = as_triples(events)
    times = events[:, 0] - TIME_OFFSET
    previous = np.concatenate([[0], times[:-1]])
    counts = np.maximum((times - previous - 1) // REST_INTERVAL, 0)
    last = int(times[-1]) if len(times) else 0
    end = last if not end_time else int(end_time) - TIME_OFFSET
    tail = max((end - last - 1) // REST_INTERVAL, 0)
    total = len(events) + int(counts.sum()) + tail
    out = np.empty((total, 3), dtype=np.int64)
    event_at = np.arange(len(events)) + np.cumsum(counts)
    out[event_at] = events
    rest_mask = np.ones(total, dtype=bool)
    rest_mask[event_at] = False
    owner = np.repeat(np.arange(len(events) + 1), np.append(counts, tail))
    step = (
        np.arange(len(owner))
        - np.repeat(np.cumsum(np.append(counts, tail)) - np.append(counts, tail), np.append(counts, tail))
        + 1
    )
    base = np.append(previous, last)[owner]
    out[rest_mask] = np.stack(
        [
            TIME_OFFSET + base + step * REST_INTERVAL,
            np.full(len(owner), DUR_OFFSET),
            np.full(len(owner), REST),
        ],
        axis=1,
    )
    return out


def interleave(events: np.ndarray, controls: np.ndarray, delta: int = DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Anticipation: insert each control ``delta`` ticks ahead of its onset into the event stream.

    Controls are taken in order; a control goes right before the first event whose *previous* event (onset 0
    before the first event) starts at or after the control's onset minus ``delta``, i.e. right after that
    event. Controls whose turn comes only after the last event are returned as leftovers (pad the events up
    to the end of the controls to use them all). Returns ``(tokens, leftover_controls)``.
    """
    events = as_triples(events)
    controls = as_triples(controls)
    if len(controls) == 0:
        return events.copy(), controls.copy()
    # The time each event's predecessor started; "first i with value >= x" on its running maximum.
    before = np.maximum.accumulate(np.concatenate([[0], events[:-1, 0] - TIME_OFFSET]))
    if len(events) == 0:
        before = before[:0]
    due = np.maximum.accumulate(controls[:, 0] - ATIME_OFFSET) - delta  # a control waits for earlier ones
    slot = np.searchsorted(before, due, side="left")
    placed = slot < len(events)
    slot = slot[placed]
    total = len(events) + len(slot)
    out = np.empty((total, 3), dtype=np.int64)
    controls_before = np.searchsorted(slot, np.arange(len(events)), side="right")
    out[np.arange(len(events)) + controls_before] = events
    out[np.arange(len(slot)) + slot] = controls[placed]
    return out, controls[~placed].copy()


def deinterleave(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an interleaved sequence into ``(events, controls)``, controls shifted back to event tokens."""
    tokens = as_triples(tokens)
    if len(tokens) and tokens[:, 2].max() >= SPECIAL_OFFSET:
        raise TokenError("deinterleave expects events and controls only (no separators or flags)")
    control = is_control(tokens)
    return tokens[~control].copy(), tokens[control] - CONTROL_OFFSET


def extract_instruments(events: np.ndarray, instruments: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Turn every event of the given instruments into a control; returns ``(events, controls)``."""
    events = as_triples(events)
    chosen = np.isin(instrument_of(events[:, 2]), np.asarray(list(instruments), dtype=np.int64))
    chosen &= ~is_rest(events)
    return events[~chosen].copy(), to_controls(events[chosen])


def extract_random(
    events: np.ndarray, rng: np.random.Generator, probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Turn each note event into a control with ``probability``, independently; returns (events, controls)."""
    events = as_triples(events)
    chosen = (rng.random(len(events)) < probability) & ~is_rest(events)
    return events[~chosen].copy(), to_controls(events[chosen])


def extract_spans(
    events: np.ndarray,
    rng: np.random.Generator,
    rate: float = 0.05,
    span: int = DELTA,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn the notes of random time spans into controls (span anticipation); returns ``(events, controls)``.

    Waits between spans are exponential with mean ``1 / rate`` seconds, the first counted from the first
    event: a span starts at the first event at or after the wait and takes every event that starts less than
    ``span`` ticks after it; the next wait counts from the first event after the span.
    """
    events = as_triples(events)
    times = events[:, 0] - TIME_OFFSET
    chosen = np.zeros(len(events), dtype=bool)
    end = 0
    while end < len(times):  # one iteration per span, not per note
        wait = int(TIME_RESOLUTION * rng.exponential(1.0 / rate))
        start = int(np.searchsorted(times, times[end] + wait, side="left"))
        if start >= len(times):
            break
        end = int(np.searchsorted(times, times[start] + span, side="left"))
        chosen[start:end] = True
    chosen &= ~is_rest(events)
    return events[~chosen].copy(), to_controls(events[chosen])
