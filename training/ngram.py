"""A count-based n-gram baseline over events, scored on exactly the token sequences ``amt eval`` scores.

The neural model is only worth shipping if it beats counting. This model reads the same sequences (a flag,
then (time, duration, note) triples of events, controls and separators, built by
:class:`~amt.training.data.SequenceBuilder`) and assigns a probability to every target token, so that
:func:`amt.training.evaluate.evaluate` computes its loss per token and bits per event with the same code as
for a network: pass :meth:`NgramModel.scorer` where a model scorer would go.

Factorisation of one triple, each factor a proper distribution over the tokens the grammar allows there
(the blocks of :mod:`amt.training.blocks`), so that the probabilities of a position sum to one:

- first token: the triple's *kind* (event, control or separator) given the sequence flag and the previous
  kinds, times the time token given the kind. Times are modelled as the gap ``delta`` since the previous
  triple of the same kind (events and controls each run forward in time; a separator restarts the clock at
  0), given the previous gaps of that kind. The delta distribution is truncated to the onsets the grammar
  allows (times before ``MAX_TIME``; for events, at most ``REST_INTERVAL`` after the previous event, see
  :mod:`amt.training.blocks`) and renormalised;
- duration given the previous durations of the same kind;
- note (``128 * instrument + pitch``, or REST for events), factorised as the instrument (or REST) given the
  previous instruments of the same kind, times the pitch given the previous pitches of that kind and the
  instrument (backing off to the previous pitches alone, so that melodic habits carry across instruments);
- the second and third SEPARATOR of a separator triple are certain.

Each conditional is an interpolated absolute-discounting n-gram (the smoothing of Kneser-Ney without its
continuation counts) of ``order - 1`` previous symbols, backing off to the unigram and then to the uniform
distribution over the block; events and controls have separate tables. Each factor is finally mixed with
the uniform distribution over its block (weight ``epsilon``), so that any valid token keeps a probability
and music unlike the training data (another tempo, an unseen instrument) costs a bounded number of bits.

Counting is vectorised with numpy (sorted int64 keys), so fitting a few million triples takes seconds. It is
written here because no maintained n-gram library models three interleaved token streams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from amt.errors import TokenError
from amt.tokenization.notes import (
    CONTROL_DURATIONS,
    CONTROL_NOTES,
    CONTROL_TIMES,
    EVENT_DURATIONS,
    EVENT_NOTES,
    EVENT_TIMES,
)
from amt.tokenization.vocab import (
    ANTICIPATE,
    AUTOREGRESS,
    EVENT_SIZE,
    MAX_DUR,
    MAX_NOTE,
    MAX_PITCH,
    MAX_TIME,
    REST,
    REST_INTERVAL,
    SEPARATOR,
)

EVENT, CONTROL, SEP = 0, 1, 2
KINDS = 3
INSTRUMENTS = MAX_NOTE // MAX_PITCH  # 129: GM programs and drums
REST_SYMBOL = INSTRUMENTS  # the instrument symbol of a REST event


def _keys(columns: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``[N, k]`` non-negative symbols (each < 2**bits) into one int64 per row."""
    keys = np.zeros(len(columns), dtype=np.int64)
    for j in range(columns.shape[1]):
        keys = (keys << bits) | columns[:, j]
    return keys


class DiscountedNgram:
    """P(symbol | context) by interpolated absolute discounting over ``size`` symbols.

    Contexts are ``[N, k]`` arrays of symbols below ``alphabet`` (default ``size + 1``: the symbols and a
    begin-of-stream marker), most important column first; backing off drops the last column, down to the
    unigram, which is interpolated with the uniform distribution over ``size`` symbols. A context and its
    symbol are packed into one int64 key, so ``(k + 1) * bits(alphabet)`` must stay within 63 bits.
    """

    def __init__(self, size: int, context: int, discount: float = 0.75, alphabet: int | None = None):
        if not 0 < discount < 1:
            raise ValueError("discount must lie in (0, 1)")
        self.bits = (max(size, alphabet or size + 1) - 1).bit_length()
        if (context + 1) * self.bits > 63:
            raise ValueError(f"a context of {context} symbols of {self.bits} bits does not fit a 64-bit key")
        self.size = size
        self.context = context
        self.discount = discount
        # Per level j (j context columns): sorted joint keys, their counts and the cumulative discounted
        # counts (for tail sums), sorted context keys with their totals and numbers of distinct symbols.
        self._joint: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._contexts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def fit(self, contexts: np.ndarray, symbols: np.ndarray) -> DiscountedNgram:
        """Count ``symbols`` ``[N]`` after ``contexts`` ``[N, context]``; returns self."""
        contexts = np.asarray(contexts, dtype=np.int64).reshape(len(symbols), self.context)
        symbols = np.asarray(symbols, dtype=np.int64)
        if len(symbols) and (symbols.min() < 0 or symbols.max() >= self.size):
            raise ValueError("symbol outside the model's range")
        self._joint, self._contexts = [], []
        for level in range(self.context + 1):
            keys = _keys(np.column_stack([contexts[:, :level], symbols]), self.bits)
            joint, counts = np.unique(keys, return_counts=True)
            discounted = np.concatenate([[0.0], np.cumsum(np.maximum(counts - self.discount, 0.0))])
            self._joint.append((joint, counts, discounted))
            heads, first, distinct = np.unique(joint >> self.bits, return_index=True, return_counts=True)
            totals = np.add.reduceat(counts, first) if len(first) else counts[:0]
            self._contexts.append((heads, totals, distinct))
        return self

    @staticmethod
    def _lookup(table: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index, found) of ``keys`` in the sorted ``table``."""
        index = np.searchsorted(table, keys)
        found = index < len(table)
        found[found] = table[index[found]] == keys[found]
        return index, found

    def _context_stats(self, level: int, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        table, totals, distinct = self._contexts[level]
        if not len(table):
            return np.zeros(len(heads)), np.zeros(len(heads))
        index, found = self._lookup(table, heads)
        index = np.minimum(index, len(table) - 1)
        total = np.where(found, totals[index], 0).astype(np.float64)
        return total, np.where(found, distinct[index], 0).astype(np.float64)

    def prob(self, contexts: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """P(symbol | context) for each row (float64)."""
        contexts = np.asarray(contexts, dtype=np.int64).reshape(len(symbols), self.context)
        symbols = np.asarray(symbols, dtype=np.int64)
        p = np.full(len(symbols), 1.0 / self.size)
        for level, (joint, counts, _) in enumerate(self._joint):
            heads = _keys(contexts[:, :level], self.bits)
            total, unique = self._context_stats(level, heads)
            index, found = self._lookup(joint, (heads << self.bits) | symbols)
            count = np.zeros(len(symbols))
            if len(counts):
                count = np.where(found, counts[np.minimum(index, len(counts) - 1)], 0).astype(np.float64)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mass = np.maximum(count - self.discount, 0.0) + self.discount * unique * p
            p = np.where(seen, mass / safe, p)
        return p

    def tail(self, contexts: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Sum of P(s | context) over symbols ``s >= start`` (per row; ``start`` in 0..size)."""
        contexts = np.asarray(contexts, dtype=np.int64).reshape(len(start), self.context)
        start = np.clip(np.asarray(start, dtype=np.int64), 0, self.size)
        tail = (self.size - start) / self.size
        for level, (joint, _, discounted) in enumerate(self._joint):
            heads = _keys(contexts[:, :level], self.bits)
            total, unique = self._context_stats(level, heads)
            low = np.searchsorted(joint, (heads << self.bits) | start)
            high = np.searchsorted(joint, (heads + 1) << self.bits)
            seen_mass = discounted[high] - discounted[low]
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            tail = np.where(seen, (seen_mass + self.discount * unique * tail) / safe, tail)
        return tail


@dataclass
class _Features:
    """Per triple of a batch of sequences: what each factor conditions on and predicts."""

    position: np.ndarray  # (M,) index of the triple's first token in the flattened [B, T] array
    kind: np.ndarray  # (M,) EVENT, CONTROL or SEP
    kind_context: np.ndarray  # (M, order) flag then previous kinds
    time: np.ndarray  # (M,) time token value within its block (0..MAX_TIME-1)
    previous_time: np.ndarray  # (M,) time of the previous triple of the same kind in the segment
    time_context: np.ndarray  # (M, order-1) previous gaps of the same kind
    duration: np.ndarray
    duration_context: np.ndarray
    instrument: np.ndarray  # (M,) 0..128, or REST_SYMBOL
    instrument_context: np.ndarray  # (M, order-1) previous instruments of the same kind
    pitch: np.ndarray
    pitch_context: np.ndarray  # (M, order) previous pitches of the same kind, then the instrument
    complete: np.ndarray  # (M, 3) which of the triple's tokens are inside the sequence


def _split_triple(time_token: int) -> tuple[int, int]:
    """(kind, time within the block) of a triple's first token."""
    if time_token == SEPARATOR:
        return SEP, 0
    if EVENT_TIMES.holds(time_token):
        return EVENT, EVENT_TIMES.value(time_token)
    if CONTROL_TIMES.holds(time_token):
        return CONTROL, CONTROL_TIMES.value(time_token)
    raise TokenError(f"token {time_token} cannot start a triple (expected a time or SEPARATOR)")


class _Walker:
    """The per-kind histories of one sequence, advanced triple by triple."""

    BOS: ClassVar[dict[str, int]] = {"time": MAX_TIME, "duration": MAX_DUR, "instrument": REST_SYMBOL + 1,
                                     "pitch": MAX_PITCH}

    def __init__(self, flag: int, order: int):
        if flag not in (AUTOREGRESS, ANTICIPATE):
            raise TokenError(f"a sequence starts with {flag}, not a sequence flag")
        self.flag = int(flag == ANTICIPATE)
        self.n = order - 1
        self.restart()

    @classmethod
    def clocks(cls, prefix: np.ndarray, order: int) -> dict[int, int]:
        """The onsets of the latest event and control after walking the whole triples of ``prefix``."""
        walker = cls(int(prefix[0]), order)
        for start in range(1, len(prefix) - EVENT_SIZE + 1, EVENT_SIZE):
            walker.row(prefix[start:start + EVENT_SIZE])
        return walker.clock

    def restart(self) -> None:
        """Forget everything: the start of a sequence, or a new piece after a separator."""
        self.kinds = [KINDS] * self.n
        self.history = {k: {name: [v] * self.n for name, v in self.BOS.items()} for k in (EVENT, CONTROL)}
        self.clock = {EVENT: 0, CONTROL: 0}

    def row(self, triple: np.ndarray) -> dict[str, object]:
        """The features of ``triple`` (possibly cut short), then advance past it."""
        kind, time = _split_triple(int(triple[0]))
        row: dict[str, object] = {"kind": kind, "kind_context": [self.flag, *self.kinds[::-1]],
                                  "complete": [i < len(triple) for i in range(EVENT_SIZE)]}
        if kind == SEP:
            row.update(time=0, previous_time=0, duration=0, instrument=0, pitch=0, time_context=[0] * self.n,
                       duration_context=[0] * self.n, instrument_context=[0] * self.n,
                       pitch_context=[0] * (self.n + 1))
            self.restart()
            return row
        control = kind == CONTROL
        durations, notes = (CONTROL_DURATIONS, CONTROL_NOTES) if control else (EVENT_DURATIONS, EVENT_NOTES)
        duration = durations.value(int(triple[1])) if len(triple) > 1 else 0
        if len(triple) > 1 and not 0 <= duration < MAX_DUR:
            raise TokenError(f"token {triple[1]} is not a duration of the triple's kind")
        instrument, pitch = 0, 0
        if len(triple) > 2:
            note = notes.value(int(triple[2]))
            if not 0 <= note <= (MAX_NOTE if kind == EVENT else MAX_NOTE - 1):
                raise TokenError(f"token {triple[2]} is not a note of the triple's kind")
            instrument, pitch = (REST_SYMBOL, 0) if note == MAX_NOTE else divmod(note, MAX_PITCH)
        own = self.history[kind]
        row.update(time=time, previous_time=self.clock[kind], duration=duration, instrument=instrument,
                   pitch=pitch, time_context=own["time"][::-1], duration_context=own["duration"][::-1],
                   instrument_context=own["instrument"][::-1],
                   pitch_context=[*own["pitch"][::-1], instrument])
        gap = time - self.clock[kind]
        self.clock[kind] = time
        if self.n:
            self.kinds = [*self.kinds[1:], kind]
            # A gap that runs backwards (never produced by the sequence builder) is a fresh start.
            own["time"] = [*own["time"][1:], gap if gap >= 0 else self.BOS["time"]]
            own["duration"] = [*own["duration"][1:], duration]
            own["instrument"] = [*own["instrument"][1:], instrument]
            if instrument != REST_SYMBOL:
                own["pitch"] = [*own["pitch"][1:], pitch]
        return row


def _features(tokens: np.ndarray, order: int) -> _Features:
    """Walk ``[B, T]`` sequences (flag + triples) triple by triple; the features of every triple."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise TokenError("expected a [batch, length] array of sequences with at least a flag and one token")
    batch, length = tokens.shape
    rows: dict[str, list] = {name: [] for name in _Features.__dataclass_fields__}
    for b in range(batch):
        walker = _Walker(int(tokens[b, 0]), order)
        for start in range(1, length, EVENT_SIZE):
            rows["position"].append(b * length + start)
            for name, value in walker.row(tokens[b, start:start + EVENT_SIZE]).items():
                rows[name].append(value)
    return _Features(**{name: np.asarray(values, dtype=bool if name == "complete" else np.int64).reshape(
        len(values), -1) if name.endswith(("context", "complete")) else np.asarray(values, dtype=np.int64)
        for name, values in rows.items()})


class NgramModel:
    """The n-gram baseline (see the module docstring). ``order`` counts the predicted symbol (4: three
    previous symbols of each stream; 2 to 4 were compared on the music21 corpus's validation split, 4 won)."""

    def __init__(self, order: int = 4, *, discount: float = 0.75, epsilon: float = 1e-3):
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self.epsilon = epsilon
        n = order - 1
        # Kind contexts: the sequence flag, then the order - 1 previous kinds.
        self.kinds = DiscountedNgram(KINDS, order, discount, alphabet=KINDS + 1)
        self.times = [DiscountedNgram(MAX_TIME, n, discount) for _ in (EVENT, CONTROL)]
        self.durations = [DiscountedNgram(MAX_DUR, n, discount) for _ in (EVENT, CONTROL)]
        # Events may be REST (one more instrument symbol); controls may not.
        self.instruments = [DiscountedNgram(INSTRUMENTS + 1, n, discount, alphabet=REST_SYMBOL + 2),
                            DiscountedNgram(INSTRUMENTS, n, discount, alphabet=REST_SYMBOL + 2)]
        # Pitch contexts end with the instrument (up to REST_SYMBOL + 1, the instruments' begin marker).
        self.pitches = [DiscountedNgram(MAX_PITCH, n + 1, discount, alphabet=REST_SYMBOL + 2)
                        for _ in (EVENT, CONTROL)]
        self.fitted = False

    def fit(self, sequences: np.ndarray | Iterable[np.ndarray]) -> NgramModel:
        """Count the triples of token sequences (each a flag and triples, as built for training)."""
        f = _features(np.stack([np.asarray(s, dtype=np.int64) for s in sequences]), self.order)
        self.kinds.fit(f.kind_context, f.kind)
        for kind in (EVENT, CONTROL):
            mine = f.kind == kind
            gap = f.time - f.previous_time
            forward = mine & (gap >= 0)
            self.times[kind].fit(f.time_context[forward], gap[forward])
            self.durations[kind].fit(f.duration_context[mine], f.duration[mine])
            self.instruments[kind].fit(f.instrument_context[mine], f.instrument[mine])
            pitched = mine & (f.instrument != REST_SYMBOL)
            self.pitches[kind].fit(f.pitch_context[pitched], f.pitch[pitched])
        self.fitted = True
        return self

    def _probabilities(self, f: _Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per triple: P(first token), P(duration), P(note) (1 where the token is certain)."""
        if not self.fitted:
            raise RuntimeError("fit the n-gram model before scoring")
        first = self.kinds.prob(f.kind_context, f.kind)
        duration_p = np.ones(len(f.kind))
        note_p = np.ones(len(f.kind))
        for kind in (EVENT, CONTROL):
            mine = f.kind == kind
            if not mine.any():
                continue
            first[mine] *= self._time_prob(kind, f.time_context[mine], f.previous_time[mine], f.time[mine])
            duration_p[mine] = self._smooth(self.durations[kind], f.duration_context[mine], f.duration[mine])
            instruments = self.instruments[kind]
            note_p[mine] = self._smooth(instruments, f.instrument_context[mine], f.instrument[mine])
            pitched = np.flatnonzero(mine & (f.instrument != REST_SYMBOL))
            note_p[pitched] *= self._smooth(self.pitches[kind], f.pitch_context[pitched], f.pitch[pitched])
        return first, duration_p, note_p

    def _smooth(self, model: DiscountedNgram, context: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """The n-gram's probability mixed with the uniform one (weight ``epsilon``): a symbol never counted
        in any context (a tempo or an instrument absent from training) costs at most log(size / epsilon)."""
        return (1.0 - self.epsilon) * model.prob(context, symbols) + self.epsilon / model.size

    def nll(self, tokens: np.ndarray) -> np.ndarray:
        """Natural-log NLL of tokens 1..T-1 of ``[B, T]`` sequences: ``[B, T - 1]`` (the flag is given)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        f = _features(tokens, self.order)
        batch, length = tokens.shape
        nll = np.zeros(batch * length)
        for slot, p in enumerate(self._probabilities(f)):
            inside = f.complete[:, slot]
            nll[f.position[inside] + slot] = -np.log(p[inside])
        return nll.reshape(batch, length)[:, 1:]

    def next_token_distribution(self, prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, probabilities) of every token the grammar allows after ``prefix`` (a flag + tokens).

        The probabilities are the ones :meth:`nll` uses and sum to one over the block.
        """
        prefix = np.asarray(prefix, dtype=np.int64)
        slot = (len(prefix) - 1) % EVENT_SIZE
        if slot == 0:
            clock = _Walker.clocks(prefix, self.order)
            low, high = clock[EVENT], min(clock[EVENT] + REST_INTERVAL, MAX_TIME - 1)
            blocks = [EVENT_TIMES.token(np.arange(low, high + 1)),
                      CONTROL_TIMES.token(np.arange(clock[CONTROL], MAX_TIME)),
                      np.array([SEPARATOR])]
        else:
            head = int(prefix[len(prefix) - slot])
            kind, _ = _split_triple(head)
            if kind == SEP:
                return np.array([SEPARATOR]), np.ones(1)
            if slot == 1:
                blocks = [np.array((EVENT_DURATIONS if kind == EVENT else CONTROL_DURATIONS).tokens)]
            else:
                notes = np.array((EVENT_NOTES if kind == EVENT else CONTROL_NOTES).tokens)
                blocks = [np.append(notes, REST) if kind == EVENT else notes]
        tokens, probabilities = [], []
        for block in blocks:
            # Every candidate shares the prefix's histories: features of the prefix plus one candidate,
            # copied along the block with the candidate token swapped in.
            f = _features(np.append(prefix, block[0])[None, :], self.order)
            last = {name: np.repeat(getattr(f, name)[-1:], len(block), axis=0)
                    for name in _Features.__dataclass_fields__}
            column = {0: "time", 1: "duration", 2: "note"}[slot]
            if column == "time":
                if block[0] != SEPARATOR:
                    last["time"] = block - block[0] + int(f.time[-1])
            elif column == "duration":
                last["duration"] = block - block[0]
            else:
                note = block - block[0]
                last["instrument"], last["pitch"] = np.divmod(note, MAX_PITCH)
                last["instrument"][note == MAX_NOTE] = REST_SYMBOL
                last["pitch"][note == MAX_NOTE] = 0
                last["pitch_context"][:, -1] = last["instrument"]
            tokens.append(block)
            probabilities.append(self._probabilities(_Features(**last))[slot])
        return np.concatenate(tokens), np.concatenate(probabilities)

    def _time_prob(self, kind: int, context: np.ndarray, previous: np.ndarray,
                   time: np.ndarray) -> np.ndarray:
        """P(time token | kind): the gap distribution truncated to the gaps the grammar allows (see
        ``amt.training.blocks``), mixed with a uniform over them."""
        model = self.times[kind]
        gap = time - previous
        # Gaps that stay in the grammar: [0, limit).
        limit = MAX_TIME - previous
        if kind == EVENT:
            limit = np.minimum(limit, REST_INTERVAL + 1)
        allowed = (gap >= 0) & (gap < limit)
        p_gap = np.zeros(len(time))
        p_gap[allowed] = model.prob(context[allowed], gap[allowed])
        inside = 1.0 - model.tail(context, limit)
        uniform = np.where(allowed, 1.0 / np.maximum(limit, 1), 0.0)
        return (1.0 - self.epsilon) * p_gap / np.maximum(inside, 1e-300) + self.epsilon * uniform

    def scorer(self) -> Callable:
        """A scorer for :func:`amt.training.evaluate.evaluate`: ``[B, T]`` LongTensor -> ``[B, T-1]`` NLLs."""
        import torch

        def score(tokens: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(self.nll(tokens.cpu().numpy())).float()

        return score


def fit_ngram(corpus, pieces: np.ndarray, *, sequences: int = 8000, order: int = 4, seed: int = 1,
              mix: Mapping | None = None, discount: float = 0.75) -> NgramModel:
    """Fit the baseline on ``sequences`` training sequences drawn from ``pieces`` of ``corpus``.

    The sequences come from the same :class:`~amt.training.data.SequenceBuilder` as the network's training
    data (the paper's objective mix by default), with a seed different from evaluation's default (0).
    8,000 sequences (2.7 M triples) fit in under a minute on one CPU core, with about 3 GB of memory.
    """
    from amt.training.data import PAPER_MIX, SequenceBuilder

    builder = SequenceBuilder(corpus, pieces, seed=seed, mix=PAPER_MIX if mix is None else mix)
    return NgramModel(order, discount=discount).fit(builder.build(i) for i in range(sequences))


def uniform_bits_per_event() -> float:
    """Bits per event of the uniform distribution over each event position's block (time, duration, note)."""
    return math.log2(2 * MAX_TIME + 1) + math.log2(MAX_DUR) + math.log2(MAX_NOTE + 1)


__all__ = ["DiscountedNgram", "NgramModel", "fit_ngram", "uniform_bits_per_event"]
