"""Named parts with distinct General MIDI programs, shared by the corpus converters.

A part's program comes from its name (instrument names in several languages, voice names in vocal music);
voices are written as a saxophone quartet whose GM programs carry the voice names (Soprano -> 64 Soprano Sax,
Alto -> 65, Tenor -> 66, Bass -> 67 Baritone Sax), so that "keep the soprano" can be said by instrument; see
:mod:`amt.training.music21_corpus` for the full mapping. Within a file every part gets a distinct program.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amt.fileio import atomic_write_bytes

TICKS_PER_QUARTER = 480
VELOCITY = 80

VOICE_PROGRAMS: dict[str, tuple[int, ...]] = {
    # First choice for the first part of a voice, then the brass instrument for a second part of it.
    "soprano": (64, 56, 59),
    "alto": (65, 60, 61),
    "tenor": (66, 57, 62),
    "baritone": (57, 66, 62),
    "bass": (67, 58, 63),
}
VOICE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("soprano", re.compile(r"\b(soprano|sopran|cantus|canto|superius|discantus|treble|s)\b", re.I)),
    ("alto", re.compile(r"\b(alto|altus|alt|contratenor|contra|countertenor|mezzo|a)\b", re.I)),
    ("baritone", re.compile(r"\b(baritone|baritono|bariton)\b", re.I)),
    ("tenor", re.compile(r"\b(tenor|tenore|t)\b", re.I)),
    ("bass", re.compile(r"\b(bass|bassus|basso|b)\b", re.I)),
)
# Instrument names, checked in order (the first match wins); music21's instrument lookup knows few of
# them.
BASSO_CONTINUO = re.compile(r"basso\s+continuo", re.I)
NAME_PROGRAMS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"continuo|organ|orgel", re.I), 19),
    (re.compile(r"violoncell|cello", re.I), 42),
    (re.compile(r"viol(a|e)\b|bratsche", re.I), 41),
    (re.compile(r"violin|violino|fiddle", re.I), 40),
    (re.compile(r"oboe|hautbois", re.I), 68),
    (re.compile(r"corno|horn", re.I), 60),
    (re.compile(r"tromba|trumpet|clarin", re.I), 56),
    (re.compile(r"timpani|timp", re.I), 47),
    # Recorders and cornetts double or descant over the voices in chorales (BWV 112.5, 161.6, 175.7, 251);
    # classed by register, they would take the soprano's program. Recorder before flute ("flauto dolce").
    (re.compile(r"recorder|blockfl|flauto dolce", re.I), 74),
    (re.compile(r"cornet|cornett|zink", re.I), 56),
    (re.compile(r"flaut|flute|traverso", re.I), 73),
    (re.compile(r"fagott|bassoon", re.I), 70),
    (re.compile(r"piano|klavier|pianoforte|cembalo|harpsichord", re.I), 0),
    # Instruments of the Mutopia Project's scores, after the names above so that those keep their meaning.
    (re.compile(r"contrabass|double bass|kontrabass|violone|contrabbasso", re.I), 43),
    (re.compile(r"guitar|gitarre|guitare|chitarra|lute|laute|luth|liuto|theorbo|vihuela", re.I), 24),
    (re.compile(r"mandolin", re.I), 25),
    (re.compile(r"harp\b|harpe|arpa\b", re.I), 46),
    (re.compile(r"clarinet|klarinette|clarinette|clarinetto", re.I), 71),
    (re.compile(r"trombone|posaune", re.I), 57),
    (re.compile(r"tuba|euphonium", re.I), 58),
    (re.compile(r"saxophone|sax\b", re.I), 65),
    (re.compile(r"accordion|akkordeon", re.I), 21),
    (re.compile(r"celesta", re.I), 8),
    (re.compile(r"glockenspiel", re.I), 9),
    (re.compile(r"xylophone", re.I), 13),
    (re.compile(r"marimba", re.I), 12),
    (re.compile(r"piccolo", re.I), 72),
    (re.compile(r"harmonium|reed organ", re.I), 20),
    (re.compile(r"keyboard|clavichord|virginal|spinet|clavier", re.I), 0),
)
# Where a part goes when another part of the file already has its instrument's program.
SECOND_CHAIR: dict[int, tuple[int, ...]] = {
    0: (1,), 19: (20, 16), 40: (110, 48), 41: (49,), 42: (43,), 56: (59,), 60: (61,), 68: (69,),
    70: (71,), 73: (72, 74),
}
# Median MIDI pitch boundaries used to class an unnamed vocal part.
VOICE_BY_MEDIAN = ((67, "soprano"), (60, "alto"), (52, "tenor"), (-1, "bass"))


@dataclass
class Part:
    """One converted part: its notes as (onset tick, duration ticks, MIDI pitch) and its program."""

    name: str
    role: str  # a voice name, or "instrument"
    program: int
    notes: list[tuple[int, int, int]]


def voice_from_name(name: str) -> str | None:
    """The voice a part name says (Latin and German names too), or None."""
    for voice, pattern in VOICE_PATTERNS:
        if pattern.search(name):
            return voice
    return None


def program_from_name(name: str) -> int | None:
    for pattern, program in NAME_PROGRAMS:
        if pattern.search(name):
            return program
    return None


def role_from_name(name: str, vocal: bool) -> tuple[str, int] | None:
    """(role, preferred program) from a part name alone, or None.

    In vocal music a name opening with a voice is that voice, whatever instruments double it ("Soprano
    Oboe 1 Violin1", "Bass Continuo" in BWV 41.6), except the Italian "Basso continuo"; otherwise an
    instrument name wins ("Continuo", "Horn 1").
    """
    words = name.split()
    voice = voice_from_name(words[0]) if vocal and words else None
    if voice is not None and not BASSO_CONTINUO.match(name):
        return voice, VOICE_PROGRAMS[voice][0]
    program = program_from_name(name)
    if program is not None:
        return "instrument", program
    voice = voice_from_name(name) if vocal else None
    return (voice, VOICE_PROGRAMS[voice][0]) if voice is not None else None


def _candidates(role: str, preferred: int) -> list[int]:
    """Programs a part may take, best first: its own, the second-chair instrument, its GM family, any."""
    if role == "instrument":
        family = preferred - preferred % 8
        first = [preferred, *SECOND_CHAIR.get(preferred, ()), *range(family, family + 8)]
    else:
        first = list(VOICE_PROGRAMS[role])
    return list(dict.fromkeys([*first, *range(128)]))


def assign_programs(roles: Sequence[tuple[str, int]], named: Sequence[bool] | None = None) -> list[int]:
    """One distinct program per part.

    Parts whose first choice is free keep it; the others (a second violin, a second tenor) then take their
    next candidate that no part wanted first, so that a second violin cannot push the viola off its program.
    Parts ``named`` for their role choose before the others (score order within each kind): a part classed
    without its name (by register, like a "Quinto" or an instrument whose name we do not know, or by default)
    must not take the program of the voice or instrument that another part is named for.
    """
    order = sorted(range(len(roles)), key=lambda i: not named[i]) if named is not None else range(len(roles))
    wanted = {preferred for _, preferred in roles}
    taken: set[int] = set()
    programs: list[int | None] = [None] * len(roles)
    for i in order:
        preferred = roles[i][1]
        if preferred not in taken:
            programs[i] = preferred
        taken.add(preferred)
    for i in order:
        if programs[i] is None:
            role, preferred = roles[i]
            program = next(p for p in _candidates(role, preferred) if p not in taken and p not in wanted)
            programs[i] = program
            taken.add(program)
    return [int(p) for p in programs if p is not None]


def write_parts_midi(path: Path, parts: Sequence[Part], tempos: Sequence[tuple[int, float]],
                     time_signatures: Sequence[tuple[int, int, int]]) -> float:
    """Write parts as a MIDI file (one track each), atomically; returns its duration in seconds."""
    import symusic

    score = symusic.Score(TICKS_PER_QUARTER)
    for tick, qpm in tempos:
        score.tempos.append(symusic.Tempo(tick, qpm=qpm))
    for tick, numerator, denominator in time_signatures:
        score.time_signatures.append(symusic.TimeSignature(tick, numerator, denominator))
    for part in parts:
        track = symusic.Track(name=part.name, program=part.program, is_drum=False)
        for start, duration, pitch in part.notes:
            track.notes.append(symusic.Note(start, duration, pitch, VELOCITY))
        score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, score.dumps_midi())
    return float(score.to("second").end())
