"""Key weight: new pitched notes outside the key of the kept music keep only a share of their probability.

The key is estimated once from the kept notes (prompt and controls, weighted by duration) with the
Krumhansl-Schmuckler profiles of ``tonality``. Where the key is unclear (fewer than ``MIN_NOTES`` kept
pitched notes, or a profile correlation below ``CLARITY``: atonal or chromatic music, drums only) the weight
is off. A weight, not a ban: chromatic passing notes stay possible.
"""

from __future__ import annotations

import numpy as np

from amt.sampling.tonality import key_correlation, key_pitch_classes
from amt.tokenization.vocab import MAX_PITCH

KEY_WEIGHT = 0.3
"""Default ``SamplingOptions.key_weight``: chosen on validation pieces (MODEL_CARD.md)."""
CLARITY = 0.6
"""Lowest profile correlation at which the key counts as clear (diatonic music scores about 0.8-0.95)."""
MIN_NOTES = 8
"""Fewer kept pitched notes than this say too little about the key."""


class KeyWeight:
    """Log-weights ``[MAX_PITCH]`` for new pitched notes from the kept notes' key (see module doc)."""

    def __init__(self, pitches: np.ndarray, durations: np.ndarray, weight: float):
        self.key: tuple[int, str] | None = None
        self.why_off = ""
        self.log_weights: np.ndarray | None = None
        if weight >= 1.0:
            self.why_off = "key weight 1 (off)"
        elif len(pitches) < MIN_NOTES:
            self.why_off = f"key weight off: {len(pitches)} kept pitched notes say too little about the key"
        else:
            tonic, mode, clarity = key_correlation(pitches, np.maximum(durations, 1).astype(np.float64))
            if clarity < CLARITY:
                self.why_off = f"key weight off: the key is unclear (profile correlation {clarity:.2f})"
            else:
                self.key = (tonic, mode)
                in_key = np.isin(np.arange(MAX_PITCH) % 12, sorted(key_pitch_classes(tonic, mode)))
                self.log_weights = np.where(in_key, 0.0, np.log(weight))
