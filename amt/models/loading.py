"""Model folders in the Hugging Face layout: ``config.json`` + ``model.safetensors`` (or sharded with
``model.safetensors.index.json``), read from a local path or downloaded by Hub id.

A folder (or Hub repository, like the published AMT models) that has only a pickled ``pytorch_model.bin`` is
read once with PyTorch's restricted loader (``torch.load(weights_only=True)``), which builds tensors and
refuses any other object without running it, and converted to safetensors in a local cache
(``weights_cache()``); later loads read the cached file. Nothing else is ever unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from amt.errors import ModelError
from amt.fileio import atomic_paths
from amt.models.base import CONFIG_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME, CausalLM
from amt.models.config import GPTConfig, MambaConfig, ModelConfig, config_from_dict
from amt.tokenization.vocab import VOCAB_SIZE

logger = logging.getLogger(__name__)

PICKLE_NAME = "pytorch_model.bin"
"""The pickled weights that transformers wrote before safetensors (what the published AMT models ship)."""
OTHER_PICKLES = ("pytorch_model.bin.index.json", "model.pt", "model.ckpt")
HUB_PATTERNS = [CONFIG_NAME, "*.safetensors", WEIGHTS_INDEX_NAME]
HUB_PICKLE_PATTERNS = [CONFIG_NAME, PICKLE_NAME]  # only when a repository has no safetensors weights
CACHE_ENV = "AMT_WEIGHTS_CACHE"
"""Environment variable naming the folder of converted weights (see ``weights_cache``)."""
MAX_CONFIG_BYTES = 1 << 20  # a config.json is ~1 KB; a bigger one is not a model config


def create_model(config: ModelConfig) -> CausalLM:
    """A randomly initialised model for ``config`` (a GPTConfig or MambaConfig)."""
    if isinstance(config, GPTConfig):
        from amt.models.gpt import GPT

        return GPT(config)
    if isinstance(config, MambaConfig):
        from amt.models.mamba import Mamba

        return Mamba(config)
    raise ModelError(f"create_model expects a GPTConfig or MambaConfig, got {type(config).__name__}")


def _model_class(config: ModelConfig) -> type[CausalLM]:
    if isinstance(config, GPTConfig):
        from amt.models.gpt import GPT

        return GPT
    from amt.models.mamba import Mamba

    return Mamba


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "\\" not in name


def resolve_folder(name_or_path: str | os.PathLike) -> Path:
    """The local folder of a model: ``name_or_path`` itself if it exists, else a Hub snapshot.

    Downloads (config and safetensors files only) happen only for a Hub id (``owner/name``) that is not a
    local path; ``HF_HUB_OFFLINE=1`` restricts this to the local Hub cache. Raises ModelError.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path} is a file; a model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path
    name = str(name_or_path)
    if not _is_hub_id(name):
        raise ModelError(f"no model folder at {name} (and it is not a Hub id of the form owner/name)")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(name, allow_patterns=HUB_PATTERNS))
        if not any(folder.glob("*.safetensors")):  # the published AMT models: a pickle, converted on load
            folder = Path(snapshot_download(name, allow_patterns=HUB_PICKLE_PATTERNS))
    except (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        offline = " (HF_HUB_OFFLINE is set: only the local Hub cache was searched)" \
            if constants.HF_HUB_OFFLINE else ""
        raise ModelError(f"cannot get model {name!r} from the Hugging Face Hub{offline}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if not any(folder.glob("*.safetensors")) and not (folder / PICKLE_NAME).is_file():
        raise ModelError(f"Hub model {name!r} has neither safetensors weights nor a {PICKLE_NAME}")
    return folder


def weights_cache() -> Path:
    """The folder of safetensors files converted from pickled weights: ``$AMT_WEIGHTS_CACHE`` if set, else
    ``$XDG_CACHE_HOME/amt/safetensors`` (``~/.cache/amt/safetensors``). Each file may be deleted at any time
    (it is converted again on the next load)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amt" / "safetensors"


def read_pickled_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a pickled state dict (``torch.save``), read with PyTorch's restricted unpickler, which
    builds only tensors and plain containers and refuses anything else without running it (memory-mapped, so
    a large file costs no memory up front). Raises ModelError unless the file holds ``{name: tensor}``."""
    try:
        # A zip archive (torch >= 1.6) can be memory-mapped; the legacy format cannot.
        data = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower() or "Unsupported operand" in str(e):
            raise ModelError(f"{file}: not a readable PyTorch weights file (not a pickle)") from e
        reason = next((line for line in str(e).splitlines() if "unsupported" in line.lower()), "")
        raise ModelError(f"{file}: refused: it holds objects other than tensors, which are never loaded or "
                         f"run ({reason.strip() or 'see torch.load weights_only'})") from e
    except Exception as e:  # any other failure of the parser (truncated zip, garbage): an unreadable file
        raise ModelError(f"{file}: not a readable PyTorch weights file, perhaps truncated "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in data.items()):
        raise ModelError(f"{file}: refused: it must hold a flat dict of named tensors (a state dict), "
                         f"not {type(data).__name__} with other objects")
    return data


def _without_shared_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` as safetensors can write them (no two sharing memory): a second name for the very same
    view is dropped (a tied output layer, which every amt backbone ties again on load); other tensors that
    overlap an earlier one are copied. By hand: safetensors' own helper for this is private."""
    seen: dict[int, tuple] = {}
    result = {}
    for name, t in tensors.items():
        view = (t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        pointer = t.untyped_storage().data_ptr()
        if pointer in seen and t.numel():
            if seen[pointer] == view:
                continue
            t = t.clone()
        else:
            seen[pointer] = view
        result[name] = t.contiguous()
    return result


def converted_pickle(file: Path) -> Path:
    """The safetensors twin of the pickled weights ``file`` in ``weights_cache()``, converted (and written
    atomically) on first use. The cache key is the file's resolved path, size and modification time (a Hub
    cache file's path holds its content hash). Raises ModelError."""
    real = file.resolve()
    info = real.stat()
    key = hashlib.sha256(f"{real}\0{info.st_size}\0{info.st_mtime_ns}".encode()).hexdigest()[:32]
    target = weights_cache() / f"{key}.safetensors"
    if target.is_file():
        return target
    tensors = read_pickled_tensors(file)
    logger.info("converting %s to safetensors: %s", file, target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_paths([target]) as (tmp,):
            save_file(_without_shared_storage(tensors), tmp, metadata={"format": "pt", "source": str(real)})
    except (OSError, SafetensorError) as e:
        raise ModelError(f"cannot write the converted weights of {file} to {target} ({e}); set {CACHE_ENV} "
                         "to a writable folder") from e
    return target


def read_config(folder: Path) -> ModelConfig:
    """Read and check ``config.json`` of a model folder; raises ModelError."""
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise ModelError(f"{folder}: missing {CONFIG_NAME}")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelError(f"{file}: {file.stat().st_size:,} bytes is too large for a model config "
                         f"(at most {MAX_CONFIG_BYTES:,})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{file}: cannot read it as JSON ({e})") from e
    except RecursionError as e:
        raise ModelError(f"{file}: nested too deeply to be a model config") from e
    try:
        config = config_from_dict(data)
    except ModelError as e:
        raise ModelError(f"{file}: {e}") from e
    if config.vocab_size != VOCAB_SIZE:
        raise ModelError(f"{folder}: the model has a vocabulary of {config.vocab_size:,} tokens; amt needs "
                         f"the AMT vocabulary of {VOCAB_SIZE:,}")
    return config


def _weight_files(folder: Path) -> list[Path]:
    single = folder / WEIGHTS_NAME
    if single.is_file():
        return [single]
    index = folder / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{index}: not a valid safetensors index ({e})") from e
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelError(f"{folder}: shards listed in {WEIGHTS_INDEX_NAME} are missing: "
                             f"{', '.join(missing)}")
        return [folder / s for s in shards]
    if (folder / PICKLE_NAME).is_file():
        return [converted_pickle(folder / PICKLE_NAME)]
    pickles = [name for name in OTHER_PICKLES if (folder / name).exists()]
    if pickles:
        raise ModelError(f"{folder}: has only weights in formats amt does not read ({', '.join(pickles)}); "
                         f"it reads {WEIGHTS_NAME}, sharded safetensors or a single {PICKLE_NAME}")
    raise ModelError(f"{folder}: missing weights ({WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME})")


def _read_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(file, device="cpu"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"{file}: not a readable safetensors file ({e})") from e
    return tensors


def _summary(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_tensors(folder: Path, model: CausalLM, state: dict[str, torch.Tensor]) -> None:
    expected = {name: p.shape for name, p in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors {_summary(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_summary(unexpected)}")
    wrong = [f"{name} {tuple(state[name].shape)} (config says {tuple(shape)})"
             for name, shape in expected.items() if name in state and state[name].shape != shape]
    if wrong:
        problems.append(f"wrong shapes: {_summary(wrong)}")
    if problems:
        raise ModelError(f"{folder}: weights do not match config.json: {'; '.join(problems)}")


def _check_finite(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinity (they would only fail later, inside sampling)."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ModelError(f"{folder}: weights hold NaN or infinite values: {_summary(bad)}")


def _check_sizes(folder: Path, cls: type[CausalLM], config: ModelConfig, state: dict[str, torch.Tensor]
                 ) -> None:
    """Compare the config's width and depth with the weights before building the model: a config.json that
    claims 10^6 layers or a width of 2^40 would otherwise stall or crash while the modules are made."""
    embedding = state.get(cls.embedding_key)
    if embedding is None:
        raise ModelError(f"{folder}: weights do not match config.json: missing tensors {cls.embedding_key}")
    expected = (config.vocab_size, config.hidden_size)
    if tuple(embedding.shape) != expected:
        raise ModelError(f"{folder}: weights do not match config.json: {cls.embedding_key} "
                         f"{tuple(embedding.shape)} (config says {expected})")
    prefix = cls.layer_prefix
    layers = {name[len(prefix):].split(".", 1)[0] for name in state if name.startswith(prefix)}
    if config.n_layer > len(layers):  # fewer are built; _check_tensors names any other mismatch
        raise ModelError(f"{folder}: weights do not match config.json: they hold {len(layers):,} layers "
                         f"({cls.layer_prefix}N), config.json says n_layer {config.n_layer:,}")


_INITIALISERS = ("normal_", "uniform_", "zeros_", "ones_", "constant_", "kaiming_uniform_", "trunc_normal_")


@contextlib.contextmanager
def _initialisers_off() -> Iterator[None]:
    """Make the ``torch.nn.init`` functions that modules call in their constructors do nothing (restored on
    exit). Used only while building a model whose every tensor is then replaced by a checkpoint's."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def load_model(name_or_path: str | os.PathLike, *, device: Any = None,
               dtype: torch.dtype | None = None) -> CausalLM:
    """Load a model folder (``config.json`` + safetensors weights) or a Hugging Face Hub id.

    ``model_type`` "gpt2" gives a ``GPT`` (published AMT checkpoints load unchanged), "mamba" a ``Mamba``.
    Floating weights are cast to ``dtype`` (default float32) and moved to ``device`` (default CPU). The model
    is returned in eval mode. A folder with only ``pytorch_model.bin`` is read through its converted copy
    (``converted_pickle``). Raises ModelError for a missing folder, a wrong vocabulary, a config whose sizes
    disagree with the weights, missing, unexpected or misshapen tensors, NaN or infinite weights, or a pickle
    that holds anything but tensors.
    """
    folder = resolve_folder(name_or_path)
    config = read_config(folder)
    tensors = _read_tensors(_weight_files(folder))
    _check_finite(folder, tensors)
    cls = _model_class(config)
    state = cls.state_dict_from_checkpoint(tensors)
    _check_sizes(folder, cls, config, state)
    # Build on the meta device with the initialisers switched off: no time or memory spent on a random init
    # that is overwritten at once (even on meta, the first initialiser call costs ~1 s of dispatch set-up).
    try:
        with torch.device("meta"), _initialisers_off():
            model = cls(config)
    except (RuntimeError, ValueError, OverflowError) as e:  # sizes no tensor can have (numel past int64)
        raise ModelError(f"{folder}: config.json describes a model that cannot be built ({e})") from e
    _check_tensors(folder, model, state)
    dtype = dtype or torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    return model.to(device or "cpu").eval()
