"""The GPT backbone: incremental decoding with the KV cache equals the full forward pass."""

from __future__ import annotations

import pytest
import torch

from amt.errors import ModelError
from amt.models import GPT, CausalLM, GPTConfig, KVCache, create_model, tiny_config
from amt.tokenization.vocab import CONTEXT_SIZE, VOCAB_SIZE


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    model = create_model(tiny_config("gpt2")).double().eval()
    with torch.no_grad():  # non-trivial biases and norms, so every parameter matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_tiny_config_shape():
    model = create_model(tiny_config("gpt2"))
    assert isinstance(model, GPT) and isinstance(model, CausalLM)
    assert model.vocab_size == VOCAB_SIZE and model.max_positions == CONTEXT_SIZE
    assert model.output_weight() is model.transformer.wte.weight
    assert model.num_parameters() < 4_000_000


@torch.no_grad()
def test_forward_is_hidden_states_times_output_weight(model):
    ids = tokens(2, 40)
    hidden = model.hidden_states(ids)
    assert hidden.shape == (2, 40, model.config.n_embd)
    logits = model(ids)
    assert logits.shape == (2, 40, VOCAB_SIZE)
    torch.testing.assert_close(logits, hidden @ model.output_weight().T)


@torch.no_grad()
def test_forward_is_causal(model):
    ids = tokens(1, 30)
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] + 1) % VOCAB_SIZE
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :20], b[:, :20], rtol=0, atol=1e-12)
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3


@torch.no_grad()
def test_prefill_chunks_and_single_steps_match_forward(model):
    """Prefill, then chunks of several tokens after a filled cache (masked attention), then single steps."""
    ids = tokens(3, 120)
    full = model(ids)
    state = model.init_state(3)
    pieces = []
    for start, end in [(0, 50), (50, 57), (57, 90), *((t, t + 1) for t in range(90, 120))]:
        logits, state = model.step(ids[:, start:end], state)
        pieces.append(logits)
    assert state.length == 120
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-10)


@torch.no_grad()
def test_first_step_of_one_token_and_last_only(model):
    ids = tokens(2, 10)
    full = model(ids)
    state = model.init_state(2)
    logits, state = model.step(ids[:, :1], state)
    torch.testing.assert_close(logits, full[:, :1], rtol=0, atol=1e-10)
    logits, state = model.step(ids[:, 1:], state, last_only=True)
    assert logits.shape == (2, 1, VOCAB_SIZE)
    torch.testing.assert_close(logits, full[:, -1:], rtol=0, atol=1e-10)


@torch.no_grad()
def test_select_reorders_and_repeats_the_batch(model):
    ids = tokens(3, 60, seed=1)
    state = model.init_state(3)
    _, state = model.step(ids[:, :40], state)
    index = torch.tensor([2, 0, 0, 1])
    chosen = state.select(index)
    assert isinstance(chosen, KVCache) and chosen.length == 40 and chosen.keys.shape[1] == 4
    reordered = ids[index]
    logits, chosen = model.step(reordered[:, 40:], chosen)
    torch.testing.assert_close(logits, model(reordered)[:, 40:], rtol=0, atol=1e-10)
    logits, state = model.step(ids[:, 40:], state)  # the original state is untouched by select
    torch.testing.assert_close(logits, model(ids)[:, 40:], rtol=0, atol=1e-10)


@torch.no_grad()
def test_full_context_in_float32_and_a_small_cache():
    torch.manual_seed(3)
    model = create_model(tiny_config("gpt2")).eval()
    ids = tokens(1, CONTEXT_SIZE)
    full = model(ids)
    state = model.init_state(1)
    logits, state = model.step(ids[:, :-1], state, last_only=True)
    torch.testing.assert_close(logits[:, 0], full[:, -2], rtol=0, atol=1e-5)
    logits, state = model.step(ids[:, -1:], state)
    torch.testing.assert_close(logits[:, 0], full[:, -1], rtol=0, atol=1e-5)
    small = model.init_state(2, max_length=16)
    assert small.capacity == 16 and small.keys.dtype == torch.float32


def test_too_many_positions_are_refused(model):
    with pytest.raises(ModelError, match="exceeds the model's 1024 positions"):
        model(tokens(1, CONTEXT_SIZE + 1))
    state = model.init_state(1)
    state.length = CONTEXT_SIZE - 2
    with pytest.raises(ModelError, match="1025 tokens exceeds the model's 1024 positions"):
        model.step(tokens(1, 3), state)
    small = model.init_state(1, max_length=8)
    _, small = model.step(tokens(1, 8), small)
    with pytest.raises(ModelError, match="KV cache holds 8 tokens"):
        model.step(tokens(1, 1), small)
    with pytest.raises(ModelError, match="batch of 2 sequences for a state of 1"):
        model.step(tokens(2, 1), model.init_state(1))


@pytest.mark.parametrize("backbone", ["gpt2", "mamba"])
def test_bad_input_ids_are_refused(backbone):
    model = create_model(tiny_config(backbone))
    with pytest.raises(ModelError, match=r"token 55028 is outside the vocabulary of 55,028"):
        model(torch.tensor([[1, VOCAB_SIZE]]))
    with pytest.raises(ModelError, match="token -1"):
        model.step(torch.tensor([[-1]]), model.init_state(1))
    with pytest.raises(ModelError, match=r"length >= 1.*shape \(1, 0\)"):
        model.step(torch.zeros(1, 0, dtype=torch.long), model.init_state(1))
    with pytest.raises(ModelError, match=r"shape \(5,\)"):
        model(torch.zeros(5, dtype=torch.long))


def test_bad_config_is_refused():
    with pytest.raises(ModelError, match="multiple of n_head"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ModelError, match="activation_function 'tanh'"):
        GPTConfig(activation_function="tanh")
    with pytest.raises(ModelError, match="tied"):
        GPTConfig(tie_word_embeddings=False)


def test_training_step_reduces_loss():
    torch.manual_seed(4)
    model = create_model(tiny_config("gpt2")).train()
    ids = tokens(2, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - torch.log(torch.tensor(float(VOCAB_SIZE))).item()) < 0.5  # std 0.02 init
    assert losses[-1] < losses[0] - 1.0
