"""The one device rule of every entry point (the CLI's ``--device``, the demo, the DAW bridge, training and
evaluation): what "auto" means and how a named device is checked.

"auto" is this process's CUDA GPU when CUDA is available, else the CPU. Apple's MPS is used only when named:
the sampler has not been tested on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amt.errors import ConfigError

if TYPE_CHECKING:
    import torch

AUTO = "auto"
DEVICE_HELP = ("torch device: auto (a CUDA GPU when present, else the CPU), cpu, cuda, cuda:1 ... "
               "(default: auto)")
"""The words of every ``--device`` flag."""


def resolve_device(name: str | None = AUTO, local_rank: int = 0) -> torch.device:
    """The torch device for ``name`` (None or "auto": see the module docstring); under torchrun a plain
    "cuda" means this process's GPU (``local_rank``). Raises ConfigError for a device that is not there."""
    import torch

    if name is None or name == AUTO:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available here")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
