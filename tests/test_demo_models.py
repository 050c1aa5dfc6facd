"""The demo's model picker: what it offers, and `amt demo --model A --model B`."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from amt.cli import build_parser
from amt.demo.app import model_choices
from amt.models import DEFAULT_MODEL, PUBLISHED_MODELS


def test_picker_offers_built_in_given_and_published_models_once(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    names = [str(DEFAULT_MODEL), str(folder), "stanford-crfm/music-small-800k", "someone/else"]
    choices = model_choices(names)
    values = [value for _, value in choices]
    assert len(values) == len(set(values))  # the built-in and a published model given again appear once
    labels = dict((value, label) for label, value in choices)
    if (DEFAULT_MODEL / "config.json").is_file():
        assert values[0] == str(DEFAULT_MODEL) and labels[str(DEFAULT_MODEL)] == "built-in model"
    assert labels[str(folder)] == f"mine ({folder})" and labels["someone/else"] == "someone/else"
    assert set(PUBLISHED_MODELS) <= set(values)
    assert labels["stanford-crfm/music-large-800k"] == ("stanford-crfm/music-large-800k (downloaded on first "
                                                         "use: 780 M parameters, about 3.1 GB)")


def test_demo_takes_several_models():
    args = build_parser().parse_args(["demo", "--model", "a", "--model", "b"])
    assert args.model == ["a", "b"]
    assert build_parser().parse_args(["demo"]).model is None
