"""Convert the corpus bundled with ``music21`` into multi-instrument MIDI files for training.

Usage::

    python -m amt.training.music21_corpus --out /data/music21_midi [--sources bach_chorales,palestrina]
        [--limit N] [--timeout 60]

writes ``OUT/<source>/<name>.mid``, ``OUT/manifest.json`` (one record per file: source, work, group, parts and
their programs, duration, split) and ``OUT/split.json`` (``{"train": [...], "valid": [...], "test": [...]}``,
paths relative to ``OUT``), which imposes the split on the tokenized corpus::

    amt prepare OUT --out CORPUS --split-file OUT/split.json

``music21`` is an optional dependency (``pip install amt[music21]``).

Why not music21's own MIDI export: it writes every part on program 0 (a chorale's four voices become one
instrument, so "keep the soprano" cannot be said by instrument), adds empty tracks and writes pickup bars at
time 0. We read the parsed scores ourselves and write the MIDI with symusic.

Program mapping (one distinct General MIDI program per part within a file):

* Vocal parts (Bach chorales, Palestrina, Monteverdi, trecento, Josquin) become a saxophone quartet, whose GM
  programs carry the voice names: Soprano -> 64 Soprano Sax, Alto -> 65 Alto Sax, Tenor -> 66 Tenor Sax,
  Bass -> 67 Baritone Sax (the bass of a sax quartet). A musician can say "keep the soprano, write the alto,
  tenor and bass" as "keep 64, generate 65-67"; the four timbres are distinct, sit in the right registers and
  collide with no instrument used elsewhere in the corpus (so the model never confuses a voice with the
  violins of a quartet or a horn of a chorale). Latin names map too (cantus/superius -> soprano, altus/
  contratenor -> alto, bassus -> bass). A second part of the same voice (Palestrina's divided voices) and the
  baritone take the matching brass instrument: Soprano II -> 56 Trumpet, Alto II -> 60 French Horn,
  Tenor II -> 57 Trombone, Baritone -> 57 Trombone (a Tenor II beside a baritone -> 62 Synth Brass 1),
  Bass II -> 58 Tuba. An unnamed vocal part ("Quinto", "Sextus") is classed by its median pitch.
* Instrumental parts keep their instrument (from the part name: "Violin I" -> 40, "Horn 2" -> 60,
  "Basso continuo"/"Organ" -> 19 Church Organ; else music21's instrument). When two parts of a file want the
  same program, the later one takes the "second chair" (Violin II -> 110 Fiddle, Trumpet II -> 59 Muted
  Trumpet, Oboe II -> 69 English Horn, ...), else a free program of the same GM family that no other part of
  the file wants (so a second violin never pushes the viola off 41). Piano staves of one instrument are
  merged into one track.
* Monophonic folk tunes (O'Neill's, Ryan's Mammoth, Aird's Airs: fiddle repertoire) are written for 40 Violin.

Timing: the score's metronome marks, else a default tempo per source (chorales 90 quarter notes per minute,
which is a plausible singing tempo; others 120 as music21 assumes). A pickup bar is delayed by the missing
beats so that bar lines in the MIDI file fall where the score has them. Repeats are not expanded (expansion
fails on badly formed repeats in this corpus and would only duplicate material). Grace notes are dropped.
Velocity is constant (80): tokens do not carry it.

Split: whole works only. Bach chorales are grouped by melody (the intervals of the first 16 soprano notes,
so transpositions of one tune fall together; 407 chorales form about 300 tunes) and folk tunes by the same
melody key across collections, so that no test melody appears in training; multi-movement works (quartets)
are grouped by opus. Groups are ranked by a SHA-256 hash of their key (deterministic, independent of file
order) and filled into test (about 12%, at least 40 chorales), valid (about 5%) and train per source.

Licences: music21's corpus licence says the encodings are distributed with permission and are out of
copyright in the US or licensed, "though there may be restrictions on commercial use". The Essen folk song
collection is for non-commercial use only and is excluded, as are collections of unclear provenance
(Nottingham, miscFolk), 20th-century works (Schoenberg, Webern, Beach) and test files (demos, theory
exercises, lead sheets).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from amt.errors import AmtError
from amt.fileio import atomic_write_text
from amt.training.parts import (
    TICKS_PER_QUARTER,
    VOICE_BY_MEDIAN,
    VOICE_PROGRAMS,
    Part,
    assign_programs,
    role_from_name,
    voice_from_name,
    write_parts_midi,
)

MELODY_KEY_NOTES = 16
TUNE_BEATS = 24
"""Beats of a chorale's tune compared when grouping settings of one melody (``beat_melody``)."""
TUNE_DISTANCE = 0.25
"""Edits per beat under which two beat melodies count as one tune (``same_tune``): ornaments, a split note
or a different pickup change a few beats, another tune changes most."""
CHORALE_VOICES = frozenset({"soprano", "alto", "tenor", "bass"})
SPLITS = ("train", "valid", "test")



@dataclass(frozen=True)
class Source:
    """A collection of the music21 corpus converted as one source."""

    name: str
    patterns: tuple[str, ...]  # globs relative to music21's corpus folder
    default_qpm: float  # tempo when the score has no metronome mark
    vocal: bool  # parts are voices (mapped by voice name), not instruments
    default_program: int | None  # program of an unnamed part (None: class by median pitch when vocal, else 0)
    licence: str


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("bach_chorales", ("bach/bwv*.mxl", "bach/bwv*.xml", "bach/bwv*.krn"), 90.0, True, None,
               "J. S. Bach (1685-1750), public domain; music21 encoding"),
        Source("palestrina", ("palestrina/*.krn",), 120.0, True, None,
               "G. P. da Palestrina (1525-1594), public domain; Humdrum encoding via music21"),
        Source("monteverdi", ("monteverdi/*.mxl",), 120.0, True, None,
               "C. Monteverdi (1567-1643), public domain; music21 encoding"),
        Source("renaissance", ("trecento/*.xml", "trecento/*.mxl", "ciconia/*", "luca/*", "lusitano/*",
                               "josquin/*.abc"), 120.0, True, None,
               "14th-16th century polyphony, public domain; music21 encodings"),
        Source("quartets", ("beethoven/**/*.mxl", "beethoven/*.mxl", "mozart/**/*.mxl", "haydn/**/*.mxl"),
               120.0, False, None, "Beethoven, Mozart, Haydn string quartets, public domain"),
        Source("classical_other", ("corelli/**/*.xml", "cpebach/*.mxl", "handel/**/*.mxl", "schubert/*.xml",
                                   "schumann_robert/**/*.mxl", "schumann_robert/*.xml", "schumann_clara/**/*",
                                   "chopin/*.krn", "joplin/*.mxl", "weber/*.mxl", "verdi/*.mxl",
                                   "liliuokalani/*.mxl", "johnson_j_r/*.mxl"), 120.0, False, None,
               "18th-19th century works, public domain; music21 encodings"),
        Source("oneills1850", ("oneills1850/*.abc",), 120.0, False, 40,
               "O'Neill's Music of Ireland (1903), public domain ABC transcription"),
        Source("ryans_mammoth", ("ryansMammoth/*.abc",), 120.0, False, 40,
               "Ryan's Mammoth Collection (1883), public domain ABC transcription"),
        Source("airds_airs", ("airdsAirs/*.abc",), 120.0, False, 40,
               "Aird's Selection of Scotch, English, Irish and Foreign Airs (1782-1803), public domain"),
    )
}
DEFAULT_SOURCES = tuple(SOURCES)


class ConversionError(AmtError):
    """A score of the music21 corpus that cannot be converted (parse failure, timeout, no notes)."""


# ---------------------------------------------------------------------------------------------------------
# Finding the scores


def _music21():
    try:
        import music21
    except ImportError as error:  # optional dependency
        raise AmtError("the music21 corpus needs music21: pip install 'amt[music21]'") from error
    return music21


def corpus_root() -> Path:
    """The folder of the corpus bundled with music21."""
    music21 = _music21()
    return Path(music21.__file__).parent / "corpus"


def source_files(source: Source, root: Path | None = None) -> list[Path]:
    """Corpus files of one source, sorted, one per score (a ``.krn`` twin of an ``.mxl`` file is dropped)."""
    root = root or corpus_root()
    found: dict[str, Path] = {}
    preference = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2, ".abc": 3}
    for pattern in source.patterns:
        for path in root.glob(pattern):
            if path.suffix not in preference or not path.is_file():
                continue
            stem = str(path.relative_to(root).with_suffix(""))
            if stem not in found or preference[path.suffix] < preference[found[stem].suffix]:
                found[stem] = path
    return sorted(found.values())


def work_id(source: Source, rel_path: str) -> str:
    """The work of a corpus file: movements of an opus share one, so do sections of a mass movement."""
    stem = rel_path.rsplit(".", 1)[0]
    if source.name in ("quartets", "classical_other") and "/movement" in stem:
        return stem.rsplit("/", 1)[0]
    if source.name == "palestrina":
        # "Sanctus_rpt_02_b" is a section of Sanctus no. 2.
        return re.sub(r"(_rpt)?(_\d+)?(_[a-z])?$", lambda m: m.group(2) or "", stem)
    return stem


# ---------------------------------------------------------------------------------------------------------
# Score -> parts


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _parse(path: Path, timeout: float):
    """Parse a corpus file with a wall-clock limit (SIGALRM: some quartet movements take minutes)."""
    music21 = _music21()
    use_alarm = timeout > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return music21.converter.parse(str(path))
    except _Timeout:
        raise ConversionError(f"{path.name}: parsing took more than {timeout:g} s") from None
    except Exception as error:  # music21 raises many unrelated types on malformed files
        reason = f"{type(error).__name__}: {error}"
        raise ConversionError(f"{path.name}: music21 cannot parse it ({reason})") from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _ticks(quarters: float | Fraction) -> int:
    return round(Fraction(quarters) * TICKS_PER_QUARTER)


def _part_notes(part, shift: int) -> list[tuple[int, int, int]]:
    """Notes of a part with tied notes joined; grace notes and unpitched notes dropped."""
    notes: list[list[int]] = []
    open_ties: dict[int, int] = {}  # pitch -> index of the note a tie continues
    for element in part.flatten().notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        start = _ticks(element.offset) + shift
        length = _ticks(element.quarterLength)
        members = element.notes if element.isChord else [element]
        for member in members:
            if not hasattr(member, "pitch"):
                continue
            pitch = member.pitch.midi
            tie = member.tie or element.tie
            kind = tie.type if tie is not None else None
            index = open_ties.get(pitch)
            if kind in ("continue", "stop") and index is not None and sum(notes[index][:2]) == start:
                notes[index][1] += length
            else:
                notes.append([start, length, pitch])
                index = len(notes) - 1
            if kind in ("start", "continue"):
                open_ties[pitch] = index
            else:
                open_ties.pop(pitch, None)
    notes.sort()
    return [(s, d, p) for s, d, p in notes if 0 <= p < 128 and d > 0]


def _pickup_shift(score) -> int:
    """Ticks to delay the music so that a short first bar (pickup) ends where a full bar would."""
    parts = list(score.parts) or [score]
    measures = parts[0].getElementsByClass("Measure")
    if not measures:
        return 0
    first = measures[0]
    try:
        bar = first.barDuration.quarterLength
    except Exception:  # no time signature
        return 0
    missing = Fraction(bar) - Fraction(first.duration.quarterLength)
    return _ticks(missing) if 0 < missing < bar else 0


def _program_from_instrument(part) -> int | None:
    """The GM program of a part's music21 instrument, unless it is the generic or a vocal one."""
    music21 = _music21()
    instrument = part.getInstrument(returnDefault=False)
    if (
        instrument is not None
        and type(instrument) is not music21.instrument.Instrument
        and not isinstance(instrument, music21.instrument.Vocalist)
        and instrument.midiProgram is not None
    ):
        return int(instrument.midiProgram)
    return None


def _role(part, name: str, source: Source, notes: list[tuple[int, int, int]]) -> tuple[str, int]:
    """(voice or "instrument", preferred program) of a part.

    The part name decides first (see ``role_from_name``): music21's instrument objects are unreliable in
    this corpus (some chorale voices carry a piano).
    """
    music21 = _music21()
    named = role_from_name(name, source.vocal)
    if named is not None:
        return named
    if source.vocal:
        voice = None
        if voice is None:
            instrument = part.getInstrument(returnDefault=False)
            if isinstance(instrument, music21.instrument.Vocalist):
                voice = voice_from_name(type(instrument).__name__)
        if voice is None:  # "Quinto", "Sextus", "MusicXML Part": classed by register
            median = statistics.median(p for _, _, p in notes)
            voice = next(v for low, v in VOICE_BY_MEDIAN if median >= low)
        return voice, VOICE_PROGRAMS[voice][0]
    program = _program_from_instrument(part)
    if program is None:
        program = source.default_program if source.default_program is not None else 0
    return "instrument", program


def score_parts(score, source: Source) -> list[Part]:
    """The non-empty parts of a parsed music21 score with their notes (ticks) and distinct GM programs."""
    music21 = _music21()
    shift = _pickup_shift(score)
    raw: list[tuple[str, Any, list[tuple[int, int, int]]]] = []
    previous_staff = None
    for index, part in enumerate(score.parts or [score]):
        notes = _part_notes(part, shift)
        name = (part.partName or "").strip() or f"Part {index + 1}"
        is_staff = isinstance(part, music21.stream.PartStaff)
        if is_staff and previous_staff is not None and raw and raw[-1][0] == name:
            # The second staff of a keyboard instrument: one instrument, one track.
            raw[-1] = (name, raw[-1][1], sorted(raw[-1][2] + notes))
            continue
        previous_staff = part if is_staff else None
        if notes:
            raw.append((name, part, notes))
    roles = [_role(part, name, source, notes) for name, part, notes in raw]
    named = [role_from_name(name, source.vocal) is not None for name, _, _ in raw]
    programs = assign_programs(roles, named)
    return [
        Part(name, role, program, notes)
        for (name, _, notes), (role, _), program in zip(raw, roles, programs, strict=True)
    ]


def _tempo_map(score, default_qpm: float, shift: int) -> list[tuple[int, float]]:
    """(tick, quarter notes per minute) from the score's metronome marks, else the source default."""
    music21 = _music21()
    marks = list(score.recurse().getElementsByClass(music21.tempo.MetronomeMark))
    if not marks:
        return [(0, default_qpm)]
    tempos: dict[int, float] = {}
    for start, _, mark in score.metronomeMarkBoundaries():
        qpm = mark.getQuarterBPM()
        if qpm and qpm > 0:
            tempos.setdefault(_ticks(start) + (shift if start > 0 else 0), float(qpm))
    tempos.setdefault(0, default_qpm)
    return sorted(tempos.items())


def _time_signatures(score, shift: int) -> list[tuple[int, int, int]]:
    music21 = _music21()
    parts = list(score.parts) or [score]
    found: dict[int, tuple[int, int]] = {}
    for ts in parts[0].flatten().getElementsByClass(music21.meter.TimeSignature):
        tick = _ticks(ts.offset) + (shift if ts.offset > 0 else 0)
        found.setdefault(tick, (ts.numerator, ts.denominator))
    return [(tick, n, d) for tick, (n, d) in sorted(found.items())]


def melody_key(pitches: Sequence[int], length: int = MELODY_KEY_NOTES) -> str:
    """Transposition-invariant key of a tune: the intervals between its first ``length`` notes."""
    first = list(pitches[:length])
    return " ".join(f"{b - a:+d}" for a, b in itertools.pairwise(first))


def beat_melody(onsets: Sequence[int], pitches: Sequence[int], beats: Sequence[int],
                length: int = TUNE_BEATS) -> list[int]:
    """A tune as it sounds on the beats, for matching settings of one chorale melody: the pitch of the
    latest note started at or before each beat, repeats merged (a held or split note is one), relative to the
    tune's last note (transposition-invariant); the first ``length`` values. Passing notes and ornaments
    between beats, and a pickup, do not change it."""
    order = np.argsort(np.asarray(onsets), kind="stable")
    onsets, pitches = np.asarray(onsets)[order], np.asarray(pitches)[order]
    if not len(onsets):
        return []
    at = np.searchsorted(onsets, np.asarray(beats), side="right") - 1
    sounding = [int(pitches[i]) for i in at if i >= 0]
    merged = [p for k, p in enumerate(sounding) if k == 0 or p != sounding[k - 1]]
    return [p - int(pitches[-1]) for p in merged[:length]]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance of two short sequences. Written here because the project has no string-distance
    dependency and tune keys are at most ``TUNE_BEATS`` long (a 24 x 24 table)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def same_tune(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two beat melodies (``beat_melody``) are settings of one tune: within ``TUNE_DISTANCE`` edits
    per beat of the shorter."""
    if not a or not b:
        return False
    return edit_distance(a, b) <= TUNE_DISTANCE * min(len(a), len(b))


def merge_tune_groups(records: Sequence[dict[str, Any]]) -> None:
    """Put records whose ``tune`` (a ``beat_melody``) match (``same_tune``) in one group, in place: the group
    of each connected set becomes the member group that ranks last in ``assign_splits``'s order (a tune
    with one setting keeps its group, so the split of every other chorale stays as it was).
    A tune that had one setting in train under the old exact-interval groups thus stays in train: the
    shipped model was trained on that split, and the settings that leaked into test and valid leave them
    (MODEL_CARD.md lists them). Records without a tune keep their group."""
    tuned = [r for r in records if r.get("tune")]
    parent = list(range(len(tuned)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(tuned)), 2):
        if same_tune(tuned[i]["tune"], tuned[j]["tune"]):
            parent[root(i)] = root(j)
    names: dict[int, str] = {}
    for i, record in enumerate(tuned):
        names[root(i)] = max(names.get(root(i), record["group"]), record["group"], key=_rank)
    for i, record in enumerate(tuned):
        record["group"] = names[root(i)]


def _melody_pitches(parts: Sequence[Part]) -> list[int]:
    """The tune: the notes of the part with the soprano's program, else the highest part's (one pitch per
    onset, the top one)."""
    melody = next((p for p in parts if p.program == VOICE_PROGRAMS["soprano"][0]), None)
    if melody is None:
        melody = max(parts, key=lambda p: statistics.median(n[2] for n in p.notes))
    top: dict[int, int] = {}
    for start, _, pitch in melody.notes:
        top[start] = max(pitch, top.get(start, -1))
    return [top[t] for t in sorted(top)]


# ---------------------------------------------------------------------------------------------------------
# Corpus conversion


def _scores_of(parsed) -> Iterator[tuple[str | None, Any]]:
    """(tune number or None, score) for a parsed file: ABC collections parse to an Opus of many tunes."""
    music21 = _music21()
    if isinstance(parsed, music21.stream.Opus):
        for number, score in enumerate(parsed.scores, start=1):
            yield str(score.metadata.number if score.metadata and score.metadata.number else number), score
    else:
        yield None, parsed


def convert_file(path: Path, source: Source, out_dir: Path, root: Path, timeout: float = 60.0
                 ) -> list[dict[str, Any]]:
    """Convert one corpus file (one score, or every tune of an ABC collection); returns manifest records."""
    rel = path.relative_to(root).as_posix()
    parsed = _parse(path, timeout)
    records = []
    problem = "no notes"
    for number, score in _scores_of(parsed):
        parts = score_parts(score, source)
        if not parts:
            continue
        if source.name == "bach_chorales" and not CHORALE_VOICES.issubset(p.role for p in parts):
            problem = "not a four-part chorale (no soprano, alto, tenor and bass parts with notes)"
            continue
        shift = _pickup_shift(score)
        stem = path.relative_to(root).with_suffix("").as_posix().split("/", 1)[-1].replace("/", "_")
        name = f"{stem}_{number}" if number is not None else stem
        out_rel = f"{source.name}/{name}.mid"
        seconds = write_parts_midi(out_dir / out_rel, parts, _tempo_map(score, source.default_qpm, shift),
                                   _time_signatures(score, shift))
        work = work_id(source, rel) + (f"#{number}" if number is not None else "")
        monophonic = len(parts) == 1
        group = (
            "melody:" + melody_key(_melody_pitches(parts))
            if source.name == "bach_chorales" or (monophonic and source.default_program is not None)
            else "work:" + work
        )
        tune = {}
        if source.name == "bach_chorales":
            soprano = next(p for p in parts if p.role == "soprano" and p.notes)
            onsets = [n[0] for n in soprano.notes]
            beat_ticks = range(0, max(onsets) + 1, TICKS_PER_QUARTER)
            tune = {"tune": beat_melody(onsets, [n[2] for n in soprano.notes], beat_ticks)}
        records.append({
            **tune,
            "path": out_rel,
            "source": source.name,
            "corpus_file": rel,
            "work": work,
            "group": group,
            "parts": [{"name": p.name, "role": p.role, "program": p.program, "notes": len(p.notes)}
                      for p in parts],
            "notes": sum(len(p.notes) for p in parts),
            "seconds": round(seconds, 3),
        })
    if not records:
        raise ConversionError(f"{rel}: {problem}")
    return records


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def assign_splits(records: Sequence[dict[str, Any]], test_fraction: float = 0.12,
                  valid_fraction: float = 0.05, min_test: dict[str, int] | None = None,
                  fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Split by group within each source: returns {path: split}. A group never spans two splits.

    Groups are ranked by the hash of their key and fill test, then valid, then train, until each reaches its
    share of the source's files (``min_test`` files at least for test), so the split is deterministic and does
    not depend on the order or number of other files. Melody groups are shared across sources (folk tunes in
    two collections) so a group's split is decided once, by the first source that holds it. ``fixed`` gives
    the split of some groups beforehand (reserved test pieces); their files count towards that split's share.
    """
    min_test = {"bach_chorales": 40} if min_test is None else min_test
    decided: dict[str, str] = dict(fixed or {})
    for source in sorted({r["source"] for r in records}):
        mine = [r for r in records if r["source"] == source]
        sizes = Counter(r["group"] for r in mine)
        total = len(mine)
        want_test = max(round(test_fraction * total), min(min_test.get(source, 0), total))
        want_valid = round(valid_fraction * total)
        counts = Counter({s: sum(n for g, n in sizes.items() if decided.get(g) == s) for s in SPLITS})
        for group in sorted(sizes, key=_rank):
            if group in decided:
                continue
            if counts["test"] < want_test:
                split = "test"
            elif counts["valid"] < want_valid:
                split = "valid"
            else:
                split = "train"
            decided[group] = split
            counts[split] += sizes[group]
    return {r["path"]: decided[r["group"]] for r in records}


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source and split: files, works, notes and hours of music."""
    summary: dict[str, dict[str, Any]] = {}
    for record in records:
        for key in (record["source"], "total"):
            entry = summary.setdefault(key, {"files": 0, "works": set(), "notes": 0, "hours": 0.0,
                                             **{s: 0 for s in SPLITS}})
            entry["files"] += 1
            entry["works"].add(record["work"])
            entry["notes"] += record["notes"]
            entry["hours"] += record["seconds"] / 3600
            entry[record["split"]] += 1
    for entry in summary.values():
        entry["works"] = len(entry["works"])
        entry["hours"] = round(entry["hours"], 3)
    if summary:
        summary["total"] = summary.pop("total")  # last, below the sources
    return summary


def convert_music21_corpus(out_dir: str | os.PathLike, sources: Iterable[str] = DEFAULT_SOURCES, *,
                           limit: int | None = None, timeout: float = 60.0, log=print) -> dict[str, Any]:
    """Convert the chosen sources of the music21 corpus to MIDI under ``out_dir``; returns the manifest.

    Writes ``out_dir/<source>/<name>.mid``, ``out_dir/manifest.json`` and ``out_dir/split.json``. ``limit``
    caps the corpus files read per source; ``timeout`` (seconds) skips a file whose parsing takes longer.
    Files that fail are listed in the manifest's ``failed`` with the reason.
    """
    out = Path(out_dir)
    names = list(sources)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise AmtError(f"unknown music21 source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    out.mkdir(parents=True, exist_ok=True)
    root = corpus_root()
    records: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    timings: dict[str, float] = {}
    for name in names:
        source = SOURCES[name]
        files = source_files(source, root)[:limit]
        started = time.perf_counter()
        for count, path in enumerate(files, start=1):
            try:
                records.extend(convert_file(path, source, out, root, timeout))
            except ConversionError as error:
                failed.append({"source": name, "corpus_file": path.relative_to(root).as_posix(),
                               "reason": str(error)})
            if log and (count % 50 == 0 or count == len(files)):
                log(f"{name}: {count}/{len(files)} files, {time.perf_counter() - started:.0f} s")
        timings[name] = round(time.perf_counter() - started, 1)
    merge_tune_groups(records)
    splits = assign_splits(records)
    for record in records:
        record["split"] = splits[record["path"]]
    manifest = {
        "music21_version": _music21().__version__,
        "ticks_per_quarter": TICKS_PER_QUARTER,
        "sources": {n: {"licence": SOURCES[n].licence, "seconds_to_convert": timings[n]} for n in names},
        "summary": summarize(records),
        "files": records,
        "failed": failed,
    }
    _write_json(out / "manifest.json", manifest)
    _write_json(out / "split.json", {s: sorted(p for p, v in splits.items() if v == s) for s in SPLITS})
    return manifest


def split_files(out_dir: str | os.PathLike, split: str = "test", source: str = "bach_chorales") -> list[Path]:
    """The MIDI files of one split of one source in a converted folder (read from its manifest.json).

    ``amt eval --harmonize`` scores the model on ``split_files(DIR, "test")``: the held-out chorales, which
    keep their tempo map and meter (the tokenized corpus drops both, and the metrics need beats).
    """
    path = Path(out_dir) / "manifest.json"
    try:
        records = json.loads(path.read_text())["files"]
        return [Path(out_dir) / r["path"] for r in records if r["split"] == split and r["source"] == source]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AmtError(f"{path}: not a music21 conversion manifest ({error})") from None


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The per-source table (files, works, hours, split counts) as Markdown."""
    columns = ("files", "works", "notes", "hours", *SPLITS)
    lines = ["| source | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, entry in summary.items():
        cells = [f"{entry[c]:.2f}" if c == "hours" else str(entry[c]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: convert the music21 corpus, print the per-source table."""
    parser = argparse.ArgumentParser(prog="python -m amt.training.music21_corpus",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (MIDI files, manifest.json, split.json)")
    parser.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                        help=f"comma-separated sources (default: all of {', '.join(SOURCES)})")
    parser.add_argument("--limit", type=int, default=None, help="at most this many corpus files per source")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to parse one file")
    args = parser.parse_args(argv)
    try:
        started = time.perf_counter()
        manifest = convert_music21_corpus(args.out, [s.strip() for s in args.sources.split(",") if s.strip()],
                                          limit=args.limit, timeout=args.timeout,
                                          log=lambda m: print(m, file=sys.stderr))
    except AmtError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(manifest["summary"]))
    print(f"{len(manifest['failed'])} files failed; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
