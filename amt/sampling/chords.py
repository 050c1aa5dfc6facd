"""Which pitch-class sets fit one triad or seventh chord, and which pitch classes would keep a set fitting.

A set *fits* when it lies inside one of the chords of ``CHORD_TYPES`` on some root; incomplete chords count
(a bare third fits, so does a single note). Used by the sampler's chord weight (``chordweight``) and by the
accompaniment yardstick (``amt.training.accompaniment``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CHORD_TYPES: dict[str, tuple[int, ...]] = {
    "major": (0, 4, 7),
    "minor": (0, 3, 7),
    "diminished": (0, 3, 6),
    "augmented": (0, 4, 8),
    "dominant 7": (0, 4, 7, 10),
    "major 7": (0, 4, 7, 11),
    "minor 7": (0, 3, 7, 10),
    "half-diminished 7": (0, 3, 6, 10),
    "diminished 7": (0, 3, 6, 9),
}


def pitch_class_mask(pitch_classes: Iterable[int]) -> int:
    """The 12-bit mask of a set of pitch classes (any integers; taken mod 12)."""
    bits = 0
    for pc in pitch_classes:
        bits |= 1 << (int(pc) % 12)
    return bits


CHORDS: tuple[int, ...] = tuple(sorted({pitch_class_mask((root + step) % 12 for step in steps)
                                        for steps in CHORD_TYPES.values() for root in range(12)}))
"""Every chord of ``CHORD_TYPES`` on every root, as 12-bit pitch-class masks."""
_ROOTS = np.zeros((4096, 12), dtype=bool)
"""``_ROOTS[mask, root]``: the pitch-class set ``mask`` lies inside a chord of ``CHORD_TYPES`` on ``root``."""
for _steps in CHORD_TYPES.values():
    for _root in range(12):
        # Every subset of a chord lies inside it: enumerate the submasks of each chord once, at import.
        _chord = pitch_class_mask((_root + step) % 12 for step in _steps)
        _sub = _chord
        while True:
            _ROOTS[_sub, _root] = True
            if _sub == 0:
                break
            _sub = (_sub - 1) & _chord
_FITS = _ROOTS.any(axis=1)
"""``_FITS[mask]``: the set lies inside some chord."""


def fits_chord(pitch_classes: Iterable[int]) -> bool:
    """Whether the pitch classes lie inside one triad or seventh chord (the empty set fits)."""
    return bool(_FITS[pitch_class_mask(pitch_classes)])


def chord_tones(pitch_classes: Iterable[int]) -> np.ndarray:
    """Boolean ``[12]``: the pitch classes that, added to ``pitch_classes``, still fit one chord. All False
    when the set itself fits none (a clash already sounds: no added note can mend it)."""
    bits = pitch_class_mask(pitch_classes)
    return _FITS[bits | (1 << np.arange(12))]


def chord_roots(pitch_classes: Iterable[int]) -> np.ndarray:
    """Boolean ``[12]``: the roots of the chords of ``CHORD_TYPES`` that contain every pitch class given (all
    False when the set fits no chord; all True for the empty set)."""
    return _ROOTS[pitch_class_mask(pitch_classes)]
