"""The scipy backend: token-level CSR attention on the CPU, memory O(nnz), never dense.

For each stored slice (batch element, head) the layout is expanded once into a
token-level CSR structure (``indptr [q_len + 1]``, ``indices [nnz]``, kept in this
module's own per-layout cache). For every (batch, head) the backend then

1. computes scores only at allowed pairs: row-wise gathered dot products
   ``q[i] . k[j]``, vectorised over chunks of about :data:`CHUNK_PAIRS` pairs;
2. applies a segment softmax along CSR rows (``np.maximum.reduceat`` /
   ``np.add.reduceat``), rows without keys give out = 0 and lse = -inf;
3. multiplies the probability matrix (a ``scipy.sparse.csr_matrix``) with V.

Only allowed pairs are ever touched, so a row with no allowed key is exactly 0 (lse
-inf) and values at keys a row may not attend never reach it.

Arrays: numpy only (float16 and float32 compute in float32, float64 in float64).
Memory is estimated before anything is allocated and the call is refused with
:class:`~maskc.errors.TooLargeError` above :data:`MAX_BYTES`.

Example:
    >>> import numpy as np, maskc as mc
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> q = np.random.default_rng(0).normal(size=(1, 1, 6, 8)).astype(np.float32)
    >>> out, lse = attention_scipy(q, q, q, lay, scale=0.25)
    >>> out.dtype, lse.shape
    (dtype('float32'), (1, 1, 6))
"""

from __future__ import annotations

import numpy as np

from maskc.errors import TooLargeError
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import PARTIAL

#: Allowed pairs gathered at once when computing scores; small enough that the gathered
#: rows stay in cache (measured: 8K pairs is ~5x faster than 256K at head_dim 64).
CHUNK_PAIRS: int = 1 << 13
#: Refuse calls whose estimated memory exceeds this many bytes (index arrays + working set).
MAX_BYTES: int = 8 << 30
_CSR = LayoutCache("maskc.backends.scipy_backend")


def is_available() -> tuple[bool, str]:
    """scipy is a hard dependency of maskc, so this is (True, 'ok') unless it is broken."""
    try:
        import scipy.sparse  # noqa: F401
    except ImportError as e:  # pragma: no cover
        return False, f"scipy could not be imported: {e}"
    return True, "ok"


def token_csr(layout, head: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token-level CSR of one stored slice: ``(indptr int64 [q_len + 1], indices int32 [nnz])``.

    ``head`` is the stored slice index (``layout.slice_index(b, h)``). Built block row by
    block row straight from the BSR arrays (no dense mask, no sort), cached per layout.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((3, 3), bool)), block=2)
        >>> indptr, indices = token_csr(lay)
        >>> indptr.tolist(), indices.tolist()
        ([0, 1, 3, 6], [0, 0, 1, 0, 1, 2])
    """
    return _CSR.get(layout, ("csr", int(head)), lambda: _build_csr(layout, int(head)))


def _build_csr(layout, head: int) -> tuple[np.ndarray, np.ndarray]:
    Bq, Bk, Lq = layout.block_q, layout.block_k, layout.q_len
    vr, vc = layout.valid_rows(), layout.valid_cols()
    rp = layout.row_ptr[head]
    counts = np.zeros(Lq, dtype=np.int64)
    pieces: list[np.ndarray] = []
    col_in_block = np.arange(Bk)
    for qb in range(layout.n_qb):
        lo, hi = int(rp[qb]), int(rp[qb + 1])
        if hi == lo:
            continue
        cols = layout.col_idx[lo:hi]
        kind = layout.kind[lo:hi]
        bits = np.ones((hi - lo, Bq, Bk), dtype=bool)
        part = kind == PARTIAL
        if part.any():
            bits[part] = layout.mask_bits[layout.partial_id[lo:hi][part]]
        bits &= (col_in_block[None, :] < vc[cols][:, None])[:, None, :]  # ragged key tail
        nr = int(vr[qb])
        # (row, block, col) order = sorted key positions within each query row
        t = bits[:, :nr, :].transpose(1, 0, 2)
        r, b, c = np.nonzero(t)
        pieces.append((cols[b].astype(np.int64) * Bk + c).astype(np.int32))
        counts[qb * Bq : qb * Bq + nr] = t.sum(axis=(1, 2))
    indptr = np.zeros(Lq + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    return indptr, indices


def estimate_bytes(layout, batch: int, q_heads: int, head_dim: int, itemsize: int) -> int:
    """Bytes the backend will hold at its peak (index arrays, scores, one gathered chunk).

    Indices are kept per stored slice (12 bytes per pair: int32 column + int64 row);
    scores and probabilities are per (batch, head) at a time (2 floats per pair, plus a
    CSR copy); one chunk gathers ``2 * CHUNK_PAIRS * head_dim`` values.
    """
    per_head = layout.block_nnz  # exact allowed pairs of each stored block
    bh = layout.block_head
    nnz_h = np.bincount(bh, weights=per_head, minlength=layout.n_slices).astype(np.int64)
    index_bytes = int(nnz_h.sum()) * 12 + layout.n_slices * (layout.q_len + 1) * 8
    work = int(nnz_h.max(initial=0)) * (3 * itemsize + 12)
    chunk = 2 * CHUNK_PAIRS * head_dim * itemsize
    out = batch * q_heads * layout.q_len * (head_dim + 1) * itemsize
    return index_bytes + work + chunk + out


def attention_scipy(q: np.ndarray, k: np.ndarray, v: np.ndarray, layout, *, scale: float):
    """Sparse attention on validated numpy inputs; returns ``(out, lse)``.

    out has q's dtype; lse is float32 (float64 for float64 inputs), ``-inf`` on rows
    without allowed keys.
    """
    import scipy.sparse as sp

    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    group = Hq // Hkv
    cdt = np.float64 if q.dtype == np.float64 else np.float32
    need = estimate_bytes(layout, B, Hq, D, np.dtype(cdt).itemsize)
    if need > MAX_BYTES:
        raise TooLargeError(
            f"the scipy backend would need about {need / 2**30:.2f} GiB for {layout.nnz:,} allowed pairs "
            f"x batch {B} x {Hq} heads, above maskc.backends.scipy_backend.MAX_BYTES="
            f"{MAX_BYTES / 2**30:.2f} GiB; split the batch/heads, use a sparser layout, or raise MAX_BYTES"
        )
    out = np.zeros((B, Hq, Lq, D), dtype=q.dtype)
    lse = np.full((B, Hq, Lq), -np.inf, dtype=cdt)
    for sl in range(layout.n_slices):
        indptr, indices = token_csr(layout, sl)
        nnz = indices.shape[0]
        if nnz == 0:
            continue
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(Lq, dtype=np.int32), counts)
        nonempty = counts > 0
        starts = indptr[:-1][nonempty]
        bl, hl = divmod(sl, layout.heads)
        batches = range(B) if layout.batch == 1 else (bl,)
        heads = range(Hq) if layout.heads == 1 else (hl,)
        s = np.empty(nnz, dtype=cdt)
        for b in batches:
            for h in heads:
                qh = np.ascontiguousarray(q[b, h], dtype=cdt)
                kh = np.ascontiguousarray(k[b, h // group], dtype=cdt)
                vh = np.ascontiguousarray(v[b, h // group], dtype=cdt)
                for a in range(0, nnz, CHUNK_PAIRS):
                    e = min(a + CHUNK_PAIRS, nnz)
                    s[a:e] = np.einsum(
                        "nd,nd->n", np.take(qh, rows[a:e], axis=0), np.take(kh, indices[a:e], axis=0)
                    )
                s *= scale
                mx = np.maximum.reduceat(s, starts)  # one value per non-empty row
                mx_rows = np.repeat(mx, counts[nonempty])
                p = np.exp(s - mx_rows)
                den = np.add.reduceat(p, starts)
                p /= np.repeat(den, counts[nonempty])
                P = sp.csr_matrix((p, indices, indptr), shape=(Lq, vh.shape[0]))
                out[b, h] = P @ vh
                lse[b, h, nonempty] = mx + np.log(den)
    return out, lse
