"""Leaf tables: each leaf of a Program turned into the arrays the row walk reads.

The row walk (:mod:`maskc.compiler.rowwalk`) asks every leaf, for one block row at a
time, for its verdict on stretches of key blocks: runs of EMPTY / PARTIAL / FULL. The
tables here make each answer cost O(runs), not O(key blocks):

* **Axis leaves** (offsets, sums, rows, columns; :mod:`maskc.compiler.axis`): class
  tables per block diagonal, anti-diagonal, block row or key block, with how many steps
  along a block row a class lasts, content ids of their windows, and counts of the
  membership every 64 entries for the ragged last column.
* **Segment leaves**: the positions split into *pieces* of equal id. Each key block
  lists the ids it holds; each id lists the runs of key blocks it touches (FULL where the
  key block holds that id only). A block row inside one segment u gets u's runs; a
  row holding several ids gets the union of theirs (PARTIAL). Built in O(N) once.
* **Block-level leaves**: the inner pattern is compiled at coarse resolution; its rows
  become runs of coarse columns. On the block grid (the coarse block a multiple of both
  block sizes) a block row reads its coarse row's runs directly; otherwise each block
  row's runs follow from the coarse rows it covers (union for non-empty, intersection
  for FULL).
* **Cells**: allowed pairs counted per block.

Example:
    >>> import maskc as mc
    >>> from maskc.compiler.grid import make_grid
    >>> from maskc.compiler.program import build_program
    >>> grid = make_grid(q_len=64, kv_len=64, q_offset=0, bq=16, bk=16)
    >>> lv = build_tables(build_program(mc.segments([20, 44]), 64, 64).leaves, grid, Budget(), None)
    >>> lv.run_ptr.tolist()  # runs per block row: two documents over four key blocks
    [0, 2, 3, 5, 7]
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from maskc.compiler import codes, prep
from maskc.compiler.axis import axis_tables, block_counts, content_ids
from maskc.compiler.budget import Budget
from maskc.compiler.grid import (
    AT_BITS, AT_CELLS, AT_COARSE, AT_CONTENT, AT_COUNT, AT_IDS, AT_KSEG, AT_MEMB, AT_QSEG, AT_RUNS, AT_TAB, N_AT, Grid,
    LeafTables,
)


def _segment_tables(ids: np.ndarray, grid: Grid) -> dict:
    """Incidence lists, single-label blocks and per-row runs of a segment leaf."""
    n = ids.size
    cut = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    ends = np.concatenate([cut, [n]]).astype(np.int64)
    vals = ids[starts]
    monotone = bool(np.all(vals[1:] > vals[:-1]))
    labels = np.arange(vals.size, dtype=np.int64) if monotone else np.unique(vals, return_inverse=True)[1].astype(np.int64)
    n_labels = int(labels.max()) + 1

    def incidence(t0: int, t1: int, bs: int, nb: int):
        p0 = int(np.searchsorted(ends, t0, side="right"))
        p1 = int(np.searchsorted(starts, t1, side="left"))
        s = np.maximum(starts[p0:p1], t0) - t0
        e = np.minimum(ends[p0:p1], t1) - t0
        b0 = s // bs
        cnt = (e - 1) // bs - b0 + 1
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        blk = np.repeat(b0, cnt) + np.arange(first.size, dtype=np.int64) - first
        key = blk * n_labels + np.repeat(labels[p0:p1], cnt)
        if not (monotone or bool(np.all(key[1:] > key[:-1]))):
            key = np.unique(key)
        blk, lab = key // n_labels, key % n_labels
        ptr = np.zeros(nb + 1, dtype=np.int64)
        np.cumsum(np.bincount(blk, minlength=nb), out=ptr[1:])
        pure = np.full(nb + 1, -1, dtype=np.int64)
        one = np.flatnonzero(np.diff(ptr) == 1)
        pure[one] = lab[ptr[one]]
        return ptr, lab, pure, blk

    q_ptr, q_lab, q_pure, _ = incidence(grid.q_offset, grid.q_total, grid.bq, grid.n_qb)
    k_ptr, k_lab, k_pure, k_blk = incidence(0, grid.kv_len, grid.bk, grid.n_kb)
    # each label's runs of key blocks: FULL where the key block holds that label only
    order = np.lexsort((k_blk, k_lab)) if not monotone else np.arange(k_lab.size)
    lab, blk = k_lab[order], k_blk[order]
    cls = np.where(k_pure[blk] == lab, codes.FULL, codes.PARTIAL).astype(np.int8)
    brk = np.ones(lab.size, dtype=bool)
    brk[1:] = (lab[1:] != lab[:-1]) | (blk[1:] != blk[:-1] + 1) | (cls[1:] != cls[:-1])
    first = np.flatnonzero(brk)
    last = np.concatenate([first[1:], [lab.size]])[: first.size] - 1
    lab_ptr = np.zeros(n_labels + 1, dtype=np.int64)
    np.cumsum(np.bincount(lab[first], minlength=n_labels), out=lab_ptr[1:])
    runs = prep.segment_row_runs(q_pure, q_ptr, q_lab, lab_ptr, blk[first], blk[last] + 1, cls[first])
    k_pure_count = np.zeros(grid.n_kb + 1, dtype=np.int64)
    np.cumsum(k_pure[:-1] >= 0, out=k_pure_count[1:])
    return dict(runs=runs, piece_start=np.concatenate([starts, [n]]), piece_label=np.concatenate([labels, [-1]]),
                q_pure=q_pure, qinc_ptr=q_ptr, qinc_lab=q_lab, k_pure=k_pure, k_pure_count=k_pure_count,
                kinc_ptr=k_ptr, kinc_lab=k_lab)


def _cell_tables(i: np.ndarray, j: np.ndarray, grid: Grid) -> dict:
    """Per-row runs of a cells leaf and its cells by layout row."""
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    keep = np.ones(i.size, dtype=bool)
    keep[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    keep &= i >= grid.q_offset
    row, col = i[keep] - grid.q_offset, j[keep]
    key, count = np.unique((row // grid.bq) * grid.n_kb + col // grid.bk, return_counts=True)
    qb, kb = key // grid.n_kb, key % grid.n_kb
    area = (np.where(qb == grid.n_qb - 1, grid.last_h, grid.bq) * np.where(kb == grid.n_kb - 1, grid.last_w, grid.bk))
    cls = np.where(count == area, codes.FULL, codes.PARTIAL).astype(np.int8)
    brk = np.ones(qb.size, dtype=bool)
    brk[1:] = (qb[1:] != qb[:-1]) | (kb[1:] != kb[:-1] + 1) | (cls[1:] != cls[:-1])
    first = np.flatnonzero(brk)
    last = np.concatenate([first[1:], [qb.size]])[: first.size] - 1
    ptr = np.zeros(grid.n_qb + 1, dtype=np.int64)
    np.cumsum(np.bincount(qb[first], minlength=grid.n_qb), out=ptr[1:])
    cell_ptr = np.searchsorted(row, np.arange(grid.q_len + 1)).astype(np.int64)
    return dict(runs=(ptr, kb[first], kb[last] + 1, cls[first]), cell_ptr=cell_ptr, cell_col=col)


def _inner_block(n: int) -> int:
    return 64 if n >= 64 else 16


def _block_level_tables(inner, b: int, grid: Grid, budget: Budget, compile_inner: Callable) -> dict:
    """Per-row runs of a block-level leaf from its inner pattern's coarse rows: straight
    from the membership when the inner pattern is one axis leaf, else compiled on cells."""
    row0 = grid.q_offset // b
    cq = -(-grid.q_total // b) - row0
    ck = -(-grid.kv_len // b)
    sub = compile_inner(inner, cq, ck, row0, (_inner_block(cq), _inner_block(ck)))
    on_grid = b % grid.bq == 0 and b % grid.bk == 0 and grid.q_offset % grid.bq == 0
    if isinstance(sub, tuple):  # (kind, membership) of a one-axis inner pattern
        kind, memb = sub
        edges = np.flatnonzero(np.diff(np.concatenate([[0], memb.view(np.uint8), [0]]).astype(np.int8)))
        if on_grid:  # rows compute their coarse columns from the membership runs (maskc.compiler.coarse)
            budget.take(16 * edges.size, f"the membership runs of block_level(..., {b})")
            m = edges.size // 2
            return dict(runs=None, coarse=(np.array([0, m], dtype=np.int64), edges[0::2], edges[1::2]), row0=row0,
                        axis=int(kind))
        c_ptr, c_lo, c_hi = prep.axis_coarse_runs(kind, edges[0::2], edges[1::2], row0, cq, ck)
        budget.take(16 * int(c_ptr[-1]), f"the {int(c_ptr[-1]):,} coarse runs of block_level(..., {b})")
    else:
        layout = (sub.row_ptr[0], sub.col_idx, sub.kind, sub.partial_id, sub.masks, sub.block_q, sub.block_k)
        c_ptr = prep.coarse_run_counts(*layout, cq, ck)
        budget.take(16 * int(c_ptr[-1]), f"the {int(c_ptr[-1]):,} coarse runs of block_level(..., {b})")
        c_lo, c_hi = prep.coarse_run_fill(c_ptr, *layout, ck)
    if on_grid:
        # on the block grid (every block inside one coarse cell): rows read the coarse runs directly
        return dict(runs=None, coarse=(c_ptr, c_lo, c_hi), row0=row0)
    i0 = grid.q_offset + np.arange(grid.n_qb, dtype=np.int64) * grid.bq
    r0 = i0 // b - row0
    r1 = (np.minimum(i0 + grid.bq, grid.q_total) - 1) // b - row0
    bound = int((3 * (c_ptr[r1 + 1] - c_ptr[r0]) + 1).sum())
    budget.take(17 * bound, f"the block-row runs of block_level(..., {b})")
    runs = prep.block_row_runs(c_ptr, c_lo, c_hi, b, row0, grid)
    return dict(runs=runs, coarse=(c_ptr, c_lo, c_hi), row0=row0)


class _Parts:
    """Concatenates per-leaf arrays of one LeafTables field and records their offsets."""

    def __init__(self, dtype):
        self.dtype, self.parts, self.size = dtype, [], 0

    def add(self, a: np.ndarray, shift: int = 0) -> int:
        at = self.size
        self.parts.append(np.asarray(a, dtype=self.dtype) + shift if shift else np.asarray(a, dtype=self.dtype))
        self.size += len(self.parts[-1])
        return at

    def array(self) -> np.ndarray:
        if len(self.parts) == 1:  # no copy of a single leaf's (possibly large) array
            return np.ascontiguousarray(self.parts[0])
        return np.concatenate(self.parts) if self.parts else np.zeros(1, dtype=self.dtype)


_FIELDS = {"memb": np.uint8, "memb_bits": np.uint8, "count": np.int64, "tab_cls": np.int8, "tab_steps": np.int64, "run_ptr": np.int64,
           "run_lo": np.int64, "run_hi": np.int64, "run_cls": np.int8, "piece_start": np.int64, "piece_label": np.int64, "q_pure": np.int64,
           "qinc_ptr": np.int64, "qinc_lab": np.int64, "k_pure": np.int64, "k_pure_count": np.int64,
           "kinc_ptr": np.int64, "kinc_lab": np.int64, "coarse_ptr": np.int64, "coarse_lo": np.int64,
           "coarse_hi": np.int64, "cell_ptr": np.int64, "cell_col": np.int64, "content": np.int64}


def build_tables(leaves: list, grid: Grid, budget: Budget, compile_inner: Callable) -> LeafTables:
    """The :class:`LeafTables` of a Program's leaves (:class:`maskc.compiler.program.Leaf`) at ``grid``.

    ``compile_inner(pattern, q_len, kv_len, q_offset, block)`` gives a block-level leaf's
    inner pattern at coarse resolution: ``(kind, membership)`` when it lowers to one axis
    leaf, else its one-slice Layout.
    """
    L = len(leaves)
    at = np.full((L, N_AT), -1, dtype=np.int64)
    param = np.zeros(L, dtype=np.int64)
    row0 = np.zeros(L, dtype=np.int64)
    coarse_axis = np.full(L, -1, dtype=np.int64)
    f = {name: _Parts(dt) for name, dt in _FIELDS.items()}

    def add_runs(l: int, runs) -> None:
        ptr, lo, hi, cls = runs
        at[l, AT_RUNS] = f["run_ptr"].add(ptr, shift=f["run_lo"].size)
        f["run_lo"].add(lo)
        f["run_hi"].add(hi)
        f["run_cls"].add(cls)

    for l, leaf in enumerate(leaves):
        if leaf.kind in (codes.T_D, codes.T_S, codes.T_R, codes.T_C):
            n_tab = {codes.T_D: 2 * grid.width, codes.T_S: 2 * grid.width, codes.T_R: grid.n_qb}.get(leaf.kind, grid.n_kb)
            budget.take(48 * n_tab, f"the block tables of {leaf.text}")
            memb = leaf.data.view(np.uint8)
            at[l, AT_MEMB] = f["memb"].add(memb)
            if leaf.kind in (codes.T_D, codes.T_S):  # a block row of bits is then a shifted byte slice
                packed = np.packbits(memb, bitorder="little")  # with 8 zero bits ahead, 24 behind
                zero = np.zeros(1, np.uint8)
                at[l, AT_BITS] = f["memb_bits"].add(np.concatenate([zero, packed, zero, zero, zero]))
            cls, steps = axis_tables(leaf.kind, memb, grid)
            at[l, AT_COUNT] = f["count"].add(block_counts(memb))
            at[l, AT_TAB] = f["tab_cls"].add(cls)
            ids, n_ids = content_ids(leaf.kind, memb, cls, grid)
            if ids is not None:
                at[l, AT_CONTENT] = f["content"].add(ids)
                param[l] = n_ids
            f["tab_steps"].add(steps)
        elif leaf.kind == codes.T_SEG:
            budget.take(48 * (grid.n_qb + grid.n_kb), f"the block tables of {leaf.text}")
            t = _segment_tables(leaf.data, grid)
            add_runs(l, t["runs"])
            at[l, AT_IDS] = f["piece_start"].add(t["piece_start"])
            f["piece_label"].add(t["piece_label"])
            param[l] = t["piece_start"].size - 1
            at[l, AT_QSEG] = f["q_pure"].add(t["q_pure"])
            f["qinc_ptr"].add(t["qinc_ptr"], shift=f["qinc_lab"].size)
            f["qinc_lab"].add(t["qinc_lab"])
            at[l, AT_KSEG] = f["k_pure"].add(t["k_pure"])
            f["k_pure_count"].add(t["k_pure_count"])
            f["kinc_ptr"].add(t["kinc_ptr"], shift=f["kinc_lab"].size)
            f["kinc_lab"].add(t["kinc_lab"])
        elif leaf.kind == codes.T_BLOCK:
            inner, b = leaf.data
            t = _block_level_tables(inner, b, grid, budget, compile_inner)
            if t["runs"] is not None:
                add_runs(l, t["runs"])
            c_ptr, c_lo, c_hi = t["coarse"]
            at[l, AT_COARSE] = f["coarse_ptr"].add(c_ptr, shift=f["coarse_lo"].size)
            f["coarse_lo"].add(c_lo)
            f["coarse_hi"].add(c_hi)
            param[l], row0[l], coarse_axis[l] = b, t["row0"], t.get("axis", -1)
        elif leaf.kind == codes.T_CELLS:
            t = _cell_tables(*leaf.data, grid)
            add_runs(l, t["runs"])
            at[l, AT_CELLS] = f["cell_ptr"].add(t["cell_ptr"], shift=f["cell_col"].size)
            f["cell_col"].add(t["cell_col"])
    kinds = np.array([leaf.kind for leaf in leaves], dtype=np.int64)
    return LeafTables(kinds, param, row0, coarse_axis, at, **{name: p.array() for name, p in f.items()})
