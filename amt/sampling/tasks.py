"""The co-pilot's tasks on a MIDI piece: accompany kept parts, infill a span, continue the piece.

The command line, the demo, the harmonisation evaluation and the DAW bridge state what they want as one
``Request`` (the task, the parts kept, the span, the ``SamplingOptions``, the number of variations) and call
``run``, which returns one ``Generation`` per variation. ``run`` picks the task function below; each of them
calls ``write_span``, the one operation under every task: new notes in a span around kept notes, assembled
into whole pieces. The DAW bridge, whose locks are note by note and whose tasks are bound to a region,
gives a ``kept`` mask, its region as a span in beats and its project's ``TimeMap``.

Each task decides which notes of the input are kept (as the prompt before the generation span, or as
anticipated controls) and ``write_span`` assembles whole pieces: the kept notes unchanged (MIDI ticks,
velocity, channel, track: written back tick-exact) plus the new notes, with the input's ``MidiMeta`` (tempo
map, meter, track names). Parts are picked as ``amt.tokenization.parts`` numbers them; by default accompany
and infill write for the parts they replace (their instruments, register and share of notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from amt.errors import GenerationError
from amt.sampling.meter import file_grid
from amt.sampling.options import SamplingOptions
from amt.tokenization import ops
from amt.tokenization.midi import GM_INSTRUMENT_NAMES, MidiMeta, MidiTokens
from amt.tokenization.notes import (
    EVENT_DURATIONS,
    EVENT_TIMES,
    duration_ticks,
    end_ticks,
    note_tokens,
    onset_ticks,
)
from amt.tokenization.parts import find_parts, keep_mask, part_index
from amt.tokenization.timemap import TimeMap
from amt.tokenization.vocab import DRUMS, MAX_PITCH, TIME_RESOLUTION

if TYPE_CHECKING:  # the sampler (and torch) load when a task runs: a server or page starts without them
    from amt.models.base import CausalLM
    from amt.sampling.sampler import Callback, Check

DEFAULT_VELOCITY = 80
"""Velocity of new notes when the input has no notes to take one from."""
VELOCITY_CONTEXT = 5 * TIME_RESOLUTION
"""New notes take the median velocity of the input notes within this many ticks of their onset."""


@dataclass
class Generation:
    """One output piece: ``midi`` holds kept and new notes (ordered by onset) with the input's meta (plus a
    track name for each new part); ``generated[i]`` is True when note ``i`` is new; ``summary`` says what
    the new notes were written for (e.g. "Viola (part 3 Viola), Cello (part 4 Cello)"); ``notes`` which
    musical defaults were switched off for this piece and why (no meter, an unclear key...)."""

    midi: MidiTokens
    generated: np.ndarray
    summary: str = ""
    notes: tuple[str, ...] = field(default=())


DEFAULT_ENSEMBLE = (0,)
"""What accompanies a piece when every part is kept (a melody alone): an acoustic grand piano."""


@dataclass(frozen=True)
class _Target:
    """A part that new notes are written for: the input part it replaces (an index into ``find_parts``,
    -1: none), its program, the track and channel they go on (-1: a new track, a free channel), and the
    median pitch and note count of that part over the whole piece (its register and its share of the new
    notes). ``voice`` is the program the model writes the part with: its own, or for single lines a program
    of its family that no other part uses (see ``_restricted``)."""

    part: int
    program: int
    track: int
    channel: int
    median: float
    notes: int
    label: str  # for messages: "Viola (part 3 Viola)"
    name: str  # for a new track of an instrument that several new parts play: "Acoustic Grand Piano (Alto)"
    voice: int = -1


def context_velocities(onsets: np.ndarray, midi: MidiTokens) -> np.ndarray:
    """Velocities for new notes at ``onsets`` (ticks): the median velocity of the input's notes within
    ``VELOCITY_CONTEXT`` of each onset, else of all its notes, else ``DEFAULT_VELOCITY``."""
    if len(midi.events) == 0:
        return np.full(len(onsets), DEFAULT_VELOCITY, dtype=np.uint8)
    times, velocities = onset_ticks(midi.events), midi.velocities.astype(np.int64)
    # A piece is ordered by onset: sorting it again for every call would cost the bridge, which asks for
    # each note it streams.
    if (times[1:] < times[:-1]).any():
        order = np.argsort(times, kind="stable")
        times, velocities = times[order], velocities[order]
    first = np.searchsorted(times, onsets - VELOCITY_CONTEXT, side="left")
    last = np.searchsorted(times, onsets + VELOCITY_CONTEXT, side="right")
    out = [int(np.median(velocities[a:b])) if b > a else -1 for a, b in zip(first, last, strict=True)]
    if -1 in out:  # no input note near: the median of all of them
        overall = int(np.median(velocities))
        out = [overall if v < 0 else v for v in out]
    return np.asarray(out, dtype=np.uint8)


def instrument_tracks(midi: MidiTokens) -> dict[int, int]:
    """The track each instrument plays on most often in ``midi`` (where new notes of it belong)."""
    instruments = ops.instrument_of(midi.events[:, 2]) if len(midi.events) else np.zeros(0, np.int64)
    tracks = {}
    for instrument in np.unique(instruments):
        values, counts = np.unique(midi.tracks[instruments == instrument], return_counts=True)
        tracks[int(instrument)] = int(values[counts.argmax()])
    return tracks


def _targets(midi: MidiTokens, replaced: np.ndarray, *, own_tracks: bool) -> list[_Target]:
    """The parts new notes are written for: every part with notes in ``replaced``, in its own new track
    (``own_tracks``: an accompaniment) or on the part's track (an infill); none replaced: the default
    ensemble in new tracks."""
    found, index = find_parts(midi), part_index(midi)
    pitches = ops.pitch_of(midi.events[:, 2])
    chosen = [p for p in found if (replaced & (index == p.number - 1)).any()]
    if not chosen:
        return [_Target(-1, program, -1, -1, 60.0, 1, f"{GM_INSTRUMENT_NAMES[program]} (default ensemble)",
                        GM_INSTRUMENT_NAMES[program])
                for program in DEFAULT_ENSEMBLE]
    return [_Target(p.number - 1, p.program, -1 if own_tracks else p.track, -1 if own_tracks else p.channel,
                    float(np.median(pitches[index == p.number - 1])), p.notes,
                    f"{p.instrument} (part {p.number}{' ' + p.name if p.name else ''})",
                    f"{p.instrument} ({p.name or f'part {p.number}'})") for p in chosen]


def _restricted(options: SamplingOptions | None, targets: list[_Target], midi: MidiTokens, kept: np.ndarray
                ) -> tuple[SamplingOptions, list[_Target]]:
    """``options`` with new notes limited to the targets' programs and to the pitch range of the parts they
    replace (over the whole piece), unless the caller chose a range; and the targets with their voices.

    With ``options.monophonic`` every pitched target gets a program of its own for the model (its own, else
    the next one of its General MIDI family, else any, that no kept or other new part uses), so that parts
    sharing a program (the voices of a chorale, all on program 0) come out as separate single lines rather
    than one line shared out among them; the notes take the part's own program back afterwards."""
    options = options or SamplingOptions()
    used = {int(i) for i in ops.instrument_of(midi.events[kept, 2])}
    voiced = []
    for target in targets:
        voice = target.program
        if options.monophonic and target.program != DRUMS:
            family = target.program - target.program % 8
            candidates = [target.program, *range(family, family + 8), *range(DRUMS)]
            voice = next((p for p in candidates if p not in used), target.program)
            used.add(voice)
        voiced.append(replace(target, voice=voice))
    options = replace(options, instruments=sorted({t.voice for t in voiced}))
    of_targets = np.isin(part_index(midi), [t.part for t in targets])
    pitched = of_targets & (ops.instrument_of(midi.events[:, 2]) != DRUMS)
    if options.pitch_range is None and pitched.any():
        pitches = ops.pitch_of(midi.events[pitched, 2])
        options = replace(options, pitch_range=(int(pitches.min()), int(pitches.max())))
    return options, voiced


def _assign(events: np.ndarray, targets: list[_Target], *, lines: bool) -> tuple[np.ndarray, np.ndarray]:
    """New notes given to the target parts by register, the way an arranger splits a texture: the pitched
    parts, lowest (by median pitch) first, take the new pitched notes from the lowest up, each as large a
    share as it had of the replaced notes (drums go to a drum part when there is one). With ``lines`` (each
    voice a single line), whole lines are given out instead: the lowest line to the lowest part, and so on.
    Each note takes its part's program. Returns the relabelled events and each note's target index. The
    model may pile every note onto one instrument or one register; this gives every replaced part its
    share."""
    instruments, pitches = ops.instrument_of(events[:, 2]), ops.pitch_of(events[:, 2])
    drums = [k for k, t in enumerate(targets) if t.program == DRUMS]
    pitched = [k for k, t in enumerate(targets) if t.program != DRUMS]
    pitched = sorted(pitched, key=lambda k: targets[k].median) or drums
    if lines:
        return _relabel(events, targets, _by_line(instruments, pitches, targets, pitched, drums))
    shares = np.cumsum([targets[k].notes for k in pitched], dtype=np.float64)
    to_drums = (instruments == DRUMS) & bool(drums)
    rank = np.zeros(len(events), np.float64)  # each note's place from the lowest, 0-1, drums aside
    others = np.flatnonzero(~to_drums)
    lowest_first = others[np.argsort(pitches[others], kind="stable")]
    rank[lowest_first] = (np.arange(len(others)) + 0.5) / max(len(others), 1)
    band = np.minimum(np.searchsorted(shares / shares[-1], rank), len(pitched) - 1)
    return _relabel(events, targets, np.where(to_drums, drums[0] if drums else 0, np.asarray(pitched)[band]))


def _by_line(instruments: np.ndarray, pitches: np.ndarray, targets: list[_Target], pitched: list[int],
             drums: list[int]) -> np.ndarray:
    """Each note's target when every voice is a single line: the lines (one per model instrument) ordered by
    median pitch go to the pitched targets ordered by theirs; with fewer lines than targets, each line to the
    target nearest its median."""
    voices = [v for v in np.unique(instruments).tolist() if v != DRUMS]
    medians = {v: float(np.median(pitches[instruments == v])) for v in voices}
    voices.sort(key=lambda v: medians[v])
    if len(voices) == len(pitched):
        target_of = dict(zip(voices, pitched, strict=True))
    else:
        target_of = {v: min(pitched, key=lambda k: abs(targets[k].median - medians[v])) for v in voices}
    return np.array([drums[0] if i == DRUMS and drums else target_of.get(i, pitched[0])
                     for i in instruments.tolist()], np.int64)


def _relabel(events: np.ndarray, targets: list[_Target], chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``events`` with each note's program replaced by its target's, and the targets (indices)."""
    programs = np.array([targets[k].program for k in chosen.tolist()], np.int64)
    out = events.copy()
    out[:, 2] = note_tokens(programs, ops.pitch_of(events[:, 2]))
    return out, chosen


def _assemble(midi: MidiTokens, kept: np.ndarray, new: list[np.ndarray], *, join_tracks: bool,
              options: SamplingOptions | None, targets: list[_Target] | None = None,
              notes: Sequence[str] = ()) -> list[Generation]:
    """Whole pieces from the kept input notes (boolean mask ``kept``) and each variation's new notes.

    Kept notes keep their track, channel and MIDI ticks (they are written back tick-exact); new notes go on
    the exact grid lines of ``options.grid`` when there is one (``_new_midi_ticks``). With
    ``targets``, new notes are shared out among those parts (``_assign``): onto the part's track and
    channel, or onto a new track per part named after its instrument. Without, and with ``join_tracks``, a
    new note goes to the track its instrument plays on in the input (a filled gap or a continuation belongs
    to the part it extends); otherwise, and for an instrument new to the piece, it gets no track (-1), so a
    written file puts it on a track of its own named after its instrument.
    """
    meta, summary = midi.meta, ""
    if targets is not None:
        names = list(meta.track_names)
        own = [k for k, t in enumerate(targets) if t.track < 0]
        repeated = len({targets[k].program for k in own}) < len(own)
        new_track = {}
        for k in own:  # several new parts on one instrument: say which part each one replaces
            new_track[k] = len(names)
            names.append(targets[k].name if repeated else GM_INSTRUMENT_NAMES[targets[k].program])
        meta = replace(meta, track_names=tuple(names))
        summary = ", ".join(t.label for t in targets)
    tracks_of = instrument_tracks(midi) if join_tracks else {}
    kept_notes = midi.take(kept)
    out = []
    for events in new:
        if targets is not None:
            events, chosen = _assign(events, targets, lines=bool(options and options.monophonic))
            new_tracks = np.array([new_track.get(k, targets[k].track) for k in chosen.tolist()], np.int32)
            new_channels = np.array([targets[k].channel for k in chosen.tolist()], np.int64)
        else:
            new_tracks = np.array([tracks_of.get(int(i), -1) for i in ops.instrument_of(events[:, 2])],
                                  np.int32)
            new_channels = np.full(len(events), -1)
        events = _released_before_kept(events, new_channels, kept_notes)
        all_events = np.concatenate([kept_notes.events, events]).astype(np.int64).reshape(-1, 3)
        velocities = np.concatenate([kept_notes.velocities,
                                     context_velocities(onset_ticks(events), midi)]).astype(np.uint8)
        tracks = np.concatenate([kept_notes.tracks, new_tracks]).astype(np.int32)
        channels = np.concatenate([_or_unknown(kept_notes.channels, (len(kept_notes),)),
                                   new_channels]).astype(np.int8)
        ticks = np.concatenate([_or_unknown(kept_notes.midi_ticks, (len(kept_notes), 2)),
                                _new_midi_ticks(midi, events, options)]).astype(np.int64)
        generated = np.concatenate([np.zeros(len(kept_notes), bool), np.ones(len(events), bool)])
        order = np.argsort(all_events[:, 0], kind="stable")  # kept notes first on equal onsets
        piece = MidiTokens(all_events[order], velocities[order], tracks[order], meta, None, channels[order],
                           ticks[order])
        out.append(Generation(piece, generated[order], summary, tuple(notes)))
    return out


def _new_midi_ticks(midi: MidiTokens, events: np.ndarray, options: SamplingOptions | None) -> np.ndarray:
    """(N, 2) MIDI ticks of new notes' starts and ends: on the exact lines of ``options.grid`` (which the
    sampler put them on, to the nearest 10 ms); -1 (the writer's nearest tick) without a grid."""
    if options is None or not options.grid:
        return np.full((len(events), 2), -1, np.int64)
    onsets = onset_ticks(events)
    on = midi.meta.snap_to_grid(onsets, options.grid)
    off = midi.meta.snap_to_grid(end_ticks(events), options.grid)
    return np.stack([on, np.where((on >= 0) & (off > on), off, -1)], axis=1).reshape(-1, 2)


def _or_unknown(values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, -1, np.int64) if values is None else values


def _end_tick(midi: MidiTokens) -> int:
    if len(midi.events) == 0:
        return 0
    return int(end_ticks(midi.events).max())


def _end_by(events: np.ndarray, end: int) -> np.ndarray:
    """New notes cut off at tick ``end``: where the music ends (a note held past it would make the output
    run on in silence), or where the span an infill rewrites ends."""
    events = events.copy()
    room = np.maximum(end - onset_ticks(events), 1)
    events[:, 1] = EVENT_DURATIONS.token(np.minimum(duration_ticks(events), room))
    return events


def _released_before_kept(events: np.ndarray, channels: np.ndarray, kept: MidiTokens) -> np.ndarray:
    """New notes on a given channel (``channels``, -1: the writer chooses) ended by the next kept note of
    the same pitch on that channel. A MIDI reader closes the oldest open note of a channel and pitch first,
    so a new note held over a kept one's onset would move the kept note's end when the file is read back."""
    if kept.channels is None or not len(events) or not (channels >= 0).any():
        return events
    events = events.copy()
    kept_onsets = onset_ticks(kept.events)
    kept_keys = kept.channels.astype(np.int64) * MAX_PITCH + ops.pitch_of(kept.events[:, 2])
    for i in np.flatnonzero(channels >= 0).tolist():
        onset = int(EVENT_TIMES.value(events[i, 0]))
        key = int(channels[i]) * MAX_PITCH + int(ops.pitch_of(events[i:i + 1, 2])[0])
        later = kept_onsets[(kept_keys == key) & (kept_onsets > onset)]
        if len(later):
            events[i, 1] = min(int(events[i, 1]), EVENT_DURATIONS.token(int(later.min()) - onset))
    return events


def _onsets(midi: MidiTokens) -> np.ndarray:
    return onset_ticks(midi.events)


def notes_per_second(midi: MidiTokens, notes: np.ndarray, seconds: float,
                     instruments: Sequence[int] | None = None) -> float | None:
    """How many of the ``notes`` of ``midi`` (a boolean mask; of ``instruments`` only, when given) there are
    per second of ``seconds``: the density new notes match when none is asked (``file_density``); None when
    there are none. Only the parts the request writes count: an obbligato part it drops is not to be
    matched."""
    if instruments is not None:
        present = ops.instrument_of(midi.events[:, 2]) if len(midi.events) else np.zeros(0, np.int64)
        notes = notes & np.isin(present, [int(i) for i in instruments])
    count = int(notes.sum())
    return count / seconds if count and seconds > 0 else None


def _musical(midi: MidiTokens, options: SamplingOptions | None, time_map: TimeMap | None,
             replaced: np.ndarray, seconds: float, before: tuple[np.ndarray, float] | None = None
             ) -> tuple[SamplingOptions, dict]:
    """The request's options with the file's defaults filled in, and ``write_span``'s timing arguments (the
    time map, and ``notes`` on what was switched off, which the sampler adds to). ``file_grid``: the grid of
    the input's notes (``meter.file_grid``) when no ``grid`` is given; ``file_density``: ``replaced`` notes (a
    boolean mask of the input; of the parts of ``options.instruments`` only, when given) per second of
    ``seconds`` when no ``density`` is given, else (nothing replaced) the notes of ``before`` (a mask and its
    seconds: the kept music before the span). The grid and the beats (with the bar starts) come through
    ``time_map``, by default the input's tempo map and meter (``TimeMap.from_meta``)."""
    options = options or SamplingOptions()
    time_map = TimeMap.from_meta(midi.meta) if time_map is None else time_map
    notes: list[str] = []
    changes: dict = {}
    if options.grid is None and options.file_grid:
        steps = file_grid(time_map, _onsets(midi))
        if steps is None:
            notes.append("grid off: the file's notes fit neither a sixteenth nor a triplet grid")
        changes["grid"] = steps
    if options.density is None and options.file_density:
        density = notes_per_second(midi, replaced, seconds, options.instruments)
        if density is None and before is not None:
            density = notes_per_second(midi, *before)
        if density is None:
            notes.append("density target off: no notes to take it from")
        else:
            changes["density"] = density
    options = replace(options, **changes)
    return options, {"time_map": time_map, "notes": notes}


def accompany(model: CausalLM, midi: MidiTokens, *, keep_parts: Sequence[int] | None = None,
              keep_instruments: Sequence[int] | None = None, keep_tracks: Sequence[str] | None = None,
              options: SamplingOptions | None = None, variations: int = 1, callback: Callback | None = None,
              window: int | None = None, check: Check | None = None, time_map: TimeMap | None = None
              ) -> list[Generation]:
    """Write new parts around the kept ones.

    The notes of ``keep_parts`` (numbers from ``find_parts``), ``keep_instruments`` (General MIDI programs,
    128 = drums) or ``keep_tracks`` (track names) become controls over the whole piece and come back
    unchanged; every other part is replaced over the piece's span, from its first note to the end of its
    last (silence before the first note, such as a pickup bar written late, is not part of the music).
    Unless ``options.instruments`` says otherwise, the new notes are written for the replaced parts: with
    their programs, in their register (``options.pitch_range`` defaults to the replaced notes' range), each
    part getting its share by register, each in a new track named after its instrument. When every part is
    kept (a melody alone) the default ensemble (``DEFAULT_ENSEMBLE``, a piano) accompanies it. ``time_map``:
    the piece's clock where its meta cannot hold it (default: ``TimeMap.from_meta``), as in every task.
    """
    if not (keep_parts or keep_instruments or keep_tracks):
        raise GenerationError("give the parts, tracks or instruments to keep")
    if len(midi.events) == 0:
        raise GenerationError(f"{midi.source or 'the input'} has no notes to accompany")
    kept = keep_mask(midi, parts=keep_parts, tracks=keep_tracks, instruments=keep_instruments)
    start, end = int(_onsets(midi).min()), max(_end_tick(midi), 1)
    options, timing = _musical(midi, options, time_map, ~kept, (end - start) / TIME_RESOLUTION)
    targets = None
    if options.instruments is None:
        options, targets = _restricted(options, _targets(midi, ~kept, own_tracks=True), midi, kept)
    # New parts are not the kept ones: a new violin line is not "Violin I" even if that track is kept.
    return write_span(model, midi, kept=kept, prompt=np.zeros(len(midi.events), bool), start=start, end=end,
                      options=options, variations=variations, callback=callback, window=window, check=check,
                      targets=targets, join_tracks=False, **timing)


def infill(model: CausalLM, midi: MidiTokens, *, start: float, end: float,
           keep_parts: Sequence[int] | None = None, keep_instruments: Sequence[int] | None = None,
           keep_tracks: Sequence[str] | None = None, options: SamplingOptions | None = None,
           variations: int = 1, callback: Callback | None = None, window: int | None = None,
           check: Check | None = None, time_map: TimeMap | None = None) -> list[Generation]:
    """Replace the notes starting in ``[start, end)`` seconds with new ones: the notes before are the prompt,
    the notes after are anticipated controls; both come back unchanged and new notes start and end inside the
    span.

    The parts chosen by ``keep_parts``, ``keep_instruments`` or ``keep_tracks`` (as in ``accompany``) are
    kept inside the span too (a singer goes on while the piano is rewritten). Unless ``options.instruments``
    says otherwise, new notes are written for the parts they replace (their programs, their register, each
    on its own track) rather than by whatever instrument the model picks."""
    duration = _end_tick(midi) / TIME_RESOLUTION
    if not end > start:
        raise GenerationError(f"empty span: start {start} s is not before end {end} s")
    if start < 0 or start >= duration or end > duration + 1 / TIME_RESOLUTION:
        raise GenerationError(f"span {start}-{end} s is beyond the file, which lasts {duration:.2f} s")
    first, last = round(start * TIME_RESOLUTION), round(end * TIME_RESOLUTION)
    onsets = _onsets(midi)
    before, after = onsets < first, onsets >= last
    chosen = keep_mask(midi, parts=keep_parts, tracks=keep_tracks, instruments=keep_instruments)
    kept = before | after | chosen
    replaced = ~kept
    if not replaced.any():
        raise GenerationError(f"nothing to rewrite: every note in {start:g}-{end:g} s belongs to a kept part")
    # The density of the rewritten parts around the gap: their notes per second outside the span.
    index = part_index(midi)
    around = (before | after) & np.isin(index, np.unique(index[replaced]))
    outside = max(duration - (last - first) / TIME_RESOLUTION, 1 / TIME_RESOLUTION)
    options, timing = _musical(midi, options, time_map, around, outside)
    targets = None
    if options.instruments is None:
        options, targets = _restricted(options, _targets(midi, replaced, own_tracks=False), midi, kept)
    return write_span(model, midi, kept=kept, prompt=before, start=first, end=last, options=options,
                      variations=variations, callback=callback, window=window, check=check, targets=targets,
                      **timing)


def continue_piece(model: CausalLM, midi: MidiTokens, *, seconds: float,
                   options: SamplingOptions | None = None, variations: int = 1,
                   callback: Callback | None = None, window: int | None = None, check: Check | None = None,
                   time_map: TimeMap | None = None) -> list[Generation]:
    """Add ``seconds`` of new music after the end of the piece (where its last note stops)."""
    if not seconds > 0:
        raise GenerationError(f"seconds must be positive, got {seconds}")
    first = _end_tick(midi)
    last = first + round(seconds * TIME_RESOLUTION)
    everything = np.ones(len(midi.events), bool)
    options, timing = _musical(midi, options, time_map, everything, max(first, 1) / TIME_RESOLUTION)
    return write_span(model, midi, kept=everything, prompt=everything, start=first, end=last, options=options,
                      variations=variations, callback=callback, window=window, check=check, **timing)


def write_span(model: CausalLM, midi: MidiTokens, *, kept: np.ndarray, prompt: np.ndarray, start: int,
               end: int, options: SamplingOptions, variations: int = 1, callback: Callback | None = None,
               window: int | None = None, check: Check | None = None, time_map: TimeMap | None = None,
               grid_step: float | None = None, notes: list[str] | None = None,
               targets: list[_Target] | None = None, join_tracks: bool = True) -> list[Generation]:
    """New notes in ``[start, end)`` ticks around the ``kept`` notes of ``midi`` (a boolean mask): the
    operation under every task (a DAW's locked notes included, ``_around_kept``). The kept notes in
    ``prompt`` are the model's prompt (they must start before ``start``); the other kept notes are anticipated
    controls. New notes end by ``end`` (the music after the span is kept as it was, and a held note would blur
    it or make the piece run on in silence) and are assembled with the kept ones into one ``Generation`` per
    variation (``_assemble``: velocities from the input around each onset, tracks by ``targets`` or
    ``join_tracks``). ``time_map`` (default: the input's, ``TimeMap.from_meta``), ``grid_step`` and ``notes``
    go to the sampler, as do ``options``, ``variations``, ``window`` and ``check``; ``callback`` hears each
    new note as it is drawn, cut at ``end`` as in the result."""
    from amt.sampling import sampler

    notes = [] if notes is None else notes
    heard = None
    if callback is not None:  # each new note as it will be in the result: cut at the span's end
        def heard(variation: int, event: np.ndarray, progress: float) -> None:
            callback(variation, _end_by(event.reshape(1, 3), end)[0], progress)
    new = sampler.generate(model, history=midi.events[kept & prompt],
                           controls=ops.to_controls(midi.events[kept & ~prompt]), start_time=start,
                           end_time=end, options=options, variations=variations, callback=heard,
                           window=window, check=check,
                           time_map=TimeMap.from_meta(midi.meta) if time_map is None else time_map,
                           grid_step=grid_step, notes=notes)
    return _assemble(midi, kept, [_end_by(events, end) for events in new], join_tracks=join_tracks,
                     options=options, targets=targets, notes=notes)


Task = Literal["accompany", "infill", "continue"]
TASKS: tuple[Task, ...] = ("accompany", "infill", "continue")


@dataclass(frozen=True)
class Span:
    """A stretch of a piece from ``start`` to ``end`` in ``unit``: seconds; bars, numbered from 1 through the
    piece's meter, the end bar included (bars 3 to 4 are two bars); or beats, quarter notes from the start
    through its tempo map. Bars and beats go through the piece's ``TimeMap``, the one conversion."""

    start: float
    end: float
    unit: Literal["seconds", "bars", "beats"] = "seconds"

    def seconds(self, clock: MidiMeta | TimeMap) -> tuple[float, float]:
        """(start, end) in seconds from beat 0 through ``clock``: a piece's ``MidiMeta`` or a ``TimeMap``."""
        if self.unit == "seconds":
            return float(self.start), float(self.end)
        time_map = TimeMap.of(clock)
        if self.unit == "bars":
            if self.start < 1 or self.end < self.start:
                raise GenerationError(f"bars count from 1 and the end bar must not precede the start bar, "
                                      f"got {self.start:g}-{self.end:g}")
            beats = time_map.bar_to_beat(self.start), time_map.bar_to_beat(self.end + 1)
        elif self.unit == "beats":
            if self.start < 0:
                raise GenerationError(f"beats count from 0, got {self.start:g}")
            beats = self.start, self.end
        else:
            raise GenerationError(f"unknown span unit {self.unit!r}: use seconds, bars or beats")
        return float(time_map.to_seconds(beats[0])), float(time_map.to_seconds(beats[1]))

    def ticks(self, time_map: TimeMap) -> tuple[int, int]:
        """(start, end) in model ticks (10 ms, rounded) through ``time_map``, from its model tick 0."""
        start, end = np.rint(np.array(self.seconds(time_map)) * TIME_RESOLUTION).astype(np.int64)
        return int(start) - time_map.offset, int(end) - time_map.offset


@dataclass(frozen=True)
class Request:
    """One generation request, whatever front end it comes from.

    ``task``: accompany, infill or continue. The parts kept: ``keep_parts`` (numbers from ``find_parts``),
    ``keep_tracks`` (track names) or ``keep_instruments`` (General MIDI programs, 128 = drums); accompany
    needs one of them, infill keeps them inside the span too. The parts written are those the new notes
    replace unless ``options.instruments`` names others. ``span``: what infill rewrites; ``seconds``: how much
    continue adds. ``variations``: how many different outputs, sampled in one batch.

    ``kept`` keeps notes one by one instead (a boolean mask over the piece's notes: a DAW's locks). Then
    every task is the same operation, each front end having said through the mask what its task keeps: new
    notes in ``span`` around exactly the kept notes (``_around_kept``). ``time_map``: the piece's clock where
    its meta cannot hold it (a DAW's tempo map in beats, shifted to the piece's tick 0); default its meta's.
    ``grid_step``: new notes on a grid of this many quarter notes, in place of ``options.grid``'s steps per
    quarter note, for a grid coarser than a quarter note (a DAW's).
    """

    task: Task
    keep_parts: Sequence[int] | None = None
    keep_tracks: Sequence[str] | None = None
    keep_instruments: Sequence[int] | None = None
    span: Span | None = None
    seconds: float | None = None
    options: SamplingOptions = field(default_factory=SamplingOptions)
    variations: int = 1
    kept: np.ndarray | None = None
    time_map: TimeMap | None = None
    grid_step: float | None = None

    def keep(self) -> dict:
        """The kept parts as the task functions' keyword arguments."""
        return {"keep_parts": self.keep_parts, "keep_tracks": self.keep_tracks,
                "keep_instruments": self.keep_instruments}


def _around_kept(model: CausalLM, midi: MidiTokens, *, kept: np.ndarray, start: int, end: int,
                 options: SamplingOptions, time_map: TimeMap | None, grid_step: float | None, **common
                 ) -> list[Generation]:
    """New notes in ``[start, end)`` ticks around exactly the ``kept`` notes of ``midi`` (a boolean mask): the
    kept notes before ``start`` are the prompt, the others anticipated controls. Notes are kept one by one,
    so there are no parts to write for: the model picks the instruments (unless ``options.instruments``
    names them) and a new note goes on the track its instrument plays on most. Without a density, new notes
    match the notes they replace (those not kept that start in the span) per second of the span, else the
    kept music's before it."""
    kept = np.asarray(kept, dtype=bool).reshape(-1)
    if len(kept) != len(midi.events):
        raise GenerationError(f"kept marks {len(kept)} notes, the piece has {len(midi.events)}")
    if not 0 <= start < end:
        raise GenerationError(f"empty span: ticks {start} to {end}")
    onsets = _onsets(midi)
    prompt = onsets < start
    replaced = ~kept & ~prompt & (onsets < end)
    options, timing = _musical(midi, options, time_map, replaced, (end - start) / TIME_RESOLUTION,
                               before=(kept & prompt, start / TIME_RESOLUTION))
    return write_span(model, midi, kept=kept, prompt=prompt, start=start, end=end, options=options,
                      grid_step=grid_step, **common, **timing)


def run(model: CausalLM, midi: MidiTokens, request: Request, *, callback: Callback | None = None,
        check: Check | None = None, window: int | None = None) -> list[Generation]:
    """Run ``request`` on ``midi``: one ``Generation`` per variation. ``callback(variation, event, progress)``
    hears each new note as it is drawn, cut at the span's end as in the result; ``check()`` runs before every
    decoding step and may raise to stop. Raises GenerationError for a request that cannot run (bad options,
    no span, nothing to keep)."""
    if request.task not in TASKS:
        raise GenerationError(f"unknown task {request.task!r}: use accompany, infill or continue")
    if request.variations < 1:
        raise GenerationError(f"variations must be at least 1, got {request.variations}")
    request.options.validate()
    time_map = TimeMap.from_meta(midi.meta) if request.time_map is None else request.time_map
    common = {"options": request.options, "variations": request.variations, "callback": callback,
              "window": window, "check": check, "time_map": time_map}
    if request.kept is not None:
        if any(request.keep().values()):
            raise GenerationError("keep notes (kept) or parts (keep_parts, keep_tracks, keep_instruments), "
                                  "not both")
        if request.span is None:
            raise GenerationError("kept notes need the span to write in")
        start, end = request.span.ticks(time_map)
        return _around_kept(model, midi, kept=request.kept, start=start, end=end, grid_step=request.grid_step,
                            **common)
    if request.grid_step is not None:
        raise GenerationError("grid_step goes with kept notes; give options.grid in steps per quarter note")
    if request.task == "accompany":
        return accompany(model, midi, **request.keep(), **common)
    if request.task == "infill":
        if request.span is None:
            raise GenerationError("infill needs the span to rewrite")
        start, end = request.span.ticks(time_map)
        return infill(model, midi, start=start / TIME_RESOLUTION, end=end / TIME_RESOLUTION, **request.keep(),
                      **common)
    if request.seconds is None:
        raise GenerationError("continue needs the seconds to add")
    return continue_piece(model, midi, seconds=request.seconds, **common)
