"""The sampler's promises: token masks, time order, constraints, seeds, the sliding window, callbacks.

A tiny randomly initialised model stands in for a trained one: the promises below are structural and hold
whatever the weights are. A spy on ``model.advance`` checks the exact sequences the model reads.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

from amt.errors import GenerationError
from amt.models import create_model, tiny_config
from amt.sampling import SamplingOptions, attributes, generate, voicing
from amt.sampling.constraints.density import Density, density_slack
from amt.sampling.constraints.grid import Grid
from amt.sampling.constraints.polyphony import polyphony_cap
from amt.sampling.masks import REST_INDEX, note_filter, note_mask, range_mask, relative_to_best_note, sample
from amt.tokenization.midi import MidiMeta
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import (
    ANTICIPATE,
    ATIME_OFFSET,
    AUTOREGRESS,
    CONTROL_OFFSET,
    DELTA,
    DRUMS,
    DUR_OFFSET,
    MAX_DUR,
    MAX_INSTR,
    MAX_NOTE,
    MAX_PITCH,
    MAX_TIME,
    NOTE_OFFSET,
    REST,
    REST_INTERVAL,
    SPECIAL_OFFSET,
    TIME_OFFSET,
    VOCAB_SIZE,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


def events(*triples) -> np.ndarray:
    """Event tokens from (onset ticks, duration ticks, instrument, pitch)."""
    rows = [(TIME_OFFSET + t, DUR_OFFSET + d, NOTE_OFFSET + MAX_PITCH * i + p) for t, d, i, p in triples]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def melody(start: int, stop: int, step: int = 50, instrument: int = 0) -> np.ndarray:
    return events(*[(t, 40, instrument, 60 + (t // step) % 12) for t in range(start, stop, step)])


def onsets(e: np.ndarray) -> np.ndarray:
    return e[:, 0] - TIME_OFFSET


class Spy:
    """Records the token stream of batch row 0 as the model reads it (each prefill starts a new window)."""

    def __init__(self, model):
        self.model, self.windows = model, []
        advance = model.advance

        def spy(ids, state):
            if state.length == 0:  # a fresh state: the prefill of a (new) window
                self.windows.append([])
            self.windows[-1].extend(ids[0].tolist())
            return advance(ids, state)

        model.advance = spy

    def close(self):
        del self.model.advance


@pytest.fixture
def spy(model):
    s = Spy(model)
    yield s
    s.close()


def check_window(tokens: list[int], window: int | None = None) -> None:
    """A window is a flag and well-formed triples; event times never go backwards."""
    assert tokens[0] in (ANTICIPATE, AUTOREGRESS)
    if window is not None:
        assert len(tokens) <= window
    body = tokens[1:]
    complete = np.array(body[: len(body) // 3 * 3]).reshape(-1, 3)
    last = -1
    for time, dur, note in complete:
        if note >= CONTROL_OFFSET:
            assert ATIME_OFFSET <= time < ATIME_OFFSET + MAX_TIME and note < SPECIAL_OFFSET
            assert CONTROL_OFFSET + DUR_OFFSET <= dur < CONTROL_OFFSET + DUR_OFFSET + MAX_DUR
        else:
            assert TIME_OFFSET <= time < TIME_OFFSET + MAX_TIME
            assert DUR_OFFSET <= dur < DUR_OFFSET + MAX_DUR
            assert NOTE_OFFSET <= note <= REST
            assert time >= last, "event onsets went backwards"
            last = time


# -- masks and the sampling rule -----------------------------------------------------------------------------

def test_note_filter_applies_instruments_and_pitch_range_but_spares_drums_and_rest():
    allowed = note_filter([0, DRUMS], (60, 62))
    assert allowed.shape == (MAX_NOTE + 1,) and allowed[REST_INDEX]
    notes = set(torch.nonzero(allowed[:MAX_NOTE]).flatten().tolist())
    assert notes == {60, 61, 62} | {DRUMS * MAX_PITCH + p for p in range(MAX_PITCH)}
    with pytest.raises(GenerationError):
        note_filter([MAX_INSTR], None)


def test_note_mask_budget_and_rest_rules():
    allowed = note_filter(None, None)
    instrument_ok = torch.zeros(3, MAX_INSTR, dtype=torch.bool)
    instrument_ok[:, 5] = True
    rest_ok = torch.tensor([True, False, False])
    note_ok = torch.tensor([True, True, False])
    mask = note_mask(allowed, instrument_ok, rest_ok, note_ok)
    # Row 0: instrument 5 and REST (which sits where instrument MAX_INSTR would start).
    assert set((torch.nonzero(mask[0]).flatten() // MAX_PITCH).tolist()) == {5, MAX_INSTR}
    assert not mask[1, REST_INDEX] and mask[1].sum() == MAX_PITCH
    assert mask[2].tolist() == [False] * MAX_NOTE + [True]  # nothing allowed falls back to REST


def test_note_weights_are_made_relative_to_the_best_allowed_note():
    mask = torch.zeros(2, MAX_NOTE + 1, dtype=torch.bool)
    mask[0, [10, 11, REST_INDEX]] = True
    mask[1, REST_INDEX] = True  # only REST allowed
    weights = torch.full((2, MAX_NOTE + 1), -5.0)
    weights[0, 10], weights[0, 11], weights[0, 12] = -3.0, -4.0, 0.0  # note 12 is best but not allowed
    weights[:, REST_INDEX] = 0.0
    shifted = relative_to_best_note(weights, mask)
    # Together the weights had pushed every allowed note 3 below REST; now the best allowed note is level
    # with REST and the others keep their distance to it.
    assert shifted[0, 10] == 0.0 and shifted[0, 11] == -1.0 and shifted[0, REST_INDEX] == 0.0
    assert torch.equal(shifted[1], weights[1])  # no note allowed: nothing to shift


def test_sample_respects_mask_and_nucleus():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([[5.0, 4.0, 0.0, 10.0]]).repeat(200, 1)
    mask = torch.tensor([True, True, True, False]).repeat(200, 1)
    drawn = sample(logits, mask, temperature=1.0, top_p=1.0, generator=generator)
    assert set(drawn.tolist()) <= {0, 1, 2} and 3 not in drawn.tolist()
    assert set(drawn.tolist()) >= {0, 1}
    # Token 0 holds 73% of the mass: a 0.5 nucleus is token 0 alone.
    assert set(sample(logits, mask, temperature=1.0, top_p=0.5, generator=generator).tolist()) == {0}
    # A weight multiplies a token's probability, and acts before the nucleus: 5.0 x 1/e^2 falls below 4.0.
    weights = torch.tensor([[-2.0, 0.0, 0.0, 0.0]]).repeat(200, 1)
    drawn = sample(logits, mask, temperature=1.0, top_p=0.5, generator=generator, log_weights=weights)
    assert set(drawn.tolist()) == {1}
    even = torch.zeros(4000, 2)
    drawn = sample(even, torch.ones(4000, 2, dtype=torch.bool), temperature=2.0, top_p=1.0,
                   generator=generator, log_weights=torch.tensor([[np.log(0.25), 0.0]]).repeat(4000, 1))
    assert 0.15 < (drawn == 0).float().mean() < 0.25  # 0.25 / 1.25 = 0.2, whatever the temperature
    low = torch.tensor([3, 3])
    mask = range_mask(low, torch.tensor([5, 3]), 8)
    assert mask.tolist() == [[False] * 3 + [True] * 3 + [False] * 2, [False] * 3 + [True] + [False] * 4]


# -- a model that wants everything forbidden -----------------------------------------------------------------

class AdversarialState:
    def __init__(self, batch):
        self.batch, self.length = batch, 0

    def select(self, index):
        state = AdversarialState(len(index))
        state.length = self.length
        return state


class AdversarialLM(torch.nn.Module):
    """Puts its highest logits on REST, controls, special tokens and time 0 (which would go backwards)."""

    max_positions = 1024
    vocab_size = VOCAB_SIZE

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        bias = torch.zeros(VOCAB_SIZE)
        bias[REST] = bias[CONTROL_OFFSET:] = 50.0
        bias[TIME_OFFSET] = 40.0  # time 0
        bias[DUR_OFFSET] = 30.0  # duration 0 (REST-like)
        self.bias = bias

    def init_state(self, batch_size):
        return AdversarialState(batch_size)

    def output_weight(self):
        # One hidden unit, always 1: the logits are the bias.
        return self.bias[:, None]

    def advance(self, ids, state):
        state.length += ids.shape[1]
        return torch.ones(ids.shape[0], ids.shape[1], 1), state


def test_masks_never_let_forbidden_tokens_through():
    history = melody(0, 500)
    out = generate(AdversarialLM(), history=history, controls=np.zeros((0, 3), np.int64), start_time=500,
                   end_time=800, options=SamplingOptions(seed=0, top_p=1.0), variations=2)
    # Drawn where it is allowed, REST won every note position: no note came out, and nothing went wrong.
    assert all(len(o) == 0 for o in out)
    # With REST excluded by a duration > 0 every note position must draw a real note from the note block.
    model = AdversarialLM()
    model.bias[DUR_OFFSET] = 0.0
    model.bias[DUR_OFFSET + 7] = 30.0
    model.bias[REST] = 0.0
    out = generate(model, history=history, controls=np.zeros((0, 3), np.int64), start_time=500, end_time=800,
                   options=SamplingOptions(seed=0, top_p=1.0))
    (new,) = out
    assert len(new) > 0
    assert (onsets(new) >= 500).all() and (onsets(new) < 800).all()
    assert (np.diff(onsets(new)) >= 0).all()
    assert (new[:, 1] == DUR_OFFSET + 7).all()
    assert ((new[:, 2] >= NOTE_OFFSET) & (new[:, 2] < REST)).all()


# -- generation with a tiny model ----------------------------------------------------------------------------

def test_generation_is_well_formed_and_inside_the_span(model, spy):
    history = melody(0, 600)
    controls = melody(900, 1400, instrument=40) + CONTROL_OFFSET
    (new,) = generate(model, history=history, controls=controls, start_time=600, end_time=1000,
                      options=SamplingOptions(seed=1))
    assert len(new) > 0
    assert (onsets(new) >= 600).all() and (onsets(new) < 1000).all()
    assert (np.diff(onsets(new)) >= 0).all()
    assert (new[:, 2] != REST).all()
    assert len(spy.windows) == 1
    check_window(spy.windows[0])
    tokens = spy.windows[0]
    assert tokens[0] == ANTICIPATE
    # Controls enter after the first event whose onset reaches their time - DELTA.
    triples = np.array(tokens[1 : 1 + (len(tokens) - 1) // 3 * 3]).reshape(-1, 3)
    for i in np.flatnonzero(triples[:, 2] >= CONTROL_OFFSET):
        control_time = triples[i, 0] - ATIME_OFFSET
        previous = [t for t, _, n in triples[:i] if n < CONTROL_OFFSET]
        assert previous and previous[-1] - TIME_OFFSET >= control_time - DELTA


def test_controls_at_time_zero_come_through(model, spy):
    controls = events((0, 50, 40, 60), (0, 50, 40, 64), (30, 50, 40, 67)) + CONTROL_OFFSET
    generate(model, history=np.zeros((0, 3), np.int64), controls=controls, start_time=0, end_time=200,
             options=SamplingOptions(seed=0))
    tokens = spy.windows[0]
    assert tokens[0] == ANTICIPATE
    assert tokens[1:10] == controls.reshape(-1).tolist()


def test_no_controls_means_autoregress_flag(model, spy):
    generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300, end_time=400,
             options=SamplingOptions(seed=0))
    assert spy.windows[0][0] == AUTOREGRESS


def test_same_seed_same_output_and_variations_differ(model):
    kwargs = dict(history=melody(0, 500), controls=melody(600, 900, instrument=40) + CONTROL_OFFSET,
                  start_time=500, end_time=800, variations=3)
    first = generate(model, options=SamplingOptions(seed=7), **kwargs)
    again = generate(model, options=SamplingOptions(seed=7), **kwargs)
    assert len(first) == 3
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    other = generate(model, options=SamplingOptions(seed=8), **kwargs)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_instruments_and_pitch_range_are_obeyed(model):
    options = SamplingOptions(seed=3, instruments=[0, DRUMS], pitch_range=(60, 64))
    out = generate(model, history=melody(0, 300, instrument=40), controls=np.zeros((0, 3), np.int64),
                   start_time=300, end_time=1000, options=options, variations=2)
    new = np.concatenate(out)
    assert len(new) > 10
    instrument, pitch = (new[:, 2] - NOTE_OFFSET) // MAX_PITCH, (new[:, 2] - NOTE_OFFSET) % MAX_PITCH
    assert set(instrument.tolist()) <= {0, DRUMS}
    assert ((pitch[instrument != DRUMS] >= 60) & (pitch[instrument != DRUMS] <= 64)).all()


def test_instrument_budget_counts_kept_instruments_but_not_rest(model):
    # The history has instrument 0 and REST padding: with a budget of 2, one new instrument is allowed.
    options = SamplingOptions(seed=0, instruments=[0, 5, 6], max_instruments=2)
    history = np.concatenate([melody(0, 200), np.array([[TIME_OFFSET + 300, DUR_OFFSET, REST]])])
    out = generate(model, history=history, controls=np.zeros((0, 3), np.int64), start_time=400, end_time=1200,
                   options=options, variations=3)
    for new in out:
        used = set(((new[:, 2] - NOTE_OFFSET) // MAX_PITCH).tolist())
        assert len(used | {0}) <= 2
    assert any(used - {0} for used in (set(((n[:, 2] - NOTE_OFFSET) // MAX_PITCH).tolist()) for n in out))
    with pytest.raises(GenerationError, match="instruments"):
        generate(model, history=melody(0, 200), controls=np.zeros((0, 3), np.int64), start_time=200,
                 end_time=300, options=SamplingOptions(instruments=[5], max_instruments=1))


def test_window_slides_with_a_short_window(model, spy):
    history = melody(0, 2000, step=25)  # 80 events: more than a 64-token window holds
    controls = melody(2300, 4000, step=100, instrument=40) + CONTROL_OFFSET
    (new,) = generate(model, history=history, controls=controls, start_time=2000, end_time=3500,
                      options=SamplingOptions(seed=2), window=64)
    assert len(spy.windows) >= 3  # the first prefill and at least two slides
    for tokens in spy.windows:
        check_window(tokens, window=64)
    for tokens in spy.windows[1:]:
        # A slide keeps whole triples and re-bases them: the window starts at time 0 again.
        triples = np.array(tokens[1 : 1 + (len(tokens) - 1) // 3 * 3]).reshape(-1, 3)
        times = triples[:, 0] - np.where(triples[:, 2] >= CONTROL_OFFSET, ATIME_OFFSET, TIME_OFFSET)
        assert len(triples) >= 8 and times.min() == 0
    assert (onsets(new) >= 2000).all() and (onsets(new) < 3500).all()
    assert (np.diff(onsets(new)) >= 0).all()


def test_long_pieces_rebase_times_below_max_time(model, spy):
    # 150 s of history: relative times must be re-based to stay valid tokens.
    history = melody(0, 15_000, step=500)
    (new,) = generate(model, history=history, controls=np.zeros((0, 3), np.int64), start_time=15_000,
                      end_time=15_300, options=SamplingOptions(seed=0))
    assert (onsets(new) >= 15_000).all()
    for tokens in spy.windows:
        check_window(tokens)


def test_time_slides_during_generation():
    # A model that always jumps as far as allowed (1 s) and plays REST: 150 s of sequence cross the 100 s
    # range of time tokens, so the window must be re-based while generating.
    lm = AdversarialLM()
    lm.bias[:MAX_TIME] = torch.arange(MAX_TIME, dtype=torch.float32)
    spy = Spy(lm)
    (new,) = generate(lm, history=melody(0, 200), controls=np.zeros((0, 3), np.int64), start_time=200,
                      end_time=15_000, options=SamplingOptions(seed=0, top_p=0.5))
    assert len(new) == 0  # only RESTs were drawn
    assert len(spy.windows) >= 2
    for tokens in spy.windows:
        check_window(tokens)
    # Every step advanced the onset by exactly REST_INTERVAL, also across re-based windows.
    for tokens in spy.windows[1:]:
        triples = np.array(tokens[1 : 1 + (len(tokens) - 1) // 3 * 3]).reshape(-1, 3)
        assert (triples[:, 2] == REST).all() and (np.diff(triples[:, 0]) == REST_INTERVAL).all()
        assert triples[0, 0] == TIME_OFFSET


def test_callback_once_per_new_note(model):
    calls = []
    out = generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300,
                   end_time=900, options=SamplingOptions(seed=4), variations=2,
                   callback=lambda v, e, p: calls.append((v, e.tolist(), p)))
    for v, new in enumerate(out):
        mine = [c for c in calls if c[0] == v]
        assert [e for _, e, _ in mine] == new.tolist()
        progress = [p for _, _, p in mine]
        assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)


def test_density_and_polyphony_targets_bound_the_new_notes(model):
    history = melody(0, 300)
    unconstrained = generate(model, history=history, controls=np.zeros((0, 3), np.int64), start_time=300,
                             end_time=1300, options=SamplingOptions(seed=5), variations=2)
    sparse = generate(model, history=history, controls=np.zeros((0, 3), np.int64), start_time=300,
                      end_time=1300, options=SamplingOptions(seed=5, density=0.5, polyphony=1.0),
                      variations=2)
    for new in sparse:
        assert len(new) <= 0.5 * 10 + density_slack(0.5)
        starts, ends = onsets(new), onsets(new) + new[:, 1] - DUR_OFFSET
        sounding = [int(((starts <= t) & (ends > t)).sum()) for t in starts]
        assert max(sounding, default=0) <= polyphony_cap(1.0)
    assert sum(map(len, unconstrained)) > sum(map(len, sparse))


def test_monophonic_instruments_play_one_note_at_a_time(model):
    history = events(*[(t, 90, i, 60 + 4 * i) for t in range(0, 300, 50) for i in (0, 1, 2)])
    kwargs = dict(history=history, controls=np.zeros((0, 3), np.int64), start_time=300, end_time=1500,
                  variations=2)
    instruments = [0, 1, 2, DRUMS]

    def overlaps(new: np.ndarray) -> int:
        count = 0
        for instrument in set(((new[:, 2] - NOTE_OFFSET) // MAX_PITCH).tolist()) - {DRUMS}:
            part = new[(new[:, 2] - NOTE_OFFSET) // MAX_PITCH == instrument]
            starts, ends = onsets(part), onsets(part) + part[:, 1] - DUR_OFFSET
            count += int((starts[1:] < np.maximum.accumulate(ends)[:-1]).sum())
        return count

    free = generate(model, options=SamplingOptions(seed=7, instruments=instruments), **kwargs)
    mono = generate(model, options=SamplingOptions(seed=7, instruments=instruments, monophonic=True),
                    **kwargs)
    assert sum(map(overlaps, free)) > 0  # the untrained model stacks notes when allowed to
    for new in mono:
        assert len(new) > 5
        assert overlaps(new) == 0


def test_grid_snaps_onsets_and_note_ends_to_the_steps(model):
    # 100 bpm, 4 steps per beat: a step every 15 ticks (rounded: 0, 15, 30, 45, 60, 75, ...).
    slow = TimeMap.from_meta(MidiMeta(tempos=((0, 100.0),)))
    steps = slow.grid_ticks(Fraction(1, 4), 30_000)
    assert steps[:5].tolist() == [0, 15, 30, 45, 60] and steps[-1] <= 30_000
    out = generate(model, history=melody(0, 300), controls=melody(600, 1200) + CONTROL_OFFSET,
                   start_time=300, end_time=1200, variations=2, time_map=slow,
                   options=SamplingOptions(seed=8, grid=4))
    for new in out:
        assert len(new) > 5
        ends = onsets(new) + new[:, 1] - DUR_OFFSET
        assert np.isin(onsets(new), steps).all() and np.isin(ends, steps).all()
    # Without a time map the grid follows 120 bpm: a sixteenth is 12.5 ticks, rounded.
    default = generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300,
                       end_time=800, options=SamplingOptions(seed=8, grid=4))[0]
    assert np.isin(onsets(default), TimeMap().grid_ticks(Fraction(1, 4), 1000)).all()
    free = generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300,
                    end_time=800, options=SamplingOptions(seed=8))[0]
    assert not np.isin(onsets(free), TimeMap().grid_ticks(Fraction(1, 4), 1000)).all()


def parts_of(new: np.ndarray) -> dict[int, np.ndarray]:
    """(onsets, ends, pitches) rows of each instrument's notes, by onset."""
    instruments = (new[:, 2] - NOTE_OFFSET) // MAX_PITCH
    out = {}
    for instrument in np.unique(instruments):
        part = new[instruments == instrument]
        part = part[np.argsort(onsets(part), kind="stable")]
        out[int(instrument)] = np.stack([onsets(part), onsets(part) + part[:, 1] - DUR_OFFSET,
                                         (part[:, 2] - NOTE_OFFSET) % MAX_PITCH], axis=1)
    return out


def rests_inside(part: np.ndarray, end: int) -> int:
    """Gaps between a part's consecutive notes that start before ``end``."""
    return int((part[1:, 0] > part[:-1, 1]).sum()) if len(part) else 0


def test_a_row_behind_its_density_budget_may_not_take_the_zero_duration_to_rest():
    # Behind the budget REST is not allowed, and a zero duration leads only to REST: drawn at one tick again
    # and again it stalled a whole harmonisation. The grid after it must not allow it again.
    density = Density(density=8.0, start=0, rows=3)
    density.notes[:] = [0, 100, 0]  # rows 0 and 2 behind at 5 s, row 1 far ahead
    mask = torch.ones(3, MAX_DUR, dtype=torch.bool)
    mask[2, 1:] = False  # row 2 has no other duration: it keeps the zero one
    mask = density.duration_mask(None, mask, np.array([500, 500, 500]))
    assert mask[:, 0].tolist() == [False, True, True] and mask[0, 1:].all()
    grid = Grid(np.arange(0, 2000, 25), 1500)
    snapped = grid.duration_mask(None, mask.clone(), np.array([500, 500, 500]))
    assert snapped[:, 0].tolist() == [False, True, True]


@pytest.mark.parametrize("density", [None, 0.5])
def test_legato_holds_each_note_until_the_parts_next_one(model, density):
    kwargs = dict(history=np.zeros((0, 3), np.int64), controls=melody(0, 1500, step=40) + CONTROL_OFFSET,
                  start_time=0, end_time=1500, variations=2)
    options = dict(seed=11, instruments=[65, 66, 67], monophonic=True, density=density)
    free = generate(model, options=SamplingOptions(**options), **kwargs)
    legato = generate(model, options=SamplingOptions(**options, legato=True), **kwargs)
    assert sum(rests_inside(p, 1500) for new in free for p in parts_of(new).values()) > 0
    for loose, new in zip(free, legato, strict=True):
        # The same notes are drawn; only where they end changes.
        assert sorted(map(tuple, loose[:, [0, 2]].tolist())) == sorted(map(tuple, new[:, [0, 2]].tolist()))
        parts = parts_of(new)
        assert parts and sum(map(len, parts.values())) >= 6
        for part in parts.values():
            longest = part[:-1, 0] + MAX_DUR - 1  # a note is at most as long as a duration token
            assert (part[:-1, 1] == np.minimum(part[1:, 0], longest)).all()


class ShortNotesLM(AdversarialLM):
    """Any onset and pitch equally likely, every note 30 ticks long, no REST: many chances of parallels."""

    def __init__(self):
        super().__init__()
        self.bias = torch.zeros(VOCAB_SIZE)
        self.bias[DUR_OFFSET + 30] = 30.0
        self.bias[REST] = -30.0


class ChoirLM(ShortNotesLM):
    """Short notes at the earliest onset allowed: the parts move together, with the melody, on every step
    (many chances of parallels)."""

    def __init__(self):
        super().__init__()
        self.bias[TIME_OFFSET:TIME_OFFSET + MAX_TIME] = -torch.arange(MAX_TIME, dtype=torch.float32)


class LongNotesLM(ShortNotesLM):
    """Every note 300 ticks long, onsets anywhere within the next second: monophonic parts must cut notes."""

    def __init__(self):
        super().__init__()
        self.bias[DUR_OFFSET + 30] = 0.0
        self.bias[DUR_OFFSET + 300] = 30.0


def test_a_monophonic_part_cuts_its_previous_note_and_streams_notes_final():
    calls = []
    out = generate(LongNotesLM(), history=np.zeros((0, 3), np.int64), controls=np.zeros((0, 3), np.int64),
                   start_time=0, end_time=1500, variations=2, callback=lambda v, e, p: calls.append((v, e)),
                   options=SamplingOptions(seed=3, instruments=[0], monophonic=True, top_p=1.0))
    for v, new in enumerate(out):
        part = parts_of(new)[0]
        # The model's onsets stand (not pushed back to where each 300-tick note would end)...
        assert len(part) > 1500 // 300 + 3 and (part[1:, 0] > part[:-1, 0]).all()
        # ...and each note ends where the next begins.
        assert (part[:-1, 1] == part[1:, 0]).all() and part[-1, 1] - part[-1, 0] == 300
        # Notes are streamed once final: the callback saw exactly the returned notes.
        streamed = sorted(tuple(e.tolist()) for w, e in calls if w == v)
        assert streamed == sorted(map(tuple, new.tolist()))


def line_at(part: np.ndarray, tick: int) -> int | None:
    """A part's line at ``tick``: its latest-onset sounding note (None in silence or on a chord)."""
    sounding = part[(part[:, 0] <= tick) & (tick < part[:, 1])]
    if not len(sounding):
        return None
    newest = sounding[sounding[:, 0] == sounding[:, 0].max()]
    return int(newest[0, 2]) if len(newest) == 1 else None


def perfect_parallels(parts: dict[int, np.ndarray], moves, counted) -> int:
    """Parallel fifths and octaves over ``moves`` ((before, now) ticks) between the pairs of parts (a, b)
    for which ``counted(a, b, now)`` holds."""
    count = 0
    for a, b in itertools.combinations(sorted(parts), 2):
        for before, now in moves:
            if not counted(a, b, now):
                continue
            pitches = [line_at(parts[a], before), line_at(parts[b], before), line_at(parts[a], now),
                       line_at(parts[b], now)]
            if None in pitches:
                continue
            a0, b0, a1, b1 = pitches
            similar = np.sign(a1 - a0) == np.sign(b1 - b0) != 0
            interval = abs(a0 - b0) % 12
            count += bool(similar and interval in (0, 7) and interval == abs(a1 - b1) % 12)
    return count


def consecutive_perfect_moves(parts: dict[int, np.ndarray], new: set[int]) -> int:
    """Parallel fifths and octaves between a new part and any other part, from the sonority just before
    each note onset to the one at it."""
    moves = sorted({(t - 1, t) for part in parts.values() for t in part[:, 0].tolist()})
    return perfect_parallels(parts, moves, lambda a, b, now: bool({a, b} & new))


def test_parallel_moves_and_lines():
    # C4 against G4 moving up to A4: D4 (a fifth below A4) or E5 (a fifth above) would be parallel fifths.
    fifths = np.flatnonzero(voicing.parallel_moves(60, 67, 69))
    assert {62, 76}.issubset(set(fifths.tolist())) and all(p > 60 and abs(69 - p) % 12 == 7 for p in fifths)
    octaves = np.flatnonzero(voicing.parallel_moves(60, 72, 71))  # C4/C5 octave, the other part steps down
    assert 59 in octaves and all(p < 60 and abs(71 - p) % 12 == 0 for p in octaves)
    assert not voicing.parallel_moves(60, 64, 65).any()  # a third is not a perfect interval
    assert not voicing.parallel_moves(60, 67, 67).any()  # the other part holds: oblique motion
    notes = np.array([0, 50, 50, 100]), np.array([51, 100, 100, 150]), np.array([60, 64, 67, 62])
    assert voicing.line_pitch(*notes, 10) == 60
    assert voicing.line_pitch(*notes, 50) is None  # a chord starts here: no single line
    assert voicing.line_pitch(*notes, 100) == 62  # the newest note, not the one still ringing
    assert voicing.line_pitch(*notes, 150) is None
    assert voicing.last_pitch(notes[0], notes[2], 150) == 62  # where the line was last, across the rest
    assert voicing.last_pitch(notes[0], notes[2], 60) is None and voicing.last_pitch(*notes[::2], -1) is None


def test_part_lines_see_across_rests_and_cut_notes():
    lines = voicing.PartLines(events((0, 50, 64, 67), (100, 50, 64, 69)), rows=1)  # soprano G4, then A4
    lines.add(0, 65, 0, 40, 60)  # alto C4, then a rest
    # C4 -> D4 under G4 -> A4 is a pair of parallel fifths, rest or not.
    assert lines.parallel_pitches(0, 65, 100)[62] and not lines.parallel_pitches(0, 65, 100)[64]
    lines.add(0, 66, 0, 200, 55)
    lines.add(0, 66, 20, 30, 57)  # a new note of a part ends its previous one
    assert lines.pitch_at(0, 66, 25) == 57 and lines.pitch_at(0, 66, 50) is None


def test_part_lines_compare_beats_across_passing_notes():
    lines = voicing.PartLines(events((0, 50, 48, 48), (50, 50, 48, 52)), rows=1)  # bass C3 then E3 on beats
    lines.add(0, 66, 0, 25, 55)  # tenor G3 on the beat, then a passing A3
    lines.add(0, 66, 25, 50, 57)
    # A3 -> B3 against C3 -> E3 is no parallel from note to note (a sixth before), but G3 -> B3 from beat to
    # beat is a fifth moving to a fifth.
    assert not lines.parallel_pitches(0, 66, 50)[59]
    from_beat = lines.parallel_pitches(0, 66, 50, since=0)
    assert from_beat[59] and not from_beat[60]
    assert not lines.parallel_pitches(0, 66, 50, since=30).any()  # at tick 30 the tenor's A3: no fifth


def beat_parallels(new: np.ndarray, melody_line: np.ndarray, beats: np.ndarray) -> int:
    """Parallel fifths and octaves from one beat to the next between a new part that starts a note on the
    later beat and any other part."""
    parts = parts_of(new)
    parts[64] = parts_of(melody_line)[64]

    def starts(part: int, now: int) -> bool:
        return part != 64 and now in parts[part][:, 0]

    moves = list(zip(beats[:-1].tolist(), beats[1:].tolist(), strict=True))
    return perfect_parallels(parts, moves, lambda a, b, now: starts(a, now) or starts(b, now))


def test_beat_parallels_weighs_down_parallels_from_beat_to_beat():
    # A melody in eighths (grid 2) at 100 bpm; the new parts move on every eighth, so most beat-to-beat
    # moves have a passing note between, where the note-to-note rule does not look.
    slow = TimeMap.from_meta(MidiMeta(tempos=((0, 100.0),)))
    tune = (0, 7, 12, 5, 9, 7, 2)
    melody_line = events(*[(t, 30, 64, 60 + tune[(t // 30) % 7]) for t in range(0, 1200, 30)])
    beats = slow.grid_ticks(1, 1200)
    kwargs = dict(history=np.zeros((0, 3), np.int64), controls=melody_line + CONTROL_OFFSET, start_time=0,
                  end_time=1200, variations=4, time_map=slow)
    # The key, chord and register weights are off: this test is about the parallels alone.
    options = dict(seed=4, instruments=[65, 66], pitch_range=(53, 67), monophonic=True, legato=True, grid=2,
                   top_p=1.0, no_parallels=True, key_weight=1.0, chord_weight=1.0, register_weight=1.0)

    def count(weight):
        out = generate(ChoirLM(), options=SamplingOptions(**options, beat_parallels=weight), **kwargs)
        assert all(len(new) > 40 for new in out)
        return sum(beat_parallels(new, melody_line, beats) for new in out)

    free, weighed, strict = count(1.0), count(0.2), count(0.0)
    assert free > 4 and weighed < free
    assert strict == 0


def test_no_parallels_keeps_new_parts_out_of_parallel_fifths_and_octaves():
    melody_line = events(*[(t, 30, 64, 60 + (0, 7, 12, 5, 9, 7)[(t // 30) % 6]) for t in range(0, 1200, 30)])
    kwargs = dict(history=np.zeros((0, 3), np.int64), controls=melody_line + CONTROL_OFFSET, start_time=0,
                  end_time=1200, variations=3, time_map=TimeMap.from_meta(MidiMeta(tempos=((0, 100.0),))))
    options = dict(seed=4, instruments=[65, 66], pitch_range=(53, 67), monophonic=True, legato=True, grid=2,
                   top_p=1.0)

    def parallels(out):
        total = 0
        for new in out:
            parts = parts_of(new)
            parts[64] = parts_of(melody_line)[64]
            total += consecutive_perfect_moves(parts, {65, 66})
        return total

    free = generate(ChoirLM(), options=SamplingOptions(**options), **kwargs)
    strict = generate(ChoirLM(), options=SamplingOptions(**options, no_parallels=True), **kwargs)
    assert parallels(free) > 0
    assert all(len(new) > 40 for new in strict)
    assert parallels(strict) == 0


def test_candidates_are_ranked_by_distance_to_targets(model):
    options = SamplingOptions(seed=6, density=1.0, candidates=4)
    out = generate(model, history=melody(0, 300), controls=np.zeros((0, 3), np.int64), start_time=300,
                   end_time=800, options=options, variations=2)
    assert len(out) == 2
    new = events((0, 100, 0, 60), (100, 100, 0, 62))
    assert attributes.measure(new, 0, 200) == (1.0, 1.0)
    assert attributes.distance(new, 0, 200, 1.0, 1.0) == 0.0
    assert attributes.distance(new, 0, 200, 4.0, None) > attributes.distance(new, 0, 200, 2.0, None)


def test_too_many_controls_is_a_clear_error(model):
    dense = events(*[(1000 + i, 10, 0, 40 + i % 40) for i in range(400)]) + CONTROL_OFFSET
    with pytest.raises(GenerationError, match="within 5 s"):
        generate(model, history=np.zeros((0, 3), np.int64), controls=dense, start_time=0, end_time=2000)


@pytest.mark.parametrize("bad", [
    dict(start_time=500, end_time=500),
    dict(options=SamplingOptions(top_p=0.0)),
    dict(options=SamplingOptions(temperature=0.0)),
    dict(options=SamplingOptions(pitch_range=(80, 60))),
    dict(options=SamplingOptions(instruments=[])),
    dict(options=SamplingOptions(candidates=3)),
    dict(options=SamplingOptions(grid=0)),
    dict(options=SamplingOptions(grid=25)),
    dict(options=SamplingOptions(legato=True)),  # legato and no_parallels need monophonic parts
    dict(options=SamplingOptions(no_parallels=True)),
    dict(options=SamplingOptions(monophonic=True, no_parallels=True, beat_parallels=1.5)),
    dict(options=SamplingOptions(monophonic=True, no_parallels=True, beat_parallels=float("nan"))),
    dict(variations=0),
    dict(controls=melody(600, 700)),  # events where controls are expected
])
def test_bad_requests_raise_generation_error(model, bad):
    kwargs = dict(history=melody(0, 500), controls=np.zeros((0, 3), np.int64), start_time=500, end_time=600)
    kwargs.update(bad)
    with pytest.raises(GenerationError):
        generate(model, **kwargs)


def test_mamba_generates_through_its_recurrent_state():
    torch.manual_seed(0)
    mamba = create_model(tiny_config("mamba"))
    assert mamba.max_positions is None
    out = generate(mamba, history=melody(0, 400), controls=melody(500, 900, instrument=40) + CONTROL_OFFSET,
                   start_time=400, end_time=700, options=SamplingOptions(seed=0), variations=2)
    assert len(out) == 2 and all(len(o) and (onsets(o) >= 400).all() and (onsets(o) < 700).all() for o in out)
