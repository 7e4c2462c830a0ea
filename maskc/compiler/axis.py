"""Tables of the axis leaves (offsets, sums, rows, columns): classes, run lengths and
content ids of their full-size blocks, from the leaf's membership.

* The class of a full-size block depends only on its diagonal (offset leaves), its
  anti-diagonal (sums), its block row (rows) or its key block (columns): one table holds
  the class of each, from sliding counts over the membership (one table for full-height
  rows, one for the ragged last row), with how many steps along a block row it stays.
* Content ids: blocks whose membership windows are equal hold equal bits of that leaf
  wherever they are; the windows of the PARTIAL ones are hashed, then compared exactly.

Example:
    >>> import numpy as np
    >>> steps_down(np.array([0, 0, 1, 1, 1], np.int8), 1).tolist()
    [1, 2, 1, 2, 3]
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.compiler import codes
from maskc.compiler.codes import EMPTY, FULL, PARTIAL
from maskc.compiler.grid import Grid

#: Most entries compared to check the content ids of one axis leaf (beyond it: coordinates only).
MAX_CONTENT_CHECK = 1 << 27


@njit(cache=True)
def window_classes(memb, lo0, step, width, n_windows):
    """Class of the count of ``memb`` over windows [lo0 + t step, lo0 + t step + width)
    (clipped to the array; an empty window is EMPTY) for t < n_windows, by sliding sums."""
    n = memb.shape[0]
    out = np.empty(n_windows, dtype=np.int8)
    a = min(max(lo0, 0), n)
    b = min(max(lo0 + width, 0), n)
    cur = 0
    for x in range(a, b):
        cur += memb[x]
    for t in range(n_windows):
        if t > 0:
            L = lo0 + t * step
            na = min(max(L, 0), n)
            nb = min(max(L + width, 0), n)
            if na > b:  # windows jumped apart: start over
                cur = 0
                for x in range(na, nb):
                    cur += memb[x]
            else:
                for x in range(a, na):
                    cur -= memb[x]
                for x in range(b, nb):
                    cur += memb[x]
            a = na
            b = nb
        if cur == 0:
            out[t] = EMPTY
        elif cur == b - a:
            out[t] = FULL
        else:
            out[t] = PARTIAL
    return out


@njit(cache=True)
def window_hashes(memb, lo0, step, width, n_windows):
    """A polynomial hash of the windows [lo0 + t step, lo0 + t step + width) of ``memb``
    (entries outside the array count as 0), by rolling sums: O(array + windows)."""
    n = memb.shape[0]
    base = np.uint64(0x9E3779B97F4A7C15)
    top = np.uint64(1)  # base ** (width - 1)
    for _ in range(width - 1):
        top *= base
    out = np.empty(n_windows, dtype=np.uint64)
    h = np.uint64(0)
    lo = lo0
    for x in range(lo, lo + width):
        h = h * base + (np.uint64(memb[x]) if 0 <= x < n else np.uint64(0))
    for t in range(n_windows):
        if t > 0:
            for _ in range(step):  # slide one entry: drop lo, take lo + width
                old = np.uint64(memb[lo]) if 0 <= lo < n else np.uint64(0)
                new = np.uint64(memb[lo + width]) if 0 <= lo + width < n else np.uint64(0)
                h = (h - old * top) * base + new
                lo += 1
        out[t] = h
    return out


@njit(cache=True)
def hashes_of(memb, lo0, step, width, which):
    """:func:`window_hashes` of the windows ``which`` only, each summed directly: the same
    values (the rolling update is exact modulo 2**64) in O(len(which) x width)."""
    n = memb.shape[0]
    base = np.uint64(0x9E3779B97F4A7C15)
    out = np.empty(which.shape[0], dtype=np.uint64)
    for t in range(which.shape[0]):
        lo = lo0 + which[t] * step
        h = np.uint64(0)
        for x in range(lo, lo + width):
            h = h * base + (np.uint64(memb[x]) if 0 <= x < n else np.uint64(0))
        out[t] = h
    return out


@njit(cache=True)
def windows_equal(memb, lo0, step, width, which, leader):
    """True when window ``which[t]`` equals window ``leader[t]`` for every t (no collision)."""
    n = memb.shape[0]
    for t in range(which.shape[0]):
        a = lo0 + which[t] * step
        b = lo0 + leader[t] * step
        if a == b:
            continue
        for k in range(width):
            va = memb[a + k] if 0 <= a + k < n else 0
            vb = memb[b + k] if 0 <= b + k < n else 0
            if va != vb:
                return False
    return True


def class_of(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    """EMPTY / PARTIAL / FULL from a count of allowed pairs out of ``total``."""
    return np.where(count == 0, codes.EMPTY, np.where(count == total, codes.FULL, codes.PARTIAL)).astype(np.int8)


def _run_to_start(a: np.ndarray) -> np.ndarray:
    """Along axis 0: the distance of each entry to the start of its run of equal values."""
    idx = np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1))
    start = np.ones(a.shape, dtype=bool)
    start[1:] = a[1:] != a[:-1]
    return idx - np.maximum.accumulate(np.where(start, idx, 0), axis=0)


def _by_residue(c: np.ndarray, step: int) -> np.ndarray:
    m = -(-c.size // step)
    a = np.full(m * step, -1, dtype=np.int16)
    a[: c.size] = c
    return a.reshape(m, step)


def steps_down(c: np.ndarray, step: int) -> np.ndarray:
    """For each x: how many of x, x - step, x - 2 step, ... share the class ``c[x]``."""
    return (_run_to_start(_by_residue(c, step)) + 1).reshape(-1)[: c.size].astype(np.int64)


def steps_up(c: np.ndarray, step: int) -> np.ndarray:
    """For each x: how many of x, x + step, x + 2 step, ... share the class ``c[x]``."""
    a = _by_residue(c, step)[::-1]
    return (_run_to_start(a) + 1)[::-1].reshape(-1)[: c.size].astype(np.int64)


def axis_tables(kind: int, memb: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Class and steps tables of an axis leaf: D / S per block diagonal (full-height rows,
    then the ragged last row), R per block row, C per key block."""
    if kind == codes.T_R:
        c = window_classes(memb, grid.q_offset, grid.bq, grid.bq, grid.n_qb)
        return c, np.ones(c.size, dtype=np.int64)
    if kind == codes.T_C:
        c = window_classes(memb, 0, grid.bk, grid.bk, grid.n_kb)
        return c, steps_up(c, 1)
    cls, steps = [], []
    sx = grid.bk // grid.g
    # a block's offsets are [i0 - j0 - bk + 1, i0 - j0 + h - 1] (index + kv_len - 1), its sums
    # [i0 + j0, i0 + j0 + h + bk - 2]; diagonal x has i0 - j0 = q_offset + x g - (n_kb - 1) bk
    lo0 = grid.q_offset - grid.n_kb * grid.bk + grid.kv_len if kind == codes.T_D else grid.q_offset
    for h in (grid.bq, grid.last_h):
        if cls and h == grid.bq:  # no ragged last row: its tables are the full rows'
            cls.append(cls[0])
            steps.append(steps[0])
            continue
        c = window_classes(memb, lo0, grid.g, h + grid.bk - 1, grid.width)
        cls.append(c)
        steps.append(steps_down(c, sx) if kind == codes.T_D else steps_up(c, sx))
    return np.concatenate(cls), np.concatenate(steps)


def content_ids(kind: int, memb: np.ndarray, cls: np.ndarray, grid: Grid) -> tuple[np.ndarray, int]:
    """Ids of the distinct membership windows of an axis leaf's PARTIAL full-size blocks
    (per diagonal, anti-diagonal, block row or key block; -1 elsewhere) and how many there
    are; ``(None, 0)`` when checking them would cost more than :data:`MAX_CONTENT_CHECK`.

    Blocks whose windows are equal hold equal bits of that leaf, wherever they are.
    Hashes group the windows; every member is then compared with its group's first
    entry, so ids are exact (a collision turns the ids off).
    """
    if kind == codes.T_R:
        lo0, step, width, n = grid.q_offset, grid.bq, grid.bq, grid.n_qb
    elif kind == codes.T_C:
        lo0, step, width, n = 0, grid.bk, grid.bk, grid.n_kb
    else:
        lo0 = grid.q_offset - grid.n_kb * grid.bk + grid.kv_len if kind == codes.T_D else grid.q_offset
        step, width, n = grid.g, grid.bq + grid.bk - 1, grid.width
    cls = cls[:n]
    partial = np.flatnonzero(cls == codes.PARTIAL)
    if partial.size * width > MAX_CONTENT_CHECK:
        return None, 0
    ids = np.full(n, -1, dtype=np.int64)
    if partial.size:
        if partial.size * width < memb.size:  # few partial windows: hash only those
            hashes = hashes_of(memb, lo0, step, width, partial)
        else:
            hashes = window_hashes(memb, lo0, step, width, n)[partial]
        _, first, group = np.unique(hashes, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        if not windows_equal(memb, lo0, step, width, partial, partial[first[group]]):
            return None, 0
        ids[partial] = group
        return ids, int(first.size)
    return ids, 0


def block_counts(memb: np.ndarray) -> np.ndarray:
    """Prefix counts of ``memb`` every 64 entries: ``out[t] = memb[:64 t].sum()``."""
    n = -(-memb.size // 64)
    out = np.zeros(n + 1, dtype=np.int64)
    if memb.size:
        whole = memb.size // 64  # 64-entry groups as rows of a view, the ragged tail apart
        out[1:whole + 1] = np.count_nonzero(memb[:whole * 64].reshape(whole, 64), axis=1)
        if whole < n:
            out[n] = np.count_nonzero(memb[whole * 64:])
        np.cumsum(out[1:], out=out[1:])
    return out
