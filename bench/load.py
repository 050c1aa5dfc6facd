"""The DAW bridge under load and abuse: 1,000 requests from 8 clients, 15% of them malformed, then the
abusive requests of issue 21 one by one, against a real `amt serve` process on 127.0.0.1.

    python bench/load.py                 # tiny random model, 8 clients x 125 requests, 15% malformed
    python bench/load.py --record        # and replace the "Server load" section of bench/RESULTS.md

Each client keeps one keep-alive HTTP connection and one WebSocket; a valid request is a 1-beat
continuation of the synthetic tempo-change reference file (over HTTP, or every fifth over the WebSocket).
Malformed ones are garbage JSON, non-objects, wrong types, huge numbers, a 5e-324 bpm, deep nesting,
invalid UTF-8, foreign Host and Origin headers, unknown fields, binary and garbage WebSocket frames. Then,
alone: 8 x 8 candidates over a 60 s region (stopped at --timeout), a 1/64-beat grid at beat 999,990, 1 MB of
nested brackets, an abandoned request, and SIGTERM during a long generation. Reports 5xx answers,
connection resets (errors, or a keep-alive connection the server closed), the server's resident memory
(peak and at the end), and how long each abusive request took. Everything stays on loopback; every loop is
bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import torch
from serve import machine
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from amt.models import create_model, tiny_config
from amt.plugins.midifile import request_from_midi

from results import record_section

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "reference" / "synth_tempo_trumpet_drums.mid"
RESETS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, socket.timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in KiB, from /proc (0 where there is none)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def malformed(valid: dict, rng: random.Random) -> tuple[str, str, bytes | str, dict]:
    """One malformed request: (kind, transport "http" or "ws", body, extra headers)."""
    text = json.dumps(valid)
    kinds = [
        ("garbage JSON", "http", text[: rng.randrange(1, len(text))], {}),
        ("non-object JSON", "http", rng.choice(["[1, 2]", '"infill"', "3", "null"]), {}),
        ("wrong types", "http", json.dumps(dict(valid, notes=[{"start": "soon", "pitch": "C4"}])), {}),
        ("huge numbers", "http", json.dumps(dict(valid, region={"start": 16, "end": 17})).replace(
            '"end": 17', '"end": 1e400'), {}),
        ("huge numbers", "http", json.dumps(dict(valid, sampling={"seed": 10**30})), {}),
        ("huge numbers", "http",
         json.dumps(dict(valid, notes=[{"start": 0, "duration": 1, "pitch": 10**30}])), {}),
        ("huge numbers", "http", '{"task": "infill", "grid": ' + "9" * 5000 + "}", {}),
        ("bpm 5e-324", "http", json.dumps(dict(valid, tempo=[{"beat": 0, "bpm": 5e-324}])), {}),
        ("deep nesting", "http", "[" * 50_000, {}),
        ("invalid UTF-8", "http", b'{"task": "\xff\xfe\xfd"}', {}),
        ("unknown field", "http", json.dumps(dict(valid, temprature=2)), {}),
        ("bad Host", "http", text, {"Host": "evil.example"}),
        ("bad Origin", "http", text, {"Origin": "http://evil.example"}),
        ("binary frame", "ws", text.encode(), {}),
        ("garbage frame", "ws", "{" + text[:40], {}),
    ]
    return rng.choice(kinds)


class Client:
    """One load client: a keep-alive HTTP connection and a WebSocket, both reopened (and counted) if lost."""

    def __init__(self, port: int):
        self.port = port
        self.http: http.client.HTTPConnection | None = None
        self.ws = None
        self.resets = 0

    def post(self, body: bytes | str, headers: dict) -> int:
        if self.http is None:
            self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            self.http.request("POST", "/generate", body=body,
                              headers={"Content-Type": "application/json", **headers})
            answer = self.http.getresponse()
            answer.read()
        except RESETS:
            self.resets += 1
            self.http.close()
            self.http = None
            return 0
        if answer.getheader("connection", "").lower() == "close":
            self.resets += 1  # the server dropped the keep-alive connection after answering
            self.http.close()
            self.http = None
        return answer.status

    def send(self, message: bytes | str) -> int:
        try:
            if self.ws is None:
                self.ws = connect(f"ws://127.0.0.1:{self.port}/ws", open_timeout=30, max_size=2**24)
            self.ws.send(message)
            while True:
                answer = json.loads(self.ws.recv(timeout=300))
                if answer["type"] == "result":
                    return 200
                if answer["type"] == "error":
                    return answer["status"]
        except (ConnectionClosed, TimeoutError, OSError):  # a lost WebSocket is a reset
            self.resets += 1
            self.ws = None
            return 0

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.ws is not None:
            self.ws.close()


def run_load(port: int, valid: dict, clients: int, total: int, share: float, seed: int) -> dict:
    """``total`` requests from ``clients`` threads; per kind, the statuses and the slowest answer."""
    statuses: dict[str, Counter] = {}
    slowest: dict[str, float] = {}
    resets = 0
    lock = threading.Lock()
    text = json.dumps(valid)

    def work(index: int) -> None:
        nonlocal resets
        rng = random.Random(seed * 1000 + index)
        client = Client(port)
        try:
            for i in range(total // clients + (index < total % clients)):
                if rng.random() < share:
                    kind, transport, body, headers = malformed(valid, rng)
                else:
                    kind, transport, body, headers = ("valid", "ws" if i % 5 == 4 else "http", text, {})
                began = time.perf_counter()
                status = client.send(body) if transport == "ws" else client.post(body, headers)
                elapsed = time.perf_counter() - began
                with lock:
                    statuses.setdefault(f"{kind} ({transport})", Counter())[status] += 1
                    slowest[f"{kind} ({transport})"] = max(slowest.get(f"{kind} ({transport})", 0), elapsed)
        finally:
            client.close()
            with lock:
                resets += client.resets

    threads = [threading.Thread(target=work, args=(i,), name=f"load-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"statuses": statuses, "slowest": slowest, "resets": resets}


def health(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def wait_running(port: int, running: int, seconds: float) -> float:
    """Seconds until /health shows ``running`` runs (at most ``seconds``)."""
    began = time.perf_counter()
    while health(port)["running"] != running and time.perf_counter() - began < seconds:
        time.sleep(0.05)
    return time.perf_counter() - began


def timed(action) -> tuple[str, float]:
    began = time.perf_counter()
    outcome = action()
    return str(outcome), time.perf_counter() - began


def abuse(port: int, pid: int, long_body: str, timeout: float) -> list[tuple[str, str, float, int]]:
    """The abusive requests one at a time: (what, outcome, seconds, server RSS MiB after)."""
    client = Client(port)
    far = json.dumps({"task": "infill", "region": {"start": 999_990, "end": 999_992}, "grid": 1 / 64,
                      "notes": [{"start": 999_989, "duration": 1, "pitch": 60}]})
    tiny_bpm = json.dumps({"task": "infill", "region": {"start": 0, "end": 1},
                           "tempo": [{"beat": 0, "bpm": 5e-324}]})

    def foreign_origin() -> int:
        try:
            connect(f"ws://127.0.0.1:{port}/ws", open_timeout=30, origin="http://evil.example").close()
            return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    def abandoned() -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            body = long_body.encode()
            sock.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            wait_running(port, 1, 30)
        stopped = wait_running(port, 0, 2 * timeout)
        return f"stopped {stopped:.2f} s after the client left"

    cases = [
        (f"8 x 8 candidates, 59.8 s region (--timeout {timeout:g})", lambda: client.post(long_body, {})),
        ("1/64-beat grid at beat 999,990", lambda: client.post(far, {})),
        ("bpm 5e-324", lambda: client.post(tiny_bpm, {})),
        ("1 MB of nested brackets", lambda: client.post("[" * 1_000_000, {})),
        ("Host: evil.example", lambda: client.post(far, {"Host": "evil.example"})),
        ("WebSocket from Origin evil.example", foreign_origin),
        ("binary WebSocket frame", lambda: client.send(far.encode())),
        ("abandoned HTTP request (8 x 8 candidates)", abandoned),
    ]
    rows = []
    for what, action in cases:
        outcome, seconds = timed(action)
        rows.append((what, outcome, seconds, memory_kib(pid, "VmRSS") // 1024))
        print(f"  {what}: {outcome} in {seconds:.2f} s", flush=True)
    rows.append(("connection resets in the above", str(client.resets), 0.0, memory_kib(pid, "VmRSS") // 1024))
    client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000, help="requests in all (1000)")
    parser.add_argument("--malformed", type=float, default=0.15, help="share of malformed requests (0.15)")
    parser.add_argument("--timeout", type=float, default=10.0, help="the server's --timeout in seconds (10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="write the tables to bench/RESULTS.md")
    args = parser.parse_args()

    valid = json.loads(request_from_midi(SOURCE, task="continue", region=(16, 17),
                                         sampling={"top_p": 0.9}).model_dump_json())
    long_body = request_from_midi(SOURCE, task="continue", region=(16, 165.5), sampling={
        "variations": 8, "candidates": 8, "density": 2}).model_dump_json()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        create_model(tiny_config()).save_pretrained(folder)
        server = subprocess.Popen(
            [sys.executable, "-m", "amt.cli", "serve", "--model", folder, "--port", str(port),
             "--timeout", str(args.timeout), "--queue", str(max(16, args.clients))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    health(port)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            run_load(port, valid, args.clients, 2 * args.clients, 0.0, args.seed + 1)  # warm up
            warm = memory_kib(server.pid, "VmRSS") // 1024
            began = time.perf_counter()
            load = run_load(port, valid, args.clients, args.requests, args.malformed, args.seed)
            seconds = time.perf_counter() - began
            after_load = memory_kib(server.pid, "VmRSS") // 1024
            print(f"load: {args.requests} requests in {seconds:.1f} s", flush=True)
            rows = abuse(port, server.pid, long_body, args.timeout)
            final = health(port)
            peak = memory_kib(server.pid, "VmHWM") // 1024
            # SIGTERM while a long generation runs: the server must stop it and exit.
            late: list[int] = []
            thread = threading.Thread(target=lambda: late.append(Client(port).post(long_body, {})),
                                      daemon=True)
            thread.start()
            wait_running(port, 1, 30)
            began = time.perf_counter()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            exit_seconds = time.perf_counter() - began
            thread.join(10)
            rows.append(("SIGTERM during a long generation", f"exit {server.returncode}; the request got "
                         f"{late[0] if late else 'nothing'}", exit_seconds, 0))
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    statuses = load["statuses"]
    five = sum(n for counts in statuses.values() for status, n in counts.items() if status >= 500)
    sent = sum(sum(c.values()) for c in statuses.values())
    malformed_sent = sum(sum(c.values()) for k, c in statuses.items() if not k.startswith("valid"))
    kinds = ["| kind | sent | answers | slowest s |", "|---|---:|---|---:|"]
    for kind in sorted(statuses):
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(statuses[kind].items()))
        kinds.append(f"| {kind} | {sum(statuses[kind].values())} | {answers} | {load['slowest'][kind]:.2f} |")
    summary = [
        "| requests | malformed | clients | seconds | 5xx | connection resets | server RSS MiB: warm, after "
        "load, peak | /health served, failed |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
        f"| {sent} | {malformed_sent} | {args.clients} | {seconds:.1f} | {five} | {load['resets']} | {warm}, "
        f"{after_load}, {peak} | {final['served']}, {final['failed']} |",
    ]
    abusive = ["| abusive request | answer | seconds | server RSS MiB after |", "|---|---|---:|---:|"]
    abusive += [f"| {what} | {outcome} | {s:.2f} | {rss or '-'} |" for what, outcome, s, rss in rows]
    notes = [
        f"Model: tiny random GPT (tiny_config), served by `amt serve --timeout {args.timeout:g}` in its own "
        f"process on 127.0.0.1; {args.clients} client threads in this process. A valid request continues the "
        "synthetic tempo-change reference file for 1 beat (0.4 s); every fifth valid request of a client "
        "goes over its WebSocket. 0 in an answers column is a lost connection. The candidates request is "
        "answered 504 at the timeout (its 64 rows stop at the next decoding step) and counts in /health's "
        "failed.",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine).",
    ]
    text = "\n".join(["\n".join(summary), "", "\n".join(kinds), "", "\n".join(abusive), "", *notes])
    print(text)
    if args.record:
        command = (f"python bench/load.py --clients {args.clients} --requests {args.requests} --malformed "
                   f"{args.malformed:g} --timeout {args.timeout:g} --record")
        record_section("## Server load", f"Machine: {machine()}.\nCommand: `{command}` "
                       f"({time.strftime('%Y-%m-%d')}).\n\n{text}\n")
    if five or load["resets"]:
        raise SystemExit(f"{five} answers 5xx and {load['resets']} connection resets under load")


if __name__ == "__main__":
    main()
