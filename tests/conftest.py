"""Shared fixtures: the reference files of the original implementation live in ../shared/reference."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The shared reference folder (MIDI files and the original implementation's tokens); skip if absent."""
    path = REPO_ROOT.parent / "shared" / "reference"
    if not path.is_dir():
        pytest.skip(f"reference files not found at {path}")
    return path
