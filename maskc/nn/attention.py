"""Multi-head self-attention over a maskc pattern, and the PrimeAttention.jl layers (SPEC A)."""

from __future__ import annotations

import torch
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, PatternLike, attend, bird_pattern, check_embed, check_input, check_pattern, describe, merge_heads,
    resolve_backend, split_heads,
)


class SparseSelfAttention(nn.Module):
    """Multi-head attention restricted to a maskc pattern; a drop-in for
    ``nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)``.

    Inputs are ``[batch, seq, embed_dim]``. The pattern is compiled once per
    ``(q_len, kv_len)`` (cached here and in ``mc.compile``) and the attention runs on
    any ``maskc.backends`` backend. Like ``nn.MultiheadAttention`` the call returns
    ``(output, None)`` (attention weights are never materialised).

    Args:
        embed_dim: model width E (divisible by ``num_heads``).
        num_heads: heads H; a ``mc.heads([...])`` pattern must have H (or 1) patterns.
        pattern: a :class:`maskc.Pattern` (compiled per length), a fixed
            :class:`maskc.Layout` or a :class:`maskc.Plan` (``mc.plan(...)``; inputs must
            then match its lengths).
        backend: a backend name or ``"auto"``. On CPU, ``"auto"`` resolves to
            ``"reference"`` (differentiable float64) while autograd is recording, because
            the automatic CPU choice (FlexAttention) has no CPU backward; under
            ``torch.no_grad()`` ``"auto"`` lets maskc choose. For CPU training pass
            ``backend="reference"`` explicitly to be sure.
        block: compile block size (int or ``(block_q, block_k)``).
        dropout: dropout on the attention output (backends do not drop probabilities).
        bias: biases in the input and output projections.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import SparseSelfAttention
        >>> attn = SparseSelfAttention(32, 4, mc.causal() & mc.window(8), backend="reference")
        >>> y, _ = attn(torch.randn(2, 50, 32))
        >>> y.shape
        torch.Size([2, 50, 32])
    """

    def __init__(self, embed_dim: int, num_heads: int, pattern: PatternLike, backend: str = "auto",
                 block: int | tuple[int, int] = 128, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.head_dim = check_embed(embed_dim, num_heads)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.pattern = check_pattern(pattern, num_heads, type(self).__name__)
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string, got {type(backend).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.backend, self.block = backend, block
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self._layouts = LayoutCache(self.pattern, block, num_heads)

    def layout(self, q_len: int, kv_len: int | None = None) -> Layout:
        """The compiled layout used for these lengths (cached; the plan itself for a Plan)."""
        return self._layouts.get(q_len, kv_len)

    def _check(self, t: torch.Tensor, name: str) -> None:
        check_input(t, self.embed_dim, type(self).__name__, "embed_dim", param=self.q_proj.weight, name=name)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """Attend ``query`` to ``key``/``value`` (default: self-attention on ``query``).

        Returns ``(output [batch, q_len, embed_dim], None)``.
        """
        if need_weights:
            raise ValueError(f"{type(self).__name__} never materialises attention weights; call with need_weights=False")
        if attn_mask is not None or key_padding_mask is not None:
            raise ValueError(
                f"{type(self).__name__}: masks are part of the pattern; express them in the pattern "
                "(e.g. `pattern & mc.segments(lengths)` for packed documents) instead of attn_mask/key_padding_mask"
            )
        key = query if key is None else key
        value = key if value is None else value
        self._check(query, "query")
        self._check(key, "key")
        self._check(value, "value")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: batch/length mismatch: query {tuple(query.shape)}, key {tuple(key.shape)}, "
                f"value {tuple(value.shape)}"
            )
        H = self.num_heads
        q = split_heads(self.q_proj(query), H)
        k = split_heads(self.k_proj(key), H)
        v = split_heads(self.v_proj(value), H)
        lay = self.layout(query.shape[1], key.shape[1])
        out = attend(q, k, v, lay, resolve_backend(self.backend, q))
        return self.dropout(self.out_proj(merge_heads(out))), None

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, pattern={describe(self.pattern)!r}, "
                f"backend={self.backend!r}")


class _BirdSelfAttention(SparseSelfAttention):
    _kind = ""

    def __init__(self, embed_dim: int, heads: int = 1, window: int = 3, global_tokens: int = 2,
                 cap: int | None = None, backend: str = "auto", block: int | tuple[int, int] = 128,
                 dropout: float = 0.0, bias: bool = True) -> None:
        for name, v in (("window", window), ("global_tokens", global_tokens)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"cap must be None or an int >= 1, got {cap!r}")
        self.window, self.global_tokens, self.cap = window, global_tokens, cap
        super().__init__(embed_dim, heads, bird_pattern(self._kind, window, global_tokens, cap),
                         backend=backend, block=block, dropout=dropout, bias=bias)


class PrimeSelfAttention(_BirdSelfAttention):
    """PrimeAttention.jl's ``PrimeSelfAttention`` (SPEC A), real multi-head.

    Causal; query i attends the union (a set: overlaps count once) of the first
    ``global_tokens`` keys, offsets ``0 <= i - j <= window`` and prime offsets
    ``i - j = p`` (``p <= cap``; ``cap=None``: no cap, the original used 4096). About
    i / ln i keys per row, so O(N^2 / ln N) in total (not O(N log N)).

    Example:
        >>> import torch
        >>> from maskc.nn import PrimeSelfAttention
        >>> attn = PrimeSelfAttention(64, heads=4, window=3, global_tokens=2, backend="reference")
        >>> attn(torch.randn(2, 40, 64))[0].shape
        torch.Size([2, 40, 64])
    """

    _kind = "primes"


class SquareSelfAttention(_BirdSelfAttention):
    """PrimeAttention.jl's ``SquareSelfAttention`` (SPEC A): offsets n^2 (n >= 1, <= cap).

    About sqrt(i) + window + globals keys per row (O(N^1.5) in total).

    Example:
        >>> import torch
        >>> from maskc.nn import SquareSelfAttention
        >>> SquareSelfAttention(16, heads=2, backend="reference")(torch.randn(1, 30, 16))[0].shape
        torch.Size([1, 30, 16])
    """

    _kind = "squares"


class MianChowlaSelfAttention(_BirdSelfAttention):
    """PrimeAttention.jl's ``MianChowlaSelfAttention`` (SPEC A): Mian-Chowla offsets
    1, 2, 4, 8, 13, 21, 31, ... (a greedy Sidon set; about i^0.39 offsets up to i,
    measured from 1K to 64K).

    Example:
        >>> import torch
        >>> from maskc.nn import MianChowlaSelfAttention
        >>> MianChowlaSelfAttention(16, heads=2, backend="reference")(torch.randn(1, 30, 16))[0].shape
        torch.Size([1, 30, 16])
    """

    _kind = "mian_chowla"
