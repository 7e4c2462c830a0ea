"""numba: run lists and the class algebra the row walk computes with.

A *run* is a stretch of key blocks ``[lo, hi)`` of one block row with one class
(PARTIAL, FULL or UNKNOWN) and a *context*: the bit set of the leaves whose content it
depends on. Stretches no run covers are EMPTY. A leaf's run depends on that leaf if it is
undecided (PARTIAL or UNKNOWN), on nothing if FULL; combining keeps the union of the
undecided operands' contexts and drops the context of a constant result. So the context
of an undecided run is exactly the set S of leaves still undecided after constant
folding; the constants left around them are the operators' neutral elements, so the
run's bits are a fixed function of the bits of the leaves in S, the same for every run
with that context.

Example:
    >>> combine_class(PARTIAL, FULL, True) == PARTIAL, combine_class(PARTIAL, PARTIAL, False) == UNKNOWN
    (True, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from maskc.jit import njit

from maskc.compiler.codes import EMPTY, FULL, PARTIAL, UNKNOWN


class Arena(NamedTuple):
    """Scratch space of :func:`eval_row`: run lists on a stack, and interest lists."""

    lo: np.ndarray       # int64 runs: first key block
    hi: np.ndarray       # one past the last
    cls: np.ndarray      # int8 class
    ctx: np.ndarray      # int64 leaf codes
    iv_lo: np.ndarray    # int64 interest intervals
    iv_hi: np.ndarray
    res_lo: np.ndarray   # int64 result stack: the runs of result r are lo[res_lo[r]:res_hi[r]]
    res_hi: np.ndarray
    int_lo: np.ndarray   # int64 interest stack: intervals iv_lo[int_lo[i]:int_hi[i]]
    int_hi: np.ndarray


@njit(cache=True)
def new_arena(n_kb, depth, interests):
    """An Arena for rows of ``n_kb`` key blocks and a program of the given stack depths."""
    cap = (depth + 2) * (n_kb + 1)
    icap = (interests + 2) * (n_kb + 1)
    return Arena(np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8), np.empty(cap, np.int64),
                 np.empty(icap, np.int64), np.empty(icap, np.int64), np.empty(depth + 2, np.int64),
                 np.empty(depth + 2, np.int64), np.empty(interests + 2, np.int64), np.empty(interests + 2, np.int64))


def arena_bytes(n_kb: int, depth: int, interests: int) -> int:
    """Bytes of one :func:`new_arena`."""
    return (depth + 2) * (n_kb + 1) * 25 + (interests + 2) * (n_kb + 1) * 16


@njit(cache=True, inline="always")
def combine_class(a, b, is_and):
    """Class of x & y (``is_and``) or x | y from the classes of x and y."""
    absorbing = EMPTY if is_and else FULL
    if a == absorbing or b == absorbing:
        return absorbing
    if a == FULL - absorbing:  # the neutral element: FULL for &, EMPTY for |
        return b
    if b == FULL - absorbing:
        return a
    return UNKNOWN


@njit(cache=True, inline="always")
def not_class(a):
    """Class of ~x: EMPTY and FULL swap, PARTIAL and UNKNOWN stay."""
    if a == EMPTY:
        return FULL
    if a == FULL:
        return EMPTY
    return a


@njit(cache=True, inline="always")
def leaf_context(l, c, share):
    """The context of leaf l's run of class c: the leaf itself when undecided."""
    if not share or c == FULL or c == EMPTY:
        return np.int64(0)
    return np.int64(1) << l


@njit(cache=True, inline="always")
def emit_run(ar, start, p, a, b, c, x):
    """Append run [a, b) with class c and context x at p (merged into the previous one when
    it continues it); ``start`` is where the current list began."""
    if p > start and ar.hi[p - 1] == a and ar.cls[p - 1] == c and ar.ctx[p - 1] == x:
        ar.hi[p - 1] = b
        return p
    ar.lo[p] = a
    ar.hi[p] = b
    ar.cls[p] = c
    ar.ctx[p] = x
    return p + 1


@njit(cache=True, inline="always")
def count_class(count, total):
    if count == 0:
        return EMPTY
    if count == total:
        return FULL
    return PARTIAL
