"""Token-level views of a layout: row degrees, token CSR, dense masks, scipy matrices.

:class:`TokenViews` extends :class:`~maskc.ir.views.LayoutViews` with the views whose
size is the number of allowed pairs (or the dense mask). Each estimates its output from
the block arrays and refuses (:class:`~maskc.errors.TooLargeError`) before allocating
when it would exceed ``max_elements``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from maskc.errors import TooLargeError
from maskc.ir import kernels as K
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, PARTIAL
from maskc.ir.masks import unpack_masks
from maskc.ir.views import LayoutViews
from maskc.limits import refuse_above


class TokenViews(LayoutViews):
    """Token-level operations of :class:`~maskc.ir.layout.Layout` (mixed into it)."""

    def _batched(self, a: np.ndarray) -> np.ndarray:
        return a.reshape((self.batch, self.heads) + a.shape[1:]) if self.batch > 1 else a

    def row_counts(self, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
        """Allowed keys of every query token: int64 [heads, q_len] ([batch, heads, q_len] when batch > 1).

        Computed block by block (O(nnz_blocks * block_q)), never densely; refused (TooLargeError)
        before allocating when slices * q_len exceeds ``max_elements``.
        """
        S, n_qb, Bq = self.n_slices, self.n_qb, self.block_q
        refuse_above(S * n_qb * Bq, max_elements, "the per-row key counts", "pass a larger max_elements, or "
                     "look at a row range (layout.rows(start, stop))", unit="rows")
        out = np.zeros(S * n_qb * Bq, dtype=np.int64)
        if self.nnz_blocks:
            _, vc = self.block_extents
            per_row = np.repeat(vc[:, None], Bq, axis=1)  # full blocks: every valid column
            part = self.kind == PARTIAL
            if part.any():
                per_row[part] = self.mask_bits.sum(axis=2)[self.partial_id[part]]
            base = (self.block_head.astype(np.int64) * n_qb + self.block_row) * Bq
            np.add.at(out, (base[:, None] + np.arange(Bq)).reshape(-1), per_row.reshape(-1))
        return self._batched(out.reshape(S, n_qb * Bq)[:, : self.q_len])

    def token_csr(self, s: int = 0, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
        """Token-level CSR of stored slice ``s``: ``(indptr int64 [q_len + 1], indices int32)``.

        Keys sorted within each row. O(q_len + allowed pairs); refused (TooLargeError) before any
        work when the slice has more than ``max_elements`` allowed pairs. Cached.

        Example:
            >>> import numpy as np, maskc as mc
            >>> indptr, indices = mc.Layout.from_dense(np.tril(np.ones((3, 3), bool)), block=2).token_csr()
            >>> indptr.tolist(), indices.tolist()
            ([0, 1, 3, 6], [0, 0, 1, 0, 1, 2])
        """
        lo, hi = self.slice_range(s)
        refuse_above(int(self.block_nnz[lo:hi].sum()), max_elements, f"the token-level CSR of slice {s}",
                     "pass a larger max_elements, or stay block-sparse (row_counts(), block_tiles())",
                     unit="allowed pairs")

        def make() -> tuple[np.ndarray, np.ndarray]:
            bits = self.mask_bits if self.n_unique_masks else np.zeros((1, self.block_q, self.block_k), bool)
            args = (self.row_ptr[s] - lo, self.col_idx[lo:hi], self.kind[lo:hi], self.partial_id[lo:hi],
                    bits, self.q_len, self.kv_len, self.block_q, self.block_k)
            counts = np.zeros(self.q_len, dtype=np.int64)
            K.csr_fill(*args, counts, np.zeros(1, np.int32), 0)
            indptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
            indices = np.empty(int(indptr[-1]), dtype=np.int32)
            K.csr_fill(*args, indptr, indices, 1)
            return indptr, indices

        return self._cached(f"token_csr/{s}", make)

    def to_dense(self, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
        """The token-level mask as bool [heads, q_len, kv_len] ([batch, heads, ...] when batch > 1).

        Raises :class:`~maskc.errors.TooLargeError` (before allocating) when the mask
        would exceed ``max_elements`` booleans.

        Example:
            >>> import maskc as mc
            >>> int(mc.compile(mc.causal(), q_len=4, block=2).to_dense()[0].sum())
            10
        """
        S, Bq, Bk = self.n_slices, self.block_q, self.block_k
        need = S * self.q_len * self.kv_len
        if need > max_elements:
            raise TooLargeError(
                f"to_dense would allocate {need:,} booleans ({need / 2**30:.2f} GiB) for {S} slice(s) x "
                f"{self.q_len} x {self.kv_len}, above max_elements={max_elements:,}; pass a larger max_elements, "
                "or use to_scipy() / row_counts() which stay sparse")
        if S * self.n_qb * Bq * self.n_kb * Bk > max(2 * need, 1 << 20):  # blocks much larger than the lengths
            return self._batched(self._dense_cropped())
        dense = np.zeros((S, self.n_qb, Bq, self.n_kb, Bk), dtype=bool)
        if self.nnz_blocks:
            dense[self.block_head, self.block_row, :, self.col_idx, :] = self.block_tiles()
        dense = dense.reshape(S, self.n_qb * Bq, self.n_kb * Bk)[:, : self.q_len, : self.kv_len]
        return self._batched(np.ascontiguousarray(dense))

    def _dense_cropped(self) -> np.ndarray:
        """to_dense for blocks far larger than the lengths: each block written cropped to its
        valid rows and columns (memory: the output, never whole padded tiles)."""
        out = np.zeros((self.n_slices, self.q_len, self.kv_len), dtype=bool)
        vr, vc = self.block_extents
        for b in range(self.nnz_blocks):
            h, nr, nc = int(self.block_head[b]), int(vr[b]), int(vc[b])
            r, c = int(self.block_row[b]) * self.block_q, int(self.col_idx[b]) * self.block_k
            if self.kind[b] == PARTIAL:
                out[h, r:r + nr, c:c + nc] = unpack_masks(self.masks[self.partial_id[b]][None, :nr],
                                                          self.block_k)[0, :, :nc]
            else:
                out[h, r:r + nr, c:c + nc] = True
        return out

    def to_scipy(self, fmt: Literal["csr", "bsr", "coo"] = "csr", head: int = 0,
                 max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> Any:
        """The token-level mask of stored slice ``head`` as a scipy.sparse matrix of bools.

        ``csr`` / ``coo`` have shape (q_len, kv_len); ``bsr`` keeps the (block_q, block_k)
        tiles, its shape padded to whole blocks. Refused (TooLargeError) before any work above
        ``max_elements`` allowed pairs (``bsr``: stored tile elements).

        Example:
            >>> import maskc as mc
            >>> mc.compile(mc.window(1), q_len=6, block=4).to_scipy("csr").nnz
            11
        """
        import scipy.sparse as sp

        if fmt not in ("csr", "bsr", "coo"):
            raise ValueError(f"fmt must be 'csr', 'bsr' or 'coo', got {fmt!r}")
        lo, hi = self.slice_range(head)
        if fmt == "bsr":
            refuse_above((hi - lo) * self.block_q * self.block_k, max_elements, f"the bsr matrix of slice {head}",
                         "pass a larger max_elements, or use fmt='csr'", unit="tile elements")
            shape = (self.n_qb * self.block_q, self.n_kb * self.block_k)
            return sp.bsr_matrix((self.block_tiles(slice(lo, hi)), self.col_idx[lo:hi].astype(np.int64),
                                  self.row_ptr[head] - lo), shape=shape, blocksize=self.block)
        indptr, indices = self.token_csr(head, max_elements)
        csr = sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(self.q_len, self.kv_len))
        csr.has_sorted_indices = True
        return csr.tocoo() if fmt == "coo" else csr

