"""The on-the-fly sequence builder: layout, flags, triples, interleaving, relative times, determinism.

Runs on a corpus prepared from the reference MIDI files in tests/data/reference (a chorale, two
multi-instrument movements and a synthetic file with drums), so every objective, packing and the 100 s limit
are exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from amt.errors import CorpusError
from amt.tokenization.corpus import Corpus, prepare_corpus
from amt.tokenization.sequences import validate_sequence
from amt.tokenization.vocab import (
    ANTICIPATE,
    AUTOREGRESS,
    CONTEXT_SIZE,
    CONTROL_OFFSET,
    DELTA,
    DRUMS,
    DUR_OFFSET,
    MAX_DUR,
    MAX_NOTE,
    MAX_TIME,
    NOTE_OFFSET,
    REST,
    SEPARATOR,
)
from amt.training.data import PAPER_MIX, Objective, ObjectiveParams, SequenceBuilder, source_weights

from conftest import REFERENCE_DIR as REFERENCE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    out = tmp_path_factory.mktemp("corpus") / "reference"
    prepare_corpus(sorted(REFERENCE.glob("*.mid")), out, workers=1, progress=False)
    return Corpus(out)


def segments(sequence: np.ndarray) -> list[np.ndarray]:
    """The triples of a sequence split at separator triples."""
    triples = sequence[1:].reshape(-1, 3)
    parts, current = [], []
    for triple in triples:
        if (triple == SEPARATOR).all():
            parts.append(np.array(current).reshape(-1, 3))
            current = []
        else:
            current.append(triple)
    parts.append(np.array(current).reshape(-1, 3))
    return [p for p in parts if len(p)]


def check_well_formed(sequence: np.ndarray) -> None:
    assert sequence.shape == (CONTEXT_SIZE,) and sequence.dtype == np.int64
    validate_sequence(sequence)
    for time, duration, note in sequence[1:].reshape(-1, 3):
        if time == SEPARATOR:
            assert duration == note == SEPARATOR
            continue
        offset = CONTROL_OFFSET if time >= CONTROL_OFFSET else 0
        assert 0 <= time - offset < MAX_TIME, "time outside the relative time block"
        assert DUR_OFFSET <= duration - offset < DUR_OFFSET + MAX_DUR
        assert NOTE_OFFSET <= note - offset < NOTE_OFFSET + MAX_NOTE or (offset == 0 and note == REST)


def check_interleaving(segment: np.ndarray) -> None:
    """Events keep time order; each control follows the first event at or after its time minus DELTA."""
    is_control = segment[:, 0] >= CONTROL_OFFSET
    event_times = segment[~is_control, 0]
    assert (np.diff(event_times) >= 0).all()
    last_event_time = None
    for (time, _, _), control in zip(segment, is_control, strict=True):
        if not control:
            last_event_time = time
            continue
        control_time = time - CONTROL_OFFSET
        if last_event_time is None:
            assert control_time <= DELTA or not (~is_control).any(), "a control appeared before its event"
        else:
            assert last_event_time >= control_time - DELTA, "control emitted earlier than DELTA ahead"
    control_times = segment[is_control, 0] - CONTROL_OFFSET
    assert (np.diff(control_times) >= 0).all()


@pytest.mark.parametrize("objective", list(Objective))
def test_sequences_are_well_formed(corpus, objective):
    builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=3, mix={objective: 1.0})
    for index in range(12):
        sequence = builder.build(index)
        check_well_formed(sequence)
        if objective is Objective.AUTOREGRESS:
            assert sequence[0] == AUTOREGRESS
            assert not ((sequence[1:] >= CONTROL_OFFSET) & (sequence[1:] < SEPARATOR)).any()
        else:
            assert sequence[0] == ANTICIPATE
        for segment in segments(sequence):
            check_interleaving(segment)


def test_anticipation_objectives_make_controls(corpus):
    for objective in (Objective.SPAN, Objective.RANDOM, Objective.INSTRUMENT):
        builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=1, mix={objective: 1.0})
        fractions = []
        for index in range(20):
            tokens = builder.build(index)[1:]
            fractions.append(((tokens >= CONTROL_OFFSET) & (tokens < SEPARATOR)).mean())
        assert max(fractions) > 0, f"{objective.name} never produced a control"
        assert min(fractions) < 0.9


def test_instrument_objective_takes_whole_instruments(corpus):
    # The quartet (instruments 40, 41, 42): controls are some instruments, events the others, never mixed.
    quartet = next(i for i in range(len(corpus)) if corpus.instruments(i) == (40, 41, 42))
    builder = SequenceBuilder(corpus, np.array([quartet]), seed=0, mix={Objective.INSTRUMENT: 1.0})
    for index in range(10):
        segment = segments(builder.build(index))[0]
        controls = segment[:, 0] >= CONTROL_OFFSET
        event_notes = segment[~controls, 2]
        control_instruments = set((segment[controls, 2] - CONTROL_OFFSET - NOTE_OFFSET) // 128)
        event_instruments = set((event_notes[event_notes != REST] - NOTE_OFFSET) // 128)
        assert control_instruments and event_instruments
        assert not control_instruments & event_instruments


def test_windows_start_at_relative_zero_and_pieces_are_packed(corpus):
    builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=0, mix={Objective.AUTOREGRESS: 1.0})
    packed = 0
    for index in range(30):
        parts = segments(builder.build(index))
        for part in parts:
            assert part[0, 0] == 0, "each segment's times are relative to its own start"
        packed += len(parts) > 1
    assert packed > 0, "short windows should be packed with another piece after separators"


def test_determinism_and_seed(corpus):
    a = SequenceBuilder(corpus, np.arange(len(corpus)), seed=7, mix=PAPER_MIX)
    b = SequenceBuilder(corpus, np.arange(len(corpus)), seed=7, mix=PAPER_MIX)
    c = SequenceBuilder(corpus, np.arange(len(corpus)), seed=8, mix=PAPER_MIX)
    for index in (0, 5, 123_456_789):
        assert np.array_equal(a.build(index), b.build(index))
        assert np.array_equal(a.build(index), a[index])
    assert any(not np.array_equal(a.build(i), c.build(i)) for i in range(5))
    assert any(not np.array_equal(a.build(i), a.build(i + 1)) for i in range(5))


def test_paper_mix_proportions(corpus):
    builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=0)
    counts = np.bincount([builder.objective(i) for i in range(4000)], minlength=4) / 4000
    assert np.allclose(counts, [0.1, 0.1, 0.4, 0.4], atol=0.03)
    flags = [builder.build(i)[0] for i in range(40)]
    assert set(flags) == {AUTOREGRESS, ANTICIPATE}


def test_source_weights_reweight_the_pieces_that_open_sequences(corpus):
    pieces = np.arange(len(corpus))
    sources = [corpus.source(int(i)) for i in pieces]
    chorale = next(i for i, s in enumerate(sources) if "bach" in s)
    # The longest matching prefix wins; pieces that match nothing weigh 1.
    weights = source_weights(corpus, pieces, {"": 0.5, sources[chorale][:5]: 3.0, sources[chorale]: 20.0})
    assert weights[chorale] == 20.0 and (np.delete(weights, chorale) <= 3.0).all()
    assert source_weights(corpus, pieces, {}) is None

    def first_piece(builder, draws=3000):
        return np.bincount([builder._draw_window(np.random.default_rng([9, i]))[0] for i in range(draws)],
                           minlength=len(corpus)) / draws

    plain = first_piece(SequenceBuilder(corpus, pieces, seed=0))
    only = np.zeros(len(corpus))
    only[chorale] = 1.0
    # Weight 0 elsewhere: every sequence opens on the chorale, anywhere in it.
    builder = SequenceBuilder(corpus, pieces, seed=0, piece_weights=only)
    assert first_piece(builder)[chorale] == 1.0
    starts = {builder._draw_window(np.random.default_rng(i))[1] for i in range(200)}
    assert len(starts) > 50 and max(starts) < len(corpus.events(chorale))
    # Weight 4 on the chorale: its share of openings rises as its share of weighted events says.
    four = np.ones(len(corpus))
    four[chorale] = 4.0
    counts = np.array([len(corpus.events(int(i))) for i in pieces], dtype=float)
    expected = 4 * counts[chorale] / (counts.sum() + 3 * counts[chorale])
    assert first_piece(SequenceBuilder(corpus, pieces, seed=0, piece_weights=four))[chorale] == \
        pytest.approx(expected, abs=0.03)
    assert plain[chorale] == pytest.approx(counts[chorale] / counts.sum(), abs=0.03)
    with pytest.raises(ValueError, match="one finite weight"):
        SequenceBuilder(corpus, pieces, piece_weights=np.ones(len(corpus) + 1))
    with pytest.raises(CorpusError, match="weight 0"):
        SequenceBuilder(corpus, pieces, piece_weights=np.zeros(len(corpus)))


def test_transposition_augments_pitches_and_nothing_else(corpus):
    pieces = np.arange(len(corpus))
    mix = {Objective.AUTOREGRESS: 1.0}
    plain = SequenceBuilder(corpus, pieces, seed=5, mix=mix)
    shifted = SequenceBuilder(corpus, pieces, seed=5, mix=mix, params=ObjectiveParams(transpose=6))
    shifts = set()
    for index in range(30):
        a, b = plain.build(index), shifted.build(index)
        check_well_formed(b)
        # The first segments share piece and window (the shift is drawn after them; later draws differ), so
        # only pitches differ, all by one amount, within the limit; drums and RESTs keep theirs.
        a, b = segments(a)[0], segments(b)[0]
        assert np.array_equal(a[:, :2], b[:, :2])
        notes = (a[:, 2] >= NOTE_OFFSET) & (a[:, 2] < REST)
        drums = notes & ((a[:, 2] - NOTE_OFFSET) // 128 == DRUMS)
        assert np.array_equal(a[~notes | drums], b[~notes | drums])
        delta = b[notes & ~drums, 2] - a[notes & ~drums, 2]
        assert len(set(delta.tolist())) <= 1 and (np.abs(delta) <= 6).all()
        assert np.array_equal((b[notes, 2] - NOTE_OFFSET) // 128, (a[notes, 2] - NOTE_OFFSET) // 128)
        shifts.update(delta[:1].tolist())
    assert len(shifts) > 4  # the shift varies from sequence to sequence
