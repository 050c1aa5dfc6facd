"""bench/results.py: each benchmark script replaces (or appends to) its own section of bench/RESULTS.md."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

# bench/ is not a package (its scripts run as `python bench/NAME.py`), so load the module from its path.
_spec = importlib.util.spec_from_file_location("bench_results", BENCH / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)
record_section = results.record_section

FILE = """# Benchmarks

One section per benchmark script.

## Tokenization

tokenization table

## Server

old server table
old server notes

## Sampling (bench/sample.py)

first sampling entry
"""


@pytest.fixture
def results_md(tmp_path: Path) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_text(FILE, encoding="utf-8")
    return path


def test_replace_changes_only_its_section(results_md: Path):
    record_section("## Server", "new server table\n", path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE.replace(
        "old server table\nold server notes\n", "new server table\n")


def test_replace_the_last_section(results_md: Path):
    record_section("## Sampling (bench/sample.py)", "only entry", path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE.replace("first sampling entry", "only entry")


def test_append_adds_an_entry_at_the_end_of_its_section(results_md: Path):
    record_section("## Server", "second server entry\n", append=True, path=results_md)
    record_section("## Sampling (bench/sample.py)", "second sampling entry", append=True, path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE.replace(
        "old server notes\n", "old server notes\n\nsecond server entry\n").replace(
        "first sampling entry\n", "first sampling entry\n\nsecond sampling entry\n")


def test_missing_section_is_added_at_the_end(results_md: Path):
    record_section("## Training", "training table", path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE + "\n## Training\n\ntraining table\n"
    record_section("## Models (bench/models.py)", "models table", append=True, path=results_md)
    assert results_md.read_text(encoding="utf-8").endswith(
        "## Training\n\ntraining table\n\n## Models (bench/models.py)\n\nmodels table\n")


def test_heading_is_matched_as_a_whole_line(results_md: Path):
    # "## Sampling" is a different section from "## Sampling (bench/sample.py)", and a prefix of it.
    record_section("## Sampling", "other sampler", path=results_md)
    text = results_md.read_text(encoding="utf-8")
    assert "## Sampling (bench/sample.py)\n\nfirst sampling entry\n" in text
    assert text.endswith("\n\n## Sampling\n\nother sampler\n")


def test_missing_file_is_created_with_a_preamble(tmp_path: Path):
    path = tmp_path / "RESULTS.md"
    record_section("## Server", "server table", append=True, path=path)
    assert path.read_text(encoding="utf-8") == results.PREAMBLE + "\n## Server\n\nserver table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]  # no temporary left behind


def test_a_failed_write_leaves_the_file_as_it_was(results_md: Path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        record_section("## Server", "new server table", path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE
    assert [p.name for p in results_md.parent.iterdir()] == ["RESULTS.md"]


@pytest.mark.parametrize("heading", ["Server", "# Server", "## Server\nmore"])
def test_heading_must_be_one_level_2_line(results_md: Path, heading: str):
    with pytest.raises(ValueError, match="heading"):
        record_section(heading, "table", path=results_md)
    assert results_md.read_text(encoding="utf-8") == FILE


def test_no_bench_script_shadows_a_standard_library_module():
    # `python bench/NAME.py` puts bench/ first on sys.path, so bench/tokenize.py would replace `tokenize`.
    names = {path.stem for path in BENCH.glob("*.py")}
    assert "results" in names
    assert not names & set(sys.stdlib_module_names)
