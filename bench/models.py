"""Decoding speed of the backbones: tokens/s of ``step`` after a prefill, per model shape and batch size.

Randomly initialised models (speed does not depend on the weights). For the GPT, the uncached baseline
re-runs the whole context for every token. Prints a Markdown table; ``--record`` adds it, with the machine
and the command, at the end of the "Models" section of bench/RESULTS.md (entries are kept, as runs on
different devices and shapes complement each other).

    python bench/models.py                          # tiny and AMT-small shapes, batch 1, CPU
    python bench/models.py --batch 1 8 --device cuda --dtype bfloat16 --record
    python bench/models.py --output-rows --threads 1 --record   # the sampler's note-step output product
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

from amt.models import GPTConfig, MambaConfig, create_model, tiny_config

from results import record_section

SHAPES = {
    "gpt2-tiny": tiny_config("gpt2"),
    "gpt2-small": GPTConfig(),  # AMT-small: 12 layers x 768
    "gpt2-medium": GPTConfig(n_embd=1024, n_layer=24, n_head=16),
    "mamba-tiny": tiny_config("mamba"),
    "mamba-small": MambaConfig(d_model=768, n_layer=24),  # about the parameters of AMT-small
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def decode_speed(model, batch: int, prefill: int, tokens: int) -> tuple[float, float, float]:
    """Prefill tokens/s, decode tokens/s per sequence, and decode tokens per CPU-second of this process
    (the last is robust to other processes sharing the CPU when running single-threaded)."""
    device = model.device
    ids = torch.randint(0, model.vocab_size, (batch, prefill + tokens), device=device)
    state = model.init_state(batch)
    model.step(ids[:, :8], state)  # warm-up (allocations, kernel selection)
    state = model.init_state(batch)
    sync(device)
    start = time.perf_counter()
    _, state = model.step(ids[:, :prefill], state, last_only=True)
    sync(device)
    prefill_time = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    for t in range(prefill, prefill + tokens):
        _, state = model.step(ids[:, t : t + 1], state)
    sync(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return batch * prefill / prefill_time, tokens / wall, tokens / cpu


@torch.inference_mode()
def uncached_speed(model, batch: int, prefill: int, tokens: int) -> float:
    """Decode tokens/s per sequence when the whole context is run again for every new token."""
    device = model.device
    ids = torch.randint(0, model.vocab_size, (batch, prefill + tokens), device=device)
    sync(device)
    start = time.perf_counter()
    for t in range(prefill, prefill + tokens):
        model(ids[:, :t])[:, -1]
    sync(device)
    return tokens / (time.perf_counter() - start)


@torch.inference_mode()
def output_rows_speed(model, batch: int, repeats: int = 30) -> tuple[float, float]:
    """CPU-milliseconds of the note step's output product when 90% of the note block's 16,512 rows may be
    drawn (free sampling: nearly all), median over interleaved repeats: the rows copied out first (amt before
    issue 23) against a view of the contiguous block with the columns picked after (amt now)."""
    from amt.sampling.masks import BLOCKS, NOTE_POSITION

    first, size = BLOCKS[NOTE_POSITION]
    weight = model.output_weight()
    hidden = torch.randn(batch, weight.shape[1], device=weight.device, dtype=weight.dtype)
    columns = torch.arange(size, device=weight.device)[torch.rand(size, device=weight.device) < 0.9]
    low, high = int(columns[0]), int(columns[-1]) + 1
    ways = {"copy": lambda: hidden @ weight[first + columns].T,
            "view": lambda: (hidden @ weight[first + low : first + high].T)[:, columns - low]}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            start = time.process_time()
            way()
            times[name].append(time.process_time() - start)
    return tuple(1000 * sorted(t)[len(t) // 2] for t in times.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES),
                        default=["gpt2-tiny", "gpt2-small", "mamba-tiny", "mamba-small"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1])
    parser.add_argument("--prefill", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--baseline-tokens", type=int, default=4, help="tokens for the uncached GPT baseline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output-rows", action="store_true",
                        help="time the sampler's note-step output product instead (copy vs view)")
    parser.add_argument("--record", action="store_true", help="add the table to bench/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    setting = (f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.dtype}, "
               f"prefill {args.prefill}, decode {args.tokens} tokens")
    print(f"device: {setting}\n")
    if args.output_rows:
        table = ["| model | batch | rows copied, CPU ms | view of the block, CPU ms |", "|---|---|---|---|"]
        for shape in (s for s in args.shapes if s.startswith("gpt2")):
            torch.manual_seed(0)
            model = create_model(SHAPES[shape]).to(device=device, dtype=getattr(torch, args.dtype)).eval()
            for batch in args.batch:
                copy, view = output_rows_speed(model, batch)
                table.append(f"| {shape} | {batch} | {copy:.2f} | {view:.2f} |")
            del model
        setting = (f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.dtype}; "
                   "note-step output product, 90% of the 16,512 note rows allowed")
        args.shapes = []
    else:
        table = ["| model | params | batch | prefill tok/s | decode tok/s per seq | decode tok per CPU-s "
                 "| uncached tok/s per seq |", "|---|---|---|---|---|---|---|"]
    print("\n".join(table))
    for shape in args.shapes:
        torch.manual_seed(0)
        model = create_model(SHAPES[shape]).to(device=device, dtype=getattr(torch, args.dtype)).eval()
        for batch in args.batch:
            prefill_rate, decode_rate, cpu_rate = decode_speed(model, batch, args.prefill, args.tokens)
            baseline = (f"{uncached_speed(model, batch, args.prefill, args.baseline_tokens):.1f}"
                        if shape.startswith("gpt2") and args.baseline_tokens else "-")
            table.append(f"| {shape} | {model.num_parameters() / 1e6:.1f}M | {batch} | {prefill_rate:,.0f} | "
                         f"{decode_rate:.1f} | {cpu_rate:.1f} | {baseline} |")
            print(table[-1], flush=True)
        del model
    if args.record:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        command = " ".join(["python bench/models.py", *sys.argv[1:]])
        entry = (f"Device: {setting}; Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
                 f"load average at the end {load}. Command: `{command}` ({stamp}).")
        record_section("## Models (bench/models.py)", entry + "\n\n" + "\n".join(table), append=True)


if __name__ == "__main__":
    main()
