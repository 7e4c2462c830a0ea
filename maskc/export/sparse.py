"""scipy.sparse (csr / bsr / coo) and dense numpy masks, both directions."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from maskc.export._common import as_block, check_layout, positive_int, validated
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS
from maskc.ir.layout import Layout
from maskc.limits import MAX_LEN, MAX_SLICES, refuse_above

__all__ = ["to_scipy", "from_scipy", "to_dense", "from_dense"]


def to_scipy(layout: Layout, fmt: Literal["csr", "bsr", "coo"] = "csr", head: int | None = 0,
             max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS):
    """The token-level mask as a scipy.sparse matrix of bools (``head=None``: a list, one per stored slice).

    ``csr`` / ``coo`` have shape (q_len, kv_len) and store only allowed pairs. ``bsr`` keeps
    the (block_q, block_k) tiles, so its shape is padded to whole blocks and tiles hold
    explicit False entries; :func:`from_scipy` accepts all three. ``head`` is a stored
    slice (``b * heads + h`` for batched layouts). The size of the result is computed from
    the block arrays first: above ``max_elements`` allowed pairs (per matrix) it is refused
    with TooLargeError before anything is allocated.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((5, 5), bool)), block=2)
        >>> mc.export.to_scipy(lay).nnz, mc.export.to_scipy(lay, "bsr").blocksize
        (15, (2, 2))
    """
    layout = check_layout(layout, "to_scipy")
    if head is None:
        if fmt != "bsr":  # estimate every matrix before building any
            per = np.bincount(layout.block_head, weights=layout.block_nnz, minlength=layout.n_slices)
            refuse_above(int(per.max(initial=0)), max_elements, "a token-level scipy matrix of this layout",
                         "pass a larger max_elements, or stay block-sparse", unit="allowed pairs")
        return [layout.to_scipy(fmt, head=s, max_elements=max_elements) for s in range(layout.n_slices)]
    return layout.to_scipy(fmt, head=head, max_elements=max_elements)


def _shape(shape: Any) -> tuple[int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a (q_len, kv_len) pair of ints, got {shape!r}"[:200])
    return positive_int(shape[0], "shape[0] (q_len)", MAX_LEN), positive_int(shape[1], "shape[1] (kv_len)", MAX_LEN)


def from_scipy(matrix: Any | Sequence[Any], block: int | tuple[int, int] = 128,
               shape: tuple[int, int] | None = None, pattern_text: str = "", batch: int = 1,
               max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> Layout:
    """Layout from a scipy.sparse matrix (any format), or a list of them (one per stored slice).

    Stored entries that are zero / False are not allowed pairs. ``shape`` = (q_len, kv_len)
    crops a padded matrix (e.g. the ``bsr`` of :func:`to_scipy`); entries outside it must be
    zero. A list is read as ``batch`` elements of ``len(list) // batch`` heads. Never
    densifies: O(nnz + partial-block area).

    Example:
        >>> import scipy.sparse as sp, maskc as mc
        >>> mc.export.from_scipy(sp.eye(6, format="csr"), block=4).n_partial
        2
    """
    import scipy.sparse as sp

    mats = list(matrix) if isinstance(matrix, (list, tuple)) else [matrix]
    if not mats:
        raise ValueError("from_scipy needs at least one matrix")
    positive_int(len(mats), "the number of matrices", MAX_SLICES)
    bq_bk = as_block(block)
    hs, qs, ks = [], [], []
    shp = None
    for h, m in enumerate(mats):
        if not sp.issparse(m):
            raise TypeError(f"from_scipy: item {h} is {type(m).__name__}, not a scipy.sparse matrix")
        if m.ndim != 2 or min(m.shape) < 1:
            raise ValueError(f"from_scipy: item {h} has shape {m.shape}; a mask matrix is 2-D and non-empty")
        if shp is None:
            shp = _shape(tuple(int(d) for d in m.shape))
        elif tuple(m.shape) != shp:
            raise ValueError(f"all matrices must have the same shape; item 0 is {shp}, item {h} is {m.shape}")
        coo = sp.coo_matrix(m)
        coo.sum_duplicates()
        keep = coo.data != 0
        qs.append(coo.row[keep].astype(np.int64))
        ks.append(coo.col[keep].astype(np.int64))
        hs.append(np.full(int(keep.sum()), h, np.int64))
    q_len, kv_len = shp if shape is None else _shape(shape)
    if q_len > shp[0] or kv_len > shp[1]:
        raise ValueError(f"shape {(q_len, kv_len)} is larger than the matrix {shp}")
    h, i, j = np.concatenate(hs), np.concatenate(qs), np.concatenate(ks)
    if ((i >= q_len) | (j >= kv_len)).any():
        raise ValueError(f"the matrix allows pairs outside shape {(q_len, kv_len)}")
    batch = positive_int(batch, "batch", MAX_SLICES)
    if len(mats) % batch:
        raise ValueError(f"{len(mats)} matrices are not batch={batch} elements of equal head counts")
    return validated(Layout.from_pairs(q_len, kv_len, bq_bk, h, i, j, n_slices=len(mats), batch=batch,
                                       pattern_text=pattern_text, max_elements=max_elements))


def to_dense(layout: Layout, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
    """The token-level mask, bool [heads, q_len, kv_len] ([batch, heads, ...] for batched layouts;
    TooLargeError above ``max_elements``).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.to_dense(mc.Layout.from_dense(np.eye(3, dtype=bool), block=2)).shape
        (1, 3, 3)
    """
    return check_layout(layout, "to_dense").to_dense(max_elements=max_elements)


def from_dense(mask: Any, block: int | tuple[int, int] = 128, pattern_text: str = "") -> Layout:
    """Layout from a boolean mask [q_len, kv_len], [heads, q_len, kv_len] or [batch, heads, q_len, kv_len]
    (numpy or torch).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.from_dense(np.tril(np.ones((5, 5), bool)), block=2).n_full
        4
    """
    return Layout.from_dense(mask, as_block(block), pattern_text).validate()
