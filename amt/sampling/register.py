"""Register weight: new pitched notes at or above the melody (the highest kept note sounding at their
onset) keep only a share of their probability, so that an accompaniment sits below its tune."""

from __future__ import annotations

import numpy as np

from amt.tokenization.vocab import MAX_PITCH

REGISTER_WEIGHT = 0.2
"""Default ``SamplingOptions.register_weight``: chosen on validation pieces (MODEL_CARD.md)."""
_PITCHES = np.arange(MAX_PITCH)


def register_log_weights(melody: int | None, weight: float) -> np.ndarray | None:
    """Log-weights ``[MAX_PITCH]`` for a new note under the melody pitch ``melody``; None when no melody
    sounds or the weight is 1."""
    if melody is None or weight >= 1.0:
        return None
    return np.where(melody <= _PITCHES, np.log(weight), 0.0)
