"""One device rule: every entry point's --device means the same, and "auto" picks a CUDA GPU when present."""

from __future__ import annotations

import pytest
import torch

from amt.cli import build_parser
from amt.device import AUTO, resolve_device
from amt.errors import ConfigError


def test_auto_is_cuda_when_present_else_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(AUTO) == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(AUTO) == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="nonsense"):
        resolve_device("nonsense")


@pytest.mark.parametrize("command", ["accompany", "infill", "continue", "demo", "serve"])
def test_every_device_flag_defaults_to_auto(command):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    (device,) = [a for a in sub._actions if a.dest == "device"]
    assert device.default == AUTO and "CUDA GPU when present" in device.help
