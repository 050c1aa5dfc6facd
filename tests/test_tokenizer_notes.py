"""The notes type and token helpers of amt.tokenization.notes: token ids of the published vocabulary, encode
and decode as inverses, and the per-triple readers on events and controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amt.errors import TokenError
from amt.tokenization import notes
from amt.tokenization.notes import Notes
from amt.tokenization.vocab import DRUMS, REST, SEPARATOR


def test_token_ids_are_those_of_the_published_vocabulary():
    # A violin (program 40) C4 at 1.5 s for 0.25 s, as event then as control (see tokenization/vocab.py).
    assert notes.encode([150], [25], [40], [60]).tolist() == [[150, 10_025, 11_000 + 40 * 128 + 60]]
    assert notes.encode([150], [25], [40], [60], control=True).tolist() == [
        [27_513 + 150, 37_513 + 25, 38_513 + 40 * 128 + 60]]
    assert notes.EVENT_NOTES.tokens.stop == REST and notes.CONTROL_NOTES.tokens.stop == SEPARATOR


def test_decode_inverts_encode_for_events_and_controls():
    rng = np.random.default_rng(0)
    n = 200
    original = Notes(rng.integers(0, 40_000, n), rng.integers(0, 1000, n), rng.integers(0, DRUMS + 1, n),
                     rng.integers(0, 128, n), rng.random(n) < 0.5)
    tokens = original.encode()
    back = Notes.decode(tokens)
    for field in ("onsets", "durations", "instruments", "pitches", "controls"):
        assert np.array_equal(getattr(back, field), getattr(original, field)), field
    assert np.array_equal(notes.end_ticks(tokens), original.ends)
    assert np.array_equal(notes.is_control(tokens), original.controls)
    # Onsets past CONTROL_OFFSET (a long piece) are still read as events: the block comes from the note.
    assert notes.onset_ticks(tokens)[~original.controls].max() > 27_513


def test_decode_refuses_rests_and_special_triples():
    with pytest.raises(TokenError, match="REST"):
        Notes.decode([[100, 10_000, REST]])
    with pytest.raises(TokenError, match="REST"):
        Notes.decode([[SEPARATOR] * 3])


def test_blocks_work_on_ints_arrays_and_tensors():
    times = notes.CONTROL_TIMES
    assert times.value(times.token(42)) == 42 and times.holds(times.token(0)) and not times.holds(0)
    tokens = torch.tensor([0, 9_999, 10_000, 27_513])
    assert notes.EVENT_TIMES.holds(tokens).tolist() == [True, True, False, False]
    assert notes.is_control_token(tokens).tolist() == [False, False, False, True]
    assert notes.EVENT_DURATIONS.value(np.array([10_000, 10_999])).tolist() == [0, 999]
