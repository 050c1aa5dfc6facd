"""From a DAW request to the sampler and back: locked notes, the region in model ticks, new notes in beats.

All three tasks are one operation here: the model keeps the locked notes (those before the region as its
history, those from the region start on as anticipated controls) and writes new notes inside the region.
The tasks differ in their defaults: infill locks everything outside the region, continue everything before
it; accompany locks what the request names (tracks or note ids) and needs at least one locked note.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from amt.plugins.instruments import DRUM_CHANNEL, instrument_name, resolve_instrument
from amt.plugins.protocol import GenerateRequest, OutNote, RequestError, Variation
from amt.tokenization import ops
from amt.tokenization.notes import EVENT_DURATIONS, EVENT_NOTES, EVENT_TIMES
from amt.tokenization.timemap import TimeMap, TimeMapError
from amt.tokenization.vocab import (
    DELTA_SECONDS,
    DRUMS,
    MAX_DUR,
    MAX_PITCH,
    TIME_RESOLUTION,
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server (each bound keeps a single request from hogging it)."""

    max_body_bytes: int = 2 * 1024 * 1024
    max_notes: int = 20_000
    max_region_seconds: float = 60.0
    context_seconds: float = 30.0
    """How much music before the region the model sees (the published models saw ~100 s windows)."""
    timeout_seconds: float = 120.0
    """A generation running longer is stopped (504); a request waiting longer in the queue gets 503."""
    queue_size: int = 16
    """Requests that may wait while one runs; more get 503 busy."""


@dataclass
class Plan:
    """A validated request in model terms: event arrays in ticks relative to ``offset`` ticks."""

    request: GenerateRequest
    tempo: TimeMap  # the project's tempo and meter, in beats from its start
    region: tuple[float, float]  # beats
    history: np.ndarray  # (N, 3) locked events before the region
    controls: np.ndarray  # (M, 3) locked events from the region start on (event tokens, not yet controls)
    start_tick: int
    end_tick: int
    offset: int  # model tick 0 is this many 10 ms ticks after the project start
    locked_ids: list[str | int]
    replaced_ids: list[str | int]
    tracks: dict[int, str | int]  # model instrument -> id of the request track that plays it
    channels: dict[int, int]  # model instrument -> MIDI channel 1-16 (grows as new instruments appear)
    velocities: dict[int, int]  # model instrument -> velocity for its new notes
    default_velocity: int
    file_density: float | None  # new notes per second for ``sampling.file_density`` (``_file_density``)


def _events(ticks: np.ndarray, durations: np.ndarray, notes: np.ndarray) -> np.ndarray:
    order = np.argsort(ticks, kind="stable")
    return np.stack([EVENT_TIMES.token(ticks[order]), EVENT_DURATIONS.token(durations[order]),
                     EVENT_NOTES.token(notes[order])], axis=1).astype(np.int64).reshape(-1, 3)


def _file_density(request: GenerateRequest, replaced: np.ndarray, instruments: np.ndarray,
                  region_seconds: float, before: np.ndarray, before_seconds: float) -> float | None:
    """Notes per second for new notes to match when no density is asked: those of the notes they replace
    (``replaced``: unlocked notes in the region; of ``sampling.instruments`` only, when given: a part dropped
    is not to be matched) over the region, as ``accompany`` does; without any (continue, an empty region),
    the locked music's before the region (``before``, over the ``before_seconds`` it spans). None when
    neither has notes."""
    if request.sampling.instruments is not None:
        replaced = replaced & np.isin(instruments, request.sampling.instruments)
    if replaced.any():
        return int(replaced.sum()) / region_seconds
    if before.any() and before_seconds > 0:
        return int(before.sum()) / before_seconds
    return None


def plan_request(request: GenerateRequest, limits: Limits) -> Plan:
    """Check a request against the limits and the maps, and turn its notes into model events.

    Raises ``RequestError`` (4xx) for anything a DAW could get wrong: too many notes, a region too long,
    an unknown track, nothing to accompany.
    """
    if len(request.notes) > limits.max_notes:
        raise RequestError(f"too many notes: {len(request.notes)} (the limit is {limits.max_notes})", 413)
    try:
        tempo = TimeMap.from_beats([(p.beat, p.bpm) for p in request.tempo],
                                   [(t.beat, t.numerator, t.denominator) for t in request.time_signatures])
        if request.region.unit == "bars":
            region = (tempo.bar_to_beat(request.region.start), tempo.bar_to_beat(request.region.end))
        else:
            region = (request.region.start, request.region.end)
    except TimeMapError as error:
        raise RequestError(str(error), 422) from None
    start_s, end_s = (float(tempo.to_seconds(b)) for b in region)
    if end_s - start_s > limits.max_region_seconds:
        raise RequestError(
            f"the region lasts {end_s - start_s:.1f} s; the limit is {limits.max_region_seconds:g} s", 413
        )

    tracks = {str(t.id): t for t in request.tracks}
    ids: list[str | int] = []
    instruments = np.empty(len(request.notes), dtype=np.int64)
    for i, note in enumerate(request.notes):
        ids.append(note.id if note.id is not None else i)
        track = tracks.get(str(note.track))
        if track is None and tracks:
            raise RequestError(f"note {ids[-1]!r} is on track {note.track!r}, which is not in `tracks`", 422)
        instruments[i] = resolve_instrument(
            note.program if note.program is not None else (track.program if track else None),
            note.channel if note.channel is not None else (track.channel if track else None),
            track.name if track else "",
        )
    if len({str(i) for i in ids}) != len(ids):
        raise RequestError("note ids must be unique (a note without an id is known by its index in notes)",
                           422)
    starts = np.array([n.start for n in request.notes], dtype=np.float64)
    ends = starts + np.array([n.duration for n in request.notes], dtype=np.float64)
    in_region = (starts >= region[0]) & (starts < region[1])

    locked_tracks = {str(t) for t in request.locked.tracks}
    unknown = locked_tracks - set(tracks) - {str(n.track) for n in request.notes}
    if unknown:
        raise RequestError(f"locked tracks not in the request: {', '.join(sorted(unknown))}", 422)
    locked_ids = {str(i) for i in request.locked.ids}
    known_ids = {str(i) for i in ids}
    if locked_ids - known_ids:
        raise RequestError(f"locked ids not in the request: {', '.join(sorted(locked_ids - known_ids))}", 422)
    outside = request.locked.outside_region
    if outside is None:
        outside = request.task != "accompany"
    locked = np.array(
        [str(n.track) in locked_tracks or str(i) in locked_ids
         for n, i in zip(request.notes, ids, strict=True)],
        dtype=bool,
    ).reshape(-1)
    if outside:
        # A continuation follows what comes before; music after the region is left out of it.
        locked |= (starts < region[0]) if request.task == "continue" else ~in_region
    if request.task == "accompany" and not locked.any():
        raise RequestError("accompany needs locked notes: name the part to accompany in locked.tracks or "
                           "locked.ids", 422)
    if request.task == "continue" and not (locked & (starts < region[0])).any():
        raise RequestError("continue needs locked notes before the region to continue from", 422)

    # Model ticks are 10 ms from the project start; the offset keeps relative times small while staying a
    # whole number of ticks, so the absolute tick grid (and the beats of the result) do not move.
    ticks = np.rint(tempo.to_seconds(starts) * TIME_RESOLUTION).astype(np.int64) if len(starts) else starts
    end_ticks = np.rint(tempo.to_seconds(ends) * TIME_RESOLUTION).astype(np.int64) if len(ends) else ends
    durations = np.clip(end_ticks - ticks, 1, MAX_DUR - 1)
    start_tick = round(start_s * TIME_RESOLUTION)
    end_tick = round(end_s * TIME_RESOLUTION)
    notes = instruments * MAX_PITCH + np.array([n.pitch for n in request.notes], dtype=np.int64)
    before = locked & (ticks < start_tick) & (ticks >= start_tick - limits.context_seconds * TIME_RESOLUTION)
    after = locked & (ticks >= start_tick) & (ticks < end_tick + DELTA_SECONDS * TIME_RESOLUTION)
    offset = int(ticks[before].min()) if before.any() else start_tick

    velocities = np.array([n.velocity for n in request.notes], dtype=np.int64)
    by_instrument: dict[int, list[int]] = {}
    for instrument, velocity in zip(instruments.tolist(), velocities.tolist(), strict=True):
        by_instrument.setdefault(instrument, []).append(velocity)
    track_of: dict[int, str | int] = {}
    channel_of: dict[int, int] = {}
    for note, instrument in zip(request.notes, instruments.tolist(), strict=True):
        track_of.setdefault(instrument, note.track)
        track = tracks.get(str(note.track))
        channel = note.channel or (track.channel if track else None)
        if channel:
            channel_of.setdefault(instrument, channel)
    return Plan(
        request=request,
        tempo=tempo,
        region=region,
        history=_events(ticks[before] - offset, durations[before], notes[before]),
        controls=_events(ticks[after] - offset, durations[after], notes[after]),
        start_tick=start_tick - offset,
        end_tick=end_tick - offset,
        offset=offset,
        locked_ids=[i for i, keep in zip(ids, locked.tolist(), strict=True) if keep],
        replaced_ids=[i for i, keep, inside in zip(ids, locked.tolist(), in_region.tolist(), strict=True)
                      if inside and not keep],
        tracks=track_of,
        channels=channel_of,
        velocities={k: round(sum(v) / len(v)) for k, v in by_instrument.items()},
        default_velocity=round(float(velocities.mean())) if len(velocities) else 80,
        file_density=_file_density(request, in_region & ~locked, instruments, end_s - start_s, before,
                                   (start_tick - offset) / TIME_RESOLUTION),
    )


def _channel(plan: Plan, instrument: int) -> int:
    # New instruments take the lowest free channel at first sight and keep it for the whole response, so
    # streamed and final notes agree; past 15 instruments channels are shared.
    if instrument not in plan.channels:
        if instrument == DRUMS:
            plan.channels[instrument] = DRUM_CHANNEL
        else:
            used = set(plan.channels.values()) | {DRUM_CHANNEL}
            free = [c for c in range(1, 17) if c not in used]
            plan.channels[instrument] = free[0] if free else 1 + instrument % 16
    return plan.channels[instrument]


def event_to_note(plan: Plan, event: np.ndarray) -> OutNote | None:
    """Convert one generated event (model ticks relative to the plan) to a note in beats, quantised to the
    request's grid and clipped to the region; None when it falls outside the region."""
    time_tick = int(EVENT_TIMES.value(event[0])) + plan.offset
    duration = int(EVENT_DURATIONS.value(event[1]))
    note = int(EVENT_NOTES.value(event[2]))
    if not 0 <= note < MAX_PITCH * (DRUMS + 1):
        return None  # a rest or a malformed token: nothing to play
    instrument, pitch = divmod(note, MAX_PITCH)
    start = float(plan.tempo.to_beats(time_tick / TIME_RESOLUTION))
    end = float(plan.tempo.to_beats((time_tick + max(duration, 1)) / TIME_RESOLUTION))
    grid = plan.request.grid
    if grid:
        start = round(start / grid) * grid
        end = max(round(end / grid) * grid, start + grid)
    low, high = plan.region
    if not low <= start < high:
        return None
    return OutNote(
        start=start,
        duration=min(end, high) - start,
        pitch=pitch,
        velocity=plan.velocities.get(instrument, plan.default_velocity),
        program=instrument,
        channel=_channel(plan, instrument),
        track=plan.tracks.get(instrument),
        track_name=instrument_name(instrument),
    )


class Cancelled(RequestError):
    """Raised by the sampler's per-step check to stop a run that passed its deadline or lost its client."""

    def __init__(self, reason: str, status: int = 504):
        super().__init__(reason, status)


NoteCallback = Callable[[int, OutNote, float], None]


@dataclass
class Outcome:
    """What a run produced."""

    variations: list[Variation]
    seconds: float


class Engine:
    """A loaded model and the way to run one plan on it. Not thread-safe: the server runs one at a time."""

    def __init__(self, model, name: str):
        self.model = model
        self.name = name

    def run(
        self,
        plan: Plan,
        on_note: NoteCallback | None = None,
        deadline: float = math.inf,
        cancel: threading.Event | None = None,
    ) -> Outcome:
        """Generate the plan's variations; ``on_note(variation, note, progress)`` hears each new note as it
        is sampled. Stops with ``Cancelled`` once ``time.monotonic()`` passes ``deadline`` or ``cancel`` is
        set (checked before every decoding step, whatever the sampling options)."""
        from amt.sampling.sampler import generate

        request = plan.request
        sampling = request.sampling
        density = plan.file_density if sampling.file_density else None
        if sampling.density is not None:
            density = sampling.density * plan.tempo.mean_bpm(*plan.region) / 60.0
        options = sampling.options(density=density)

        def check() -> None:
            if time.monotonic() > deadline:
                raise Cancelled("generation took longer than the server's per-request timeout")
            if cancel is not None and cancel.is_set():
                raise Cancelled("the request was cancelled")

        def callback(variation: int, event: np.ndarray, progress: float) -> None:
            note = event_to_note(plan, event)
            if note is not None:
                on_note(variation, note, float(progress))

        began = time.perf_counter()
        results = generate(
            self.model,
            history=plan.history,
            controls=ops.to_controls(plan.controls),
            start_time=plan.start_tick,
            end_time=plan.end_tick,
            options=options,
            variations=sampling.variations,
            callback=callback if on_note is not None else None,
            check=check,
            time_map=plan.tempo.shifted(plan.offset),
            grid_step=request.grid,
        )
        seconds = time.perf_counter() - began
        variations = []
        for index, events in enumerate(results):
            notes = [n for n in (event_to_note(plan, e) for e in np.asarray(events).reshape(-1, 3)) if n]
            variations.append(Variation(index=index, notes=notes))
        return Outcome(variations=variations, seconds=seconds)
