"""The training loop: read it top to bottom in :func:`train`.

One process per device; under ``torchrun`` the processes form a DistributedDataParallel group (NCCL on
CUDA, Gloo on CPU), each building its own share of every batch. Everything that varies between steps is a
function of ``(seed, step)`` -- the batch indices, torch's RNG (re-seeded every step) and the learning rate
-- so a run resumed from a checkpoint computes exactly the steps an uninterrupted run would.

Run folder (``--out``)::

    config.yaml           the resolved training config
    metrics.jsonl         one JSON line per logged step / validation
    tensorboard/          loss, learning rate, grad norm, validation loss and bits per event
    checkpoints/step-N/   the last ``keep_last`` checkpoints (see checkpoint.py)
    best/                 the model with the lowest validation loss (a model folder: ``amt ... --model``)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from amt.errors import ConfigError, CorpusError
from amt.fileio import atomic_write_text
from amt.training import checkpoint as ckpt
from amt.training import embedding as structured
from amt.training.blocks import block_cross_entropy
from amt.training.config import Config
from amt.training.data import Objective, ObjectiveParams, SequenceBuilder, source_weights
from amt.training.evaluate import build_sequences, model_scorer, score_sequences

VALID_SEED_OFFSET = 1_000_003
"""Validation sequences use seed + this, so they never coincide with training indices of the same seed."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the (possibly single-process) training group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes logs and checkpoints."""
        return self.rank == 0


def setup_distributed(device_type: str) -> Distributed:
    """Join the torchrun process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``train.device`` through the one device rule (``amt.device.resolve_device``)."""
    from amt.device import resolve_device

    return resolve_device(name, local_rank)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast for "bf16", and for "auto" on CUDA; None means full float32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def lr_at(step: int, config: Config) -> float:
    """Learning rate of ``step``: linear warm-up to ``lr``, then a cosine decay to ``min_lr`` at the end."""
    optim, steps = config.optim, config.train.steps
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = min(1.0, (step - optim.warmup_steps) / max(1, steps - optim.warmup_steps))
    return optim.min_lr + 0.5 * (optim.lr - optim.min_lr) * (1 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices only, none on norms, biases and embeddings (with
    the parameters of a structured embedding, which live inside the embedding module)."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    decay, no_decay = [], []
    for p in model.parameters():  # tied weights appear once
        if p.requires_grad:
            (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class LanguageModelLoss(nn.Module):
    """Wraps a CausalLM so that ``forward(tokens)`` returns the mean next-token loss (nats per token), an
    event's note targets counted ``note_weight`` times (block loss only).

    This is the module DDP wraps and torch.compile compiles: the block loss calls ``hidden_states`` and
    ``output_weight`` rather than ``forward``, which DDP would otherwise not see.
    """

    def __init__(self, model: nn.Module, *, block_logits: bool, note_weight: float = 1.0):
        super().__init__()
        self.model = model
        self.block_logits = block_logits
        self.note_weight = note_weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # A structured embedding (embedding.py) is computed once per step, not once per use.
        with parametrize.cached():
            return self._loss(tokens)

    def _loss(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if self.block_logits:
            hidden = self.model.hidden_states(inputs)
            return block_cross_entropy(hidden, self.model.output_weight(), inputs, targets,
                                       note_weight=self.note_weight)
        logits = self.model(inputs)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def batch_indices(step: int, micro: int, *, batch_size: int, grad_accum: int, dist: Distributed) -> range:
    """Global sequence indices of one micro-batch: disjoint across steps, micro-steps and ranks."""
    first = ((step * grad_accum + micro) * dist.world + dist.rank) * batch_size
    return range(first, first + batch_size)


class _StepIndices(torch.utils.data.Sampler):
    """Yields the sequence indices of steps ``start..steps-1`` in loop order (for DataLoader workers)."""

    def __init__(self, start: int, steps: int, config: Config, dist: Distributed):
        self.start, self.steps, self.config, self.dist = start, steps, config, dist

    def __iter__(self) -> Iterator[int]:
        t = self.config.train
        for step in range(self.start, self.steps):
            for micro in range(t.grad_accum):
                yield from batch_indices(step, micro, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                         dist=self.dist)

    def __len__(self) -> int:
        t = self.config.train
        return (self.steps - self.start) * t.grad_accum * t.batch_size


def make_builder(corpus, pieces: np.ndarray, config: Config, seed: int, mix=None, *,
                 training: bool = True) -> SequenceBuilder:
    """A sequence builder with the config's objective mix and parameters, and for ``training`` sequences its
    source weights and pitch augmentation (validation draws the music as the corpus has it)."""
    d = config.data
    mix = mix or {Objective.AUTOREGRESS: d.autoregress, Objective.SPAN: d.span, Objective.RANDOM: d.random,
                  Objective.INSTRUMENT: d.instrument}
    params = ObjectiveParams(span_gap=d.span_gap, span_length=d.span_length, random_rate=tuple(d.random_rate),
                             transpose=d.transpose if training else 0)
    weights = source_weights(corpus, pieces, d.source_weights) if training else None
    return SequenceBuilder(corpus, pieces, seed=seed, mix=mix, params=params, piece_weights=weights)


def open_corpus(config: Config):
    """The corpus and its train / validation pieces; an empty validation split falls back to training
    pieces (with a note), since small corpora often have none."""
    from amt.tokenization.corpus import Corpus

    corpus = Corpus(config.data.corpus)
    train_pieces = corpus.split(config.data.train_split)
    if len(train_pieces) == 0:
        raise CorpusError(f"{config.data.corpus}: split {config.data.train_split!r} has no pieces "
                          "to train on")
    valid_pieces = corpus.split(config.data.valid_split)
    note = None
    if len(valid_pieces) == 0:
        note = (f"split {config.data.valid_split!r} is empty: validating on training pieces "
                "(different windows; not a held-out estimate)")
        valid_pieces = train_pieces
    return corpus, train_pieces, valid_pieces, note


class _Logger:
    """metrics.jsonl always; TensorBoard when installed (the optional ``amt[train]`` extra)."""

    def __init__(self, out: Path, enabled: bool, start: int = 0):
        """Logs of a run starting (or resuming) after step ``start``: what a killed run logged beyond its last
        checkpoint is dropped, so that each step is logged once."""
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self.path = out / "metrics.jsonl"
        _truncate_metrics(self.path, start)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("note: tensorboard is not installed (pip install 'amt[train]'); "
                  "logging to metrics.jsonl only",
                  file=sys.stderr)
        else:
            # purge_step hides the events of the steps to be redone from TensorBoard.
            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines of metrics.jsonl up to ``step`` (a line cut short by a kill is dropped too)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(kept))


def _seed_step(seed: int, step: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


def train(config: Config, *, init: str | None = None, resume: bool = False,
          out: str | os.PathLike | None = None, max_steps: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train per ``config``; returns a summary (step, last training loss, best validation loss, run folder).

    ``init`` starts from a model folder or Hub id instead of a random model; ``resume`` continues from the
    newest checkpoint in ``out`` (a fresh start when there is none). ``max_steps`` stops early after that
    step (the schedule still follows ``train.steps``), which is how a run is split in tests.
    """
    from amt.models import create_model, load_model

    t = config.train
    out = Path(out or t.out)
    init = init if init is not None else t.init
    device = pick_device(t.device)
    dist = setup_distributed(device.type)
    if dist.world > 1:
        device = pick_device(t.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = autocast_dtype(t.precision, device)

    corpus, train_pieces, valid_pieces, note = open_corpus(config)
    if note and dist.main:
        print(f"note: {note}", file=sys.stderr)
    builder = make_builder(corpus, train_pieces, config, t.seed)
    # Validation draws pieces as a held-out evaluation does (by length, no source weights), so the best
    # model is the best on music as the corpus has it.
    valid = build_sequences(make_builder(corpus, valid_pieces, config, t.seed + VALID_SEED_OFFSET,
                                         training=False), t.eval_sequences)[dist.rank::dist.world]

    # Model and optimizer, fresh or from the newest checkpoint.
    if dist.main:
        ckpt.remove_partial_saves(out)
    if dist.world > 1:
        torch.distributed.barrier()  # every rank then sees the same checkpoints
    checkpoints = ckpt.list_checkpoints(out) if resume else []
    state: dict[str, Any] = {"step": 0, "tokens": 0, "best_valid_loss": None, "valid": [], "seed": t.seed}
    if checkpoints:
        state = ckpt.read_trainer_state(checkpoints[-1])
        model = load_model(checkpoints[-1])
    elif init is not None:
        model = load_model(init)
    else:
        torch.manual_seed(t.seed)  # the initial weights are part of the run's determinism
        model = create_model(config.model_config())
    if resume and not checkpoints and dist.main:
        print(f"note: no checkpoint under {out}: starting from step 0", file=sys.stderr)
    if t.structured_embedding:
        structured.attach(model, ckpt.load_structure(checkpoints[-1]) if checkpoints else None,
                          fresh=not checkpoints and init is None)
    model.to(device)
    if model.max_positions is not None and model.max_positions < builder.length - 1:
        raise ConfigError(f"the model takes {model.max_positions} positions; "
                          f"sequences need {builder.length - 1}")
    optimizer = torch.optim.AdamW(parameter_groups(model, config.optim.weight_decay), lr=config.optim.lr,
                                  betas=tuple(config.optim.betas), eps=config.optim.eps,
                                  fused=device.type == "cuda")
    if checkpoints:
        optimizer.load_state_dict(ckpt.load_optimizer_state(checkpoints[-1]))

    loss_fn: nn.Module = LanguageModelLoss(model, block_logits=t.block_logits, note_weight=t.note_loss_weight)
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        loss_fn = DistributedDataParallel(loss_fn,
                                          device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        loss_fn = torch.compile(loss_fn)

    start, end = int(state["step"]), min(t.steps, max_steps or t.steps)
    loader = torch.utils.data.DataLoader(
        builder, batch_size=t.batch_size, sampler=_StepIndices(start, end, config, dist),
        num_workers=config.data.workers, pin_memory=device.type == "cuda",
        persistent_workers=config.data.workers > 0, prefetch_factor=4 if config.data.workers else None,
    )
    batches = iter(loader)
    tokens_per_step = t.batch_size * t.grad_accum * dist.world * (builder.length - 1)

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        import yaml

        atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    logger = _Logger(out, dist.main, start)
    bar = None
    if progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True)

    # With the block loss, the model never learns to put zero mass outside the grammar's blocks, so the
    # full-vocabulary loss can rise while the block loss (what the sampler draws from) still falls: the best
    # model is then chosen by the block loss.
    selection = "valid/block_loss" if t.block_logits else "valid/loss"

    def validate() -> dict[str, float]:
        model.eval()
        metrics = {}
        passes = [("valid/", False), *([("valid/block_", True)] if t.block_logits else [])]
        for prefix, grammar in passes:
            tally = score_sequences(model_scorer(model, autocast_dtype=amp, grammar=grammar), valid,
                                    batch_size=t.batch_size)
            sums = torch.tensor([tally.nll, tally.tokens, sum(tally.kind_nll), tally.kind_tokens[2]],
                                dtype=torch.float64, device=device)
            if dist.world > 1:
                torch.distributed.all_reduce(sums)
            nll, tokens, event_nll, events = sums.tolist()
            metrics[f"{prefix}loss"] = nll / tokens
            metrics[f"{prefix}bits_per_event"] = event_nll / max(events, 1) / math.log(2)
        model.train()
        return metrics

    def save(step: int) -> None:
        if dist.main:
            ckpt.save_checkpoint(ckpt.step_folder(out, step), model, optimizer, state,
                                 structure=structured.structure_state(model))
            ckpt.prune_checkpoints(out, t.keep_last)

    model.train()
    loss_name = "train/block_loss" if t.block_logits else "train/loss"
    loss_value = math.nan
    clock, clock_step = time.perf_counter(), start
    for step in range(start, end):
        _seed_step(t.seed, step, dist.rank)
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=device)
        for micro in range(t.grad_accum):
            tokens = next(batches).to(device, non_blocking=True)
            # Gradients are all-reduced on the last micro-step only.
            sync = micro == t.grad_accum - 1 or dist.world == 1
            with (contextlib.nullcontext() if sync else loss_fn.no_sync()), \
                    torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = loss_fn(tokens) / t.grad_accum
            loss.backward()
            total += loss.detach()
        # Clipping to infinity still returns the norm, which is logged.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] = step + 1
        state["tokens"] = int(state["tokens"]) + tokens_per_step

        if (step + 1) % t.log_every == 0 or step + 1 == end:
            if dist.world > 1:
                torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.AVG)
            loss_value = float(total)
            now = time.perf_counter()
            speed = tokens_per_step * (step + 1 - clock_step) / (now - clock)
            clock, clock_step = now, step + 1
            # The block loss is renormalised over the grammar's block, so it is lower than the full-vocabulary
            # validation loss; its own name keeps the two from being compared by mistake.
            logger.log(step + 1, {loss_name: loss_value, "train/lr": lr,
                                  "train/grad_norm": float(grad_norm), "train/tokens_per_s": speed})
            if bar is not None:
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{speed:,.0f}")
        if bar is not None:
            bar.update(1)

        if (step + 1) % t.eval_every == 0 or step + 1 == end:
            metrics = validate()
            logger.log(step + 1, metrics)
            state["valid"] = [*state["valid"], {"step": step + 1, **metrics}]
            best = state["best_valid_loss"]
            if best is None or metrics[selection] < best:
                state["best_valid_loss"] = metrics[selection]
                if dist.main:
                    ckpt.save_checkpoint(out / ckpt.BEST, model, None, state)
            if bar is not None:
                bar.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if (step + 1) % t.save_every == 0 or step + 1 == end:
            save(step + 1)

    if bar is not None:
        bar.close()
    logger.close()
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return {"step": int(state["step"]), "train_loss": loss_value, "best_valid_loss": state["best_valid_loss"],
            "valid": state["valid"], "out": str(out)}
