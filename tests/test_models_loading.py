"""Model folders: Hugging Face GPT-2 compatibility (both directions) and clear errors for bad folders."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import amt.models
from amt.errors import ModelError
from amt.models import GPT, GPTConfig, Mamba, create_model, load_model, resolve_model_name, tiny_config
from amt.models.loading import CACHE_ENV, weights_cache
from amt.tokenization.vocab import CONTEXT_SIZE, VOCAB_SIZE

from conftest import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "bach_bwv66.6.packed-line0.txt"


def reference_tokens() -> torch.Tensor:
    """The first packed training line of a Bach chorale: 1,024 real AMT tokens."""
    if not REFERENCE.exists():
        pytest.skip(f"reference tokens not found ({REFERENCE})")
    lines = [line for line in REFERENCE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    tokens = np.array(" ".join(lines).split(), dtype=np.int64)
    assert tokens.shape == (CONTEXT_SIZE,)
    return torch.from_numpy(tokens)[None]


@pytest.fixture(autouse=True)
def private_weights_cache(tmp_path, monkeypatch):
    """Converted pickles go to this test's folder, not the user's cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))


@pytest.fixture(scope="module")
def hf_model():
    """A random ``transformers.GPT2LMHeadModel`` with the AMT configuration (small width and depth)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=VOCAB_SIZE, n_positions=CONTEXT_SIZE, n_embd=64, n_layer=2, n_head=4,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, scale_attn_by_inverse_layer_idx=True,
        tie_word_embeddings=True, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    # GPT-2's init leaves biases at 0 and norms at 1, which would hide bias or norm bugs: perturb everything.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.config._attn_implementation = "eager"  # the reference implementation of attention
    return model.eval()


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf-gpt2")
    hf_model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def hf_logits(hf_model) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(reference_tokens()).logits


def test_hf_gpt2_folder_loads_with_identical_logits(hf_folder, hf_logits):
    assert (hf_folder / "model.safetensors").exists() and not list(hf_folder.glob("*.bin"))
    model = load_model(hf_folder)
    assert isinstance(model, GPT) and model.config.scale_attn_by_inverse_layer_idx
    tokens = reference_tokens()
    with torch.no_grad():
        logits = model(tokens)
    assert logits.shape == (1, CONTEXT_SIZE, VOCAB_SIZE)
    assert hf_logits.abs().max() > 1.0  # the comparison below is not between near-zero numbers
    assert (logits - hf_logits).abs().max() < 1e-4


def test_hf_gpt2_incremental_decoding_matches(hf_folder, hf_logits):
    model = load_model(hf_folder)
    tokens = reference_tokens()
    prefill = 700
    with torch.no_grad():
        state = model.init_state(1)
        logits, state = model.step(tokens[:, :prefill], state)
        assert (logits - hf_logits[:, :prefill]).abs().max() < 1e-4
        worst = 0.0
        for t in range(prefill, CONTEXT_SIZE):
            logits, state = model.step(tokens[:, t : t + 1], state)
            worst = max(worst, (logits[:, 0] - hf_logits[:, t]).abs().max().item())
    assert state.length == CONTEXT_SIZE
    assert worst < 1e-4


def test_inverse_layer_scaling_is_what_makes_logits_match(hf_folder, hf_logits):
    """The comparison is sensitive: dropping the per-layer attention scaling changes the logits."""
    model = load_model(hf_folder)
    changed = GPT(GPTConfig.from_dict({**model.config.to_dict(), "scale_attn_by_inverse_layer_idx": False}))
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        diff = (changed.eval()(reference_tokens()) - hf_logits).abs().max()
    assert diff > 1e-2


def test_our_gpt_folder_loads_in_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    model = create_model(tiny_config("gpt2")).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    tokens = reference_tokens()[:, :300]
    with torch.no_grad():
        assert (hf(tokens).logits - model(tokens)).abs().max() < 1e-4


def test_sharded_safetensors_folder_loads(hf_model, tmp_path, hf_logits):
    hf_model.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="5MB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    with torch.no_grad():
        logits = load_model(tmp_path)(reference_tokens()[:, :64])
    assert (logits - hf_logits[:, :64]).abs().max() < 1e-4


@pytest.mark.parametrize("backbone", ["gpt2", "mamba"])
def test_save_load_round_trip(backbone, tmp_path):
    torch.manual_seed(2)
    model = create_model(tiny_config(backbone)).eval()
    model.save_pretrained(tmp_path / "m")
    assert not list((tmp_path / "m").glob(".*tmp"))  # no temporary files left behind
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    tokens = reference_tokens()[:, :100]
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))


def test_loading_leaves_the_initialisers_working(saved, monkeypatch):
    # Loading switches torch.nn.init off while it builds the empty model, and must switch it back on, also
    # when the folder turns out to be bad.
    original = torch.nn.init.normal_
    load_model(saved)
    edit_config(saved, n_inner=48)  # found only after the model is built
    with pytest.raises(ModelError, match="wrong shapes"):
        load_model(saved)
    assert torch.nn.init.normal_ is original
    torch.manual_seed(0)
    assert create_model(tiny_config("gpt2")).transformer.wte.weight.std() > 0.01


def test_load_casts_dtype(tmp_path):
    create_model(tiny_config("mamba")).save_pretrained(tmp_path)
    model = load_model(tmp_path, dtype=torch.float64)
    assert isinstance(model, Mamba) and model.dtype == torch.float64 and not model.training


# Bad folders: every failure is a ModelError whose message names the problem.

@pytest.fixture
def saved(tmp_path) -> Path:
    create_model(tiny_config("gpt2")).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_wrong_vocabulary_is_refused(saved):
    edit_config(saved, vocab_size=50257)
    with pytest.raises(ModelError, match="vocabulary of 50,257"):
        load_model(saved)


def test_missing_weights_are_refused(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="missing weights"):
        load_model(saved)


def test_garbage_pickle_is_refused(saved):
    (saved / "model.safetensors").unlink()
    (saved / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin: not a readable PyTorch weights file"):
        load_model(saved)


def test_missing_and_unexpected_tensors_are_named(saved):
    tensors = load_file(saved / "model.safetensors")
    tensors.pop("transformer.h.1.mlp.c_fc.bias")
    tensors["transformer.h.9.extra"] = torch.zeros(1)
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(ModelError, match=r"missing tensors transformer\.h\.1\.mlp\.c_fc\.bias.*unexpected "
                                         r"tensors transformer\.h\.9\.extra"):
        load_model(saved)


def test_wrong_shapes_are_named(saved):
    edit_config(saved, n_inner=128)
    with pytest.raises(ModelError, match=r"wrong shapes: transformer\.h\.0\.mlp\.c_fc\.weight \(256, 64\) "
                                         r"\(config says \(128, 64\)"):
        load_model(saved)
    edit_config(saved, n_inner=None, n_embd=128)
    with pytest.raises(ModelError, match=r"wte\.weight \(55028, 64\) \(config says \(55028, 128\)"):
        load_model(saved)


@pytest.mark.parametrize("changes", [{"n_embd": 2**40, "n_head": 1}, {"n_layer": 10**6}, {"n_layer": 10**18},
                                     {"n_inner": 2**62}, {"n_positions": 2**62}])
def test_huge_sizes_are_refused_before_building(saved, changes):
    # Before the sizes were checked against the weights, these stalled (a million layers) or crashed.
    edit_config(saved, **changes)
    with pytest.raises(ModelError, match=r"do not match config\.json|cannot be built"):
        load_model(saved)


def test_huge_mamba_sizes_are_refused_before_building(tmp_path):
    create_model(tiny_config("mamba")).save_pretrained(tmp_path)
    for changes in ({"n_layer": 10**6}, {"d_model": 2**40}, {"d_state": 2**61}, {"expand": 2**40}):
        edit_config(tmp_path, **{**tiny_config("mamba").to_dict(), **changes})
        with pytest.raises(ModelError, match=r"do not match config\.json|cannot be built"):
            load_model(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(saved, value):
    tensors = load_file(saved / "model.safetensors")
    tensors["transformer.h.1.attn.c_proj.weight"][3, 5] = value
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(ModelError, match=r"NaN or infinite values: transformer\.h\.1\.attn\.c_proj\.weight"):
        load_model(saved)


def test_deeply_nested_config_is_refused(saved):
    (saved / "config.json").write_text('{"model_type": "gpt2", "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(ModelError, match=r"config\.json: (nested too deeply|.* too large)"):
        load_model(saved)
    (saved / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match=r"config\.json: nested too deeply"):
        load_model(saved)


def test_corrupt_files_are_refused(saved):
    (saved / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="JSON"):
        load_model(saved)


def test_unknown_model_type_is_refused(saved):
    edit_config(saved, model_type="llama")
    with pytest.raises(ModelError, match="unsupported model_type 'llama'"):
        load_model(saved)


def test_missing_local_path_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no model folder"):
        load_model(tmp_path / "absent" / "deeper" / "model")


def test_unknown_hub_id_offline_names_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match=r"'nobody-here/no-such-model'.*HF_HUB_OFFLINE"):
        load_model("nobody-here/no-such-model")


def test_pickle_only_hub_repo_is_downloaded_and_converted(hf_model, tmp_path, monkeypatch):
    import huggingface_hub

    # A fake Hub: a repository like the published AMT models, with config.json and pytorch_model.bin only.
    repo = tmp_path / "repo"
    repo.mkdir()
    hf_model.config.to_json_file(repo / "config.json")
    torch.save(hf_model.state_dict(), repo / "pytorch_model.bin")
    asked = []

    def fake_snapshot_download(repo_id, allow_patterns):
        asked.append((repo_id, allow_patterns))
        snapshot = tmp_path / f"snapshot-{len(asked)}"
        snapshot.mkdir()
        for file in repo.iterdir():
            if any(fnmatch.fnmatch(file.name, pattern) for pattern in allow_patterns):
                (snapshot / file.name).symlink_to(file)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_model("stanford-crfm/music-small-800k")
    assert isinstance(model, GPT) and model.config.n_embd == 64
    # safetensors first; the pickle only because there were none
    assert [a[0] for a in asked] == ["stanford-crfm/music-small-800k"] * 2
    assert "pytorch_model.bin" not in asked[0][1] and "pytorch_model.bin" in asked[1][1]


def test_pickled_state_dict_loads_like_its_safetensors_twin(hf_model, hf_folder, hf_logits, tmp_path,
                                                              monkeypatch):
    # What the published AMT repositories ship: a GPT2LMHeadModel state dict written with torch.save.
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_bytes((hf_folder / "config.json").read_bytes())
    torch.save(hf_model.state_dict(), folder / "pytorch_model.bin")
    tokens = reference_tokens()[:, :200]
    with torch.no_grad():
        twin = load_model(hf_folder)(tokens)
        assert torch.equal(load_model(folder)(tokens), twin)
        assert (twin - hf_logits[:, :200]).abs().max() < 1e-4
    cached = list(weights_cache().glob("*.safetensors"))
    assert len(cached) == 1 and not list(weights_cache().glob(".*"))  # converted once, no temporary left
    # Later loads read the cache: the pickle is not opened again.
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("the pickle was read again"))
    with torch.no_grad():
        assert torch.equal(load_model(folder)(tokens), twin)


def test_pickle_that_runs_code_is_refused_and_never_runs(saved, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (saved / "model.safetensors").unlink()
    state = {"transformer.wte.weight": torch.zeros(2, 2), "payload": Exploit()}
    torch.save(state, saved / "pytorch_model.bin")
    assert not marker.exists()
    with pytest.raises(ModelError, match=r"pytorch_model\.bin: refused: it holds objects other than tensors"):
        load_model(saved)
    assert not marker.exists() and not list(weights_cache().glob("*"))


def test_pickle_holding_non_tensors_is_refused(saved):
    (saved / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": torch.zeros(2, 2), "step": 5}, saved / "pytorch_model.bin")
    with pytest.raises(ModelError, match="refused: it must hold a flat dict of named tensors"):
        load_model(saved)


def test_truncated_pickle_gives_a_clear_error(saved):
    tensors = load_file(saved / "model.safetensors")
    (saved / "model.safetensors").unlink()
    torch.save(tensors, saved / "pytorch_model.bin")
    data = (saved / "pytorch_model.bin").read_bytes()
    (saved / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"not a readable PyTorch weights file, perhaps truncated"):
        load_model(saved)
    assert not list(weights_cache().glob("*"))


def test_default_model_resolution(tmp_path, monkeypatch):
    assert resolve_model_name("some/model") == "some/model"
    monkeypatch.setattr(amt.models, "DEFAULT_MODEL", tmp_path / "default")
    with pytest.raises(ModelError, match="no built-in model is installed yet; pass --model"):
        resolve_model_name(None)
    create_model(tiny_config("gpt2")).save_pretrained(tmp_path / "default")
    assert resolve_model_name(None) == str(tmp_path / "default")
