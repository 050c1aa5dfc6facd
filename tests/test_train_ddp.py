"""Data-parallel training, the path users take to several GPUs, run on the CPU: two processes under
``torch.distributed.run`` (torchrun) with the gloo backend, through ``amt train`` itself.

Each process runs ``amt.cli.main(["train", ...])`` with the training loss module wrapped so that it records
the batches it trains on and keeps the model; when training ends each writes what it saw and its final
weights, and the test checks that the two saw different sequences and ended with identical weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from amt.models import create_model, load_model
from amt.tokenization.corpus import prepare_corpus
from amt.training import checkpoint as ckpt
from amt.training.config import load_config

from conftest import REFERENCE_DIR

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
STEPS = 3

RANK_SCRIPT = """
import os, sys
import torch
from safetensors.torch import save_file
from amt.cli import main
from amt.training import train

batches, models = [], []


class Recording(train.LanguageModelLoss):
    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        models.append(model)

    def forward(self, tokens):
        batches.append(tokens.detach().clone())
        return super().forward(tokens)


train.LanguageModelLoss = Recording
status = main(sys.argv[2:])
weights = {"weight." + k: v.detach().clone().contiguous() for k, v in models[0].state_dict().items()}
save_file({**weights, "batches": torch.stack(batches)}, f"{sys.argv[1]}/rank{os.environ['RANK']}.safetensors")
sys.exit(status)
"""


@pytest.mark.slow
def test_two_processes_train_on_different_data_into_identical_weights(tmp_path):
    corpus = tmp_path / "corpus"
    prepare_corpus(sorted(REFERENCE_DIR.glob("*.mid")), corpus, workers=1, progress=False)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path), "train", "--config", str(CONFIGS / "tiny.yaml"), "--corpus",
               str(corpus), "--out", str(out), "--steps", str(STEPS), "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    ranks = [load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1)]
    seen = [r["batches"] for r in ranks]
    assert seen[0].shape[0] == seen[1].shape[0] == STEPS
    # Different data: no sequence trained on by one process is among the other's.
    rows = [{tuple(row.tolist()) for row in batches.flatten(0, 1)} for batches in seen]
    assert rows[0] and rows[1] and not rows[0] & rows[1]
    # Identical weights, equal to the checkpoint the run wrote.
    names = [k for k in ranks[0] if k.startswith("weight.")]
    assert names and all(torch.equal(ranks[0][k], ranks[1][k]) for k in names)
    saved = load_model(ckpt.step_folder(out, STEPS)).state_dict()
    assert all(torch.equal(saved[k.removeprefix("weight.")], ranks[0][k]) for k in names)
    # ... and moved from the initial ones: the two processes did train.
    config = load_config(CONFIGS / "tiny.yaml")
    torch.manual_seed(config.train.seed)
    initial = create_model(config.model_config()).state_dict()
    assert not all(torch.equal(initial[k.removeprefix("weight.")], ranks[0][k]) for k in names)
