"""Shared fixtures: the reference files of the original implementation live in ../shared/reference."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
"""The original implementation's reference files; ``shared/`` sits beside the project root, in CI too."""


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The shared reference folder (MIDI files and the original implementation's tokens); skip if absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference files not found at {REFERENCE_DIR}")
    return REFERENCE_DIR
