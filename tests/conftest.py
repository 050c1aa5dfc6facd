"""Shared fixtures: the reference files of the original implementation live in tests/data/reference."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = REPO_ROOT / "tests" / "data" / "reference"
"""The original implementation's reference files (MIDI inputs and their tokens), copied into the repo."""


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The reference folder (MIDI files and the original implementation's tokens)."""
    return REFERENCE_DIR
