"""Training speed: the sequence builder, CPU training (full vs block logits), and GPU tokens/s + MFU.

    python bench/train.py                   # everything that runs here; records bench/RESULTS.md
    python bench/train.py --no-record       # print only
    python bench/train.py --corpus DIR      # builder speed on your corpus (default: the reference MIDI)

Rows:
- builder: sequences/s of ``SequenceBuilder.build`` in one process (the paper's objective mix), and how
  many DataLoader workers an H100 would need at the measured GPU throughput of AMT-small / -medium;
- cpu: training tokens/s (forward + backward + AdamW, seq 1,024) for the tiny config and the default
  (built-in) model shape, with full-vocabulary logits and with block logits;
- cuda: tokens/s and model FLOPs utilisation for the AMT-small and -medium shapes at seq 1,024, bf16
  autocast, fused AdamW (``--compile`` adds torch.compile); "skipped: no CUDA" without a GPU.

MFU counts 6 FLOPs per parameter per token for the layers and the output layer, plus attention
(12 * layers * width * sequence length per token; PaLM's appendix B), against the GPU's dense bf16 peak.
Block-logit rows count the full output layer too (the model FLOPs), so their MFU shows the saving as speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from results import record_section

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference"
SECTION = "## Training"

PEAK_BF16 = {"H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12,
             "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12, "4090": 165e12}
"""Dense bf16 tensor-core peaks (vendor data sheets), matched against the device name in this order."""
H100_TARGET_MFU = 0.45

SHAPES = {
    "tiny": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4},
    "default": {"model_type": "gpt2", "n_embd": 192, "n_layer": 6, "n_head": 6},
    "amt-small": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12},
    "amt-medium": {"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_head": 16},
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {gpu}; "
            f"torch {torch.__version__}, Python {platform.python_version()}; load average at the end {load}")


def reference_corpus(folder: Path) -> Path:
    from amt.tokenization.corpus import prepare_corpus

    out = folder / "corpus"
    prepare_corpus(sorted(REFERENCE.glob("*.mid")), out, workers=1, progress=False)
    return out


def bench_builder(corpus_dir: Path, count: int) -> float:
    from amt.tokenization.corpus import Corpus
    from amt.training.data import SequenceBuilder

    corpus = Corpus(corpus_dir)
    builder = SequenceBuilder(corpus, corpus.split("train") if len(corpus.split("train")) else
                              np.arange(len(corpus)), seed=0)
    builder.build(0)
    start = time.perf_counter()
    for i in range(count):
        builder.build(i)
    return count / (time.perf_counter() - start)


def model_flops_per_token(config, length: int) -> float:
    layers = 12 * config.n_layer * config.n_embd ** 2  # attention 4d^2 + MLP 8d^2 per layer
    head = config.vocab_size * config.n_embd
    return 6 * (layers + head) + 12 * config.n_layer * config.n_embd * length


def bench_training(shape: str, *, device: torch.device, batch: int, steps: int, block: bool, bf16: bool,
                   compile_model: bool, batches: list[torch.Tensor]) -> tuple[float, float]:
    """(tokens/s, FLOPs per token) of full training steps of ``shape``."""
    from amt.models import create_model
    from amt.models.config import config_from_dict
    from amt.training.train import LanguageModelLoss, parameter_groups

    config = config_from_dict(SHAPES[shape])
    model = create_model(config).to(device)
    loss_fn = LanguageModelLoss(model, block_logits=block)
    if compile_model:
        loss_fn = torch.compile(loss_fn)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.1), lr=1e-4, fused=device.type == "cuda")

    def step(tokens: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(tokens.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    warmup = 3 if compile_model else 1
    for i in range(warmup):
        step(batches[i % len(batches)][:batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)][:batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    length = batches[0].shape[1] - 1
    return batch * length * steps / elapsed, model_flops_per_token(config, length)


def peak_flops(name: str) -> float | None:
    for key, value in PEAK_BF16.items():
        if key in name:
            return value
    return None


def record(lines: list[str]) -> None:
    """Replace (or add) the Training section of bench/RESULTS.md."""
    record_section(SECTION, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, help="corpus for the builder rows (default: reference MIDI)")
    parser.add_argument("--sequences", type=int, default=300, help="sequences for the builder row")
    parser.add_argument("--cpu-steps", type=int, default=3)
    parser.add_argument("--cpu-batch", type=int, default=4)
    parser.add_argument("--gpu-steps", type=int, default=10)
    parser.add_argument("--gpu-batch", type=int, default=16)
    parser.add_argument("--compile", action="store_true", help="torch.compile on CUDA")
    parser.add_argument("--cpu-bf16", action="store_true", help="also time CPU bf16 autocast")
    parser.add_argument("--no-record", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args(argv)

    from amt.training.data import SequenceBuilder

    rows: list[tuple[str, str, str, str]] = []  # (what, setting, tokens/s or seq/s, note)

    def show(row: tuple[str, str, str, str]) -> None:
        rows.append(row)
        print(" | ".join(row), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = args.corpus or reference_corpus(Path(tmp))
        from amt.tokenization.corpus import Corpus

        rate = bench_builder(corpus_dir, args.sequences)
        source = corpus_dir if args.corpus else "reference MIDI corpus"
        show(("builder", f"1 process, {source}", f"{rate:,.0f} seq/s",
              f"{rate * 1023:,.0f} tokens/s"))
        corpus = Corpus(corpus_dir)
        builder = SequenceBuilder(corpus, np.arange(len(corpus)), seed=0)
        batches = [torch.from_numpy(np.stack([builder.build(i * 64 + j) for j in range(max(args.gpu_batch,
                                                                                             args.cpu_batch))]))
                   for i in range(2)]

    cpu = torch.device("cpu")
    for shape in ("tiny", "default"):
        for block in (False, True):
            for bf16 in (False, True) if args.cpu_bf16 else (False,):
                speed, _ = bench_training(shape, device=cpu, batch=args.cpu_batch, steps=args.cpu_steps,
                                          block=block, bf16=bf16, compile_model=False, batches=batches)
                show(("cpu " + shape, f"batch {args.cpu_batch}, {'bf16' if bf16 else 'fp32'}, "
                      f"{'block' if block else 'full'} logits", f"{speed:,.0f} tokens/s", ""))

    gpu_rates = {}
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
        peak = peak_flops(name)
        torch.backends.cuda.matmul.allow_tf32 = True
        for shape in ("amt-small", "amt-medium"):
            for block in (False, True):
                speed, flops = bench_training(shape, device=device, batch=args.gpu_batch,
                                              steps=args.gpu_steps, block=block, bf16=True,
                                              compile_model=args.compile, batches=batches)
                mfu = f"MFU {speed * flops / peak:.1%}" if peak else "MFU: unknown peak"
                gpu_rates[shape] = max(gpu_rates.get(shape, 0.0), speed)
                show((f"cuda {shape}", f"{name}, batch {args.gpu_batch}, bf16, "
                      f"{'block' if block else 'full'} logits{', compiled' if args.compile else ''}",
                      f"{speed:,.0f} tokens/s", mfu))
                torch.cuda.empty_cache()
        for shape, speed in gpu_rates.items():
            show(("builder need", shape, f"{speed / 1023:,.0f} seq/s", f"{speed / 1023 / rate:.1f} workers"))
    else:
        show(("cuda amt-small / amt-medium", "seq 1,024, bf16", "skipped: no CUDA", ""))
    # What the builder must sustain for an H100 at the 45% MFU target (model FLOPs, seq 1,024).
    from amt.models.config import config_from_dict

    for shape in ("amt-small", "amt-medium"):
        flops = model_flops_per_token(config_from_dict(SHAPES[shape]), 1023)
        needed = H100_TARGET_MFU * PEAK_BF16["H100 SXM"] / flops / 1023
        show(("builder need (estimate)", f"H100 at {H100_TARGET_MFU:.0%} MFU, {shape}",
              f"{needed:,.0f} seq/s",
              f"{needed / rate:.2f} builder processes at the measured rate"))

    if not args.no_record:
        lines = [f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. Command: `python bench/train.py"
                 f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`.", "",
                 "| what | setting | speed | note |", "|---|---|---|---|",
                 *(f"| {' | '.join(row)} |" for row in rows)]
        record(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
