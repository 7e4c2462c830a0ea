"""Partial-block bitmasks: packing, unpacking and deduplication (the one implementation).

A partial block's element mask is stored packed little-endian along the key axis:
``uint8 [block_q, ceil(block_k / 8)]``; a layout keeps each distinct mask once.

Example:
    >>> import numpy as np
    >>> from maskc.ir.masks import dedupe_masks, unpack_masks
    >>> bits = np.array([np.eye(3, dtype=bool), ~np.eye(3, dtype=bool), np.eye(3, dtype=bool)])
    >>> masks, ids = dedupe_masks(bits)
    >>> masks.shape, ids.tolist(), bool((unpack_masks(masks, 3)[ids] == bits).all())
    ((2, 3, 1), [0, 1, 0], True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_masks", "unpack_masks", "dedupe_masks", "dedupe_packed", "empty_masks"]


def pack_masks(bits: np.ndarray) -> np.ndarray:
    """bool [n, block_q, block_k] -> packed uint8 [n, block_q, ceil(block_k / 8)]."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=2, bitorder="little")


def unpack_masks(masks: np.ndarray, block_k: int) -> np.ndarray:
    """packed uint8 [n, block_q, ceil(block_k / 8)] -> bool [n, block_q, block_k]."""
    return np.unpackbits(masks, axis=2, count=block_k, bitorder="little").astype(bool)


def empty_masks(block_q: int, block_k: int) -> np.ndarray:
    """The empty mask dictionary of a layout with the given blocks: uint8 [0, block_q, ceil(block_k / 8)]."""
    return np.zeros((0, block_q, -(-block_k // 8)), dtype=np.uint8)


def dedupe_packed(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicate packed masks uint8 [n, block_q, W].

    Returns ``(masks, ids)``: the distinct masks in order of first appearance and int32
    ids [n] into them. O(n log n) comparisons of ``block_q * W`` bytes each.
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n = packed.shape[0]
    if n == 0:
        return packed, np.zeros(0, dtype=np.int32)
    flat = packed.reshape(n, -1)
    view = flat.view(np.dtype((np.void, flat.shape[1])))
    _, first, inverse = np.unique(view.reshape(-1), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # distinct masks in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ids = rank[inverse.reshape(-1)].astype(np.int32)
    return np.ascontiguousarray(packed[first[order]]), ids


def dedupe_masks(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack bool blocks [n, block_q, block_k] and deduplicate them.

    Returns ``(masks, ids)``: distinct packed masks uint8 [U, block_q, ceil(block_k / 8)]
    in order of first appearance, and int32 ids [n] into them.
    """
    return dedupe_packed(pack_masks(bits))
