"""Multi-head attention over a maskc pattern (an ``nn.MultiheadAttention`` drop-in) and the
PrimeAttention.jl layers built on it."""

from __future__ import annotations

import torch
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, PatternLike, attend, bird_pattern, check_embed, check_input, check_key_padding, check_pattern,
    describe, is_plan,
    layout_is_causal, merge_heads, resolve_backend, split_heads,
)


class SparseSelfAttention(nn.Module):
    """Multi-head attention restricted to a maskc pattern; a drop-in for ``nn.MultiheadAttention``.

    The pattern is compiled once per ``(q_len, kv_len)`` (cached here and in
    ``mc.compile``) and the attention runs on a ``maskc.backends`` backend: by default
    ``"auto"``, which on CPU is the sparse torch backend, forward and backward (on CUDA:
    triton). Like ``nn.MultiheadAttention`` the call returns ``(output, None)``
    (attention weights are never materialised).

    Args:
        embed_dim: model width E (divisible by ``num_heads``).
        num_heads: query heads H; a ``mc.heads([...])`` pattern must have H (or 1) patterns.
        pattern: a :class:`maskc.Pattern` (compiled per length), a fixed
            :class:`maskc.Layout` or a :class:`maskc.Plan` (``mc.plan(...)``; inputs must
            then match its lengths).
        backend: a backend name or ``"auto"``.
        block: compile block size (int or ``(block_q, block_k)``).
        dropout: probability of dropping attention probabilities in training mode (as
            ``nn.MultiheadAttention``; the torch backend implements it, ``"auto"`` picks it).
        bias: biases in the input and output projections.
        batch_first: inputs and output are ``[batch, seq, E]`` (True, the default) or
            ``[seq, batch, E]`` (False, ``nn.MultiheadAttention``'s default). Unbatched
            ``[seq, E]`` inputs work with either.
        num_kv_heads: key / value heads (grouped-query attention; divides ``num_heads``);
            default ``num_heads``.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import SparseSelfAttention
        >>> attn = SparseSelfAttention(32, 4, mc.causal() & mc.window(8), num_kv_heads=2)
        >>> y, _ = attn(torch.randn(2, 50, 32))
        >>> y.shape
        torch.Size([2, 50, 32])
    """

    def __init__(self, embed_dim: int, num_heads: int, pattern: PatternLike, backend: str = "auto",
                 block: int | tuple[int, int] = 128, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, num_kv_heads: int | None = None) -> None:
        super().__init__()
        self.head_dim = check_embed(embed_dim, num_heads)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if isinstance(self.num_kv_heads, bool) or not isinstance(self.num_kv_heads, int) or self.num_kv_heads < 1 \
                or num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads must be a positive int dividing num_heads={num_heads} "
                             f"(grouped-query attention), got {num_kv_heads!r}")
        self.pattern = check_pattern(pattern, num_heads, type(self).__name__)
        resolve_backend(backend)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first must be True or False, got {batch_first!r}")
        self.backend, self.block, self.dropout, self.batch_first = backend, block, float(dropout), batch_first
        kv_dim = self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, kv_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, kv_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self._layouts = LayoutCache(self.pattern, block, num_heads)
        self._causal: dict[int, tuple[Layout, bool]] = {}

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention, pattern: PatternLike, backend: str = "auto",
                       block: int | tuple[int, int] = 128) -> "SparseSelfAttention":
        """A module with ``mha``'s weights, dropout, ``batch_first``, device and dtype.

        Its outputs equal ``mha(q, k, v, attn_mask=~mask)`` where ``mask`` is the pattern's
        dense mask (True = may attend). Refuses what has no sparse equivalent here:
        ``kdim`` / ``vdim`` other than ``embed_dim``, ``add_bias_kv``, ``add_zero_attn``.

        Example:
            >>> import torch, maskc as mc
            >>> from maskc.nn import SparseSelfAttention
            >>> mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
            >>> sparse = SparseSelfAttention.from_multihead(mha, mc.causal())
            >>> x = torch.randn(1, 6, 16)
            >>> want, _ = mha(x, x, x, attn_mask=~torch.ones(6, 6, dtype=torch.bool).tril())
            >>> torch.allclose(sparse(x)[0], want, atol=1e-6)
            True
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"from_multihead takes a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("from_multihead: this MultiheadAttention has kdim / vdim different from embed_dim; "
                             "SparseSelfAttention projects keys and values from embed_dim-wide inputs")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("from_multihead: add_bias_kv / add_zero_attn append extra keys that no maskc pattern "
                             "describes; build the module without them")
        w = mha.in_proj_weight
        bias = mha.in_proj_bias is not None
        mod = cls(mha.embed_dim, mha.num_heads, pattern, backend=backend, block=block, dropout=mha.dropout,
                  bias=bias, batch_first=mha.batch_first).to(device=w.device, dtype=w.dtype)
        E = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((mod.q_proj, mod.k_proj, mod.v_proj)):
                proj.weight.copy_(w[i * E:(i + 1) * E])
                if bias:
                    proj.bias.copy_(mha.in_proj_bias[i * E:(i + 1) * E])
            mod.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                mod.out_proj.bias.copy_(mha.out_proj.bias)
        return mod.train(mha.training)

    def layout(self, q_len: int, kv_len: int | None = None) -> Layout:
        """The compiled layout used for these lengths (cached; the plan itself for a Plan)."""
        return self._layouts.get(q_len, kv_len)

    def _fixed_lengths(self) -> tuple[int, int] | None:
        p = self.pattern
        return (p.q_len, p.kv_len) if isinstance(p, Layout) or is_plan(p) else None

    def _batch_major(self, x: torch.Tensor, name: str, seq_index: int) -> torch.Tensor:
        """``x`` as ``[batch, seq, E]`` (from the module's layout), with a hint when it looks swapped."""
        if isinstance(x, torch.Tensor) and x.dim() == 2:
            x = x.unsqueeze(0 if self.batch_first else 1)  # unbatched [seq, E]
        if isinstance(x, torch.Tensor) and x.dim() == 3:
            fixed = self._fixed_lengths()
            if fixed is not None:
                want = fixed[seq_index]
                s_dim = 1 if self.batch_first else 0
                if x.shape[s_dim] != want and x.shape[1 - s_dim] == want:
                    layout = "[batch, seq, E]" if self.batch_first else "[seq, batch, E]"
                    raise ValueError(
                        f"{type(self).__name__}: {name} has shape {tuple(x.shape)}, which looks like the other layout: "
                        f"the module expects {layout} (batch_first={self.batch_first}) and its pattern has length "
                        f"{want}; pass batch_first={not self.batch_first} or transpose(0, 1) the inputs")
            if not self.batch_first:
                x = x.transpose(0, 1)
        check_input(x, self.embed_dim, type(self).__name__, "embed_dim", param=self.q_proj.weight, name=name)
        return x

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, None]:
        """Attend ``query`` to ``key`` / ``value`` (default: self-attention on ``query``).

        Returns ``(output, None)``, output shaped like ``query``. ``is_causal=True``
        asserts that the pattern is causal (ValueError if it is not). ``key_padding_mask``
        (bool ``[batch, kv_len]``, True = padding, as ``nn.MultiheadAttention``) is combined
        with the pattern (``pattern & mc.key_padding(~mask)``, one layout per batch element,
        compiled per distinct mask content); a query whose keys are all padding gets zeros
        (MHA gives NaN). Other masks belong in the pattern, so ``attn_mask`` is refused
        with the fix.

        Example:
            >>> import torch, maskc as mc
            >>> attn = SparseSelfAttention(16, 2, mc.window(2))
            >>> pad = torch.tensor([[False] * 5 + [True] * 3, [False] * 8])
            >>> attn(torch.randn(2, 8, 16), key_padding_mask=pad)[0].shape
            torch.Size([2, 8, 16])
        """
        name = type(self).__name__
        if need_weights:
            raise ValueError(f"{name} never materialises attention weights; call with need_weights=False")
        if attn_mask is not None:
            raise ValueError(
                f"{name}: masks are part of the pattern; express them in the pattern "
                "(e.g. `pattern & mc.document_mask(segment_ids=ids)` for packed documents) instead of attn_mask; "
                "padding goes in key_padding_mask"
            )
        unbatched = isinstance(query, torch.Tensor) and query.dim() == 2
        key = query if key is None else key
        value = key if value is None else value
        q_in = self._batch_major(query, "query", 0)
        k_in = self._batch_major(key, "key", 1)
        v_in = self._batch_major(value, "value", 1)
        if k_in.shape[:2] != v_in.shape[:2] or k_in.shape[0] != q_in.shape[0]:
            raise ValueError(
                f"{name}: batch/length mismatch: query {tuple(query.shape)}, key {tuple(key.shape)}, "
                f"value {tuple(value.shape)} (batch_first={self.batch_first})"
            )
        pad = check_key_padding(key_padding_mask, k_in.shape[0], k_in.shape[1], name)
        lay = self.layout(q_in.shape[1], k_in.shape[1]) if pad is None else \
            self._layouts.get(q_in.shape[1], k_in.shape[1], pad)
        if is_causal and not self._is_causal(q_in.shape[1], k_in.shape[1]):
            raise ValueError(f"{name}: is_causal=True but the pattern {describe(self.pattern)!r} lets a query attend "
                             "a later key; drop is_causal (the pattern decides) or make the pattern causal")
        q = split_heads(self.q_proj(q_in), self.num_heads)
        k = split_heads(self.k_proj(k_in), self.num_kv_heads)
        v = split_heads(self.v_proj(v_in), self.num_kv_heads)
        p = self.dropout if self.training else 0.0  # as nn.MultiheadAttention: dropout in training mode
        out = self.out_proj(merge_heads(attend(q, k, v, lay, self.backend, dropout_p=p)))
        if unbatched:
            return out[0], None
        return (out if self.batch_first else out.transpose(0, 1)), None

    def _is_causal(self, q_len: int, kv_len: int) -> bool:
        lay = self._layouts.layout_of(q_len, kv_len)
        hit = self._causal.get(id(lay))
        if hit is None or hit[0] is not lay:
            hit = self._causal[id(lay)] = (lay, layout_is_causal(lay))
        return hit[1]

    def extra_repr(self) -> str:
        kv = f", num_kv_heads={self.num_kv_heads}" if self.num_kv_heads != self.num_heads else ""
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{kv}, pattern={describe(self.pattern)!r}, "
                f"backend={self.backend!r}, dropout={self.dropout}, batch_first={self.batch_first}")


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
    """PrimeAttention.jl's ``PrimeSelfAttention``, real multi-head.

    Causal; query i attends the union (a set: overlaps count once) of the first
    ``global_tokens`` keys, offsets ``0 <= i - j <= window`` and prime offsets
    ``i - j = p`` (``p <= cap``; ``cap=None``: no cap, the original used 4096). About
    i / ln i keys per row, so O(N^2 / ln N) in total (not O(N log N)).

    Example:
        >>> import torch
        >>> from maskc.nn import PrimeSelfAttention
        >>> attn = PrimeSelfAttention(64, heads=4, window=3, global_tokens=2)
        >>> attn(torch.randn(2, 40, 64))[0].shape
        torch.Size([2, 40, 64])
    """

    _kind = "primes"


class SquareSelfAttention(_BirdSelfAttention):
    """PrimeAttention.jl's ``SquareSelfAttention``: offsets n^2 (n >= 1, <= cap).

    About sqrt(i) + window + globals keys per row (O(N^1.5) in total).

    Example:
        >>> import torch
        >>> from maskc.nn import SquareSelfAttention
        >>> SquareSelfAttention(16, heads=2)(torch.randn(1, 30, 16))[0].shape
        torch.Size([1, 30, 16])
    """

    _kind = "squares"


class MianChowlaSelfAttention(_BirdSelfAttention):
    """PrimeAttention.jl's ``MianChowlaSelfAttention``: Mian-Chowla offsets 1, 2, 4, 8, 13,
    21, 31, ... (a greedy Sidon set; about i^0.39 offsets up to i, measured from 1K to 64K).

    Example:
        >>> import torch
        >>> from maskc.nn import MianChowlaSelfAttention
        >>> MianChowlaSelfAttention(16, heads=2)(torch.randn(1, 30, 16))[0].shape
        torch.Size([1, 30, 16])
    """

    _kind = "mian_chowla"
