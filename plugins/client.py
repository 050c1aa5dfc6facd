"""A small Python client for the bridge (scripts, other DAWs' Python hosts, benchmarks), stdlib HTTP only.

    client = BridgeClient("http://127.0.0.1:8765")
    response = client.generate(request_from_midi("song.mid", task="infill", region=(9, 13), unit="bars"))
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from amt.plugins.protocol import GenerateRequest, GenerateResponse, RequestError


class BridgeClient:
    """One keep-alive HTTP connection to a bridge server (use one client per thread)."""

    def __init__(self, url: str = "http://127.0.0.1:8765", timeout: float = 300.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise RequestError(f"bridge URL must look like http://HOST:PORT, got {url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self._connection: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                headers = {"Content-Type": "application/json"}
                self._connection.request(method, path, body=body, headers=headers)
                answer = self._connection.getresponse()
                return answer.status, answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def health(self) -> dict:
        """``GET /health`` as a dict."""
        return json.loads(self._request("GET", "/health")[1])

    def post_raw(self, body: str | bytes) -> tuple[int, dict]:
        """``POST /generate`` with a ready-made body: the status and the decoded answer."""
        status, answer = self._request("POST", "/generate", body.encode() if isinstance(body, str) else body)
        return status, json.loads(answer)

    def generate(self, request: GenerateRequest) -> GenerateResponse:
        """Ask for a generation; raises ``RequestError`` with the server's status and message on refusal."""
        status, answer = self.post_raw(request.model_dump_json())
        if status != 200:
            raise RequestError(answer.get("error", f"HTTP {status}"), status)
        return GenerateResponse.model_validate(answer)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class LoadResult:
    """What ``run_load`` measured: per-request latencies (seconds), HTTP statuses, and for each 200 answer
    the number of new notes and the server's generation time."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    notes: list[int] = field(default_factory=list)
    generation_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the latencies, interpolated."""
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[min(max(round(q), 1), 99) - 1]


def run_load(url: str, body: str, clients: int, requests_per_client: int) -> LoadResult:
    """``clients`` threads each POST ``body`` ``requests_per_client`` times, one after another, on their
    own connection; returns latencies (of every request) and the count of each status."""
    result = LoadResult()
    lock = threading.Lock()

    def client() -> None:
        bridge = BridgeClient(url)
        try:
            for _ in range(requests_per_client):
                began = time.perf_counter()
                status, answer = bridge.post_raw(body)
                elapsed = time.perf_counter() - began
                with lock:
                    result.latencies.append(elapsed)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if status == 200:
                        result.notes.append(sum(len(v["notes"]) for v in answer["variations"]))
                        result.generation_seconds.append(answer["generation_seconds"])
        finally:
            bridge.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"amt-load-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result
