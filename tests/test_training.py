"""Training end to end on CPU: the tiny config learns, resume is exact, checkpoints and configs behave.

Uses a corpus prepared from the reference MIDI files (tests/data/reference). All four land in the "train"
split (the split is a function of the file hash), so validation falls back to other windows of the training
pieces.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from amt.cli import main
from amt.errors import ConfigError
from amt.models import load_model
from amt.tokenization.corpus import Corpus, prepare_corpus
from amt.tokenization.vocab import ATIME_OFFSET, MAX_TIME, REST_INTERVAL, SEPARATOR, VOCAB_SIZE
from amt.training import checkpoint as ckpt
from amt.training.blocks import BLOCK_TOKENS, EVENT_NOTE, TIME, block_cross_entropy, target_blocks
from amt.training.config import config_from_dict, load_config
from amt.training.data import SequenceBuilder
from amt.training.train import LanguageModelLoss, lr_at, parameter_groups, train

from conftest import REFERENCE_DIR as REFERENCE

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "reference"
    prepare_corpus(sorted(REFERENCE.glob("*.mid")), out, workers=1, progress=False)
    return out


def tiny(corpus_dir: Path, out: Path, **train) -> object:
    config = load_config(CONFIGS / "tiny.yaml")
    config.data.corpus = str(corpus_dir)
    config.train.out = str(out)
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def step_losses(out: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {entry["step"]: entry["train/block_loss"] for entry in lines if "train/block_loss" in entry}


def test_every_shipped_config_loads():
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = load_config(path)
        config.model_config()
        assert load_config(path.stem).to_dict() == config.to_dict()  # by name too
    assert {p.stem for p in CONFIGS.glob("*.yaml")} >= {"tiny", "default", "amt-small", "amt-medium",
                                                        "amt-large", "finetune"}


@pytest.fixture(scope="module")
def trained(corpus_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "tiny"
    config = tiny(corpus_dir, out, steps=10, batch_size=2, eval_every=5, save_every=5, eval_sequences=2)
    return out, train(config, progress=False)


def test_tiny_config_trains_and_validation_loss_goes_down(trained):
    out, summary = trained
    losses = [entry["valid/loss"] for entry in summary["valid"]]
    assert len(losses) == 2
    assert losses[1] < losses[0] < math.log(VOCAB_SIZE)
    # Trained on the block loss, the best model is chosen by the validation block loss, which is never
    # above the full-vocabulary loss of the same step.
    block = [entry["valid/block_loss"] for entry in summary["valid"]]
    assert block[1] < block[0] and all(b <= f for b, f in zip(block, losses, strict=True))
    assert summary["best_valid_loss"] == min(block)
    # The run folder: a loadable best model and the last checkpoints with optimizer state.
    best = load_model(out / "best")
    assert best.num_parameters() > 0
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step-0000005", "step-0000010"]
    last = ckpt.list_checkpoints(out)[-1]
    assert (last / ckpt.OPTIMIZER_TENSORS).is_file() and (last / "model.safetensors").is_file()
    assert ckpt.read_trainer_state(last)["step"] == 10
    assert (out / "tensorboard").is_dir()


@pytest.mark.parametrize("structured_embedding", [False, True])
def test_resume_continues_exactly(corpus_dir, tmp_path, structured_embedding):
    settings = dict(steps=4, batch_size=2, log_every=1, eval_every=4, save_every=2, eval_sequences=1,
                    structured_embedding=structured_embedding)
    whole = tmp_path / "whole"
    train(tiny(corpus_dir, whole, **settings), progress=False)
    split = tmp_path / "split"
    train(tiny(corpus_dir, split, **settings), max_steps=2, progress=False)
    assert [p.name for p in ckpt.list_checkpoints(split)] == ["step-0000002"]
    train(tiny(corpus_dir, split, **settings), resume=True, progress=False)
    a, b = step_losses(whole), step_losses(split)
    assert sorted(b) == [1, 2, 3, 4]
    for step in range(1, 5):
        assert abs(a[step] - b[step]) <= 1e-6, (step, a[step], b[step])
    wa = load_model(ckpt.step_folder(whole, 4)).state_dict()
    wb = load_model(ckpt.step_folder(split, 4)).state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_init_starts_from_a_trained_model(trained, corpus_dir, tmp_path):
    settings = dict(steps=1, batch_size=2, eval_every=1, save_every=1, log_every=1, eval_sequences=1)
    scratch, tuned = tmp_path / "scratch", tmp_path / "tuned"
    train(tiny(corpus_dir, scratch, **settings), progress=False)
    train(tiny(corpus_dir, tuned, **settings), init=str(trained[0] / "best"), progress=False)
    assert step_losses(tuned)[1] < step_losses(scratch)[1] - 0.5


def test_block_loss_is_the_cross_entropy_renormalised_over_the_block(corpus_dir):
    builder = SequenceBuilder(Corpus(corpus_dir), np.arange(4), seed=0)
    tokens = torch.from_numpy(np.stack([builder.build(i) for i in range(2)]))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    torch.manual_seed(0)
    hidden, weight = torch.randn(2, inputs.shape[1], 8), torch.randn(VOCAB_SIZE, 8)
    logits = (hidden @ weight.T).reshape(-1, VOCAB_SIZE)
    blocks, flat_targets = target_blocks(inputs).reshape(-1), targets.reshape(-1)
    # Reference: the full logits with every token outside the position's block masked to -inf, and in the
    # time block the onsets that break time order, found by walking each sequence.
    allowed = torch.zeros(len(BLOCK_TOKENS), VOCAB_SIZE, dtype=torch.bool)
    for block, block_tokens in enumerate(BLOCK_TOKENS):
        allowed[block, block_tokens] = True
    allowed = allowed[blocks]
    for row, sequence in enumerate(inputs.tolist()):
        event, control = 0, 0
        for t, token in enumerate(sequence):
            if token == SEPARATOR:
                event, control = 0, 0
            elif token < MAX_TIME:
                event = token
            elif ATIME_OFFSET <= token < ATIME_OFFSET + MAX_TIME:
                control = token - ATIME_OFFSET
            position = row * inputs.shape[1] + t
            if blocks[position] == TIME:
                allowed[position, :event] = False
                allowed[position, event + REST_INTERVAL + 1:MAX_TIME] = False
                allowed[position, ATIME_OFFSET:ATIME_OFFSET + control] = False
    assert allowed[torch.arange(len(flat_targets)), flat_targets].all(), \
        "every target lies in the block and time window predicted for its position"
    masked = logits.masked_fill(~allowed, -math.inf)
    expected = F.cross_entropy(masked, flat_targets)
    got = block_cross_entropy(hidden, weight, inputs, targets)
    assert torch.allclose(got, expected, rtol=1e-5)
    assert got < F.cross_entropy(logits, flat_targets)
    with pytest.raises(ValueError, match="outside"):
        block_cross_entropy(hidden, weight, inputs, torch.roll(targets, 1, dims=1))
    # An event onset 100 s after the previous one is outside the grammar too (the early onsets of a
    # sequence are seconds from its start).
    second_event = 1 + 3 * int(np.flatnonzero(tokens[0, 1::3] < MAX_TIME)[1])
    far_ahead = targets.clone()
    far_ahead[0, second_event - 1] = MAX_TIME - 1
    with pytest.raises(ValueError, match="time order"):
        block_cross_entropy(hidden, weight, inputs, far_ahead)


def test_note_loss_weight_counts_each_event_note_target_that_many_times(corpus_dir):
    from amt.models import create_model, tiny_config

    builder = SequenceBuilder(Corpus(corpus_dir), np.arange(4), seed=0)
    tokens = torch.from_numpy(np.stack([builder.build(i) for i in range(2)]))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    torch.manual_seed(0)
    model = create_model(tiny_config())
    per_target = block_cross_entropy(model.hidden_states(inputs), model.output_weight(), inputs, targets,
                                     reduction="none")
    notes = target_blocks(inputs) == EVENT_NOTE
    assert 0 < int(notes.sum()) < notes.numel()
    plain = LanguageModelLoss(model, block_logits=True)(tokens)
    weighted = LanguageModelLoss(model, block_logits=True, note_weight=3.0)(tokens)
    assert torch.allclose(plain, per_target.mean(), rtol=1e-5)
    expected = (per_target.sum() + 2 * per_target[notes].sum()) / per_target.numel()
    assert torch.allclose(weighted, expected, rtol=1e-5)
    assert weighted > plain


def test_weight_decay_skips_norms_biases_and_embeddings():
    from amt.models import create_model, tiny_config

    model = create_model(tiny_config())
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() == 2 and "wte" not in names[id(p)] and "wpe" not in names[id(p)]
               for p in decay["params"])
    assert any("ln_" in names[id(p)] for p in no_decay["params"])
    assert any("wte" in names[id(p)] for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_schedule_warms_up_then_decays():
    config = config_from_dict({"optim": {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10},
                               "train": {"steps": 110}})
    lrs = [lr_at(s, config) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(b <= a for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    tensors, groups = ckpt.optimizer_to_files(optimizer)
    json.dumps(groups)
    restored = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=0.5)
    restored.load_state_dict(ckpt.optimizer_from_files(tensors, json.loads(json.dumps(groups))))
    before, after = optimizer.state_dict()["state"], restored.state_dict()["state"]
    for a, b in zip(before.values(), after.values(), strict=True):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
    assert restored.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("text, message", [
    ("train: {steps: 10, stepz: 3}", "unknown key(s) in train: stepz"),
    ("train: {steps: ten}", "train.steps"),
    ("optim: {lr: -1}", "lr"),
    ("model: {model_type: gpt2, n_embed: 64}", "unknown model key(s) n_embed"),
    ("model: {model_type: lstm}", "model_type"),
    ("data: {corpus: 3}", "data.corpus"),
    ("data: {source_weights: [3]}", "data.source_weights: expected a mapping"),
    ("data: {source_weights: {bach_chorales/: -1}}", "source_weights must be finite numbers >= 0"),
    ("data: {source_weights: {bach_chorales/: many}}", "data.source_weights"),
    ("data: {transpose: 30}", "transpose must be between 0 and 24 semitones"),
    ("data: {transpose: 2.5}", "data.transpose: expected int"),
    ("train: {note_loss_weight: 0}", "note_loss_weight must be > 0"),
    ("train: {note_loss_weight: 2, block_logits: false}", "note_loss_weight needs block_logits"),
    ("[1, 2]", "mapping"),
    ("train: {steps: [", "not valid YAML"),
])
def test_bad_configs_raise_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as error:
        load_config(path)
    assert message in str(error.value)


def test_cli_reports_missing_config_and_corpus(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "training config not found" in capsys.readouterr().err
    assert main(["train", "--config", str(CONFIGS / "tiny.yaml"), "--corpus", str(tmp_path / "none")]) == 2
    assert "corpus folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--config", str(CONFIGS / "tiny.yaml"), "--corpus", str(tmp_path / "empty")]) == 2
    assert "not a corpus folder" in capsys.readouterr().err


def test_cli_trains_and_resumes(corpus_dir, tmp_path, capsys):
    args = ["train", "--config", str(CONFIGS / "tiny.yaml"), "--corpus", str(corpus_dir),
            "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress"]
    assert main(args) == 0
    assert "trained to step 1" in capsys.readouterr().out
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    # Resuming a finished run trains nothing more and says so.
    assert main([*args, "--resume"]) == 0
    assert "trained to step 1" in capsys.readouterr().out


def test_cli_trains_a_second_stage_named_by_then(corpus_dir, tmp_path, capsys):
    settings = "steps: 1, batch_size: 2, eval_every: 1, save_every: 1, log_every: 1, eval_sequences: 1"
    second = tmp_path / "second.yaml"
    second.write_text(f"model: {{model_type: gpt2, n_embd: 64, n_layer: 2, n_head: 2}}\n"
                      f"train: {{{settings}, seed: 3, out: {tmp_path / 'stage2'}, init: no/such/model}}\n")
    first = tmp_path / "first.yaml"
    first.write_text(f"model: {{model_type: gpt2, n_embd: 64, n_layer: 2, n_head: 2}}\n"
                     f"train: {{{settings}, then: {second}}}\n")
    assert main(["train", "--config", str(first), "--corpus", str(corpus_dir), "--out",
                 str(tmp_path / "stage1"), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("trained to step 1") == 2
    # The second stage started from the first's best model (its own init is replaced), not from scratch.
    stage1 = load_model(tmp_path / "stage1" / "best").state_dict()
    start = load_model(ckpt.step_folder(tmp_path / "stage2", 1)).state_dict()
    assert all(a.shape == b.shape for a, b in zip(stage1.values(), start.values(), strict=True))
    drift = max(float((stage1[k] - start[k]).abs().max()) for k in stage1)
    assert 0 < drift < 1e-3  # one warm-up step of AdamW away (lr 3e-4), far closer than a fresh model
    # --then none stops after the first config.
    assert main(["train", "--config", str(first), "--corpus", str(corpus_dir), "--out",
                 str(tmp_path / "alone"), "--then", "none", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("trained to step 1") == 1
    # A chain that comes back to a config it has trained is refused before anything trains.
    second.write_text(f"train: {{{settings}, then: {first}}}\n")
    assert main(["train", "--config", str(first), "--corpus", str(corpus_dir), "--no-progress"]) == 2
    assert "leads back to" in capsys.readouterr().err
