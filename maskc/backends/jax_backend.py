"""The jax backend: jit-compiled block-sparse attention, differentiable with ``jax.grad``.

The layout is lowered once (cached on it) to padded per-row block lists: for every stored
head and query block, the key blocks it touches padded to the largest count ``K``, with a
mask id per slot (0: padding, 1: FULL, 2 + u: partial mask u of the layout's dictionary).
For each query block the backend gathers its ``K`` key/value blocks, computes the scores
``[Bq, K * Bk]``, applies the slot masks (and the ragged key tail), and runs a softmax
over the gathered keys (gather-then-softmax). Memory is ``O(B * H * n_qb * K * Bk * D)``:
the work actually done, never ``q_len * kv_len``; estimated first and refused above
:data:`MAX_BYTES`.

float16 / bfloat16 compute in float32; float64 needs ``jax_enable_x64``. lse is float32
(float64 for float64 inputs).

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
from maskc.ir.layout import PARTIAL

#: Refuse calls whose gathered blocks and scores would exceed this many bytes.
MAX_BYTES: int = 4 << 30
_CACHE_KEY = "maskc.backends.jax_backend.lists"


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
    """Padded per-row block lists of a layout (numpy, cached on the layout).

    Returns ``cols`` int32 [H, n_qb, K] (key block of each slot, 0 for padding),
    ``mids`` int32 [H, n_qb, K] (0 padding, 1 FULL, 2 + u partial mask u) and
    ``table`` bool [T, Bq, Bk] (the mask of each id; T >= U + 2). K and T are rounded up
    to powers of two (multiples of 64 above 64) so jit compilations are shared.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
        >>> bl = block_lists(lay)
        >>> bl["cols"][0].tolist(), bl["mids"][0].tolist()
        ([[0, 0], [0, 1]], [[2, 0], [1, 2]])
    """
    if _CACHE_KEY in layout._cache:
        return layout._cache[_CACHE_KEY]
    H, n_qb = layout.heads, layout.n_qb
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
    res = {"cols": cols, "mids": mids, "table": table}
    layout._cache[_CACHE_KEY] = res
    return res


def _device_lists(layout):
    import jax.numpy as jnp

    key = _CACHE_KEY + ".device"
    if key not in layout._cache:
        bl = block_lists(layout)
        layout._cache[key] = tuple(jnp.asarray(bl[n]) for n in ("cols", "mids", "table"))
    return layout._cache[key]


def _compute_dtype(dtype):
    import jax.numpy as jnp

    return jnp.float64 if dtype == jnp.float64 else jnp.float32


@partial(jax.jit, static_argnames=("q_len", "kv_len", "block_q", "block_k"))
def _attention(q, k, v, cols, mids, table, scale, *, q_len, kv_len, block_q, block_k):
    import jax.numpy as jnp

    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    group = Hq // Hkv
    Hl, n_qb, K = cols.shape
    n_kb = -(-kv_len // block_k)
    cdt = _compute_dtype(q.dtype)
    q, k, v = q.astype(cdt), k.astype(cdt), v.astype(cdt)
    q = jnp.pad(q, ((0, 0), (0, 0), (0, n_qb * block_q - q_len), (0, 0)))
    k = jnp.pad(k, ((0, 0), (0, 0), (0, n_kb * block_k - kv_len), (0, 0)))
    v = jnp.pad(v, ((0, 0), (0, 0), (0, n_kb * block_k - kv_len), (0, 0)))
    Qb = q.reshape(B, Hq, n_qb, block_q, D)
    Kb = k.reshape(B, Hkv, n_kb, block_k, D)
    Vb = v.reshape(B, Hkv, n_kb, block_k, D)
    hk = (jnp.arange(Hq) // group)[:, None, None]
    hl = jnp.arange(Hq) if Hl == Hq else jnp.zeros(Hq, jnp.int32)
    cols_h, mids_h = cols[hl], mids[hl]  # [Hq, n_qb, K]
    Kg = Kb[:, hk, cols_h]  # [B, Hq, n_qb, K, Bk, D]
    Vg = Vb[:, hk, cols_h]
    s = jnp.einsum("bhnid,bhnkjd->bhnikj", Qb, Kg) * jnp.asarray(scale, cdt)
    mask = table[mids_h]  # [Hq, n_qb, K, Bq, Bk]
    col_ok = (cols_h[..., None] * block_k + jnp.arange(block_k)) < kv_len  # [Hq, n_qb, K, Bk]
    mask = (mask & col_ok[..., None, :]).transpose(0, 1, 3, 2, 4)  # [Hq, n_qb, Bq, K, Bk]
    s = jnp.where(mask[None], s, -jnp.inf)
    mx = jax.lax.stop_gradient(jnp.max(s, axis=(4, 5)))  # [B, Hq, n_qb, Bq]
    mx_safe = jnp.where(jnp.isfinite(mx), mx, 0.0)
    p = jnp.exp(s - mx_safe[..., None, None])  # exactly 0 where masked
    den = jnp.sum(p, axis=(4, 5))
    nonempty = den > 0
    den_safe = jnp.where(nonempty, den, 1.0)
    out = jnp.einsum("bhnikj,bhnkjd->bhnid", p, Vg) / den_safe[..., None]
    lse = jnp.where(nonempty, mx_safe + jnp.log(den_safe), -jnp.inf)
    out = out.reshape(B, Hq, n_qb * block_q, D)[:, :, :q_len]
    lse = lse.reshape(B, Hq, n_qb * block_q)[:, :, :q_len]
    return out, lse


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
    out, lse = _attention(
        q, k, v, cols, mids, table, float(scale),
        q_len=layout.q_len, kv_len=layout.kv_len, block_q=layout.block_q, block_k=layout.block_k,
    )
    return out.astype(q.dtype), lse
