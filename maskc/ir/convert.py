"""Conversions between :class:`~maskc.ir.layout.Layout` and dense / scipy masks (old entry points).

The conversions are methods of :class:`Layout` (:meth:`Layout.from_dense`,
:meth:`Layout.to_scipy`, :meth:`Layout.token_csr`); mask deduplication is
:func:`maskc.ir.masks.dedupe_masks`. The functions here keep the old names working.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.ir.convert import layout_to_scipy
    >>> layout_to_scipy(mc.Layout.from_dense(np.eye(3, dtype=bool), block=2), "csr", 0).nnz
    3
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from maskc.ir.layout import Layout
from maskc.ir.masks import dedupe_masks  # noqa: F401  (re-exported: used by the compiler)

__all__ = ["dedupe_masks", "layout_to_scipy", "csr_arrays", "layout_from_dense"]


def layout_from_dense(cls: Any, mask: Any, block: Any, pattern_text: str = "", q_offset: int = 0) -> Layout:
    """Deprecated: use :meth:`Layout.from_dense` (``cls`` is ignored)."""
    warnings.warn("maskc.ir.convert.layout_from_dense is deprecated; use Layout.from_dense(mask, block, ...)",
                  DeprecationWarning, stacklevel=2)
    return Layout.from_dense(mask, block, pattern_text, q_offset)


def layout_to_scipy(layout: Layout, fmt: str, head: int) -> Any:
    """See :meth:`Layout.to_scipy`."""
    return layout.to_scipy(fmt, head)  # type: ignore[arg-type]


def csr_arrays(layout: Layout, head: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token-level CSR of one stored slice (see :meth:`Layout.token_csr`)."""
    return layout.token_csr(head)
