"""Sampling speed: cached, batched decoding (amt.sampling.generate) against the reference's strategy.

The reference implementation re-runs the model over the whole context window, without a cache, for each of
the three tokens of every event. This script measures events per second for the AMT-small shape (GPT-2,
12 layers x 768, 55,028-token vocabulary, random weights: speed does not depend on them) with a prompt
that fills most of the 1,024-token window, at batch 1 and 8, for both strategies, and the peak memory of each
run (a fresh process per run; max RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU).

    python bench/sample.py                  # CPU, prints a table and appends it to bench/RESULTS.md
    python bench/sample.py --device cuda --shape medium
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import resource
import subprocess
import time

from results import record_section

SHAPES = {"small": (12, 768, 12), "medium": (24, 1024, 16), "large": (36, 1280, 20)}


def _model(shape: str, device: str):
    import torch

    from amt.models import GPTConfig, create_model

    n_layer, n_embd, n_head = SHAPES[shape]
    torch.manual_seed(0)
    return create_model(GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head)).to(device).eval()


def _prompt(events: int):
    """A plausible prompt: a four-voice texture, one onset every 0.25 s."""
    import numpy as np

    from amt.tokenization.notes import encode

    i = np.arange(events)
    times, pitches = 25 * (i // 4), 48 + (7 * i) % 36
    return encode(times, np.full(events, 50), 0, pitches)


def _peak(device: str) -> float:
    """Peak memory in MiB: of the GPU allocator on CUDA, of the process (max RSS) on CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _cached(shape: str, device: str, batch: int, events: int, prompt_events: int, threads: int) -> dict:
    import numpy as np
    import torch

    from amt.sampling import SamplingOptions, generate

    torch.set_num_threads(threads)
    model = _model(shape, device)
    prompt = _prompt(prompt_events)
    start = int(prompt[-1, 0]) + 25
    stamps: list[float] = []
    counted = [0] * batch

    def callback(variation: int, event: np.ndarray, progress: float) -> None:
        counted[variation] += 1
        if variation == 0:
            _sync(device)
            stamps.append(time.perf_counter())

    # A random model moves ~0.5 s per event; the span is long enough that rows stop by the event cap below.
    t0 = time.perf_counter()
    out = generate(model, history=prompt, controls=np.zeros((0, 3), np.int64), start_time=start,
                   end_time=start + 60 * events, options=SamplingOptions(seed=0), variations=batch,
                   callback=callback)
    _sync(device)
    total = time.perf_counter() - t0
    n = sum(len(o) for o in out)
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * batch if len(stamps) > 1 else float("nan")
    return {"events": n, "seconds": total, "rate": n / total, "decode_rate": decode, "peak": _peak(device)}


def _baseline(shape: str, device: str, batch: int, events: int, prompt_events: int, threads: int) -> dict:
    """The reference's loop: a full forward over the (up to 1,024-token) window for every token."""
    import torch

    from amt.sampling.masks import BLOCKS, sample
    from amt.tokenization.vocab import ANTICIPATE, EVENT_SIZE

    torch.set_num_threads(threads)
    model = _model(shape, device)
    window = model.max_positions
    tokens = torch.tensor([ANTICIPATE, *_prompt(prompt_events).reshape(-1).tolist()], device=device)
    tokens = tokens.repeat(batch, 1)
    generator = torch.Generator(device=device).manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(events):
            for position in range(EVENT_SIZE):
                first, size = BLOCKS[position]
                logits = model(tokens[:, -(window - 1):])[:, -1, first:first + size]
                mask = torch.ones_like(logits, dtype=torch.bool)
                drawn = sample(logits, mask, temperature=1.0, top_p=0.95, generator=generator) + first
                tokens = torch.cat([tokens, drawn[:, None]], dim=1)
    _sync(device)
    total = time.perf_counter() - t0
    n = events * batch
    return {"events": n, "seconds": total, "rate": n / total, "decode_rate": n / total, "peak": _peak(device)}


def _hf_generate(shape: str, device: str, batch: int, events: int, prompt_events: int, threads: int) -> dict:
    """Hugging Face ``generate`` with its KV cache on the same weights (as a ``GPT2LMHeadModel``): top-p
    sampling over the whole vocabulary, without the AMT grammar's masks (so it scores all 55,028 output rows
    per token where amt scores only the block it draws from)."""
    import torch
    import transformers

    from amt.tokenization.vocab import ANTICIPATE, EVENT_SIZE

    torch.set_num_threads(threads)
    model = _model(shape, device)
    c = model.config
    config = transformers.GPT2Config(vocab_size=c.vocab_size, n_positions=c.n_positions, n_embd=c.n_embd,
                                     n_layer=c.n_layer, n_head=c.n_head, scale_attn_by_inverse_layer_idx=True,
                                     tie_word_embeddings=True)
    hf = transformers.GPT2LMHeadModel(config).to(device).eval()
    hf.load_state_dict(model.checkpoint_state_dict(), strict=False)
    hf.tie_weights()
    tokens = torch.tensor([ANTICIPATE, *_prompt(prompt_events).reshape(-1).tolist()], device=device)
    tokens = tokens.repeat(batch, 1)
    new = EVENT_SIZE * events
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        hf.generate(tokens, attention_mask=torch.ones_like(tokens), do_sample=True, top_p=0.95, top_k=0,
                    max_new_tokens=new, min_new_tokens=new, use_cache=True, pad_token_id=0)
    _sync(device)
    total = time.perf_counter() - t0
    n = events * batch
    return {"events": n, "seconds": total, "rate": n / total, "decode_rate": n / total, "peak": _peak(device)}


KINDS = {"cached": _cached, "baseline": _baseline, "hf": _hf_generate}


def _worker(queue, kind: str, *args) -> None:
    queue.put(KINDS[kind](*args))


def run_isolated(kind: str, *args) -> dict:
    """Run one measurement in a fresh process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(queue, kind, *args))
    process.start()
    result = queue.get()
    process.join()
    return result


def machine(device: str) -> str:
    """The CPU model name (lscpu) and, on CUDA, the GPU name."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name()} (host: {cpu})"
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--events", type=int, default=36, help="events per row, cached sampler")
    parser.add_argument("--baseline-events", type=int, default=1, help="events per row, baseline")
    parser.add_argument("--prompt-events", type=int, default=200, help="prompt events (3 tokens each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hf", action="store_true",
                        help="also time Hugging Face generate (KV cache) on the same weights")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    rows = []
    for batch in args.batches:
        common = (args.shape, args.device, batch)
        cached = run_isolated("cached", *common, args.events, args.prompt_events, args.threads)
        base = run_isolated("baseline", *common, args.baseline_events, args.prompt_events, args.threads)
        hf = run_isolated("hf", *common, args.events, args.prompt_events, args.threads) if args.hf else None
        rows.append((batch, cached, base, hf))

    lines = ["| batch | sampler | events | seconds | events/s (all) | events/s (decode) | peak MiB "
             "| speed-up |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for batch, cached, base, hf in rows:
        lines.append(f"| {batch} | amt cached | {cached['events']} | {cached['seconds']:.1f} "
                     f"| {cached['rate']:.2f} | {cached['decode_rate']:.2f} | {cached['peak']:.0f} | "
                     f"{cached['rate'] / base['rate']:.0f}x (all), "
                     f"{cached['decode_rate'] / base['rate']:.0f}x (decode) |")
        lines.append(f"| {batch} | baseline: full window x3 per event, no cache | {base['events']} | "
                     f"{base['seconds']:.1f} | {base['rate']:.3f} | {base['rate']:.3f} | {base['peak']:.0f} "
                     "| 1x |")
        if hf is not None:
            lines.append(f"| {batch} | HF generate, KV cache, no masks | {hf['events']} "
                         f"| {hf['seconds']:.1f} | {hf['rate']:.2f} | {hf['rate']:.2f} | {hf['peak']:.0f} | "
                         f"{hf['rate'] / base['rate']:.0f}x (all) |")
    table = "\n".join(lines)
    where = machine(args.device)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = (f"AMT-{args.shape} shape ({'x'.join(map(str, SHAPES[args.shape][:2]))}, vocab 55,028, random "
             f"weights), device {args.device}, {args.threads} threads, prompt {args.prompt_events} events "
             f"({1 + 3 * args.prompt_events} tokens), top-p 0.95. Machine: {where}, load average "
             f"{os.getloadavg()[0]:.1f} at the end. {stamp}. "
             "'all' includes the prompt prefill; 'decode' is the rate between the first and last new event.")
    print(intro)
    print(table)
    if not args.no_record:
        record_section("## Sampling (bench/sample.py)", f"{intro}\n\n{table}", append=True)


if __name__ == "__main__":
    main()
