"""The Sidon property of an offset set: all pairwise differences distinct.

A Sidon (B2) set has distinct differences a - b (a > b), equivalently distinct sums.
For attention offsets it means no two pairs of offsets produce the same 2-hop
displacement, so 2-hop paths do not overlap (the point of Mian-Chowla offsets).
"""

from __future__ import annotations

import itertools

import numpy as np
from maskc.jit import njit

from maskc.guarantees._common import GuaranteeError
from maskc.limits import check_int, refuse_above
from maskc.patterns.sequences import named_sequence


@njit(cache=True)
def _first_repeat(vals):
    n = vals.shape[0]
    span = vals[n - 1] - vals[0] if n else 0
    seen_a = np.full(span + 1, -1, dtype=np.int64)
    seen_b = np.full(span + 1, -1, dtype=np.int64)
    # scan by the larger element so the first repeat found has the smallest largest element
    for x in range(n):
        for y in range(x):
            diff = vals[x] - vals[y]
            if seen_a[diff] >= 0:
                return seen_a[diff], seen_b[diff], vals[x], vals[y]
            seen_a[diff] = vals[x]
            seen_b[diff] = vals[y]
    return -1, -1, -1, -1


#: Largest span (max - min) of the values the Sidon test accepts: it keeps two int64 tables of that size.
MAX_SIDON_SPAN = 1 << 26


def _values(offsets, limit: int | None) -> np.ndarray:
    if limit is not None:
        limit = check_int(limit, "limit")
    if isinstance(offsets, str):
        if limit is None:
            raise ValueError(f"sequence {offsets!r} needs limit= (largest value to test)")
        refuse_above(limit, MAX_SIDON_SPAN, f"the Sidon test of {offsets!r} up to limit={limit:,}",
                     "test a smaller limit", unit="values of span")
        return np.asarray(named_sequence(offsets, int(limit)), dtype=np.int64)
    if hasattr(offsets, "__len__"):  # ranges, lists, arrays: refused by their length, before reading them
        refuse_above(len(offsets), MAX_SIDON_SPAN + 1, "the Sidon test", "test fewer offsets", unit="offsets")
    first = list(itertools.islice(iter(offsets), MAX_SIDON_SPAN + 2))  # bounded: never a whole huge iterable
    refuse_above(len(first), MAX_SIDON_SPAN + 1, "the Sidon test", "test fewer offsets", unit="offsets")
    vals = np.unique(np.asarray(first, dtype=np.int64))
    if limit is not None:
        vals = vals[vals <= limit]
    if vals.size:
        refuse_above(int(vals[-1]) - int(vals[0]), MAX_SIDON_SPAN, "the Sidon test (its difference table)",
                     "test offsets spanning a smaller range", unit="values of span")
    return vals


def sidon_violation(offsets, limit: int | None = None) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Two distinct pairs with the same difference, ``((a, b), (c, d))`` with a - b == c - d, or None.

    ``offsets`` is an iterable of ints or a sequence name (then ``limit`` is required).
    Duplicates are ignored (a set). The pair with the smallest largest element is
    reported. Cost O(n^2) in the worst case (a Sidon set of n values), early exit
    otherwise; memory O(max - min).

    Example:
        >>> from maskc.guarantees import sidon_violation
        >>> sidon_violation([1, 2, 4, 8, 13])
        >>> sidon_violation("primes", limit=20)
        ((5, 3), (7, 5))
    """
    vals = _values(offsets, limit)
    if vals.size < 3:
        return None
    a, b, c, d = _first_repeat(vals)
    if a < 0:
        return None
    return ((int(c), int(d)), (int(a), int(b))) if (c, d) < (a, b) else ((int(a), int(b)), (int(c), int(d)))


def is_sidon(offsets, limit: int | None = None) -> bool:
    """True when all pairwise differences of the set are distinct.

    Example:
        >>> from maskc.guarantees import is_sidon
        >>> is_sidon("mian_chowla", limit=100_000), is_sidon("squares", limit=100)
        (True, False)
    """
    return sidon_violation(offsets, limit) is None


def check_sidon(offsets, limit: int | None = None) -> None:
    """Raise :class:`GuaranteeError` with two pairs of equal difference.

    ``details`` holds ``pairs`` and ``difference``; ``query``/``key`` are the first
    pair (read as offsets, not positions).

    Example:
        >>> from maskc.guarantees import check_sidon, GuaranteeError
        >>> try:
        ...     check_sidon([1, 2, 4, 8, 13, 21, 31, 45, 66, 81, 97, 123, 148, 182, 204, 252, 290, 291])
        ... except GuaranteeError as e:
        ...     e.details["pairs"], e.details["difference"]
        (((290, 1), (291, 2)), 289)
    """
    v = sidon_violation(offsets, limit)
    if v is not None:
        (a, b), (c, d) = v
        raise GuaranteeError(
            "sidon",
            f"not a Sidon set: {a} - {b} == {c} - {d} == {a - b}",
            query=a, key=b, pairs=v, difference=a - b,
        )
