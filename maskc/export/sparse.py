"""scipy.sparse (csr / bsr / coo) and dense numpy masks, both directions."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, Layout
from maskc.export._common import as_block, check_layout, layout_from_coo, validated

__all__ = ["to_scipy", "from_scipy", "to_dense", "from_dense"]


def to_scipy(layout: Layout, fmt: Literal["csr", "bsr", "coo"] = "csr", head: int | None = 0):
    """The token-level mask as a scipy.sparse matrix of bools (``head=None``: a list, one per head).

    ``csr`` / ``coo`` have shape (q_len, kv_len) and store only allowed pairs. ``bsr`` keeps
    the (block_q, block_k) tiles, so its shape is padded to whole blocks and tiles hold
    explicit False entries; :func:`from_scipy` accepts all three.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((5, 5), bool)), block=2)
        >>> mc.export.to_scipy(lay).nnz, mc.export.to_scipy(lay, "bsr").blocksize
        (15, (2, 2))
    """
    layout = check_layout(layout, "to_scipy")
    if head is None:
        return [layout.to_scipy(fmt, head=h) for h in range(layout.heads)]
    return layout.to_scipy(fmt, head=int(head))


def from_scipy(matrix: Any | Sequence[Any], block: int | tuple[int, int] = 128,
               shape: tuple[int, int] | None = None, pattern_text: str = "") -> Layout:
    """Layout from a scipy.sparse matrix (any format), or a list of them (one per head).

    Stored entries that are zero / False are not allowed pairs. ``shape`` = (q_len, kv_len)
    crops a padded matrix (e.g. the ``bsr`` of :func:`to_scipy`); entries outside it must be
    zero. Never densifies: O(nnz + partial-block area).

    Example:
        >>> import scipy.sparse as sp, maskc as mc
        >>> mc.export.from_scipy(sp.eye(6, format="csr"), block=4).n_partial
        2
    """
    import scipy.sparse as sp

    mats = list(matrix) if isinstance(matrix, (list, tuple)) else [matrix]
    if not mats:
        raise ValueError("from_scipy needs at least one matrix")
    hs, qs, ks = [], [], []
    shp = None
    for h, m in enumerate(mats):
        if not sp.issparse(m):
            raise TypeError(f"from_scipy: item {h} is {type(m).__name__}, not a scipy.sparse matrix")
        coo = sp.coo_matrix(m)
        coo.sum_duplicates()
        if shp is None:
            shp = coo.shape
        elif coo.shape != shp:
            raise ValueError(f"all heads must have the same shape; head 0 is {shp}, head {h} is {coo.shape}")
        keep = coo.data != 0
        qs.append(coo.row[keep].astype(np.int64))
        ks.append(coo.col[keep].astype(np.int64))
        hs.append(np.full(int(keep.sum()), h, np.int64))
    q_len, kv_len = shp if shape is None else (int(shape[0]), int(shape[1]))
    if q_len > shp[0] or kv_len > shp[1]:
        raise ValueError(f"shape {(q_len, kv_len)} is larger than the matrix {shp}")
    h, i, j = np.concatenate(hs), np.concatenate(qs), np.concatenate(ks)
    if ((i >= q_len) | (j >= kv_len)).any():
        raise ValueError(f"the matrix allows pairs outside shape {(q_len, kv_len)}")
    return validated(layout_from_coo(len(mats), h, i, j, q_len, kv_len, as_block(block), pattern_text))


def to_dense(layout: Layout, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray:
    """The token-level mask, bool [heads, q_len, kv_len] (TooLargeError above ``max_elements``).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.to_dense(mc.Layout.from_dense(np.eye(3, dtype=bool), block=2)).shape
        (1, 3, 3)
    """
    return check_layout(layout, "to_dense").to_dense(max_elements=max_elements)


def from_dense(mask: Any, block: int | tuple[int, int] = 128, pattern_text: str = "") -> Layout:
    """Layout from a boolean mask [q_len, kv_len] or [heads, q_len, kv_len] (numpy or torch).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.from_dense(np.tril(np.ones((5, 5), bool)), block=2).n_full
        4
    """
    if hasattr(mask, "detach") and hasattr(mask, "cpu"):
        mask = mask.detach().cpu().numpy()
    return Layout.from_dense(mask, as_block(block), pattern_text).validate()
