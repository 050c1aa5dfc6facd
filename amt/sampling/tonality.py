"""The key of some notes: Krumhansl-Schmuckler profile correlation, and which pitch classes are in it.

Used by the sampler's key weight (``keyweight``) and by the yardsticks in ``amt.training`` (notes in key).
"""

from __future__ import annotations

import numpy as np

from amt.errors import GenerationError

# Krumhansl & Kessler (1982) key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 9, 10, 11)  # natural minor plus the raised sixth and seventh


def key_correlation(pitches: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, str, float]:
    """(tonic pitch class, "major" or "minor", correlation) of the best-fitting key profile. The correlation
    says how clear the key is: about 0.9 for diatonic tunes, near 0 for a chromatic wash."""
    pitches = np.asarray(pitches, dtype=np.int64)
    if not len(pitches):
        raise GenerationError("cannot estimate the key of music without notes")
    histogram = np.bincount(pitches % 12, weights=weights, minlength=12)
    best = (-2.0, 0, "major")
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]) if histogram.std() > 0 else 0.0
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2], best[0]


def estimate_key(pitches: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, str]:
    """(tonic pitch class, "major" or "minor") by Krumhansl-Schmuckler profile correlation."""
    tonic, mode, _ = key_correlation(pitches, weights)
    return tonic, mode


def key_pitch_classes(tonic: int, mode: str) -> frozenset[int]:
    """Pitch classes counted as in the key."""
    return frozenset((tonic + step) % 12 for step in (MAJOR_SCALE if mode == "major" else MINOR_SCALE))
