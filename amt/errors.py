"""Exceptions raised by amt for bad input. Each carries a message a user can act on.

The errors tokenization raises are defined in ``amt.tokenization.errors`` (tokenization imports nothing from
the core) and re-exported here, so every layer imports its errors from this one module. Torch-free.
"""

from __future__ import annotations

from amt.tokenization.errors import AmtError, CorpusError, GenerationError, MidiError, TokenError

__all__ = [
    "AmtError", "ConfigError", "CorpusError", "GenerationError", "MidiError", "ModelError", "TokenError",
]


class ModelError(AmtError):
    """A model folder or Hub id that cannot be loaded: missing files, wrong vocabulary, bad weights."""


class ConfigError(AmtError):
    """A training or evaluation configuration that is missing, malformed or inconsistent."""
