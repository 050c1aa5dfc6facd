"""The protocol every decoding constraint implements, and what a constraint is told when it is built.

The decoding engine (``amt.sampling.sampler``) knows the window, the controls, the KV cache and the rows of
the batch, but no musical rule. Each rule (instrument budget, polyphony, density, monophonic parts, grid,
parallels, key, chord, register) is a ``Constraint``: an object that holds its own per-row state and is
asked, at fixed points of every event triple, to narrow what the next token may be. The hooks are:

- ``earliest_note``: the earliest onset at which a row may start a note (a hard bound: the row writes a
  REST until then); ``onset_range``: a soft range of onsets that yields where it cannot be met (density).
- ``onset_mask``: restrict the time block's mask (a grid), possibly making rows wait.
- ``duration_mask``: restrict the duration block's mask for each row's onset.
- ``note_choice``: restrict or weigh the note block (instruments, REST, pitches, log-weights added before
  nucleus truncation) through a ``NoteChoice``.
- ``hear``: a row drew a note (update state; a constraint may change a previous note's end, see
  ``monophonic``); ``holds``: whether a note's report to the callback waits (its end may still change);
  ``settle``: report such notes once final.
- ``select``: rows left the batch; keep the state of the rows in ``index``.

Hooks default to doing nothing, and the engine only calls the ones a constraint overrides, so a constraint
that is off costs nothing per step. Constraints are called in registry order (``constraints.REGISTRY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch

from amt.sampling.options import SamplingOptions
from amt.tokenization import ops
from amt.tokenization.notes import EVENT_NOTES, end_ticks, event_span, onset_ticks
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import DRUMS, EVENT_SIZE, MAX_DUR, MAX_PITCH, MAX_TIME

if TYPE_CHECKING:
    from amt.sampling.sampler import Decoder

REACH = MAX_TIME + MAX_DUR
"""Ticks past the generation span that a grid or the beats must cover: every onset and note end the masks
can reach."""


@dataclass
class Setup:
    """What a constraint may read when it is built: the request and the music the rows share."""

    options: SamplingOptions
    start: int  # first tick of the span to write
    end: int  # end tick (exclusive) of the span
    rows: int  # rows of the batch (variations x candidates)
    kept: np.ndarray  # (N, 3) events the rows share: the prompt (with its RESTs) and the controls as events
    allowed_notes: torch.Tensor  # [MAX_NOTE + 1] the request's note filter (masks.note_filter)
    time_map: TimeMap  # the piece's tempo and meter (model ticks <-> beats and bars)
    grid_step: Fraction | float | None  # quarter notes between grid lines (None: free timing)
    device: torch.device
    notes: list[str] = field(default_factory=list)  # lines on what was switched off and why

    @cached_property
    def beats(self) -> tuple[np.ndarray, np.ndarray]:
        """(ticks, strong) of the time map's beats as far as decoding can reach (see ``TimeMap.beats``)."""
        return self.time_map.beats(self.end + REACH)

    @cached_property
    def kept_pitched(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(onsets, ends, pitches) of the kept pitched notes (no drums, no RESTs)."""
        kept = self.kept[~ops.is_rest(self.kept)] if len(self.kept) else self.kept.reshape(0, EVENT_SIZE)
        kept = kept[ops.instrument_of(kept[:, 2]) != DRUMS]
        return onset_ticks(kept), end_ticks(kept), ops.pitch_of(kept[:, 2])


RECENT = 32
"""New notes of a row looked at for what sounds at a tick: more than any chord and its held notes."""


def new_sounding(decoder: Decoder, row: int, tick: int) -> list[tuple[int, int]]:
    """(onset, pitch) of row ``row``'s new pitched notes sounding at ``tick`` (drums left out)."""
    sounding = []
    for t in decoder.generated[row][-RECENT:]:
        onset, end = event_span(t)
        note = EVENT_NOTES.value(int(t[2]))
        if onset <= tick < end and note // MAX_PITCH != DRUMS:
            sounding.append((onset, note % MAX_PITCH))
    return sounding


def sounding_pitches(decoder: Decoder, row: int, tick: int,
                     kept: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[int]:
    """The pitches sounding at ``tick`` in row ``row``: the kept pitched notes ``(onsets, ends, pitches)``
    (``Setup.kept_pitched``) and the row's new pitched ones."""
    onsets, ends, pitches = kept
    held = pitches[(onsets <= tick) & (tick < ends)]
    return [*held.tolist(), *(pitch for _, pitch in new_sounding(decoder, row, tick))]


@dataclass
class NoteChoice:
    """What each row may draw in the note block, filled in by the constraints' ``note_choice`` hooks."""

    onset: np.ndarray  # [rows] absolute onset tick of the note being drawn
    duration: np.ndarray  # [rows] its duration in ticks (drawn before the note)
    note_ok: np.ndarray  # [rows] whether a real note may be drawn at all (a duration above 0, no wait)
    instrument_ok: np.ndarray  # [rows, MAX_INSTR] the instruments each row may use here
    rest_ok: np.ndarray  # [rows] whether REST may be drawn
    notes_ok: torch.Tensor | None = None  # [rows, MAX_NOTE] the notes each row may draw (None: all)
    log_weights: torch.Tensor | None = None  # [rows, MAX_NOTE + 1] added to the scores (None: none)
    pitch_weights: np.ndarray | None = None  # [rows, MAX_PITCH] float64 log-weights for every pitched part

    def weigh_pitches(self) -> np.ndarray:
        """The pitch log-weights ``[rows, MAX_PITCH]`` shared by every pitched instrument (drums and REST are
        exempt), created at 0 on first use; constraints add theirs in place."""
        if self.pitch_weights is None:
            self.pitch_weights = np.zeros((len(self.onset), MAX_PITCH))
        return self.pitch_weights


class Constraint:
    """A rule on new notes; override the hooks it needs (see the module doc). ``decoder`` gives the rows'
    shared state: ``now``, ``base``, ``start``, ``end``, ``generated`` (each row's new notes as they will
    sound), ``device`` and ``report(row, triple)``."""

    def earliest_note(self, decoder: Decoder, low: np.ndarray) -> np.ndarray:
        """Earliest onset ``[rows]`` at which each row may start a note, given the bound so far ``low``."""
        return low

    def onset_range(self, decoder: Decoder, low: np.ndarray, high: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A preferred onset range ``[low, high]`` per row within the one so far; the engine drops it for
        rows where it is empty."""
        return low, high

    def onset_mask(self, decoder: Decoder, mask: torch.Tensor, wait: np.ndarray
                   ) -> tuple[torch.Tensor, np.ndarray]:
        """Restrict the time block's mask ``[rows, MAX_TIME]`` (column j: tick ``base + j``); rows in ``wait``
        write a REST at their latest allowed time."""
        return mask, wait

    def duration_mask(self, decoder: Decoder, mask: torch.Tensor, onset: np.ndarray) -> torch.Tensor:
        """Restrict the duration block's mask ``[rows, MAX_DUR]`` for notes starting at ``onset``."""
        return mask

    def note_choice(self, decoder: Decoder, choice: NoteChoice) -> None:
        """Restrict or weigh the note block in ``choice`` (in place)."""

    def hear(self, decoder: Decoder, row: int, triple: np.ndarray) -> None:
        """Row ``row`` drew the note ``triple`` (absolute ticks; the engine's own array, in its new notes)."""

    def holds(self, triple: np.ndarray) -> bool:
        """Whether the callback's report of a new note waits until ``settle`` (its end may still change)."""
        return False

    def settle(self, decoder: Decoder, row: int, until: int | None) -> None:
        """Report (``decoder.report``) the held notes of ``row`` that can no longer change by tick
        ``until``; all of them when the row is done (None)."""

    def select(self, index: np.ndarray) -> None:
        """Keep the state of the rows in ``index`` (rows that finished leave the batch)."""


class BeatWeight(Constraint):
    """A weight on new pitched notes, from the pitches sounding (kept and the row's new ones) on the time
    map's beats that each note sounds through: the chord weight and the harmony prior. A note struck on a
    beat is weighed there; a note held over later beats is weighed on each of them too, against what is
    known to sound there (the kept melody, and new notes already drawn that reach it), since a held note
    that fits where it starts may clash where the melody moves on. A subclass says when it is on (``on``),
    what it is called in the notes (``name``) and does without bar starts (``unmetered``), and gives its
    pitch log-weights (``log_weights``); a note that sounds through no beat is not weighed."""

    name: str
    unmetered: str

    def __init__(self, setup: Setup, ticks: np.ndarray, strong: np.ndarray):
        self.options = setup.options
        self.kept = setup.kept_pitched
        self.ticks, self.strong = ticks, strong  # the beats, and whether each starts a bar

    @classmethod
    def on(cls, options: SamplingOptions) -> bool:
        """Whether ``options`` ask for this weight."""
        raise NotImplementedError

    @classmethod
    def build(cls, setup: Setup) -> BeatWeight | None:
        if not cls.on(setup.options):
            return None
        ticks, strong = setup.beats
        if not len(ticks):
            setup.notes.append(f"{cls.name} off: no beats")
            return None
        if not strong.any():
            setup.notes.append(f"{cls.name}: no strong beats (no meter), {cls.unmetered}")
        return cls(setup, np.asarray(ticks), np.asarray(strong, dtype=bool))

    def log_weights(self, sounding: list[int], strong: bool) -> np.ndarray | None:
        """Log-weights ``[MAX_PITCH]`` for a new note on a beat (a bar start if ``strong``) while the pitches
        ``sounding`` sound; None: nothing to weigh."""
        raise NotImplementedError

    def note_choice(self, decoder: Decoder, choice: NoteChoice) -> None:
        first = np.searchsorted(self.ticks, choice.onset, side="left")
        last = np.searchsorted(self.ticks, choice.onset + choice.duration, side="left")
        for r in np.flatnonzero(choice.note_ok & (last > first)):
            total = None
            for b in range(first[r], last[r]):
                tick = int(self.ticks[b])
                sounding = sounding_pitches(decoder, r, tick, self.kept)
                weights = self.log_weights(sounding, bool(self.strong[b]))
                if weights is not None:
                    total = weights if total is None else total + weights
            if total is not None:
                # Relative to the best pitch over all the beats: the weight moves mass among pitches, never
                # onto REST (summed, each beat's best may differ, and every pitch would lose to silence).
                choice.weigh_pitches()[r] += total - total.max()


HOOKS = ("earliest_note", "onset_range", "onset_mask", "duration_mask", "note_choice", "hear", "holds",
         "settle", "select")
"""The hooks of ``Constraint``, each called by the engine on the constraints that implement it."""


def overrides(constraint: Constraint, hook: str) -> bool:
    """Whether ``constraint`` implements ``hook`` (the engine skips the defaults)."""
    return getattr(type(constraint), hook) is not getattr(Constraint, hook)
