"""The n-gram baseline: normalised over every position's block, and better than uniform on held-out music."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amt.errors import TokenError
from amt.tokenization.midi import read_midi
from amt.tokenization.vocab import (
    ADUR_OFFSET,
    ATIME_OFFSET,
    AUTOREGRESS,
    DUR_OFFSET,
    MAX_DUR,
    MAX_NOTE,
    MAX_TIME,
    NOTE_OFFSET,
    REST,
    REST_INTERVAL,
    SEPARATOR,
    TIME_OFFSET,
)
from amt.training.data import ANTICIPATION_MIX, PAPER_MIX, PLAIN_MIX, SequenceBuilder
from amt.training.evaluate import evaluate
from amt.training.ngram import DiscountedNgram, NgramModel, uniform_bits_per_event

from conftest import REFERENCE_DIR as REFERENCE

NAMES = ["bach_bwv66.6.mid", "beethoven_opus18no1_movement1.mid", "mozart_k156_movement1.mid"]


class Pieces:
    """The corpus interface SequenceBuilder needs over the reference MIDI files: the first 70% of each
    piece's events (train), or the rest (held out)."""

    def __init__(self, held_out: bool):
        self.events_ = []
        for name in NAMES:
            events = read_midi(REFERENCE / name).events
            cut = int(0.7 * len(events))
            self.events_.append(events[cut:] if held_out else events[:cut])

    def __len__(self) -> int:
        return len(self.events_)

    def events(self, i: int) -> np.ndarray:
        return self.events_[i]

    def instruments(self, i: int) -> tuple[int, ...]:
        return tuple(np.unique((self.events_[i][:, 2] - NOTE_OFFSET) // 128).tolist())


@pytest.fixture(scope="module")
def model() -> NgramModel:
    corpus = Pieces(held_out=False)
    builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=1, mix=PAPER_MIX)
    return NgramModel(3).fit(builder.build(i) for i in range(40))


def test_discounted_ngram_is_normalised():
    rng = np.random.default_rng(0)
    contexts = rng.integers(0, 4, size=(500, 2))
    symbols = (contexts[:, 0] * 3 + rng.integers(0, 3, size=500)) % 20
    ngram = DiscountedNgram(20, 2).fit(contexts, symbols)
    for context in ([0, 1], [3, 3], [7, 7], [20, 20]):  # seen, seen, unseen, begin-of-stream markers
        rows = np.repeat([context], 20, axis=0)
        p = ngram.prob(rows, np.arange(20))
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p > 0).all()
        for start in (0, 5, 19, 20):
            assert ngram.tail(rows[:1], np.array([start]))[0] == pytest.approx(p[start:].sum(), abs=1e-12)
    with pytest.raises(ValueError, match="64-bit key"):
        DiscountedNgram(MAX_TIME, 4)  # 5 symbols of 14 bits
    assert NgramModel(4).times[0].context == 3
    # Counted continuations are more likely than unseen ones.
    seen = ngram.prob(np.array([[1, 0]]), np.array([3]))[0]
    assert seen > ngram.prob(np.array([[1, 0]]), np.array([19]))[0]


@pytest.mark.parametrize("mix", [PLAIN_MIX, ANTICIPATION_MIX], ids=["plain", "anticipate"])
def test_probabilities_over_each_block_sum_to_one(model, mix):
    sequence = SequenceBuilder(Pieces(held_out=True), np.arange(3), seed=5, mix=mix).build(0)
    blocks = {1: MAX_DUR, 2: MAX_NOTE + 1}
    for end in range(34, 46):  # every slot of a few triples, events and (anticipate) controls
        tokens, p = model.next_token_distribution(sequence[:end])
        slot = (end - 1) % 3
        control = sequence[end - 1 - slot] >= ATIME_OFFSET
        if slot == 0:
            # Time order: event onsets within REST_INTERVAL of the latest event, controls not before the
            # latest control, or a separator.
            starts = sequence[1:end:3]
            event = max([t for t in starts if t < MAX_TIME], default=0)
            control_time = max([t - ATIME_OFFSET for t in starts if ATIME_OFFSET <= t < SEPARATOR], default=0)
            assert len(tokens) == (REST_INTERVAL + 1) + (MAX_TIME - control_time) + 1
            assert tokens.min() == event and SEPARATOR in tokens
        else:
            assert len(tokens) == blocks[slot] - (slot == 2 and control)
        assert len(set(tokens.tolist())) == len(tokens)
        assert p.sum() == pytest.approx(1.0, abs=1e-9) and (p > 0).all()
        # The distribution is the one nll() scores with: check the true next token and two others.
        for token in (sequence[end], tokens[0], tokens[-1]):
            scored = model.nll(np.append(sequence[:end], token)[None, :])[0, -1]
            assert scored == pytest.approx(-math.log(p[tokens == token][0]), rel=1e-9)
    # A separator triple's second and third tokens are certain.
    nll = model.nll(np.append(sequence[:34], [SEPARATOR] * 3)[None, :])
    assert nll[0, -2:].tolist() == [0.0, 0.0]
    assert model.next_token_distribution(np.append(sequence[:34], SEPARATOR))[0].tolist() == [SEPARATOR]


def test_beats_uniform_on_held_out_music(model):
    corpus = Pieces(held_out=True)
    results = evaluate(model.scorer(), corpus, np.arange(3), sequences=4, batch_size=2)
    for metrics in results.values():
        assert metrics["bits_per_event"] < uniform_bits_per_event() / 2
    # Its bits per event is the per-event sum of the NLLs of the event's three tokens, in bits.
    sequence = SequenceBuilder(corpus, np.arange(3), seed=0, mix=PLAIN_MIX).build(0)
    nll = model.scorer()(torch.from_numpy(sequence[None, :]))
    assert nll.shape == (1, len(sequence) - 1) and nll.dtype == torch.float32
    events = sequence[1:].reshape(-1, 3)[:, 2] <= REST
    per_event = nll[0].double().numpy().reshape(-1, 3).sum(axis=1)[events].sum() / events.sum() / math.log(2)
    single = evaluate(model.scorer(), corpus, np.arange(3), sequences=1, conditions={"plain": PLAIN_MIX})
    assert per_event == pytest.approx(single["plain"]["bits_per_event"], rel=1e-5)


def test_bad_sequences_raise(model):
    with pytest.raises(TokenError, match="flag"):
        model.nll(np.array([[TIME_OFFSET, DUR_OFFSET, NOTE_OFFSET]]))
    with pytest.raises(TokenError, match="cannot start a triple"):
        model.nll(np.array([[AUTOREGRESS, DUR_OFFSET, DUR_OFFSET, NOTE_OFFSET]]))
    with pytest.raises(TokenError, match="duration"):
        model.nll(np.array([[AUTOREGRESS, TIME_OFFSET, ADUR_OFFSET, NOTE_OFFSET]]))
