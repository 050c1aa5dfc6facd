"""The co-pilot's tasks on a MIDI piece: accompany kept parts, infill a span, continue the piece.

Each task decides which notes of the input are kept (as the prompt before the generation span, or as
anticipated controls), calls ``generate`` and assembles whole pieces: the kept notes unchanged (timing,
velocity, track) plus the new notes, with the input's ``MidiMeta`` (tempo map, meter, track names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from amt.errors import GenerationError
from amt.models.base import CausalLM
from amt.sampling.meter import beats, file_grid
from amt.sampling.options import SamplingOptions
from amt.sampling.sampler import GRID_REACH, Callback, generate
from amt.tokenization import ops
from amt.tokenization.midi import MidiTokens
from amt.tokenization.vocab import DUR_OFFSET, TIME_OFFSET, TIME_RESOLUTION

DEFAULT_VELOCITY = 80
"""Velocity of new notes when the input has no notes to take one from."""
VELOCITY_CONTEXT = 5 * TIME_RESOLUTION
"""New notes take the median velocity of the input notes within this many ticks of their onset."""


@dataclass
class Generation:
    """One output piece: ``midi`` holds kept and new notes (ordered by onset) with the input's meta;
    ``generated[i]`` is True when note ``i`` is new; ``notes`` says which musical defaults were switched
    off for this piece and why (no meter, an unclear key...)."""

    midi: MidiTokens
    generated: np.ndarray
    notes: tuple[str, ...] = field(default=())


def context_velocities(onsets: np.ndarray, midi: MidiTokens) -> np.ndarray:
    """Velocities for new notes at ``onsets`` (ticks): the median velocity of the input's notes within
    ``VELOCITY_CONTEXT`` of each onset, else of all its notes, else ``DEFAULT_VELOCITY``."""
    if len(midi.events) == 0:
        return np.full(len(onsets), DEFAULT_VELOCITY, dtype=np.uint8)
    times = midi.events[:, 0] - TIME_OFFSET
    order = np.argsort(times, kind="stable")
    times, velocities = times[order], midi.velocities[order].astype(np.int64)
    overall = int(np.median(velocities))
    first = np.searchsorted(times, onsets - VELOCITY_CONTEXT, side="left")
    last = np.searchsorted(times, onsets + VELOCITY_CONTEXT, side="right")
    out = [int(np.median(velocities[a:b])) if b > a else overall for a, b in zip(first, last, strict=True)]
    return np.asarray(out, dtype=np.uint8)


def _instrument_tracks(midi: MidiTokens) -> dict[int, int]:
    """The track each instrument plays on most often in the input (where new notes of it belong)."""
    instruments = ops.instrument_of(midi.events[:, 2]) if len(midi.events) else np.zeros(0, np.int64)
    tracks = {}
    for instrument in np.unique(instruments):
        values, counts = np.unique(midi.tracks[instruments == instrument], return_counts=True)
        tracks[int(instrument)] = int(values[counts.argmax()])
    return tracks


def _assemble(midi: MidiTokens, kept: np.ndarray, new: list[np.ndarray], *, join_tracks: bool,
              notes: Sequence[str] = ()) -> list[Generation]:
    """Whole pieces from the kept input notes (boolean mask ``kept``) and each variation's new notes.

    Kept notes keep their track. With ``join_tracks``, a new note goes to the track its instrument plays on
    in the input (a filled gap or a continuation belongs to the part it extends); otherwise, and for an
    instrument new to the piece, it gets no track (-1), so a written file puts it on a track of its own
    named after its instrument.
    """
    tracks_of = _instrument_tracks(midi) if join_tracks else {}
    out = []
    for events in new:
        new_tracks = np.array([tracks_of.get(int(i), -1) for i in ops.instrument_of(events[:, 2])], np.int32)
        all_events = np.concatenate([midi.events[kept], events]).astype(np.int64).reshape(-1, 3)
        velocities = np.concatenate([midi.velocities[kept],
                                     context_velocities(events[:, 0] - TIME_OFFSET, midi)]).astype(np.uint8)
        tracks = np.concatenate([midi.tracks[kept], new_tracks]).astype(np.int32)
        generated = np.concatenate([np.zeros(int(kept.sum()), bool), np.ones(len(events), bool)])
        order = np.argsort(all_events[:, 0], kind="stable")  # kept notes first on equal onsets
        piece = MidiTokens(all_events[order], velocities[order], tracks[order], midi.meta, None)
        out.append(Generation(piece, generated[order], tuple(notes)))
    return out


def _end_tick(midi: MidiTokens) -> int:
    if len(midi.events) == 0:
        return 0
    return int((midi.events[:, 0] - TIME_OFFSET + midi.events[:, 1] - DUR_OFFSET).max())


def _onsets(midi: MidiTokens) -> np.ndarray:
    return midi.events[:, 0] - TIME_OFFSET


def _musical(midi: MidiTokens, options: SamplingOptions | None, end: int, replaced: np.ndarray,
             seconds: float) -> tuple[SamplingOptions, dict, list[str]]:
    """The request's options with the file's defaults filled in, ``generate``'s timing arguments and notes
    on what was switched off. ``file_grid``: the grid of the input's notes (``meter.file_grid``) when no
    ``grid`` is given; ``file_density``: ``replaced`` notes (a boolean mask of the input; of the parts
    of ``options.instruments`` only, when given) per second of ``seconds`` when no ``density`` is given.
    The grid and the beats (with the bar starts) come through the input's tempo map and meter, as far as
    decoding can reach."""
    options = options or SamplingOptions()
    notes: list[str] = []
    changes: dict = {}
    if options.grid is None and options.file_grid:
        steps = file_grid(midi.meta, _onsets(midi))
        if steps is None:
            notes.append("grid off: the file's notes fit neither a sixteenth nor a triplet grid")
        changes["grid"] = steps
    if options.density is None and options.file_density:
        if options.instruments is not None:
            # Only the replaced parts the request writes: an obbligato part dropped is not to be matched.
            present = ops.instrument_of(midi.events[:, 2]) if len(midi.events) else np.zeros(0, np.int64)
            replaced = replaced & np.isin(present, [int(i) for i in options.instruments])
        count = int(replaced.sum())
        if count and seconds > 0:
            changes["density"] = count / seconds
        else:
            notes.append("density target off: no notes to take it from")
    options = replace(options, **changes)
    grid = midi.meta.grid_ticks(options.grid, end + GRID_REACH) if options.grid else None
    timing: dict = {"grid_ticks": grid}
    if options.weighs_beats:
        ticks, strong = beats(midi.meta, end + GRID_REACH)
        timing["beat_ticks"], timing["strong_ticks"] = ticks, ticks[strong]
    timing["notes"] = notes
    return options, timing, notes


def accompany(model: CausalLM, midi: MidiTokens, *, keep_instruments: Sequence[int] | None = None,
              keep_tracks: Sequence[str] | None = None, options: SamplingOptions | None = None,
              variations: int = 1, callback: Callback | None = None, window: int | None = None
              ) -> list[Generation]:
    """Write new parts around the kept ones: the notes of ``keep_instruments`` (General MIDI programs, 128 =
    drums) or ``keep_tracks`` (track names) become controls over the whole piece and come back unchanged;
    every other note is replaced by new notes over the piece's span, from its first note to the end of its
    last (silence before the first note, such as a pickup bar written late, is not part of the music)."""
    if (keep_instruments is None) == (keep_tracks is None) or not (keep_instruments or keep_tracks):
        raise GenerationError("give the instruments or the tracks to keep (one of the two)")
    if len(midi.events) == 0:
        raise GenerationError(f"{midi.source or 'the input'} has no notes to accompany")
    instruments = ops.instrument_of(midi.events[:, 2])
    if keep_instruments is not None:
        missing = sorted({int(i) for i in keep_instruments} - set(midi.instruments()))
        if missing:
            raise GenerationError(f"instrument(s) {missing} not in the file; it has "
                                  f"{list(midi.instruments())}")
        kept = np.isin(instruments, [int(i) for i in keep_instruments])
    else:
        names = midi.meta.track_names
        # Track names match without regard to case or surrounding spaces.
        with_notes = {t: names[t].strip().casefold() for t in set(midi.tracks.tolist())
                      if 0 <= t < len(names)}
        wanted = {name.strip().casefold() for name in keep_tracks}
        missing = sorted(wanted - set(with_notes.values()))
        if missing:
            present = [names[t] for t in sorted(with_notes)]
            raise GenerationError(f"track(s) {missing} have no notes in the file; its tracks with notes are "
                                  f"{present}")
        kept = np.isin(midi.tracks, [t for t, name in with_notes.items() if name in wanted])
    start, end = int(_onsets(midi).min()), max(_end_tick(midi), 1)
    options, timing, notes = _musical(midi, options, end, ~kept, (end - start) / TIME_RESOLUTION)
    new = generate(model, history=np.zeros((0, 3), np.int64), controls=ops.to_controls(midi.events[kept]),
                   start_time=start, end_time=end, options=options, variations=variations,
                   callback=callback, window=window, **timing)
    # New parts are not the kept ones: a new violin line is not "Violin I" even if that track is kept.
    return _assemble(midi, kept, new, join_tracks=False, notes=notes)


def infill(model: CausalLM, midi: MidiTokens, *, start: float, end: float,
           options: SamplingOptions | None = None, variations: int = 1, callback: Callback | None = None,
           window: int | None = None) -> list[Generation]:
    """Replace the notes starting in ``[start, end)`` seconds with new ones: the notes before are the prompt,
    the notes after are anticipated controls; both come back unchanged and new notes start inside the span."""
    duration = _end_tick(midi) / TIME_RESOLUTION
    if not end > start:
        raise GenerationError(f"empty span: start {start} s is not before end {end} s")
    if start < 0 or start >= duration or end > duration + 1 / TIME_RESOLUTION:
        raise GenerationError(f"span {start}-{end} s is beyond the file, which lasts {duration:.2f} s")
    first, last = round(start * TIME_RESOLUTION), round(end * TIME_RESOLUTION)
    onsets = _onsets(midi)
    before, after = onsets < first, onsets >= last
    # The density of the music around the gap: its notes per second outside the span.
    outside = max(duration - (last - first) / TIME_RESOLUTION, 1 / TIME_RESOLUTION)
    options, timing, notes = _musical(midi, options, last, before | after, outside)
    new = generate(model, history=midi.events[before], controls=ops.to_controls(midi.events[after]),
                   start_time=first, end_time=last, options=options, variations=variations,
                   callback=callback, window=window, **timing)
    return _assemble(midi, before | after, new, join_tracks=True, notes=notes)


def continue_piece(model: CausalLM, midi: MidiTokens, *, seconds: float,
                   options: SamplingOptions | None = None, variations: int = 1,
                   callback: Callback | None = None, window: int | None = None) -> list[Generation]:
    """Add ``seconds`` of new music after the end of the piece (where its last note stops)."""
    if not seconds > 0:
        raise GenerationError(f"seconds must be positive, got {seconds}")
    first = _end_tick(midi)
    last = first + round(seconds * TIME_RESOLUTION)
    everything = np.ones(len(midi.events), bool)
    options, timing, notes = _musical(midi, options, last, everything, max(first, 1) / TIME_RESOLUTION)
    new = generate(model, history=midi.events, controls=np.zeros((0, 3), np.int64), start_time=first,
                   end_time=last, options=options, variations=variations,
                   callback=callback, window=window, **timing)
    return _assemble(midi, everything, new, join_tracks=True, notes=notes)
