"""The DAW bridge's wire format: requests and responses in beats, as a DAW keeps its notes.

A *beat* is a quarter note (REAPER's QN, Ableton's beat, MIDI's "quarter note" of the tempo map), counted
from the project start (beat 0). Bars are numbered from 1, as DAWs show them. The server converts beats to
the model's seconds with the request's tempo map (``amt.tokenization.timemap``) and the model's output back.

Every model here is a pydantic model, so FastAPI validates bodies and publishes the JSON schema
(``plugins/openapi.json``, documented in ``plugins/PROTOCOL.md``).
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from amt.errors import AmtError, GenerationError
from amt.sampling.options import SamplingOptions, bounds

PROTOCOL_VERSION = 1
MIN_BPM, MAX_BPM = 1, 1000
"""Tempi the bridge accepts: a musical range (a tempo near 0 would turn beats into infinite seconds)."""

Task = Literal["accompany", "infill", "continue"]


class RequestError(AmtError):
    """A request the server refuses; ``status`` is the HTTP status to answer with (4xx or 503)."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


class _Strict(BaseModel):
    # Unknown fields are errors (a typo such as "temprature" must not be silently ignored); NaN and
    # infinities are never valid musical values.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Beat = Annotated[float, Field(ge=0, le=1_000_000, description="Quarter notes from the project start")]


class Note(_Strict):
    """One note as the DAW has it."""

    id: str | int | None = Field(None, description="The DAW's id for the note; defaults to its index")
    start: Beat
    duration: float = Field(gt=0, le=100_000, description="Length in quarter notes")
    pitch: int = Field(ge=0, le=127)
    velocity: int = Field(80, ge=1, le=127)
    track: str | int = Field(0, description="Id of the track (see `tracks`) the note lives on")
    channel: int | None = Field(None, ge=1, le=16, description="MIDI channel 1-16; 10 means drums")
    program: int | None = Field(None, ge=0, le=127, description="GM program 0-127 (overrides the track's)")


class Track(_Strict):
    """A DAW track: drums on channel 10, else its GM program, else an instrument guessed from its name."""

    id: str | int
    name: str = Field("", max_length=200)
    program: int | None = Field(None, ge=0, le=127)
    channel: int | None = Field(None, ge=1, le=16)


class TempoPoint(_Strict):
    """A tempo change: from ``beat`` on, the project runs at ``bpm`` quarter notes per minute."""

    beat: Beat
    bpm: float = Field(ge=MIN_BPM, le=MAX_BPM, description=f"Quarter notes per minute, {MIN_BPM}-{MAX_BPM}")


class TimeSignature(_Strict):
    """A meter change at ``beat`` (which must start a bar)."""

    beat: Beat
    numerator: int = Field(ge=1, le=64)
    denominator: int = Field(ge=1, le=64)

    @field_validator("denominator")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("time signature denominator must be a power of two (1, 2, 4, 8, ...)")
        return value


class Region(_Strict):
    """The span to write: ``[start, end)`` in beats, or in bars (bar 1 = project start; 2.5 = mid-bar 2)."""

    start: float = Field(ge=0, le=1_000_000)
    end: float = Field(ge=0, le=1_000_000)
    unit: Literal["beats", "bars"] = "beats"

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if self.unit == "bars" and self.start < 1:
            raise ValueError("bars are numbered from 1")
        if self.end <= self.start:
            raise ValueError(f"region end ({self.end}) must be after its start ({self.start})")
        return self


class Locked(_Strict):
    """Which notes the model must keep: the union of the listed tracks and note ids, plus, when
    ``outside_region`` is true, every note that starts outside the region (for continue: before it).
    Unlocked notes that start in the region are replaced (their ids come back in ``replaced``); unlocked
    notes elsewhere stay in the project but are not shown to the model."""

    tracks: list[str | int] = Field(default_factory=list, max_length=256)
    ids: list[str | int] = Field(default_factory=list, max_length=100_000)
    outside_region: bool | None = Field(
        None, description="Lock every note outside the region (continue: before it). Default: true for "
        "infill and continue, false for accompany"
    )


class Sampling(_Strict):
    """The sampler's knobs."""

    # SamplingOptions (amt.sampling.options) declares each knob's default and range once (``bounds``); the
    # descriptions here say what the option means in a DAW's terms (beats, locked notes).

    variations: int = Field(1, ge=1, le=8, description="How many alternative results to return")
    instruments: list[int] | None = Field(
        None, max_length=129, description="GM programs allowed for new notes (128 = drums); default: any"
    )
    pitch_range: tuple[int, int] | None = Field(None, description="Inclusive MIDI pitch range of new notes")
    density: float | None = Field(**bounds("density"), description="Target new notes per beat")
    polyphony: float | None = Field(**bounds("polyphony"),
                                    description="Target mean new notes sounding at once")
    monophonic: bool = Field(**bounds("monophonic"), description="Each new instrument plays one note at a "
                             "time (choir voices, wind parts): a new note ends the part's previous one")
    legato: bool = Field(**bounds("legato"), description="With monophonic: a new part sings without rests "
                         "once it has entered (each note holds until the part's next one)")
    no_parallels: bool = Field(**bounds("no_parallels"), description="With monophonic: no parallel fifths or "
                               "octaves between a new part and any other single-line part (consecutive "
                               "sonorities)")
    beat_parallels: float = Field(
        **bounds("beat_parallels"), description="With no_parallels: the weight of a new note that would make "
        "parallel fifths or octaves from the previous beat to this one through passing notes (0 forbids "
        "them, 1 leaves them to the model)")
    key_weight: float = Field(
        **bounds("key_weight"), description="Share of its probability a new note outside the key of the "
        "locked notes keeps (off where the key is unclear); 1 is off")
    chord_weight: float = Field(
        **bounds("chord_weight"), description="On a bar's first beat (from time_signatures), a new note "
        "that would fit no triad or seventh chord with what sounds then keeps this share of its probability; "
        "on the other beats its square root; nothing off the beat; 1 is off")
    harmony_prior: float = Field(
        **bounds("harmony_prior"), description="On beats (from time_signatures), how strongly new notes "
        "follow the harmony prior counted from Bach chorales: the model's probability of a pitch class is "
        "multiplied by the prior's, given what sounds then, to this power; 0 is off")
    register_weight: float = Field(
        **bounds("register_weight"), description="Share kept by a new note at or above the melody (the "
        "highest locked note sounding at its onset); 1 is off")
    bass_weight: float = Field(
        **bounds("bass_weight"), description="On a bar's first beat (from time_signatures), a new note that "
        "would not go below a bass held across the bar line keeps this share of its probability (the bass "
        "moves on the bar); 1 is off")
    file_density: bool = Field(
        **bounds("file_density"), description="Without density: new notes match the replaced notes' notes "
        "per second (the unlocked notes in the region, of instruments when given), else the locked music's "
        "before the region")
    candidates: int = Field(
        **bounds("candidates"), description="Samples per variation; the one nearest the attribute targets is "
        "kept")
    top_p: float = Field(**bounds("top_p"))
    temperature: float = Field(**bounds("temperature"))
    seed: int | None = Field(**bounds("seed"))

    @model_validator(mode="after")
    def _options_rules(self) -> Sampling:
        # Ranges of lists and rules between options (legato needs monophonic...) are SamplingOptions'.
        try:
            self.options().validate()
        except GenerationError as error:
            raise ValueError(str(error)) from None
        return self

    def options(self, **changes) -> SamplingOptions:
        """These knobs as ``SamplingOptions`` (``changes`` replace some: the density in notes per second)."""
        values = self.model_dump(exclude={"variations"})
        return SamplingOptions.from_dict({**values, **changes})


class GenerateRequest(_Strict):
    """Everything the server needs to write new notes into a DAW region."""

    task: Task = Field(description="accompany: add parts to the locked ones; infill: fill the region between "
                       "locked music; continue: write on after the music before the region")
    notes: list[Note] = Field(default_factory=list)
    tracks: list[Track] = Field(default_factory=list, max_length=256)
    tempo: list[TempoPoint] = Field(
        default_factory=lambda: [TempoPoint(beat=0, bpm=120)], min_length=1, max_length=10_000,
        description="Tempo map, sorted, first point at beat 0",
    )
    time_signatures: list[TimeSignature] = Field(
        default_factory=lambda: [TimeSignature(beat=0, numerator=4, denominator=4)], min_length=1,
        max_length=10_000, description="Meter map, sorted, first at beat 0",
    )
    region: Region
    locked: Locked = Field(default_factory=Locked)
    sampling: Sampling = Field(default_factory=Sampling)
    grid: float | None = Field(
        None, ge=1 / 64, le=16, description="New notes start and end on a grid of this many beats (0.25 = "
        "16ths): the model samples on it"
    )

    @model_validator(mode="after")
    def _maps_start_at_zero(self) -> GenerateRequest:
        for name, points in (("tempo", self.tempo), ("time_signatures", self.time_signatures)):
            if points[0].beat != 0:
                raise ValueError(f"{name} must start at beat 0 (got {points[0].beat})")
            beats = [p.beat for p in points]
            if any(b <= a for a, b in itertools.pairwise(beats)):
                raise ValueError(f"{name} beats must be strictly increasing")
        track_ids = [t.id for t in self.tracks]
        if len(set(map(str, track_ids))) != len(track_ids):
            raise ValueError("track ids must be unique")
        ids = [n.id for n in self.notes if n.id is not None]
        if len(set(map(str, ids))) != len(ids):
            raise ValueError("note ids must be unique")
        return self


class OutNote(BaseModel):
    """A note written by the model, in beats."""

    start: float
    duration: float
    pitch: int
    velocity: int
    program: int = Field(description="GM program 0-127, or 128 for drums")
    channel: int = Field(description="Suggested MIDI channel 1-16 (10 for drums)")
    track: str | int | None = Field(description="Id of the request track with this instrument, if any")
    track_name: str = Field(description="The instrument's name, for a new track when `track` is null")


class Variation(BaseModel):
    """One alternative result."""

    index: int
    notes: list[OutNote]


class GenerateResponse(BaseModel):
    """The new notes, one list per variation, and what the DAW should keep and replace."""

    protocol: int = PROTOCOL_VERSION
    task: Task
    region: tuple[float, float] = Field(description="The region in beats [start, end)")
    variations: list[Variation]
    locked: list[str | int] = Field(description="Ids of the notes kept unchanged and shown to the model")
    replaced: list[str | int] = Field(description="Ids of unlocked notes in the region: delete them")
    generation_seconds: float = Field(description="Time the model ran")
    queue_seconds: float = Field(description="Time spent waiting for the model")
    model: str


class Health(BaseModel):
    """Answer of ``GET /health``."""

    status: Literal["ok"] = "ok"
    protocol: int = PROTOCOL_VERSION
    version: str
    model: str
    running: int
    queued: int
    queue_size: int
    served: int
    failed: int
    midi: bool


class ErrorBody(BaseModel):
    """Body of every error answer."""

    error: str
    status: int
