"""Tokenized MIDI corpora on disk: ``prepare_corpus`` builds one, ``Corpus`` reads it.

A corpus folder holds every piece of a MIDI collection as event tokens in one memory-mapped array, so that
training can draw from 200,000 pieces without loading them. Preparing is parallel (one task per file),
streaming (memory does not grow with the corpus) and deterministic (the same inputs give the same bytes,
whatever the number of workers).

On-disk format (``format_version`` 1; all binary data little-endian)::

    manifest.json   {"format": "amt-corpus", "format_version": 1, "pieces": P, "events": E,
                     "time_resolution": 100, "split_rule": ..., "splits": {name: {pieces, events, hours}},
                     "files": {found, pieces, duplicates, skipped, skipped_by_reason}}; written last
    events.u16      E rows x 3 columns of uint16, piece after piece, each piece's events in token order:
                      column 0: onset minus the previous event's onset in the same piece, in ticks
                                (the first event: its onset, ticks from the piece start)
                      column 1: duration in ticks (0..MAX_DUR - 1)
                      column 2: note = 128 * instrument + pitch (0..MAX_NOTE - 1)
                    i.e. tokens without their block offsets and times as deltas, which is exact and fits
                    16 bits for any gap up to 655.35 s (a piece with a longer silence between two onsets
                    is skipped and reported).
    pieces.bin      P records of ``PIECE_DTYPE``: offset (first row in events.u16), count (rows), duration
                    (seconds, as reported by the MIDI reader), sha256 (of the file's bytes), instruments
                    (bit i set when instrument i plays, ``np.packbits`` order), split (index into SPLITS)
    sources.jsonl   P lines, each a JSON string: the piece's path relative to the SRC it was found under
                    (for a SRC that is a file: its name), "/"-separated
    report.json     what was skipped and why: {"files": N, "pieces": P, "duplicates": {count, files},
                     "skipped": {kind: count}, "skipped_files": {kind: {path: problem}}}; a problem is
                    the reader's message, its kind the message with numbers replaced by N, so that files
                    fall into a few countable kinds ("track N is truncated ...")

Pieces appear in input order: SRC arguments in the order given, files of a folder sorted by relative path.
Files with identical bytes are kept once (the first in that order). The split is a function of the content
hash alone (``split_of``), so a file keeps its split when the corpus grows or is re-ordered; a split file
(``read_split_file``) can place chosen files instead (e.g. all harmonisations of a melody in one split).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import struct
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from amt.tokenization.errors import CorpusError, MidiError
from amt.tokenization.fileio import atomic_directory
from amt.tokenization.vocab import (
    DUR_OFFSET,
    MAX_DUR,
    MAX_INSTR,
    MAX_NOTE,
    NOTE_OFFSET,
    TIME_OFFSET,
    TIME_RESOLUTION,
)

FORMAT = "amt-corpus"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EVENTS_FILE = "events.u16"
PIECES_FILE = "pieces.bin"
SOURCES_FILE = "sources.jsonl"
REPORT_FILE = "report.json"

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_RULE = "int.from_bytes(sha256[:8], 'big') % 100: 0-2 valid (3%), 3-7 test (5%), 8-99 train"
MIDI_SUFFIXES = (".mid", ".midi")

_INSTRUMENT_BYTES = (MAX_INSTR + 7) // 8  # 129 instruments -> 17 bytes of bits
PIECE_DTYPE = np.dtype(
    [
        ("offset", "<u8"),
        ("count", "<u8"),
        ("duration", "<f8"),
        ("sha256", "u1", (32,)),
        ("instruments", "u1", (_INSTRUMENT_BYTES,)),
        ("split", "u1"),
    ]
)
"""One record of ``pieces.bin``."""
_RECORD = struct.Struct(f"<QQd32s{_INSTRUMENT_BYTES}sB")  # the same layout, packed without numpy overhead

_MAX_DELTA = np.iinfo(np.uint16).max


def split_of(sha256: bytes) -> str:
    """The split of a piece, decided by its content hash alone (see ``SPLIT_RULE``)."""
    bucket = int.from_bytes(sha256[:8], "big") % 100
    if bucket < 3:
        return "valid"
    if bucket < 8:
        return "test"
    return "train"


def read_split_file(path: str | os.PathLike) -> dict[Path, str]:
    """Read a split file: JSON ``{"train": [paths], "valid": [...], "test": [...]}``, paths relative to the
    file's folder. Returns {resolved path: split}; raises ``CorpusError`` for a malformed file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not set(data) <= set(SPLITS):
            raise ValueError(f"expected an object with keys among {', '.join(SPLITS)}")
        if not all(isinstance(names, list) for names in data.values()):
            raise ValueError("each split must be a list of paths")
        placed: dict[Path, str] = {}
        for split, names in data.items():
            for name in names:
                key = (path.parent / name).resolve()
                if placed.setdefault(key, split) != split:
                    raise ValueError(f"{name} is in both {placed[key]} and {split}")
    except (OSError, ValueError, TypeError) as error:
        raise CorpusError(f"{path}: not a usable split file ({error})") from None
    return placed


def find_midi_files(sources: Sequence[str | os.PathLike]) -> list[tuple[Path, str]]:
    """All MIDI files under ``sources`` as ``(path, name relative to its SRC)``, in corpus order.

    A SRC is a file (taken whatever its suffix) or a folder searched recursively for ``.mid``/``.midi`` files
    (any case). Folders are sorted by relative path; a file reached twice is listed once. Raises
    ``CorpusError`` for a SRC that does not exist.
    """
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for source in sources:
        root = Path(source)
        if root.is_file():
            entries = [(root, root.name)]
        elif root.is_dir():
            entries = []
            for folder, _, files in os.walk(root):
                for name in files:
                    if name.lower().endswith(MIDI_SUFFIXES):
                        path = Path(folder, name)
                        entries.append((path, path.relative_to(root).as_posix()))
            entries.sort(key=lambda entry: entry[1])
        else:
            raise CorpusError(f"{root}: no such file or folder")
        for path, name in entries:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append((path, name))
    return found


@dataclass(frozen=True)
class _Piece:
    """A worker's answer for one file: the stored form of its events, or why it was skipped."""

    sha256: bytes | None
    rows: np.ndarray | None = None  # (n, 3) uint16 in the events.u16 layout
    duration: float = 0.0
    instruments: bytes = b""
    problem: str | None = None  # why the file was skipped, in full


def problem_kind(problem: str) -> str:
    """The kind of a problem, for counting: its message with every number replaced by N."""
    return re.sub(r"\d(?:[\d,.]*\d)?", "N", problem)


def _encode(events: np.ndarray) -> np.ndarray:
    """Event tokens (n, 3), absolute ticks, to the (n, 3) uint16 layout of ``events.u16``.

    Raises ValueError saying why when the piece cannot be stored exactly.
    """
    times = events[:, 0] - TIME_OFFSET
    deltas = np.diff(times, prepend=0)
    durations = events[:, 1] - DUR_OFFSET
    notes = events[:, 2] - NOTE_OFFSET
    if deltas.min(initial=0) < 0:
        raise ValueError("events not ordered by onset")
    if deltas.max(initial=0) > _MAX_DELTA:
        raise ValueError(
            f"silence of {deltas.max() / TIME_RESOLUTION} s between two onsets (a corpus stores gaps up to "
            f"{_MAX_DELTA / TIME_RESOLUTION} s)"
        )
    if durations.min(initial=0) < 0 or durations.max(initial=0) >= MAX_DUR:
        raise ValueError("duration token out of range")
    if notes.min(initial=0) < 0 or notes.max(initial=0) >= MAX_NOTE:
        raise ValueError("note token out of range")
    return np.stack([deltas, durations, notes], axis=1).astype("<u2")


def _decode(rows: np.ndarray) -> np.ndarray:
    """The inverse of ``_encode``: (n, 3) int64 event tokens, absolute ticks from the piece start."""
    events = rows.astype(np.int64)
    np.cumsum(events[:, 0], out=events[:, 0])
    events += (TIME_OFFSET, DUR_OFFSET, NOTE_OFFSET)
    return events


def _tokenize_file(path: Path) -> _Piece:
    """Read, hash and tokenize one file (runs in a worker; never raises for a bad file)."""
    from amt.tokenization.midi import MAX_FILE_BYTES, read_midi  # the worker's only heavy import

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # refused unread: no hash, so never counted as a duplicate
            return _Piece(None, problem=f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
        data = path.read_bytes()
    except OSError as error:
        return _Piece(None, problem=f"unreadable file ({error.strerror or type(error).__name__})")
    sha256 = hashlib.sha256(data).digest()
    try:
        midi = read_midi(data, name=str(path))
    except MidiError as error:
        return _Piece(sha256, problem=error.reason)
    except Exception as error:  # a reader bug must not stop a 200,000-file run: report it as a problem
        return _Piece(sha256, problem=f"reader failure ({type(error).__name__}: {error})")
    if len(midi.events) == 0:
        return _Piece(sha256, problem="no notes")
    try:
        rows = _encode(midi.events)
    except ValueError as error:
        return _Piece(sha256, problem=str(error))
    present = np.zeros(_INSTRUMENT_BYTES * 8, dtype=bool)
    present[list(midi.instruments())] = True
    return _Piece(sha256, rows, float(midi.duration_seconds), np.packbits(present).tobytes())


def _tokenize_all(paths: list[Path], workers: int, chunksize: int) -> Iterator[_Piece]:
    """Tokenized pieces in input order, with at most two batches of results held in memory.

    ``Pool.imap`` alone has no back-pressure (results pile up if the parent lags), so the files go in
    batches; the next batch is queued before the current one is drained, which keeps every worker busy.
    """
    if workers <= 1:
        yield from map(_tokenize_file, paths)
        return
    batch_size = workers * chunksize * 4
    with multiprocessing.Pool(workers) as pool:
        pending: deque[Iterator[_Piece]] = deque()
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            pending.append(pool.imap(_tokenize_file, batch, chunksize))
            if len(pending) > 1:
                yield from pending.popleft()
        while pending:
            yield from pending.popleft()


def _is_corpus(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def prepare_corpus(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    chunksize: int = 16,
    force: bool = False,
    progress: bool = True,
    split_files: Sequence[str | os.PathLike] = (),
) -> dict:
    """Tokenize every MIDI file under ``sources`` into a corpus folder ``out_dir``; returns the manifest.

    ``workers`` processes tokenize files in parallel (default: ``os.cpu_count()``; 1 runs in this process).
    Bad files are skipped and counted by reason in ``report.json``. The folder is built next to ``out_dir``
    and renamed into place when complete; an existing corpus is replaced only with ``force``, anything else
    at ``out_dir`` is never touched. Files listed in ``split_files`` (see ``read_split_file``; one per source,
    e.g. the music21 and Mutopia builders' ``split.json``) go to the split they name, the others by content
    hash. Raises ``CorpusError``, also for a file that two split files place in different splits.
    """
    out = Path(out_dir)
    if out.exists() and not (force and _is_corpus(out)):
        what = "a corpus (use --force to replace it)" if _is_corpus(out) else "not a corpus folder"
        raise CorpusError(f"{out} already exists and is {what}")
    files = find_midi_files(sources)
    if not files:
        raise CorpusError(f"no .mid/.midi files found in {', '.join(map(str, sources))}")
    placed: dict[Path, str] = {}
    for split_file in split_files:
        for path, split in read_split_file(split_file).items():
            if placed.setdefault(path, split) != split:
                raise CorpusError(f"{path}: in {placed[path]} by one split file, {split} by {split_file}")
    forced = [placed.get(path.resolve()) for path, _ in files] if placed else [None] * len(files)
    workers = workers if workers is not None else os.cpu_count() or 1
    if workers < 1:
        raise CorpusError(f"workers must be at least 1, not {workers}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as tmp:
        manifest = _build(files, forced, tmp, workers, chunksize, progress)
    return manifest


def _build(
    files: list[tuple[Path, str]],
    forced: list[str | None],
    folder: Path,
    workers: int,
    chunksize: int,
    progress: bool,
) -> dict:
    """Write the corpus files into ``folder``, streaming; returns the manifest.

    ``forced`` holds each file's split from a split file, or None to split by content hash.
    """
    from tqdm import tqdm

    split_index = {name: i for i, name in enumerate(SPLITS)}
    totals = {name: Counter() for name in SPLITS}
    first_seen: dict[bytes, str] = {}
    duplicates: list[dict[str, str]] = []
    skipped: dict[str, dict[str, str]] = {}
    offset = placed = 0
    paths = [path for path, _ in files]
    bar = tqdm(total=len(files), unit="file", desc="prepare", disable=not progress, file=sys.stderr)
    with (
        open(folder / EVENTS_FILE, "wb") as events_out,
        open(folder / PIECES_FILE, "wb") as pieces_out,
        open(folder / SOURCES_FILE, "w") as sources_out,
        contextlib.closing(bar),
    ):
        tokenized = _tokenize_all(paths, workers, chunksize)
        for (_, name), split, piece in zip(files, forced, tokenized, strict=True):
            bar.update()
            if piece.sha256 is not None and piece.sha256 in first_seen:
                duplicates.append({"file": name, "same_as": first_seen[piece.sha256]})
                continue
            if piece.sha256 is not None:
                first_seen[piece.sha256] = name
            if piece.problem is not None:
                skipped.setdefault(problem_kind(piece.problem), {})[name] = piece.problem
                continue
            placed += split is not None
            split = split or split_of(piece.sha256)
            count = len(piece.rows)
            record = (offset, count, piece.duration, piece.sha256, piece.instruments, split_index[split])
            events_out.write(piece.rows.tobytes())
            pieces_out.write(_RECORD.pack(*record))
            sources_out.write(json.dumps(name) + "\n")
            offset += count
            totals[split].update(pieces=1, events=count, seconds=piece.duration)
    pieces = sum(total["pieces"] for total in totals.values())
    if pieces == 0:
        raise CorpusError(f"none of the {len(files)} MIDI files could be tokenized: {sorted(skipped)}")
    report = {
        "files": len(files),
        "pieces": pieces,
        "duplicates": {"count": len(duplicates), "files": duplicates},
        "skipped": {reason: len(names) for reason, names in sorted(skipped.items())},
        "skipped_files": dict(sorted(skipped.items())),
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pieces": pieces,
        "events": offset,
        "time_resolution": TIME_RESOLUTION,
        "split_rule": SPLIT_RULE + (f"; {placed} pieces placed by split files instead" if placed else ""),
        "splits": {
            name: {
                "pieces": total["pieces"],
                "events": total["events"],
                "hours": round(total["seconds"] / 3600, 6),
            }
            for name, total in totals.items()
        },
        "files": {
            "found": len(files),
            "pieces": pieces,
            "duplicates": len(duplicates),
            "skipped": sum(map(len, skipped.values())),
            "skipped_by_reason": report["skipped"],
        },
    }
    _write_json(folder / REPORT_FILE, report)
    _write_json(folder / MANIFEST, manifest)  # last: its presence marks a complete corpus
    return manifest


def format_summary(manifest: dict) -> str:
    """A short table of a corpus: pieces, events and hours per split, and what was skipped."""
    lines = [f"{'split':<6} {'pieces':>9} {'events':>13} {'hours':>9}"]
    for name in SPLITS:
        split = manifest["splits"][name]
        lines.append(f"{name:<6} {split['pieces']:>9,} {split['events']:>13,} {split['hours']:>9.2f}")
    files = manifest["files"]
    lines.append(
        f"{files['found']:,} files: {files['pieces']:,} pieces, {files['duplicates']:,} duplicates, "
        f"{files['skipped']:,} skipped (see {REPORT_FILE})"
    )
    reasons = sorted(files["skipped_by_reason"].items(), key=lambda item: -item[1])
    lines += [f"  {count:>9,}  {reason}" for reason, count in reasons[:5]]
    if len(reasons) > 5:
        lines.append(f"  {sum(count for _, count in reasons[5:]):>9,}  other reasons")
    return "\n".join(lines)


class Corpus:
    """A prepared corpus folder (see the module docstring), read through a memory map.

    ``len(corpus)`` pieces, numbered in corpus order; ``corpus.events(i)`` decodes one piece on demand.
    Raises ``CorpusError`` when the folder is missing, incomplete or inconsistent.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise CorpusError(f"{self.path}: no such corpus folder")
        try:
            self.manifest = json.loads(manifest_path.read_text())
            if self.manifest.get("format") != FORMAT:
                raise ValueError("not an amt corpus manifest")
            pieces, events = int(self.manifest["pieces"]), int(self.manifest["events"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CorpusError(f"{self.path}: not a corpus folder ({MANIFEST}: {error})") from None
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise CorpusError(
                f"{self.path}: corpus format version {version} is not supported (this amt reads "
                f"version {FORMAT_VERSION}); prepare it again"
            )
        self._pieces = self._load_array(PIECES_FILE, PIECE_DTYPE, pieces)
        self._events = self._load_array(EVENTS_FILE, np.dtype("<u2"), events * 3).reshape(events, 3)
        try:
            with open(self.path / SOURCES_FILE) as sources:
                self._sources = [json.loads(line) for line in sources]
        except (OSError, ValueError) as error:
            raise CorpusError(f"{self.path}: corrupt corpus ({SOURCES_FILE}: {error})") from None
        counts = self._pieces["count"]
        offsets = np.zeros(pieces, np.uint64)
        np.cumsum(counts[:-1], out=offsets[1:])
        if (
            len(self._sources) != pieces
            or int(counts.sum()) != events
            or not np.array_equal(self._pieces["offset"], offsets)
            or (self._pieces["split"] >= len(SPLITS)).any()
        ):
            raise CorpusError(f"{self.path}: corrupt corpus (index does not match the event array)")

    def _load_array(self, name: str, dtype: np.dtype, count: int) -> np.ndarray:
        path = self.path / name
        try:
            size = path.stat().st_size
        except OSError as error:
            raise CorpusError(f"{self.path}: corrupt corpus ({name}: {error.strerror})") from None
        if size != count * dtype.itemsize:
            raise CorpusError(
                f"{self.path}: corrupt corpus ({name} has {size} bytes, the manifest implies "
                f"{count * dtype.itemsize})"
            )
        if count == 0:
            return np.zeros(0, dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=(count,))

    def __len__(self) -> int:
        return len(self._sources)

    def _record(self, i: int) -> np.void:
        if not -len(self) <= i < len(self):
            raise IndexError(f"piece {i} out of range for a corpus of {len(self)} pieces")
        return self._pieces[i]

    def split(self, name: Literal["train", "valid", "test"]) -> np.ndarray:
        """Indices of the pieces in split ``name``, ascending."""
        if name not in SPLITS:
            raise CorpusError(f"unknown split {name!r}: choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self._pieces["split"] == SPLITS.index(name))

    def event_counts(self) -> np.ndarray:
        """The number of events of every piece (int64, indexed like the corpus), without decoding any."""
        return self._pieces["count"].astype(np.int64)

    def events(self, i: int) -> np.ndarray:
        """Piece ``i`` as (n, 3) int64 event tokens, times in absolute ticks from the piece start."""
        record = self._record(i)
        start = int(record["offset"])
        return _decode(self._events[start : start + int(record["count"])])

    def instruments(self, i: int) -> tuple[int, ...]:
        """The instruments (GM program, 128 = drums) playing in piece ``i``, ascending."""
        bits = np.unpackbits(self._record(i)["instruments"])[:MAX_INSTR]
        return tuple(int(k) for k in np.flatnonzero(bits))

    def duration(self, i: int) -> float:
        """Length of piece ``i`` in seconds."""
        return float(self._record(i)["duration"])

    def source(self, i: int) -> str:
        """Path of piece ``i``'s file, relative to the folder it was prepared from."""
        self._record(i)
        return self._sources[i]

    def sha256(self, i: int) -> str:
        """Hex SHA-256 of piece ``i``'s file bytes (it decides the split)."""
        return bytes(self._record(i)["sha256"]).hex()

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, pieces={len(self)}, events={len(self._events)})"
