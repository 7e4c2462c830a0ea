"""The jax backend: jit-compiled block-sparse attention, differentiable with ``jax.grad``.

The layout is lowered once (kept in this module's own per-layout cache) to padded per-row
block lists: for every stored slice (batch element, head) and query block, the key blocks
it touches padded to the largest count ``K``, with a mask id per slot (0: padding, 1:
FULL, 2 + u: partial mask u of the layout's dictionary).
For each query block the backend gathers its ``K`` key/value blocks, computes the scores
``[Bq, K * Bk]``, applies the slot masks (and the ragged key tail), and runs a softmax
over the gathered keys (gather-then-softmax). Memory is ``O(B * H * n_qb * K * Bk * D)``:
the work actually done, never ``q_len * kv_len``; estimated first and refused above
:data:`MAX_BYTES`.

float16 / bfloat16 compute in float32; float64 needs ``jax_enable_x64``. lse is float32
(float64 for float64 inputs). A row with no allowed key gives exactly 0 (lse -inf), and
NaN / inf at keys a row may not attend never reach it: non-finite k / v are zeroed for
the computation and the outputs that did attend them are set to NaN (``lax.cond``: the
extra work runs only when some value is non-finite).

Example:
    >>> import numpy as np, jax.numpy as jnp, maskc as mc
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> q = jnp.asarray(np.random.default_rng(0).normal(size=(1, 1, 6, 8)), jnp.float32)
    >>> out, lse = attention_jax(q, q, q, lay, scale=0.25)
    >>> out.shape, lse.shape
    ((1, 1, 6, 8), (1, 1, 6))
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import numpy as np

from maskc.errors import TooLargeError
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import PARTIAL

#: Refuse calls whose gathered blocks and scores would exceed this many bytes.
MAX_BYTES: int = 4 << 30
_LISTS = LayoutCache("maskc.backends.jax_backend")


def is_available() -> tuple[bool, str]:
    """(True, 'ok') when jax imports; else the reason."""
    try:
        import jax  # noqa: F401
        import jax.numpy  # noqa: F401
    except Exception as e:
        return False, f"jax is not installed or failed to import ({type(e).__name__}: {e}); pip install jax"
    return True, "ok"


def _bucket(n: int) -> int:
    """Round up to 1, 2, 4, 8, ... (then multiples of 64) so that jit shapes repeat across layouts."""
    n = max(n, 1)
    return 1 << (n - 1).bit_length() if n <= 64 else -(-n // 64) * 64


def block_lists(layout) -> dict[str, np.ndarray]:
    """Padded per-row block lists of a layout (numpy, cached per layout).

    Returns ``cols`` int32 [S, n_qb, K] (S stored slices) (key block of each slot, 0 for padding),
    ``mids`` int32 [S, n_qb, K] (0 padding, 1 FULL, 2 + u partial mask u) and
    ``table`` bool [T, Bq, Bk] (the mask of each id; T >= U + 2). K and T are rounded up
    to powers of two (multiples of 64 above 64) so jit compilations are shared.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
        >>> bl = block_lists(lay)
        >>> bl["cols"][0].tolist(), bl["mids"][0].tolist()
        ([[0, 0], [0, 1]], [[2, 0], [1, 2]])
    """
    return _LISTS.get(layout, "lists", lambda: _build_lists(layout))


def _build_lists(layout) -> dict[str, np.ndarray]:
    H, n_qb = layout.n_slices, layout.n_qb
    counts = np.diff(layout.row_ptr, axis=1)  # [H, n_qb]
    K = _bucket(int(counts.max(initial=0)))
    cols = np.zeros((H, n_qb, K), np.int32)
    mids = np.zeros((H, n_qb, K), np.int32)
    if layout.nnz_blocks:
        slot = np.arange(layout.nnz_blocks) - np.repeat(layout.row_ptr[:, :-1].reshape(-1), counts.reshape(-1))
        h, r = layout.block_head, layout.block_row
        cols[h, r, slot] = layout.col_idx
        mids[h, r, slot] = np.where(layout.kind == PARTIAL, layout.partial_id + 2, 1)
    table = np.zeros((_bucket(layout.n_unique_masks + 2), layout.block_q, layout.block_k), bool)
    table[1] = True
    if layout.n_unique_masks:
        table[2 : 2 + layout.n_unique_masks] = layout.mask_bits
    return {"cols": cols, "mids": mids, "table": table}


def _device_lists(layout):
    import jax.numpy as jnp

    def make():
        bl = block_lists(layout)
        return tuple(jnp.asarray(bl[n]) for n in ("cols", "mids", "table"))

    return _LISTS.get(layout, "device", make)


def _slice_index(layout, batch: int, q_heads: int) -> np.ndarray:
    """int32 [batch, q_heads]: the stored slice each (batch element, head) reads."""
    return np.array([[layout.slice_index(b, h) for h in range(q_heads)] for b in range(batch)], np.int32)


def _compute_dtype(dtype):
    import jax.numpy as jnp

    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _finite(x):
    """``(x with NaN / inf zeroed, bool mask of them, whether there is any)``."""
    import jax.numpy as jnp

    bad = ~jnp.isfinite(x)
    return jnp.where(bad, jnp.zeros((), x.dtype), x), bad, jnp.any(bad)


@partial(jax.jit, static_argnames=("q_len", "kv_len", "block_q", "block_k"))
def _attention(q, k, v, cols, mids, table, sidx, scale, *, q_len, kv_len, block_q, block_k):
    import jax.numpy as jnp

    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    group = Hq // Hkv
    n_qb, K = cols.shape[1], cols.shape[2]
    n_kb = -(-kv_len // block_k)
    cdt = _compute_dtype(q.dtype)
    q, k, v = q.astype(cdt), k.astype(cdt), v.astype(cdt)
    q = jnp.pad(q, ((0, 0), (0, 0), (0, n_qb * block_q - q_len), (0, 0)))
    k = jnp.pad(k, ((0, 0), (0, 0), (0, n_kb * block_k - kv_len), (0, 0)))
    v = jnp.pad(v, ((0, 0), (0, 0), (0, n_kb * block_k - kv_len), (0, 0)))
    k_clean, k_bad, k_any = _finite(k)
    v_clean, v_bad, v_any = _finite(v)
    Qb = q.reshape(B, Hq, n_qb, block_q, D)
    cols_s, mids_s = cols[sidx], mids[sidx]  # [B, Hq, n_qb, K]
    bi = jnp.arange(B)[:, None, None, None]
    hk = (jnp.arange(Hq) // group)[None, :, None, None]

    def gather(x):  # [B, Hkv, n_kb * Bk, D] -> [B, Hq, n_qb, K, Bk, D]
        return x.reshape(B, Hkv, n_kb, block_k, -1)[bi, hk, cols_s]

    s = jnp.einsum("bhnid,bhnkjd->bhnikj", Qb, gather(k_clean)) * jnp.asarray(scale, cdt)

    def raw_scores(s):  # keys with a non-finite k keep their true (non-finite) scores, without gradient
        raw = jnp.einsum("bhnid,bhnkjd->bhnikj", jax.lax.stop_gradient(Qb), jax.lax.stop_gradient(gather(k)))
        bad_key = jnp.any(gather(k_bad), axis=-1)  # [B, Hq, n_qb, K, Bk]
        return jnp.where(bad_key[:, :, :, None], raw * jnp.asarray(scale, cdt), s)

    s = jax.lax.cond(k_any, raw_scores, lambda s: s, s)
    mask = table[mids_s]  # [B, Hq, n_qb, K, Bq, Bk]
    col_ok = (cols_s[..., None] * block_k + jnp.arange(block_k)) < kv_len  # [B, Hq, n_qb, K, Bk]
    mask = (mask & col_ok[..., None, :]).transpose(0, 1, 2, 4, 3, 5)  # [B, Hq, n_qb, Bq, K, Bk]
    s = jnp.where(mask, s, -jnp.inf)
    mx = jax.lax.stop_gradient(jnp.max(s, axis=(4, 5)))  # [B, Hq, n_qb, Bq]
    mx_safe = jnp.where(jnp.isfinite(mx), mx, 0.0)
    p = jnp.exp(s - mx_safe[..., None, None])  # exactly 0 where masked
    den = jnp.sum(p, axis=(4, 5))
    nonempty = den > 0
    den_safe = jnp.where(nonempty, den, 1.0)
    out = jnp.einsum("bhnikj,bhnkjd->bhnid", p, gather(v_clean)) / den_safe[..., None]

    def poisoned(out):  # outputs that read a non-finite value become NaN
        hit = jnp.einsum("bhnikj,bhnkjd->bhnid", jax.lax.stop_gradient(p > 0).astype(cdt),
                         gather(v_bad).astype(cdt)) > 0
        return jnp.where(hit, jnp.nan, out)

    out = jax.lax.cond(v_any, poisoned, lambda o: o, out)
    lse = jnp.where(nonempty, mx_safe + jnp.log(den_safe), -jnp.inf)
    out = out.reshape(B, Hq, n_qb * block_q, D)[:, :, :q_len]
    lse = lse.reshape(B, Hq, n_qb * block_q)[:, :, :q_len]
    return out, lse


def block_list_attention(q, k, v, cols, mids, table, sidx, scale, *, q_len, kv_len, block_q, block_k):
    """The backend's jitted kernel on padded block lists held by the caller; returns ``(out, lse)``.

    ``cols`` / ``mids`` int32 ``[S, n_qb, K]`` and ``table`` bool ``[T, block_q, block_k]``
    are the arrays of :func:`block_lists` (or a subset of their slices, as
    :mod:`maskc.distributed.spmd` passes one rank's); ``sidx`` int32 ``[B, Hq]`` names the
    slice each (batch element, query head) reads. Inputs are not validated: use
    :func:`maskc.attention` unless you built the lists yourself.

    Example:
        >>> import numpy as np, jax.numpy as jnp, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
        >>> bl = block_lists(lay)
        >>> q = jnp.asarray(np.random.default_rng(0).normal(size=(1, 1, 6, 8)), jnp.float32)
        >>> out, lse = block_list_attention(q, q, q, bl["cols"], bl["mids"], bl["table"], jnp.zeros((1, 1), jnp.int32),
        ...                                 0.25, q_len=6, kv_len=6, block_q=4, block_k=4)
        >>> bool(jnp.allclose(out, attention_jax(q, q, q, lay, scale=0.25)[0]))
        True
    """
    return _attention(q, k, v, cols, mids, table, sidx, scale, q_len=q_len, kv_len=kv_len, block_q=block_q,
                      block_k=block_k)


def estimate_bytes(layout, batch: int, q_heads: int, head_dim: int, itemsize: int = 4) -> int:
    """Bytes of the gathered K/V blocks, scores and probabilities in the compute dtype.

    ``itemsize`` is that of the compute dtype: 4 (float16 / bfloat16 / float32 inputs
    compute in float32) or 8 (float64).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
        >>> estimate_bytes(lay, 1, 1, 8), estimate_bytes(lay, 1, 1, 8, itemsize=8)
        (704, 1408)
    """
    bl = block_lists(layout)
    K = bl["cols"].shape[2]
    slots = batch * q_heads * layout.n_qb * K
    return slots * layout.block_k * (2 * head_dim + 3 * layout.block_q) * int(itemsize)


def attention_jax(q: Any, k: Any, v: Any, layout, *, scale: float):
    """Block-sparse attention on validated jax arrays; returns ``(out, lse)``; differentiable."""
    B, Hq, Lq, D = q.shape
    need = estimate_bytes(layout, B, Hq, D, np.dtype(_compute_dtype(q.dtype)).itemsize)
    if need > MAX_BYTES:
        raise TooLargeError(
            f"the jax backend would gather about {need / 2**30:.2f} GiB of blocks and scores "
            f"(batch {B} x {Hq} heads x {layout.n_qb} query blocks x {block_lists(layout)['cols'].shape[2]} "
            f"key blocks), above maskc.backends.jax_backend.MAX_BYTES={MAX_BYTES / 2**30:.2f} GiB; "
            "split the batch / heads or raise MAX_BYTES"
        )
    cols, mids, table = _device_lists(layout)
    sidx = _slice_index(layout, B, Hq)
    out, lse = _attention(
        q, k, v, cols, mids, table, sidx, float(scale),
        q_len=layout.q_len, kv_len=layout.kv_len, block_q=layout.block_q, block_k=layout.block_k,
    )
    return out.astype(q.dtype), lse
