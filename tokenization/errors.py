"""The errors that tokenization raises, each with a message a user can act on.

They live here, not in ``amt.errors``, so that ``amt.tokenization`` imports nothing from the core (the
layers point one way: tokenization <- core <- front ends). ``amt.errors`` re-exports every class, so code
that catches ``amt.errors.MidiError`` catches these very classes. ``GenerationError`` is here because part
selection (``parts.py``) already refuses requests that name parts a file does not have; the core raises it
for the rest (empty spans, caps, options out of range).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AmtError", "CorpusError", "GenerationError", "MidiError", "TokenError"]


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


class GenerationError(AmtError):
    """A generation request that cannot be met: an empty span, an instrument not in the file, etc."""
