"""`amt eval`: the metrics' arithmetic, the table and JSON, determinism, and clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from amt.cli import main
from amt.models import create_model, tiny_config
from amt.tokenization.corpus import prepare_corpus
from amt.tokenization.vocab import ATIME_OFFSET, DUR_OFFSET, NOTE_OFFSET, REST, SEPARATOR, VOCAB_SIZE
from amt.training.evaluate import Tally, format_table, token_kinds

from conftest import REFERENCE_DIR as REFERENCE


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    prepare_corpus(sorted(REFERENCE.glob("*.mid")), root / "corpus", workers=1, progress=False)
    torch.manual_seed(0)
    create_model(tiny_config()).save_pretrained(root / "model")
    return root / "corpus", root / "model"


def test_tally_arithmetic():
    # One event triple (onset, duration, note), a control time and a separator.
    targets = np.array([[5, DUR_OFFSET + 3, NOTE_OFFSET + 60, ATIME_OFFSET, SEPARATOR, REST]])
    nll = np.array([[1.0, 2.0, 3.0, 10.0, 0.0, 0.5]])
    assert token_kinds(targets).tolist() == [[0, 1, 2, -1, -1, 2]]
    tally = Tally()
    tally.add(nll, targets)
    metrics = tally.metrics()
    assert metrics["tokens"] == 6 and metrics["events"] == 2
    assert metrics["loss_per_token"] == pytest.approx(16.5 / 6)
    assert metrics["bits_per_event"] == pytest.approx(6.5 / 2 / math.log(2))
    assert metrics["perplexity_onset"] == pytest.approx(math.e)
    assert metrics["perplexity_note"] == pytest.approx(math.exp(1.75))
    assert "nan" in format_table({"empty": {"sequences": 0, **Tally().metrics()}})


def test_eval_prints_table_and_writes_json(setup, tmp_path, capsys):
    corpus, model = setup
    args = ["eval", str(model), "--corpus", str(corpus), "--split", "train", "--sequences", "2",
            "--batch-size", "2"]
    assert main([*args, "--json", str(tmp_path / "a.json")]) == 0
    table = capsys.readouterr().out
    assert "bits/event" in table and "ppl onset" in table
    assert any(line.startswith("plain") for line in table.splitlines())
    assert any(line.startswith("anticipate") for line in table.splitlines())
    report = json.loads((tmp_path / "a.json").read_text())
    assert set(report["conditions"]) == {"plain", "anticipate"}
    for metrics in report["conditions"].values():
        assert metrics["tokens"] == 2 * 1023
        # An untrained model is close to uniform over the vocabulary.
        assert abs(metrics["loss_per_token"] - math.log(VOCAB_SIZE)) < 0.5
        assert metrics["perplexity_onset"] > 1000
    # Deterministic: the same seed gives the same sequences and numbers.
    assert main([*args, "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text()) == report


def test_eval_errors_are_clear(setup, tmp_path, capsys):
    corpus, model = setup
    # The four reference files all hash into the train split: the test split is empty.
    assert main(["eval", str(model), "--corpus", str(corpus), "--split", "test"]) == 2
    assert "split 'test' has no pieces" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nomodel"), "--corpus", str(corpus), "--split", "train"]) == 2
    assert capsys.readouterr().err.startswith("amt eval: error:")
    assert main(["eval", str(model), "--corpus", str(tmp_path / "nocorpus")]) == 2
    assert "corpus folder not found" in capsys.readouterr().err
