"""Chord weight: on beats, new pitched notes that would not fit one triad or seventh chord with the notes
sounding then (kept and new) keep only a share of their probability; on strong beats (bar starts) the full
weight, on other beats its square root, off the beat nothing (passing and neighbour notes stay free).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from amt.sampling.chords import chord_tones
from amt.tokenization.vocab import MAX_PITCH

CHORD_WEIGHT = 0.03
"""Default ``SamplingOptions.chord_weight``: chosen on validation pieces (MODEL_CARD.md)."""
_PITCH_CLASS = np.arange(MAX_PITCH) % 12


def chord_log_weights(sounding: Iterable[int], strong: bool, weight: float) -> np.ndarray | None:
    """Log-weights ``[MAX_PITCH]`` for a new note on a beat while the pitches ``sounding`` sound; None when
    no weight applies (weight 1, or a set that already fits no chord, which no added note can mend)."""
    if weight >= 1.0:
        return None
    tones = chord_tones(sounding)
    if not tones.any() or tones.all():
        return None
    share = weight if strong else np.sqrt(weight)
    return np.where(tones[_PITCH_CLASS], 0.0, np.log(share))
