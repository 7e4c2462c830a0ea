"""The sparsity formats attention backends take: block layouts and diagonal sets.

Every backend declares the formats it executes (``register(..., formats=...)``):

* ``"blocks"`` — a :class:`maskc.Layout` (block-sparse: per-slice block rows, FULL and
  PARTIAL tiles). Every built-in backend but the DIA ones takes it.
* ``"diagonal"`` — a :class:`DiagonalLayout`: query row r attends key c iff
  ``(q_offset + r) - c`` is one of a small set of offsets (a Toeplitz pattern with few
  diagonals). DIA kernels run it in O(q_len * offsets * head_dim) without any block
  structure; the planner hands its DIA parts to the registry in this form, and the
  float64 reference takes it too, so DIA kernels are cross-checked like the others.

:func:`layout_format` names the format of an object (None for anything else).

Example:
    >>> import maskc as mc
    >>> from maskc.backends.formats import DiagonalLayout, layout_format
    >>> dl = DiagonalLayout.from_offsets([0, 1, 4], q_len=6)
    >>> dl.nnz, layout_format(dl), layout_format(mc.compile(mc.causal(), 6, block=2))
    (13, 'diagonal', 'blocks')
    >>> dl.to_dense()[0, 5].astype(int).tolist()
    [0, 1, 0, 0, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, Layout
from maskc.limits import MAX_LEN, check_int, refuse_above

#: Format names, in the order backends usually list them.
FORMATS: tuple[str, ...] = ("blocks", "diagonal")


@dataclass(frozen=True, eq=False)
class DiagonalLayout:
    """A set of diagonals: row r (absolute position ``q_offset + r``) attends key c iff ``q_offset + r - c`` is in ``offsets``.

    One pattern for every batch element and head (``batch == heads == 1``: it
    broadcasts). Build with :meth:`from_offsets`, which sorts, deduplicates and drops
    offsets that no pair of the lengths can have.
    """

    q_len: int
    kv_len: int
    offsets: np.ndarray  #: int64, sorted, unique: absolute d = i - j
    q_offset: int = 0
    format = "diagonal"

    @classmethod
    def from_offsets(cls, offsets: Any, q_len: int, kv_len: int | None = None, q_offset: int = 0) -> "DiagonalLayout":
        """Validate and normalise: lengths in [1, MAX_LEN], offsets integers (kept if some pair has them).

        Example:
            >>> DiagonalLayout.from_offsets([9, 1, 1, -2], q_len=4).offsets.tolist()
            [-2, 1]
        """
        q_len = check_int(q_len, "q_len", lo=1, hi=MAX_LEN)
        q_offset = check_int(q_offset, "q_offset", lo=0, hi=MAX_LEN)
        kv_len = q_offset + q_len if kv_len is None else check_int(kv_len, "kv_len", lo=1, hi=MAX_LEN)
        arr = np.asarray(offsets)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"offsets must be a 1-D sequence of integers, got {arr.dtype} of shape {arr.shape}")
        d = np.unique(arr.astype(np.int64))
        lo, hi = q_offset - (kv_len - 1), q_offset + q_len - 1  # d of row 0 / last row
        d = d[(d >= lo) & (d <= hi)]
        return cls(q_len=q_len, kv_len=kv_len, offsets=d, q_offset=q_offset)

    # --------------------------------------------------------- the layout protocol
    @property
    def heads(self) -> int:
        """Stored heads: 1 (broadcast over every head)."""
        return 1

    @property
    def batch(self) -> int:
        """Stored batch elements: 1 (broadcast over the batch)."""
        return 1

    @property
    def n_slices(self) -> int:
        """Stored (batch element, head) slices: 1."""
        return 1

    def slice_index(self, b: int, h: int) -> int:
        """Every (batch element, head) reads slice 0."""
        return 0

    @property
    def local_offsets(self) -> np.ndarray:
        """Offsets in local rows: row r attends key ``r - d`` for d in these."""
        return self.offsets - self.q_offset

    def row_counts(self) -> np.ndarray:
        """Allowed keys of every query row: int64 [1, q_len].

        Example:
            >>> DiagonalLayout.from_offsets([0, 2], q_len=4).row_counts().tolist()
            [[1, 1, 2, 2]]
        """
        r = np.arange(self.q_len, dtype=np.int64)[:, None]
        j = r - self.local_offsets[None, :]
        return ((j >= 0) & (j < self.kv_len)).sum(axis=1)[None] if self.offsets.size else np.zeros((1, self.q_len), np.int64)

    @property
    def nnz(self) -> int:
        """Allowed (query, key) pairs."""
        d = self.local_offsets
        per = np.minimum(self.q_len, self.kv_len + d) - np.maximum(0, d)
        return int(np.clip(per, 0, None).sum())

    def to_dense(self, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
        """bool [1, q_len, kv_len]; TooLargeError (before allocating) above ``max_elements``."""
        refuse_above(self.q_len * self.kv_len, max_elements, "the dense diagonal mask",
                     "pass a larger max_elements, or run a DIA backend, which never builds it", unit="booleans")
        d = np.arange(self.q_len)[:, None] - np.arange(self.kv_len)[None, :]
        return np.isin(d, self.local_offsets)[None]

    def __repr__(self) -> str:
        shown = self.offsets[:8].tolist()
        more = f", ... ({self.offsets.size} offsets)" if self.offsets.size > 8 else ""
        off = f", q_offset={self.q_offset}" if self.q_offset else ""
        return f"DiagonalLayout(offsets={shown}{more}, q_len={self.q_len}, kv_len={self.kv_len}{off})"


def layout_format(obj: Any) -> str | None:
    """``"blocks"`` for a :class:`maskc.Layout`, ``"diagonal"`` for a :class:`DiagonalLayout`, else None.

    Example:
        >>> layout_format("causal()") is None
        True
    """
    if isinstance(obj, Layout):
        return "blocks"
    if isinstance(obj, DiagonalLayout):
        return "diagonal"
    return None
