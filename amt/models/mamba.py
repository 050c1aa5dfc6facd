"""A Mamba-2 language model: state-space duality (SSD) layers with tied embeddings.

Why Mamba-2 rather than Mamba-1: every head has a scalar decay, so a chunk of the scan is a masked matrix
product. That makes an exact pure-PyTorch scan fast on CPU (a chunked scan: quadratic inside chunks of 64,
a short recurrence across chunks) where Mamba-1's per-channel selective scan needs either a sequential loop
or a ``[B, T, D, N]`` tensor. On GPU the ``mamba_ssm`` SSD kernel is pure Triton (no compiled extension
beyond the package), and is used when importable (``pip install amt[cuda]``); it is never required.

Each layer: ``x + mixer(RMSNorm(x))`` where the mixer projects to a gate ``z``, the SSM input ``x`` and its
``B``/``C`` projections and a step size ``dt`` per head; ``x, B, C`` pass a short causal depthwise
convolution and SiLU; the SSM output is gated by ``SiLU(z)``, RMS-normalised and projected back. Parameter
names follow ``mamba_ssm`` (``backbone.layers.N.mixer.in_proj`` ...).

The recurrence per head: ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T``, ``y_t = h_t C_t + D x_t``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from amt.models.base import CausalLM, check_input_ids
from amt.models.config import MambaConfig


@dataclass
class MambaState:
    """Recurrent state of every layer: the last ``d_conv - 1`` convolution inputs
    ``[n_layer, B, conv_dim, d_conv - 1]`` and the SSM state ``[n_layer, B, nheads, headdim, d_state]``."""

    conv: torch.Tensor
    ssm: torch.Tensor
    length: int = 0

    def select(self, index: torch.Tensor) -> MambaState:
        """A new state holding batch rows ``index``."""
        index = index.to(self.conv.device)
        return MambaState(self.conv[:, index], self.ssm[:, index], self.length)


@functools.cache
def _ssd_kernel() -> Callable | None:
    """``mamba_ssm``'s Triton SSD scan, or None when the package (or its CUDA build) is unavailable."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except (ImportError, OSError, RuntimeError):
        return None
    return mamba_chunk_scan_combined


def ssd_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             chunk_size: int, initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact chunked scan of the SSD recurrence in PyTorch (without the ``D`` skip term).

    ``x`` ``[b, t, h, p]``, ``dt`` ``[b, t, h]`` (after softplus), ``A`` ``[h]`` (negative), ``B``/``C``
    ``[b, t, g, n]`` with ``g`` dividing ``h``; ``initial_state`` ``[b, h, p, n]``. Returns
    ``y`` ``[b, t, h, p]`` and the final state ``[b, h, p, n]``.
    """
    b, t, h, p = x.shape
    n = B.shape[-1]
    B = B.repeat_interleave(h // B.shape[2], dim=2)
    C = C.repeat_interleave(h // C.shape[2], dim=2)
    L = min(chunk_size, t)
    pad = (-t) % L
    if pad:  # dt = 0 in the padding: no decay and no input, so the final state is unchanged
        x, dt, B, C = (F.pad(v, (0,) * (2 * v.dim() - 4) + (0, pad)) for v in (x, dt, B, C))
    c = x.shape[1] // L
    x, dt, B, C = (v.reshape(b, c, L, *v.shape[2:]) for v in (x, dt, B, C))
    a = (dt * A).transpose(2, 3)  # [b, c, h, L]: log-decay of each step
    a_cum = a.cumsum(-1)
    xdt = x * dt.unsqueeze(-1)  # [b, c, L, h, p]

    # Inside a chunk: y_i = sum_{j <= i} (C_i . B_j) exp(a_cum_i - a_cum_j) dt_j x_j.
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    decay = torch.exp((a_cum.unsqueeze(-1) - a_cum.unsqueeze(-2)).masked_fill(~causal, -math.inf))
    scores = torch.einsum("bclhn,bcshn->bchls", C, B) * decay
    y = torch.einsum("bchls,bcshp->bclhp", scores, xdt)

    # Each chunk's contribution to the state at its end, then a recurrence over chunks.
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # [b, c, h, L]
    chunk_states = torch.einsum("bclhn,bchl,bclhp->bchpn", B, to_end, xdt)
    chunk_decay = torch.exp(a_cum[..., -1])  # [b, c, h]
    state = initial_state if initial_state is not None else x.new_zeros(b, h, p, n)
    entering = []
    for k in range(c):
        entering.append(state)
        state = chunk_decay[:, k, :, None, None] * state + chunk_states[:, k]
    entering = torch.stack(entering, dim=1)  # [b, c, h, p, n]: state before each chunk
    y = y + torch.einsum("bclhn,bchpn,bchl->bclhp", C, entering, torch.exp(a_cum))
    return y.reshape(b, c * L, h, p)[:, :t], state


class GatedRMSNorm(nn.Module):
    """RMSNorm of ``x * SiLU(z)``, per group of channels (Mamba-2's output norm)."""

    def __init__(self, dim: int, group_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x * F.silu(z)
        groups = x.unflatten(-1, (-1, self.group_size))
        groups = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + self.eps)
        return groups.flatten(-2) * self.weight


class Mamba2Mixer(nn.Module):
    """The SSD sequence mixer of one layer."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        c = config
        self.d_inner, self.nheads, self.headdim = c.d_inner, c.nheads, c.headdim
        self.ngroups, self.d_state = c.ngroups, c.d_state
        self.d_conv, self.chunk_size = c.d_conv, c.chunk_size
        self.conv_dim = c.d_inner + 2 * c.ngroups * c.d_state
        self.in_proj = nn.Linear(c.d_model, 2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, c.d_conv, groups=self.conv_dim)
        # Step sizes start log-uniform in [dt_min, dt_max]; dt_bias is their inverse softplus.
        dt = torch.exp(torch.rand(c.nheads) * (math.log(c.dt_max) - math.log(c.dt_min)) + math.log(c.dt_min))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(c.nheads).uniform_(1, 16)))  # decay rates A = -exp
        self.D = nn.Parameter(torch.ones(c.nheads))
        self.norm = GatedRMSNorm(c.d_inner, c.d_inner // c.ngroups, c.norm_epsilon)
        self.out_proj = nn.Linear(c.d_inner, c.d_model, bias=False)
        self.use_kernel = True  # set False to force the PyTorch scan (e.g. to compare against the kernel)

    def forward(self, u: torch.Tensor, conv_state: torch.Tensor | None = None,
                ssm_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mix ``u`` ``[B, T, d_model]`` after the given states (None: the start of a sequence).

        Returns the output and the new convolution and SSM states.
        """
        batch, T, _ = u.shape
        z, xBC, dt = self.in_proj(u).split([self.d_inner, self.conv_dim, self.nheads], dim=-1)
        if conv_state is None:
            conv_state = u.new_zeros(batch, self.conv_dim, self.d_conv - 1)
        window = torch.cat([conv_state, xBC.transpose(1, 2)], dim=2)  # [B, conv_dim, d_conv - 1 + T]
        new_conv_state = window[:, :, -(self.d_conv - 1):]
        if T == 1:  # decoding: the convolution is one dot product per channel
            xBC = (window * self.conv1d.weight.squeeze(1)).sum(-1, keepdim=True) + self.conv1d.bias[:, None]
        else:
            xBC = F.conv1d(window, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)
        xBC = F.silu(xBC.transpose(1, 2))
        x, B, C = xBC.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        x = x.view(batch, T, self.nheads, self.headdim)
        B = B.view(batch, T, self.ngroups, self.d_state)
        C = C.view(batch, T, self.ngroups, self.d_state)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        if T == 1:
            y, new_ssm_state = self._recurrent_step(x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], ssm_state)
            y = y.unsqueeze(1)
        else:
            kernel = _ssd_kernel() if self.use_kernel and u.is_cuda else None
            if kernel is not None:
                # The Triton kernel wants unit-stride rows; the splits above are strided views.
                x, dt, B, C = (v.contiguous() for v in (x, dt, B, C))
                y, new_ssm_state = kernel(x, dt, A, B, C, self.chunk_size, initial_states=ssm_state,
                                          return_final_states=True)
            else:
                y, new_ssm_state = ssd_scan(x, dt, A, B, C, self.chunk_size, ssm_state)
            y = y + x * self.D[:, None]
        y = self.norm(y.reshape(batch, T, self.d_inner).to(u.dtype), z)
        return self.out_proj(y), new_conv_state, new_ssm_state

    def _recurrent_step(self, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                        C: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence: ``x`` ``[b, h, p]``, ``dt`` ``[b, h]``, ``B``/``C`` ``[b, g, n]``."""
        heads_per_group = self.nheads // self.ngroups
        B = B.repeat_interleave(heads_per_group, dim=1)
        C = C.repeat_interleave(heads_per_group, dim=1)
        update = (x * dt[..., None]).unsqueeze(-1) * B.unsqueeze(-2)  # [b, h, p, n]
        decay = torch.exp(dt * A)[..., None, None]
        state = update if state is None else decay * state + update
        y = (state * C.unsqueeze(-2)).sum(-1) + x * self.D[:, None]
        return y, state


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    """A pre-norm residual Mamba-2 layer."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(config.d_model, config.norm_epsilon)
        self.mixer = Mamba2Mixer(config)

    def forward(self, x: torch.Tensor, conv_state: torch.Tensor | None = None,
                ssm_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` plus the mixer's output, and the mixer's new states."""
        y, conv_state, ssm_state = self.mixer(self.norm(x), conv_state, ssm_state)
        return x + y, conv_state, ssm_state


class Mamba(CausalLM):
    """Mamba-2 language model with tied input/output embeddings; no position limit."""

    config: MambaConfig
    max_positions = None
    embedding_key = "backbone.embedding.weight"
    layer_prefix = "backbone.layers."

    def __init__(self, config: MambaConfig):
        super().__init__(config)
        self.backbone = nn.ModuleDict(dict(
            embedding=nn.Embedding(config.vocab_size, config.d_model),
            layers=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            norm_f=RMSNorm(config.d_model, config.norm_epsilon),
        ))
        nn.init.normal_(self.backbone.embedding.weight, std=config.initializer_range)
        for block in self.backbone.layers:
            nn.init.normal_(block.mixer.in_proj.weight, std=config.initializer_range)
            # Projections into the residual stream scaled by 1/sqrt(depth), as in GPT-2 and mamba_ssm.
            nn.init.normal_(block.mixer.out_proj.weight,
                            std=config.initializer_range / math.sqrt(config.n_layer))

    def output_weight(self) -> torch.Tensor:
        """The token embedding, which is also the output layer."""
        return self.backbone.embedding.weight

    @property
    def use_kernels(self) -> bool:
        """Whether CUDA inputs use the ``mamba_ssm`` Triton scan when it is installed."""
        return all(block.mixer.use_kernel for block in self.backbone.layers)

    @use_kernels.setter
    def use_kernels(self, value: bool) -> None:
        for block in self.backbone.layers:
            block.mixer.use_kernel = value

    def _run(self, input_ids: torch.Tensor, state: MambaState | None) -> torch.Tensor:
        check_input_ids(input_ids, self.vocab_size, None if state is None else state.conv.shape[1])
        x = self.backbone.embedding(input_ids)
        for i, block in enumerate(self.backbone.layers):
            if state is None:
                x, _, _ = block(x)
            else:
                x, state.conv[i], state.ssm[i] = block(x, state.conv[i], state.ssm[i])
        return self.backbone.norm_f(x)

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[B, T, d_model]`` for ``input_ids`` ``[B, T]``."""
        return self._run(input_ids, None)

    def init_state(self, batch_size: int) -> MambaState:
        """Zero convolution and SSM states for ``batch_size`` sequences."""
        c = self.config
        weight = self.output_weight()
        conv_dim = c.d_inner + 2 * c.ngroups * c.d_state
        conv = weight.new_zeros(c.n_layer, batch_size, conv_dim, c.d_conv - 1)
        ssm = weight.new_zeros(c.n_layer, batch_size, c.nheads, c.headdim, c.d_state)
        return MambaState(conv, ssm, 0)

    def advance(self, input_ids: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """Consume ``input_ids`` ``[B, T]`` after the ``state.length`` tokens seen; see
        ``CausalLM.advance``."""
        hidden = self._run(input_ids, state)
        state.length += input_ids.shape[1]
        return hidden, state
