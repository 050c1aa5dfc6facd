"""What the demo page does, as plain functions: load and check a piece, describe it, turn the form into a
sampler request, run it, and save each variation as MIDI, audio and a piano roll.

Nothing here imports gradio, so every step is unit-testable without a browser; ``amt.demo.app`` only wires
these functions to components. User mistakes raise :class:`DemoInputError` (an ``AmtError``) with a message
meant for the page.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure

from amt.demo.audio import AudioError, Renderer
from amt.demo.notes import NoteArrays
from amt.demo.pianoroll import plot_pianoroll
from amt.errors import AmtError, GenerationError, MidiError
from amt.sampling.options import default
from amt.sampling.tasks import Generation
from amt.tokenization.midi import GM_INSTRUMENT_NAMES, MidiTokens, read_midi
from amt.tokenization.notes import EVENT_DURATIONS, duration_ticks, onset_ticks
from amt.tokenization.parts import Part, find_parts, part_index
from amt.tokenization.parts import describe as describe_parts
from amt.tokenization.vocab import DRUMS, TIME_RESOLUTION

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
"""Uploads above this size are refused: a MIDI file that large is not a piece one accompanies on a CPU."""
MAX_PIECE_SECONDS = 60.0
"""Longer pieces are cut to their first minute, so that one request cannot hold the model for long."""
MAX_CONTINUE_SECONDS = 60.0
MAX_VARIATIONS = 8
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"

Task = Literal["accompany", "infill", "continue"]
TASKS: tuple[Task, ...] = ("accompany", "infill", "continue")


class DemoInputError(AmtError):
    """A request the demo cannot run as given; the message says what to change."""


# --------------------------------------------------------------------------------------------- the piece


@dataclass(frozen=True)
class Piece:
    """A loaded, checked input piece and what the page shows about it."""

    midi: MidiTokens
    name: str  # file stem, used to name outputs
    notes: NoteArrays
    parts: tuple[Part, ...]  # numbered as `amt info` numbers them
    part_of: np.ndarray  # each note's (row of ``notes``) index into ``parts``
    duration: float  # seconds
    original_duration: float  # before clipping to MAX_PIECE_SECONDS


def list_examples(folder: Path = EXAMPLES_DIR) -> dict[str, Path]:
    """The bundled example pieces: display name -> MIDI path, sorted by name."""
    return {_display_name(path.stem): path for path in sorted(folder.glob("*.mid"))}


def _display_name(stem: str) -> str:
    name = stem.replace("_", " ").replace("-", " ").strip()
    return name[:1].upper() + name[1:]


def load_piece(path: str | Path | None, *, max_seconds: float = MAX_PIECE_SECONDS) -> Piece:
    """Read and check the MIDI file at ``path`` (an upload or an example); clip it to ``max_seconds``."""
    if path is None or str(path) == "":
        raise DemoInputError("Upload a MIDI file or pick an example first.")
    path = Path(path)
    if not path.is_file():
        raise DemoInputError(f"{path.name}: the file is missing; upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise DemoInputError(f"{path.name} is empty (0 bytes); upload a MIDI file (.mid).")
    if size > MAX_UPLOAD_BYTES:
        raise DemoInputError(
            f"{path.name} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB."
        )
    try:
        midi = read_midi(path, name=path.name)
    except MidiError as error:
        raise DemoInputError(f"{path.name} is not a MIDI file the demo can read ({error.reason}).") from error
    notes = NoteArrays.from_events(midi.events, midi.tracks)
    if len(notes) == 0:
        raise DemoInputError(f"{path.name} has no notes.")
    original_duration = float((notes.onsets + notes.durations).max())
    if original_duration > max_seconds:
        midi = clip_midi(midi, max_seconds)
        notes = NoteArrays.from_events(midi.events, midi.tracks)
    duration = float((notes.onsets + notes.durations).max())
    return Piece(midi=midi, name=_safe_stem(path.stem), notes=notes, parts=tuple(find_parts(midi)),
                 part_of=part_index(midi)[notes.index], duration=duration,
                 original_duration=original_duration)


def _safe_stem(stem: str) -> str:
    """A file-name stem with only portable characters (uploads can be named anything)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "piece"


def clip_midi(midi: MidiTokens, seconds: float) -> MidiTokens:
    """The notes of ``midi`` that start before ``seconds``, cut off at ``seconds`` (a cut note loses its
    original note-off tick; the others keep theirs)."""
    end = round(seconds * TIME_RESOLUTION)
    clipped = midi.take(onset_ticks(midi.events) < end)
    events = clipped.events.copy()
    durations = np.minimum(duration_ticks(events), end - onset_ticks(events))
    events[:, 1] = EVENT_DURATIONS.token(np.maximum(durations, 1))
    ticks = clipped.midi_ticks
    if ticks is not None:
        ticks = ticks.copy()
        ticks[events[:, 1] != clipped.events[:, 1], 1] = -1
    return dataclasses.replace(clipped, events=events, midi_ticks=ticks)


def part_choices(piece: Piece) -> list[tuple[str, str]]:
    """(label, value) of each part for the page's list: "2 Alto (Acoustic Grand Piano): 42 notes, inner"
    and its number as text (what ``Request.keep`` holds)."""
    return [(f"{p.label}: {p.notes} notes, {p.role}", str(p.number)) for p in piece.parts]


def guess_melody(parts: Sequence[Part]) -> Part | None:
    """The part most likely to be the melody: the one ``find_parts`` calls the melody, else the highest
    pitched part; None when every part is drums."""
    pitched = [p for p in parts if p.role != "drums"]
    melodies = [p for p in pitched if p.role == "melody"]
    return (melodies or sorted(pitched, key=lambda p: p.high, reverse=True) or [None])[0]


def describe_piece(piece: Piece) -> str:
    """A one-paragraph Markdown summary of the piece."""
    meta = piece.midi.meta
    text = (f"**{piece.name}**: {piece.duration:.1f} s, {len(piece.notes)} notes, "
            f"{len(piece.parts)} part{'s' if len(piece.parts) != 1 else ''}")
    if meta.tempos:
        text += f", {meta.tempos[0][1]:.0f} bpm"
    if meta.time_signatures:
        text += f", {meta.time_signatures[0][1]}/{meta.time_signatures[0][2]}"
    text += "."
    if piece.original_duration > piece.duration + 1e-6:
        text += (f" The file lasts {piece.original_duration:.0f} s: the demo uses its first "
                 f"{piece.duration:.0f} s.")
    return text


def piece_pianoroll(piece: Piece) -> Figure:
    """The piano roll of the input piece, a colour per part."""
    return plot_pianoroll(piece.notes, piece.part_of, [p.label for p in piece.parts], title="Input")


def instrument_choices() -> list[tuple[str, int]]:
    """(label, instrument number) for every instrument the model can write."""
    return [(name if number == DRUMS else f"{name} ({number})", number)
            for number, name in enumerate(GM_INSTRUMENT_NAMES)]


# ------------------------------------------------------------------------------------------ the request


GRIDS: dict[str, int | None] = {"file": None, "off": None, "1/8": 2, "1/8 triplets": 3, "1/16": 4,
                                "1/16 triplets": 6}
"""The grid choices of the form: steps per quarter note that new notes start and end on ("file": the file's
own sixteenth or triplet grid, the default; "off": free timing)."""


@dataclass(frozen=True)
class Request:
    """What the form asks for, as the page sends it (strings where users can type)."""

    task: str
    keep: Sequence[str | int] = ()  # part numbers: kept by accompany, and by infill inside the span
    span_start: float | None = None  # for infill
    span_end: float | None = None
    span_unit: str = "seconds"  # or "bars"
    continue_seconds: float = 10.0
    variations: int = 1
    # The sampling options' defaults are SamplingOptions' own (amt.sampling.options declares them once).
    top_p: float = default("top_p")
    temperature: float = default("temperature")
    seed: str | float | None = None  # None or "": a fresh random seed, reported back
    instruments: Sequence[str | int] = ()  # for new notes; empty: the replaced parts' (continue: any)
    density: float = 0.0  # new notes per second; 0: no target
    grid: str = "file"  # a key of GRIDS
    monophonic: bool = default("monophonic")  # each new part plays one note at a time
    legato: bool = default("legato")  # new parts sing without rests (implies monophonic)
    no_parallels: bool = default("no_parallels")  # no parallel fifths or octaves (implies monophonic)
    key_weight: float = default("key_weight")  # share kept by an out-of-key new note; 1: off
    chord_weight: float = default("chord_weight")  # share kept by a new note fitting no chord on a beat
    harmony_prior: float = default("harmony_prior")  # power of the chorale harmony prior on beats; 0: off
    register_weight: float = default("register_weight")  # share kept by a new note at or above the melody
    bass_weight: float = default("bass_weight")  # share kept on a bar start by a note above a held bass
    file_density: bool = default("file_density")  # without a density target, match the replaced parts'


def parse_instruments(values: Sequence[str | int]) -> list[int]:
    """Instrument numbers from dropdown values: numbers, or names typed by hand ("violin", "drums")."""
    names = {name.lower(): number for number, name in enumerate(GM_INSTRUMENT_NAMES)}
    chosen = []
    for value in values:
        text = str(value).strip()
        label_number = re.fullmatch(r".*\((\d+)\)", text)  # a label such as "Violin (40)"
        if re.fullmatch(r"\d+", text) or label_number:
            number = int(label_number.group(1) if label_number else text)
            if not 0 <= number < len(GM_INSTRUMENT_NAMES):
                raise DemoInputError(
                    f"{number} is not an instrument: use 0-127 (General MIDI) or {DRUMS} (drums)."
                )
            chosen.append(number)
        elif text.lower() in names:
            chosen.append(names[text.lower()])
        else:
            raise DemoInputError(f"Unknown instrument {text!r}: pick one from the list.")
    return list(dict.fromkeys(chosen))


def resolve_span(piece: Piece, start: float | None, end: float | None, unit: str) -> tuple[float, float]:
    """The infill span in seconds. Bars count from 1 and the end bar is included (bars 3 to 4 = two bars)."""
    if start is None or end is None:
        raise DemoInputError("Give the start and the end of the span to fill in.")
    if unit == "bars":
        if start < 1 or end < start:
            raise DemoInputError(f"Bars {start:g} to {end:g} are not a span: count from 1, start <= end.")
        start_s, end_s = piece.midi.meta.bar_to_seconds(start), piece.midi.meta.bar_to_seconds(end + 1)
        described = f"bars {start:g} to {end:g} ({start_s:.1f}-{end_s:.1f} s)"
    elif unit == "seconds":
        start_s, end_s = float(start), float(end)
        described = f"{start_s:g}-{end_s:g} s"
    else:
        raise DemoInputError(f"Unknown span unit {unit!r}: use seconds or bars.")
    if start_s < 0 or end_s <= start_s:
        raise DemoInputError(f"The span {described} is empty or negative: the end must come after the start.")
    if start_s >= piece.duration or end_s > piece.duration + 0.5:
        raise DemoInputError(
            f"The span {described} lies outside the piece, which lasts {piece.duration:.1f} s."
        )
    return start_s, min(end_s, piece.duration)


def keep_selection(piece: Piece, keep: Sequence[str | int], *, required: bool = True) -> dict[str, list[int]]:
    """Sampler keyword arguments for the kept parts (numbers, as the page sends them): ``keep_parts``."""
    if not keep and required:
        raise DemoInputError("Choose at least one part to keep for the accompaniment.")
    numbers, unknown = [], []
    for value in keep:
        text = str(value).strip().split(" ")[0]  # a number, or a label typed or pasted whole
        if text.isdigit() and 1 <= int(text) <= len(piece.parts):
            numbers.append(int(text))
        else:
            unknown.append(str(value))
    if unknown:
        raise DemoInputError(f"{', '.join(unknown)}: no such part in {piece.name}; its parts are "
                             f"{describe_parts(piece.parts)}.")
    return {"keep_parts": sorted(set(numbers))} if numbers else {}


def sampling_options(request: Request, *, seed: int):
    """The sampler's options for ``request``, with their ranges checked (``SamplingOptions.validate``)."""
    from amt.sampling import SamplingOptions

    if request.grid not in GRIDS:
        raise DemoInputError(f"Grid {request.grid!r}: choose one of {', '.join(GRIDS)}.")
    options = SamplingOptions(
        top_p=float(request.top_p),
        temperature=float(request.temperature),
        seed=seed,
        instruments=parse_instruments(request.instruments) or None,
        density=float(request.density) if request.density != 0 else None,
        grid=GRIDS[request.grid],
        file_grid=request.grid != "off",
        monophonic=bool(request.monophonic or request.legato or request.no_parallels),
        legato=bool(request.legato),
        no_parallels=bool(request.no_parallels),
        file_density=bool(request.file_density),
        key_weight=float(request.key_weight),
        chord_weight=float(request.chord_weight),
        harmony_prior=float(request.harmony_prior),
        register_weight=float(request.register_weight),
        bass_weight=float(request.bass_weight),
    )
    try:
        options.validate()
    except GenerationError as error:
        raise DemoInputError(f"{error}.") from None
    return options


def resolve_seed(seed: str | float | None) -> int:
    """The seed to use: the one given, or a fresh one when empty (reported, so a result can be reproduced)."""
    text = "" if seed is None else str(seed).strip()
    if text == "" or text.lower() == "random":
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value == int(value) and value < 2**63):
        raise DemoInputError(f"The seed must be a whole number >= 0 (empty: a random one), not {text!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class SavedGeneration:
    """One ``Generation`` (the task layer's result) as the page shows it: saved as MIDI (and audio), with
    its title and piano roll."""

    generation: Generation
    title: str
    figure: Figure
    midi_path: Path
    audio_path: Path | None

    @property
    def new_notes(self) -> int:
        """How many notes of the piece are new."""
        return int(np.count_nonzero(self.generation.generated))


ProgressFn = Callable[[float, str], None]
GENERATION_SHARE = 0.9
"""Part of the progress bar for sampling; the rest is for saving, drawing and rendering audio."""


class ProgressAdapter:
    """Turns the sampler's per-event callback into (fraction, message) updates for a progress bar, no more
    often than every ``interval`` seconds (the page need not hear about every note)."""

    def __init__(self, progress: ProgressFn, variations: int, interval: float = 0.2):
        self.progress = progress
        self.fractions = np.zeros(variations)
        self.new_notes = 0
        self.interval = interval
        # None until the first update: time.monotonic() counts from an arbitrary point (boot on Linux), so a
        # fixed 0.0 would swallow every update for the first `interval` seconds after the machine started.
        self.last: float | None = None

    def __call__(self, variation: int, event: np.ndarray, fraction: float) -> None:
        self.fractions[variation] = max(self.fractions[variation], float(fraction))
        self.new_notes += 1
        now = time.monotonic()
        if self.last is None or now - self.last >= self.interval:
            self.last = now
            fraction = GENERATION_SHARE * float(self.fractions.mean())
            self.progress(fraction, f"Generating: {self.new_notes} new notes")


def generate(
    model,
    piece: Piece,
    request: Request,
    out_dir: Path,
    *,
    renderer: Renderer | None,
    progress: ProgressFn | None = None,
) -> tuple[list[SavedGeneration], str]:
    """Run ``request`` on ``piece`` and save each variation in ``out_dir``.

    Returns the variations and a Markdown status line (seed used, time taken, audio notes).
    """
    from amt.sampling import tasks

    if request.task not in TASKS:
        raise DemoInputError(f"Unknown task {request.task!r}: choose accompany, infill or continue.")
    variations = int(request.variations)
    if not 1 <= variations <= MAX_VARIATIONS:
        raise DemoInputError(f"Ask for 1 to {MAX_VARIATIONS} variations, not {variations}.")
    seed = resolve_seed(request.seed)
    options = sampling_options(request, seed=seed)
    adapter = ProgressAdapter(progress, variations) if progress is not None else None
    keep, span, seconds, region = {}, None, None, None
    if request.task == "accompany":
        keep = keep_selection(piece, request.keep)
        what = "accompaniment"
    elif request.task == "infill":
        region = resolve_span(piece, request.span_start, request.span_end, request.span_unit)
        span = tasks.Span(*region)
        keep = keep_selection(piece, request.keep, required=False)
        what = f"infilling of {region[0]:.1f}-{region[1]:.1f} s"
        if keep:
            what += f" keeping part{'s' if len(keep['keep_parts']) > 1 else ''} " + \
                ", ".join(map(str, keep["keep_parts"]))
    else:
        seconds = float(request.continue_seconds)
        if not 0 < seconds <= MAX_CONTINUE_SECONDS:
            raise DemoInputError(f"Continue for 1 to {MAX_CONTINUE_SECONDS:.0f} seconds, not {seconds:g}.")
        region = (piece.duration, piece.duration + seconds)
        what = f"{seconds:g} s continuation"
    results = tasks.run(model, piece.midi, tasks.Request(request.task, **keep, span=span, seconds=seconds,
                                                         options=options, variations=variations),
                        callback=adapter)

    out_dir.mkdir(parents=True, exist_ok=True)
    saved, audio_problems = [], []
    for number, result in enumerate(results, start=1):
        if progress is not None:
            progress(GENERATION_SHARE + (1 - GENERATION_SHARE) * (number - 1) / len(results),
                     f"Saving variation {number}")
        variation, problem = save_variation(result, piece, request.task, number, out_dir, renderer=renderer,
                                            region=region)
        saved.append(variation)
        if problem:
            audio_problems.append(problem)
    status = f"{len(saved)} variation{'s' if len(saved) != 1 else ''} ({what}), seed {seed}."
    if results and results[0].summary:
        status += f" New notes for: {results[0].summary}."
    if audio_problems:
        status += " " + audio_problems[0]
    return saved, status


def save_variation(
    result: Generation,
    piece: Piece,
    task: str,
    number: int,
    out_dir: Path,
    *,
    renderer: Renderer | None,
    region: tuple[float, float] | None,
) -> tuple[SavedGeneration, str]:
    """Write one sampler result as MIDI (and audio when a renderer is given); draw its piano roll.

    Returns the variation and a message when audio rendering failed ("" otherwise).
    """
    midi = result.midi
    notes = NoteArrays.from_events(midi.events, midi.tracks)
    generated = np.asarray(result.generated, dtype=bool)[notes.index]
    midi_path = out_dir / f"{piece.name}-{task}-{number}.mid"
    # Kept notes stay on their (named) tracks, tick-exact; new parts get tracks named after instruments.
    midi.write(midi_path)
    audio_path, problem = None, ""
    if renderer is not None:
        try:
            audio_path = renderer.render(midi_path, midi_path.with_suffix(".flac"))
        except AudioError as error:
            problem = f"Audio failed: {error}"
    new_notes = int(generated.sum())
    parts = find_parts(midi)
    figure = plot_pianoroll(
        notes, part_index(midi)[notes.index], [p.label for p in parts], generated=generated,
        colour_keys=[_colour_key(p) for p in parts], known_keys=[_colour_key(p) for p in piece.parts],
        title=f"Variation {number}", region=region,
        duration=max(piece.duration, region[1] if region else 0.0),
    )
    return SavedGeneration(result, f"Variation {number}: {new_notes} new notes", figure, midi_path,
                           audio_path), problem


def _colour_key(part: Part) -> tuple[int, int, int]:
    """What makes a part the same part in the input and in a variation (so it keeps its colour)."""
    return (part.track, part.channel, part.program)


def render_input_audio(piece: Piece, out_dir: Path, renderer: Renderer | None) -> Path | None:
    """Audio of the (possibly clipped) input piece, or None without a renderer. The piece is written anew
    (its notes tick-exact) so that the audio ends with the music, not with a late end-of-track."""
    if renderer is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    midi_path = out_dir / f"{piece.name}-input.mid"
    piece.midi.write(midi_path)
    return renderer.render(midi_path, midi_path.with_suffix(".flac"))
