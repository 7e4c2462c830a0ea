"""The shapes every kernel of the compiler reads: the :class:`Grid` of a compile and the
:class:`LeafTables` of its leaves (built by :mod:`maskc.compiler.tables`).

Example:
    >>> grid = make_grid(q_len=10, kv_len=10, q_offset=0, bq=4, bk=4)
    >>> (grid.n_qb, grid.full_rows, grid.last_h, grid.width)
    (3, 2, 2, 5)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# columns of LeafTables.at: where each leaf's data starts in the shared arrays
AT_MEMB, AT_COUNT, AT_TAB, AT_RUNS, AT_IDS, AT_QSEG, AT_KSEG, AT_COARSE, AT_CELLS, AT_CONTENT, AT_BITS = range(11)
N_AT = 11


class Grid(NamedTuple):
    """Sizes of one compile. Query rows are absolute positions ``q_offset ..
    q_offset + q_len - 1`` (``q_total = q_offset + q_len``); block row ``qb`` holds
    rows ``q_offset + qb * bq ..``; key block ``kb`` holds columns ``kb * bk ..``."""

    q_len: int
    kv_len: int
    q_offset: int
    q_total: int
    bq: int
    bk: int
    n_qb: int
    n_kb: int
    #: gcd(bq, bk): block diagonals are ``g`` apart
    g: int
    #: number of block diagonals (and anti-diagonals), indexed x = (qb*bq - kb*bk + (n_kb-1)*bk) / g
    width: int
    #: block rows of full height bq, key blocks of full width bk
    full_rows: int
    full_cols: int
    #: height of the last block row, width of the last key block
    last_h: int
    last_w: int


def make_grid(q_len: int, kv_len: int, q_offset: int, bq: int, bk: int) -> Grid:
    """The :class:`Grid` of a compile."""
    n_qb, n_kb = -(-q_len // bq), -(-kv_len // bk)
    g = math.gcd(bq, bk)
    width = ((n_qb - 1) * bq + (n_kb - 1) * bk) // g + 1
    return Grid(q_len, kv_len, q_offset, q_offset + q_len, bq, bk, n_qb, n_kb, g, width,
                q_len // bq, kv_len // bk, q_len - (n_qb - 1) * bq, kv_len - (n_kb - 1) * bk)


class LeafTables(NamedTuple):
    """Every leaf's data, concatenated; ``at[l, AT_*]`` is where leaf l's part starts.

    Pointer arrays (``run_ptr``, ``qinc_ptr``, ``kinc_ptr``, ``coarse_ptr``,
    ``cell_ptr``) hold global indices into their value arrays.
    """

    kind: np.ndarray        # int64 [L] codes.T_*
    param: np.ndarray       # int64 [L] coarse block (T_BLOCK), pieces (T_SEG), distinct contents (axis leaves)
    coarse_row0: np.ndarray  # int64 [L] first coarse row a T_BLOCK leaf's coarse runs hold
    coarse_axis: np.ndarray  # int64 [L] T_BLOCK: -1 (coarse runs per row) or the inner axis kind (membership runs)
    at: np.ndarray          # int64 [L, N_AT]
    memb: np.ndarray        # uint8: D / S / R / C membership
    memb_bits: np.ndarray   # uint8: D / S membership packed little-endian, after 8 zero bits (bits.py reads rows of it)
    count: np.ndarray       # int64: prefix counts of memb every 64 entries (block_counts)
    tab_cls: np.ndarray     # int8: D / S class per diagonal (2 variants x width), R per block row, C per key block
    tab_steps: np.ndarray   # int64: steps along a block row the class stays the same
    run_ptr: np.ndarray     # int64 [n_qb + 1] per run leaf: the block row's runs
    run_lo: np.ndarray      # int64: first key block of a run
    run_hi: np.ndarray      # int64: one past its last key block
    run_cls: np.ndarray     # int8: PARTIAL or FULL
    piece_start: np.ndarray  # int64 [P + 1]: positions where a segment leaf's id changes, then n
    piece_label: np.ndarray  # int64 [P + 1]: the dense label of each piece
    q_pure: np.ndarray      # int64 [n_qb + 1]: the only segment label of a query block, or -1
    qinc_ptr: np.ndarray    # int64 [n_qb + 1]: labels in each query block
    qinc_lab: np.ndarray    # int64
    k_pure: np.ndarray      # int64 [n_kb + 1]: the only segment label of a key block, or -1
    k_pure_count: np.ndarray  # int64 [n_kb + 1]: prefix count of single-label key blocks
    kinc_ptr: np.ndarray    # int64 [n_kb + 1]: labels in each key block
    kinc_lab: np.ndarray    # int64
    coarse_ptr: np.ndarray  # int64: runs of allowed coarse columns per coarse row (one axis: [0, membership runs])
    coarse_lo: np.ndarray   # int64
    coarse_hi: np.ndarray   # int64
    cell_ptr: np.ndarray    # int64 [q_len + 1]: cells of each layout row
    cell_col: np.ndarray    # int64
    content: np.ndarray     # int64: content id of a full-size block's window of an axis leaf (-1 unless PARTIAL)
