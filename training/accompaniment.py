"""The accompaniment yardstick: keep a piece's melody, write its other parts, and judge them as a musician
would, beside the composer's own parts, a rule-based harmoniser and random notes.

``amt eval MODEL --accompany DIR`` reads the MIDI files of ``DIR``; in each it keeps the melody part (an
instrument named in ``DIR/melody.json`` as ``{"file.mid": program}``, else ``choose_melody``'s rule) over the
first ``seconds`` of the piece, and lets each system write the other parts with the original's instruments
(the model as ``amt accompany`` does by default: for the replaced parts, each in its register).
Per piece and system (``ROWS``):

- ``chord_fit``: share of beats (the file's meter through its tempo map, ``amt.sampling.meter``) with an
  accompaniment note sounding where the pitch classes of the melody and the accompaniment sounding at the
  beat fit inside one triad or seventh chord (``amt.sampling.chords``; incomplete chords count);
- ``in_key``: share of accompaniment notes in the key of the whole original (Krumhansl-Schmuckler,
  ``amt.sampling.tonality``; minor admits the raised sixth and seventh);
- ``on_grid``: share of accompaniment onsets on the file's grid (sixteenths, with triplets where the piece
  uses them: ``meter.file_grid``), within a tick;
- ``density``: accompaniment notes per second over the replaced parts' notes per second in the span;
- ``below``: share of accompaniment notes below the melody note sounding at their onset (notes with no
  melody sounding are not counted);
- ``bass_on_bar``: share of bar starts (the meter's first beats, with accompaniment sounding) on which the
  lowest accompaniment note sounding was struck on that bar start (within a tick): a bass that moves on the
  bar rather than one held across the bar line.

Systems: ``original`` (the composer's parts), ``model``, ``rule`` (``rule_accompaniment``: on each beat the
diatonic triad holding the melody note, nearest voice leading, root in the bass) and ``random`` (random notes
of the key on the beats, in each part's compass).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.sampling.chords import fits_chord
from amt.sampling.meter import GRID_TOLERANCE, beats, file_grid, on_grid
from amt.sampling.tonality import estimate_key, key_pitch_classes
from amt.tokenization import ops
from amt.tokenization.midi import MidiTokens, midi_tokens_from_notes
from amt.tokenization.notes import EVENT_DURATIONS, end_ticks, onset_ticks
from amt.tokenization.vocab import DRUMS, TIME_RESOLUTION

SECONDS = 20.0
"""Default span scored: the first this many seconds of each piece."""
ROWS: tuple[tuple[str, str], ...] = (
    ("chord_fit", "beats where melody + accompaniment fit one triad or seventh chord"),
    ("in_key", "accompaniment notes in the piece's key"),
    ("on_grid", "accompaniment onsets on the file's 16th/triplet grid"),
    ("density", "density: new notes/s over the replaced parts' notes/s"),
    ("below", "accompaniment notes below the melody note sounding"),
    ("bass_on_bar", "bar starts where the lowest accompaniment note is struck on the bar"),
)
SYSTEMS = ("original", "model", "rule", "random")
DENSITY_BAND = (0.6, 1.6)
"""A piece's density ratio counts as matching the original within this band."""
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
BASS_RANGE = (38, 55)  # D2-G3: where the rule baseline puts its roots


class AccompanimentError(AmtError):
    """A piece that cannot be scored as melody + accompaniment (one part only, no notes in the span)."""


def _notes(midi: MidiTokens) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(onsets, ends, pitches, instruments) of a piece's pitched notes (drums and RESTs dropped)."""
    events = midi.events[~ops.is_rest(midi.events)]
    instruments = ops.instrument_of(events[:, 2])
    events, instruments = events[instruments != DRUMS], instruments[instruments != DRUMS]
    onsets = onset_ticks(events)
    return onsets, end_ticks(events), ops.pitch_of(events[:, 2]), instruments


def choose_melody(midi: MidiTokens) -> int:
    """The melody part by rule: of the pitched instruments with at least a quarter of the busiest one's
    notes, the one with the highest median pitch (the first violin, the canto, the right hand's part)."""
    _, _, pitches, instruments = _notes(midi)
    programs, counts = np.unique(instruments, return_counts=True)
    if len(programs) < 2:
        raise AccompanimentError(f"{midi.source or 'a piece'}: one part only, nothing to accompany")
    busy = programs[counts >= counts.max() / 4]
    return int(max(busy, key=lambda p: np.median(pitches[instruments == p])))


def crop(midi: MidiTokens, seconds: float) -> MidiTokens:
    """The notes of ``midi`` starting within ``seconds`` of its first note, cut at that time."""
    onsets, ends = onset_ticks(midi.events), end_ticks(midi.events)
    start = int(onsets.min())
    stop = start + round(seconds * TIME_RESOLUTION)
    keep = onsets < stop
    events = midi.events[keep].copy()
    events[:, 1] = EVENT_DURATIONS.token(np.minimum(ends[keep], stop) - onsets[keep])
    return MidiTokens(events, midi.velocities[keep], midi.tracks[keep], midi.meta, midi.source)


def _sounding(onsets: np.ndarray, ends: np.ndarray, tick: int) -> np.ndarray:
    return (onsets <= tick) & (tick < ends)


def score(piece: MidiTokens, original: MidiTokens, melody: int, key: frozenset[int], grid: np.ndarray
          ) -> dict[str, float]:
    """The metrics of the module docstring for one system's ``piece`` (melody + accompaniment) against the
    ``original`` (both cropped to the span); ``key``: the pitch classes of the whole original's key;
    ``grid``: the file's grid ticks."""
    onsets, ends, pitches, instruments = _notes(piece)
    is_melody = instruments == melody
    m_on, m_end, m_pitch = onsets[is_melody], ends[is_melody], pitches[is_melody]
    a_on, a_end, a_pitch = onsets[~is_melody], ends[~is_melody], pitches[~is_melody]
    o_on, _, _, o_instr = _notes(original)
    start, stop = int(o_on.min()), int(_notes(original)[1].max())
    span = max(stop - start, 1) / TIME_RESOLUTION
    replaced = int((o_instr != melody).sum())
    beat_ticks, strong = beats(original.meta, stop)
    strong, beat_ticks = strong[beat_ticks >= start], beat_ticks[beat_ticks >= start]
    fit = counted = struck = bars = 0
    for tick, is_bar in zip(beat_ticks.tolist(), strong.tolist(), strict=True):
        accompaniment = a_pitch[_sounding(a_on, a_end, tick)]
        if not len(accompaniment):
            continue
        counted += 1
        fit += fits_chord([*accompaniment.tolist(), *m_pitch[_sounding(m_on, m_end, tick)].tolist()])
        if is_bar:
            lowest = np.flatnonzero(_sounding(a_on, a_end, tick))[np.argmin(accompaniment)]
            bars += 1
            struck += abs(int(a_on[lowest]) - int(tick)) <= GRID_TOLERANCE
    below = heard = 0
    for onset, pitch in zip(a_on.tolist(), a_pitch.tolist(), strict=True):
        tune = m_pitch[_sounding(m_on, m_end, onset)]
        if len(tune):
            heard += 1
            below += pitch < tune.max()
    nan = float("nan")
    return {
        "chord_fit": fit / counted if counted else nan,
        "in_key": float(np.isin(a_pitch % 12, sorted(key)).mean()) if len(a_pitch) else nan,
        "on_grid": float(on_grid(a_on, grid).mean()) if len(a_on) else nan,
        "density": (len(a_on) / span) / (replaced / span) if replaced else nan,
        "below": below / heard if heard else nan,
        "bass_on_bar": struck / bars if bars else nan,
    }


def _beat_spans(original: MidiTokens) -> list[tuple[int, int]]:
    """(start, end) ticks of each beat of the span."""
    onsets, ends, _, _ = _notes(original)
    start, stop = int(onsets.min()), int(ends.max())
    ticks, _ = beats(original.meta, stop)
    ticks = ticks[ticks >= start]
    bounds = [*ticks.tolist(), stop]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _replaced_parts(original: MidiTokens, melody: int) -> list[tuple[int, int, int]]:
    """(program, lowest, highest pitch) of each replaced part, lowest part first."""
    _, _, pitches, instruments = _notes(original)
    parts = []
    for program in np.unique(instruments[instruments != melody]):
        mine = pitches[instruments == program]
        parts.append((int(program), int(mine.min()), int(mine.max()), float(np.median(mine))))
    return [p[:3] for p in sorted(parts, key=lambda p: p[3])]


def _with_notes(original: MidiTokens, melody: int, notes: list[tuple[int, int, int, int]], name: str
                ) -> MidiTokens:
    """The original's melody plus ``notes`` (onset, end, pitch, program) as a piece."""
    onsets, ends, pitches, instruments = _notes(original)
    keep = instruments == melody
    new = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
    return midi_tokens_from_notes(
        np.concatenate([onsets[keep], new[:, 0]]) / TIME_RESOLUTION,
        np.concatenate([ends[keep] - onsets[keep], new[:, 1] - new[:, 0]]) / TIME_RESOLUTION,
        np.concatenate([pitches[keep], new[:, 2]]), np.concatenate([instruments[keep], new[:, 3]]),
        meta=original.meta, source=f"{name} accompaniment of {original.source}")


def _scale(tonic: int, mode: str) -> list[int]:
    return [(tonic + step) % 12 for step in (MAJOR if mode == "major" else HARMONIC_MINOR)]


def rule_accompaniment(original: MidiTokens, melody: int, key: tuple[int, str]) -> MidiTokens:
    """The rule-based baseline: on each beat where a melody note sounds, the diatonic triad (harmonic minor
    in minor keys) that holds it, chosen and voiced for the smallest total movement from the previous
    chord: the root in the bass (``BASS_RANGE``, on the lowest replaced part), the other chord tones on the
    other parts just below the melody. A melody note outside the key keeps the previous chord."""
    scale = _scale(*key)
    triads = [(scale[i], scale[(i + 2) % 7], scale[(i + 4) % 7]) for i in range(7)]
    onsets, ends, pitches, instruments = _notes(original)
    is_melody = instruments == melody
    m_on, m_end, m_pitch = onsets[is_melody], ends[is_melody], pitches[is_melody]
    parts = _replaced_parts(original, melody)
    previous: list[int] | None = None
    notes = []
    for a, b in _beat_spans(original):
        tune = m_pitch[_sounding(m_on, m_end, a)]
        if not len(tune):
            previous = None
            continue
        top = int(tune.max())
        best = None
        for triad in triads:
            if top % 12 not in triad:
                continue
            voicing = _voice(triad, top, len(parts), previous)
            cost = 0 if previous is None else sum(abs(x - y) for x, y in zip(voicing, previous, strict=True))
            if best is None or cost < best[0]:
                best = (cost, voicing)
        if best is None:
            if previous is None:
                continue
            voicing = previous
        else:
            voicing = best[1]
        for pitch, (program, _, _) in zip(voicing, parts, strict=True):
            notes.append((a, b, pitch, program))
        previous = voicing
    return _with_notes(original, melody, notes, "rule")


def _voice(triad: tuple[int, int, int], top: int, voices: int, previous: list[int] | None) -> list[int]:
    """Pitches for ``voices`` parts, lowest first: the root in the bass range, then chord tones below
    ``top`` (upper tones first), each nearest its previous pitch where there is one."""
    root = triad[0]
    low, high = BASS_RANGE
    bass_choices = [p for p in range(low, high + 1) if p % 12 == root]
    target = previous[0] if previous else (low + high) // 2
    pitches = [min(bass_choices, key=lambda p: abs(p - target))]
    below = [p for p in range(max(top - 12, pitches[0] + 1), top) if p % 12 in triad]
    for v in range(1, voices):
        if not below:
            pitches.append(pitches[-1])
            continue
        wanted = previous[v] if previous else below[-(v % len(below)) - 1]
        pitches.append(min(below, key=lambda p: abs(p - wanted)))
    return pitches


def random_accompaniment(original: MidiTokens, melody: int, key: tuple[int, str],
                         rng: np.random.Generator) -> MidiTokens:
    """The floor: on every beat, each replaced part plays a random note of the key within its compass in
    the original."""
    in_key = key_pitch_classes(*key)
    notes = []
    for program, low, high in _replaced_parts(original, melody):
        choices = [p for p in range(low, high + 1) if p % 12 in in_key] or list(range(low, high + 1))
        for a, b in _beat_spans(original):
            notes.append((a, b, int(rng.choice(choices)), program))
    return _with_notes(original, melody, notes, "random")


def load_pieces(folder: str | Path, limit: int = 0) -> list[tuple[MidiTokens, int]]:
    """(piece, melody program) for the MIDI files of ``folder`` in name order (``limit`` of them; 0: all):
    the melody from ``folder/melody.json`` where it names the file, else ``choose_melody``."""
    from amt.tokenization.midi import read_midi

    folder = Path(folder)
    if not folder.is_dir():
        raise AccompanimentError(f"{folder}: folder not found")
    given: Mapping[str, int] = {}
    if (folder / "melody.json").is_file():
        given = json.loads((folder / "melody.json").read_text())
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mid", ".midi"))
    pieces = []
    for path in files:
        midi = read_midi(path)
        try:
            melody = int(given[path.name]) if path.name in given else choose_melody(midi)
        except AccompanimentError:
            continue  # a one-part file has nothing to accompany
        pieces.append((midi, melody))
        if len(pieces) == limit:
            break
    if not pieces:
        raise AccompanimentError(f"{folder}: no MIDI file with a melody and other parts")
    return pieces


def accompaniment_report(model, pieces: Sequence[tuple[MidiTokens, int]], *, seconds: float = SECONDS,
                         samples: int = 1, seed: int = 0, sampling: Mapping | None = None,
                         outputs: list | None = None) -> dict:
    """Score every system on every piece: ``{"pieces": [{"name", "melody", "key", system: metrics}],
    "mean": {system: metrics}, "density_in_band": {system: share of pieces}}``. ``model`` None skips the
    model row; ``sampling`` goes to ``SamplingOptions``; ``outputs``, when given, receives the model's
    pieces."""
    from amt.sampling import Request, SamplingOptions, run

    rng = np.random.default_rng(seed)
    rows = []
    for i, (full, melody) in enumerate(pieces):
        onsets, ends, pitches, _ = _notes(full)
        tonic, mode = estimate_key(pitches, (ends - onsets).astype(np.float64))
        key = key_pitch_classes(tonic, mode)
        original = crop(full, seconds)
        onsets, o_ends, _, _ = _notes(original)
        steps = file_grid(original.meta, onsets) or 4
        grid = original.meta.grid_ticks(steps, int(o_ends.max()) + 1)
        row = {"name": Path(full.source or f"piece {i}").name, "melody": melody,
               "key": f"{NAMES[tonic]} {mode}", "grid": steps}
        systems = {"original": [original], "rule": [rule_accompaniment(original, melody, (tonic, mode))],
                   "random": [random_accompaniment(original, melody, (tonic, mode), rng)]}
        if model is not None:
            # No instruments given: as `amt accompany --keep-part N` does, the new notes are written for the
            # replaced parts, with their programs and registers, each part getting its share.
            options = SamplingOptions.from_dict({**dict(sampling or {}), "seed": seed + i})
            request = Request("accompany", keep_instruments=[melody], options=options, variations=samples)
            generations = run(model, original, request)
            systems["model"] = [g.midi for g in generations]
            row["notes"] = list(generations[0].notes)
            if outputs is not None:
                outputs.append(systems["model"])
        for name, versions in systems.items():
            scores = [score(v, original, melody, key, grid) for v in versions]
            row[name] = {metric: float(np.nanmean([s[metric] for s in scores])) for metric, _ in ROWS}
        rows.append(row)
    names = [s for s in SYSTEMS if s in rows[0]]
    mean = {s: {m: float(np.nanmean([r[s][m] for r in rows])) for m, _ in ROWS} for s in names}
    low, high = DENSITY_BAND
    in_band = {s: float(np.mean([low <= r[s]["density"] <= high for r in rows])) for s in names}
    return {"seconds": seconds, "samples": samples, "seed": seed, "pieces": rows, "mean": mean,
            "density_in_band": in_band}


def format_accompaniment_table(report: Mapping) -> str:
    """Markdown: one row per metric (mean over pieces), one column per system."""
    names = [s for s in SYSTEMS if s in report["mean"]]
    lines = [f"| mean of {len(report['pieces'])} pieces | {' | '.join(names)} |",
             "|---|" + "---:|" * len(names)]
    for metric, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(f"{report['mean'][s][metric]:.2f}" for s in names) + " |")
    low, high = DENSITY_BAND
    lines.append(f"| pieces with density {low}-{high}x | "
                 + " | ".join(f"{report['density_in_band'][s]:.2f}" for s in names) + " |")
    return "\n".join(lines)
