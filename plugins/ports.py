"""Ports mode: a part played into "amt in" while the DAW's transport runs, the result played on "amt out".

The DAW sends MIDI clock (24 per quarter note), start/stop/continue and song position to "amt in" along with
the part. The bridge counts clocks to place every note in beats (interpolating between clocks), measures the
tempo from the clock intervals, and on a trigger (a note or CC, or ``POST /midi/trigger``) sends the recorded
part to the model. The new notes are then played on "amt out" as the clock reaches their beats, so a DAW that
records "amt out" gets them on its bars (and again on every pass of a loop).

The logic only talks to mido port objects (``poll``/``send``), so tests drive it with in-memory ports; only
``open_ports`` needs a real MIDI backend (python-rtmidi).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mido

from amt.errors import AmtError
from amt.plugins.instruments import DRUM_CHANNEL
from amt.plugins.protocol import GenerateRequest, GenerateResponse, RequestError, Task
from amt.sampling.options import default

log = logging.getLogger("amt.serve.midi")

CLOCKS_PER_BEAT = 24
"""MIDI clock resolution: 24 pulses per quarter note."""
MAX_CLOCK_INTERVAL = 0.25
"""Seconds: a longer gap between clocks (10 bpm) is a pause of the clock, not a tempo."""
TEMPO_RANGE = (10.0, 999.0)
"""Beats whose measured tempo falls outside this range (a stalled or flooded clock) are ignored."""


class MidiPortError(AmtError):
    """MIDI ports cannot be opened here (no backend, no sequencer, a port name that does not exist)."""


@dataclass(frozen=True)
class Trigger:
    """The message that starts a generation: a note-on of ``number`` or a CC ``number`` with value >= 64,
    on ``channel`` (1-16) or on any channel when None. The trigger itself is never recorded."""

    kind: str  # "note" or "cc"
    number: int
    channel: int | None = None

    @classmethod
    def parse(cls, text: str) -> Trigger:
        """Parse ``note:N``, ``cc:N``, optionally ``@CHANNEL``: ``note:0``, ``cc:64@16``."""
        try:
            spec, _, channel = text.partition("@")
            kind, _, number = spec.partition(":")
            trigger = cls(kind.strip().lower(), int(number), int(channel) if channel else None)
        except ValueError:
            trigger = None
        if (trigger is None or trigger.kind not in ("note", "cc") or not 0 <= trigger.number <= 127
                or (trigger.channel is not None and not 1 <= trigger.channel <= 16)):
            raise AmtError(f"bad MIDI trigger {text!r}: use note:N or cc:N (0-127), optionally "
                           "@CHANNEL (1-16)")
        return trigger

    def matches(self, message: mido.Message) -> bool:
        """Whether ``message`` is this trigger (note-offs and CC releases are not)."""
        if self.channel is not None and getattr(message, "channel", -1) != self.channel - 1:
            return False
        if self.kind == "note":
            return message.type == "note_on" and message.note == self.number and message.velocity > 0
        return message.type == "control_change" and message.control == self.number and message.value >= 64

    def swallows(self, message: mido.Message) -> bool:
        """Whether ``message`` belongs to the trigger gesture (its press or release) and so is not music."""
        if self.channel is not None and getattr(message, "channel", -1) != self.channel - 1:
            return False
        if self.kind == "note":
            return message.type in ("note_on", "note_off") and message.note == self.number
        return message.type == "control_change" and message.control == self.number


@dataclass
class PortsSettings:
    """How ports mode turns a recorded part into a request."""

    trigger: Trigger = field(default_factory=lambda: Trigger("note", 0))
    task: Task = "accompany"
    bars: int = 4
    """For continue: how many bars to write after the recorded part."""
    variations: int = 1
    top_p: float = default("top_p")  # the sampling options' own defaults (amt.sampling.options)
    temperature: float = default("temperature")
    seed: int | None = default("seed")
    grid: float | None = None
    default_bpm: float = 120.0
    """Tempo assumed where no clock was received."""


@dataclass
class _Recorded:
    start: float  # beats
    duration: float
    pitch: int
    velocity: int
    channel: int  # 0-15


class PortsBridge:
    """Records from a MIDI input, asks for a generation, and plays the result in time with the clock.

    ``generate`` is called (from a worker thread) with the request built from the recording and returns the
    server's response. Messages go in through ``handle`` (or ``serve``, which polls an input port), and out
    through ``output.send``.
    """

    def __init__(self, output, settings: PortsSettings | None = None,
                 generate: Callable[[GenerateRequest], GenerateResponse] | None = None):
        self.output = output
        self.settings = settings or PortsSettings()
        self.generate = generate
        self._lock = threading.RLock()
        self.running = False
        self.position = 0  # clocks since the start of the song
        self._last_clock: float | None = None  # time of the last clock
        self._clock_interval: float | None = None  # seconds per clock, smoothed
        self._beat_times: dict[int, tuple[float, int]] = {}  # beat -> (time its clock came, pass)
        self._pass = 0
        self._programs = [0] * 16
        self._open: dict[tuple[int, int], tuple[float, int]] = {}  # (channel, pitch) -> (start, velocity)
        self.recorded: list[_Recorded] = []
        self._schedule: list[tuple[float, int, mido.Message]] = []  # (beat, order, message)
        self._cursor = 0
        self._sounding: set[tuple[int, int]] = set()
        self.last_response: GenerateResponse | None = None
        self.last_error: str | None = None
        self._busy = threading.Lock()

    # ---- input ---------------------------------------------------------------------------------------
    def beat_now(self, now: float) -> float:
        """The song position in beats at ``now``, interpolated since the last clock (by less than a clock)."""
        fraction = 0.0
        if self._last_clock is not None and self._clock_interval:
            fraction = min((now - self._last_clock) / self._clock_interval, 0.999)
        return (self.position + max(fraction, 0.0)) / CLOCKS_PER_BEAT

    def handle(self, message: mido.Message, now: float | None = None) -> None:
        """Process one incoming message received at ``now`` (``time.monotonic()`` when None)."""
        now = time.monotonic() if now is None else now
        kind = message.type
        with self._lock:
            if kind == "clock":
                self._on_clock(now)
            elif kind == "start":
                self._locate(0)
                self.recorded.clear()
                self._beat_times.clear()
                self._open.clear()
                self.running = True
                self._beat_times[0] = (now, self._pass)
            elif kind == "continue":
                self.running = True
            elif kind == "stop":
                self.running = False
                self._close_open_notes(self.beat_now(now))
                self._silence()
            elif kind == "songpos":
                clocks = message.pos * CLOCKS_PER_BEAT // 4  # song position counts 16th notes
                self._locate(clocks)
                self._pass += 1  # no tempo is measured between beats timed on either side of a jump
            elif self.settings.trigger.matches(message):
                threading.Thread(target=self._trigger_quietly, name="amt-midi-generate", daemon=True).start()
            elif self.settings.trigger.swallows(message):
                pass
            elif kind == "program_change":
                self._programs[message.channel] = message.program
            elif kind in ("note_on", "note_off") and self.running:
                self._on_note(message, self.beat_now(now))

    def _on_clock(self, now: float) -> None:
        if self._last_clock is not None and now - self._last_clock < MAX_CLOCK_INTERVAL:
            interval = now - self._last_clock
            # Smooth over about a beat so a jittery clock does not jitter the note positions.
            self._clock_interval = interval if self._clock_interval is None else (
                self._clock_interval + (interval - self._clock_interval) / CLOCKS_PER_BEAT)
        self._last_clock = now
        if not self.running:
            return
        self.position += 1
        if self.position % CLOCKS_PER_BEAT == 0:
            self._beat_times.setdefault(self.position // CLOCKS_PER_BEAT, (now, self._pass))
        self._play_until(self.position / CLOCKS_PER_BEAT)

    def _on_note(self, message: mido.Message, beat: float) -> None:
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            self._close_open_notes(beat, only=key)
            self._open[key] = (beat, message.velocity)
        else:
            self._close_open_notes(beat, only=key)

    def _close_open_notes(self, beat: float, only: tuple[int, int] | None = None) -> None:
        for key in [only] if only is not None else list(self._open):
            if key in self._open:
                start, velocity = self._open.pop(key)
                duration = max(beat - start, 1 / CLOCKS_PER_BEAT)
                self.recorded.append(_Recorded(start, duration, key[1], velocity, key[0]))

    # ---- request -------------------------------------------------------------------------------------
    def tempo_map(self) -> list[tuple[float, float]]:
        """(beat, bpm) points measured from the clock: one per beat whose tempo differs by over 0.5 %."""
        points: list[tuple[float, float]] = []
        beats = sorted(self._beat_times)
        for a, b in itertools.pairwise(beats):
            (time_a, pass_a), (time_b, pass_b) = self._beat_times[a], self._beat_times[b]
            if b != a + 1 or pass_a != pass_b:
                continue
            bpm = round(60.0 / max(time_b - time_a, 1e-6), 2)
            if not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
                continue
            if not points or abs(bpm - points[-1][1]) > 0.005 * points[-1][1]:
                points.append((float(a), bpm))
        if not points:
            return [(0.0, self.settings.default_bpm)]
        return [(0.0, points[0][1]), *points[1:]] if points[0][0] != 0 else points

    def build_request(self) -> GenerateRequest:
        """The request for the recorded part: whole 4/4 bars around it, with the settings' task and knobs."""
        with self._lock:
            # Notes still held when the trigger comes count as played up to now.
            now = self.position / CLOCKS_PER_BEAT
            held = [_Recorded(start, max(now - start, 1 / CLOCKS_PER_BEAT), pitch, velocity, channel)
                    for (channel, pitch), (start, velocity) in self._open.items()]
            # A DAW looping with song-position messages plays the part again over the same beats: of notes
            # with one channel and pitch starting within a clock of each other, the first recorded stays.
            kept: dict[tuple[int, int], list[float]] = {}
            notes = []
            for n in self.recorded + held:
                starts = kept.setdefault((n.channel, n.pitch), [])
                if all(abs(n.start - s) >= 1 / CLOCKS_PER_BEAT for s in starts):
                    starts.append(n.start)
                    notes.append(n)
            notes.sort(key=lambda n: (n.start, n.pitch))
            programs = list(self._programs)
            tempo = self.tempo_map()
        if not notes:
            raise AmtError("nothing recorded on 'amt in': play a part while the DAW's transport runs "
                           "(with MIDI clock sent to 'amt in')")
        settings = self.settings
        first_bar = int(notes[0].start // 4)
        last_bar = max(math.ceil(max(n.start + n.duration for n in notes) / 4 - 1e-9), first_bar + 1)
        if settings.task == "continue":
            region = (last_bar * 4.0, (last_bar + settings.bars) * 4.0)
        else:
            region = (first_bar * 4.0, last_bar * 4.0)
        channels = sorted({n.channel for n in notes})
        tracks = [{"id": c + 1, "name": f"channel {c + 1}", "channel": c + 1,
                   "program": None if c + 1 == DRUM_CHANNEL else programs[c]} for c in channels]
        body = {
            "task": settings.task,
            "notes": [{"start": n.start, "duration": n.duration, "pitch": n.pitch, "velocity": n.velocity,
                       "track": n.channel + 1} for n in notes],
            "tracks": tracks,
            "tempo": [{"beat": b, "bpm": t} for b, t in tempo],
            "region": {"start": region[0], "end": region[1]},
            "locked": {"tracks": [t["id"] for t in tracks]} if settings.task == "accompany" else {},
            "sampling": {"variations": settings.variations, "top_p": settings.top_p,
                         "temperature": settings.temperature, "seed": settings.seed},
            "grid": settings.grid,
        }
        return GenerateRequest.model_validate(body)

    def trigger_and_wait(self) -> dict:
        """Generate from the recording now and schedule the result; returns a summary. One at a time."""
        if self.generate is None:
            raise AmtError("ports mode has no model attached")
        if not self._busy.acquire(blocking=False):
            raise RequestError("a ports-mode generation is already running", 409)
        try:
            request = self.build_request()
            response = self.generate(request)
            self.schedule(response)
            self.last_error = None
            notes = response.variations[0].notes if response.variations else []
            return {"notes": len(notes), "region": list(response.region),
                    "generation_seconds": response.generation_seconds}
        except Exception as error:
            self.last_error = str(error)
            log.warning("ports-mode generation failed: %s", error)
            raise
        finally:
            self._busy.release()

    def _trigger_quietly(self) -> None:
        # A MIDI trigger has no one to answer: the failure is logged and kept in ``last_error``.
        with contextlib.suppress(Exception):
            self.trigger_and_wait()

    # ---- output --------------------------------------------------------------------------------------
    def schedule(self, response: GenerateResponse) -> None:
        """Replace what "amt out" plays with the first variation of ``response``."""
        notes = response.variations[0].notes if response.variations else []
        events: list[tuple[float, int, mido.Message]] = []
        programs: dict[int, int] = {}
        for note in notes:
            channel = note.channel - 1
            if note.channel != DRUM_CHANNEL:
                programs.setdefault(channel, note.program)
            # Note-offs sort before note-ons at the same beat, so repeated notes re-strike.
            events.append((note.start + note.duration, 0, mido.Message("note_off", channel=channel,
                                                                        note=note.pitch, velocity=0)))
            events.append((note.start, 1, mido.Message("note_on", channel=channel, note=note.pitch,
                                                       velocity=note.velocity)))
        events.sort(key=lambda e: (e[0], e[1]))
        with self._lock:
            self._silence()
            for channel, program in sorted(programs.items()):
                self._send(mido.Message("program_change", channel=channel, program=program))
            self._schedule = events
            self.last_response = response
            self._cursor = bisect.bisect_left([e[0] for e in events], self.position / CLOCKS_PER_BEAT)

    def _play_until(self, beat: float) -> None:
        while self._cursor < len(self._schedule) and self._schedule[self._cursor][0] <= beat + 1e-9:
            self._send(self._schedule[self._cursor][2])
            self._cursor += 1

    def _locate(self, clocks: int) -> None:
        self._silence()
        self.position = clocks
        self._last_clock = None
        self._cursor = bisect.bisect_left([e[0] for e in self._schedule], clocks / CLOCKS_PER_BEAT)

    def _send(self, message: mido.Message) -> None:
        if message.type == "note_on":
            self._sounding.add((message.channel, message.note))
        elif message.type == "note_off":
            if (message.channel, message.note) not in self._sounding:
                return  # its note-on was never played (playback started mid-note)
            self._sounding.discard((message.channel, message.note))
        self.output.send(message)

    def _silence(self) -> None:
        for channel, note in sorted(self._sounding):
            self.output.send(mido.Message("note_off", channel=channel, note=note, velocity=0))
        self._sounding.clear()

    # ---- port loop -----------------------------------------------------------------------------------
    def serve(self, inport, stop: threading.Event) -> None:
        """Poll ``inport`` and handle its messages until ``stop`` is set (run it in a thread)."""
        while not stop.is_set():
            message = inport.poll()
            if message is None:
                stop.wait(0.0005)  # 0.5 ms: well under a clock period (~20 ms at 120 bpm)
                continue
            try:
                self.handle(message)
            except Exception:  # a bad message must not stop the bridge
                log.exception("ports mode: could not handle %s", message)


def open_ports(in_name: str = "amt in", out_name: str = "amt out", virtual: bool = True):
    """Open the input and output ports with python-rtmidi: virtual ports by default, else existing ports of
    those names (Windows has no virtual ports: create them with loopMIDI). Raises ``MidiPortError``."""
    try:
        import rtmidi  # noqa: F401  (the backend mido needs; optional extra amt[midi])
    except ImportError:
        raise MidiPortError("ports mode needs python-rtmidi: pip install 'amt[midi]'") from None
    backend = mido.Backend("mido.backends.rtmidi")
    try:
        inport = backend.open_input(in_name, virtual=virtual)
    except Exception as error:
        raise MidiPortError(
            f"cannot open MIDI input {in_name!r} ({error}). No usable MIDI backend here: on Linux the ALSA "
            "sequencer (/dev/snd/seq, module snd-seq) is needed; on Windows create loopMIDI ports and pass "
            "--midi-in/--midi-out with their names. See plugins/README.md."
        ) from None
    try:
        outport = backend.open_output(out_name, virtual=virtual)
    except Exception as error:
        inport.close()
        raise MidiPortError(f"cannot open MIDI output {out_name!r} ({error}); see plugins/README.md") \
            from None
    return inport, outport
