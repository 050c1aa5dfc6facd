"""The structured embedding used in training: same function when attached, shared structure, plain saves."""

from __future__ import annotations

import pytest
import torch

from amt.models import create_model, load_model
from amt.models.config import GPTConfig, MambaConfig
from amt.tokenization.vocab import (
    ATIME_OFFSET,
    MAX_PITCH,
    NOTE_OFFSET,
    REST,
    SEPARATOR,
    TIME_OFFSET,
)
from amt.training import embedding
from amt.training.train import parameter_groups


def small_gpt() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(GPTConfig(n_embd=32, n_layer=1, n_head=2, n_positions=64))


def test_attach_keeps_the_function_and_saves_an_ordinary_checkpoint(tmp_path):
    model = small_gpt()
    tokens = torch.randint(0, SEPARATOR, (2, 20))
    before = model(tokens)
    embedding.attach(model)
    assert torch.allclose(model(tokens), before, atol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)  # a plain GPT, no parametrisation
    assert not torch.nn.utils.parametrize.is_parametrized(loaded.transformer.wte)
    assert torch.allclose(loaded(tokens), before, atol=1e-5)


def test_structure_is_shared_across_related_tokens():
    model = small_gpt()
    module = embedding.attach(model)
    with torch.no_grad():
        module.pitch.zero_()
        module.instrument.zero_()
        module.pitch[60] = 1.0
        module.time.zero_()
        module.time[:, len(embedding.TIME_PERIODS) - 1] = 1.0  # the cosine of the longest period
        s = module.structure()
    # C4 of every instrument, as event and as control, carries the pitch row; REST and specials nothing.
    for instrument in (0, 40, 128):
        assert torch.equal(s[NOTE_OFFSET + MAX_PITCH * instrument + 60], torch.ones(32))
        assert torch.equal(s[NOTE_OFFSET + MAX_PITCH * instrument + 61], torch.zeros(32))
    assert torch.equal(s[REST], torch.zeros(32)) and torch.equal(s[SEPARATOR:], torch.zeros(3, 32))
    # Neighbouring onsets get nearly the same structure, distant ones do not; controls share it.
    assert torch.allclose(s[TIME_OFFSET + 1000], s[TIME_OFFSET + 1001], atol=1e-3)
    assert not torch.allclose(s[TIME_OFFSET + 1000], s[TIME_OFFSET + 6000], atol=0.1)
    assert torch.equal(s[ATIME_OFFSET + 1000], s[TIME_OFFSET + 1000] + module.control[0])


def test_a_gradient_on_one_onset_moves_its_neighbours():
    model = small_gpt()
    embedding.attach(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = model.transformer.wte.weight.detach().clone()
    model.transformer.wte.weight[TIME_OFFSET + 500].sum().backward()
    optimizer.step()
    moved = (model.transformer.wte.weight.detach() - before).norm(dim=1)
    # A plain embedding would move row 500 only; the structure moves the onsets around it too.
    assert moved[TIME_OFFSET + 501] > 0.1 * moved[TIME_OFFSET + 500]
    assert moved[NOTE_OFFSET] == 0


def test_state_round_trip_and_no_weight_decay_on_any_of_it():
    model = small_gpt()
    module = embedding.attach(model)
    with torch.no_grad():
        module.control.fill_(0.5)
    state = embedding.structure_state(model)
    assert set(state) == {"time", "duration", "instrument", "pitch", "control"}
    weight = model.transformer.wte.weight.detach().clone()
    # Resuming: a plain model with the saved weights plus the saved structure computes the same embedding.
    fresh = small_gpt()
    fresh.load_state_dict({**fresh.state_dict(), "transformer.wte.weight": weight})
    embedding.attach(fresh, state)
    assert torch.allclose(fresh.transformer.wte.weight, weight, atol=1e-6)
    decay, no_decay = parameter_groups(model, 0.1)
    structure_ids = {id(p) for p in module.parameters()}
    assert structure_ids <= {id(p) for p in no_decay["params"]}
    assert not structure_ids & {id(p) for p in decay["params"]}
    assert embedding.structure_state(small_gpt()) is None


def test_mamba_is_supported_and_other_vocabularies_are_refused():
    torch.manual_seed(0)
    mamba = create_model(MambaConfig(d_model=32, n_layer=1, d_state=8, headdim=8, chunk_size=8))
    embedding.attach(mamba)
    assert embedding.structure_state(mamba) is not None
    with pytest.raises(ValueError, match="AMT vocabulary"):
        embedding.attach(create_model(GPTConfig(n_embd=32, n_layer=1, n_head=2, vocab_size=100)))


def test_onset_features_turn_a_gap_preference_into_a_rotation():
    from amt.tokenization.vocab import REST_INTERVAL

    window = REST_INTERVAL + 1
    multiples = embedding.TIME_PERIODS * torch.arange(1, len(embedding.TIME_PERIODS) + 1)
    harmonics = int(torch.isclose(multiples, torch.tensor(float(window), dtype=torch.float64)).sum())
    assert harmonics == window // 2
    features = embedding.fourier_features(2000, embedding.TIME_PERIODS[:harmonics]).double()
    gaps = torch.arange(window)
    # With a constant, the harmonics span every function of the gap over the window after an onset...
    basis = torch.cat([features[300 + gaps], torch.ones(window, 1, dtype=torch.float64)], dim=1)
    assert torch.linalg.matrix_rank(basis) == window
    # ...and the features after onset p are those after onset q, rotated by p - q: one linear map.
    p, q = 1234, 87
    angle = 2 * torch.pi * (p - q) / embedding.TIME_PERIODS[:harmonics]
    cos, sin = angle.cos(), angle.sin()
    after_q = features[q + gaps]
    rotated = torch.cat([after_q[:, :harmonics] * cos - after_q[:, harmonics:] * sin,
                         after_q[:, harmonics:] * cos + after_q[:, :harmonics] * sin], dim=1)
    assert torch.allclose(rotated, features[p + gaps], atol=1e-6)


def test_a_fresh_model_starts_from_the_structure_alone():
    model = small_gpt()
    special = model.transformer.wte.weight[SEPARATOR:].detach().clone()
    module = embedding.attach(model, fresh=True)
    weight = model.transformer.wte.weight.detach()
    # Every row but the special tokens' is its structure exactly (no random free part); those keep theirs.
    assert torch.equal(weight[:SEPARATOR], module.structure()[:SEPARATOR].detach())
    assert torch.equal(weight[SEPARATOR:], special)
    assert torch.count_nonzero(weight[REST]) == 0
