"""Residue-permutation lowering for periodic parts: (i - j) mod s == phase.

Write i = a + s*i' and j = b + s*j' (a, b the residue classes). A pair of the part has
b = (a - phase) mod s, so query class a only meets key class b, and with c = a - b
(= phase or phase - s) the offset is d = c + s*(i' - j'). Gathering every class into a
contiguous run turns the part into s independent problems of about N/s tokens whose mask
depends only on d' = i' - j' (a Toeplitz pattern again, usually dense triangular): a
strided O(N^2/s) pattern that touches *every* 128x128 block becomes s dense diagonal
blocks that tensor cores eat. Classes with equal (n_a, m_b, c) are batched together.

This module holds the arithmetic (pure numpy); :mod:`maskc.planner.execute` permutes the
tokens and runs each class problem through the backend registry.

Example:
    >>> import numpy as np
    >>> from maskc.planner.residue import reduced_member
    >>> N = 12; d = np.arange(-(N - 1), N)
    >>> member = (d >= 0) & (d % 4 == 0)             # causal stride(4)
    >>> reduced_member(member, N, N, 4, c=0, n=3, m=3).astype(int).tolist()
    [0, 0, 1, 1, 1]
"""

from __future__ import annotations

import numpy as np


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def class_len(length: int, s: int, a: int) -> int:
    """Positions a, a + s, ... below ``length``."""
    return max(0, _cdiv(length - a, s))


def reduced_member(member: np.ndarray, q_len: int, kv_len: int, s: int, c: int, n: int, m: int) -> np.ndarray:
    """Membership over d' in [-(m - 1), n - 1] of the class problem: member[c + s*d']."""
    dp = np.arange(-(m - 1), n, dtype=np.int64)
    d = c + s * dp
    ok = (d >= -(kv_len - 1)) & (d <= q_len - 1)
    out = np.zeros(dp.shape, dtype=bool)
    out[ok] = member[d[ok] + kv_len - 1]
    return out


def class_groups(q_len: int, kv_len: int, s: int, phase: int) -> dict[tuple[int, int, int], list[int]]:
    """Query classes grouped by (n_a, m_b, c); each group runs as one batched problem."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for a in range(min(s, q_len)):
        b = (a - phase) % s
        n, m = class_len(q_len, s, a), class_len(kv_len, s, b)
        if n == 0 or m == 0:
            continue
        groups.setdefault((n, m, a - b), []).append(a)
    return groups
