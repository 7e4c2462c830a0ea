"""Layout operations against the dense mask they describe (hypothesis, fresh random masks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import maskc as mc
from maskc.errors import LayoutFormatError, TooLargeError
from maskc.ir.layout import FULL, PARTIAL, Layout

from ir_cases import dense_masks, layouts, random_mask


def flat(dense: np.ndarray) -> np.ndarray:
    """[.., q, k] -> [slices, q, k]."""
    return dense.reshape((-1,) + dense.shape[-2:])


@given(dense_masks())
def test_from_dense_round_trip_and_shapes(mb):
    m, block = mb
    lay = Layout.from_dense(m, block).validate()
    assert lay.batch == (m.shape[0] if m.ndim == 4 else 1) and lay.n_slices == flat(m).shape[0]
    # [heads, q, k] for batch 1, [batch, heads, q, k] otherwise
    assert lay.to_dense().shape == (m.shape if lay.batch > 1 else m.shape[-3:])
    assert np.array_equal(flat(lay.to_dense()), flat(m))
    assert lay.nnz == int(m.sum())
    assert np.array_equal(lay.row_counts().reshape(-1), m.sum(axis=-1).reshape(-1))


@given(layouts(), st.data())
def test_rows_equal_the_dense_rows(lay, data):
    start = data.draw(st.integers(0, lay.q_len - 1))
    stop = data.draw(st.integers(start + 1, lay.q_len))
    part = lay.rows(start, stop).validate()
    assert (part.q_len, part.q_offset, part.kv_len, part.batch, part.heads) == (
        stop - start, lay.q_offset + start, lay.kv_len, lay.batch, lay.heads)
    assert part.block == lay.block
    assert np.array_equal(part.to_dense(), lay.to_dense()[..., start:stop, :])
    assert part == Layout.from_dense(lay.to_dense()[..., start:stop, :], lay.block, q_offset=start)
    # rows of rows compose, offsets add up
    if part.q_len > 1:
        sub = part.rows(1, part.q_len)
        assert sub.q_offset == lay.q_offset + start + 1
        assert np.array_equal(sub.to_dense(), lay.to_dense()[..., start + 1:stop, :])


def test_rows_refuses_bad_ranges():
    lay = mc.compile(mc.causal(), q_len=10, block=4)
    assert lay.rows(0, 10) is lay
    for a, b in ((5, 5), (-1, 3), (0, 11), (7, 2)):
        with pytest.raises(ValueError):
            lay.rows(a, b)
    with pytest.raises(TypeError):
        lay.rows(0.5, 3)


@given(st.lists(dense_masks(max_len=40, batched=False), min_size=1, max_size=4), st.data())
def test_from_slices_stacks_and_dedupes(items, data):
    q, k = items[0][0].shape[-2:]
    block = items[0][1]
    masks = [random_mask(m.shape[:-2] + (q, k), i, 0.5) for i, (m, _) in enumerate(items)]
    lays = [Layout.from_dense(m, block) for m in masks]
    total = sum(x.n_slices for x in lays)
    batch = data.draw(st.sampled_from([d for d in range(1, total + 1) if total % d == 0]))
    out = Layout.from_slices(lays, batch=batch).validate()
    want = np.concatenate([flat(m) for m in masks])
    assert np.array_equal(flat(out.to_dense()), want)
    assert out.batch == batch and out.heads == total // batch
    # every distinct partial mask is stored once
    assert out.n_unique_masks == np.unique(out.masks.reshape(out.n_unique_masks, -1), axis=0).shape[0] if out.n_unique_masks else True
    for b in range(batch):
        eb = out.for_batch(b).validate()
        assert eb.batch == 1 and np.array_equal(flat(eb.to_dense()), want[b * out.heads:(b + 1) * out.heads])


def test_from_slices_refuses_mismatches():
    a = Layout.from_dense(np.ones((4, 4), bool), 2)
    with pytest.raises(ValueError, match="layout 1"):
        Layout.from_slices([a, Layout.from_dense(np.ones((4, 5), bool), 2)])
    with pytest.raises(ValueError, match="multiple of batch"):
        Layout.from_slices([a, a, a], batch=2)
    with pytest.raises(ValueError, match="for_batch"):
        Layout.from_slices([Layout.from_slices([a, a], batch=2)])
    with pytest.raises(TypeError):
        Layout.from_slices([])


@given(layouts())
def test_block_views_agree_with_dense(lay):
    dense = flat(lay.to_dense())
    S, Bq, Bk = lay.n_slices, lay.block_q, lay.block_k
    pad = np.zeros((S, lay.n_qb * Bq, lay.n_kb * Bk), bool)
    pad[:, :lay.q_len, :lay.kv_len] = dense
    tiles = lay.block_tiles()
    for t in range(lay.nnz_blocks):
        s, r, c = lay.block_head[t], lay.block_row[t], lay.col_idx[t]
        want = pad[s, r * Bq:(r + 1) * Bq, c * Bk:(c + 1) * Bk]
        assert np.array_equal(tiles[t], want)
        assert lay.block_nnz[t] == want.sum()
        vr, vc = lay.block_extents[0][t], lay.block_extents[1][t]
        assert (vr, vc) == (min(Bq, lay.q_len - r * Bq), min(Bk, lay.kv_len - c * Bk))
        assert lay.padded_full[t] == bool(want.all())
    assert np.array_equal(lay.valid_cols(), lay.col_extent(np.arange(lay.n_kb)))
    grid = lay.block_grid()
    assert np.array_equal(grid != 0, pad.reshape(S, lay.n_qb, Bq, lay.n_kb, Bk).any(axis=(2, 4)))
    # the transposed view lists every block once, by (slice, key block), rows increasing
    csc = lay.csc
    order = np.lexsort((lay.block_row, lay.col_idx, lay.block_head))
    assert np.array_equal(csc.perm, order)
    assert np.array_equal(csc.row_idx, lay.block_row[order])
    for s in range(S):
        assert np.array_equal(np.diff(csc.col_ptr[s]), np.bincount(lay.col_idx[lay.block_head == s],
                                                                    minlength=lay.n_kb))
        indptr, indices = lay.token_csr(s)
        rr, cc = np.nonzero(dense[s])
        assert np.array_equal(indices, cc) and np.array_equal(np.diff(indptr), dense[s].sum(axis=1))
        assert np.array_equal(lay.to_scipy("bsr", s).toarray()[:lay.q_len, :lay.kv_len], dense[s])


@given(dense_masks(batched=False), st.data())
def test_from_blocks_and_from_pairs(mb, data):
    m, block = mb
    ref = Layout.from_dense(m, block)
    S = m.shape[0]
    s, i, j = np.nonzero(m)
    perm = data.draw(st.permutations(range(s.size))) if s.size < 200 else np.arange(s.size)
    perm = np.asarray(perm, dtype=np.int64)
    rep = np.concatenate([perm, perm[: s.size // 3]])  # duplicates are counted once
    assert Layout.from_pairs(m.shape[1], m.shape[2], block, s[rep], i[rep], j[rep], n_slices=S) == ref
    tiles = ref.block_tiles()
    back = Layout.from_blocks(ref.q_len, ref.kv_len, block, ref.block_head, ref.block_row, ref.col_idx, tiles,
                              n_slices=S)
    assert back == ref
    full = Layout.from_blocks(ref.q_len, ref.kv_len, block, ref.block_head, ref.block_row, ref.col_idx, n_slices=S)
    assert full.n_partial == 0 and np.array_equal(full.block_grid() != 0, ref.block_grid() != 0)


def test_constructors_refuse_bad_input():
    with pytest.raises(ValueError, match="listed twice"):
        Layout.from_blocks(4, 4, 2, [0, 0], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="rows must be in"):
        Layout.from_blocks(4, 4, 2, [0], [2], [0])
    with pytest.raises(ValueError, match="queries must be in"):
        Layout.from_pairs(4, 4, 2, [0], [4], [0])
    with pytest.raises(ValueError, match="tiles must have shape"):
        Layout.from_blocks(4, 4, 2, [0], [0], [0], np.ones((1, 3, 2), bool))
    with pytest.raises(TypeError):
        Layout.from_blocks(4.0, 4, 2, [0], [0], [0])
    with pytest.raises(ValueError, match="must hold integers"):
        Layout.from_pairs(4, 4, 2, [0.5], [0], [0])
    with pytest.raises(LayoutFormatError, match="non-empty"):
        Layout.from_dense(np.zeros((0, 4), bool))
    with pytest.raises(TooLargeError):
        Layout.from_pairs(64, 64, 8, np.zeros(64, int), np.arange(64), np.arange(64), max_elements=100)


def test_slices_identical_and_equality():
    m = random_mask((1, 20, 20), 3)
    one = Layout.from_dense(m, 8)
    same = Layout.from_dense(np.concatenate([m, m]), 8)
    diff = Layout.from_dense(np.concatenate([m, ~m]), 8)
    assert same.slices_identical() and not diff.slices_identical()
    assert Layout.from_slices([one, one]) == same
    assert one.rows(0, 20) == one and one.rows(0, 19) != one


def test_refusals_name_the_size():
    lay = mc.compile(mc.causal(), q_len=1 << 20, block=4096)
    with pytest.raises(TooLargeError, match="allowed pairs"):
        lay.to_scipy()
    with pytest.raises(TooLargeError, match="allowed pairs"):
        lay.token_csr(0)
    with pytest.raises(TooLargeError, match="max_elements"):
        lay.to_dense()
    wide = mc.compile(mc.window(1), q_len=1 << 20, block=16)
    with pytest.raises(TooLargeError, match="cells"):
        wide.block_grid()


def test_kinds_are_the_documented_codes():
    lay = Layout.from_dense(np.tril(np.ones((4, 4), bool)), 2)
    assert set(lay.kind.tolist()) == {PARTIAL, FULL} and (PARTIAL, FULL) == (1, 2)
