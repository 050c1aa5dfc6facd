"""Register weight: new pitched notes at or above the melody (the highest kept note sounding at their
onset) keep only a share of their probability, so that an accompaniment sits below its tune. Kept music
that lies low (median pitch below ``MELODY_FLOOR``: a bass line kept, a tune to be written above it) is no
melody to go under: the weight is off there."""

from __future__ import annotations

import numpy as np

from amt.tokenization.vocab import MAX_PITCH

REGISTER_WEIGHT = 0.2
"""Default ``SamplingOptions.register_weight``: chosen on validation pieces (MODEL_CARD.md)."""
MELODY_FLOOR = 60
"""Median MIDI pitch (C4) below which the kept notes are not taken for a melody."""
_PITCHES = np.arange(MAX_PITCH)


def register_applies(kept_pitches: np.ndarray) -> str:
    """Why the register weight cannot apply to these kept pitches ("" when it can)."""
    if not len(kept_pitches):
        return "register weight off: no kept pitched notes"
    if np.median(kept_pitches) < MELODY_FLOOR:
        return "register weight off: the kept music lies low (median below C4), no melody to go under"
    return ""


def register_log_weights(melody: int | None, weight: float) -> np.ndarray | None:
    """Log-weights ``[MAX_PITCH]`` for a new note under the melody pitch ``melody``; None when no melody
    sounds or the weight is 1."""
    if melody is None or weight >= 1.0:
        return None
    return np.where(melody <= _PITCHES, np.log(weight), 0.0)
