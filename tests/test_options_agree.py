"""One declaration of the sampling options (``amt.sampling.options``): the command line, the bridge's pydantic
model and the demo's controls take each option's default and range from it, and agree with it."""

from __future__ import annotations

import argparse
import math

import pydantic
import pytest

from amt.errors import GenerationError
from amt.sampling.cli import _add_common, options_from_args
from amt.sampling.options import SamplingOptions, bounds, option, option_fields

NOT_IN_BRIDGE = {"grid": "the request's own grid, in beats", "file_grid": "the request's grid is explicit",
                 "max_instruments": "a DAW asks for instruments", "max_seconds": "the bridge's own Limits"}
"""Options the bridge's ``Sampling`` leaves out, and why."""
NOT_IN_DEMO = {"seed": "a text box (empty: random)", "instruments": "a dropdown of names",
               "pitch_range": "not offered", "max_instruments": "not offered", "polyphony": "not offered",
               "grid": "a dropdown (GRIDS)", "beat_parallels": "not offered", "file_grid": "grid 'off'",
               "candidates": "not offered", "max_seconds": "the demo's own MAX_PIECE_SECONDS"}
"""Options the demo's ``Request`` leaves out or shows in a form of its own, and why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    _add_common(parser)
    return parser


def _outside(name: str) -> list:
    """Values just outside option ``name``'s declared range."""
    declared = option(name)
    low = declared.low if declared.low_open else declared.low - (1 if isinstance(declared.low, int) else 1e-3)
    values = [low]
    if declared.high is not None and math.isfinite(declared.high):
        values.append(declared.high + (1 if isinstance(declared.low, int) else 1e-3))
    return values


def test_every_option_has_a_range_or_is_checked_by_hand_and_a_help_text():
    for name, default, declared in option_fields():
        assert declared.help, name
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric or name in ("density", "polyphony", "seed", "grid"):
            assert declared.low is not None, f"{name} has no declared range"
            for bad in _outside(name):
                with pytest.raises(GenerationError, match=name):
                    SamplingOptions(**{name: bad}).validate()


def test_cli_flags_are_the_options_with_their_defaults():
    parser = _parser()
    dests = {action.dest for action in parser._actions}
    for name, _, declared in option_fields():
        assert (declared.flag is None) == (name not in dests), f"{name}: flag and declaration disagree"
    args = parser.parse_args(["in.mid"])
    assert options_from_args(args) == SamplingOptions()  # no flag given: every declared default
    given = parser.parse_args(["in.mid", "--top-p", "0.5", "--no-file-density", "--grid", "off",
                               "--key-weight", "1", "--instruments", "40", "41", "--pitch-range", "40-80"])
    assert options_from_args(given) == SamplingOptions(top_p=0.5, file_density=False, grid=None,
                                                       file_grid=False, key_weight=1.0, instruments=[40, 41],
                                                       pitch_range=(40, 80))
    for name, _, declared in option_fields():
        if declared.flag is not None and declared.low is not None:
            flag = declared.flag or "--" + name.replace("_", "-")
            for bad in _outside(name):
                with pytest.raises(GenerationError, match=name):
                    options_from_args(parser.parse_args(["in.mid", "--monophonic", "--no-parallels", flag,
                                                         str(bad)]))


def test_bridge_fields_take_default_and_range_from_the_options():
    from amt.plugins.protocol import Sampling

    bridge = Sampling.model_fields
    for name, default, _ in option_fields():
        if name in NOT_IN_BRIDGE:
            assert name not in bridge
            continue
        assert name in bridge, f"the bridge lacks {name}"
        assert bridge[name].default == default, name
        limits = {k: getattr(m, k) for m in bridge[name].metadata for k in ("gt", "ge", "le")
                  if getattr(m, k, None) is not None}
        assert limits == {k: v for k, v in bounds(name).items() if k != "default"}, name
        if option(name).low is not None:
            for bad in _outside(name):
                with pytest.raises(pydantic.ValidationError, match=name):
                    Sampling(**{name: bad})
    assert set(bridge) - {name for name, _, _ in option_fields()} == {"variations"}
    assert Sampling().options() == SamplingOptions()
    with pytest.raises(pydantic.ValidationError, match="set monophonic"):  # validate's rules, once
        Sampling(legato=True)


def test_demo_controls_take_default_and_range_from_the_options():
    from amt.demo.callbacks import Request, sampling_options

    fields = set(Request.__dataclass_fields__)
    for name, default, declared in option_fields():
        if name in NOT_IN_DEMO:
            continue
        assert name in fields, f"the demo lacks {name}"
        assert getattr(Request, name) == (0.0 if name == "density" else default), name
        if declared.slider is not None:
            low, high, _ = declared.slider
            inside = low > declared.low if declared.low_open else low >= declared.low
            # Every slider position is a valid value (the density's 0 means "no target").
            assert (inside or (name == "density" and low == 0)) and high <= declared.high, name
    options = sampling_options(Request(task="accompany"), seed=1)
    assert options == SamplingOptions(seed=1)


def test_to_dict_and_from_dict_round_trip_and_name_unknown_keys():
    options = SamplingOptions(seed=3, instruments=(40, 41), pitch_range=(30, 90), density=2.0)
    values = options.to_dict()
    assert values["instruments"] == [40, 41] and values["pitch_range"] == [30, 90]
    back = SamplingOptions.from_dict(values)
    assert back.to_dict() == values and back.pitch_range == (30, 90)
    with pytest.raises(GenerationError, match="unknown sampling option 'temprature'"):
        SamplingOptions.from_dict({"temprature": 1.0})
