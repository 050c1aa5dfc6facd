"""A run killed mid-save or between checkpoints resumes cleanly: no leftover partial folders, and its logs
(metrics.jsonl, TensorBoard) hold each step once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from amt.tokenization.corpus import prepare_corpus
from amt.training import checkpoint as ckpt
from amt.training.config import load_config
from amt.training.train import train

from conftest import REFERENCE_DIR

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "reference"
    prepare_corpus(sorted(REFERENCE_DIR.glob("*.mid"))[:1], out, workers=1, progress=False)
    return out


def _config(corpus_dir: Path, out: Path):
    config = load_config(CONFIGS / "tiny.yaml")
    config.data.corpus = str(corpus_dir)
    config.train.out = str(out)
    for key, value in dict(steps=4, batch_size=2, log_every=1, eval_every=4, save_every=2, eval_sequences=1,
                           keep_last=5).items():
        setattr(config.train, key, value)
    return config


def test_resume_after_a_kill_removes_partial_saves_and_logs_each_step_once(corpus_dir, tmp_path):
    out = tmp_path / "run"
    train(_config(corpus_dir, out), max_steps=3, progress=False)
    # As if SIGKILL struck while step 3's checkpoint was written: its folder exists only under a temporary
    # name (as atomic_directory writes it), with another half-written one, and `best` mid-replacement.
    shutil.move(ckpt.step_folder(out, 3), out / "checkpoints" / ".step-0000003.0123abcd.tmp")
    (out / "checkpoints" / ".step-0000004.89abcdef.tmp").mkdir()
    (out / ".best.deadbeef.tmp").mkdir()
    shutil.move(out / ckpt.BEST, out / ".best.feedf00d.old")  # the old best, moved aside; the new one lost
    train(_config(corpus_dir, out), resume=True, progress=False)  # resumes from step 2

    hidden = [p.name for p in [*out.iterdir(), *(out / "checkpoints").iterdir()] if p.name.startswith(".")]
    assert hidden == []
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step-0000002", "step-0000004"]
    assert (out / ckpt.BEST / ckpt.TRAINER_STATE).is_file()

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [entry["step"] for entry in lines if "train/block_loss" in entry]
    assert steps == [1, 2, 3, 4]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/block_loss")] == [1, 2, 3, 4]


def test_pruning_removes_partial_saves(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        (root / f"step-{step:07d}").mkdir(parents=True)
        (root / f"step-{step:07d}" / ckpt.TRAINER_STATE).write_text("{}")
    (root / ".step-0000004.0123abcd.tmp").mkdir()
    (root / ".step-0000004.0123abcd.tmp" / "model.safetensors").write_bytes(b"partial")
    ckpt.prune_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in root.iterdir()) == ["step-0000002", "step-0000003"]
