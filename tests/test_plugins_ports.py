"""Ports mode through mido's port interfaces with in-memory ports (no MIDI backend is needed or used)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import mido.ports
import pytest

from amt.errors import AmtError
from amt.plugins.ports import CLOCKS_PER_BEAT, MidiPortError, PortsBridge, PortsSettings, Trigger, open_ports
from amt.plugins.protocol import GenerateRequest, GenerateResponse, OutNote, Variation


class MemoryInput(mido.ports.BaseInput):
    """An input port fed by the test (``feed``), polled by the bridge."""

    def feed(self, message: mido.Message) -> None:
        self._messages.append(message)

    def _receive(self, block=True):
        return None  # messages only come from feed()


class MemoryOutput(mido.ports.BaseOutput):
    """An output port that keeps what was sent, with the song position (in clocks) when it was sent."""

    def __init__(self, name="amt out", position=lambda: -1):
        super().__init__(name)
        self.sent: list[tuple[int, mido.Message]] = []
        self.position = position

    def _send(self, message):
        self.sent.append((self.position(), message.copy()))


class Clock:
    """Drives a bridge with a MIDI clock at a given tempo, in simulated time."""

    def __init__(self, bridge: PortsBridge):
        self.bridge = bridge
        self.now = 100.0
        self.bpm = 120.0

    def send(self, message: mido.Message, at_fraction: float = 0.0) -> None:
        self.bridge.handle(message, self.now + at_fraction * 60.0 / self.bpm / CLOCKS_PER_BEAT)

    def ticks(self, clocks: int) -> None:
        for _ in range(clocks):
            self.now += 60.0 / self.bpm / CLOCKS_PER_BEAT
            self.bridge.handle(mido.Message("clock"), self.now)


def fake_response(request: GenerateRequest, notes: list[OutNote]) -> GenerateResponse:
    variations = [Variation(index=0, notes=notes)]
    return GenerateResponse(task=request.task, region=(0.0, 8.0), variations=variations,
                            locked=[], replaced=[], generation_seconds=0.01, queue_seconds=0.0,
                            model="test")


def test_trigger_parsing():
    assert Trigger.parse("note:36") == Trigger("note", 36)
    assert Trigger.parse("cc:64@16") == Trigger("cc", 64, 16)
    cc = Trigger.parse("cc:20")
    assert cc.matches(mido.Message("control_change", control=20, value=127))
    assert not cc.matches(mido.Message("control_change", control=20, value=0))
    assert not Trigger.parse("note:36@2").matches(mido.Message("note_on", note=36, channel=0, velocity=9))
    for bad in ("note", "pad:3", "note:300", "cc:1@17", "note:x"):
        with pytest.raises(AmtError, match="bad MIDI trigger"):
            Trigger.parse(bad)


def test_records_in_beats_and_measures_the_tempo():
    bridge = PortsBridge(MemoryOutput())
    clock = Clock(bridge)
    clock.send(mido.Message("program_change", channel=1, program=40))
    clock.send(mido.Message("start"))
    clock.ticks(CLOCKS_PER_BEAT)  # beat 1
    clock.send(mido.Message("note_on", channel=1, note=67, velocity=90), at_fraction=0.5)
    clock.ticks(CLOCKS_PER_BEAT * 3)  # beat 4: the tempo drops to 90
    clock.bpm = 90.0
    clock.send(mido.Message("note_off", channel=1, note=67))
    clock.send(mido.Message("note_on", channel=1, note=69, velocity=70))
    clock.ticks(CLOCKS_PER_BEAT * 2 + CLOCKS_PER_BEAT // 2)  # beat 6.5
    clock.send(mido.Message("note_on", channel=1, note=69, velocity=0))  # running-status note-off
    clock.ticks(CLOCKS_PER_BEAT * 2)
    notes = sorted(bridge.recorded, key=lambda n: n.start)
    assert [(n.pitch, n.channel, n.velocity) for n in notes] == [(67, 1, 90), (69, 1, 70)]
    assert notes[0].start == pytest.approx(1 + 0.5 / CLOCKS_PER_BEAT)
    assert notes[0].duration == pytest.approx(3 - 0.5 / CLOCKS_PER_BEAT)
    assert (notes[1].start, notes[1].duration) == (pytest.approx(4.0), pytest.approx(2.5))
    tempo = bridge.tempo_map()
    assert tempo[0] == (0.0, pytest.approx(120.0))
    assert tempo[1] == (4.0, pytest.approx(90.0))
    # The DAW loops back (song position, as on a loop) and plays the first note again: recorded once.
    clock.send(mido.Message("songpos", pos=4))  # beat 1
    clock.send(mido.Message("note_on", channel=1, note=67, velocity=90), at_fraction=0.5)
    clock.ticks(2)
    clock.send(mido.Message("note_off", channel=1, note=67))
    request = bridge.build_request()
    assert [(n.pitch, n.start) for n in request.notes] == [(67, notes[0].start), (69, 4.0)]
    assert (request.region.start, request.region.end) == (0.0, 8.0)  # whole 4/4 bars around the part
    assert request.tracks[0].program == 40 and request.locked.tracks == [2]
    assert [t.bpm for t in request.tempo] == [pytest.approx(120.0), pytest.approx(90.0)]


def test_trigger_generates_and_plays_in_time_with_the_clock():
    out = MemoryOutput()
    asked: list[GenerateRequest] = []
    generated = [
        OutNote(start=2.0, duration=1.0, pitch=48, velocity=70, program=32, channel=2, track=None,
                track_name="Bass (GM 33)"),
        OutNote(start=3.5, duration=0.25, pitch=42, velocity=90, program=128, channel=10, track=None,
                track_name="Drums"),
    ]

    def generate(request):
        asked.append(request)
        return fake_response(request, generated)

    bridge = PortsBridge(out, PortsSettings(trigger=Trigger.parse("cc:64")), generate=generate)
    out.position = lambda: bridge.position
    clock = Clock(bridge)
    clock.send(mido.Message("start"))
    clock.send(mido.Message("note_on", note=60, velocity=80))
    clock.ticks(CLOCKS_PER_BEAT * 4)
    clock.send(mido.Message("note_off", note=60))
    clock.send(mido.Message("stop"))
    clock.send(mido.Message("control_change", control=64, value=127))  # the trigger: runs in a thread
    deadline = time.monotonic() + 10
    while bridge.last_response is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(asked) == 1 and len(asked[0].notes) == 1  # the trigger CC is not part of the music
    assert asked[0].notes[0].duration == pytest.approx(4.0)
    assert [m.type for _, m in out.sent] == ["program_change"]  # before playback: the bass's program
    out.sent.clear()
    clock.send(mido.Message("start"))  # the DAW plays again: the result comes out on its beats
    clock.ticks(CLOCKS_PER_BEAT * 5)
    played = [(position, m.type, m.note, m.channel) for position, m in out.sent]
    assert played == [
        (48, "note_on", 48, 1), (72, "note_off", 48, 1), (84, "note_on", 42, 9), (90, "note_off", 42, 9),
    ]
    # Relocating to beat 2.5 (song position in 16ths) mid-note, then stopping, leaves nothing hanging.
    out.sent.clear()
    clock.send(mido.Message("songpos", pos=8))  # beat 2
    clock.ticks(12)
    clock.send(mido.Message("stop"))
    assert [(m.type, m.note) for _, m in out.sent] == [("note_on", 48), ("note_off", 48)]


def test_a_second_trigger_while_generating_is_refused():
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return fake_response(request, [])

    bridge = PortsBridge(MemoryOutput(), generate=slow)
    clock = Clock(bridge)
    clock.send(mido.Message("start"))
    clock.send(mido.Message("note_on", note=60, velocity=80))
    clock.ticks(30)
    first = threading.Thread(target=bridge.trigger_and_wait)
    first.start()
    time.sleep(0.05)
    with pytest.raises(AmtError, match="already running"):
        bridge.trigger_and_wait()
    release.set()
    first.join(10)


def test_nothing_recorded_is_a_clear_error():
    bridge = PortsBridge(MemoryOutput(), generate=lambda request: pytest.fail("must not generate"))
    with pytest.raises(AmtError, match="nothing recorded"):
        bridge.trigger_and_wait()


def test_serve_loop_reads_a_port_until_stopped():
    inport, out = MemoryInput("amt in"), MemoryOutput()
    asked: list[GenerateRequest] = []

    def generate(request):
        asked.append(request)
        return fake_response(request, [OutNote(start=0.5, duration=0.5, pitch=50, velocity=60, program=0,
                                               channel=1, track=1, track_name="x")])

    bridge = PortsBridge(out, generate=generate)
    stop = threading.Event()
    loop = threading.Thread(target=bridge.serve, args=(inport, stop))
    loop.start()
    inport.feed(mido.Message("start"))
    inport.feed(mido.Message("note_on", note=64, velocity=100))
    for _ in range(CLOCKS_PER_BEAT):
        inport.feed(mido.Message("clock"))
    inport.feed(mido.Message("note_off", note=64))
    inport.feed(mido.Message("sysex", data=[1, 2, 3]))  # ignored, not fatal
    inport.feed(mido.Message("note_on", note=0, velocity=1))  # the default trigger: note 0
    deadline = time.monotonic() + 10
    while bridge.last_response is None and time.monotonic() < deadline:
        time.sleep(0.01)
    inport.feed(mido.Message("start"))
    for _ in range(CLOCKS_PER_BEAT):
        inport.feed(mido.Message("clock"))
    deadline = time.monotonic() + 10
    while len(out.sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    loop.join(5)
    assert not loop.is_alive()
    assert [n.pitch for n in asked[0].notes] == [64]
    assert bridge.recorded == []  # the second start began a new take
    assert [(m.type, m.note) for _, m in out.sent if m.type != "program_change"] == [
        ("note_on", 50), ("note_off", 50)]


@pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has an ALSA sequencer")
def test_without_a_midi_backend_ports_mode_says_why():
    with pytest.raises(MidiPortError, match=r"python-rtmidi|ALSA sequencer"):
        open_ports()
    result = subprocess.run([sys.executable, "-m", "amt.cli", "serve", "--midi", "--model", "unused"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "amt serve: error:" in result.stderr and "Traceback" not in result.stderr
