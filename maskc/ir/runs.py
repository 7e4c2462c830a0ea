"""Blocks of a mask given as runs of allowed positions per line (per query row, or per key column).

Interval formats (MagiAttention slices, FlashMask column intervals) describe a mask by, for
each line, a few half-open runs ``[start, end)`` of allowed positions. :func:`blocks_from_runs`
turns them into a block list without a token-level matrix: per block of lines, each run
marks the blocks it covers whole with two events (a difference list over the block
columns, swept in sorted order) and the at most two blocks it cuts; a block is FULL when
every valid line of the block covers it whole, PARTIAL when it is touched but not, and
only PARTIAL blocks get element tiles. Work O(runs log runs + output blocks + partial
blocks x block area); nothing is sized by the number of blocks across a line.

Example:
    >>> import numpy as np
    >>> from maskc.ir.runs import blocks_from_runs
    >>> ptr, s, e = np.array([0, 1, 2, 3, 4]), np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])  # causal, 4 x 4
    >>> lb, ob, kind, tiles = blocks_from_runs(ptr, s, e, 4, 4, 2, 2, 1 << 20)
    >>> lb.tolist(), ob.tolist(), kind.tolist(), tiles.shape, tiles[0, :, 0].tolist()
    ([0, 1, 1], [0, 0, 1], [1, 2, 1], (2, 2, 1), [1, 3])
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.errors import TooLargeError
from maskc.ir.kinds import FULL, PARTIAL

__all__ = ["blocks_from_runs", "merge_touching", "RunOverlapError"]


class RunOverlapError(ValueError):
    """Two runs of one line share a position: ``line``, ``position`` (the first such, in sorted order)."""

    def __init__(self, line: int, position: int) -> None:
        super().__init__(f"two runs of line {line} overlap at position {position}")
        self.line, self.position = line, position


def merge_touching(line: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort runs by (line, start), drop empty ones and merge runs of a line that touch.

    Returns ``(line, starts, ends)``; raises :class:`RunOverlapError` naming the first
    position two runs of one line share (interval formats require disjoint runs).

    Example:
        >>> l, s, e = merge_touching(np.array([0, 0, 1]), np.array([2, 0, 0]), np.array([4, 2, 1]))
        >>> l.tolist(), s.tolist(), e.tolist()
        ([0, 1], [0, 0], [4, 1])
    """
    keep = ends > starts
    line, starts, ends = line[keep], starts[keep], ends[keep]
    if not line.size:
        return line, starts, ends
    order = np.lexsort((starts, line))
    line, starts, ends = line[order], starts[order], ends[order]
    same = line[1:] == line[:-1]
    clash = np.flatnonzero(same & (starts[1:] < ends[:-1]))
    if clash.size:
        k = int(clash[0])
        raise RunOverlapError(int(line[k]), int(starts[k + 1]))
    head = np.ones(line.size, bool)
    head[1:] = ~(same & (starts[1:] == ends[:-1]))
    first = np.flatnonzero(head)
    last = np.append(first[1:], line.size) - 1
    return line[first], starts[first], ends[last]


@njit(cache=True)
def _set_bits(row, a, b):
    """Set bits [a, b) of a packed little-endian bit row (uint8), a byte at a time in the middle."""
    while a < b and a & 7:
        row[a >> 3] |= np.uint8(1 << (a & 7))
        a += 1
    while a + 8 <= b:
        row[a >> 3] = np.uint8(255)
        a += 8
    while a < b:
        row[a >> 3] |= np.uint8(1 << (a & 7))
        a += 1


@njit(cache=True)
def _sweep(ptr, rs, re, n_lines, n_other, bl, bo, fill, counts, out_l, out_o, out_k, tiles):
    """Pass 0 (fill=0): counts[lb] = (blocks, partial blocks) of line block lb. Pass 1: write them."""
    n_lb = (n_lines + bl - 1) // bl
    n_ob = (n_other + bo - 1) // bo
    k = 0
    p = 0
    for lb in range(n_lb):
        l0 = lb * bl
        l1 = min(l0 + bl, n_lines)
        r0 = ptr[l0]
        r1 = ptr[l1]
        m = r1 - r0
        if m == 0:
            continue
        # events: (block, +1/-1 covered-whole count, touched-interval open/close)
        ev_pos = np.empty(4 * m, np.int64)
        ev_cov = np.empty(4 * m, np.int64)
        ev_tch = np.empty(4 * m, np.int64)
        q = 0
        for t in range(r0, r1):
            s = rs[t]
            e = re[t]
            c_first = s // bo
            c_last = (e - 1) // bo
            c_lo = (s + bo - 1) // bo  # first block covered whole
            c_hi = e // bo if e < n_other else n_ob  # one past the last block covered whole
            ev_pos[q] = c_first
            ev_cov[q] = 0
            ev_tch[q] = 1
            ev_pos[q + 1] = c_last + 1
            ev_cov[q + 1] = 0
            ev_tch[q + 1] = -1
            ev_pos[q + 2] = c_lo
            ev_cov[q + 2] = 1 if c_lo < c_hi else 0
            ev_tch[q + 2] = 0
            ev_pos[q + 3] = c_hi
            ev_cov[q + 3] = -1 if c_lo < c_hi else 0
            ev_tch[q + 3] = 0
            q += 4
        order = np.argsort(ev_pos)
        need = l1 - l0
        cov = 0
        tch = 0
        i = 0
        n_blk = 0
        n_part = 0
        p_row = p
        while i < q:
            pos = ev_pos[order[i]]
            while i < q and ev_pos[order[i]] == pos:
                cov += ev_cov[order[i]]
                tch += ev_tch[order[i]]
                i += 1
            nxt = ev_pos[order[i]] if i < q else n_ob
            if tch > 0:
                is_full = cov == need
                for c in range(pos, min(nxt, n_ob)):
                    if fill == 1:
                        out_l[k] = lb
                        out_o[k] = c
                        out_k[k] = FULL if is_full else PARTIAL
                    k += 1
                    n_blk += 1
                    if not is_full:
                        n_part += 1
        if fill == 0:
            counts[lb, 0] = n_blk
            counts[lb, 1] = n_part
            continue
        # element tiles of this line block's partial blocks (listed in column order from p_row)
        pcols = np.empty(n_part, np.int64)
        j = 0
        for kk in range(k - n_blk, k):
            if out_k[kk] == PARTIAL:
                pcols[j] = out_o[kk]
                j += 1
        for ln in range(l0, l1):
            for t in range(ptr[ln], ptr[ln + 1]):
                s = rs[t]
                e = re[t]
                j = np.searchsorted(pcols, s // bo)
                while j < n_part and pcols[j] * bo < e:
                    c0 = pcols[j] * bo
                    a = max(s, c0) - c0
                    b = min(e, c0 + bo) - c0
                    _set_bits(tiles[p_row + j, ln - l0], a, b)
                    j += 1
        p += n_part


def blocks_from_runs(ptr: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_lines: int, n_other: int,
                     b_line: int, b_other: int, max_elements: int):
    """Block list of a mask given as runs per line: ``(line_block, other_block, kind, tiles)``.

    ``ptr`` int64 [n_lines + 1]: the runs of line ``l`` are ``starts[ptr[l]:ptr[l+1]]`` /
    ``ends[...]``, sorted, disjoint, not touching (see :func:`merge_touching`), within
    ``[0, n_other)``. Blocks come sorted by (line block, other block); ``tiles`` uint8
    [partial blocks, b_line, ceil(b_other / 8)] are the element tiles of the PARTIAL ones, in
    order, packed little-endian along the other axis (as :mod:`maskc.ir.masks` packs them).
    TooLargeError (before allocating them) above ``max_elements`` bytes of packed tiles.
    """
    ptr = np.ascontiguousarray(ptr, np.int64)
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    n_lb = -(-n_lines // b_line)
    counts = np.zeros((n_lb, 2), np.int64)
    none_i = np.zeros(1, np.int64)
    none_k = np.zeros(1, np.int8)
    no_tiles = np.zeros((1, 1, 1), np.uint8)
    _sweep(ptr, starts, ends, n_lines, n_other, b_line, b_other, 0, counts, none_i, none_i, none_k, no_tiles)
    n, n_part = (int(x) for x in counts.sum(axis=0))
    nbytes = n_part * b_line * -(-b_other // 8)
    if nbytes > max_elements:
        raise TooLargeError(f"{n_part:,} partial blocks of {b_line}x{b_other} need {nbytes:,} bytes of packed tiles, "
                            f"above max_elements={max_elements:,}; use larger blocks or raise max_elements")
    out_l = np.empty(n, np.int64)
    out_o = np.empty(n, np.int64)
    out_k = np.empty(n, np.int8)
    tiles = np.zeros((n_part, b_line, -(-b_other // 8)), np.uint8)
    _sweep(ptr, starts, ends, n_lines, n_other, b_line, b_other, 1, counts, out_l, out_o, out_k, tiles)
    return out_l, out_o, out_k, tiles
