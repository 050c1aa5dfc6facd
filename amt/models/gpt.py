"""A GPT-2 Transformer, weight-compatible with ``transformers.GPT2LMHeadModel``.

Parameter names follow the Hugging Face checkpoints (``transformer.h.N.attn.c_attn`` ...), so the published
AMT models (``stanford-crfm/music-*-800k``) load unchanged. Hugging Face stores its ``Conv1D`` weights as
``[in, out]``; we use ``nn.Linear`` (``[out, in]``) and transpose those four tensors when reading or writing a
checkpoint. Attention runs through ``scaled_dot_product_attention`` (flash/memory-efficient kernels on GPU);
incremental decoding writes keys and values into a preallocated cache in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from amt.errors import ModelError
from amt.models.base import CausalLM, check_input_ids
from amt.models.config import GPTConfig

# Hugging Face Conv1D weights, stored [in, out] in checkpoints.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers older transformers versions saved with every layer (the causal mask); not parameters.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

ACTIVATION_FNS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's tanh approximation
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass
class KVCache:
    """Keys and values of every layer, ``[n_layer, B, n_head, capacity, head_dim]``, filled up to
    ``length``."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    @property
    def capacity(self) -> int:
        """Most tokens the cache can hold."""
        return self.keys.shape[3]

    def select(self, index: torch.Tensor) -> KVCache:
        """A new cache holding batch rows ``index`` (only the filled part is copied)."""
        index = index.to(self.keys.device)
        n_layer, _, n_head, capacity, head_dim = self.keys.shape
        # Positions past `length` are never read before being written, so they need no initialisation.
        keys = self.keys.new_empty((n_layer, len(index), n_head, capacity, head_dim))
        values = torch.empty_like(keys)
        keys[:, :, :, : self.length] = self.keys[:, index, :, : self.length]
        values[:, :, :, : self.length] = self.values[:, index, :, : self.length]
        return KVCache(keys, values, self.length)


class SelfAttention(nn.Module):
    """Multi-head causal self-attention; scores are divided by ``layer_idx + 1`` when the config says so."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        scale = 1 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.scale = scale

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None,
                past: int = 0) -> torch.Tensor:
        """Attend over ``x`` ``[B, T, C]``; with ``cache`` (this layer's key/value buffers), after ``past``
        cached positions, writing the new keys and values in place."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        mask = None
        if cache is not None:
            cache[0][:, :, past : past + T] = k
            cache[1][:, :, past : past + T] = v
            if past > 0:
                k, v = cache[0][:, :, : past + T], cache[1][:, :, : past + T]
                if T > 1:  # query i (absolute position past + i) sees keys 0 .. past + i
                    mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        dropout = self.attn_pdrop if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                           is_causal=past == 0 and T > 1, scale=self.scale)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward layer."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.inner_dim)
        self.c_proj = nn.Linear(config.inner_dim, config.n_embd)
        self.act = ACTIVATION_FNS[config.activation_function]
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """A pre-norm Transformer block."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = SelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None,
                past: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, past)
        return x + self.mlp(self.ln_2(x))


class GPT(CausalLM):
    """GPT-2 language model with tied input/output embeddings and learned positions."""

    config: GPTConfig
    embedding_key = "transformer.wte.weight"
    layer_prefix = "transformer.h."

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.max_positions = config.n_positions
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.n_positions, config.n_embd),
            drop=nn.Dropout(config.embd_pdrop),
            h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon),
        ))
        self.apply(self._init_weights)
        # GPT-2 scales the projections into the residual stream by 1/sqrt(number of residual additions).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=config.initializer_range / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            # std 0.02 also for the embedding: with tied output weights, std 1 starts at a loss of ~97.
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def output_weight(self) -> torch.Tensor:
        """The token embedding, which is also the output layer."""
        return self.transformer.wte.weight

    def _check_positions(self, start: int, length: int) -> None:
        if start + length > self.max_positions:
            raise ModelError(
                f"sequence of {start + length} tokens exceeds the model's {self.max_positions} positions "
                "(slide the context window)"
            )

    def _run(self, input_ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        check_input_ids(input_ids, self.vocab_size, None if cache is None else cache.keys.shape[1])
        past = cache.length if cache is not None else 0
        T = input_ids.shape[1]
        self._check_positions(past, T)
        if cache is not None and past + T > cache.capacity:
            raise ModelError(f"the KV cache holds {cache.capacity} tokens; {past} are used and {T} more "
                             "were given")
        pos = torch.arange(past, past + T, device=input_ids.device)
        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else (cache.keys[i], cache.values[i]), past)
        return self.transformer.ln_f(x)

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[B, T, n_embd]`` for ``input_ids`` ``[B, T]``, T <= n_positions."""
        return self._run(input_ids, None)

    def init_state(self, batch_size: int, max_length: int | None = None) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences of up to ``max_length`` (default n_positions)."""
        capacity = self.max_positions if max_length is None else max_length
        self._check_positions(0, capacity)
        c = self.config
        shape = (c.n_layer, batch_size, c.n_head, capacity, c.n_embd // c.n_head)
        weight = self.output_weight()
        return KVCache(weight.new_zeros(shape), weight.new_zeros(shape), 0)

    def advance(self, input_ids: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        """Consume ``input_ids`` ``[B, T]`` after the ``state.length`` cached tokens (see
        CausalLM.advance)."""
        hidden = self._run(input_ids, state)
        state.length += input_ids.shape[1]
        return hidden, state

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Our weights under Hugging Face names, Conv1D weights as ``[in, out]`` (lm_head stays tied)."""
        return {name: (t.t() if name.endswith(CONV1D_WEIGHTS) else t).contiguous()
                for name, t in self.plain_state_dict().items()}

    @classmethod
    def state_dict_from_checkpoint(cls, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Read a ``GPT2LMHeadModel`` checkpoint: transpose Conv1D weights, drop mask buffers, check that
        a stored ``lm_head.weight`` is the tied embedding."""
        state = {}
        for name, t in tensors.items():
            if name.endswith(IGNORED_SUFFIXES):
                continue
            state[name] = t.t() if name.endswith(CONV1D_WEIGHTS) and t.dim() == 2 else t
        head = state.pop("lm_head.weight", None)
        wte = state.get("transformer.wte.weight")
        if head is not None and wte is not None and (head.shape != wte.shape or not torch.equal(head, wte)):
            raise ModelError("lm_head.weight differs from transformer.wte.weight: untied output layers are "
                             "not supported")
        return state
