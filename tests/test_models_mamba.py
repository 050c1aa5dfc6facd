"""The Mamba-2 backbone: the chunked scan, the recurrent step and the full forward pass agree exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from amt.errors import ModelError
from amt.models import CausalLM, Mamba, MambaConfig, MambaState, create_model, tiny_config
from amt.models.mamba import ssd_scan
from amt.tokenization.vocab import VOCAB_SIZE


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(seed))


def make_model(dtype: torch.dtype = torch.float64, **changes) -> Mamba:
    """A tiny model with short chunks (several per test sequence) and perturbed parameters."""
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config("mamba"), **{"chunk_size": 16, **changes})
    model = create_model(config).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def model() -> Mamba:
    return make_model()


def sequential_scan(x, dt, A, B, C, state=None):
    """The SSD recurrence one step at a time: the definition the chunked scan must reproduce."""
    b, t, h, p = x.shape
    B = B.repeat_interleave(h // B.shape[2], dim=2)
    C = C.repeat_interleave(h // C.shape[2], dim=2)
    state = x.new_zeros(b, h, p, B.shape[-1]) if state is None else state
    ys = []
    for i in range(t):
        decay = torch.exp(dt[:, i] * A)[..., None, None]
        state = decay * state + (dt[:, i, :, None] * x[:, i])[..., None] * B[:, i, :, None, :]
        ys.append((state * C[:, i, :, None, :]).sum(-1))
    return torch.stack(ys, dim=1), state


@pytest.mark.parametrize(("t", "chunk", "groups"), [(50, 16, 1), (64, 16, 2), (7, 64, 1)])
def test_chunked_scan_equals_the_recurrence(t, chunk, groups):
    g = torch.Generator().manual_seed(t)
    b, h, p, n = 2, 4, 3, 5
    x = torch.randn(b, t, h, p, generator=g, dtype=torch.float64)
    dt = torch.rand(b, t, h, generator=g, dtype=torch.float64)
    A = -torch.rand(h, generator=g, dtype=torch.float64) * 4
    B = torch.randn(b, t, groups, n, generator=g, dtype=torch.float64)
    C = torch.randn(b, t, groups, n, generator=g, dtype=torch.float64)
    init = torch.randn(b, h, p, n, generator=g, dtype=torch.float64)
    y, final = ssd_scan(x, dt, A, B, C, chunk, init)
    y_ref, final_ref = sequential_scan(x, dt, A, B, C, init)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(final, final_ref, rtol=0, atol=1e-10)


def test_tiny_config_shape():
    model = create_model(tiny_config("mamba"))
    assert isinstance(model, Mamba) and isinstance(model, CausalLM)
    assert model.vocab_size == VOCAB_SIZE and model.max_positions is None
    assert model.output_weight() is model.backbone.embedding.weight
    assert model.num_parameters() < 4_000_000


@torch.no_grad()
def test_step_by_step_decoding_matches_forward(model):
    ids = tokens(2, 70)  # not a multiple of the chunk size: the padded tail must not disturb anything
    full = model(ids)
    assert full.shape == (2, 70, VOCAB_SIZE)
    state = model.init_state(2)
    pieces = []
    for t in range(70):
        logits, state = model.step(ids[:, t : t + 1], state)
        pieces.append(logits)
    assert state.length == 70
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-10)


@torch.no_grad()
def test_prefill_chunks_then_steps_match_forward(model):
    ids = tokens(3, 90, seed=1)
    full = model(ids)
    state = model.init_state(3)
    pieces = []
    for start, end in [(0, 37), (37, 40), (40, 41), (41, 75), *((t, t + 1) for t in range(75, 90))]:
        logits, state = model.step(ids[:, start:end], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-10)
    logits, _ = model.step(ids[:, :90], model.init_state(3), last_only=True)
    assert logits.shape == (3, 1, VOCAB_SIZE)
    torch.testing.assert_close(logits, full[:, -1:], rtol=0, atol=1e-10)


@torch.no_grad()
def test_select_reorders_and_repeats_the_batch(model):
    ids = tokens(3, 50, seed=2)
    state = model.init_state(3)
    _, state = model.step(ids[:, :30], state)
    index = torch.tensor([1, 1, 2, 0])
    chosen = state.select(index)
    assert isinstance(chosen, MambaState) and chosen.length == 30 and chosen.ssm.shape[1] == 4
    reordered = ids[index]
    logits, _ = model.step(reordered[:, 30:], chosen)
    torch.testing.assert_close(logits, model(reordered)[:, 30:], rtol=0, atol=1e-10)


@torch.no_grad()
def test_float32_decoding_and_grouped_heads():
    model = make_model(torch.float32, ngroups=2)
    ids = tokens(1, 40, seed=3)
    full = model(ids)
    state = model.init_state(1)
    logits, state = model.step(ids[:, :20], state)
    pieces = [logits]
    for t in range(20, 40):
        logits, state = model.step(ids[:, t : t + 1], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-4)


def test_gradients_reach_every_parameter():
    model = make_model(torch.float32).train()
    ids = tokens(2, 40)
    logits = model(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), ids[:, 1:].reshape(-1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_config_is_refused():
    with pytest.raises(ModelError, match="multiple of headdim"):
        MambaConfig(d_model=48, headdim=64)
    with pytest.raises(ModelError, match="groups"):
        MambaConfig(d_model=64, headdim=32, ngroups=3)
    with pytest.raises(ModelError, match="AmtMamba2LMHeadModel"):
        MambaConfig.from_dict({"model_type": "mamba", "architectures": ["MambaForCausalLM"]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@torch.no_grad()
def test_kernel_path_matches_pytorch_path():
    pytest.importorskip("mamba_ssm")
    from amt.models.mamba import _ssd_kernel

    if _ssd_kernel() is None:
        pytest.skip("mamba_ssm's Triton SSD kernel is not importable")
    model = make_model(torch.float32, chunk_size=64).cuda()
    ids = tokens(2, 300).cuda()
    model.use_kernels = True
    fast = model(ids)
    model.use_kernels = False
    slow = model(ids)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-3)
