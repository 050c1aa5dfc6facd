"""Compile the Mutopia Project's LilyPond sources into multi-instrument MIDI files for training.

Usage::

    git clone --depth 1 https://github.com/MutopiaProject/MutopiaProject
    python -m amt.training.mutopia_corpus MutopiaProject --out /data/mutopia_midi [--workers 4]
        [--licenses public-domain,cc-by] [--timeout 120] [--composers JoplinS,SatieE] [--limit N]

writes ``OUT/<composer>/.../<name>.mid`` (one file per score of a piece), ``OUT/manifest.json`` (one record
per MIDI file: title, composer, instrument, licence, Mutopia id and typesetter for attribution, source folder,
work, group, parts and their programs, duration, split), ``OUT/split.json`` (as the music21 converter's, for
``amt prepare OUT --out CORPUS --split-file OUT/split.json``) and ``OUT/report.json`` (pieces found,
compiled, skipped and failed, counted by reason, with each failure's piece and LilyPond's first error line).

It needs LilyPond (Debian: ``apt-get install --no-install-recommends lilypond``; 2.24 was used). Each piece is
a folder under ``SRC/ftp/COMPOSER/...`` holding one ``.ly`` file, or a ``*-lys/`` folder of files whose entry
point is found by reading the ``\\include`` lines. The piece folder is copied to a temporary folder (SRC is
never written), files older than the installed LilyPond are updated with ``convert-ly``, one construct that
``convert-ly`` leaves broken (``\\applyMusic #unfold-repeats``) is replaced by ``\\unfoldRepeats``, and
``lilypond -dno-print-pages`` writes the MIDI, within ``--timeout`` seconds per piece, ``--workers`` pieces at
a time. A score without a ``\\midi`` block writes no MIDI: such a piece is counted as a failure ("no \\midi
block"), not patched, since where the block would go depends on how the file builds its book.

Parts: LilyPond names each MIDI track after its staff (``"rh:"``, ``"chant:"``, ``"violinoI:"``) and sets a
program only where the typesetter chose a MIDI instrument, often for playback effect (a harmonica doubling a
voice). Each staff becomes one part named after it; its General MIDI program comes from, in order: its name,
split into words ("pianoUp", "alto_one"), read with the instrument table the corpus converters share
(:mod:`amt.training.parts`: "Violin II" -> 40, "Basso continuo" -> 19, "Guitar" -> 24, and in vocal pieces the
voice names -> the saxophone programs that carry voices in this project, 64-67); a hand's name ("upper", "rh")
-> the header's keyboard (piano unless it names an organ or harpsichord); in a piece whose instrument header
names singers ("Voice and Piano", "Choir (SATB)"), any other staff ("mel", "chant", "men") -> a voice classed
by register, as is a staff the typesetter put on a choir program; then the header's instrument when it names
only one ("Guitar" -> 24), else the typesetter's program. Keyboard staves of one instrument (upper and lower
piano staff) are merged into one part; otherwise each part gets a distinct program as in the music21 converter
(a second guitar takes 25). Drum staves are dropped.
Velocity is constant and ticks are 480 per quarter, as in the music21 conversion.

Licences: the header's ``license = "..."`` field, else the Creative Commons address or the "placed in the
public domain" sentence of its tagline or copyright line (older pieces). ``--licenses`` takes licence
families: ``public-domain``, ``cc-by`` and ``cc-by-sa`` (every version of each); the default is
``public-domain,cc-by``. CC-BY-SA pieces go in only when asked for, since a model trained on them may have to
be shared alike. Pieces of other licences are skipped before compiling and counted in the report.

Split: the pieces listed in ``training/data/mutopia-reserved.txt`` (a folder of the repository each; a
``collections/NAME`` entry stands for the ``ftp/`` pieces its build files name) are the Mutopia test split.
Pieces are grouped by work (``ftp/COMPOSER/OPUS`` for a piece in an opus folder, else the piece's folder) and
by tune: the same normalised title and composer, or the same distinctive title whatever the composer (an
arrangement of "Greensleeves" or "Stille Nacht" filed under another name); a group that holds a reserved
piece is test as a whole, so no movement of a reserved work and no arrangement of a reserved tune is
trained on. The other groups fill valid (about 5%) and train, ranked by a hash of the group key, so the same
input gives the same split and byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amt.errors import AmtError
from amt.training.music21_corpus import SPLITS, _write_json, assign_splits, format_summary, summarize
from amt.training.parts import (
    TICKS_PER_QUARTER,
    VOICE_BY_MEDIAN,
    VOICE_PROGRAMS,
    Part,
    assign_programs,
    program_from_name,
    role_from_name,
    write_parts_midi,
)

SOURCE = "mutopia"
LICENCE_FAMILIES = ("public-domain", "cc-by", "cc-by-sa")
DEFAULT_LICENCES = ("public-domain", "cc-by")
RESERVED_FILE = Path(__file__).parent / "data" / "mutopia-reserved.txt"
VALID_FRACTION = 0.05
LILYPOND_EXTENSIONS = (".ly", ".ily", ".lyi")

HEADER_FIELD = re.compile(r'\b([A-Za-z]+)\s*=\s*"((?:[^"\\]|\\.)*)"')
VERSION = re.compile(r'\\version\s+"(\d+)\.(\d+)(?:\.(\d+))?"')
INCLUDE = re.compile(r'\\include\s+"([^"]+)"')
MIDI_BLOCK = re.compile(r"\\midi\b")
SCORE_BLOCK = re.compile(r"\\(score|book|bookpart)\b")
# convert-ly leaves this 2.10-era idiom alone, but unfold-repeats takes two arguments since 2.23.
UNFOLD_REPEATS = re.compile(r"\\applyMusic\s*#unfold-repeats\b")
CC_ADDRESS = re.compile(r"creativecommons\.org/licenses/(by-sa|by|publicdomain)(?:/(\d(?:\.\d)?))?", re.I)
PUBLIC_DOMAIN_SENTENCE = re.compile(r"placed\s+in\s+the\s+public\s+domain", re.I)
LILYPOND_ERROR = re.compile(r"(?:error|fatal error):\s*(.*)")

# Staff names of a keyboard's hands (after ``_words``): in a song these are the piano, not a singer.
KEYBOARD_STAFF = re.compile(r"\b(upper|lower|up|down|rh|lh|right|left|treble|oben|unten|md|mg|dx|sx)\b", re.I)
# Words of an instrument header that mean singers. A bare "Alto" or "Bass" is left out: in "Mandolin and
# Bass" or "Oboe, Horn, Violin, Alto, Bass" they are a double bass and a viola.
VOCAL_HEADER = re.compile(
    r"\b(voice|voices|vocal|choir|chorus|soprano|tenor|baritone|chant|singer|(?-i:[SATB]{2,}))\b", re.I)
KEYBOARD_PROGRAMS = frozenset(range(0, 8)) | frozenset(range(16, 24))
CHOIR_PROGRAMS = frozenset({52, 53, 54})

# Words that say what kind of piece a title is, not which tune: a title made only of these (and numbers,
# keys, opus numbers) links pieces only together with their composer.
GENERIC_TITLE_WORDS = frozenset(" ".join((
    "a an and the of for in on no nr op opus number book part suite sonata sonatina sonatine",
    "sonate prelude praeludium preludio fugue fuga invention sinfonia symphony symphonie concerto",
    "concert overture ouverture menuet minuet menuetto minuetto trio allegro allegretto andante",
    "andantino adagio largo lento presto vivace moderato rondo rondeau scherzo march marche",
    "marcia waltz valse walzer etude etudes study studies exercise exercises piece pieces",
    "variations variation theme air aria song songs lied lieder dance dances gavotte bourree",
    "gigue gique sarabande courante allemande polonaise mazurka nocturne impromptu intermezzo",
    "fantasia fantasy fantaisie toccata canon chorale choral hymn psalm mass missa kyrie gloria",
    "credo sanctus agnus magnificat motet cantata duet duetto duo quartet quintet divertimento",
    "serenade serenata romance romanze caprice capriccio berceuse lullaby ballade rhapsody polka",
    "galop tango ragtime rag major minor flat sharp dur moll c d e f g h b do re mi fa sol la si",
    "ut ii iii iv v vi vii viii ix x piano guitar violin flute organ voice voices two three four",
    "five six first second third easy little short",
)).split())


class CompileError(AmtError):
    """A Mutopia piece that yields no usable MIDI; ``reason`` is its category for the report."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Piece:
    """One piece folder of the repository and what its sources say about it."""

    path: str  # relative to SRC, e.g. "ftp/JoplinS/solace"
    entry: str | None  # entry file relative to the piece folder
    header: dict[str, str]
    licence: tuple[str, str] | None  # (family, label), or None when the sources state none


# ---------------------------------------------------------------------------------------------------------
# Reading the repository


def find_pieces(src: Path) -> list[str]:
    """Piece folders under ``src/ftp`` (relative, sorted): the parent of a ``*-lys`` folder, else the folder
    of a ``.ly`` file."""
    ftp = src / "ftp"
    if not ftp.is_dir():
        raise AmtError(f"{src}: no ftp/ folder; expected a clone of github.com/MutopiaProject/MutopiaProject")
    pieces: set[str] = set()
    for path in ftp.rglob("*.ly"):
        parts = path.relative_to(src).parts
        lys = next((i for i, p in enumerate(parts[:-1]) if p.endswith("-lys")), None)
        pieces.add("/".join(parts[:lys] if lys is not None else parts[:-1]))
    return sorted(pieces)


def _source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in LILYPOND_EXTENSIONS and p.is_file())


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def entry_file(folder: Path) -> Path | None:
    """The file LilyPond should compile for a piece folder, or None.

    A single ``.ly`` file is the entry. In a multi-file piece the candidates are the ``.ly`` files that no
    other file includes and that hold (or include) a score; a file named for MIDI comes first, then one
    that produces MIDI, then one named for the piece or the full score, then the one that includes most
    (a full score includes every part).
    """
    files = _source_files(folder)
    lys = [p for p in files if p.suffix == ".ly"]
    if len(lys) == 1:
        return lys[0]
    texts = {p: _read(p) for p in files}
    by_name: dict[str, list[Path]] = {}
    for p in files:
        by_name.setdefault(p.name, []).append(p)
    includes = {p: [q for name in INCLUDE.findall(t) for q in by_name.get(Path(name).name, []) if q != p]
                for p, t in texts.items()}
    included = {q for qs in includes.values() for q in qs}

    def reach(p: Path) -> set[Path]:
        seen, todo = {p}, [p]
        while todo:
            for q in includes[todo.pop()]:
                if q not in seen:
                    seen.add(q)
                    todo.append(q)
        return seen

    candidates = []
    for p in lys:
        if p in included:
            continue
        closure = reach(p)
        if not any(SCORE_BLOCK.search(texts[q]) for q in closure):
            continue
        stem = p.stem.lower()
        named = stem in (folder.name.lower(), p.parent.name.lower().removesuffix("-lys")) or any(
            w in stem for w in ("score", "conductor", "full"))
        candidates.append(((
            "midi" not in stem,
            not any(MIDI_BLOCK.search(texts[q]) for q in closure),
            not named,
            "part" in stem,
            -len(closure),
            p.relative_to(folder).as_posix(),
        ), p))
    return min(candidates)[1] if candidates else None


def read_header(files: Sequence[Path], first: Path | None) -> dict[str, str]:
    """Header fields (``key = "text"``) of a piece: the first value of each key, the entry file read first."""
    header: dict[str, str] = {}
    for path in ([first] if first is not None else []) + [p for p in files if p != first]:
        for key, value in HEADER_FIELD.findall(_read(path)):
            header.setdefault(key.lower(), value.replace('\\"', '"').strip())
    return header


def licence_of(header: dict[str, str], texts: Iterable[str]) -> tuple[str, str] | None:
    """(family, label) of a piece's licence: its ``license`` field, else its tagline's Creative Commons
    address or public-domain sentence (pieces typeset before the field existed); None when none is stated."""
    stated = header.get("license", "")
    if stated:
        lowered = stated.lower()
        version = re.search(r"\d(?:\.\d)?", lowered)
        suffix = f" {version.group()}" if version else ""
        if "public domain" in lowered or "publicdomain" in lowered:
            return "public-domain", "Public Domain"
        if "sharealike" in lowered or "share-alike" in lowered or "by-sa" in lowered:
            return "cc-by-sa", f"CC BY-SA{suffix}"
        if "attribution" in lowered or "cc-by" in lowered:
            return "cc-by", f"CC BY{suffix}"
    for text in texts:
        found = CC_ADDRESS.search(text)
        if found:
            kind, version = found.group(1).lower(), found.group(2)
            suffix = f" {version}" if version else ""
            if kind == "publicdomain":
                return "public-domain", "Public Domain"
            return ("cc-by-sa", f"CC BY-SA{suffix}") if kind == "by-sa" else ("cc-by", f"CC BY{suffix}")
        if PUBLIC_DOMAIN_SENTENCE.search(text):
            return "public-domain", "Public Domain"
    return None


def read_piece(src: Path, path: str) -> Piece:
    """A piece folder's entry file, header and licence (no compiling)."""
    folder = src / path
    files = _source_files(folder)
    entry = entry_file(folder)
    header = read_header(files, entry)
    licence = licence_of(header, (_read(p) for p in files))
    return Piece(path, entry.relative_to(folder).as_posix() if entry else None, header, licence)


def read_reserved(path: Path, src: Path, pieces: Sequence[str]) -> tuple[set[str], list[str]]:
    """(reserved piece folders among ``pieces``, entries of the list found nowhere).

    A ``collections/NAME`` entry is a book built from ``ftp/`` pieces: it stands for every piece whose folder
    its files name (its build script's ``-I`` paths, for one).
    """
    known = set(pieces)
    reserved: set[str] = set()
    missing: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.strip().strip("/")
        if not entry or entry.startswith("#"):
            continue
        if entry in known:
            reserved.add(entry)
            continue
        named: set[str] = set()
        folder = src / entry
        if entry.startswith("collections/") and folder.is_dir():
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                for reference in re.findall(r"ftp/[\w./-]+", _read(file)):
                    named.update(p for p in known if reference == p or reference.startswith(p + "/"))
        reserved.update(named)
        if not named:
            missing.append(entry)
    return reserved, missing


# ---------------------------------------------------------------------------------------------------------
# Compiling


def lilypond_version() -> tuple[int, int]:
    """(major, minor) of the installed LilyPond; AmtError when it is not installed."""
    try:
        result = subprocess.run(["lilypond", "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AmtError(f"cannot run lilypond ({error}); install it, e.g. apt-get install lilypond") from None
    found = re.search(r"(\d+)\.(\d+)", result.stdout)
    if result.returncode != 0 or not found:
        raise AmtError("cannot run lilypond --version; install LilyPond 2.24 or newer")
    return int(found.group(1)), int(found.group(2))


def _run(command: list[str], cwd: Path, deadline: float) -> subprocess.CompletedProcess:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CompileError("timeout")
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=remaining, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CompileError("timeout") from None


def _update_sources(folder: Path, current: tuple[int, int], deadline: float) -> None:
    """Run convert-ly on the files of a (copied) piece written for an older LilyPond; patch what it misses."""
    old = []
    for path in _source_files(folder):
        text = _read(path)
        patched = UNFOLD_REPEATS.sub(r"\\unfoldRepeats", text)
        if patched != text:
            path.write_text(patched, encoding="utf-8")
        version = VERSION.search(text)
        if version and (int(version.group(1)), int(version.group(2))) < current:
            old.append(path.relative_to(folder).as_posix())
    if old:
        # convert-ly reads each file's own \version; a file it cannot convert is left as it was.
        _run(["convert-ly", "--edit", *old], folder, deadline)


def compile_piece(src: Path, piece: Piece, timeout: float, current: tuple[int, int]
                  ) -> list[tuple[str, bytes]]:
    """Compile one piece with LilyPond in a temporary copy; returns [(MIDI file name, bytes)], sorted."""
    if piece.entry is None:
        raise CompileError("no entry file", "no .ly file with a score")
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="amt-mutopia-") as tmp:
        folder = Path(tmp) / "piece"
        try:  # links are followed (convert-ly must never edit SRC through one); dangling ones are skipped
            shutil.copytree(src / piece.path, folder, symlinks=False, ignore_dangling_symlinks=True)
        except (OSError, shutil.Error) as error:
            raise CompileError("cannot copy the piece", str(error)[:200]) from None
        _update_sources(folder, current, deadline)
        entry = folder / piece.entry
        out = Path(tmp) / "out"
        out.mkdir()
        result = _run(["lilypond", "-dno-print-pages", "-dmidi-extension=mid", "-I", str(folder),
                       "-o", str(out / entry.stem), entry.name], entry.parent, deadline)
        written = sorted(out.glob("*.mid"))
        if result.returncode != 0:
            errors = [m.group(1).strip() for m in map(LILYPOND_ERROR.search, result.stderr.splitlines()) if m]
            detail = errors[0] if errors else (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise CompileError("lilypond error", detail[:200])
        if not written:
            texts = (_read(p) for p in _source_files(folder))
            if not any(MIDI_BLOCK.search(t) for t in texts):
                raise CompileError("no \\midi block")
            raise CompileError("no MIDI written")
        return [(p.name, p.read_bytes()) for p in written]


# ---------------------------------------------------------------------------------------------------------
# MIDI -> named parts with programs


@dataclass(frozen=True)
class Instruments:
    """What a piece's instrument header ("Voice and Piano", "Guitar", "Choir (SATB)") says of its staves."""

    vocal: bool  # it has singers: a staff that no instrument or hand name explains is a voice
    single: int | None  # the program of its only instrument, when it names exactly one
    keyboard: int  # the program of the keyboard that hand names ("upper", "rh") belong to; piano by default


def header_instruments(instrument: str) -> Instruments:
    """Read a piece's instrument header (Mutopia's ``mutopiainstrument``)."""
    names = [w for w in re.split(r",|&|:|\band\b|\bor\b|\bwith\b|/|\+", instrument, flags=re.I) if w.strip()]
    programs = [program_from_name(w) for w in names]
    known = [p for p in programs if p is not None]
    single = known[0] if len(set(programs)) == 1 and known else None
    keyboard = next((p for p in known if p in KEYBOARD_PROGRAMS), 0)
    # A voice word that is part of an instrument's name ("Double Bass", "Basso continuo") is no singer.
    vocal = any(VOCAL_HEADER.search(n) and p is None for n, p in zip(names, programs, strict=True))
    return Instruments(vocal, single, keyboard)


def _words(name: str) -> str:
    """A staff name split into words: ``"pianoUp"`` -> ``"piano Up"``, ``"alto_one"`` -> ``"alto one"``."""
    return " ".join(re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
                    .translate(str.maketrans("0123456789", " " * 10)).split())


def _part_name(track_name: str, index: int) -> str:
    """A staff's name from a LilyPond track name ``"staff:voice"``."""
    staff, _, voice = track_name.partition(":")
    return staff.strip() or voice.strip() or f"Part {index + 1}"


def _voice_by_register(notes: Sequence[tuple[int, int, int]]) -> str:
    median = statistics.median(p for _, _, p in notes)
    return next(v for low, v in VOICE_BY_MEDIAN if median >= low)


def _role(name: str, set_program: int, notes, header: Instruments) -> tuple[str, int, bool]:
    """(role, preferred program, named) of one staff; see the module docstring for the order."""
    words = _words(name)
    named = role_from_name(words, header.vocal)
    if named is not None:
        return named[0], named[1], True
    if KEYBOARD_STAFF.search(words):
        return "instrument", header.single if header.single is not None else header.keyboard, False
    if header.vocal or set_program in CHOIR_PROGRAMS:
        voice = _voice_by_register(notes)
        return voice, VOICE_PROGRAMS[voice][0], False
    if header.single is not None:
        return "instrument", header.single, False
    return "instrument", set_program, False


def midi_parts(data: bytes, instrument: str) -> tuple[list[Part], list[tuple[int, float]],
                                                     list[tuple[int, int, int]]]:
    """(parts, tempos, time signatures) of a LilyPond MIDI file at 480 ticks per quarter.

    Tracks of one staff (its voices) are joined; consecutive keyboard staves of one program are merged into
    one part; every part gets a distinct program (``assign_programs``)."""
    import symusic

    score = symusic.Score.from_midi(data).resample(TICKS_PER_QUARTER, min_dur=1)
    header = header_instruments(instrument)
    staves: dict[str, tuple[int, list[tuple[int, int, int]]]] = {}
    for index, track in enumerate(score.tracks):
        if track.is_drum or not len(track.notes):
            continue
        name = _part_name(track.name, index)
        program, notes = staves.setdefault(name, (int(track.program), []))
        notes.extend((n.time, n.duration, n.pitch) for n in track.notes if n.duration > 0)
    merged: list[tuple[str, tuple[str, int, bool], list[tuple[int, int, int]]]] = []
    for name, (program, notes) in staves.items():
        if not notes:
            continue
        role = _role(name, program, notes, header)
        keyboard = role[0] == "instrument" and role[1] in KEYBOARD_PROGRAMS
        if keyboard and merged and merged[-1][1][:2] == role[:2]:
            previous = merged[-1]
            merged[-1] = (previous[0], previous[1], previous[2] + notes)
            continue
        merged.append((name, role, notes))
    programs = assign_programs([(role, preferred) for _, (role, preferred, _), _ in merged],
                                [named for _, (_, _, named), _ in merged])
    # A staff's voices may double each other for playback (a melody on two MIDI instruments): one note each.
    parts = [Part(name, role[0], program, sorted({(s, p): (s, d, p) for s, d, p in sorted(notes)}.values()))
             for (name, role, notes), program in zip(merged, programs, strict=True)]
    tempos = [(int(t.time), float(t.qpm)) for t in score.tempos] or [(0, 120.0)]
    signatures = [(int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures]
    return parts, tempos, signatures


# ---------------------------------------------------------------------------------------------------------
# Grouping and splitting


def normalise_title(title: str) -> str:
    """A title reduced to its words: accents, case, brackets and punctuation removed."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"\([^)]*\)|\[[^]]*\]", " ", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def work_of(path: str) -> str:
    """The work of a piece folder: ``ftp/COMPOSER/OPUS`` for a piece inside an opus folder, else itself."""
    parts = path.split("/")
    return "/".join(parts[:3]) if len(parts) > 3 else path


def tune_keys(piece: Piece) -> list[str]:
    """Keys that link a piece to the other arrangements of its tune."""
    composer = piece.header.get("mutopiacomposer") or piece.path.split("/")[1]
    title = normalise_title(piece.header.get("mutopiatitle") or piece.header.get("title") or "")
    if not title:
        return []
    keys = [f"tune:{composer.lower()}|{title}"]
    if any(not w.isdigit() and w not in GENERIC_TITLE_WORDS for w in title.split()):
        keys.append(f"title:{title}")
    return keys


def group_pieces(pieces: Sequence[Piece]) -> dict[str, str]:
    """{piece path: group key}: pieces linked by work or tune (transitively) share a group."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for piece in pieces:
        for key in ["work:" + work_of(piece.path), *tune_keys(piece)]:
            a, b = find("piece:" + piece.path), find(key)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smaller key names the group: independent of order
    return {piece.path: find("piece:" + piece.path) for piece in pieces}


# ---------------------------------------------------------------------------------------------------------
# The corpus


def _output_name(piece: str, midi_name: str) -> str:
    return f"{piece.removeprefix('ftp/')}/{midi_name}"


def _convert(src: Path, out: Path, piece: Piece, timeout: float, current: tuple[int, int]
             ) -> list[dict[str, Any]]:
    """Compile a piece and write its MIDI files; returns their manifest records (without group/split)."""
    records = []
    for midi_name, data in compile_piece(src, piece, timeout, current):
        try:
            parts, tempos, signatures = midi_parts(data, piece.header.get("mutopiainstrument")
                                                   or piece.header.get("instrument", ""))
        except (ValueError, RuntimeError) as error:  # symusic's errors for a malformed file
            raise CompileError("unreadable MIDI", str(error)[:200]) from None
        if not parts:
            continue
        rel = _output_name(piece.path, midi_name)
        seconds = write_parts_midi(out / rel, parts, tempos, signatures)
        header = piece.header
        records.append({
            "path": rel,
            "source": SOURCE,
            "piece": piece.path,
            "entry": piece.entry,
            "work": work_of(piece.path),
            "title": header.get("mutopiatitle") or header.get("title", ""),
            "composer": header.get("composer") or header.get("mutopiacomposer", ""),
            "instrument": header.get("mutopiainstrument") or header.get("instrument", ""),
            "licence": piece.licence[1] if piece.licence else "",
            "licence_family": piece.licence[0] if piece.licence else "",
            "mutopia_id": header.get("footer", ""),
            "typesetter": header.get("maintainer", ""),
            "parts": [{"name": p.name, "role": p.role, "program": p.program, "notes": len(p.notes)}
                      for p in parts],
            "notes": sum(len(p.notes) for p in parts),
            "seconds": round(seconds, 3),
        })
    if not records:
        raise CompileError("no notes")
    return records


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete the MIDI files an earlier run listed in ``out/manifest.json`` that this run did not write: left
    behind, ``amt prepare`` would split them by hash, and a piece now excluded (its licence, the reserved
    list) could reach train. Only files that manifest names, inside ``out``, are touched."""
    try:
        previous = json.loads((out / "manifest.json").read_text())["files"]
        paths = [r["path"] for r in previous if isinstance(r["path"], str)]
    except (OSError, ValueError, KeyError, TypeError):
        return
    root = out.resolve()
    for rel in paths:
        path = (out / rel).resolve()
        if rel not in keep and path.suffix == ".mid" and path.is_relative_to(root):
            path.unlink(missing_ok=True)


def _licence_filter(licences: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip().lower() for s in licences if s.strip()))
    unknown = [s for s in chosen if s not in LICENCE_FAMILIES]
    if unknown or not chosen:
        raise AmtError(f"unknown licence(s) {', '.join(unknown) or '(none)'}; "
                       f"choose from {', '.join(LICENCE_FAMILIES)}")
    return chosen


def convert_mutopia(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                    licences: Iterable[str] = DEFAULT_LICENCES, workers: int = 1, timeout: float = 120.0,
                    composers: Iterable[str] | None = None, limit: int | None = None,
                    reserved_file: str | os.PathLike = RESERVED_FILE,
                    log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Compile the Mutopia pieces under ``src`` to MIDI under ``out_dir``; returns the report.

    Writes the MIDI files, ``manifest.json``, ``split.json`` and ``report.json`` (see the module docstring).
    ``composers`` keeps only those composer folders and ``limit`` the first pieces (sorted by folder), for
    trying a sample; groups and the reserved test split are still worked out over the whole repository.
    """
    src, out = Path(src), Path(out_dir)
    chosen = _licence_filter(licences)
    if workers < 1 or timeout <= 0:
        raise AmtError("--workers must be at least 1 and --timeout positive")
    current = lilypond_version()
    paths = find_pieces(src)
    reserved, missing = read_reserved(Path(reserved_file), src, paths)
    # Every piece's header is read (seconds), so that groups link across the whole repository and a
    # piece's split does not depend on the sample or the licences chosen.
    everything = [read_piece(src, p) for p in paths]
    groups = group_pieces(everything)
    pieces = everything
    if composers is not None:
        wanted = {c.strip() for c in composers if c.strip()}
        pieces = [p for p in pieces if p.path.split("/")[1] in wanted]
    pieces = pieces[:limit]
    out.mkdir(parents=True, exist_ok=True)
    skipped: Counter[str] = Counter()
    todo: list[Piece] = []
    for piece in pieces:
        if piece.licence is None:
            skipped["no licence stated"] += 1
        elif piece.licence[0] not in chosen:
            skipped[f"licence not chosen: {piece.licence[0]}"] += 1
        else:
            todo.append(piece)

    started = time.monotonic()
    failures: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []

    def work(piece: Piece) -> tuple[Piece, list[dict[str, Any]] | CompileError]:
        try:
            return piece, _convert(src, out, piece, timeout, current)
        except CompileError as error:
            return piece, error
        except Exception as error:  # one odd piece must not end a run of thousands: counted, with its cause
            return piece, CompileError(f"unexpected {type(error).__name__}", str(error)[:200])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for count, (piece, result) in enumerate(pool.map(work, todo), start=1):
            if isinstance(result, CompileError):
                failures.append({"piece": piece.path, "reason": result.reason, "detail": result.detail})
            else:
                records.extend(result)
            if log and (count % 10 == 0 or count == len(todo)):
                log(f"{count}/{len(todo)} pieces, {len(failures)} failed, {time.monotonic() - started:.0f} s")

    for record in records:
        record["group"] = groups[record["piece"]]
    # A reserved piece makes its group test even when it is not compiled (another licence, a failure).
    fixed = {groups[p]: "test" for p in reserved}
    splits = assign_splits(records, test_fraction=0.0, valid_fraction=VALID_FRACTION, min_test={},
                           fixed=fixed)
    for record in records:
        record["split"] = splits[record["path"]]
    records.sort(key=lambda r: r["path"])
    compiled = sorted({r["piece"] for r in records})
    report = {
        "lilypond_version": ".".join(map(str, current)),
        "licences": list(chosen),
        "pieces": len(pieces),
        "compiled": len(compiled),
        "midi_files": len(records),
        "notes": sum(r["notes"] for r in records),
        "hours": round(sum(r["seconds"] for r in records) / 3600, 3),
        "skipped": dict(sorted(skipped.items())),
        "failed": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "reserved_pieces_compiled": sorted(p for p in compiled if p in reserved),
        "reserved_entries_not_found": missing,
        "summary": summarize(records),
        "failures": sorted(failures, key=lambda f: f["piece"]),
    }
    manifest = {"source": "The Mutopia Project (github.com/MutopiaProject/MutopiaProject)",
                "ticks_per_quarter": TICKS_PER_QUARTER, "licences": list(chosen), "files": records}
    _remove_stale(out, {r["path"] for r in records})
    _write_json(out / "manifest.json", manifest)
    _write_json(out / "split.json", {s: sorted(p for p, v in splits.items() if v == s) for s in SPLITS})
    _write_json(out / "report.json", report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compile the Mutopia pieces, print the summary and the failures by reason."""
    parser = argparse.ArgumentParser(prog="python -m amt.training.mutopia_corpus",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("src", help="a clone of github.com/MutopiaProject/MutopiaProject")
    parser.add_argument("--out", required=True,
                        help="output folder (MIDI files, manifest.json, split.json, report.json)")
    parser.add_argument("--licenses", default=",".join(DEFAULT_LICENCES),
                        help=f"comma-separated licence families among {', '.join(LICENCE_FAMILIES)} "
                             f"(default: {','.join(DEFAULT_LICENCES)})")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pieces compiled at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed to compile one piece")
    parser.add_argument("--composers", default=None, help="only these composer folders (comma-separated)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pieces (sorted by folder)")
    parser.add_argument("--reserved", default=str(RESERVED_FILE),
                        help="list of reserved piece folders (the test split); default: the packaged list")
    args = parser.parse_args(argv)
    try:
        started = time.perf_counter()
        report = convert_mutopia(
            args.src, args.out, licences=args.licenses.split(","), workers=args.workers, timeout=args.timeout,
            composers=args.composers.split(",") if args.composers else None, limit=args.limit,
            reserved_file=args.reserved, log=lambda m: print(m, file=sys.stderr))
    except AmtError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(report["summary"]))
    print(f"{report['pieces']} pieces: {report['compiled']} compiled to {report['midi_files']} MIDI files "
          f"({report['hours']:.2f} h, {report['notes']} notes); skipped {report['skipped']}; "
          f"failed {report['failed']}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
