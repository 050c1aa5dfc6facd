"""From a DAW request to the task layer and back: the project's notes as a piece in model ticks, new notes in
beats.

``plan_request`` converts a DAW request into a piece and a task-layer ``Request`` (``amt.sampling.tasks``)
whose ``kept`` mask holds the locked notes and whose span is the region in beats through the project's
``TimeMap``; ``Engine.run`` hands it to ``tasks.run``. All three tasks are then one operation: the model
keeps the locked notes (those before the region as its prompt, those from the region start on as
anticipated controls) and writes new notes inside the region, picking their instruments; their velocities,
tracks and (without a density) density follow the task layer's rules. The tasks differ in which notes they
lock by default: infill everything outside the region, continue everything before it; accompany what the
request names (tracks or note ids), and it needs at least one locked note. What stays here is the
protocol's: notes per beat, a grid in beats, MIDI channels, note ids.
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
from amt.sampling import tasks
from amt.sampling.options import SamplingOptions
from amt.sampling.tasks import Generation, context_velocities
from amt.tokenization.midi import MidiMeta, MidiTokens
from amt.tokenization.notes import EVENT_DURATIONS, EVENT_NOTES, EVENT_TIMES, onset_ticks
from amt.tokenization.timemap import TimeMap, TimeMapError
from amt.tokenization.vocab import DRUMS, MAX_DUR, MAX_PITCH, TIME_RESOLUTION


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
    """A validated request in the task layer's terms: the project's notes as a piece in model ticks (10 ms
    from ``offset``) and the task layer's ``Request`` (``job``) that keeps the locked ones."""

    request: GenerateRequest
    job: tasks.Request  # what ``Engine.run`` asks of ``tasks.run``
    tempo: TimeMap  # the project's tempo and meter, in beats from its start
    region: tuple[float, float]  # beats
    piece: MidiTokens  # the request's notes from ``offset`` on, ordered by onset (see ``_piece``)
    offset: int  # model tick 0 is this many 10 ms ticks after the project start
    locked_ids: list[str | int]
    replaced_ids: list[str | int]
    track_ids: list[str | int]  # piece track -> id of the request track
    tracks: dict[int, int]  # model instrument -> the piece track its new notes go on (``instrument_tracks``)
    channels: dict[int, int]  # model instrument -> MIDI channel 1-16 (grows as new instruments appear)

    @property
    def kept(self) -> np.ndarray:
        """(len(piece),) the locked notes the model reads."""
        return self.job.kept

    @property
    def start_tick(self) -> int:
        """The region's start in the piece's model ticks."""
        return self.job.span.ticks(self.job.time_map)[0]

    @property
    def end_tick(self) -> int:
        """The region's end in the piece's model ticks."""
        return self.job.span.ticks(self.job.time_map)[1]

    @property
    def prompt(self) -> np.ndarray:
        """(len(piece),) the notes before the region: kept ones are the prompt."""
        return onset_ticks(self.piece.events) < self.start_tick


def _piece(ticks: np.ndarray, durations: np.ndarray, notes: np.ndarray, velocities: np.ndarray,
           tracks: np.ndarray, track_names: list[str]) -> tuple[MidiTokens, np.ndarray]:
    """The notes as the task layer's piece (ordered by onset) and, for each of its notes, its index in the
    arguments. Its meta holds the track names only: the project's tempo and meter are the request's
    ``time_map``, which the task layer reads (a DAW's map in beats need not fall on a MIDI file's ticks)."""
    order = np.argsort(ticks, kind="stable")
    events = np.stack([EVENT_TIMES.token(ticks[order]), EVENT_DURATIONS.token(durations[order]),
                       EVENT_NOTES.token(notes[order])], axis=1).astype(np.int64).reshape(-1, 3)
    piece = MidiTokens(events, velocities[order].astype(np.uint8), tracks[order].astype(np.int32),
                       MidiMeta(track_names=tuple(track_names)))
    return piece, order


def _options(request: GenerateRequest, tempo: TimeMap, region: tuple[float, float]) -> SamplingOptions:
    """The wire's sampling knobs as the task layer's options. Bridge-only, because they are the protocol's
    terms: the density is asked in notes per beat (a DAW counts beats; the task layer, notes per second over
    the region's mean tempo), and the grid is the request's beat step (``Request.grid_step``), never the
    notes' own grid (a DAW says which grid it wants, or none)."""
    density = request.sampling.density
    if density is not None:
        density = density * tempo.mean_bpm(*region) / 60.0
    return request.sampling.options(density=density, file_grid=False)


def plan_request(request: GenerateRequest, limits: Limits) -> Plan:
    """Check a request against the limits and the maps, and turn it into a piece and the task layer's
    ``Request``: the locked notes kept one by one, the region as a span in beats through the project's time
    map, starting where the piece does (the locked music up to ``limits.context_seconds`` before the region).

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

    # Model ticks are 10 ms from the project start, through the project's time map; the offset keeps
    # relative times small while staying a whole number of ticks, so the absolute tick grid (and the beats
    # of the result) do not move.
    ticks, end_ticks = tempo.beats_to_ticks(starts), tempo.beats_to_ticks(ends)
    durations = np.clip(end_ticks - ticks, 1, MAX_DUR - 1)
    start_tick = int(tempo.beats_to_ticks(region[0])[0])
    notes = instruments * MAX_PITCH + np.array([n.pitch for n in request.notes], dtype=np.int64)
    before = locked & (ticks < start_tick) & (ticks >= start_tick - limits.context_seconds * TIME_RESOLUTION)
    offset = int(ticks[before].min()) if before.any() else start_tick

    # The piece holds every note from the offset on, locked or not: new notes take their velocities and
    # tracks from the music around them. The model reads the locked ones (the sampler, those within reach
    # of the region).
    track_ids = {key: track.id for key, track in tracks.items()}  # the piece's tracks, by id as text
    for note in request.notes:
        track_ids.setdefault(str(note.track), note.track)
    track_index = {key: k for k, key in enumerate(track_ids)}
    note_tracks = np.array([track_index[str(n.track)] for n in request.notes], dtype=np.int64)
    names = [tracks[key].name if key in tracks and tracks[key].name else key for key in track_ids]
    from_offset = ticks >= offset
    piece, order = _piece(ticks[from_offset] - offset, durations[from_offset], notes[from_offset],
                          np.array([n.velocity for n in request.notes], dtype=np.int64)[from_offset],
                          note_tracks[from_offset], names)
    channel_of: dict[int, int] = {}
    for note, instrument in zip(request.notes, instruments.tolist(), strict=True):
        track = tracks.get(str(note.track))
        channel = note.channel or (track.channel if track else None)
        if channel:
            channel_of.setdefault(instrument, channel)
    job = tasks.Request(request.task, kept=locked[from_offset][order], span=tasks.Span(*region, unit="beats"),
                        time_map=tempo.shifted(offset), grid_step=request.grid,
                        options=_options(request, tempo, region), variations=request.sampling.variations)
    return Plan(
        request=request,
        job=job,
        tempo=tempo,
        region=region,
        piece=piece,
        offset=offset,
        locked_ids=[i for i, keep in zip(ids, locked.tolist(), strict=True) if keep],
        replaced_ids=[i for i, keep, inside in zip(ids, locked.tolist(), in_region.tolist(), strict=True)
                      if inside and not keep],
        track_ids=list(track_ids.values()),
        tracks=tasks.instrument_tracks(piece),
        channels=channel_of,
    )


def _channel(plan: Plan, instrument: int) -> int:
    # Bridge-only: a DAW routes notes by MIDI channel, which the task layer leaves to the file writer.
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


def event_to_note(plan: Plan, event: np.ndarray, velocity: int | None = None, track: int | None = None
                  ) -> OutNote | None:
    """Convert one generated event (model ticks relative to the plan) to a note in beats, quantised to the
    request's grid and clipped to the region; None when it falls outside the region. ``velocity`` and
    ``track`` (a piece track, -1: none) are the note's in a ``Generation``; for a note heard while it is
    sampled, the task layer's rules give them (``context_velocities``, ``instrument_tracks``)."""
    time_tick = int(EVENT_TIMES.value(event[0]))
    duration = int(EVENT_DURATIONS.value(event[1]))
    note = int(EVENT_NOTES.value(event[2]))
    if not 0 <= note < MAX_PITCH * (DRUMS + 1):
        return None  # a rest or a malformed token: nothing to play
    instrument, pitch = divmod(note, MAX_PITCH)
    onset_off = [time_tick, time_tick + max(duration, 1)]
    start, end = (float(b) for b in plan.job.time_map.ticks_to_beats(onset_off))
    grid = plan.request.grid
    if grid:  # the sampler drew on the grid to the nearest 10 ms tick: the exact beat back to the DAW
        start = round(start / grid) * grid
        end = max(round(end / grid) * grid, start + grid)
    low, high = plan.region
    if not low <= start < high:
        return None
    if velocity is None:
        velocity = int(context_velocities(np.array([time_tick]), plan.piece)[0])
    if track is None:
        track = plan.tracks.get(instrument, -1)
    return OutNote(
        start=start,
        duration=min(end, high) - start,
        pitch=pitch,
        velocity=velocity,
        program=instrument,
        channel=_channel(plan, instrument),
        track=plan.track_ids[track] if track >= 0 else None,
        track_name=instrument_name(instrument),
    )


def variation(plan: Plan, index: int, generation: Generation) -> Variation:
    """The wire form of variation ``index``: the new notes of ``generation`` in beats (``event_to_note``)."""
    midi, new = generation.midi, np.flatnonzero(generation.generated).tolist()
    notes = (event_to_note(plan, midi.events[i], int(midi.velocities[i]), int(midi.tracks[i])) for i in new)
    return Variation(index=index, notes=[n for n in notes if n is not None])


class Cancelled(RequestError):
    """Raised by the sampler's per-step check to stop a run that passed its deadline or lost its client."""

    def __init__(self, reason: str, status: int = 504):
        super().__init__(reason, status)


NoteCallback = Callable[[int, OutNote, float], None]


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
    ) -> list[Generation]:
        """Generate the plan's variations (``variation`` gives each one's wire form); ``on_note(variation,
        note, progress)`` hears each new note as it is sampled. Stops with ``Cancelled`` once
        ``time.monotonic()`` passes ``deadline`` or ``cancel`` is set (checked before every decoding step,
        whatever the sampling options)."""
        def check() -> None:
            if time.monotonic() > deadline:
                raise Cancelled("generation took longer than the server's per-request timeout")
            if cancel is not None and cancel.is_set():
                raise Cancelled("the request was cancelled")

        def callback(variation: int, event: np.ndarray, progress: float) -> None:
            note = event_to_note(plan, event)
            if note is not None:
                on_note(variation, note, float(progress))

        return tasks.run(self.model, plan.piece, plan.job, callback=callback if on_note is not None else None,
                         check=check)
