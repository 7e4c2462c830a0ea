"""Block-level leaves whose inner pattern is one axis leaf (offsets, sums, rows, columns):
on the block grid their coarse columns are computed per row from the membership runs
(maskc.compiler.coarse), never listed. Checked against the element-by-element definition,
jitted and interpreted, with partial companions so the bits of the leaf are evaluated too."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import maskc as mc
from maskc.compiler import codes
from maskc.compiler.budget import Budget
from maskc.compiler.grid import make_grid
from maskc.compiler.program import build_program
from maskc.compiler.tables import build_tables

sys.path.insert(0, str(Path(__file__).parent))
from test_compiler_paths import _check  # noqa: E402  (tests/compiler/test_compiler_paths.py)
from test_interp import FIELDS, _both  # noqa: E402  (tests/compiler/test_interp.py)

INNERS = [
    mc.offsets([0, 2, 3, 7]),            # T_D
    mc.window(1) | mc.offsets([-4, 5]),  # same-axis union: one T_D leaf
    mc.causal(),
    mc.sums([3, 4, 9, 20]),              # T_S
    mc.rows([0, 2, 3, 11]),              # T_R
    mc.cols([1, 4, 5], 2),               # T_C
]
COMPANIONS = [None, lambda p: p & mc.window(9), lambda p: mc.causal() & (p | mc.stride(5)), lambda p: ~p | mc.rows([3])]


def _lowered_axis_kind(pattern, n):
    prog = build_program(pattern, n, n, Budget(1 << 30))
    return prog.root[0] == "leaf" and prog.leaves[0].kind in (codes.T_D, codes.T_S, codes.T_R, codes.T_C)


@pytest.mark.parametrize("inner", INNERS, ids=lambda p: p.text())
def test_inner_patterns_lower_to_one_axis_leaf(inner):
    assert _lowered_axis_kind(inner, 40), inner.text()


def test_on_grid_tables_keep_membership_runs_not_coarse_rows():
    n, b = 4096, 16
    p = mc.offsets([0, 1, 5]).at_block_level(b)
    grid = make_grid(n, n, 0, b, b)
    prog = build_program(p, n, n, Budget(1 << 30))

    def inner(pat, q_len, kv_len, q_offset, block):
        sub = build_program(pat, q_offset + q_len, kv_len, Budget(1 << 30))
        return sub.leaves[0].kind, sub.leaves[0].data

    lv = build_tables(prog.leaves, grid, Budget(1 << 30), inner)
    assert lv.coarse_axis[0] == codes.T_D
    assert lv.coarse_ptr.size == 2 and lv.coarse_lo.size == 2  # runs {0, 1} and {5}: not 256 rows of runs


@pytest.mark.parametrize("inner", INNERS, ids=lambda p: p.text())
@pytest.mark.parametrize("companion", range(len(COMPANIONS)))
@pytest.mark.parametrize("b, block, q_offset", [(8, 8, 0), (16, 8, 0), (16, (8, 16), 32), (8, 8, 40), (12, 8, 0)])
def test_block_level_axis_equals_the_definition(inner, companion, b, block, q_offset):
    p = inner.at_block_level(b)
    if COMPANIONS[companion] is not None:
        p = COMPANIONS[companion](p)
    _check(p, 133, 121 + q_offset, block, q_offset=q_offset)  # b = 12 with block 8: off the grid, listed runs


@settings(max_examples=25, deadline=None)
@given(inner=st.sampled_from(INNERS), b=st.sampled_from([4, 8, 16, 24]), q=st.integers(1, 260),
       k=st.integers(1, 260), companion=st.integers(0, len(COMPANIONS) - 1))
def test_interpreted_and_jitted_agree(inner, b, q, k, companion):
    p = inner.at_block_level(b)
    if COMPANIONS[companion] is not None:
        p = COMPANIONS[companion](p)
    plain, jit = _both(p, q, k, 4)
    for f in FIELDS:
        assert np.array_equal(getattr(plain, f), getattr(jit, f)), f"{p.text()} q={q} k={k}: {f}"


@pytest.mark.parametrize("inner", INNERS, ids=lambda p: p.text())
@pytest.mark.parametrize("q_offset", [0, 24])
def test_element_bits_of_the_leaf_equal_the_definition(inner, q_offset):
    """On the block grid the leaf is FULL or EMPTY on every block, so a compile never asks
    for its bits; both bit evaluators (numba's and the numpy one of interpreted compiles)
    still answer them exactly, on every block."""
    from maskc.compiler import bits, npbits

    q, k, b, bs = 64, 56, 8, 8
    p = inner.at_block_level(b)
    grid = make_grid(q, k, q_offset, bs, bs)
    prog = build_program(p, q_offset + q, k, Budget(1 << 30))

    def inner_of(pat, q_len, kv_len, off, block):
        sub = build_program(pat, off + q_len, kv_len, Budget(1 << 30))
        return sub.leaves[0].kind, sub.leaves[0].data

    lv = build_tables(prog.leaves, grid, Budget(1 << 30), inner_of)
    assert lv.coarse_axis[0] >= 0
    want = p.dense(q_offset + q, k)[0, q_offset:]
    for qb in range(grid.n_qb):
        for kb in range(grid.n_kb):
            rows, cols = min(bs, q - qb * bs), min(bs, k - kb * bs)
            tile = want[qb * bs: qb * bs + rows, kb * bs: kb * bs + cols]
            got_np = npbits._leaf_bits(0, qb, kb, lv, grid, rows, cols, None, None)
            out = np.zeros((bs, bs), dtype=np.bool_)
            bits._leaf_bits.py_func(0, qb, kb, lv, grid, rows, cols, None, None, None, out)
            assert np.array_equal(got_np, tile), (qb, kb)
            assert np.array_equal(out[:rows, :cols], tile), (qb, kb)
