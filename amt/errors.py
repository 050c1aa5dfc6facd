"""Exceptions raised by amt for bad input. Each carries a message a user can act on.

This module is a leaf (no imports from the rest of amt, no torch), so every layer can use it.
"""

from __future__ import annotations

from pathlib import Path


class AmtError(Exception):
    """Base class of every error amt raises on purpose; the CLI prints its message, not a traceback."""


class MidiError(AmtError):
    """A MIDI file that cannot be read or written: names the file and the reason."""

    def __init__(self, source: str | Path | None, reason: str):
        self.source = str(source) if source is not None else "<bytes>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class TokenError(AmtError):
    """A token sequence that breaks the format (wrong block at a position, out-of-range value)."""


class CorpusError(AmtError):
    """A corpus folder that is missing, incomplete or inconsistent."""


class ModelError(AmtError):
    """A model folder or Hub id that cannot be loaded: missing files, wrong vocabulary, bad weights."""


class GenerationError(AmtError):
    """A generation request that cannot be met: an empty span, an instrument not in the file, etc."""


class ConfigError(AmtError):
    """A training or evaluation configuration that is missing, malformed or inconsistent."""
