"""What a user can ask of the sampler: randomness, constraints on new notes and attribute targets.

``SamplingOptions`` is the one declaration of every option: each field carries an ``Option`` (its help text,
range, demo slider and command-line flag) next to its default. ``validate`` checks the ranges from there;
the command line (``amt.sampling.cli``), the bridge's pydantic model (``amt.plugins.protocol.Sampling``)
and the demo's controls (``amt.demo``) take their defaults, ranges and words from it (``option_fields``,
``bounds``), and ``to_dict``/``from_dict`` carry options as plain JSON values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amt.errors import GenerationError
from amt.sampling.chordweight import CHORD_WEIGHT
from amt.sampling.keyweight import KEY_WEIGHT
from amt.sampling.register import REGISTER_WEIGHT
from amt.tokenization.vocab import DRUMS, MAX_INSTR, MAX_PITCH

BASS_WEIGHT = 0.05
"""Default ``SamplingOptions.bass_weight``: chosen on validation pieces (MODEL_CARD.md)."""
HARMONY_PRIOR = 1.0
"""Default ``SamplingOptions.harmony_prior``: chosen on validation pieces and chorales (MODEL_CARD.md)."""
BEAT_PARALLELS = 0.6
"""Default ``SamplingOptions.beat_parallels``: chosen on the validation chorales (MODEL_CARD.md)."""
MAX_GRID = 24
"""Finest grid, in steps per quarter note: at 120 bpm a step of 24 is about two 10 ms ticks."""
DEFAULT_MAX_SECONDS = 600.0
"""Default ``SamplingOptions.max_seconds``: ten minutes, longer than most pieces; a few bytes of MIDI can
span hours of music, which would take hours to write."""
OPTION = "amt.option"
"""Key of a ``SamplingOptions`` field's ``Option`` in its ``dataclasses.field`` metadata."""


@dataclass(frozen=True)
class Option:
    """What a front end needs to know about one option besides its default.

    ``low``/``high`` bound numbers (``low_open``: the low end excluded; ``high`` infinite: any finite value
    above ``low``); None for options that are not numbers or are checked in ``validate`` by hand. ``flag``
    is the command-line flag ("" for ``--name-with-dashes``, None for none; the flag of an option that is
    true by default switches it off). ``slider`` is the demo's (min, max, step) for a user option.
    ``unit`` and ``note`` complete an error message ("grid must be 1..24 steps per quarter note").
    """

    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    metavar: str | None = None
    flag: str | None = ""
    slider: tuple[float, float, float] | None = None
    unit: str = ""
    note: str = ""

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is out of this option's range (a one-line message naming ``name``), or None."""
        if self.low is None or value is None or isinstance(value, bool):
            return None
        low, high = self.low, self.high if self.high is not None else math.inf
        above = value > low if self.low_open else value >= low
        if above and value <= high and math.isfinite(value):
            return None
        if isinstance(low, int) and not isinstance(low, bool) and math.isfinite(high):
            return f"{name} must be {low}..{int(high)}{self.unit}, got {value}"
        if math.isinf(high):
            return f"{name} must be a positive number{self.unit}, got {value}"
        return f"{name} must be in {'(' if self.low_open else '['}{low:g}, {high:g}]{self.note}, got {value}"


def _option(default: Any, help: str, **kwargs: Any) -> Any:
    """A ``SamplingOptions`` field: its default and its ``Option``."""
    return dataclasses.field(default=default, metadata={OPTION: Option(help, **kwargs)})


_WEIGHT = {"low": 0.0, "high": 1.0, "low_open": True, "metavar": "W", "slider": (0.01, 1.0, 0.01),
           "note": " (1 is off)"}


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
    - ``key_weight``: share of its probability a new pitched note outside the key of the kept notes around
      its onset keeps (``keyweight``: a sliding window, the whole piece's key where the window says too
      little; off where no key is clear); 1 is off.
    - ``chord_weight``: share kept, on a strong beat, by a new pitched note that would not fit one triad or
      seventh chord with what sounds then (the square root on other beats, nothing off the beat;
      ``chordweight``); 1 is off.
    - ``harmony_prior``: on beats, the power to which the harmony prior's probability of a new pitched note's
      pitch class, given what sounds then, multiplies the model's (``constraints.prior``); 0 is off.
    - ``register_weight``: share kept by a new pitched note at or above the melody, the highest kept note
      sounding at its onset (``register``); 1 is off.
    - ``bass_weight``: on a bar's first beat, share kept by a new pitched note that would not go below the
      lowest new note when that one was struck before the bar line (the bass moves on the bar); a new lowest
      note that is no chord root there keeps a fixed share (``constraints.bass``); 1 is off.
    - ``candidates``: samples per variation, generated in the same batch; the one closest to the density and
      polyphony targets is kept (needs a target).
    - ``max_seconds``: the longest span of music to write; a longer one is refused before decoding starts
      (the span of ``accompany`` is the whole piece).
    """

    top_p: float = _option(0.95, "nucleus sampling mass: draw from the smallest set of likeliest tokens "
                           "holding this much probability", low=0.0, high=1.0, low_open=True,
                           slider=(0.5, 1.0, 0.01))
    temperature: float = _option(1.0, "sampling temperature: below 1 is more conservative, above 1 more "
                                 "adventurous", low=0.0, high=5.0, low_open=True, slider=(0.5, 1.5, 0.05))
    seed: int | None = _option(None, "random seed: the same seed gives the same output", low=0,
                               high=2**63 - 1)
    instruments: Sequence[int] | None = _option(
        None, f"General MIDI programs new notes may use (0-127, {DRUMS} = drums); default any", metavar="N")
    pitch_range: tuple[int, int] | None = _option(
        None, "MIDI pitches new pitched notes may use, e.g. 48-84", metavar="LO-HI")
    max_instruments: int = _option(16, "most instruments in the output, kept ones included", low=1,
                                   high=MAX_INSTR, metavar="N")
    density: float | None = _option(None, "target number of new notes per second", low=0.0, high=64.0,
                                    low_open=True, metavar="NOTES_PER_S", slider=(0.0, 20.0, 0.5))
    polyphony: float | None = _option(None, "target mean number of new notes sounding at once", low=0.0,
                                      high=32.0, low_open=True, metavar="VOICES")
    monophonic: bool = _option(False, "each new instrument plays one note at a time (choir voices, wind "
                               "parts): a new note ends the part's previous one")
    grid: int | None = _option(
        None, "new notes start and end on a grid of STEPS per quarter note of the file's tempo (4: "
        "sixteenths, 3: eighth triplets); default: the file's own grid (16ths, or triplets where it uses "
        "them); off: free timing", low=1, high=MAX_GRID, metavar="STEPS|off", unit=" steps per quarter note")
    legato: bool = _option(False, "with monophonic: a new part sings without rests once it has entered "
                           "(each note holds until the part's next one)")
    no_parallels: bool = _option(False, "with monophonic: no parallel fifths or octaves between a new part "
                                 "and any other single-line part (between consecutive sonorities)")
    beat_parallels: float = _option(
        BEAT_PARALLELS, "with no_parallels: the weight of a new note that would make parallel fifths or "
        "octaves from the previous beat to this one through passing notes; 0 forbids them, 1 leaves them to "
        "the model; the default is the built-in model's nearest to Bach's rate", low=0.0, high=1.0,
        metavar="W")
    file_grid: bool = _option(True, "without grid, new notes go on the file's own grid (sixteenths, or "
                              "triplets where it uses them); false: free timing", flag=None)
    file_density: bool = _option(True, "without a density target, new notes match the replaced parts' "
                                 "notes per second (the kept music's for infill and continue); off: no "
                                 "target",
                                 flag="--no-file-density")
    key_weight: float = _option(KEY_WEIGHT, "share of its probability a new note outside the key of the kept "
                                "music keeps", **_WEIGHT)
    chord_weight: float = _option(CHORD_WEIGHT, "share of its probability a new note on a bar's first beat "
                                  "that fits no triad or seventh chord with what sounds keeps (its square "
                                  "root on other beats)", **_WEIGHT)
    harmony_prior: float = _option(HARMONY_PRIOR, "on beats, how strongly new notes follow the harmony prior "
                                   "counted from Bach chorales (the model's probability times the prior's to "
                                   "this power); 0 is off", low=0.0, high=2.0, metavar="S",
                                   slider=(0.0, 2.0, 0.05))
    register_weight: float = _option(REGISTER_WEIGHT, "share of its probability a new note at or above the "
                                     "melody keeps", **_WEIGHT)
    bass_weight: float = _option(BASS_WEIGHT, "share of its probability a new note on a bar's first beat "
                                 "keeps when it would not go below a bass held across the bar line (the bass "
                                 "moves on the bar)", **_WEIGHT)
    candidates: int = _option(1, "samples per variation, the one closest to the density/polyphony target is "
                              "kept", low=1, high=8, metavar="C")
    max_seconds: float = _option(DEFAULT_MAX_SECONDS, "most seconds of music to write; a longer span is "
                                 "refused", low=0.0, high=math.inf, low_open=True, metavar="S")

    def validate(self) -> None:
        """Raise GenerationError naming the first option out of range (ranges: each field's ``Option``)."""
        for f in dataclasses.fields(self):
            problem = f.metadata[OPTION].problem(f.name, getattr(self, f.name))
            if problem:
                raise GenerationError(problem)
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
        for name in ("legato", "no_parallels"):
            if getattr(self, name) and not self.monophonic:
                raise GenerationError(f"{name} applies to parts that play one note at a time: set monophonic")
        if self.candidates > 1 and self.density is None and self.polyphony is None:
            raise GenerationError("candidates > 1 ranks samples by density or polyphony: give a target")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values (lists for ``instruments`` and ``pitch_range``)."""
        out = dataclasses.asdict(self)
        for name in ("instruments", "pitch_range"):
            if out[name] is not None:
                out[name] = [int(v) for v in out[name]]
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SamplingOptions:
        """Options from ``to_dict``'s form (missing keys take their defaults); raises GenerationError naming
        an unknown key. Ranges are checked by ``validate``."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise GenerationError(f"unknown sampling option {key!r} (known: {', '.join(sorted(known))})")
        values = dict(values)
        if values.get("pitch_range") is not None:
            values["pitch_range"] = tuple(values["pitch_range"])
        return cls(**values)


def option_fields() -> list[tuple[str, Any, Option]]:
    """(name, default, ``Option``) of every sampling option, in declaration order."""
    return [(f.name, f.default, f.metadata[OPTION]) for f in dataclasses.fields(SamplingOptions)]


def default(name: str) -> Any:
    """The default of option ``name``."""
    return next(value for field_name, value, _ in option_fields() if field_name == name)


def option(name: str) -> Option:
    """The declaration of option ``name``."""
    return next(o for field_name, _, o in option_fields() if field_name == name)


def bounds(name: str) -> dict[str, Any]:
    """Option ``name``'s default and range as pydantic ``Field`` keywords (``default``, ``gt``/``ge``,
    ``le``), so that the bridge's model declares neither itself."""
    declared = option(name)
    out: dict[str, Any] = {"default": default(name)}
    if declared.low is not None:
        out["gt" if declared.low_open else "ge"] = _whole(declared.low)
    if declared.high is not None and math.isfinite(declared.high):
        out["le"] = _whole(declared.high)
    return out


def _whole(value: float) -> float:
    # 0 rather than 0.0 in a JSON schema: the bridge's published schema writes whole bounds as integers.
    return int(value) if float(value).is_integer() else value
