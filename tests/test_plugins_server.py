"""The DAW bridge over real loopback sockets: uvicorn in a thread, a tiny random model, real MIDI files."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import httpx
import mido
import numpy as np
import pytest
import torch
from websockets.sync.client import connect

from amt.models import create_model, load_model, tiny_config
from amt.plugins.engine import Engine, Limits, plan_request, variation
from amt.plugins.midifile import request_from_midi
from amt.plugins.openapi import DEFAULT_PATH, render
from amt.plugins.ports import CLOCKS_PER_BEAT, PortsBridge
from amt.plugins.protocol import GenerateRequest
from amt.plugins.server import BackgroundServer, create_app
from amt.tokenization.vocab import DRUMS, DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET, TIME_RESOLUTION

from conftest import REFERENCE_DIR as REFERENCE

TEMPO_FILE = REFERENCE / "synth_tempo_trumpet_drums.mid"  # 100 bpm, then 150 bpm from beat 8
CHORALE = REFERENCE / "bach_bwv66.6.mid"  # 96 bpm, 4/4, four voices on program 0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    create_model(tiny_config()).save_pretrained(folder)
    return load_model(folder)


@pytest.fixture(scope="module")
def server(model):
    with BackgroundServer(create_app(model, model_name="tiny", limits=Limits(max_body_bytes=200_000))) as s:
        yield s


def post(server, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return httpx.post(f"{server.url}/generate", content=content, timeout=60,
                      headers={"content-type": "application/json"}, **kwargs)


def key(note: dict) -> tuple:
    return (note["start"], note["duration"], note["pitch"], note["program"], note["velocity"], note["track"])


def test_infill_keeps_locked_notes_and_writes_on_the_grid(server):
    request = request_from_midi(CHORALE, task="infill", region=(3, 4), unit="bars", grid=0.25,
                                sampling={"variations": 2, "seed": 3})
    answer = post(server, request.model_dump_json())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    start, end = body["region"]
    assert (start, end) == (8.0, 12.0)  # bar 3 of 4/4
    inside = {n.id for n in request.notes if start <= n.start < end}
    assert set(body["replaced"]) == inside
    assert set(body["locked"]) == {n.id for n in request.notes} - inside  # every note outside: unchanged
    assert [v["index"] for v in body["variations"]] == [0, 1]
    assert body["generation_seconds"] > 0 and body["model"] == "tiny"
    notes = [n for v in body["variations"] for n in v["notes"]]
    assert notes, "a region of a bar got no notes at all"
    busiest = Counter(n.track for n in request.notes).most_common(1)[0][0]
    for note in notes:
        assert start <= note["start"] < end and note["start"] + note["duration"] <= end + 1e-9
        for value in (note["start"], note["start"] + note["duration"]):
            assert abs(value / 0.25 - round(value / 0.25)) < 1e-9
        assert 1 <= note["channel"] <= 16 and 0 <= note["program"] <= 128
        # The chorale is one instrument (program 0) on four tracks: new piano notes go on the one where it
        # plays most (the tenor's, 44 notes), as the command line puts them.
        assert note["track"] == (busiest if note["program"] == 0 else None)


def test_new_notes_take_velocity_and_track_from_the_music_around_them(model):
    # The task layer's rules, as for the command line: the median velocity of the notes within 5 s of a new
    # note, and the track its instrument plays on most. Soft piano on track "a" comes first but far from the
    # region; loud piano on track "b", more of it, leads into the region (120 bpm: a beat is 0.5 s).
    soft = [{"start": b, "duration": 1, "pitch": 60, "velocity": 30, "track": "a"} for b in range(4)]
    loud = [{"start": 20 + b, "duration": 1, "pitch": 64, "velocity": 120, "track": "b"} for b in range(20)]
    request = GenerateRequest.model_validate({
        "task": "continue", "notes": soft + loud, "region": {"start": 40, "end": 47.97},  # ends between ticks
        "tracks": [{"id": "a", "program": 0}, {"id": "b", "program": 0}],
        "sampling": {"seed": 2, "instruments": [0], "variations": 2}})
    plan = plan_request(request, Limits())
    heard = []
    generations = Engine(model, "tiny").run(plan, on_note=lambda index, note, progress: heard.append(
        (index, note)))
    for index, generation in enumerate(generations):
        notes = variation(plan, index, generation).notes
        assert notes and {(n.velocity, n.track) for n in notes} == {(120, "b")}
        streamed = [note for k, note in heard if k == index]  # heard while sampled, the same notes
        assert Counter(n.model_dump_json() for n in streamed) == Counter(n.model_dump_json() for n in notes)


def test_the_grid_and_monophonic_parts_shape_sampling_itself(model, monkeypatch):
    # The raw events the sampler writes (model ticks), before any rounding on the way out, sit on the
    # request's grid through the tempo change, and no new part plays two notes at once.
    import amt.sampling.sampler as sampler

    raw, generate = [], sampler.generate

    def spy(*args, **kwargs):
        out = generate(*args, **kwargs)
        raw.append((kwargs["time_map"].grid_ticks(kwargs["grid_step"], kwargs["end_time"] + 2000), out))
        return out

    monkeypatch.setattr(sampler, "generate", spy)
    request = request_from_midi(TEMPO_FILE, task="infill", region=(4, 12), grid=0.5,
                                sampling={"seed": 5, "variations": 2, "monophonic": True})
    plan = plan_request(request, Limits())
    Engine(model, "tiny").run(plan)
    (steps, out), = raw
    beats = plan.tempo.to_beats((steps + plan.offset) / TIME_RESOLUTION)
    assert np.abs(beats / 0.5 - np.rint(beats / 0.5)).max() < 0.02  # 10 ms ticks round the steps
    for events in out:
        assert len(events)
        starts = events[:, 0] - TIME_OFFSET
        assert np.isin(starts, steps).all() and np.isin(starts + events[:, 1] - DUR_OFFSET, steps).all()
        instruments = (events[:, 2] - NOTE_OFFSET) // MAX_PITCH
        for instrument in set(instruments.tolist()) - {DRUMS}:
            part = events[instruments == instrument]
            ends = part[:, 0] + part[:, 1] - DUR_OFFSET
            assert (part[1:, 0] >= np.maximum.accumulate(ends)[:-1]).all()


def test_legato_and_no_parallels_reach_the_sampler(model, monkeypatch):
    import amt.sampling.sampler as sampler

    calls, generate = [], sampler.generate

    def spy(*args, **kwargs):
        out = generate(*args, **kwargs)
        calls.append((kwargs, out))
        return out

    monkeypatch.setattr(sampler, "generate", spy)
    request = request_from_midi(TEMPO_FILE, task="infill", region=(4, 12), grid=0.5, sampling={
        "seed": 5, "monophonic": True, "legato": True, "no_parallels": True, "beat_parallels": 0.25,
        "instruments": [65, 66]})
    plan = plan_request(request, Limits())
    Engine(model, "tiny").run(plan)
    (kwargs, (events,)), = calls
    options = kwargs["options"]
    assert options.legato and options.no_parallels and options.beat_parallels == 0.25
    # The beats come from the project's tempo map (100 bpm up to beat 8: 60 ticks apart), as the grid does.
    beats, _ = kwargs["time_map"].beats(kwargs["end_time"])
    grid = kwargs["time_map"].grid_ticks(kwargs["grid_step"], kwargs["end_time"])
    assert np.array_equal(beats, grid[::2][:len(beats)])
    assert 60 in (beats[1:] - beats[:-1]).tolist()
    instruments = (events[:, 2] - NOTE_OFFSET) // MAX_PITCH
    assert len(events)
    for instrument in set(instruments.tolist()):
        part = events[instruments == instrument]
        assert (part[1:, 0] == part[:-1, 0] + part[:-1, 1] - DUR_OFFSET).all()  # legato: no rests


def test_tempo_change_mid_region_is_honoured(server):
    # 100 bpm until beat 8, then 150 bpm; the region [4, 12) spans the change.
    request = request_from_midi(TEMPO_FILE, task="infill", region=(4, 12),
                                sampling={"seed": 5, "variations": 2})

    def seconds(beat: float) -> float:
        return beat * 0.6 if beat < 8 else 4.8 + (beat - 8) * 0.4

    body = post(server, request.model_dump_json()).json()
    notes = [n for v in body["variations"] for n in v["notes"]]
    assert notes
    for note in notes:
        assert 4 <= note["start"] < 12
        # The model writes in 10 ms ticks from the project start: with the tempo map honoured on the way
        # out, every onset and every unclipped end lands exactly on that grid.
        onset = seconds(note["start"]) * 100
        assert abs(onset - round(onset)) < 1e-6, note
        end = note["start"] + note["duration"]
        if end < 12:
            assert abs(seconds(end) * 100 - round(seconds(end) * 100)) < 1e-6, note


def test_accompany_by_track(server):
    request = request_from_midi(CHORALE, task="accompany", region=(0, 4), locked={"tracks": [0]},
                                sampling={"seed": 1, "pitch_range": [40, 80], "density": 2, "candidates": 2})
    body = post(server, request.model_dump_json()).json()
    soprano = {n.id for n in request.notes if n.track == 0}
    assert set(body["locked"]) == soprano
    assert set(body["replaced"]) == {n.id for n in request.notes if n.track != 0 and n.start < 4}
    for note in body["variations"][0]["notes"]:
        assert 0 <= note["start"] < 4
        assert note["program"] == 128 or 40 <= note["pitch"] <= 80


def test_websocket_streams_every_note_then_the_result(server):
    request = request_from_midi(TEMPO_FILE, task="continue", region=(12, 16),
                                sampling={"variations": 3, "seed": 11}, grid=0.5)
    with connect(server.url.replace("http", "ws") + "/ws", open_timeout=10) as ws:
        ws.send(request.model_dump_json())
        messages = []
        while True:
            message = json.loads(ws.recv(timeout=60))
            messages.append(message)
            if message["type"] in ("result", "error"):
                break
        assert messages[0]["type"] == "accepted"
        assert messages[-1]["type"] == "result", messages[-1]
        streamed = [m for m in messages if m["type"] == "note"]
        result = messages[-1]["response"]
        assert sum(len(v["notes"]) for v in result["variations"]) > 0
        for variation in result["variations"]:
            mine = Counter(key(m["note"]) for m in streamed if m["variation"] == variation["index"])
            assert mine == Counter(key(n) for n in variation["notes"])
        assert all(0 <= m["progress"] <= 1 for m in streamed)
        # A bad message gets an error on the same connection, which then still serves requests.
        ws.send("{broken")
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["status"]) == ("error", 400) and "malformed JSON" in error["error"]
        ws.send(json.dumps({"task": "remix", "region": {"start": 0, "end": 1}}))
        error = json.loads(ws.recv(timeout=10))
        assert error["status"] == 422 and "task" in error["error"]
        ws.send(request.model_dump_json())
        while (message := json.loads(ws.recv(timeout=60)))["type"] not in ("result", "error"):
            pass
        assert message["type"] == "result"


def test_bad_requests_get_4xx_and_the_server_lives_on(server):
    valid = json.loads(request_from_midi(TEMPO_FILE, task="infill", region=(4, 8)).model_dump_json())
    cases = [
        ("{not json", 400, "malformed JSON"),
        (dict(valid, task="remix"), 422, "task"),
        (dict(valid, tempo=[{"beat": 0, "bpm": 0}]), 422, "bpm"),
        (dict(valid, tempo=[{"beat": 0, "bpm": 120}, {"beat": 4, "bpm": "fast"}]), 422, "bpm"),
        (dict(valid, region={"start": -2, "end": 4}), 422, "region.start"),
        (dict(valid, region={"start": 0, "end": 4000}), 413, "region lasts"),
        (dict(valid, locked={"ids": ["no-such-note"]}), 422, "locked ids"),
        (dict(valid, sampling={"instruments": []}), 422, "instruments is empty"),  # from the sampler
        ("x" * 300_000, 413, "over the limit"),
        (dict(valid, notes=valid["notes"] * 1000), 413, "over the limit"),
    ]
    for body, status, words in cases:
        answer = post(server, body)
        assert answer.status_code == status, (words, answer.text[:300])
        assert answer.json()["status"] == status and words in answer.json()["error"]
    # A body sent without a length (chunked) is bounded too.
    chunks = (b"x" * 50_000 for _ in range(10))
    answer = httpx.post(f"{server.url}/generate", content=chunks, timeout=30)
    assert answer.status_code == 413
    health = httpx.get(f"{server.url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["running"] == 0 and health["queued"] == 0


def test_an_internal_failure_is_a_500_and_not_fatal(model):
    class Broken(torch.nn.Module):
        """A model whose every call fails, as a bug deep in generation would."""

        def forward(self, *args):
            raise RuntimeError("boom")

    request = request_from_midi(TEMPO_FILE, task="infill", region=(4, 6)).model_dump_json()
    with BackgroundServer(create_app(Broken(), model_name="broken")) as broken:
        for _ in range(2):
            answer = post(broken, request)
            assert answer.status_code == 500 and "internal error" in answer.json()["error"]
        health = httpx.get(f"{broken.url}/health").json()
    assert health["status"] == "ok" and health["failed"] == 2 and health["running"] == 0


def test_closing_the_websocket_cancels_the_generation(model):
    request = request_from_midi(TEMPO_FILE, task="continue", region=(16, 60),
                                sampling={"variations": 8}).model_dump_json()
    with BackgroundServer(create_app(model, limits=Limits(max_region_seconds=120))) as server:
        with connect(server.url.replace("http", "ws") + "/ws", open_timeout=10) as ws:
            ws.send(request)
            assert json.loads(ws.recv(timeout=30))["type"] == "accepted"
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{server.url}/health").json())["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert health["running"] == 0 and health["served"] == 0  # stopped, not finished


def test_too_many_notes(model):
    request = request_from_midi(CHORALE, task="infill", region=(0, 4))
    with BackgroundServer(create_app(model, limits=Limits(max_notes=50))) as small:
        answer = post(small, request.model_dump_json())
    assert answer.status_code == 413 and "too many notes" in answer.json()["error"]


def test_busy_answers_503_when_the_queue_is_full(model):
    request = request_from_midi(TEMPO_FILE, task="continue", region=(16, 24),
                                sampling={"variations": 2}).model_dump_json()
    with BackgroundServer(create_app(model, limits=Limits(queue_size=0))) as busy:
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def one():
            answer = post(busy, request)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = Counter(a.status_code for a in answers)
        assert statuses[200] >= 1 and statuses[503] >= 1 and set(statuses) <= {200, 503}, statuses
        refused = next(a for a in answers if a.status_code == 503)
        assert "busy" in refused.json()["error"] and refused.headers["retry-after"] == "1"
        assert httpx.get(f"{busy.url}/health").json()["failed"] == 0


def test_a_run_past_the_timeout_is_stopped(model):
    request = request_from_midi(TEMPO_FILE, task="continue", region=(16, 40),
                                sampling={"variations": 8, "seed": 2}).model_dump_json()
    with BackgroundServer(create_app(model, limits=Limits(timeout_seconds=0.2))) as slow:
        answer = post(slow, request)
        assert answer.status_code == 504 and "timeout" in answer.json()["error"]
        assert httpx.get(f"{slow.url}/health").json()["status"] == "ok"


class _Sink:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


def test_ports_mode_trigger_over_http(model, server):
    assert httpx.post(f"{server.url}/midi/trigger").status_code == 404  # ports mode off
    out = _Sink()
    bridge = PortsBridge(out)
    with BackgroundServer(create_app(model, limits=Limits(), bridge=bridge)) as midi:
        now = 0.0
        bridge.handle(mido.Message("start"), now)
        for beat in range(8):
            bridge.handle(mido.Message("note_on", note=60 + beat, velocity=90), now)
            for _ in range(CLOCKS_PER_BEAT):
                now += 0.5 / CLOCKS_PER_BEAT
                bridge.handle(mido.Message("clock"), now)
            bridge.handle(mido.Message("note_off", note=60 + beat), now)
        answer = httpx.post(f"{midi.url}/midi/trigger", json={}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["region"] == [0.0, 8.0]
        assert httpx.get(f"{midi.url}/health").json()["midi"] is True
    scheduled = bridge.last_response.variations[0].notes
    assert answer.json()["notes"] == len(scheduled)
    assert all(0 <= n.start < 8 for n in scheduled)


def test_openapi_document_is_up_to_date():
    assert DEFAULT_PATH.read_text() == render(), "run `python -m amt.plugins.openapi` to update it"
