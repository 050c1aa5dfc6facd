"""A few bytes of MIDI can span hours of music: the music to write is capped (``max_seconds``, the CLI's
``--max-seconds``), and a longer span is refused at once with an error that says how to raise the cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amt.cli import main
from amt.errors import GenerationError
from amt.models import create_model, save_model, tiny_config
from amt.sampling import SamplingOptions, accompany, continue_piece
from amt.sampling.options import DEFAULT_MAX_SECONDS
from amt.tokenization.midi import read_midi, write_midi
from amt.tokenization.vocab import DUR_OFFSET, MAX_PITCH, NOTE_OFFSET, TIME_OFFSET, TIME_RESOLUTION

torch.set_num_threads(1)
HOURS = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(tiny_config())


@pytest.fixture(scope="module")
def hours_long(tmp_path_factory):
    """A violin note at the start and one three hours later: a file of a few dozen bytes."""
    path = tmp_path_factory.mktemp("midi") / "hours.mid"
    onsets = np.array([0, HOURS * 3600 * TIME_RESOLUTION])
    events = np.stack([onsets + TIME_OFFSET, np.full(2, 50 + DUR_OFFSET),
                       np.full(2, NOTE_OFFSET + 40 * MAX_PITCH + 67)], 1)
    write_midi(path, events)
    assert path.stat().st_size < 3000
    return path


def test_accompanying_hours_of_music_is_refused_before_generating(model, hours_long):
    written = []

    def count(variation, event, fraction):
        written.append(event)
        if len(written) > 100:
            raise AssertionError("the sampler is writing the hours of music")

    with pytest.raises(GenerationError, match="max_seconds"):
        accompany(model, read_midi(hours_long), keep_instruments=[40], callback=count)
    assert written == []


def test_the_cap_can_be_raised(model, hours_long):
    midi = read_midi(hours_long)
    with pytest.raises(GenerationError, match="max_seconds"):
        continue_piece(model, midi, seconds=2, options=SamplingOptions(max_seconds=1, seed=0))
    [generation] = continue_piece(model, midi, seconds=2, options=SamplingOptions(max_seconds=2, seed=0))
    assert len(generation.midi.events) >= 2
    with pytest.raises(GenerationError, match="max_seconds"):
        SamplingOptions(max_seconds=0).validate()
    assert DEFAULT_MAX_SECONDS < HOURS * 3600


def test_cli_names_the_flag_and_writes_nothing(model, hours_long, tmp_path, capsys):
    save_model(model, tmp_path / "model")
    out = tmp_path / "out.mid"
    assert main(["accompany", str(hours_long), "--keep-instrument", "40", "--model", str(tmp_path / "model"),
                 "--out", str(out), "--device", "cpu"]) == 2
    assert "--max-seconds" in capsys.readouterr().err
    assert not out.exists()
