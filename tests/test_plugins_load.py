"""8 concurrent clients x 25 requests against a tiny model over loopback: every answer 200, the server
healthy afterwards, memory bounded. (Latency figures come from bench/serve.py; tests never assert timings.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from amt.models import create_model, tiny_config
from amt.plugins.client import BridgeClient, run_load
from amt.plugins.engine import Limits
from amt.plugins.midifile import request_from_midi
from amt.plugins.server import BackgroundServer, create_app

from conftest import REFERENCE_DIR as REFERENCE

CLIENTS, REQUESTS = 8, 25


def rss_bytes() -> int | None:
    """Resident memory of this process (server and clients share it), from /proc on Linux."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


@pytest.mark.slow
def test_concurrent_clients_leave_the_server_healthy():
    torch.manual_seed(0)
    model = create_model(tiny_config()).eval()
    # A short continuation (1 beat at 150 bpm = 0.4 s) keeps 200 generations within the test budget on a
    # shared 2-core machine; bench/serve.py measures longer regions.
    body = request_from_midi(REFERENCE / "synth_tempo_trumpet_drums.mid", task="continue", region=(16, 17),
                             sampling={"top_p": 0.9}).model_dump_json()
    with BackgroundServer(create_app(model, model_name="tiny", limits=Limits(queue_size=CLIENTS))) as server:
        warm = run_load(server.url, body, CLIENTS, 2)  # allocate what steady state needs
        assert warm.statuses == {200: 2 * CLIENTS}
        before = rss_bytes()
        result = run_load(server.url, body, CLIENTS, REQUESTS)
        after = rss_bytes()
        client = BridgeClient(server.url)
        health = client.health()
        status, answer = client.post_raw("{oops")  # still answers bad input properly
        client.close()
    assert result.statuses == {200: CLIENTS * REQUESTS}, result.statuses
    assert len(result.latencies) == CLIENTS * REQUESTS
    assert health["status"] == "ok" and health["running"] == 0 and health["queued"] == 0
    assert health["served"] == CLIENTS * (REQUESTS + 2) and health["failed"] == 0
    assert status == 400 and "malformed JSON" in answer["error"]
    if before is not None:
        growth = after - before
        assert growth < 200 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB over {CLIENTS * REQUESTS} requests"
