"""Atomic file and folder writes: a reader sees the old content or the new, never a half-written file.

Everything is written under a hidden temporary name in the target's folder (same file system, so the final
``os.replace`` is atomic), flushed to disk with ``fsync`` and renamed into place; on any error the temporary
is removed and the target is untouched. Temporaries are created with mode 0o666 (0o777 for folders) so the
umask applies as for any new file: ``tempfile.mkstemp`` would make them readable by their owner only, which
made MIDI files written for others (a web demo, a DAW on another account) unreadable.

Stdlib only, and in tokenization because tokenization writes files and imports nothing from the core;
``amt.fileio`` re-exports these writers for the rest of amt.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["atomic_directory", "atomic_paths", "atomic_write_bytes", "atomic_write_text"]


def _temporary_name(target: Path, kind: str, *, keep_suffix: bool = True) -> Path:
    """A hidden name next to ``target``; a file's suffix is kept last, as some writers (FluidSynth, for one)
    pick the format from it."""
    stem, suffix = (target.stem, target.suffix) if keep_suffix else (target.name, "")
    return target.with_name(f".{stem}.{secrets.token_hex(4)}.{kind}{suffix}")


def _create_file(target: Path) -> Path:
    """A new empty temporary file next to ``target`` (mode 0o666 less the umask)."""
    while True:
        path = _temporary_name(target, "tmp")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:  # 32 random bits: a clash is all but impossible, but cheap to survive
            continue


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (folders: so that the names inside them survive a crash too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_parent(path: Path) -> None:
    """Flush the rename in ``path``'s folder; some systems cannot open a folder, where this is a no-op."""
    with suppress(OSError):
        _fsync(path.parent)


@contextmanager
def atomic_paths(targets: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path per target, for the caller (or another program) to write to; when the block
    ends normally, each file is fsync'd and all are renamed onto their targets, in order; on an error none is.

    The renames come only after every file is written, so a failure while writing any of them leaves every
    target as it was (all or nothing, as far as the file system allows: the renames themselves do not fail
    in practice once the files are written). Each temporary starts as an empty file with normal permissions.
    """
    finals = [Path(t) for t in targets]
    temporaries: list[Path] = []
    try:
        for final in finals:
            temporaries.append(_create_file(final))
        modes = [stat.S_IMODE(tmp.stat().st_mode) for tmp in temporaries]
        yield list(temporaries)
        for tmp, mode in zip(temporaries, modes, strict=True):
            # A writer may have replaced the file made for it (safetensors' save_file does, with mode 0o600):
            # give it back the permissions of any new file.
            os.chmod(tmp, mode)
            _fsync(tmp)
        for tmp, final in zip(temporaries, finals, strict=True):
            os.replace(tmp, final)
        for final in finals:
            _fsync_parent(final)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace the file ``path`` with ``data`` atomically (see the module docstring)."""
    with atomic_paths([path]) as (tmp,), open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Replace the file ``path`` with ``text`` atomically (see the module docstring)."""
    atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder next to ``path`` to build a folder in; when the block ends normally, its files
    are fsync'd and it replaces ``path`` (an existing folder there is removed only after the new one is in
    place, so one complete folder is always found under one of the two names); on an error it is deleted.

    The caller decides whether an existing ``path`` may be replaced; the parent folder must exist.
    """
    final = Path(path)
    while True:
        tmp = _temporary_name(final, "tmp", keep_suffix=False)
        try:
            tmp.mkdir(mode=0o777)
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        for folder, _, files in os.walk(tmp):
            for name in files:
                _fsync(Path(folder) / name)
            _fsync(Path(folder))
        if final.exists():
            old = _temporary_name(final, "old", keep_suffix=False)
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)  # put the old folder back rather than leave neither
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        _fsync_parent(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
