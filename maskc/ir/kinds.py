"""The vocabulary of the IR: block kinds, block sizes, format version, block extents.

Nothing here knows the :class:`~maskc.ir.layout.Layout` class; every other IR module
builds on these names.

Example:
    >>> from maskc.ir.kinds import FULL, PARTIAL, extent, normalize_block
    >>> normalize_block(64), (PARTIAL, FULL)
    ((64, 64), (1, 2))
    >>> extent([0, 1, 2], 4, 10).tolist()   # blocks of 4 over 10 positions: the last one has 2
    [4, 4, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.limits import MAX_BLOCK

EMPTY: int = 0
PARTIAL: int = 1
FULL: int = 2

#: Version of the in-memory schema and of the file format (see docs/format.md).
FORMAT_VERSION: int = 2

#: Default cap on the elements a token-level (dense) result may allocate (256 Mi booleans).
DEFAULT_MAX_DENSE_ELEMENTS: int = 1 << 28

__all__ = ["EMPTY", "PARTIAL", "FULL", "FORMAT_VERSION", "DEFAULT_MAX_DENSE_ELEMENTS", "MAX_BLOCK",
           "ceil_div", "normalize_block", "extent"]


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers (exact for any size).

    Example:
        >>> ceil_div(10, 4), ceil_div(8, 4)
        (3, 2)
    """
    return -(-a // b)


def normalize_block(block: Any) -> tuple[int, int]:
    """``(block_q, block_k)`` from an int or a pair; ValueError unless both are in [1, MAX_BLOCK].

    Example:
        >>> normalize_block(64), normalize_block((128, 64))
        ((64, 64), (128, 64))
    """
    if isinstance(block, (int, np.integer)) and not isinstance(block, (bool, np.bool_)):
        bq = bk = int(block)
    else:
        try:
            bq, bk = (b for b in block)
        except (TypeError, ValueError):
            raise ValueError(f"block must be an int or a (block_q, block_k) pair of ints, got {block!r}"[:200]) from None
        if not all(isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)) for b in (bq, bk)):
            raise ValueError(f"block must be an int or a (block_q, block_k) pair of ints, got {block!r}"[:200])
        bq, bk = int(bq), int(bk)
    if not (1 <= bq <= MAX_BLOCK and 1 <= bk <= MAX_BLOCK):
        raise ValueError(f"block sizes must be in [1, {MAX_BLOCK}], got {(bq, bk)}")
    return bq, bk


def extent(index: Any, size: int, length: int) -> np.ndarray:
    """Valid positions of blocks ``index`` (block edge ``size``) inside ``length`` positions.

    ``size`` for every block except a ragged last one, which gets ``length - start``.
    O(len(index)): never allocates anything sized by ``length``. int64.
    """
    idx = np.asarray(index, dtype=np.int64)
    return np.minimum(np.int64(size), np.int64(length) - idx * np.int64(size))
