"""Atomic writes: normal permissions, content flushed before the rename, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from amt.fileio import atomic_directory, atomic_paths, atomic_write_bytes, atomic_write_text


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_permissions_of_any_new_file(tmp_path, umask):
    atomic_write_bytes(tmp_path / "a.mid", b"MThd")
    atomic_write_text(tmp_path / "b.json", "{}\n")
    assert mode(tmp_path / "a.mid") == 0o666 & ~umask  # mkstemp alone would give 0o600
    assert mode(tmp_path / "b.json") == 0o666 & ~umask
    with atomic_directory(tmp_path / "folder") as folder:
        (folder / "x").write_text("x")
    assert mode(tmp_path / "folder") == 0o777 & ~umask


def test_a_writer_that_recreates_the_file_privately_still_leaves_normal_permissions(tmp_path, umask):
    target = tmp_path / "model.safetensors"
    with atomic_paths([target]) as (tmp,):
        tmp.unlink()  # what safetensors' save_file does: a new file of its own, mode 0o600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"weights")
        os.close(fd)
    assert target.read_bytes() == b"weights"
    assert mode(target) == 0o666 & ~umask


def test_content_is_replaced_whole_and_flushed_before_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(("replace", str(a))) or real_replace(a, b))
    atomic_write_text(target, "new text")
    assert target.read_text() == "new text"
    temporary = next(path for kind, path in calls if kind == "replace")
    assert calls.index(("fsync", temporary)) < calls.index(("replace", temporary))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failure_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.mid"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_paths([target]) as (tmp,):
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mid"]


def test_several_files_are_all_written_or_none(tmp_path):
    paths = [tmp_path / "a.mid", tmp_path / "b.mid"]
    with pytest.raises(RuntimeError), atomic_paths(paths) as temporary:
        temporary[0].write_bytes(b"first")
        raise RuntimeError("second failed")
    assert not any(p.exists() for p in paths) and not list(tmp_path.iterdir())
    with atomic_paths(paths) as temporary:
        assert all(t.parent == tmp_path and t.suffix == ".mid" and t.name.startswith(".") for t in temporary)
        for t, data in zip(temporary, [b"1", b"2"], strict=True):
            t.write_bytes(data)
    assert [p.read_bytes() for p in paths] == [b"1", b"2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "b.mid"]


def test_a_folder_is_replaced_whole_or_kept(tmp_path):
    final = tmp_path / "corpus"
    with atomic_directory(final) as folder:
        assert folder.parent == tmp_path and not final.exists()
        (folder / "sub").mkdir()
        (folder / "sub" / "data.bin").write_bytes(b"v1")
    assert (final / "sub" / "data.bin").read_bytes() == b"v1"
    with pytest.raises(RuntimeError), atomic_directory(final) as folder:
        (folder / "partial").write_bytes(b"half")
        raise RuntimeError("build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
    assert [p.name for p in final.iterdir()] == ["sub"]
    with atomic_directory(final) as folder:
        (folder / "new").write_bytes(b"v2")
    assert [p.name for p in final.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # the old folder is gone
