"""Packing pieces into 1,024-token training sequences, the format the published AMT models were trained on.

A piece becomes one or more *copies*: its events, with some of them turned into controls (anticipation),
padded with RESTs up to the piece's last onset and interleaved. Copies are concatenated into one stream, each
preceded by a (SEPARATOR, SEPARATOR, SEPARATOR) triple, and the stream is cut every ``EVENTS_PER_SEQUENCE``
triples. In each cut, onsets before the first separator are made relative to their minimum (onsets after a
separator already count from the start of their piece); a cut whose largest onset reaches ``MAX_TIME`` (100 s)
is dropped, as its times are not in the vocabulary. The flag token is ``ANTICIPATE`` if the copy holding the
cut's first triple has controls, else ``AUTOREGRESS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from amt.tokenization import ops
from amt.tokenization.errors import TokenError
from amt.tokenization.vocab import (
    ANTICIPATE,
    AUTOREGRESS,
    CONTEXT_SIZE,
    EVENTS_PER_SEQUENCE,
    MAX_TIME,
    SEPARATOR,
    TIME_OFFSET,
)

ANTICIPATION_RATES = 10
"""Random anticipation turns each note into a control with probability r / 10, r drawn from 1..9."""
SPAN_RATE = 0.05
"""Span anticipation: mean gap of 1 / 0.05 = 20 s between anticipated spans."""


@dataclass(frozen=True)
class Copy:
    """One copy of a piece for the packer: its padded, interleaved triples and whether it has controls."""

    tokens: np.ndarray
    anticipate: bool


def make_copy(events: np.ndarray, controls: np.ndarray, end_time: int | None = None) -> Copy:
    """Pad ``events`` with RESTs up to ``end_time`` (default: the last onset of events and controls) and
    interleave ``controls``.

    Padding to the piece's end places every control when events remain near the end; the rare controls whose
    turn would come only after the last event (e.g. a short piece entirely inside an anticipated span) are
    appended at the end, where they are due anyway, rather than lost.
    """
    events, controls = ops.as_triples(events), ops.as_triples(controls)
    if end_time is None:
        both = np.concatenate([ops.onset_ticks(events), ops.onset_ticks(controls)])
        end_time = int(both.max()) if len(both) else 0
    tokens, leftover = ops.interleave(ops.pad(events, end_time), controls)
    return Copy(np.concatenate([tokens, leftover]), anticipate=len(controls) > 0)


def augmented_copies(events: np.ndarray, rng: np.random.Generator, factor: int = 1) -> Iterator[Copy]:
    """The ``factor`` training copies of one piece, cycling through the AMT training objectives.

    Out of every ten copies: the first is plain (autoregressive), the second uses span anticipation, the
    next four random anticipation, and the last four instrument anticipation (a random non-empty proper
    subset of the instruments becomes controls; plain if the piece has one instrument).
    """
    events = ops.as_triples(events)
    end_time = int(ops.onset_ticks(events).max()) if len(events) else 0
    notes = events[~ops.is_rest(events)]
    instruments = np.unique(ops.instrument_of(notes[:, 2]))
    for k in range(factor):
        kind = k % 10
        if kind == 0:
            kept, controls = events, events[:0]
        elif kind == 1:
            kept, controls = ops.extract_spans(events, rng, SPAN_RATE)
        elif kind < 6:
            rate = rng.integers(1, ANTICIPATION_RATES)
            kept, controls = ops.extract_random(events, rng, rate / ANTICIPATION_RATES)
        elif len(instruments) > 1:
            count = 1 + rng.integers(len(instruments) - 1)
            kept, controls = ops.extract_instruments(events, rng.choice(instruments, count, replace=False))
        else:
            kept, controls = events, events[:0]
        yield make_copy(kept, controls, end_time)


def _relativize(triples: np.ndarray) -> np.ndarray | None:
    """Make onsets before the first separator relative to their minimum; None if the cut spans >= 100 s."""
    out = triples.copy()
    separator = out[:, 2] == SEPARATOR
    first = int(np.argmax(separator)) if separator.any() else len(out)
    if first:
        out[:first, 0] -= ops.onset_ticks(out[:first]).min()
    times = ops.onset_ticks(out[~separator])
    if len(times) and times.max() >= MAX_TIME:
        return None
    return out


def pack_sequences(copies: Iterable[Copy]) -> Iterator[np.ndarray]:
    """Cut the stream of copies into training sequences: (``CONTEXT_SIZE``,) int64 arrays, flag first.

    Tokens left over after the last full sequence are dropped, as in the original packing.
    """
    pending: list[np.ndarray] = []  # triples not yet cut, in stream order
    flags: list[np.ndarray] = []  # the flag of the copy each pending triple comes from
    size = 0
    separator = np.full((1, 3), SEPARATOR, dtype=np.int64)
    for copy in copies:
        triples = np.concatenate([separator, ops.as_triples(copy.tokens)])
        pending.append(triples)
        flags.append(np.full(len(triples), ANTICIPATE if copy.anticipate else AUTOREGRESS, dtype=np.int64))
        size += len(triples)
        if size < EVENTS_PER_SEQUENCE:
            continue
        stream, stream_flags = np.concatenate(pending), np.concatenate(flags)
        cuts = len(stream) // EVENTS_PER_SEQUENCE
        for i in range(cuts):
            part = slice(i * EVENTS_PER_SEQUENCE, (i + 1) * EVENTS_PER_SEQUENCE)
            sequence = _relativize(stream[part])
            if sequence is not None:
                yield np.concatenate([[stream_flags[part.start]], sequence.reshape(-1)])
        rest = cuts * EVENTS_PER_SEQUENCE
        pending, flags, size = [stream[rest:]], [stream_flags[rest:]], len(stream) - rest


def validate_sequence(sequence: np.ndarray) -> None:
    """Raise ``TokenError`` unless ``sequence`` is a well-formed training sequence (flag + triples)."""
    sequence = np.asarray(sequence, dtype=np.int64)
    if sequence.shape != (CONTEXT_SIZE,):
        raise TokenError(f"a training sequence has {CONTEXT_SIZE} tokens, got shape {sequence.shape}")
    if sequence[0] not in (AUTOREGRESS, ANTICIPATE):
        raise TokenError(f"a training sequence starts with a flag token, got {sequence[0]}")
    triples = sequence[1:].reshape(-1, 3)
    separator = triples[:, 2] == SEPARATOR
    if not (triples[separator] == SEPARATOR).all() or (triples[~separator] == SEPARATOR).any():
        raise TokenError("separators must fill whole triples")
    times = ops.onset_ticks(triples[~separator])
    if len(times) and (times.min() < TIME_OFFSET or times.max() >= MAX_TIME):
        raise TokenError("onsets must lie in 0..MAX_TIME-1 within a sequence")
