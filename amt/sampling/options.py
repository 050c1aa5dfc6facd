"""What a user can ask of the sampler: randomness, constraints on new notes and attribute targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from amt.errors import GenerationError
from amt.sampling.chordweight import CHORD_WEIGHT
from amt.sampling.keyweight import KEY_WEIGHT
from amt.sampling.register import REGISTER_WEIGHT
from amt.tokenization.vocab import DRUMS, MAX_INSTR, MAX_PITCH

BEAT_PARALLELS = 0.6
"""Default ``SamplingOptions.beat_parallels``: chosen on the validation chorales (MODEL_CARD.md)."""
MAX_GRID = 24
"""Finest grid, in steps per quarter note: at 120 bpm a step of 24 is about two 10 ms ticks."""
DEFAULT_MAX_SECONDS = 600.0
"""Default ``SamplingOptions.max_seconds``: ten minutes, longer than most pieces; a few bytes of MIDI can
span hours of music, which would take hours to write."""


@dataclass
class SamplingOptions:
    """Options of one generation request; every constraint applies to new notes only.

    - ``top_p``: nucleus sampling, draw from the smallest set of likeliest tokens holding this much mass.
    - ``temperature``: divides the logits; below 1 is more conservative, above 1 more adventurous.
    - ``seed``: seeds a ``torch.Generator``; the same seed, model and input give the same output.
    - ``instruments``: General MIDI programs new notes may use (128 = drums); None allows any.
    - ``pitch_range``: inclusive (low, high) MIDI pitches for new pitched notes (drums are exempt).
    - ``max_instruments``: the output (kept + new notes) uses at most this many instruments; 16 matches
      the 16 MIDI channels. REST is not an instrument.
    - ``density``: target new notes per second. Decoding keeps the count of new notes within about a
      second's worth of notes (at least 4) of ``density`` x elapsed time: a note that would run ahead of the
      budget must wait (its onset is pushed later), and when the count falls behind, the next onset may not
      be later than where the budget catches up and REST is not allowed.
    - ``polyphony``: target mean number of new notes sounding at once (the time average). Decoding caps the
      new notes sounding at once at ``ceil(1.5 x polyphony)``: an onset waits until a voice is free.
    - ``monophonic``: each new instrument plays one note at a time, like a choir voice or a wind part: a new
      note ends its instrument's previous new note if that one still sounds (as a monophonic synthesizer
      does), and no two new notes of one instrument start together. Drums are exempt.
    - ``grid``: new notes start and end on a grid of this many steps per quarter note of the piece's tempo
      map (4: sixteenths, 3: eighth-note triplets), like a DAW's quantise; None leaves timing free (10 ms).
      Where no grid step lies within reach of the next onset, decoding waits (a REST).
    - ``legato``: with ``monophonic``, a new part sings without rests once it has entered, like a choir
      voice in a chorale: each note holds until the part's next note starts (a DAW's legato; a note is at
      most ``MAX_DUR`` - 1 ticks). The model draws the same notes; only where they end changes.
    - ``no_parallels``: with ``monophonic``, no new part moves in parallel fifths or octaves (unisons and
      compound intervals included) with another single-line part, kept or new: a new note may not move in
      the same direction as a part that changes note at the same onset, from a perfect fifth (octave) into
      a perfect fifth (octave); a part's line runs on across its rests. The classical voice-leading rule;
      parts sounding chords are exempt.
    - ``beat_parallels``: with ``no_parallels``, how much a new note that starts on a beat (a quarter note of
      the piece's tempo map) keeps of the model's probability when it would make parallel fifths or octaves
      with another part from the previous beat to this one, passing notes between them notwithstanding (the
      weight multiplies the probability before nucleus truncation). 0 forbids such moves, as strict
      counterpoint does; 1 leaves them to the model. The default is where the built-in model came nearest
      Bach's rate of them on the validation chorales (see MODEL_CARD.md).
    - ``file_grid``: when ``grid`` is None, accompany, infill and continue put new notes on the file's own
      grid: sixteenths, or sixteenths and triplets where the kept notes use triplets, through its tempo map;
      off where the kept notes fit neither (a played-in performance). False: free timing.
    - ``file_density``: when ``density`` is None, accompany targets the replaced parts' notes per second
      over the span, infill and continue the kept music's; False: no target.
    - ``key_weight``: share of its probability a new pitched note outside the key of the kept notes keeps
      (``keyweight``; off where the key is unclear); 1 is off.
    - ``chord_weight``: share kept, on a strong beat, by a new pitched note that would not fit one triad or
      seventh chord with what sounds then (the square root on other beats, nothing off the beat;
      ``chordweight``); 1 is off.
    - ``register_weight``: share kept by a new pitched note at or above the melody, the highest kept note
      sounding at its onset (``register``); 1 is off.
    - ``candidates``: samples per variation, generated in the same batch; the one closest to the density and
      polyphony targets is kept (needs a target).
    - ``max_seconds``: the longest span of music to write; a longer one is refused before decoding starts
      (the span of ``accompany`` is the whole piece).
    """

    top_p: float = 0.95
    temperature: float = 1.0
    seed: int | None = None
    instruments: Sequence[int] | None = None
    pitch_range: tuple[int, int] | None = None
    max_instruments: int = 16
    density: float | None = None
    polyphony: float | None = None
    monophonic: bool = False
    grid: int | None = None
    legato: bool = False
    no_parallels: bool = False
    beat_parallels: float = BEAT_PARALLELS
    file_grid: bool = True
    file_density: bool = True
    key_weight: float = KEY_WEIGHT
    chord_weight: float = CHORD_WEIGHT
    register_weight: float = REGISTER_WEIGHT
    candidates: int = 1
    max_seconds: float = DEFAULT_MAX_SECONDS

    @property
    def weighs_beats(self) -> bool:
        """Whether decoding needs the beats: ``beat_parallels`` below 1 under ``no_parallels``, or a
        ``chord_weight`` below 1."""
        return (self.no_parallels and self.beat_parallels < 1.0) or self.chord_weight < 1.0

    def validate(self) -> None:
        """Raise GenerationError naming the first option out of range."""
        if not 0.0 < self.top_p <= 1.0:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (self.temperature > 0.0 and math.isfinite(self.temperature)):
            raise GenerationError(f"temperature must be a positive number, got {self.temperature}")
        if self.instruments is not None:
            if len(self.instruments) == 0:
                raise GenerationError("instruments is empty: give at least one instrument, or None for any")
            bad = [i for i in self.instruments if not 0 <= int(i) < MAX_INSTR]
            if bad:
                raise GenerationError(f"instruments must be 0..{MAX_INSTR - 1} ({DRUMS} = drums), got {bad}")
        if self.pitch_range is not None:
            low, high = self.pitch_range
            if not 0 <= low <= high < MAX_PITCH:
                raise GenerationError(f"pitch_range must be LOW-HIGH with 0 <= LOW <= HIGH <= "
                                      f"{MAX_PITCH - 1}, got {low}-{high}")
        if not 1 <= self.max_instruments <= MAX_INSTR:
            raise GenerationError(f"max_instruments must be 1..{MAX_INSTR}, got {self.max_instruments}")
        for name in ("density", "polyphony"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise GenerationError(f"{name} must be a positive number, got {value}")
        if self.grid is not None and not 1 <= self.grid <= MAX_GRID:
            raise GenerationError(f"grid must be 1..{MAX_GRID} steps per quarter note, got {self.grid}")
        for name in ("legato", "no_parallels"):
            if getattr(self, name) and not self.monophonic:
                raise GenerationError(f"{name} applies to parts that play one note at a time: set monophonic")
        if not 0.0 <= self.beat_parallels <= 1.0:
            raise GenerationError(f"beat_parallels must be in [0, 1], got {self.beat_parallels}")
        if not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            raise GenerationError(f"max_seconds must be a positive number, got {self.max_seconds}")
        for name in ("key_weight", "chord_weight", "register_weight"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise GenerationError(f"{name} must be in (0, 1] (1 is off), got {value}")
        if self.candidates < 1:
            raise GenerationError(f"candidates must be at least 1, got {self.candidates}")
        if self.candidates > 1 and self.density is None and self.polyphony is None:
            raise GenerationError("candidates > 1 ranks samples by density or polyphony: give a target")
