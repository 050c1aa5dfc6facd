"""DAW bridge latency under load: concurrent clients over loopback against one model.

    python bench/serve.py                       # tiny random model, 1 and 8 clients x 25 requests
    python bench/serve.py --model PATH --beats 2 10 --record

Each client sends the same request (a continuation of the synthetic tempo-change reference file, ``--beats``
beats at its 150 bpm: 2 beats = 0.8 s, 10 beats = 4 s) one after another on its own keep-alive connection;
the server runs one generation at a time, so with N clients a request's latency is about N generations.
Prints latency percentiles and throughput; ``--record`` replaces the "Server" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from amt.models import create_model, load_model, tiny_config
from amt.plugins.client import run_load
from amt.plugins.engine import Limits
from amt.plugins.midifile import request_from_midi
from amt.plugins.server import BackgroundServer, create_app

from results import record_section

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference"


HEADER = ("| region | clients | requests | 200 OK | new notes/request | model s/request | p50 s | p95 s "
          "| max s | req/s | RSS MiB before, after |")
LINE = "| {} | {} | {} | {} | {:.1f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {:.0f}, {:.0f} |"


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux /proc; NaN elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    """CPU model and cores, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return (f"{os.cpu_count()}-core CPU ({cpu}), Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: tiny random model)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--beats", type=float, nargs="+", default=[2.0],
                        help="region lengths in beats (150 bpm), one set of runs each")
    parser.add_argument("--record", action="store_true", help="write the table to bench/RESULTS.md")
    args = parser.parse_args()

    if args.model:
        model, name = load_model(args.model), args.model
    else:
        torch.manual_seed(0)
        model, name = create_model(tiny_config()).eval(), "tiny random GPT (tiny_config)"
    params = sum(p.numel() for p in model.parameters())
    rows = []
    app = create_app(model, model_name=name, limits=Limits(queue_size=args.clients))
    with BackgroundServer(app) as server:
        for beats in args.beats:
            request = request_from_midi(REFERENCE / "synth_tempo_trumpet_drums.mid", task="continue",
                                        region=(16, 16 + beats), sampling={"top_p": 0.9})
            body = request.model_dump_json()
            run_load(server.url, body, 2, 2)  # warm up
            for clients in sorted({1, args.clients}):
                before = rss_mib()
                result = run_load(server.url, body, clients, args.requests)
                after = rss_mib()
                n = len(result.latencies)
                row = (f"{beats * 0.4:.1f} s", clients, n, result.statuses.get(200, 0),
                       statistics.mean(result.notes), statistics.mean(result.generation_seconds),
                       result.percentile(50), result.percentile(95), max(result.latencies),
                       n / result.seconds, before, after)
                rows.append(row)
                print(LINE.format(*row), flush=True)

    table = [HEADER, "|---|" + "---:|" * 9 + "---|", *(LINE.format(*row) for row in rows)]
    notes = [
        f"Model: {name}, {params / 1e6:.1f}M parameters. Request: continue the synthetic tempo-change "
        f"reference file (80 notes of context) for the region's length at 150 bpm, 1 variation; server and "
        "clients in one process over 127.0.0.1.",
        "Latency includes queueing: the server runs one generation at a time, so with N clients each request "
        "waits for about N - 1 others. RSS is the whole process (server + clients). A random model stops "
        "early or late at random, so the notes per request matter as much as the region length.",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine).",
    ]
    print("\n".join([*table, "", *notes]))
    if args.record:
        record("\n".join(table), notes, args)


def record(table: str, notes: list[str], args: argparse.Namespace) -> None:
    """Replace (or add) the "Server" section of bench/RESULTS.md."""
    beats = " ".join(f"{b:g}" for b in args.beats)
    command = "python bench/serve.py" + (f" --model {args.model}" if args.model else "") + (
        f" --clients {args.clients} --requests {args.requests} --beats {beats} --record")
    section = (f"Machine: {machine()}.\nCommand: `{command}` ({time.strftime('%Y-%m-%d')}).\n\n"
               f"{table}\n\n" + "\n".join(notes) + "\n")
    record_section("## Server", section)


if __name__ == "__main__":
    main()
