"""The training sequence format of the published AMT models: a piece's padded, interleaved tokens and the
rules a 1,024-token sequence obeys.

A sequence is a flag token (``ANTICIPATE`` when it holds controls, else ``AUTOREGRESS``) and
``EVENTS_PER_SEQUENCE`` triples; pieces packed into one sequence are separated by a (SEPARATOR, SEPARATOR,
SEPARATOR) triple and every onset is below ``MAX_TIME`` (100 s). ``amt.training.data`` builds sequences on
the fly with :func:`pad_and_interleave`; :func:`validate_sequence` checks the format, and the tests check it
against a packed line of the original implementation.
"""

from __future__ import annotations

import numpy as np

from amt.tokenization import ops
from amt.tokenization.errors import TokenError
from amt.tokenization.vocab import ANTICIPATE, AUTOREGRESS, CONTEXT_SIZE, MAX_TIME, SEPARATOR


def pad_and_interleave(events: np.ndarray, controls: np.ndarray, end_time: int | None = None) -> np.ndarray:
    """Pad ``events`` with RESTs up to ``end_time`` (default: the last onset of events and controls) and
    interleave ``controls``: the (N, 3) triples of one piece in a training sequence.

    Padding to the piece's end places every control when events remain near the end; the rare controls whose
    turn would come only after the last event (e.g. a short piece entirely inside an anticipated span) are
    appended at the end, where they are due anyway, rather than lost.
    """
    events, controls = ops.as_triples(events), ops.as_triples(controls)
    if end_time is None:
        both = np.concatenate([ops.onset_ticks(events), ops.onset_ticks(controls)])
        end_time = int(both.max()) if len(both) else 0
    tokens, leftover = ops.interleave(ops.pad(events, end_time), controls)
    return np.concatenate([tokens, leftover])


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
    if len(times) and (times.min() < 0 or times.max() >= MAX_TIME):
        raise TokenError("onsets must lie in 0..MAX_TIME-1 within a sequence")
