"""Sizes and derived views of a layout: the operations every consumer of the IR needs.

:class:`LayoutViews` is the half of :class:`~maskc.ir.layout.Layout` that only *reads*
the arrays: sizes, per-block indices and extents, tile expansion (FULL / PARTIAL blocks to
element tiles), the transposed view, token-level views. Views that cost more than O(1)
are computed once and kept with the layout. Costs are stated per method; none allocates
anything sized by ``n_kb`` unless it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from maskc.ir import kernels as K
from maskc.ir.assemble import clear_tails
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, FULL, PARTIAL, ceil_div, extent
from maskc.ir.masks import unpack_masks
from maskc.limits import refuse_above

T = TypeVar("T")


@dataclass(frozen=True)
class CSCView:
    """The transposed (key-block major) view used by backward passes and q-side block lists.

    ``col_ptr[s, kb] .. col_ptr[s, kb + 1]`` index ``row_idx`` (query-block indices,
    increasing) and ``perm`` (position of that block in the BSR arrays).
    """

    col_ptr: np.ndarray  # int64 [slices, n_kb + 1]
    row_idx: np.ndarray  # int32 [nnzb]
    perm: np.ndarray  # int64 [nnzb]


class LayoutViews:
    """Read-only operations of :class:`~maskc.ir.layout.Layout` (mixed into it)."""

    q_len: int
    kv_len: int
    block_q: int
    block_k: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    kind: np.ndarray
    partial_id: np.ndarray
    masks: np.ndarray
    batch: int

    def _cached(self, key: str, make: Callable[[], T]) -> T:  # provided by Layout
        raise NotImplementedError

    # ------------------------------------------------------------------ sizes
    @property
    def n_slices(self) -> int:
        """Stored (batch element, head) slices: ``batch * heads`` rows of ``row_ptr``."""
        return int(self.row_ptr.shape[0])

    @property
    def heads(self) -> int:
        """Number of stored heads (1 means the layout broadcasts over heads)."""
        return self.n_slices // max(int(self.batch), 1)

    def slice_index(self, b: int, h: int) -> int:
        """The stored slice that batch element ``b`` and attention head ``h`` read.

        A layout with one stored batch element (head) broadcasts over every ``b`` (``h``).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.ones((2, 3, 4, 4), bool), block=2).slice_index(1, 2)
            5
        """
        return (b if self.batch > 1 else 0) * self.heads + (h if self.heads > 1 else 0)

    @property
    def n_qb(self) -> int:
        """Number of query blocks, ``ceil(q_len / block_q)``."""
        return ceil_div(self.q_len, self.block_q)

    @property
    def n_kb(self) -> int:
        """Number of key blocks, ``ceil(kv_len / block_k)``."""
        return ceil_div(self.kv_len, self.block_k)

    @property
    def block(self) -> tuple[int, int]:
        """``(block_q, block_k)``."""
        return (self.block_q, self.block_k)

    @property
    def nnz_blocks(self) -> int:
        """Number of non-empty blocks over all stored slices."""
        return int(self.col_idx.shape[0])

    @property
    def n_full(self) -> int:
        """Number of FULL blocks."""
        return int(np.count_nonzero(self.kind == FULL))

    @property
    def n_partial(self) -> int:
        """Number of PARTIAL blocks."""
        return int(np.count_nonzero(self.kind == PARTIAL))

    @property
    def n_unique_masks(self) -> int:
        """Number of distinct partial-block bitmasks stored."""
        return int(self.masks.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the layout arrays."""
        return int(sum(a.nbytes for a in (self.row_ptr, self.col_idx, self.kind, self.partial_id, self.masks)))

    # ---------------------------------------------------------- block indices
    @property
    def block_row(self) -> np.ndarray:
        """Query-block index of every stored block (int32 [nnzb]); O(slices * n_qb + nnzb)."""
        return self._cached("block_row", lambda: K.block_rows(np.ascontiguousarray(self.row_ptr), self.nnz_blocks))

    @property
    def block_head(self) -> np.ndarray:
        """Stored-slice index (``b * heads + h``) of every stored block (int32 [nnzb])."""
        return self._cached("block_head", lambda: np.repeat(np.arange(self.n_slices, dtype=np.int32),
                                                            self.row_ptr[:, -1] - self.row_ptr[:, 0]))

    def slice_range(self, s: int) -> tuple[int, int]:
        """``(lo, hi)``: stored slice ``s`` owns blocks ``lo:hi`` of the flat arrays.

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.ones((2, 4, 4), bool), block=2).slice_range(1)
            (4, 8)
        """
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < self.n_slices:
            raise ValueError(f"slice must be an int in [0, {self.n_slices}), got {s!r}")
        return int(self.row_ptr[s, 0]), int(self.row_ptr[s, -1])

    # ----------------------------------------------------------------- extents
    def row_extent(self, qb: Any) -> np.ndarray:
        """Valid query rows of query blocks ``qb`` (int64, ``block_q`` except a ragged last block).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.ones((5, 5), bool), block=2).row_extent([0, 2]).tolist()
            [2, 1]
        """
        return extent(qb, self.block_q, self.q_len)

    def col_extent(self, kb: Any) -> np.ndarray:
        """Valid key columns of key blocks ``kb`` (int64); O(len(kb)), never O(n_kb)."""
        return extent(kb, self.block_k, self.kv_len)

    def valid_rows(self) -> np.ndarray:
        """Valid query rows of every query block (int64 [n_qb])."""
        return self.row_extent(np.arange(self.n_qb))

    def valid_cols(self) -> np.ndarray:
        """Valid key columns of every key block (int64 [n_kb]: O(n_kb); prefer :meth:`col_extent`)."""
        return self.col_extent(np.arange(self.n_kb))

    @property
    def block_extents(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)``: valid rows and columns of every stored block (int64 [nnzb] each)."""
        return self._cached("block_extents", lambda: (self.row_extent(self.block_row), self.col_extent(self.col_idx)))

    @property
    def padded_full(self) -> np.ndarray:
        """bool [nnzb]: the block allows all ``block_q x block_k`` elements of its tile (FULL and
        not cut by a ragged tail) — what kernels that skip masking on whole tiles need."""
        def make() -> np.ndarray:
            out = self.kind == FULL
            if self.q_len % self.block_q:  # only the last block row / column can be cut
                out &= self.block_row != self.n_qb - 1
            if self.kv_len % self.block_k:
                out &= self.col_idx != self.n_kb - 1
            return out

        return self._cached("padded_full", make)

    # ----------------------------------------------------------------- masks
    @property
    def mask_bits(self) -> np.ndarray:
        """The unique partial masks unpacked: bool [U, block_q, block_k]."""
        return self._cached("mask_bits", lambda: unpack_masks(self.masks, self.block_k))

    @property
    def mask_popcount(self) -> np.ndarray:
        """Allowed elements in each unique partial mask (int64 [U])."""
        return self._cached("mask_popcount", lambda: np.unpackbits(self.masks, axis=2).sum(axis=(1, 2), dtype=np.int64))

    def block_tiles(self, blocks: Any = None) -> np.ndarray:
        """Element tiles of stored blocks: bool [n, block_q, block_k] (FULL / PARTIAL expanded).

        ``blocks``: block indices (an int array), a ``slice`` of the flat arrays, or None for
        every block. FULL blocks are True on their valid rows and columns; everything past a
        ragged tail (rows >= q_len, columns >= kv_len) is False. Costs n * block_q * block_k
        booleans: select what you need.

        Example:
            >>> import numpy as np, maskc as mc
            >>> lay = mc.Layout.from_dense(np.tril(np.ones((3, 3), bool)), block=2)
            >>> lay.block_tiles([1]).astype(int).tolist()   # a FULL block cut by the ragged last row
            [[[1, 1], [0, 0]]]
        """
        if blocks is None:
            blocks = slice(0, self.nnz_blocks)
        idx = np.arange(self.nnz_blocks)[blocks] if isinstance(blocks, slice) else np.asarray(blocks, np.int64)
        tiles = np.ones((idx.size, self.block_q, self.block_k), dtype=bool)
        part = self.kind[idx] == PARTIAL
        if part.any():
            tiles[part] = self.mask_bits[self.partial_id[idx[part]]]
        vr, vc = self.block_extents
        return clear_tails(tiles, vr[idx], vc[idx])

    @property
    def block_nnz(self) -> np.ndarray:
        """Allowed token pairs in every stored block (int64 [nnzb]); O(nnzb)."""
        def make() -> np.ndarray:
            vr, vc = self.block_extents
            part = self.mask_popcount[np.maximum(self.partial_id, 0)] if self.masks.shape[0] else 0
            return np.where(self.kind == FULL, vr * vc, part).astype(np.int64)

        return self._cached("block_nnz", make)

    @property
    def nnz(self) -> int:
        """Exact number of allowed (slice, query, key) triples over stored slices."""
        return int(self.block_nnz.sum())

    @property
    def density(self) -> float:
        """Allowed pairs / (stored slices * q_len * kv_len)."""
        return self.nnz / (self.n_slices * self.q_len * self.kv_len)

    @property
    def block_density(self) -> float:
        """Non-empty blocks / (stored slices * n_qb * n_kb)."""
        return self.nnz_blocks / (self.n_slices * self.n_qb * self.n_kb)

    def slices_identical(self) -> bool:
        """True when every stored slice allows exactly the same pairs (O(nnzb) comparisons).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.ones((2, 4, 4), bool), block=2).slices_identical()
            True
        """
        if self.n_slices == 1:
            return True
        lo0, hi0 = self.slice_range(0)
        n = hi0 - lo0
        if self.nnz_blocks != n * self.n_slices:
            return False
        if not np.array_equal(self.row_ptr - self.row_ptr[:, :1], np.broadcast_to(self.row_ptr[0] - lo0,
                                                                                  self.row_ptr.shape)):
            return False
        for a in (self.col_idx, self.kind):
            if not (a.reshape(self.n_slices, n) == a[None, :n]).all():
                return False
        pid = self.partial_id.reshape(self.n_slices, n)
        part = self.kind[:n] == PARTIAL
        return bool((self.masks[pid[:, part]] == self.masks[pid[:1, part]]).all())

    # ------------------------------------------------------------ block views
    @property
    def csc(self) -> CSCView:
        """The transposed view, computed once by a counting sort: O(nnzb + slices * n_kb)."""
        def make() -> CSCView:
            S, n_kb = self.n_slices, self.n_kb
            key = self.block_head.astype(np.int64) * n_kb + self.col_idx
            perm, counts = K.counting_argsort(key, S * n_kb)  # stable: query blocks stay increasing
            col_ptr = np.zeros((S, n_kb + 1), dtype=np.int64)
            np.cumsum(counts.reshape(S, n_kb), axis=1, out=col_ptr[:, 1:])
            col_ptr += self.row_ptr[:, :1]
            return CSCView(col_ptr, self.block_row[perm].astype(np.int32), perm)

        return self._cached("csc", make)

    def block_grid(self, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
        """Block kinds on the whole grid: int8 [slices, n_qb, n_kb] (0 empty, PARTIAL, FULL).

        O(slices * n_qb * n_kb) memory, refused (TooLargeError) above ``max_elements`` cells.

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2).block_grid().tolist()
            [[[1, 0], [2, 1]]]
        """
        refuse_above(self.n_slices * self.n_qb * self.n_kb, max_elements, "the dense block grid",
                     "use the block lists (row_ptr / col_idx) instead, or pass a larger max_elements",
                     unit="cells")
        grid = np.zeros((self.n_slices, self.n_qb, self.n_kb), dtype=np.int8)
        grid[self.block_head, self.block_row, self.col_idx] = self.kind
        return grid
