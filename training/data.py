"""Training sequences built on the fly from a corpus's event store, with the AMT infilling objectives.

The reference implementation writes every training sequence to disk ten times over (one copy per
augmentation). Here a sequence is a pure function of ``(seed, index)``: :meth:`SequenceBuilder.build` draws
a piece (weighted by its number of events) and a window start (uniform over its events, so every event of
the corpus is equally likely to open a sequence), an objective, and the controls, all from a generator
seeded by ``(seed, index)``. Nothing is stored, any worker can build any index, and resuming at step ``s``
means asking for the indices of step ``s`` again.

Layout of a sequence (``CONTEXT_SIZE`` = 1,024 tokens): a flag (AUTOREGRESS for plain sequences,
ANTICIPATE for sequences built with an anticipation objective) and ``EVENTS_PER_SEQUENCE`` = 341 triples.
The triples hold *segments*: the first is a window of a piece, later ones are whole pieces from their start;
consecutive segments are separated by a triple of SEPARATOR tokens (packing, so no position is wasted on
padding). Within a segment, events are REST-padded and controls interleaved ``DELTA`` (5 s) ahead
(``sequences.pad_and_interleave``), and times are relative to the segment's start. A segment ends when its
piece ends, when the sequence is full, or before the first event at ``MAX_TIME`` (100 s) or later, so every
time token is a valid relative time.

Objectives (the AMT paper's mix by default, see ``DataConfig``):

- AUTOREGRESS: no controls.
- SPAN: wait an exponential gap (mean ``span_gap`` s) from the segment start, make the events of the
  next ``span_length`` s controls, repeat (``ops.extract_spans``). The gap is memoryless, so starting the
  clock at a window start draws spans as starting it at the piece start would.
- RANDOM: draw ``p`` uniformly from ``random_rate`` once per sequence; each event becomes a control with
  probability ``p`` (``ops.extract_random``).
- INSTRUMENT: a random non-empty proper subset of the piece's instruments become controls (drawn per
  segment; ``ops.extract_instruments``). A single-instrument piece falls back to SPAN or RANDOM, chosen in
  proportion to their shares.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from amt.errors import CorpusError
from amt.tokenization import ops
from amt.tokenization.notes import onset_ticks
from amt.tokenization.sequences import pad_and_interleave
from amt.tokenization.vocab import (
    ANTICIPATE,
    AUTOREGRESS,
    CONTEXT_SIZE,
    EVENT_SIZE,
    MAX_TIME,
    SEPARATOR,
    TIME_RESOLUTION,
)


class Objective(enum.IntEnum):
    """How the controls of a training sequence are chosen."""

    AUTOREGRESS = 0
    SPAN = 1
    RANDOM = 2
    INSTRUMENT = 3


PLAIN_MIX: dict[Objective, float] = {Objective.AUTOREGRESS: 1.0}
"""Plain sequences only (evaluation of unconditional continuation)."""
ANTICIPATION_MIX: dict[Objective, float] = {
    Objective.SPAN: 0.1, Objective.RANDOM: 0.4, Objective.INSTRUMENT: 0.4,
}
"""The paper's anticipation objectives in their training proportions, without plain sequences."""
PAPER_MIX: dict[Objective, float] = {Objective.AUTOREGRESS: 0.1, **ANTICIPATION_MIX}
"""The AMT paper's training mix: 10% plain, 10% span, 40% random subset, 40% instrument."""

_SEPARATOR_TRIPLE = np.full((1, EVENT_SIZE), SEPARATOR, dtype=np.int64)


@dataclass(frozen=True)
class ObjectiveParams:
    """Parameters of the span and random-subset objectives, and of pitch augmentation."""

    span_gap: float = 20.0
    """Mean gap (seconds) before each anticipated span."""
    span_length: float = 5.0
    """Length (seconds) of each anticipated span."""
    random_rate: tuple[float, float] = (0.1, 0.9)
    """Range of the per-sequence probability that an event becomes a control."""
    transpose: int = 0
    """Augmentation: each segment is transposed by a uniform whole number of semitones in
    ``[-transpose, transpose]`` (narrowed so every pitch stays in 0..127; drums are never transposed).
    0 draws nothing, so sequences are those of a builder without augmentation."""


class SequenceBuilder:
    """Builds training sequences of ``length`` tokens from pieces of a corpus, deterministically by index.

    ``corpus`` needs ``events(i)`` (absolute event tokens, ``(n, 3)``) and ``instruments(i)``, as
    ``amt.tokenization.corpus.Corpus`` provides. ``pieces`` are the corpus indices to draw from (a split).
    ``mix`` maps objectives to relative weights. ``piece_weights`` (one per piece, >= 0) multiplies each
    piece's chance of opening a sequence, which is otherwise proportional to its number of events (see
    :func:`source_weights`). Raises CorpusError when the pieces hold no events.
    """

    def __init__(self, corpus, pieces: np.ndarray, *, seed: int = 0,
                 mix: Mapping[Objective, float] = PAPER_MIX, params: ObjectiveParams = ObjectiveParams(),
                 length: int = CONTEXT_SIZE, piece_weights: np.ndarray | None = None):
        if (length - 1) % EVENT_SIZE or length < 1 + 2 * EVENT_SIZE:
            raise ValueError(f"sequence length {length} is not 1 + a multiple of {EVENT_SIZE} (>= 7)")
        self.corpus = corpus
        self.seed = int(seed)
        self.params = params
        self.length = length
        self.triples = (length - 1) // EVENT_SIZE
        counts = np.array([len(corpus.events(int(i))) for i in pieces], dtype=np.int64)
        self.pieces = np.asarray(pieces, dtype=np.int64)[counts > 0]
        self._weighted_ends = None
        if piece_weights is not None:
            weights = np.asarray(piece_weights, dtype=np.float64)
            if weights.shape != counts.shape or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("piece_weights must hold one finite weight >= 0 per piece")
            # Piece k opens a sequence when a uniform draw lands in [_weighted_ends[k-1], _weighted_ends[k]).
            self._weighted_ends = np.cumsum(counts[counts > 0] * weights[counts > 0])
            if self._weighted_ends[-1] <= 0:
                raise CorpusError("no events to train on: every non-empty piece has weight 0")
        counts = counts[counts > 0]
        if counts.sum() == 0:
            raise CorpusError("no events to train on: the selected pieces are empty")
        self._ends = np.cumsum(counts)  # piece k holds global event positions [_ends[k-1], _ends[k])
        objectives = [o for o, w in mix.items() if w > 0]
        weights = np.array([mix[o] for o in objectives], dtype=np.float64)
        if not objectives or (weights < 0).any():
            raise ValueError("mix must give a positive weight to at least one objective")
        self._objectives = objectives
        self._weights = weights / weights.sum()
        # Single-instrument pieces replace INSTRUMENT by SPAN or RANDOM in proportion to their shares.
        span, rand = mix.get(Objective.SPAN, 0.0), mix.get(Objective.RANDOM, 0.0)
        self._span_fallback = span / (span + rand) if span + rand > 0 else 0.0

    @property
    def events(self) -> int:
        """Number of events the builder draws windows from."""
        return int(self._ends[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        return self.build(index)

    def objective(self, index: int) -> Objective:
        """The objective sequence ``index`` is built with."""
        return self._draw_objective(self._rng(index))

    def build(self, index: int) -> np.ndarray:
        """Sequence ``index``: an int64 array of ``length`` tokens, a pure function of seed and index."""
        rng = self._rng(index)
        objective = self._draw_objective(rng)
        flag = AUTOREGRESS if objective is Objective.AUTOREGRESS else ANTICIPATE
        rate = rng.uniform(*self.params.random_rate)  # drawn per sequence, used by RANDOM segments
        room = self.triples
        segments = []
        piece, start = self._draw_window(rng)
        while True:
            segment = self._segment(rng, piece, start, objective, rate, room)
            segments.append(segment)
            room -= len(segment)
            if room == 0:
                break
            segments.append(_SEPARATOR_TRIPLE)
            room -= 1
            if room == 0:
                break
            piece, start = self._draw_window(rng, from_start=True)
        return np.concatenate([np.array([flag], dtype=np.int64), np.concatenate(segments).reshape(-1)])

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def _draw_objective(self, rng: np.random.Generator) -> Objective:
        return self._objectives[rng.choice(len(self._objectives), p=self._weights)]

    def _draw_window(self, rng: np.random.Generator, *, from_start: bool = False) -> tuple[int, int]:
        """A (piece, first event) pair: the piece weighted by its number of events (times its weight),
        the first event uniform over the piece."""
        if self._weighted_ends is None:
            position = int(rng.integers(self.events))
            k = int(np.searchsorted(self._ends, position, side="right"))
            start = 0 if from_start else position - (int(self._ends[k - 1]) if k else 0)
            return int(self.pieces[k]), start
        k = int(np.searchsorted(self._weighted_ends, rng.uniform(0.0, self._weighted_ends[-1]), side="right"))
        first = int(self._ends[k - 1]) if k else 0
        start = 0 if from_start else int(rng.integers(int(self._ends[k]) - first))
        return int(self.pieces[k]), start

    def _segment(self, rng: np.random.Generator, piece: int, start: int, objective: Objective,
                 rate: float, room: int) -> np.ndarray:
        """Up to ``room`` interleaved triples from ``piece`` starting at event ``start``, times relative."""
        # At most `room` events can appear, whatever the objective: controls take triples too.
        window = np.asarray(self.corpus.events(piece)[start:start + room], dtype=np.int64)
        window = ops.translate(window, -int(onset_ticks(window[:1])[0]))
        window = window[: np.searchsorted(onset_ticks(window), MAX_TIME, side="left")]
        if objective is Objective.INSTRUMENT and len(self.corpus.instruments(piece)) < 2:
            objective = Objective.SPAN if rng.random() < self._span_fallback else Objective.RANDOM
        if self.params.transpose:
            low, high = ops.transposition_range(window, self.params.transpose)
            window = ops.transpose(window, int(rng.integers(low, high + 1)))
        events, controls = self._extract(rng, window, piece, objective, rate)
        # Pads the events with RESTs to the window's last onset, interleaves the controls DELTA ahead and
        # appends the rare controls due after the last event.
        return pad_and_interleave(events, controls)[:room]

    def _extract(self, rng: np.random.Generator, window: np.ndarray, piece: int, objective: Objective,
                 rate: float) -> tuple[np.ndarray, np.ndarray]:
        """``(events, controls)`` of ``window`` under ``objective``."""
        if objective is Objective.AUTOREGRESS:
            return window, window[:0]
        if objective is Objective.RANDOM:
            return ops.extract_random(window, rng, rate)
        if objective is Objective.SPAN:
            return ops.extract_spans(window, rng, rate=1.0 / self.params.span_gap,
                                     span=round(self.params.span_length * TIME_RESOLUTION))
        instruments = np.asarray(self.corpus.instruments(piece))
        chosen = rng.choice(instruments, size=int(rng.integers(1, len(instruments))), replace=False)
        return ops.extract_instruments(window, chosen)


def source_weights(corpus, pieces: np.ndarray, weights: Mapping[str, float]) -> np.ndarray | None:
    """Per-piece weights from weights by source: a piece whose path in the corpus (``corpus.source(i)``,
    relative to the folder ``amt prepare`` read) starts with a key takes that key's weight (the longest
    such key wins), others weigh 1. None when ``weights`` is empty (no reweighting)."""
    if not weights:
        return None
    keys = sorted(weights, key=len, reverse=True)
    out = np.ones(len(pieces), dtype=np.float64)
    for n, piece in enumerate(pieces):
        path = corpus.source(int(piece))
        key = next((k for k in keys if path.startswith(k)), None)
        if key is not None:
            out[n] = weights[key]
    return out
