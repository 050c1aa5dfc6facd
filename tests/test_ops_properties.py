"""Property tests for padding and anticipation (interleaving controls into events)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amt.errors import TokenError
from amt.tokenization import ops
from amt.tokenization.vocab import (
    ATIME_OFFSET,
    CONTROL_OFFSET,
    DELTA,
    DRUMS,
    DUR_OFFSET,
    NOTE_OFFSET,
    REST,
    REST_INTERVAL,
)


@st.composite
def sorted_events(draw, max_size=60, max_time=5000):
    times = sorted(draw(st.lists(st.integers(0, max_time), max_size=max_size)))
    notes = draw(st.lists(st.integers(0, 128 * 129 - 1), min_size=len(times), max_size=len(times)))
    durations = draw(st.lists(st.integers(0, 999), min_size=len(times), max_size=len(times)))
    return np.array(
        [[t, DUR_OFFSET + d, NOTE_OFFSET + n] for t, d, n in zip(times, durations, notes, strict=True)],
        dtype=np.int64,
    ).reshape(-1, 3)


@settings(max_examples=200, deadline=None)
@given(events=sorted_events(), extra=st.integers(0, 1000))
def test_pad_invariants(events, extra):
    end = (int(events[-1, 0]) if len(events) else 0) + extra
    padded = ops.pad(events, end)
    rest = ops.is_rest(padded)
    assert np.array_equal(padded[~rest], events)  # events kept, in order
    assert (padded[rest, 1] == DUR_OFFSET).all()
    onsets = np.concatenate([[0], padded[:, 0]])
    assert (np.diff(onsets) <= REST_INTERVAL).all()  # no gap over 1 s from time 0 on
    last = padded[-1, 0] if len(padded) else 0
    assert end - last <= REST_INTERVAL
    # Every REST is needed: it sits exactly 1 s after the onset before it.
    assert (padded[rest, 0] == onsets[:-1][rest] + REST_INTERVAL).all()


@settings(max_examples=300, deadline=None)
@given(events=sorted_events(), controls=sorted_events(max_size=30), delta=st.sampled_from([0, 100, DELTA]))
def test_interleave_invariants(events, controls, delta):
    controls = controls[controls[:, 2] != REST]
    # Enough padding: events up to 2 s past the last control, so each has an event after its due time.
    padded = ops.pad(events, (int(controls[:, 0].max()) if len(controls) else 0) + 2 * REST_INTERVAL)
    tokens, leftover = ops.interleave(padded, ops.to_controls(controls), delta)
    assert len(leftover) == 0
    kept, anticipated = ops.deinterleave(tokens)
    assert np.array_equal(kept, padded)  # order of events kept
    assert np.array_equal(anticipated, controls)  # every control exactly once, in order
    previous_onset = 0
    for time, _, note in tokens:
        if note >= CONTROL_OFFSET:
            # never before its time minus delta: the event just before it started at or after that time
            assert previous_onset >= time - ATIME_OFFSET - delta
        else:
            previous_onset = time
    # ...and as early as allowed: just before its previous event, the condition did not hold yet.
    is_control = ops.is_control(tokens)
    event_onsets = np.concatenate([[0], tokens[~is_control, 0]])
    events_before = np.cumsum(~is_control)[is_control]  # events emitted before each control
    due = np.maximum.accumulate(tokens[is_control, 0] - ATIME_OFFSET) - delta
    earlier = np.where(events_before >= 1, event_onsets[np.maximum(events_before - 1, 0)], -np.inf)
    assert (earlier < due).all() or not len(due)


@settings(max_examples=200, deadline=None)
@given(events=sorted_events(), controls=sorted_events(max_size=30))
def test_interleave_returns_unplaced_controls(events, controls):
    controls = ops.to_controls(controls[controls[:, 2] != REST])
    tokens, leftover = ops.interleave(events, controls)
    placed = tokens[ops.is_control(tokens)]
    assert np.array_equal(np.concatenate([placed, leftover]), controls)
    if len(leftover):
        last_onset = int(events[-1, 0]) if len(events) else None
        # Left over: its turn would come only after the last event.
        assert last_onset is None or len(events) == 1 or leftover[0, 0] - ATIME_OFFSET - DELTA > events[-2, 0]


@settings(max_examples=100, deadline=None)
@given(events=sorted_events(), seed=st.integers(0, 2**32 - 1), probability=st.floats(0, 1))
def test_extractions_partition_the_events(events, seed, probability):
    rng = np.random.default_rng(seed)
    instruments = np.unique(ops.instrument_of(events[:, 2]))[:2]
    for kept, controls in (
        ops.extract_random(events, rng, probability),
        ops.extract_spans(events, rng),
        ops.extract_instruments(events, instruments),
    ):
        merged = np.concatenate([kept, ops.from_controls(controls)])
        assert sorted(map(tuple, merged.tolist())) == sorted(map(tuple, events.tolist()))
        assert (ops.onset_ticks(controls) == controls[:, 0] - ATIME_OFFSET).all()
    chosen = np.isin(ops.instrument_of(events[:, 2]), instruments)
    assert np.array_equal(ops.extract_instruments(events, instruments)[1], ops.to_controls(events[chosen]))


def test_spans_are_five_seconds_long():
    events = np.array([[t, DUR_OFFSET + 10, NOTE_OFFSET + 60] for t in range(0, 100_000, 10)], dtype=np.int64)
    _, controls = ops.extract_spans(events, np.random.default_rng(1), rate=0.05)
    times = controls[:, 0] - ATIME_OFFSET
    starts = np.concatenate([[0], np.flatnonzero(np.diff(times) > 10) + 1])
    lengths = np.diff(np.append(starts, len(times))) * 10
    assert len(starts) > 5 and (lengths[:-1] == DELTA).all()


@settings(max_examples=200, deadline=None)
@given(events=sorted_events(), limit=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_transpose_moves_pitched_notes_only(events, limit, seed):
    events = np.concatenate([events, [[5000, DUR_OFFSET, REST]]])  # a REST is never transposed
    low, high = ops.transposition_range(events, limit)
    assert -limit <= low <= 0 <= high <= limit
    shift = int(np.random.default_rng(seed).integers(low, high + 1))
    moved = ops.transpose(events, shift)
    assert np.array_equal(moved[:, :2], events[:, :2])
    pitched = ~ops.is_rest(events) & (ops.instrument_of(events[:, 2]) != DRUMS)
    assert np.array_equal(ops.pitch_of(moved[pitched, 2]), ops.pitch_of(events[pitched, 2]) + shift)
    assert np.array_equal(ops.instrument_of(moved[pitched, 2]), ops.instrument_of(events[pitched, 2]))
    assert np.array_equal(moved[~pitched], events[~pitched])
    # The range is the widest possible: one semitone beyond either end leaves 0..127.
    if pitched.any() and low > -limit:
        with pytest.raises(TokenError, match="outside"):
            ops.transpose(events, low - 1)
    if pitched.any() and high < limit:
        with pytest.raises(TokenError, match="outside"):
            ops.transpose(events, high + 1)
    # Controls move as the events they anticipate.
    assert np.array_equal(ops.transpose(ops.to_controls(events[:-1]), shift), ops.to_controls(moved[:-1]))


def test_helpers():
    events = np.array([[120, DUR_OFFSET + 5, NOTE_OFFSET + 128 * 40 + 67], [130, DUR_OFFSET, REST]])
    assert ops.instrument_of(events[:1, 2]).tolist() == [40]
    assert ops.pitch_of(ops.to_controls(events[:1])[:, 2]).tolist() == [67]
    assert ops.is_rest(events).tolist() == [False, True]
    assert ops.translate(events, -120)[:, 0].tolist() == [0, 10]
    with pytest.raises(TokenError):
        ops.translate(events, -121)
    with pytest.raises(TokenError):
        ops.to_controls(events)  # RESTs have no control form
    with pytest.raises(TokenError):
        ops.as_triples([1, 2])
    # Absolute times past CONTROL_OFFSET (long pieces) are still events: the block is read from the note.
    late = np.array([[CONTROL_OFFSET + 5, DUR_OFFSET, NOTE_OFFSET]])
    assert not ops.is_control(late).any()
    assert ops.onset_ticks(late).tolist() == [CONTROL_OFFSET + 5]
