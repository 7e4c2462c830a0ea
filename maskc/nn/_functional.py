"""Shared helpers of the torch modules: attention dispatch, layouts, patterns, checks.

Everything here is private to :mod:`maskc.nn`; the modules' public behaviour is
documented on the modules themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from maskc.backends import attention
from maskc.compiler import compile as compile_pattern
from maskc.ir.layout import FULL, Layout
from maskc.patterns import library
from maskc.patterns.core import Pattern
from maskc.patterns.library import key_padding

PatternLike = Pattern | Layout  # or a maskc Plan (duck-typed: see is_plan)


# ------------------------------------------------------------------ checks
def check_embed(embed_dim: int, num_heads: int, what: str = "embed_dim") -> int:
    """Validate (embed_dim, num_heads); return head_dim."""
    for name, v in ((what, embed_dim), ("num_heads", num_heads)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if embed_dim % num_heads:
        raise ValueError(f"{what}={embed_dim} must be divisible by num_heads={num_heads}")
    return embed_dim // num_heads


def check_positive_int(v: Any, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def check_input(x: Any, embed_dim: int, module: str, dim_name: str = "d_model",
                param: torch.Tensor | None = None, name: str = "input") -> tuple[int, int]:
    """x must be a floating tensor [batch, seq, embed_dim] (of ``param``'s dtype when given); return (batch, seq)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"{module}: {name} must be [batch, seq, {dim_name}={embed_dim}] (batch_first), got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != embed_dim:
        raise ValueError(f"{module}: {name}'s last dimension must be {dim_name}={embed_dim}, got shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError(f"{module}: {name}'s sequence length must be >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{module}: {name} must be a floating tensor, got {x.dtype}")
    check_dtype(x, param, module, name)
    return int(x.shape[0]), int(x.shape[1])


def check_dtype(x: torch.Tensor, param: torch.Tensor | None, module: str, name: str = "input") -> None:
    """A clear error for an input whose dtype differs from the module's parameters (outside autocast)."""
    if param is None or x.dtype == param.dtype or torch.is_autocast_enabled(x.device.type):
        return
    raise TypeError(
        f"{module}: {name} dtype {x.dtype} does not match the module's parameters ({param.dtype}); "
        f"convert one of them, e.g. module.to({x.dtype}) or x.to({param.dtype})"
    )


def check_key_padding(mask: Any, batch: int, kv_len: int, module: str) -> torch.Tensor | None:
    """``key_padding_mask`` as ``nn.MultiheadAttention`` takes it: None, or bool ``[batch, kv_len]``, True = padding.

    Example:
        >>> check_key_padding(torch.tensor([[False, True]]), 1, 2, "M").tolist()
        [[False, True]]
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{module}: key_padding_mask must be a bool torch.Tensor [batch, kv_len], got "
                        f"{type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{module}: key_padding_mask must be bool (True = padding, as nn.MultiheadAttention), got "
                        f"{mask.dtype}; for an additive float mask pass mask == float('-inf')")
    if mask.dim() == 1 and batch == 1:
        mask = mask[None]
    if tuple(mask.shape) != (batch, kv_len):
        raise ValueError(f"{module}: key_padding_mask must be [batch={batch}, kv_len={kv_len}], got shape "
                         f"{tuple(mask.shape)}")
    return mask


# ----------------------------------------------------------------- backends
def resolve_backend(backend: str, q: torch.Tensor | None = None, params_need_grad: bool = True) -> str:
    """The backend name a module passes to ``maskc.backends`` (checked to be a string).

    ``"auto"`` is left to the registry, which picks the sparse torch backend for CPU torch
    tensors (training included) and never the dense float64 reference for training.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    return backend


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: Layout, backend: str = "auto",
           return_lse: bool = False, scale: float | None = None, dropout_p: float = 0.0):
    """Masked softmax attention of ``[B, H, L, D]`` tensors over ``layout`` via ``maskc.backends``.

    ``dropout_p`` drops attention probabilities (training); backends without dropout refuse it.
    """
    return attention(q, k, v, layout, backend=backend, scale=scale, return_lse=return_lse, dropout_p=dropout_p)


_DENSE_CACHE: dict[int, tuple[Layout, np.ndarray]] = {}


def dense_mask(layout: Layout) -> np.ndarray:
    """bool [H, q_len, kv_len] (small sizes; cached per layout object).

    The cache keeps the layout with its mask: an ``id`` alone can be reused by a new
    layout once the old one is garbage collected, which would return a stale mask.
    """
    key = id(layout)
    hit = _DENSE_CACHE.get(key)
    if hit is not None and hit[0] is layout:
        return hit[1]
    m = layout.to_dense()
    if len(_DENSE_CACHE) > 64:
        _DENSE_CACHE.clear()
    _DENSE_CACHE[key] = (layout, m)
    return m


def is_plan(obj: Any) -> bool:
    """A maskc execution plan (``mc.plan``): runs attention itself, fixed lengths, has ``.pattern``."""
    return hasattr(obj, "__maskc_attention__") and all(hasattr(obj, a) for a in ("pattern", "q_len", "kv_len"))


def describe(pattern: Any) -> str:
    """Pattern text of a Pattern, Layout or Plan (for repr)."""
    if isinstance(pattern, Layout):
        return pattern.pattern_text
    if is_plan(pattern):
        return f"plan({pattern.pattern.text()}, q_len={pattern.q_len})"
    return pattern.text()


def layout_is_causal(layout: Layout) -> bool:
    """True iff no head allows a key j > i (checked block by block, never densely)."""
    if layout.nnz_blocks == 0:
        return True
    Bq, Bk = layout.block_q, layout.block_k
    rows = layout.block_row.astype(np.int64)
    cols = layout.col_idx.astype(np.int64)
    i_max = np.minimum((rows + 1) * Bq, layout.q_len) - 1
    j_min = cols * Bk
    j_max = np.minimum((cols + 1) * Bk, layout.kv_len) - 1
    i_min = rows * Bq
    # blocks entirely on or below the diagonal are causal whatever their content
    safe = j_max <= i_min
    if safe.all():
        return True
    if np.any(j_min[~safe] > i_max[~safe]):
        return False  # a non-empty block strictly above the diagonal
    todo = np.flatnonzero(~safe)
    ii = np.arange(Bq)[:, None]
    jj = np.arange(Bk)[None, :]
    for b in todo:
        gi = i_min[b] + ii
        gj = j_min[b] + jj
        valid = (gi < layout.q_len) & (gj < layout.kv_len)
        allowed = valid if layout.kind[b] == FULL else layout.mask_bits[layout.partial_id[b]] & valid
        if np.any(allowed & (gj > gi)):
            return False
    return True


def compile_layout(pattern: PatternLike, q_len: int, kv_len: int | None, block: int | tuple[int, int],
                   heads: int | None) -> Layout:
    """A Layout for ``pattern`` at these sizes (a Layout or a Plan passes through after a size check)."""
    kv_len = q_len if kv_len is None else kv_len
    if isinstance(pattern, Layout) or is_plan(pattern):
        what = "layout was compiled" if isinstance(pattern, Layout) else "plan was made"
        if (pattern.q_len, pattern.kv_len) != (q_len, kv_len):
            raise ValueError(
                f"the {what} for q_len={pattern.q_len}, kv_len={pattern.kv_len} but the input has "
                f"q_len={q_len}, kv_len={kv_len}; pass a Pattern to compile per length"
            )
        return pattern
    return compile_pattern(pattern, q_len, kv_len, block=block, heads=heads)


def check_pattern(pattern: Any, num_heads: int, module: str) -> PatternLike:
    if not isinstance(pattern, (Pattern, Layout)) and not is_plan(pattern):
        raise TypeError(f"{module}: pattern must be a maskc Pattern, Layout or Plan, got {type(pattern).__name__}")
    if isinstance(pattern, Layout):
        nh = pattern.heads
    else:
        nh = (pattern.pattern if is_plan(pattern) else pattern).n_heads
    if nh is not None and nh not in (1, num_heads):
        raise ValueError(f"{module}: the pattern has {nh} per-head patterns but num_heads={num_heads}")
    return pattern


class LayoutCache:
    """Per-module cache of compiled layouts keyed by (q_len, kv_len) (mc.compile caches too)."""

    def __init__(self, pattern: PatternLike, block, heads: int | None):
        self.pattern, self.block, self.heads = pattern, block, heads
        self._store: dict[tuple[int, int], Layout] = {}

    def get(self, q_len: int, kv_len: int | None = None, key_padding_mask: torch.Tensor | None = None) -> Layout:
        """The layout at these lengths; with ``key_padding_mask`` (bool ``[B, kv_len]``, True = padding, as
        ``nn.MultiheadAttention``) the pattern ``& mc.key_padding(~mask)``, a batched layout.

        Padded layouts are not kept here: ``mc.compile`` caches them by the pattern's content
        (the mask's values included), so a new mask can never return a stale layout.
        """
        if key_padding_mask is not None:
            return self.padded(q_len, q_len if kv_len is None else kv_len, key_padding_mask)
        key = (q_len, q_len if kv_len is None else kv_len)
        lay = self._store.get(key)
        if lay is None and torch.compiler.is_compiling() and isinstance(self.pattern, Pattern):  # numba: eager
            raise RuntimeError(f"no layout compiled yet for lengths {key} inside torch.compile: call the module once "
                               "eagerly at these lengths first (the pattern compiles with numba, outside the graph)")
        if lay is None:
            heads = self.heads if (isinstance(self.pattern, Pattern) and self.pattern.n_heads) else None
            lay = compile_layout(self.pattern, key[0], key[1], self.block, heads)
            if len(self._store) > 32:
                self._store.clear()
            self._store[key] = lay
        return lay

    def padded(self, q_len: int, kv_len: int, key_padding_mask: torch.Tensor) -> Layout:
        """The batched layout of ``pattern & mc.key_padding(~key_padding_mask)`` (see :meth:`get`)."""
        if not isinstance(self.pattern, Pattern):
            raise ValueError("key_padding_mask needs the module's pattern to be a maskc Pattern: a fixed Layout or "
                             "Plan cannot take a per-batch mask; build the module with the Pattern")
        real = ~key_padding_mask.detach().cpu().numpy()
        heads = self.heads if self.pattern.n_heads else None
        return compile_layout(self.pattern & key_padding(real), q_len, kv_len, self.block, heads)

    def layout_of(self, q_len: int, kv_len: int | None = None) -> Layout:
        """Like :meth:`get`, but a Plan's pattern is compiled: a Layout for row counts and causality."""
        lay = self.get(q_len, kv_len)
        if not is_plan(lay):
            return lay
        key = ("plan", lay.q_len, lay.kv_len)
        comp = self._store.get(key)
        if comp is None:
            comp = compile_layout(lay.pattern, lay.q_len, lay.kv_len, lay.block, self.heads if lay.pattern.n_heads else None)
            self._store[key] = comp
        return comp


# ----------------------------------------------------------------- patterns
def bird_pattern(kind: str, window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Pattern:
    """causal & (global j < G | 0 <= d <= w | d in S (<= cap)), S the primes, squares or Mian-Chowla set."""
    name = {"primes": "prime_bird", "squares": "square_bird", "mian_chowla": "mian_chowla_bird"}[kind]
    return getattr(library, name)(window=window, global_tokens=global_tokens, cap=cap)


def ring_pattern(radius: int, causal: bool) -> Pattern:
    """Ring-local: causal form 0 <= d <= r, else circular distance <= r (library pi_ring)."""
    return library.pi_ring(radius, causal=causal)


def pi_pattern(period: int, causal: bool, variant: str = "all", m: int | None = None) -> Pattern:
    """π-step (library pi_step): variants "all", "bounded" (m required), "doubling"."""
    return library.pi_step(period, variant=variant, m=m, causal=causal)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]."""
    B, L, E = x.shape
    return x.view(B, L, num_heads, E // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]."""
    B, H, L, D = x.shape
    return x.transpose(1, 2).reshape(B, L, H * D)
