"""Training checkpoints: a Hugging Face model folder plus everything needed to resume exactly.

A checkpoint folder (``OUT/checkpoints/step-0001000``)::

    config.json, model.safetensors   the model, via ``save_pretrained`` (``amt.models.load_model`` reads it)
    optimizer.safetensors            AdamW moments and step counts, keyed ``state.<param>.<name>``
    optimizer.json                   AdamW hyper-parameters (param groups), plain JSON
    trainer_state.json               step, tokens seen, best validation loss, validation history, seed
    embedding_structure.safetensors  the structured embedding's parameters, when the run has one

No pickle is involved: checkpoints may be shared and ``torch.load`` of an untrusted file can run code, so
tensors go to safetensors and everything else to JSON. There is no RNG state to store: the training loop
seeds torch from ``(seed, step)`` before every step and the data are a function of ``(seed, index)``, so the
step counter *is* the RNG and data position. The learning-rate schedule is a function of the step too.

Folders are written under a temporary name in the same parent and renamed into place, so an interrupted
save never leaves a half-written checkpoint (a save killed part-way leaves a hidden temporary folder,
which the next run or pruning removes). ``OUT/best`` holds the model (and trainer state) with the lowest
validation loss so far.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from amt.errors import ConfigError
from amt.fileio import atomic_directory

CHECKPOINTS = "checkpoints"
BEST = "best"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_GROUPS = "optimizer.json"
STRUCTURE = "embedding_structure.safetensors"
_STEP_FOLDER = re.compile(r"^step-(\d+)$")
# atomic_directory's temporary names: ``.NAME.<8 hex>.tmp`` (being written) and ``.NAME.<8 hex>.old`` (the
# folder it replaces, until the new one is in place).
_PARTIAL_SAVE = re.compile(r"^\.(step-\d+|best)\.[0-9a-f]{8}\.(tmp|old)$")


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's ``state_dict`` into tensors (for safetensors) and JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors = {}
    for param, values in state["state"].items():
        for name, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{param}.{name}"] = tensor.detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_files(tensors: dict[str, torch.Tensor], groups: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_files`: an optimizer ``state_dict`` to pass to ``load_state_dict``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        _, param, name = key.split(".", 2)
        state.setdefault(int(param), {})[name] = tensor
    param_groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()}
                    for group in groups["param_groups"]]
    return {"state": state, "param_groups": param_groups}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_checkpoint(folder: str | os.PathLike, model, optimizer: torch.optim.Optimizer | None,
                    trainer_state: dict[str, Any], *, structure: dict[str, torch.Tensor] | None = None
                    ) -> Path:
    """Write a checkpoint folder atomically; ``optimizer`` None writes the model and trainer state only.
    ``structure``: the parameters of a structured embedding (``embedding.structure_state``), needed to
    resume such a run (the model file holds the materialised embedding)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        if structure is not None:
            save_file(structure, tmp / STRUCTURE)
        if optimizer is not None:
            tensors, groups = optimizer_to_files(optimizer)
            save_file(tensors, tmp / OPTIMIZER_TENSORS)
            _write_json(tmp / OPTIMIZER_GROUPS, groups)
        _write_json(tmp / TRAINER_STATE, trainer_state)
    return folder


def step_folder(out: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` lives under the run folder ``out``."""
    return Path(out) / CHECKPOINTS / f"step-{step:07d}"


def list_checkpoints(out: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, oldest step first."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_FOLDER.match(p.name)) and (p / TRAINER_STATE).is_file()]
    return [p for _, p in sorted(found)]


def remove_partial_saves(out: str | os.PathLike) -> None:
    """Delete what saves killed part-way (SIGKILL, power loss) left in a run folder: temporary checkpoint
    folders, which can hold gigabytes each. A folder moved aside to be replaced whose replacement never
    arrived (the kill struck between the two renames) is the only complete copy: it is put back instead."""
    out = Path(out)
    for root in (out, out / CHECKPOINTS):
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir(), key=lambda p: p.name.endswith(".tmp")):  # .old first
            match = _PARTIAL_SAVE.match(path.name)
            if not match:
                continue
            final = root / match.group(1)
            if match.group(2) == "old" and not final.exists():
                os.replace(path, final)
            else:
                shutil.rmtree(path, ignore_errors=True)


def prune_checkpoints(out: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints of a run, and any partial saves."""
    remove_partial_saves(out)
    for folder in list_checkpoints(out)[:-keep]:
        shutil.rmtree(folder)


def read_trainer_state(folder: str | os.PathLike) -> dict[str, Any]:
    """The trainer state of a checkpoint folder; raises ConfigError if it is missing or unreadable."""
    path = Path(folder) / TRAINER_STATE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the trainer state ({error})") from None


def load_optimizer_state(folder: str | os.PathLike) -> dict[str, Any]:
    """The optimizer ``state_dict`` stored in a checkpoint folder (safetensors + JSON, no pickle)."""
    folder = Path(folder)
    try:
        groups = json.loads((folder / OPTIMIZER_GROUPS).read_text(encoding="utf-8"))
        tensors = load_file(folder / OPTIMIZER_TENSORS)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{folder}: cannot read the optimizer state ({error})") from None
    return optimizer_from_files(tensors, groups)


def load_structure(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The structured-embedding parameters stored in a checkpoint folder; ConfigError when absent (the run
    was started without ``train.structured_embedding``)."""
    path = Path(folder) / STRUCTURE
    if not path.is_file():
        raise ConfigError(f"{folder}: no {STRUCTURE}: this run was not trained with a structured embedding "
                          "(set train.structured_embedding to what the run started with)")
    return load_file(path)
