"""πAttention: ring-local and π-step attentions fused by a gate, and the adaptive menu over (π, r) pairs."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, attend, check_embed, check_input, check_positive_int, merge_heads, pi_pattern, resolve_backend,
    ring_pattern, split_heads,
)

_VARIANTS = ("all", "bounded", "doubling")


class _PiBase(nn.Module):
    def _setup(self, d_model: int, num_heads: int, causal: bool, backend: str, block, bias: bool) -> None:
        self.head_dim = check_embed(d_model, num_heads, "d_model")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be True or False, got {causal!r}")
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string, got {type(backend).__name__}")
        self.d_model, self.num_heads, self.causal = d_model, num_heads, causal
        self.backend, self.block = backend, block
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _qkv(self, x: torch.Tensor):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return q, k, v

    def _attend(self, cache: LayoutCache, q, k, v) -> torch.Tensor:
        lay = cache.get(q.shape[2])
        return attend(q, k, v, lay, resolve_backend(self.backend, q))


class PiAttention(_PiBase):
    """πAttention: a ring-local attention and a π-step attention, each its own softmax,
    fused per head by a gate: ``y = g * y_local + (1 - g) * y_pi``.

    Components (causal form in brackets): ring_local(r): circular distance
    ``min(|i-j|, N-|i-j|) <= r`` [``0 <= i-j <= r``]; pi_step(π): ``(i-j) mod π == 0``
    [``i-j >= 0`` and a multiple of π]. ``variant`` picks the π-step offsets (as
    ``mc.library.pi_step``): "all" multiples (the seed, ~N/π keys per row, so the π
    branch is O(N^2/π): a constant factor, not sub-quadratic), "bounded" (kπ for
    0 <= k <= ``m``) or "doubling" (0 and π·2^k for 0 <= k <= ``m``, m=None: all).

    Gates:
        * ``"token"`` (default, causal-safe): ``g[b,h,t] = sigmoid(w_h · LN(x_t) + b_h)``.
        * ``"pooled"`` (the seed's, non-causal only): ``g[b,h] = sigmoid(MLP([mean_t Q;
          mean_t K; mean_t V]))`` with MLP Linear(3d->d), GELU, Linear(d->H). It sees
          every token, so it raises ``ValueError`` with ``causal=True``.

    Coverage: π-step hops alone never leave the residue class i mod π; with the local
    component (r >= 1) a causal token reaches its whole prefix within
    ``1 + ceil((π-1)/r)`` layers.

    Args:
        d_model, num_heads: width and heads (d_model divisible by num_heads).
        period: π (default 16). radius: r (default 32). causal: default True.
        gate: "token" or "pooled". variant: "all", "bounded" or "doubling"; m: its bound.
        backend, block: as in :class:`SparseSelfAttention` ("auto": the sparse torch
            backend on CPU, forward and backward).

    Example:
        >>> import torch
        >>> from maskc.nn import PiAttention
        >>> attn = PiAttention(32, 4, period=8, radius=4)
        >>> attn(torch.randn(2, 40, 32)).shape
        torch.Size([2, 40, 32])
    """

    def __init__(self, d_model: int, num_heads: int, period: int = 16, radius: int = 32, causal: bool = True,
                 gate: Literal["token", "pooled"] = "token", variant: Literal["all", "bounded", "doubling"] = "all",
                 m: int | None = None, backend: str = "auto", block: int | tuple[int, int] = 128,
                 bias: bool = True) -> None:
        super().__init__()
        self._setup(d_model, num_heads, causal, backend, block, bias)
        self.period = check_positive_int(period, "period")
        self.radius = check_positive_int(radius, "radius", 0)
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
        if gate not in ("token", "pooled"):
            raise ValueError(f"gate must be 'token' or 'pooled', got {gate!r}")
        if gate == "pooled" and causal:
            raise ValueError(
                "gate='pooled' averages Q, K, V over all tokens (it sees the future), so it is only for "
                "causal=False; use gate='token' for causal models"
            )
        self.gate, self.variant = gate, variant
        if gate == "token":
            self.gate_norm = nn.LayerNorm(d_model)
            self.gate_proj = nn.Linear(d_model, num_heads)
        else:
            self.gate_net = nn.Sequential(nn.Linear(3 * d_model, d_model), nn.GELU(), nn.Linear(d_model, num_heads))
        self.local_pattern = ring_pattern(self.radius, causal)
        self.pi_pattern = pi_pattern(self.period, causal, variant, m)
        self._local = LayoutCache(self.local_pattern, block, None)
        self._pi = LayoutCache(self.pi_pattern, block, None)

    def layouts(self, seq_len: int) -> tuple[Layout, Layout]:
        """(ring-local layout, π-step layout) at this length."""
        return self._local.get(seq_len), self._pi.get(seq_len)

    def gate_values(self, x: torch.Tensor, q=None, k=None, v=None) -> torch.Tensor:
        """The gate g: [B, H, T, 1] (token) or [B, H, 1, 1] (pooled)."""
        if self.gate == "token":
            return torch.sigmoid(self.gate_proj(self.gate_norm(x))).transpose(1, 2).unsqueeze(-1)
        if q is None:
            q, k, v = self._qkv(x)
        pooled = torch.cat([q.mean(dim=1), k.mean(dim=1), v.mean(dim=1)], dim=-1)
        return torch.sigmoid(self.gate_net(pooled))[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, seq, d_model] -> [batch, seq, d_model]."""
        check_input(x, self.d_model, type(self).__name__, param=self.qkv.weight)
        q, k, v = self._qkv(x)
        g = self.gate_values(x, q, k, v)
        H = self.num_heads
        qh, kh, vh = split_heads(q, H), split_heads(k, H), split_heads(v, H)
        y_local = self._attend(self._local, qh, kh, vh)
        y_pi = self._attend(self._pi, qh, kh, vh)
        y = g * y_local + (1.0 - g) * y_pi
        return self.out_proj(merge_heads(y))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, num_heads={self.num_heads}, period={self.period}, radius={self.radius}, "
                f"causal={self.causal}, gate={self.gate!r}, variant={self.variant!r}")


class AdaptivePiAttention(_PiBase):
    """πAttention over a fixed menu of (π, r) pairs mixed by predicted softmax weights.

    For each pair c the module computes the gated fusion
    ``y_c = g_c * y_local(r_c) + (1 - g_c) * y_pi(π_c)`` (token gates as in
    :class:`PiAttention`; attentions shared between pairs with equal r or π), and mixes
    ``y = Σ_c w_c y_c`` with ``w = softmax(MLP(pool(x)))``. The pool is a *causal running
    mean* ``mean_{s <= t} x_s`` when ``causal=True`` (weights per token, causal-safe)
    and the mean over all tokens when ``causal=False``. Differentiable; the menu is fixed
    at construction (no per-call module construction).

    Args:
        pairs: the menu; default ``((8, 16), (16, 32), (32, 64))`` (π in {8,16,32} with
            r in {16,32,64}).
        other arguments as in :class:`PiAttention`.

    Example:
        >>> import torch
        >>> from maskc.nn import AdaptivePiAttention
        >>> attn = AdaptivePiAttention(32, 4, pairs=[(4, 2), (8, 4)])
        >>> attn(torch.randn(2, 24, 32)).shape
        torch.Size([2, 24, 32])
    """

    def __init__(self, d_model: int, num_heads: int, pairs: Sequence[tuple[int, int]] = ((8, 16), (16, 32), (32, 64)),
                 causal: bool = True, variant: Literal["all", "bounded", "doubling"] = "all", m: int | None = None,
                 backend: str = "auto", block: int | tuple[int, int] = 128, bias: bool = True) -> None:
        super().__init__()
        self._setup(d_model, num_heads, causal, backend, block, bias)
        pairs = [tuple(p) for p in pairs]
        if not pairs:
            raise ValueError("pairs must name at least one (period, radius) pair")
        for p in pairs:
            if len(p) != 2:
                raise ValueError(f"each menu entry must be (period, radius), got {p!r}")
            check_positive_int(p[0], "period")
            check_positive_int(p[1], "radius", 0)
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
        self.pairs = [(int(a), int(b)) for a, b in pairs]
        self.variant, self.m = variant, m
        C = len(self.pairs)
        self.gate_norm = nn.LayerNorm(d_model)
        self.gate_proj = nn.Linear(d_model, num_heads * C)
        self.mix = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, C))
        self._local = {r: LayoutCache(ring_pattern(r, causal), block, None) for r in sorted({r for _, r in self.pairs})}
        self._pi = {p: LayoutCache(pi_pattern(p, causal, variant, m), block, None)
                    for p in sorted({p for p, _ in self.pairs})}

    def mixture_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights over the menu: [B, T, C] (causal running mean) or [B, 1, C]."""
        if self.causal:
            t = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
            pooled = torch.cumsum(x, dim=1) / t[None, :, None]
        else:
            pooled = x.mean(dim=1, keepdim=True)
        return torch.softmax(self.mix(pooled), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, seq, d_model] -> [batch, seq, d_model]."""
        B, T = check_input(x, self.d_model, type(self).__name__, param=self.qkv.weight)
        H, C = self.num_heads, len(self.pairs)
        q, k, v = self._qkv(x)
        qh, kh, vh = split_heads(q, H), split_heads(k, H), split_heads(v, H)
        y_loc = {r: self._attend(c, qh, kh, vh) for r, c in self._local.items()}
        y_pi = {p: self._attend(c, qh, kh, vh) for p, c in self._pi.items()}
        g = torch.sigmoid(self.gate_proj(self.gate_norm(x))).view(B, T, H, C).permute(0, 2, 1, 3)  # [B,H,T,C]
        w = self.mixture_weights(x)  # [B, T or 1, C]
        y = 0
        for c, (p, r) in enumerate(self.pairs):
            gc = g[..., c : c + 1]
            yc = gc * y_loc[r] + (1.0 - gc) * y_pi[p]
            y = y + w[:, None, :, c : c + 1] * yc
        return self.out_proj(merge_heads(y))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, pairs={self.pairs}, causal={self.causal}"
