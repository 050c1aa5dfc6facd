"""The key of some notes: Krumhansl-Schmuckler profile correlation, and which pitch classes are in it.

Used by the sampler's key weight (``keyweight``, one estimate per sliding window) and by the yardsticks in
``amt.training`` (notes in key).
"""

from __future__ import annotations

import numpy as np

from amt.errors import GenerationError

# Krumhansl & Kessler (1982) key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 9, 10, 11)  # natural minor plus the raised sixth and seventh

# The 24 profiles, centred: rows 0-11 major on tonics 0-11, rows 12-23 minor.
_PROFILES = np.stack([np.roll(p, t) for p in (MAJOR_PROFILE, MINOR_PROFILE) for t in range(12)])
_PROFILES = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)


def key_fits(histograms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best key of each pitch-class histogram ``[n, 12]``: (tonic ``[n]``, minor ``[n]`` bool, correlation
    ``[n]``). A flat (or empty) histogram correlates 0 with every key and gets C major; ties go to major
    and the lower tonic."""
    centred = histograms - histograms.mean(axis=1, keepdims=True)
    scale = np.linalg.norm(centred, axis=1, keepdims=True) * np.linalg.norm(_PROFILES, axis=1)
    products = centred @ _PROFILES.T
    r = np.divide(products, scale, out=np.zeros_like(products), where=scale > 1e-12)
    best = r.argmax(axis=1)
    return best % 12, best >= 12, r[np.arange(len(r)), best]


def key_correlation(pitches: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, str, float]:
    """(tonic pitch class, "major" or "minor", correlation) of the best-fitting key profile. The correlation
    says how clear the key is: about 0.9 for diatonic tunes, near 0 for a chromatic wash."""
    pitches = np.asarray(pitches, dtype=np.int64)
    if not len(pitches):
        raise GenerationError("cannot estimate the key of music without notes")
    histogram = np.bincount(pitches % 12, weights=weights, minlength=12).astype(np.float64)
    tonic, minor, r = key_fits(histogram[None])
    return int(tonic[0]), "minor" if minor[0] else "major", float(r[0])


def estimate_key(pitches: np.ndarray, weights: np.ndarray | None = None) -> tuple[int, str]:
    """(tonic pitch class, "major" or "minor") by Krumhansl-Schmuckler profile correlation."""
    tonic, mode, _ = key_correlation(pitches, weights)
    return tonic, mode


def key_pitch_classes(tonic: int, mode: str) -> frozenset[int]:
    """Pitch classes counted as in the key."""
    return frozenset((tonic + step) % 12 for step in (MAJOR_SCALE if mode == "major" else MINOR_SCALE))
