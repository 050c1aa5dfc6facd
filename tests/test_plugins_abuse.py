"""The DAW bridge under abuse (issue 21): deadlines on every sampling path, regions far from the start,
absurd tempi, malformed bodies and frames, foreign hosts and origins, abandoned requests, SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import torch
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from amt.models import create_model, load_model, tiny_config
from amt.plugins.engine import Cancelled, Engine, Limits, plan_request
from amt.plugins.midifile import request_from_midi
from amt.plugins.protocol import GenerateRequest
from amt.plugins.server import BackgroundServer, create_app
from amt.tokenization.vocab import TIME_RESOLUTION

from conftest import REFERENCE_DIR as REFERENCE

TEMPO_FILE = REFERENCE / "synth_tempo_trumpet_drums.mid"  # 100 bpm, then 150 bpm from beat 8
# A long, many-row request: 8 variations x 8 candidates over ~18 s of music (minutes on the tiny model).
LONG = {"task": "continue", "region": (16, 60), "sampling": {"variations": 8, "candidates": 8, "density": 2}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    create_model(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def server(model):
    app = create_app(model, model_name="tiny", limits=Limits(max_body_bytes=200_000),
                     allowed_hosts=["studio.lan"])
    with BackgroundServer(app) as s:
        yield s


def long_request() -> str:
    return request_from_midi(TEMPO_FILE, **LONG).model_dump_json()


def post(url: str, body: str | bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/generate", content=body, timeout=60,
                      headers={"content-type": "application/json", **(headers or {})})


def wait_running(url: str, running: int, seconds: float) -> dict:
    """Poll /health until ``running`` runs are in progress or ``seconds`` pass; the last health answer."""
    deadline = time.monotonic() + seconds
    while (health := httpx.get(f"{url}/health", timeout=10).json())["running"] != running \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return health


def test_candidates_honour_cancellation(model, monkeypatch):
    # With candidates > 1 the sampler held back its per-note callback, and the deadline with it: a cancelled
    # run went on to the end and only then noticed. Now it stops before the first decoding step.
    request = request_from_midi(TEMPO_FILE, task="continue", region=(16, 24),
                                sampling={"variations": 2, "candidates": 4, "density": 2})
    calls, advance = [], model.advance

    def counted(*args, **kwargs):
        calls.append(1)
        return advance(*args, **kwargs)

    monkeypatch.setattr(model, "advance", counted)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="cancelled"):
        Engine(model, "tiny").run(plan_request(request, Limits()), cancel=cancel)
    assert len(calls) <= 1, f"{len(calls)} model calls after the request was cancelled"
    calls.clear()
    with pytest.raises(Cancelled, match="timeout"):
        Engine(model, "tiny").run(plan_request(request, Limits()), deadline=time.monotonic() - 1)
    assert len(calls) <= 1, f"{len(calls)} model calls past the deadline"


def test_candidates_obey_the_server_timeout(model):
    with BackgroundServer(create_app(model, limits=Limits(timeout_seconds=0.5, max_region_seconds=120))) as s:
        answer = post(s.url, long_request())
        assert answer.status_code == 504 and "timeout" in answer.json()["error"]
        assert wait_running(s.url, 0, 30)["running"] == 0


def test_the_grid_covers_the_region_not_the_project(server):
    far = GenerateRequest.model_validate({"task": "infill", "region": {"start": 10_000, "end": 10_002},
                                          "grid": 1 / 64})
    plan = plan_request(far, Limits())
    steps = plan.tempo.shifted(plan.offset).grid_ticks(far.grid, plan.end_tick + 20_000)
    # Beat 10,000 at 120 bpm is 5,000 s into the project; the grid starts near the region (model tick 0).
    assert steps[0] >= -TIME_RESOLUTION and len(steps) < 64 * 2 * (2 + 200)
    assert np.all(np.diff(steps) >= 0)
    # The abusive request from the load run (a 1/64 grid at beat 999,990) is answered, and quickly built.
    body = json.dumps({"task": "infill", "region": {"start": 999_990, "end": 999_992}, "grid": 1 / 64,
                       "notes": [{"start": 999_989, "duration": 1, "pitch": 60}]})
    answer = post(server.url, body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("bpm", [5e-324, 1e-3, 0.5, 1001, 1e308])
def test_tempo_outside_a_musical_range_is_refused(server, bpm):
    body = json.dumps({"task": "infill", "region": {"start": 0, "end": 1},
                       "tempo": [{"beat": 0, "bpm": bpm}]})
    answer = post(server.url, body)
    assert answer.status_code == 422 and "bpm" in answer.json()["error"], answer.text


def test_a_500_keeps_the_connection_and_counts_as_failed(model, monkeypatch):
    import amt.plugins.server as server_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom in planning")

    monkeypatch.setattr(server_module, "plan_request", broken)
    body = request_from_midi(TEMPO_FILE, task="infill", region=(4, 6)).model_dump_json()
    with BackgroundServer(create_app(model, model_name="tiny")) as s:
        parts = urlsplit(s.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("POST", "/generate", body=body, headers={"Content-Type": "application/json"})
        first = connection.getresponse()
        assert first.status == 500 and "boom" in json.loads(first.read())["error"]
        sock = connection.sock
        assert sock is not None, "the server closed the keep-alive connection after a 500"
        connection.request("GET", "/health")  # on the same socket: it must still be open
        health = connection.getresponse()
        assert connection.sock is sock and health.status == 200
        assert json.loads(health.read())["failed"] == 1
        connection.close()


def test_a_binary_websocket_frame_gets_an_error_message(server):
    with connect(server.url.replace("http", "ws") + "/ws", open_timeout=10) as ws:
        ws.send(b'{"task": "infill"}')
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["status"]) == ("error", 400) and "text" in error["error"]
        ws.send("[" * 100_000)  # nested too deep to parse: still a 400 on a live connection
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["status"]) == ("error", 400), error
        ws.send("[1, 2]")
        assert json.loads(ws.recv(timeout=10))["status"] == 400


@pytest.mark.parametrize("body, words", [
    ("[1, 2]", "JSON object"), ('"infill"', "JSON object"), ("3", "JSON object"), ("null", "JSON object"),
    ("[" * 100_000, "nested"), (b'{"task": "\xff\xfe"}', "UTF-8"), ('{"grid": ' + "9" * 5000 + "}", "digits"),
])
def test_http_errors_match_the_protocol(server, body, words):
    answer = post(server.url, body)
    assert answer.status_code == 400, answer.text[:300]
    assert set(answer.json()) == {"error", "status"} and answer.json()["status"] == 400
    assert words in answer.json()["error"]


def test_unknown_paths_and_methods_get_the_error_shape(server):
    for answer in (httpx.get(f"{server.url}/nowhere"), httpx.get(f"{server.url}/generate")):
        assert answer.status_code in (404, 405) and set(answer.json()) == {"error", "status"}


@pytest.mark.parametrize("host, origin, status", [
    ("evil.example", None, 403),
    ("evil.example:{port}", None, 403),
    ("127.0.0.1:{port}", "http://evil.example", 403),
    ("127.0.0.1:{port}", "null", 403),
    ("localhost:{port}", None, 200),
    ("127.0.0.2:{port}", "http://localhost:3000", 200),
    ("[::1]:{port}", "http://[::1]:{port}", 200),
    ("studio.lan:{port}", "http://studio.lan", 200),  # named with allowed_hosts (amt serve --allow-host)
])
def test_only_loopback_hosts_and_origins_are_served(server, host, origin, status):
    port = urlsplit(server.url).port
    headers = {"host": host.format(port=port)}
    if origin:
        headers["origin"] = origin.format(port=port)
    answer = httpx.get(f"{server.url}/health", headers=headers)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert set(answer.json()) == {"error", "status"} and "not allowed" in answer.json()["error"]
    assert post(server.url, "{}", headers).status_code == (403 if status == 403 else 422)


def test_websockets_from_foreign_origins_are_refused(server):
    url = server.url.replace("http", "ws") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(url, open_timeout=10, origin="http://localhost:8000") as ws:
        ws.send("{")
        assert json.loads(ws.recv(timeout=10))["status"] == 400


def test_an_abandoned_http_request_stops_generating(model):
    body = long_request().encode()
    with BackgroundServer(create_app(model, limits=Limits(max_region_seconds=120))) as s:
        parts = urlsplit(s.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert wait_running(s.url, 1, 30)["running"] == 1
        health = wait_running(s.url, 0, 30)
    assert health["running"] == 0 and health["served"] == 0  # stopped, not finished


def test_docs_work_offline(server):
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "/generate" in text and "temperature" in text and "GenerateRequest" in text
    # Nothing is fetched from elsewhere: no scripts or styles at all, links only to this server.
    assert "<script" not in text and "cdn" not in text.lower()
    assert "src=" not in text and 'href="http' not in text
    assert httpx.get(f"{server.url}/redoc").status_code == 404


@pytest.mark.slow
def test_sigterm_stops_a_busy_server_promptly(model_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "amt.cli", "serve", "--model", str(model_dir), "--port", str(port),
         "--max-region", "120", "--allow-host", "studio.lan"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{url}/health", headers={"host": "studio.lan"}).status_code == 200
        assert httpx.get(f"{url}/health", headers={"host": "evil.example"}).status_code == 403
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(post(url, long_request())), daemon=True)
        client.start()
        assert wait_running(url, 1, 30)["running"] == 1
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)  # TimeoutExpired: the generation kept the server alive
        client.join(10)
        assert answers and answers[0].status_code == 503 and "shutting down" in answers[0].json()["error"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class _Sink:
    def send(self, message):
        pass


@pytest.mark.parametrize("headers, status", [
    ({}, 415),
    ({"content-type": "application/x-www-form-urlencoded"}, 415),  # what a cross-site form sends
    ({"content-type": "text/plain"}, 415),
    ({"content-type": "application/json"}, 400),  # accepted; nothing was recorded yet
    ({"x-amt-trigger": "1"}, 400),
])
def test_the_ports_trigger_needs_json_or_its_header(model, headers, status):
    from amt.plugins.ports import PortsBridge

    with BackgroundServer(create_app(model, bridge=PortsBridge(_Sink()))) as s:
        answer = httpx.post(f"{s.url}/midi/trigger", headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    if status == 415:
        assert "application/json" in answer.json()["error"]
