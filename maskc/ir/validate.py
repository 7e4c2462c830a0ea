"""Validation of Layout arrays: every size, dtype, pointer and index.

:func:`validate_layout` is :meth:`Layout.validate <maskc.ir.layout.Layout.validate>` as
a function; the checks themselves are in :mod:`maskc.ir.checks`.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.ir.validate import validate_layout
    >>> validate_layout(mc.Layout.from_dense(np.eye(4, dtype=bool), block=2))
"""

from __future__ import annotations

from maskc.ir.checks import MAX_TEXT_BYTES
from maskc.ir.layout import Layout

#: Longest pattern text: utf-8 bytes, the same limit as in files (the old name, kept).
MAX_TEXT_CHARS = MAX_TEXT_BYTES

__all__ = ["validate_layout", "MAX_TEXT_BYTES"]


def validate_layout(lay: Layout) -> None:
    """Raise :class:`~maskc.errors.LayoutFormatError` naming the first field of ``lay`` that is wrong."""
    if not isinstance(lay, Layout):
        raise TypeError(f"validate_layout expects a Layout, got {type(lay).__name__}")
    lay.validate()
