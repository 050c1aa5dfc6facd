"""The accompaniment yardstick on small MIDI files written here: metrics, the melody rule, the rule and
random baselines, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amt.models import create_model, tiny_config
from amt.sampling.tonality import key_pitch_classes
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes, write_midi
from amt.training.accompaniment import (
    AccompanimentError,
    accompaniment_report,
    choose_melody,
    crop,
    format_accompaniment_table,
    load_pieces,
    rule_accompaniment,
    score,
)

META = MidiMeta(time_signatures=((0, 4, 4),))
TUNE = (72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 72, 79, 72)  # C major, one note a beat


def song(chords: bool = True, **kw):
    """Melody (program 73, a flute) over a bass (32) and an inner part (0): tonic and dominant harmony on
    every beat (``chords``), or a clashing cluster under it."""
    onsets, durations, pitches, programs = [], [], [], []
    for k, p in enumerate(TUNE):
        t = k * 0.5  # 120 bpm: a beat every half second
        tonic = p % 12 in (0, 4, 7)
        bass, inner = (48, 64) if tonic else (43, 65)
        if not chords:
            bass, inner = p - 13, p - 2
        for pitch, program in ((p, 73), (bass, 32), (inner, 0)):
            onsets.append(t)
            durations.append(0.5)
            pitches.append(pitch)
            programs.append(program)
    return midi_tokens_from_notes(np.array(onsets), np.array(durations), np.array(pitches),
                                  np.array(programs), meta=META, source="song.mid", **kw)


def metrics(piece, original=None):
    original = original or piece
    grid = META.grid_ticks(4, 2000)
    return score(piece, original, 73, key_pitch_classes(0, "major"), grid)


def test_metrics_of_a_clean_and_a_clashing_accompaniment():
    clean = metrics(song())
    assert clean["chord_fit"] == 1.0 and clean["in_key"] == 1.0 and clean["on_grid"] == 1.0
    assert clean["density"] == 1.0 and clean["below"] == 1.0
    clash = metrics(song(chords=False), song())
    assert clash["chord_fit"] < 0.2 and clash["in_key"] < 1.0


def test_melody_rule_crop_and_rule_baseline():
    piece = song()
    assert choose_melody(piece) == 73
    short = crop(piece, 2.0)
    assert (short.events[:, 0] - short.events[:, 0].min()).max() < 200
    rule = rule_accompaniment(piece, 73, (0, "major"))
    m = metrics(rule, piece)
    assert m["chord_fit"] == 1.0 and m["in_key"] == 1.0 and m["below"] == 1.0
    one_part = midi_tokens_from_notes(np.array([0.0, 0.5]), np.array([0.5, 0.5]), np.array([60, 62]),
                                      np.array([0, 0]), meta=META)
    with pytest.raises(AccompanimentError):
        choose_melody(one_part)


def test_report_from_a_folder_with_a_melody_file(tmp_path):
    piece = song()
    write_midi(tmp_path / "song.mid", piece.events, meta=piece.meta, velocities=piece.velocities)
    (tmp_path / "melody.json").write_text(json.dumps({"song.mid": 0}))  # the inner part, as given
    pieces = load_pieces(tmp_path)
    assert [m for _, m in pieces] == [0]
    pieces = [(p, 73) for p, _ in pieces]
    torch.manual_seed(0)
    report = accompaniment_report(create_model(tiny_config()), pieces, seconds=4.0, seed=1)
    assert set(report["mean"]) == {"original", "model", "rule", "random"}
    assert report["mean"]["original"]["chord_fit"] == 1.0
    assert report["mean"]["random"]["chord_fit"] < report["mean"]["rule"]["chord_fit"]
    assert "| beats where" in format_accompaniment_table(report)
