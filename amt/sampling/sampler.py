"""Anticipatory generation: sample events with a causal LM while controls are fed ``DELTA`` ahead of time.

The sequence the model reads is a flag (``ANTICIPATE`` when there are controls, else ``AUTOREGRESS``) and
then triples: events (time, duration, note) and controls (the same, shifted by ``CONTROL_OFFSET``). A
control sounding at time ``c`` enters the sequence right after the first event whose onset reaches
``c - DELTA``; during generation, as soon as the newest event's onset passes that point, the pending
controls are fed (teacher-forced) before the next event is sampled.

Decoding is batched and lockstep: every row (variation or candidate) consumes one token per model step,
either sampled or forced, so all rows sit at the same position of a triple and the KV cache (or Mamba state)
advances for the whole batch at once. Rows that finish leave the batch (``state.select``).

The window: time tokens are relative to the sequence start and must stay below ``MAX_TIME``, and a GPT has
``max_positions`` tokens. When either would overflow, every row keeps a suffix of whole triples (plus the
controls it was fed that have not sounded yet), times are re-based so the window starts at 0, and the
cache is re-filled once with the shortened sequences; decoding then continues one token at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch

from amt.errors import GenerationError
from amt.models.base import CausalLM
from amt.sampling import attributes, constraints
from amt.sampling.constraints import Constraint, NoteChoice, Setup
from amt.sampling.constraints.base import HOOKS, overrides
from amt.sampling.masks import (
    BLOCKS,
    DURATION_POSITION,
    NOTE_POSITION,
    TIME_POSITION,
    note_filter,
    note_mask,
    range_mask,
    relative_to_best_note,
    sample,
)
from amt.sampling.options import SamplingOptions
from amt.tokenization import ops
from amt.tokenization.notes import (
    CONTROL_DURATIONS,
    CONTROL_NOTES,
    CONTROL_TIMES,
    EVENT_DURATIONS,
    EVENT_NOTES,
    EVENT_TIMES,
    event_span,
    is_control,
    onset_ticks,
)
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import (
    ANTICIPATE,
    AUTOREGRESS,
    DELTA,
    DRUMS,
    EVENT_SIZE,
    MAX_DUR,
    MAX_INSTR,
    MAX_TIME,
    REST,
    REST_INTERVAL,
    TIME_RESOLUTION,
    VOCAB_SIZE,
)

Callback = Callable[[int, np.ndarray, float], None]
"""``callback(variation, event, progress)``: a new note (absolute-tick event tokens) and progress 0..1."""
Check = Callable[[], None]
"""``check()``: called before every decoding step; whatever it raises stops the run (deadlines, cancels)."""

TIME_LIMIT = MAX_TIME - DELTA
"""Sampled onsets stay below this relative time, so every control fed later still has a valid time token."""
HEADROOM = 10 * TIME_RESOLUTION
"""The window slides once the newest onset comes within this many ticks of ``TIME_LIMIT``."""
KEEP_SPAN = TIME_LIMIT // 2
"""After a slide a window reaches at most this far back in time from the newest onset."""
MAX_EVENTS_PER_SECOND = 100
"""A row stops after this many events per second of the span: a guard against a model that never moves on."""


def window_size(model: torch.nn.Module, window: int | None = None) -> int | None:
    """Tokens of context used: ``window`` capped by the model's ``max_positions``; None when unbounded."""
    limit = getattr(model, "max_positions", None)
    if window is not None:
        if window < 1 + 2 * EVENT_SIZE:
            raise GenerationError(f"a window of {window} tokens is too short (at least {1 + 2 * EVENT_SIZE})")
        limit = window if limit is None else min(limit, window)
    return limit


def control_limit(window: int | None) -> int | None:
    """Most controls that may sound within any ``DELTA`` interval: they must all fit in the window at once,
    with room left for the events around them."""
    if window is None:
        return None
    triples = (window - 1) // EVENT_SIZE
    return triples - max(2, triples // 8)


def _check_events(events: np.ndarray, name: str, *, control: bool) -> np.ndarray:
    events = np.asarray(events, dtype=np.int64).reshape(-1, EVENT_SIZE)
    times, durations, notes = ((CONTROL_TIMES, CONTROL_DURATIONS, CONTROL_NOTES) if control
                               else (EVENT_TIMES, EVENT_DURATIONS, EVENT_NOTES))
    time = times.value(events[:, 0])
    bad_note = ~notes.holds(events[:, 2]) & (control | (events[:, 2] != REST))  # events may be RESTs
    if len(events) and ((time < 0).any() or (~durations.holds(events[:, 1])).any() or bad_note.any()):
        kind = "control (the control offset + event)" if control else "event"
        raise GenerationError(f"{name} must hold {kind} token triples with absolute times")
    order = np.argsort(time, kind="stable")
    return events[order]


def check_control_density(control_times: np.ndarray, window: int | None) -> None:
    """Raise GenerationError when more controls sound within ``DELTA`` than the window can hold."""
    limit = control_limit(window)
    if limit is None or len(control_times) <= limit:
        return
    # Controls sounding in [c, c + DELTA] for each control c (the times are sorted).
    ahead = np.searchsorted(control_times, control_times + DELTA, side="right")
    ahead -= np.arange(len(control_times))
    worst = int(ahead.max())
    if worst > limit:
        at = control_times[int(ahead.argmax())] / TIME_RESOLUTION
        raise GenerationError(
            f"{worst} kept notes sound within {DELTA // TIME_RESOLUTION} s (from {at:.2f} s), more than the "
            f"{limit} the model's {window}-token window can hold: keep fewer notes or a shorter passage"
        )


class Decoder:
    """Lockstep batched decoding of ``rows`` sequences sharing a prompt and a control stream, under the
    ``constraints`` (``amt.sampling.constraints``), which it knows only through their hooks.

    What constraints may read: ``now`` / ``base`` ``[rows]`` (each row's newest onset and its window's
    tick 0), ``start`` / ``end`` (the span), ``generated`` (each row's new notes as they will sound),
    ``device``."""

    def __init__(self, model: CausalLM, *, prompt: np.ndarray, controls: np.ndarray, fed: int, start: int,
                 end: int, options: SamplingOptions, rows: int, callback: Callback | None, window: int | None,
                 constraints: Callable[[Setup], list[Constraint]], time_map: TimeMap,
                 grid_step: Fraction | float | None, check: Check | None = None):
        self.model, self.options, self.start, self.end = model, options, start, end
        self.window, self.callback, self.check = window, callback, check
        self.device = next(model.parameters()).device
        self.controls = controls
        self.control_times = onset_ticks(controls) if len(controls) else np.zeros(0, dtype=np.int64)
        self.flag = ANTICIPATE if len(controls) else AUTOREGRESS
        self.generator = torch.Generator(device=self.device)
        if options.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(options.seed)
        self.allowed_notes = note_filter(options.instruments, options.pitch_range, self.device)
        self.max_events = int(MAX_EVENTS_PER_SECOND * (end - start) / TIME_RESOLUTION) + 64

        prompt_events = prompt[~is_control(prompt)]
        setup = Setup(options=options, start=start, end=end, rows=rows,
                      kept=np.concatenate([prompt_events, ops.from_controls(controls)]),
                      allowed_notes=self.allowed_notes, time_map=time_map, grid_step=grid_step,
                      device=self.device)
        self.constraints = constraints(setup)
        self.notes = setup.notes  # lines on what the constraints switched off and why
        # Each hook's constraints, in registry order: a hook no constraint implements costs nothing per step.
        self.hooks = {hook: [c for c in self.constraints if overrides(c, hook)] for hook in HOOKS}

        now = int(onset_ticks(prompt_events).max()) if len(prompt_events) else 0
        self.row_id = np.arange(rows)
        self.windows = [prompt.copy() for _ in range(rows)]
        self.now = np.full(rows, now, dtype=np.int64)
        self.base = np.zeros(rows, dtype=np.int64)
        self.next_control = np.full(rows, fed, dtype=np.int64)
        self.counts = np.zeros(rows, dtype=np.int64)  # sampled events (RESTs included)
        self.generated: list[list[np.ndarray]] = [[] for _ in range(rows)]
        self.finished: dict[int, list[np.ndarray]] = {}
        self.state = None
        self.hidden = None  # [rows, D]: the final hidden state of each row's newest token
        capacity = None if window is None else (window - 1) // EVENT_SIZE
        self._refill(None if capacity is None else capacity * 3 // 4)

    # -- the window ---------------------------------------------------------------------------------------
    def _refill(self, keep: int | None) -> None:
        """Shorten every row's window to ``keep`` triples (or what the time range allows), re-base its times
        and re-fill the model state with the new sequences."""
        rows = len(self.windows)
        plans = []
        for r in range(rows):
            triples, now = self.windows[r], int(self.now[r])
            times = onset_ticks(triples)
            # Controls fed but not yet sounded stay: the model must not forget what is coming.
            must = is_control(triples) & (times > now)
            old = np.flatnonzero(times < now - KEEP_SPAN)
            in_span = len(triples) - (int(old[-1]) + 1 if len(old) else 0)
            plans.append((must, in_span))
        # Rows must keep the same number of triples (one batched prefill, same positions).
        target = min(int(must.sum()) + int((~must[len(must) - span:]).sum()) for must, span in plans)
        if keep is not None:
            target = min(target, keep)
        target = max(target, max(int(must.sum()) for must, _ in plans))
        for r, (must, _) in enumerate(plans):
            triples = self.windows[r]
            # Take the shortest suffix that, with the must-keep controls before it, gives `target` triples.
            extra = np.cumsum(~must[::-1])  # triples a suffix of length j adds beyond the must-keep ones
            j = int(np.searchsorted(extra, target - int(must.sum()))) + 1 if target > must.sum() else 0
            kept = must.copy()
            if j:
                kept[len(kept) - j:] = True
            triples = triples[kept]
            times = onset_ticks(triples)
            frontier = max(int(self.now[r]), self.start)
            base = int(min(times.min(), frontier)) if len(times) else frontier
            if frontier - base > TIME_LIMIT - HEADROOM or (len(times) and times.max() - base >= MAX_TIME):
                raise GenerationError("the kept notes around the generation point span more time than the "
                                      "model's window can hold: keep fewer notes")
            self.windows[r], self.base[r] = triples, base
        self._prefill()

    def _prefill(self) -> None:
        """Feed the flag and every row's window to a fresh model state."""
        rows = len(self.windows)
        tokens = np.full((rows, 1 + EVENT_SIZE * len(self.windows[0])), self.flag, dtype=np.int64)
        for r, triples in enumerate(self.windows):
            relative = triples.copy()
            relative[:, 0] -= self.base[r]
            tokens[r, 1:] = relative.reshape(-1)
        # Rows often share their window (all of them at the start): run each distinct one once.
        distinct, copies = np.unique(tokens, axis=0, return_inverse=True)
        if len(distinct) == rows:
            distinct = tokens
        state = self.model.init_state(len(distinct))
        hidden, state = self.model.advance(torch.from_numpy(distinct).to(self.device), state)
        self.state, self.hidden = state, hidden[:, -1]
        if len(distinct) < rows:
            index = torch.from_numpy(copies.reshape(-1)).to(self.device)
            self.state, self.hidden = state.select(index), self.hidden[index]

    def _needs_slide(self) -> bool:
        length = 1 + EVENT_SIZE * len(self.windows[0])
        if self.window is not None and length + EVENT_SIZE > self.window:
            return True
        frontier = np.maximum(self.now, self.start) - self.base
        return bool((frontier > TIME_LIMIT - HEADROOM).any())

    # -- decoding -----------------------------------------------------------------------------------------
    def _forcing(self) -> np.ndarray:
        pending = self.next_control < len(self.controls)
        due = np.zeros(len(self.now), dtype=bool)
        due[pending] = self.control_times[self.next_control[pending]] - DELTA <= self.now[pending]
        return due

    def _time_bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Absolute onset range ``[low, high]`` of the next event of each row, and whether the row must wait
        (emit a REST) because no onset in that range can take a note that meets the constraints."""
        low = np.maximum(self.now, self.start)
        # The training data never leaves more than REST_INTERVAL between onsets (silences are padded with
        # RESTs), so neither does the sampler; an onset at or after `end` means the row is done.
        high = np.minimum(low + REST_INTERVAL, self.base + TIME_LIMIT - 1)
        # No note may start before the constraints allow (a free voice, a free monophonic part).
        note_low = low.copy()
        for constraint in self.hooks["earliest_note"]:
            note_low = constraint.earliest_note(self, note_low)
        # A soft range (a density target) only narrows the range, and yields where it cannot be met.
        soft_low, soft_high = note_low.copy(), high.copy()
        for constraint in self.hooks["onset_range"]:
            soft_low, soft_high = constraint.onset_range(self, soft_low, soft_high)
        wait = soft_low > high
        ok = soft_low <= soft_high
        return np.where(ok, soft_low, np.minimum(note_low, high)), np.where(ok, soft_high, high), wait

    def _step(self, tokens: np.ndarray) -> None:
        """Advance every row by one token (``tokens`` ``[rows]``) or several (``[rows, k]``)."""
        ids = torch.from_numpy(tokens).to(self.device).reshape(len(tokens), -1)
        hidden, self.state = self.model.advance(ids, self.state)
        self.hidden = hidden[:, -1]

    def _sample(self, position: int, mask: torch.Tensor, log_weights: torch.Tensor | None = None
                ) -> np.ndarray:
        """Draw a token of the block at ``position`` per row, among those ``mask`` ``[rows, size]`` allows,
        each token's probability multiplied by ``exp(log_weights)`` where given.

        Only the output rows some row may draw are computed (the onsets within a second, the notes of the
        allowed instruments): the full 55,028-token output layer would cost more than the whole network."""
        first, _ = BLOCKS[position]
        columns = mask.any(dim=0).nonzero().squeeze(1)
        weight = self.model.output_weight()
        low, high = (int(columns[0]), int(columns[-1]) + 1) if len(columns) else (0, 0)
        if 2 * len(columns) >= high - low > 0:
            # Most of the span may be drawn (free sampling allows nearly all 16,512 note rows): multiply by a
            # view of the contiguous block and pick the columns after, rather than copy the rows (12.7 MB
            # per note step for the built-in model) before.
            logits = (self.hidden @ weight[first + low : first + high].T)[:, columns - low]
        else:
            logits = self.hidden @ weight[first + columns].T
        drawn = sample(logits, mask[:, columns], temperature=self.options.temperature,
                       top_p=self.options.top_p, generator=self.generator,
                       log_weights=None if log_weights is None else log_weights[:, columns])
        return columns[drawn].cpu().numpy() + first

    def _keep_rows(self, keep: np.ndarray) -> None:
        for r in np.flatnonzero(~keep):
            for constraint in self.hooks["settle"]:
                constraint.settle(self, r, until=None)
            self.finished[int(self.row_id[r])] = self.generated[r]
        index = np.flatnonzero(keep)
        if not len(index):
            self.row_id = self.row_id[index]
            return
        self.state = self.state.select(torch.from_numpy(index).to(self.device))
        self.hidden = self.hidden[torch.from_numpy(index).to(self.hidden.device)]
        self.row_id, self.now, self.base = self.row_id[index], self.now[index], self.base[index]
        self.next_control, self.counts = self.next_control[index], self.counts[index]
        self.windows = [self.windows[i] for i in index]
        self.generated = [self.generated[i] for i in index]
        for constraint in self.hooks["select"]:
            constraint.select(index)

    def run(self) -> list[np.ndarray]:
        """Decode until every row has sampled an onset at or after ``end``; new events per row."""
        while len(self.row_id):
            if self.check is not None:
                self.check()
            if self._needs_slide():
                capacity = None if self.window is None else (self.window - 1) // EVENT_SIZE
                self._refill(None if capacity is None else capacity // 2)
            forcing = self._forcing()
            control = self.controls[np.where(forcing, self.next_control, 0)] if len(self.controls) else None
            if forcing.all():
                # Every row is fed a control here: its three tokens go through the model in one call.
                tokens = control.copy()
                tokens[:, 0] -= self.base
                self._step(tokens)
                self._record(forcing, control)
                continue

            low, high, wait = self._time_bounds()
            mask = range_mask(torch.from_numpy(low - self.base).to(self.device),
                              torch.from_numpy(high - self.base).to(self.device), MAX_TIME)
            for constraint in self.hooks["onset_mask"]:
                mask, wait = constraint.onset_mask(self, mask, wait)
            time_token = self._sample(TIME_POSITION, mask)
            if wait.any():
                # A row that must wait writes its REST as late as it may: time passes (as with the REST
                # padding of the training data), rather than at an onset the model happened to draw.
                latest = mask.shape[1] - 1 - mask.flip(1).int().argmax(dim=1).cpu().numpy()
                time_token = np.where(wait, EVENT_TIMES.token(latest), time_token)
            onset = EVENT_TIMES.value(time_token) + self.base
            done = ~forcing & ((onset >= self.end) | (self.counts >= self.max_events))
            if done.any():
                keep = ~done
                self._keep_rows(keep)
                forcing, onset, time_token, wait = forcing[keep], onset[keep], time_token[keep], wait[keep]
                control = control[keep] if control is not None else None
                if not len(self.row_id):
                    break
            if forcing.any():
                time_token = np.where(forcing, control[:, 0] - self.base, time_token)
            self._step(time_token)

            rows = len(self.row_id)
            durations = torch.ones(rows, MAX_DUR, dtype=torch.bool, device=self.device)
            for constraint in self.hooks["duration_mask"]:
                durations = constraint.duration_mask(self, durations, onset)
            dur_token = self._sample(DURATION_POSITION, durations)
            if forcing.any():
                dur_token = np.where(forcing, control[:, 1], dur_token)
            self._step(dur_token)

            notes, log_weights = self._note_mask(onset, EVENT_DURATIONS.value(dur_token), wait)
            note_token = self._sample(NOTE_POSITION, notes, log_weights)
            if forcing.any():
                note_token = np.where(forcing, control[:, 2], note_token)
            self._step(note_token)
            self._record(forcing, control, onset, dur_token, note_token)
        return [np.asarray(self.finished[r], dtype=np.int64).reshape(-1, EVENT_SIZE)
                for r in sorted(self.finished)]

    def _note_mask(self, onset: np.ndarray, duration: np.ndarray, wait: np.ndarray
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The note block's mask per row and the log-weights of the constraints (None when unused)."""
        rows = len(onset)
        # A zero duration only makes sense for REST (that is how the tokenizer pads silences).
        choice = NoteChoice(onset=onset, duration=duration, note_ok=(duration > 0) & ~wait,
                            instrument_ok=np.ones((rows, MAX_INSTR), dtype=bool),
                            rest_ok=np.ones(rows, dtype=bool))
        for constraint in self.hooks["note_choice"]:
            constraint.note_choice(self, choice)
        log_weights = choice.log_weights
        if choice.pitch_weights is not None:
            # The same pitch weights for every pitched instrument; drums and REST are exempt.
            per_note = np.tile(choice.pitch_weights[:, None, :], (1, MAX_INSTR, 1))
            per_note[:, DRUMS] = 0.0
            pitch_t = np.concatenate([per_note.reshape(rows, -1), np.zeros((rows, 1))], axis=1)
            pitch_t = torch.from_numpy(pitch_t).float().to(self.device)
            log_weights = pitch_t if log_weights is None else log_weights + pitch_t
        mask = note_mask(self.allowed_notes, torch.from_numpy(choice.instrument_ok).to(self.device),
                         torch.from_numpy(choice.rest_ok).to(self.device),
                         torch.from_numpy(choice.note_ok).to(self.device), choice.notes_ok)
        return mask, None if log_weights is None else relative_to_best_note(log_weights, mask)

    def _record(self, forcing, control, onset=None, dur_token=None, note_token=None) -> None:
        """Append each row's new triple to its window: the control it was fed, or the event it sampled."""
        for r in range(len(self.row_id)):
            if forcing[r]:
                triple = control[r]
                self.next_control[r] += 1
            else:
                triple = np.array([EVENT_TIMES.token(onset[r]), dur_token[r], note_token[r]], dtype=np.int64)
                self.now[r] = onset[r]
                self.counts[r] += 1
                if note_token[r] != REST:
                    self._add_note(r, triple)
                for constraint in self.hooks["settle"]:
                    constraint.settle(self, r, until=int(self.now[r]))
            self.windows[r] = np.vstack([self.windows[r], triple[None]])

    def _add_note(self, r: int, triple: np.ndarray) -> None:
        """Book a new note of row ``r``: every constraint hears it (one may change an earlier note's end, see
        ``constraints.monophonic``), and the callback gets it unless a constraint holds it back for now."""
        self.generated[r].append(triple)
        for constraint in self.hooks["hear"]:
            constraint.hear(self, r, triple)
        if not any(constraint.holds(triple) for constraint in self.hooks["holds"]):
            self.report(r, triple)

    def report(self, r: int, triple: np.ndarray) -> None:
        """Give row ``r``'s new note ``triple`` to the callback (with the variation's number and progress)."""
        if self.callback is not None:
            onset, _ = event_span(triple)
            progress = min(max((onset - self.start) / (self.end - self.start), 0.0), 1.0)
            self.callback(int(self.row_id[r]), triple.copy(), float(progress))


def generate(model: CausalLM, *, history: np.ndarray, controls: np.ndarray, start_time: int, end_time: int,
             options: SamplingOptions | None = None, variations: int = 1, callback: Callback | None = None,
             window: int | None = None, time_map: TimeMap | None = None, grid_step: float | None = None,
             notes: list[str] | None = None, check: Check | None = None) -> list[np.ndarray]:
    """Sample new notes in ``[start_time, end_time)`` (ticks) given a prompt and anticipated controls.

    ``history``: event tokens (absolute ticks) before ``start_time``, the prompt. ``controls``: control tokens
    (``CONTROL_OFFSET`` + events, absolute ticks), fed ``DELTA`` ahead of their onsets. Returns, per
    variation, the new notes as an ``(N, 3)`` event array in absolute ticks (ordered by onset; the RESTs the
    model uses to mark silence are dropped). ``variations`` are one batched run (``options.candidates``
    samples each, the closest to the attribute targets kept). ``callback(variation, event, progress)`` is
    called for every new note as it is sampled (with candidates, once the winners are known; a monophonic
    part's note once its length is settled, by the part's next note or the passing of its end). ``window``
    caps the tokens of context (default: the model's ``max_positions``). ``time_map``: the piece's tempo
    and meter in model ticks (``TimeMap``; default ``TimeMap()``, 120 bpm in 4/4 with unknown bar lines):
    ``options.grid`` (steps per quarter note) lies on it, and the beats and bar lines that
    ``options.beat_parallels`` and ``options.chord_weight`` weigh are its. ``grid_step``: quarter notes
    between grid lines, in place of ``options.grid`` (a DAW's grid, given in beats).
    ``notes``, when given, receives a line for each musical weight that was switched off and why.
    ``check()`` runs before every decoding step, candidates or not: what it raises ends the run (a server's
    deadline or cancellation; the callback alone would not, as it is held back while candidates compete).
    """
    options = options or SamplingOptions()
    options.validate()
    if getattr(model, "vocab_size", VOCAB_SIZE) != VOCAB_SIZE:
        raise GenerationError(f"the model has {model.vocab_size} tokens, not the AMT vocabulary's "
                              f"{VOCAB_SIZE}")
    if variations < 1:
        raise GenerationError(f"variations must be at least 1, got {variations}")
    if not 0 <= start_time < end_time:
        raise GenerationError(f"empty generation span: start {start_time} and end {end_time} ticks")
    span = (end_time - start_time) / TIME_RESOLUTION
    if span > options.max_seconds:
        raise GenerationError(f"the music to write lasts {span:,.0f} s ({span / 60:,.1f} min), over the cap "
                              f"of max_seconds = {options.max_seconds:g} s: raise the cap to write it "
                              "(amt commands: --max-seconds)")
    history = _check_events(history, "history", control=False)
    controls = _check_events(controls, "controls", control=True)
    if len(history) and EVENT_TIMES.value(int(history[-1, 0])) > start_time:
        raise GenerationError("history events must start before start_time")
    # A control is fed DELTA before it sounds, after an onset below end_time: later ones are never read.
    controls = controls[onset_ticks(controls) < end_time + DELTA]
    window = window_size(model, window)
    check_control_density(onset_ticks(controls), window)

    prompt = ops.pad(history, start_time)
    sequence, pending = ops.interleave(prompt, controls, DELTA)
    sequence = np.asarray(sequence, dtype=np.int64).reshape(-1, EVENT_SIZE)

    if grid_step is None and options.grid:
        grid_step = Fraction(1, options.grid)

    candidates = options.candidates
    live = callback if candidates == 1 else None
    decoder = Decoder(model, prompt=sequence, controls=controls, fed=len(controls) - len(pending),
                       start=start_time, end=end_time, options=options, rows=variations * candidates,
                       callback=live, window=window, constraints=constraints.build,
                       time_map=TimeMap() if time_map is None else time_map, grid_step=grid_step, check=check)
    if notes is not None:
        notes.extend(decoder.notes)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            rows = decoder.run()
    finally:
        model.train(was_training)
    if candidates == 1:
        return rows
    chosen = []
    for v in range(variations):
        group = rows[v * candidates:(v + 1) * candidates]
        scores = [attributes.distance(g, start_time, end_time, options.density, options.polyphony)
                  for g in group]
        best = group[int(np.argmin(scores))]
        chosen.append(best)
        if callback is not None:
            for event in best:
                progress = (EVENT_TIMES.value(int(event[0])) - start_time) / (end_time - start_time)
                callback(v, event.copy(), float(min(max(progress, 0.0), 1.0)))
    return chosen

