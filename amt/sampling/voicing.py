"""Voice leading for single-line parts: where each part is at a given tick, and which pitches would make
parallel fifths or octaves.

A *part* is one instrument. Its *line* at a tick is the note sounding there that started last; a part
sounding a chord (several notes with the same latest onset) has no single line there and is left out, so the
rule binds melodies, choir voices and bass lines, never the chords of a piano.
"""

from __future__ import annotations

import numpy as np

from amt.tokenization import ops
from amt.tokenization.notes import end_ticks, onset_ticks
from amt.tokenization.vocab import DRUMS, MAX_PITCH

PERFECT = (0, 7)
"""Interval classes (semitones mod 12) that may not be approached in parallel: unison/octave and fifth."""
_PITCHES = np.arange(MAX_PITCH)


def line_pitch(onsets: np.ndarray, ends: np.ndarray, pitches: np.ndarray, tick: int) -> int | None:
    """Pitch of a part's line at ``tick``: the note sounding there that started last. None when nothing
    sounds or when several notes share that latest onset (a chord, not a line)."""
    sounding = tick < ends
    return last_pitch(onsets[sounding], pitches[sounding], tick)


def last_pitch(onsets: np.ndarray, pitches: np.ndarray, tick: int) -> int | None:
    """Pitch of a part's latest note starting at or before ``tick``, sounding or not: where its line was
    last, across a rest. None before its first note or when that latest onset is a chord."""
    started = onsets <= tick
    if not started.any():
        return None
    newest = started & (onsets == onsets[started].max())
    return int(pitches[newest][0]) if newest.sum() == 1 else None


def parallel_moves(before: int, others_before: int, others_now: int) -> np.ndarray:
    """Boolean ``[MAX_PITCH]``: the pitches a part at ``before`` may not move to while another part moves
    from ``others_before`` to ``others_now``: same direction, from a perfect interval (fifth, or unison/
    octave; compound intervals included) into the same interval class."""
    interval = abs(before - others_before) % 12
    if others_now == others_before or interval not in PERFECT:
        return np.zeros(MAX_PITCH, dtype=bool)  # oblique motion, or no perfect interval to leave
    direction = np.sign(others_now - others_before)
    return (np.sign(_PITCHES - before) == direction) & (np.abs(_PITCHES - others_now) % 12 == interval)


NEW_NOTES_KEPT = 16
"""New notes remembered per part and row: enough to find where a monophonic line was a beat ago, through
the passing notes of even a fast tempo."""


class PartLines:
    """The notes of every part that the sampler's rows can see, for the no-parallels rule: the kept notes
    (prompt and controls, the same for every row) and each row's newest notes (``NEW_NOTES_KEPT`` per
    part)."""

    def __init__(self, kept_events: np.ndarray, rows: int):
        kept_events = kept_events[~ops.is_rest(kept_events)]
        instruments = ops.instrument_of(kept_events[:, 2])
        self.kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for instrument in np.unique(instruments):
            if instrument == DRUMS:
                continue
            part = kept_events[instruments == instrument]
            self.kept[int(instrument)] = (onset_ticks(part), end_ticks(part), ops.pitch_of(part[:, 2]))
        self.new: list[dict[int, list[tuple[int, int, int]]]] = [{} for _ in range(rows)]

    def add(self, row: int, instrument: int, onset: int, end: int, pitch: int) -> None:
        """Record a new note of ``row``; it ends the part's previous new note if that one still sounds (the
        sampler's monophonic parts work that way)."""
        notes = self.new[row].setdefault(instrument, [])
        if notes:
            before_onset, before_end, before_pitch = notes[-1]
            notes[-1] = (before_onset, min(before_end, onset), before_pitch)
        notes.append((onset, end, pitch))
        del notes[:-NEW_NOTES_KEPT]

    def select(self, index: np.ndarray) -> None:
        """Keep the rows in ``index`` (rows that finished leave the batch)."""
        self.new = [self.new[i] for i in index]

    def _notes(self, row: int, instrument: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(onsets, ends, pitches) of a part: its kept notes and the row's new ones."""
        onsets, ends, pitches = self.kept.get(instrument, (np.zeros(0, np.int64),) * 3)
        new = self.new[row].get(instrument)
        if new:
            onsets = np.concatenate([onsets, [n[0] for n in new]])
            ends = np.concatenate([ends, [n[1] for n in new]])
            pitches = np.concatenate([pitches, [n[2] for n in new]])
        return onsets, ends, pitches

    def pitch_at(self, row: int, instrument: int, tick: int) -> int | None:
        """Pitch of the part's line at ``tick`` (see ``line_pitch``)."""
        return line_pitch(*self._notes(row, instrument), tick)

    def pitch_before(self, row: int, instrument: int, tick: int) -> int | None:
        """Where the part's line was last before ``tick``, across a rest (see ``last_pitch``)."""
        onsets, _, pitches = self._notes(row, instrument)
        return last_pitch(onsets, pitches, tick - 1)

    def parallel_pitches(self, row: int, instrument: int, onset: int, since: int | None = None) -> np.ndarray:
        """Boolean ``[MAX_PITCH]``: the pitches with which a new note of ``instrument`` at ``onset`` would
        make parallel fifths or octaves with another part (``parallel_moves``): from the
        sonority just before ``onset`` to the one at it, or, with ``since``, from the sonority sounding at
        tick ``since`` (the previous beat) to the one at ``onset``, whatever passing notes lie between.

        Consecutive sonorities are what the rule books forbid outright. Parallels between successive beats
        with passing notes between them are rare in Bach's chorales but not absent (374 of the 412 fifths and
        octaves from beat to beat in the 409 music21 chorales have them), so the sampler weighs those down
        rather than forbidding them (``SamplingOptions.beat_parallels``). A part with a note at this onset
        that is not drawn yet is checked when it is, against this note.
        """
        parallel = np.zeros(MAX_PITCH, dtype=bool)
        if since is None:
            before = self.pitch_before(row, instrument, onset)
        else:
            before = self.pitch_at(row, instrument, since)
        if before is None:  # nothing to move from: the part's first note, or silent on the previous beat
            return parallel
        for other in (set(self.kept) | set(self.new[row])) - {instrument, DRUMS}:
            now = self.pitch_at(row, other, onset)
            if since is None:
                others_before = self.pitch_before(row, other, onset)
            else:
                others_before = self.pitch_at(row, other, since)
            if now is not None and others_before is not None:
                parallel |= parallel_moves(before, others_before, now)
        return parallel
