"""The teacher-forced diagnosis on a model that knows nothing (uniform) and a tiny synthetic chorale."""

from __future__ import annotations

import torch
from test_harmonyprior import triad_chorale

from amt.tokenization.vocab import VOCAB_SIZE
from amt.training.diagnose import PREDICTORS, format_summary, score_chorale, summarise
from amt.training.harmonyprior import count_chorales


class Uniform(torch.nn.Module):
    """Every logit zero: each grammar block uniform."""

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*input_ids.shape, 4)

    def output_weight(self) -> torch.Tensor:
        return torch.zeros(VOCAB_SIZE, 4)


def test_uniform_model_scores_as_uniform_and_the_prior_beats_it():
    chorale = triad_chorale({"soprano": 64, "alto": 67, "tenor": 60, "bass": 48})
    prior = count_chorales([chorale])
    summary = summarise([score_chorale(Uniform(), chorale, prior)])
    assert summary["notes"] == 8 * 3
    assert abs(summary["bits"]["pitch given voice"] - 7.0) < 1e-4  # 128 equally likely pitches
    assert summary["beat_notes"] == 24
    predictors = summary["predictors"]
    assert set(predictors) == set(PREDICTORS)
    assert predictors["prior"]["bits"] < predictors["model"]["bits"]
    assert predictors["model x prior"]["bits"] < predictors["model"]["bits"]
    assert predictors["model x chord weight"]["bits"] <= predictors["model"]["bits"]
    # Uniform over pitches: the chord tones get their share of the 128 pitches, not more.
    mass = summary["strong beats"]["model mass on chord tones"]
    assert 0 < mass < 1 and summary["strong beats"]["Bach's notes that are chord tones"] == 1.0
    assert "model x prior" in format_summary(summary)


def test_command_line_refuses_a_folder_that_is_no_conversion(tmp_path, capsys):
    from pathlib import Path

    from amt.training.diagnose import main

    model = Path(__file__).resolve().parents[1] / "amt" / "checkpoints" / "default"
    assert main([str(model), str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert "not a music21 conversion manifest" in error and error.count("\n") == 1
