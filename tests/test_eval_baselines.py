"""`amt eval --baseline ngram` and `amt eval --harmonize`: both systems on the same data, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

from amt.cli import main
from amt.models import create_model, tiny_config
from amt.sampling.options import BEAT_PARALLELS
from amt.tokenization import ops
from amt.tokenization.corpus import prepare_corpus
from amt.tokenization.midi import read_midi
from amt.tokenization.vocab import DUR_OFFSET, TIME_OFFSET
from amt.training import model_card
from amt.training.harmony import ROWS, VOICE_PROGRAMS, VOICES, WRITTEN

from conftest import REFERENCE_DIR as REFERENCE


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    torch.manual_seed(0)
    create_model(tiny_config()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus"
    prepare_corpus(sorted(REFERENCE.glob("*.mid")), path, workers=1, progress=False)
    return path


def _chorale(path: Path, *, transpose: int = 0, voices: tuple[str, ...] = VOICES) -> None:
    """BWV 66.6 (one track per voice, all on program 0) with its voices on the music21 programs 64-67."""
    score = symusic.Score(str(REFERENCE / "bach_bwv66.6.mid"))
    for track in score.tracks:
        track.program = VOICE_PROGRAMS[track.name.lower()]
        track.shift_pitch(transpose, inplace=True)
    score.tracks = [t for t in score.tracks if t.name.lower() in voices]
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


def _conversion(root: Path, files: dict[str, str]) -> Path:
    """A folder laid out like a music21 conversion: manifest.json, split.json (``files``: path -> split)."""
    records = [{"path": p, "source": p.split("/")[0], "split": split} for p, split in files.items()]
    (root / "manifest.json").write_text(json.dumps({"files": records}))
    splits = {s: [p for p, split in files.items() if split == s] for s in ("train", "valid", "test")}
    (root / "split.json").write_text(json.dumps(splits))
    return root


def test_ngram_baseline_scores_the_same_sequences(model, corpus, tmp_path, capsys):
    out = tmp_path / "eval.json"
    # All four reference files hash into the train split, so the n-gram is scored on what it counted.
    assert main(["eval", str(model), "--corpus", str(corpus), "--split", "train", "--sequences", "2",
                 "--batch-size", "2", "--baseline", "ngram", "--ngram-order", "3", "--ngram-sequences", "8",
                 "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for row in ("plain: model", "plain: 3-gram", "anticipate: model", "anticipate: 3-gram"):
        assert any(line.startswith(row) for line in lines), row
    report = json.loads(out.read_text())
    baseline = report["baseline"]
    assert baseline["name"] == "ngram" and baseline["order"] == 3 and baseline["fit_sequences"] == 8
    for condition in ("plain", "anticipate"):
        ours, theirs = report["conditions"][condition], baseline["conditions"][condition]
        # Same sequences: the same target tokens and events for both systems.
        assert ours["tokens"] == theirs["tokens"] and ours["events"] == theirs["events"]
        # An untrained network is near uniform over 55,028 tokens; counting the very same music beats it.
        assert theirs["bits_per_event"] < ours["bits_per_event"] - 10


def test_harmonize_prints_model_bach_and_random(model, tmp_path, capsys):
    root = tmp_path / "midi"
    _chorale(root / "bach_chorales" / "a.mid")
    _chorale(root / "bach_chorales" / "b.mid", transpose=-2)
    _chorale(root / "bach_chorales" / "c.mid", voices=("soprano", "alto", "bass"))  # no tenor: skipped
    _chorale(root / "bach_chorales" / "train.mid")
    _conversion(root, {"bach_chorales/a.mid": "test", "bach_chorales/b.mid": "test",
                       "bach_chorales/c.mid": "test", "bach_chorales/train.mid": "train"})
    out = tmp_path / "harmony.json"
    assert main(["eval", str(model), "--harmonize", str(root), "--samples", "1", "--json", str(out),
                 "--midi-out", str(tmp_path / "generated")]) == 0
    captured = capsys.readouterr()
    assert "| metric | model | Bach | random |" in captured.out
    for _, label, _ in ROWS:
        assert f"| {label} |" in captured.out
    assert "skipped 1 chorale(s)" in captured.err and "c.mid" in captured.err
    report = json.loads(out.read_text())["harmonization"]
    assert report["chorales"] == ["a.mid", "b.mid"] and report["samples"] == 2
    assert report["bach"]["chord_agreement"] == pytest.approx(1.0)
    # Random notes are drawn over Bach's compass, which reaches past the textbook ranges, and in key.
    assert 0 < report["random"]["out_of_range"] < 0.5 and report["random"]["in_key"] > 0.8
    assert "voice_coverage" not in report["closer_to_bach"] and isinstance(report["all_closer"], bool)
    assert report["pieces"] == 2 and report["random_samples"] == 6
    assert sorted(p.name for p in (tmp_path / "generated").iterdir()) == ["a-1.mid", "b-1.mid"]
    # The voices are sung: one note at a time each, each note held until the next, on the sixteenth grid.
    assert report["sampling"] == {"monophonic": True, "legato": True, "no_parallels": True,
                                  "beat_parallels": BEAT_PARALLELS, "grid": 4, "voice_density": None,
                                  "top_p": 0.6}
    generated = read_midi(tmp_path / "generated" / "a-1.mid")
    steps = generated.meta.grid_ticks(4, 100_000)
    programs = [VOICE_PROGRAMS[v] for v in WRITTEN]
    written = generated.events[np.isin(ops.instrument_of(generated.events[:, 2]), programs)]
    assert len(written) and np.isin(written[:, 0] - TIME_OFFSET, steps).all()
    for name in WRITTEN:
        voice = written[ops.instrument_of(written[:, 2]) == VOICE_PROGRAMS[name]]
        ends = voice[:, 0] - TIME_OFFSET + voice[:, 1] - DUR_OFFSET
        assert (voice[1:, 0] - TIME_OFFSET == ends[:-1]).all()
    # --limit 1 harmonises only the first chorale.
    assert main(["eval", str(model), "--harmonize", str(root), "--samples", "1", "--limit", "1",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["harmonization"]["chorales"] == ["a.mid"]
    # --split picks the chorales of another split (tuning on train or valid, never on test).
    assert main(["eval", str(model), "--harmonize", str(root), "--samples", "1", "--split", "train",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())["harmonization"]
    assert report["chorales"] == ["train.mid"] and report["split"] == "train"
    # --sampling changes a knob of the harmonisation's sampling, and the JSON says so.
    assert main(["eval", str(model), "--harmonize", str(root), "--samples", "1", "--limit", "1",
                 "--sampling", "top_p=0.9", "grid=null", "file_grid=false", "--json", str(out), "--midi-out",
                 str(tmp_path / "free")]) == 0
    report = json.loads(out.read_text())["harmonization"]
    assert report["sampling"]["top_p"] == 0.9 and report["sampling"]["grid"] is None
    free = read_midi(tmp_path / "free" / "a-1.mid")
    free = free.events[np.isin(ops.instrument_of(free.events[:, 2]), programs)]
    assert not np.isin(free[:, 0] - TIME_OFFSET, steps).all()  # off the sixteenth grid now
    section = model_card.evaluation_section([json.loads(out.read_text())])
    assert "1 test-split chorales" in section and "`top_p=0.9`" in section and "`grid=null`" in section


def test_bad_input_is_a_clear_error(model, corpus, tmp_path, capsys):
    def error(*args: str) -> str:
        assert main(["eval", str(model), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("amt eval: error:")
        return err

    assert "--corpus" in error()
    assert "--baseline needs --corpus" in error("--harmonize", str(tmp_path), "--baseline", "ngram")
    assert "folder not found" in error("--harmonize", str(tmp_path / "missing"))
    assert "no manifest.json" in error("--harmonize", str(tmp_path))
    root = tmp_path / "midi"
    _chorale(root / "bach_chorales" / "a.mid")
    _conversion(root, {"bach_chorales/a.mid": "train"})
    assert "its test split has no Bach chorales" in error("--harmonize", str(root))
    assert "its valid split has no Bach chorales" in error("--harmonize", str(root), "--split", "valid")
    _chorale(root / "bach_chorales" / "a.mid", voices=("soprano",))
    _conversion(root, {"bach_chorales/a.mid": "test"})
    assert "has all four voices" in error("--harmonize", str(root))
    assert "--samples must be >= 1" in error("--harmonize", str(root), "--samples", "0")
    assert "expected KEY=VALUE" in error("--harmonize", str(root), "--sampling", "top_p")
    assert "expected KEY=VALUE" in error("--harmonize", str(root), "--sampling", "seed=3")
    assert "not a JSON value" in error("--harmonize", str(root), "--sampling", "top_p=high")
    assert "top_p must be in (0, 1]" in error("--harmonize", str(root), "--sampling", "top_p=2")
    assert "set monophonic" in error("--harmonize", str(root), "--sampling", "monophonic=false")
    assert "voice_density must be" in error("--harmonize", str(root), "--sampling", "voice_density=-1")


def test_model_card_section_is_replaced_between_markers(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-0000004").mkdir(parents=True)
    (run / "checkpoints" / "step-0000004" / "trainer_state.json").write_text(
        json.dumps({"step": 4, "tokens": 4000}))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in [
        {"step": 2, "train/block_loss": 5.0, "train/tokens_per_s": 1.0},
        {"step": 4, "train/block_loss": 4.7, "train/tokens_per_s": 0.5},  # the run was stopped here ...
        {"step": 4, "train/block_loss": 4.5, "train/tokens_per_s": 2.0},  # ... and resumed from step 2
        {"step": 4, "valid/loss": 3.25, "valid/bits_per_event": 12.5}]) + "\n")
    metrics = {"bits_per_event": 9.5, "loss_per_token": 2.0, "perplexity_onset": 3.0,
               "perplexity_duration": 4.0, "perplexity_note": None}
    report = {"seed": 0, "corpus": "c", "split": "test", "sequences": 2,
              "conditions": {"plain": metrics, "anticipate": metrics},
              "baseline": {"order": 4, "fit_sequences": 10, "fit_split": "train",
                           "conditions": {"plain": {**metrics, "bits_per_event": 11.0},
                                          "anticipate": metrics}}}
    (tmp_path / "bits.json").write_text(json.dumps(report))
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# Card\n\n{model_card.START}\nold numbers\n{model_card.END}\n\n## Licence\n")
    assert model_card.main(["--card", str(card), "--run", str(run), str(tmp_path / "bits.json")]) == 0
    text = card.read_text()
    assert text.startswith("# Card\n") and text.endswith("## Licence\n") and "old numbers" not in text
    assert text.count(model_card.START) == 1
    assert "| optimizer steps | 4 |" in text and "| training tokens | 4,000 |" in text
    # 2 steps of 1,000 tokens at 1 token/s, then 2 at 2 tokens/s (the resumed run's line): 3,000 s.
    assert "| 0.83 h |" in text and "3.2500 (4)" in text
    assert "| plain (no controls) | model | 9.500 |" in text
    assert "| plain (no controls) | 4-gram baseline | 11.000 |" in text and "| - |" in text
    # 9.5 < 11 bits in the plain condition; a tie (9.5 = 9.5) with anticipation is not "below".
    assert "Model below the 4-gram in bits/event: 1 of 2 conditions (plain (no controls))." in text
    assert model_card.main(["--card", str(card), str(tmp_path / "missing.json")]) == 2
    # A run trained on the block loss is summarised by its validation block loss.
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "valid/loss": 3.0, "valid/bits_per_event": 12.0,
                            "valid/block_loss": 2.5, "valid/block_bits_per_event": 9.0}) + "\n")
        f.write(json.dumps({"step": 8, "valid/loss": 2.9, "valid/bits_per_event": 11.9,
                            "valid/block_loss": 2.6, "valid/block_bits_per_event": 9.1}) + "\n")
    assert model_card.main(["--card", str(card), "--run", str(run)]) == 0
    text = card.read_text()
    assert "| best validation block loss (grammar softmax) (step) | 2.5000 (6) |" in text
    assert "| validation bits/event at that step | 9.000 |" in text


def test_grammar_scorer_renormalises_over_each_block(model, corpus):
    from amt.models import load_model
    from amt.tokenization.corpus import Corpus
    from amt.training.blocks import block_cross_entropy
    from amt.training.data import SequenceBuilder
    from amt.training.evaluate import model_scorer

    net = load_model(model)
    data = Corpus(corpus)
    tokens = torch.from_numpy(SequenceBuilder(data, data.split("train"), seed=0).build(0))[None, :]
    full, grammar = model_scorer(net)(tokens), model_scorer(net, grammar=True)(tokens)
    assert grammar.shape == full.shape == (1, tokens.shape[1] - 1)
    # Mass moved off impossible tokens: never less likely, much more likely for an untrained model.
    assert (grammar <= full + 1e-4).all() and grammar.mean() < full.mean() - 1
    with torch.no_grad():
        hidden = net.hidden_states(tokens[:, :-1])
        mean = block_cross_entropy(hidden, net.output_weight(), tokens[:, :-1], tokens[:, 1:])
    assert grammar.mean() == pytest.approx(float(mean), rel=1e-5)
