"""Conditional generation with an anticipatory language model: accompany, infill, continue.

    from amt.models import load_model
    from amt.sampling import Request, SamplingOptions, run
    from amt.tokenization.midi import read_midi

    model = load_model("stanford-crfm/music-small-800k")
    request = Request("accompany", keep_parts=[1],  # part numbers: see `amt info song.mid`
                      options=SamplingOptions(seed=1), variations=4)
    out = run(model, read_midi("song.mid"), request)  # one Generation per variation
    out[0].midi.write("song-1.mid")  # kept notes tick-exact on their tracks; new parts on tracks of their own

``run`` is the one entry point every front end calls (``accompany``, ``infill`` and ``continue_piece`` are
the task functions it picks). ``generate`` is the engine under the tasks: event prompt + anticipated
controls in, new notes out. Names are imported on first use, so that ``amt.sampling.cli`` (imported by
``amt --help``) stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "SamplingOptions": "amt.sampling.options",
    "Callback": "amt.sampling.sampler",
    "generate": "amt.sampling.sampler",
    "Generation": "amt.sampling.tasks",
    "Request": "amt.sampling.tasks",
    "Span": "amt.sampling.tasks",
    "run": "amt.sampling.tasks",
    "accompany": "amt.sampling.tasks",
    "continue_piece": "amt.sampling.tasks",
    "infill": "amt.sampling.tasks",
}

if TYPE_CHECKING:
    from amt.sampling.options import SamplingOptions
    from amt.sampling.sampler import Callback, generate
    from amt.sampling.tasks import Generation, Request, Span, accompany, continue_piece, infill, run


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'amt.sampling' has no attribute {name!r}")


__all__ = ["Callback", "Generation", "Request", "SamplingOptions", "Span", "accompany", "continue_piece",
           "generate", "infill", "run"]
