"""The block-sparse IR: :class:`Layout`.

A Layout describes, for each stored head, which (query, key) token pairs may attend,
at the granularity of (block_q x block_k) tiles:

* BSR over blocks: ``row_ptr[h, qb] .. row_ptr[h, qb + 1]`` index the flat arrays
  ``col_idx`` (key-block index, strictly increasing within a row), ``kind``
  (:data:`PARTIAL` or :data:`FULL`) and ``partial_id`` (index into ``masks`` or -1).
  Offsets are global: head h's blocks follow head h-1's, so ``row_ptr[h, 0] ==
  row_ptr[h - 1, -1]`` and ``row_ptr[-1, -1] == nnz_blocks``.
* ``masks``: the dictionary of *unique* partial-block bitmasks, packed little-endian
  along the key axis: ``uint8 [U, block_q, ceil(block_k / 8)]``. Bits of rows or
  columns beyond a ragged tail are zero.
* Empty blocks are absent. A FULL block allows every *valid* element (elements
  past ``q_len`` / ``kv_len`` in tail blocks never count).

Stored *slices*: ``row_ptr`` has one row per (batch element, head) pair, batch-major
(slice ``s = b * heads + h``). A layout with one stored head broadcasts over any number
of attention heads; one with ``batch == 1`` broadcasts over any batch size
(:meth:`Layout.slice_index` does the mapping).

Positions: query row ``r`` of the layout is the absolute position ``q_offset + r``; key
column ``c`` is position ``c``. A pattern compiled with ``q_offset`` is evaluated as if
the query sequence had ``q_offset + q_len`` rows, of which the layout holds the last
``q_len`` (decode and chunked prefill use ``q_offset = kv_len - q_len``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from maskc.errors import LayoutFormatError, TooLargeError

EMPTY: int = 0
PARTIAL: int = 1
FULL: int = 2

#: Version of the in-memory schema and of the file format (see docs/format.md).
FORMAT_VERSION: int = 2

#: Default cap on the elements ``Layout.to_dense`` may allocate (256 Mi booleans).
DEFAULT_MAX_DENSE_ELEMENTS: int = 1 << 28


#: Largest block edge a layout may use.
MAX_BLOCK: int = 4096


def _short(text: str, limit: int = 200) -> str:
    if not text:
        return "<unnamed>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def normalize_block(block) -> tuple[int, int]:
    """``(block_q, block_k)`` from an int or a pair; ValueError unless both are in [1, MAX_BLOCK].

    Example:
        >>> normalize_block(64), normalize_block((128, 64))
        ((64, 64), (128, 64))
    """
    if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
        bq = bk = int(block)
    else:
        try:
            bq, bk = (int(b) for b in block)
        except (TypeError, ValueError):
            raise ValueError(f"block must be an int or a (block_q, block_k) pair of ints, got {block!r}") from None
    if not (1 <= bq <= MAX_BLOCK and 1 <= bk <= MAX_BLOCK):
        raise ValueError(f"block sizes must be in [1, {MAX_BLOCK}], got {(bq, bk)}")
    return bq, bk


@dataclass(frozen=True)
class CSCView:
    """The transposed (key-block major) view used by backward passes.

    ``col_ptr[h, kb] .. col_ptr[h, kb + 1]`` index ``row_idx`` (query-block indices,
    increasing) and ``perm`` (position of that block in the BSR arrays).
    """

    col_ptr: np.ndarray  # int64 [H, n_kb + 1]
    row_idx: np.ndarray  # int32 [nnzb]
    perm: np.ndarray  # int64 [nnzb]


@dataclass(frozen=True, eq=False)
class Layout:
    """Block-sparse attention layout (the maskc IR).

    Build one with :func:`maskc.compile` (from a pattern) or :meth:`Layout.from_dense`
    (from a boolean mask); never by hand unless you call :meth:`validate`.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((5, 5), bool)), block=2)
        >>> lay.nnz, lay.nnz_blocks, lay.n_full, lay.n_partial
        (15, 6, 4, 2)
    """

    q_len: int
    kv_len: int
    block_q: int
    block_k: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    kind: np.ndarray
    partial_id: np.ndarray
    masks: np.ndarray
    pattern_text: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    #: absolute position of query row 0 (see the module docstring).
    q_offset: int = 0
    #: stored batch elements (1 broadcasts over any batch size).
    batch: int = 1

    # ------------------------------------------------------------------ sizes
    @property
    def heads(self) -> int:
        """Number of stored heads (1 means the layout broadcasts over heads)."""
        return int(self.row_ptr.shape[0]) // max(int(self.batch), 1)

    @property
    def n_slices(self) -> int:
        """Stored (batch element, head) slices: ``batch * heads`` rows of ``row_ptr``."""
        return int(self.row_ptr.shape[0])

    def slice_index(self, b: int, h: int) -> int:
        """The stored slice that batch element ``b`` and attention head ``h`` read.

        A layout with one stored batch element (head) broadcasts over every ``b`` (``h``).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.ones((2, 3, 4, 4), bool), block=2).slice_index(1, 2)
            5
        """
        bs = b if self.batch > 1 else 0
        hs = h if self.heads > 1 else 0
        return bs * self.heads + hs

    @property
    def n_qb(self) -> int:
        """Number of query blocks, ``ceil(q_len / block_q)``."""
        return _ceil_div(self.q_len, self.block_q)

    @property
    def n_kb(self) -> int:
        """Number of key blocks, ``ceil(kv_len / block_k)``."""
        return _ceil_div(self.kv_len, self.block_k)

    @property
    def block(self) -> tuple[int, int]:
        """``(block_q, block_k)``."""
        return (self.block_q, self.block_k)

    @property
    def nnz_blocks(self) -> int:
        """Number of non-empty blocks over all stored heads."""
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

    # ------------------------------------------------------------- derived data
    def _cached(self, key: str, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def block_row(self) -> np.ndarray:
        """Query-block index of every stored block (int32 [nnzb])."""

        def make():
            counts = np.diff(self.row_ptr, axis=1).reshape(-1)
            rows = np.tile(np.arange(self.n_qb, dtype=np.int32), self.n_slices)
            return np.repeat(rows, counts)

        return self._cached("block_row", make)

    @property
    def block_head(self) -> np.ndarray:
        """Stored-slice index (``b * heads + h``) of every stored block (int32 [nnzb])."""

        def make():
            counts = self.row_ptr[:, -1] - self.row_ptr[:, 0]
            return np.repeat(np.arange(self.n_slices, dtype=np.int32), counts)

        return self._cached("block_head", make)

    @property
    def mask_bits(self) -> np.ndarray:
        """The unique partial masks unpacked: bool [U, block_q, block_k]."""

        def make():
            bits = np.unpackbits(self.masks, axis=2, count=self.block_k, bitorder="little")
            return bits.astype(bool)

        return self._cached("mask_bits", make)

    @property
    def mask_popcount(self) -> np.ndarray:
        """Allowed elements in each unique partial mask (int64 [U])."""
        return self._cached(
            "mask_popcount",
            lambda: np.unpackbits(self.masks.reshape(self.masks.shape[0], -1), axis=1).sum(axis=1, dtype=np.int64)
            if self.masks.shape[0] else np.zeros(0, dtype=np.int64),
        )

    @property
    def csc(self) -> CSCView:
        """The transposed view (computed once, on first use)."""

        def make():
            H, n_kb = self.n_slices, self.n_kb
            key = self.block_head.astype(np.int64) * n_kb + self.col_idx
            # stable sort keeps query blocks increasing inside each key block
            perm = np.argsort(key, kind="stable").astype(np.int64)
            counts = np.bincount(key, minlength=H * n_kb).reshape(H, n_kb)
            col_ptr = np.zeros((H, n_kb + 1), dtype=np.int64)
            col_ptr[:, 1:] = np.cumsum(counts, axis=1)
            col_ptr += self.row_ptr[:, :1]
            return CSCView(col_ptr, self.block_row[perm].astype(np.int32), perm)

        return self._cached("csc", make)

    def valid_rows(self) -> np.ndarray:
        """Valid query rows in each query block (int64 [n_qb])."""
        r = np.full(self.n_qb, self.block_q, dtype=np.int64)
        if self.n_qb:
            r[-1] = self.q_len - (self.n_qb - 1) * self.block_q
        return r

    def valid_cols(self) -> np.ndarray:
        """Valid key columns in each key block (int64 [n_kb])."""
        c = np.full(self.n_kb, self.block_k, dtype=np.int64)
        if self.n_kb:
            c[-1] = self.kv_len - (self.n_kb - 1) * self.block_k
        return c

    @property
    def block_nnz(self) -> np.ndarray:
        """Allowed token pairs in every stored block (int64 [nnzb])."""

        def make():
            full = self.valid_rows()[self.block_row] * self.valid_cols()[self.col_idx]
            pid = np.maximum(self.partial_id, 0)
            part = self.mask_popcount[pid] if self.masks.shape[0] else np.zeros_like(full)
            return np.where(self.kind == FULL, full, part)

        return self._cached("block_nnz", make)

    @property
    def nnz(self) -> int:
        """Exact number of allowed (slice, query, key) triples over stored slices."""
        return int(self.block_nnz.sum())

    @property
    def density(self) -> float:
        """Allowed pairs / (stored slices * q_len * kv_len)."""
        total = self.n_slices * self.q_len * self.kv_len
        return self.nnz / total if total else 0.0

    @property
    def block_density(self) -> float:
        """Non-empty blocks / (stored slices * n_qb * n_kb)."""
        total = self.n_slices * self.n_qb * self.n_kb
        return self.nnz_blocks / total if total else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes held by the layout arrays."""
        return int(
            sum(a.nbytes for a in (self.row_ptr, self.col_idx, self.kind, self.partial_id, self.masks))
        )

    def row_counts(self) -> np.ndarray:
        """Allowed keys of every query token: int64 [heads, q_len] ([batch, heads, q_len] when batch > 1).

        Computed block by block (O(nnz_blocks * block_q)), never densely.
        """
        H, n_qb, Bq = self.n_slices, self.n_qb, self.block_q
        out = np.zeros((H, n_qb * Bq), dtype=np.int64)
        if self.nnz_blocks:
            vc = self.valid_cols()[self.col_idx]  # [nnzb]
            per_row = np.repeat(vc[:, None], Bq, axis=1)  # full blocks: every valid column
            part = self.kind == PARTIAL
            if part.any():
                row_pop = self.mask_bits.sum(axis=2)  # [U, Bq]
                per_row[part] = row_pop[self.partial_id[part]]
            rows = self.block_row.astype(np.int64) * Bq
            idx = (self.block_head.astype(np.int64) * (n_qb * Bq) + rows)[:, None] + np.arange(Bq)
            np.add.at(out.reshape(-1), idx.reshape(-1), per_row.reshape(-1))
        out = out[:, : self.q_len]
        return out.reshape(self.batch, self.heads, self.q_len) if self.batch > 1 else out

    # ------------------------------------------------------------ conversions
    def to_dense(self, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
        """The token-level mask as bool [heads, q_len, kv_len] ([batch, heads, ...] when batch > 1).

        Raises :class:`~maskc.errors.TooLargeError` (before allocating) when the mask
        would exceed ``max_elements`` booleans.

        Example:
            >>> import maskc as mc
            >>> int(mc.compile(mc.causal(), q_len=4, block=2).to_dense()[0].sum())
            10
        """
        H, Bq, Bk = self.n_slices, self.block_q, self.block_k
        need = H * self.n_qb * Bq * self.n_kb * Bk
        if need > max_elements:
            raise TooLargeError(
                f"to_dense would allocate {need:,} booleans ({need / 2**30:.2f} GiB) for "
                f"{H} head(s) x {self.q_len} x {self.kv_len}, above max_elements={max_elements:,}; "
                "pass a larger max_elements, or use to_scipy() / row_counts() which stay sparse"
            )
        dense = np.zeros((H, self.n_qb, Bq, self.n_kb, Bk), dtype=bool)
        if self.nnz_blocks:
            blocks = np.ones((self.nnz_blocks, Bq, Bk), dtype=bool)
            part = self.kind == PARTIAL
            if part.any():
                blocks[part] = self.mask_bits[self.partial_id[part]]
            dense[self.block_head, self.block_row, :, self.col_idx, :] = blocks
        dense = dense.reshape(H, self.n_qb * Bq, self.n_kb * Bk)[:, : self.q_len, : self.kv_len]
        dense = np.ascontiguousarray(dense)
        return dense.reshape(self.batch, self.heads, self.q_len, self.kv_len) if self.batch > 1 else dense

    def to_scipy(self, fmt: Literal["csr", "bsr", "coo"] = "csr", head: int = 0):
        """The token-level mask of one stored head as a scipy.sparse matrix of bools.

        ``fmt="bsr"`` keeps the (block_q, block_k) tiling (ragged tails padded in
        the matrix shape, then sliced off by converting to csr is up to the caller).

        Example:
            >>> import maskc as mc
            >>> mc.compile(mc.window(1), q_len=6, block=4).to_scipy("csr").nnz
            11
        """
        from maskc.ir.convert import layout_to_scipy

        return layout_to_scipy(self, fmt, head)

    @classmethod
    def from_dense(cls, mask, block: int | tuple[int, int] = 128, pattern_text: str = "",
                   q_offset: int = 0) -> "Layout":
        """Build a Layout from a boolean mask [q_len, kv_len], [heads, q_len, kv_len] or
        [batch, heads, q_len, kv_len] (``q_offset``: absolute position of mask row 0).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.eye(3, dtype=bool), block=2).n_partial
            1
        """
        from maskc.ir.convert import layout_from_dense

        return layout_from_dense(cls, mask, block, pattern_text, q_offset)

    # --------------------------------------------------------------- checking
    def validate(self) -> "Layout":
        """Check every size, dtype, pointer and index; raise LayoutFormatError naming the field."""
        from maskc.ir.validate import validate_layout

        validate_layout(self)
        return self

    def save(self, path) -> None:
        """Write the layout to ``path`` (.npz; ``.safetensors`` when the suffix says so)."""
        from maskc.ir.io import save_layout

        save_layout(self, path)

    # ---------------------------------------------------------------- display
    def summary(self) -> str:
        """A short multi-line description: sizes, blocks, density, masks, bytes.

        Example:
            >>> import maskc as mc
            >>> print(mc.compile(mc.causal(), q_len=256, block=64).summary().splitlines()[0])
            Layout causal(): q_len=256 kv_len=256 block=(64, 64) heads=1
        """
        tot_blocks = self.n_slices * self.n_qb * self.n_kb
        lines = [
            f"Layout {_short(self.pattern_text)}: q_len={self.q_len} kv_len={self.kv_len} "
            f"block=({self.block_q}, {self.block_k}) heads={self.heads}{self._extra()}",
            f"  blocks     {self.nnz_blocks:,} / {tot_blocks:,} non-empty ({100 * self.block_density:.2f}%):"
            f" {self.n_full:,} full, {self.n_partial:,} partial",
            f"  masks      {self.n_unique_masks:,} unique partial bitmasks",
            f"  density    {self.nnz:,} allowed pairs ({100 * self.density:.4f}% of "
            f"{self.n_slices * self.q_len * self.kv_len:,})",
            f"  memory     {self.nbytes:,} bytes",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Layout({_short(self.pattern_text)}, q_len={self.q_len}, kv_len={self.kv_len}, "
            f"block=({self.block_q}, {self.block_k}), heads={self.heads}{self._extra(', ')}, "
            f"nnz_blocks={self.nnz_blocks})"
        )

    def _extra(self, sep: str = " ") -> str:
        parts = [f"q_offset={self.q_offset}"] if self.q_offset else []
        if self.batch > 1:
            parts.append(f"batch={self.batch}")
        return "".join(sep + p for p in parts)

    def __eq__(self, other: object) -> bool:
        """Equal when sizes and the allowed pairs of every block agree (ids may differ)."""
        if not isinstance(other, Layout):
            return NotImplemented
        if (self.q_len, self.kv_len, self.block_q, self.block_k, self.q_offset, self.batch) != (
            other.q_len,
            other.kv_len,
            other.block_q,
            other.block_k,
            other.q_offset,
            other.batch,
        ):
            return False
        if not (
            np.array_equal(self.row_ptr, other.row_ptr)
            and np.array_equal(self.col_idx, other.col_idx)
            and np.array_equal(self.kind, other.kind)
        ):
            return False
        part = self.kind == PARTIAL
        if not part.any():
            return True
        a = self.masks[self.partial_id[part]]
        b = other.masks[other.partial_id[part]]
        return bool(np.array_equal(a, b))

    __hash__ = None  # type: ignore[assignment]
