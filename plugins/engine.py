"""From a DAW request to the task layer and back: the project's notes as a piece in model ticks, new notes in
beats.

All three tasks are one operation here, the task layer's ``write_span``: the model keeps the locked notes
(those before the region as its prompt, those from the region start on as anticipated controls) and writes
new notes inside the region; their velocities and tracks follow the task layer's rules. The tasks differ in
their defaults: infill locks everything outside the region, continue everything before it; accompany locks
what the request names (tracks or note ids) and needs at least one locked note.
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
from amt.sampling.tasks import (
    Generation,
    context_velocities,
    instrument_tracks,
    notes_per_second,
    write_span,
)
from amt.tokenization.midi import MidiMeta, MidiTokens
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
    """A validated request in the task layer's terms: the project's notes as a piece in model ticks (10 ms
    from ``offset``) and which of them the model keeps."""

    request: GenerateRequest
    tempo: TimeMap  # the project's tempo and meter, in beats from its start
    region: tuple[float, float]  # beats
    piece: MidiTokens  # the request's notes from ``offset`` on, ordered by onset (see ``_piece``)
    kept: np.ndarray  # (len(piece),) the locked notes the model reads
    prompt: np.ndarray  # (len(piece),) the notes before the region: kept ones are the prompt
    start_tick: int
    end_tick: int
    offset: int  # model tick 0 is this many 10 ms ticks after the project start
    locked_ids: list[str | int]
    replaced_ids: list[str | int]
    track_ids: list[str | int]  # piece track -> id of the request track
    tracks: dict[int, int]  # model instrument -> the piece track its new notes go on (``instrument_tracks``)
    channels: dict[int, int]  # model instrument -> MIDI channel 1-16 (grows as new instruments appear)
    file_density: float | None  # new notes per second for ``sampling.file_density`` (``_file_density``)


def _piece(ticks: np.ndarray, durations: np.ndarray, notes: np.ndarray, velocities: np.ndarray,
           tracks: np.ndarray, track_names: list[str]) -> tuple[MidiTokens, np.ndarray]:
    """The notes as the task layer's piece (ordered by onset) and, for each of its notes, its index in the
    arguments. Its meta holds the track names only: the project's tempo and meter are the plan's ``tempo``,
    which the sampler reads (a DAW's map in beats need not fall on a MIDI file's ticks)."""
    order = np.argsort(ticks, kind="stable")
    events = np.stack([EVENT_TIMES.token(ticks[order]), EVENT_DURATIONS.token(durations[order]),
                       EVENT_NOTES.token(notes[order])], axis=1).astype(np.int64).reshape(-1, 3)
    piece = MidiTokens(events, velocities[order].astype(np.uint8), tracks[order].astype(np.int32),
                       MidiMeta(track_names=tuple(track_names)))
    return piece, order


def _file_density(request: GenerateRequest, piece: MidiTokens, replaced: np.ndarray, region_seconds: float,
                  before: np.ndarray, before_seconds: float) -> float | None:
    """Notes per second for new notes to match when no density is asked (``tasks.notes_per_second``): those
    of the notes they replace (``replaced``: unlocked notes of ``piece`` in the region; of
    ``sampling.instruments`` only, when given) over the region, as ``accompany`` does; without any
    (continue, an empty region), the locked music's before the region (``before``, over the
    ``before_seconds`` it spans). None when neither has notes."""
    density = notes_per_second(piece, replaced, region_seconds, request.sampling.instruments)
    return notes_per_second(piece, before, before_seconds) if density is None else density


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

    # The piece holds every note from the offset on, locked or not: new notes take their velocities and
    # tracks from the music around them. The model reads the locked ones within reach of the region.
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
    return Plan(
        request=request,
        tempo=tempo,
        region=region,
        piece=piece,
        kept=(before | after)[from_offset][order],
        prompt=(ticks < start_tick)[from_offset][order],
        start_tick=start_tick - offset,
        end_tick=end_tick - offset,
        offset=offset,
        locked_ids=[i for i, keep in zip(ids, locked.tolist(), strict=True) if keep],
        replaced_ids=[i for i, keep, inside in zip(ids, locked.tolist(), in_region.tolist(), strict=True)
                      if inside and not keep],
        track_ids=list(track_ids.values()),
        tracks=instrument_tracks(piece),
        channels=channel_of,
        file_density=_file_density(request, piece, (in_region & ~locked)[from_offset][order], end_s - start_s,
                                   before[from_offset][order], (start_tick - offset) / TIME_RESOLUTION),
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
    start = float(plan.tempo.to_beats((time_tick + plan.offset) / TIME_RESOLUTION))
    end = float(plan.tempo.to_beats((time_tick + plan.offset + max(duration, 1)) / TIME_RESOLUTION))
    grid = plan.request.grid
    if grid:
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

        return write_span(self.model, plan.piece, kept=plan.kept, prompt=plan.prompt, start=plan.start_tick,
                          end=plan.end_tick, options=options, variations=sampling.variations,
                          callback=callback if on_note is not None else None, check=check,
                          time_map=plan.tempo.shifted(plan.offset), grid_step=request.grid)
