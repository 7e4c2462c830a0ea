"""Every exporter round-trips on hypothesis-generated layouts (ragged lengths, several heads,
blocks 16 / 32 / 64); block-level exporters keep the block structure and warn / refuse."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, strategies as st

import maskc.export as ex
from maskc.export import LossyExportWarning
from maskc.ir.layout import FULL, Layout

from export_strategies import head_layout, layouts, make_mask


def block_superset(lay: Layout) -> np.ndarray:
    """Dense mask [slices, q, k] where every stored block is fully allowed (what block-level formats see)."""
    grid = np.zeros((lay.n_slices, lay.n_qb, lay.n_kb), bool)
    grid[lay.block_head, lay.block_row, lay.col_idx] = True
    d = np.repeat(np.repeat(grid, lay.block_q, axis=1), lay.block_k, axis=2)
    return d[:, : lay.q_len, : lay.kv_len]


def no_warnings():
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("error", LossyExportWarning)
    return w


# ------------------------------------------------------------------ dense / scipy
@given(layouts())
def test_dense_roundtrip(lay):
    d = ex.to_dense(lay)
    assert d.shape == (lay.heads, lay.q_len, lay.kv_len) and d.sum() == lay.nnz
    assert ex.from_dense(d, lay.block) == lay


@given(layouts(), st.sampled_from(["csr", "coo", "bsr"]))
def test_scipy_roundtrip(lay, fmt):
    mats = ex.to_scipy(lay, fmt, head=None)
    assert len(mats) == lay.heads and all(sp.issparse(m) for m in mats)
    back = ex.from_scipy(mats, block=lay.block, shape=(lay.q_len, lay.kv_len))
    assert back == lay
    dense = lay.to_dense()
    for h, m in enumerate(mats):
        assert np.array_equal(m.toarray()[: lay.q_len, : lay.kv_len].astype(bool), dense[h])


def test_from_scipy_ignores_explicit_zeros_and_refuses_outside():
    m = sp.csr_matrix((np.array([1, 0, 1]), (np.array([0, 1, 2]), np.array([0, 1, 2]))), shape=(3, 3))
    assert ex.from_scipy(m, block=2).nnz == 2
    with pytest.raises(ValueError, match="outside shape"):
        ex.from_scipy(sp.eye(4, format="csr"), block=2, shape=(3, 3))
    with pytest.raises(TypeError, match="not a scipy.sparse"):
        ex.from_scipy([np.eye(3)], block=2)


# ------------------------------------------------------------------ FlashInfer
@given(layouts())
def test_flashinfer_bsr_roundtrip_per_head(lay):
    dense = lay.to_dense()
    for h in range(lay.heads):
        d = ex.to_flashinfer_bsr(lay, head=h)
        assert d["indptr"].dtype == np.int32 and d["indices"].dtype == np.int32
        assert d["indptr"].shape == (lay.n_qb + 1,) and (d["M"], d["N"], d["R"], d["C"]) == (
            lay.q_len, lay.kv_len, lay.block_q, lay.block_k)
        nnz = d["indices"].shape[0]
        if "mask" in d:
            assert d["mask"].shape == (nnz, lay.block_q, lay.block_k) and d["mask"].dtype == bool
        else:  # no mask only when every listed block is entirely allowed (no partial, no ragged cut)
            assert lay.n_partial == 0 or nnz == 0 or not (lay.kind[lay.block_head == h] == 1).any()
        back = ex.from_flashinfer_bsr(**d)
        assert np.array_equal(back.to_dense()[0], dense[h])
        assert back == head_layout(lay, h)


def test_flashinfer_bsr_needs_head_for_different_heads():
    m = np.zeros((2, 8, 8), bool)
    m[0] = np.eye(8, dtype=bool)
    m[1] = np.tril(np.ones((8, 8), bool))
    lay = Layout.from_dense(m, 4)
    with pytest.raises(ValueError, match="pass head=h"):
        ex.to_flashinfer_bsr(lay)
    same = Layout.from_dense(np.stack([m[1], m[1]]), 4)
    assert ex.to_flashinfer_bsr(same)["indices"].tolist() == [0, 0, 1]


def test_flashinfer_bsr_mask_marks_ragged_padding():
    lay = Layout.from_dense(np.ones((5, 6), bool), 4)  # all FULL, ragged in both axes
    d = ex.to_flashinfer_bsr(lay)
    assert lay.n_partial == 0 and "mask" in d
    assert d["mask"][-1].sum() == 1 * 2 and d["mask"][0].all()


def test_flashinfer_torch_device():
    torch = pytest.importorskip("torch", reason="torch not installed: device= returns torch tensors")
    lay = Layout.from_dense(np.tril(np.ones((8, 8), bool)), 4)
    d = ex.to_flashinfer_bsr(lay, device="cpu")
    assert isinstance(d["indptr"], torch.Tensor) and d["indptr"].dtype == torch.int32
    assert d["mask"].dtype == torch.bool and d["M"] == 8
    assert ex.from_flashinfer_bsr(**d) == lay


@given(layouts())
def test_flashinfer_variable_is_block_superset(lay):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        d = ex.to_flashinfer_variable(lay)
    assert bool(rec) == (lay.n_partial > 0)
    assert all(issubclass(r.category, LossyExportWarning) for r in rec)
    assert d["block_mask_map"].shape == (lay.heads, lay.n_qb, lay.n_kb)
    assert (d["block_row_sz"].sum(axis=1) == lay.q_len).all() and (d["block_col_sz"].sum(axis=1) == lay.kv_len).all()
    back = ex.from_flashinfer_variable(**d)
    assert back.n_partial == 0 and np.array_equal(back.to_dense(), block_superset(lay))
    retiled = ex.from_flashinfer_variable(**d, block=16)
    assert np.array_equal(retiled.to_dense(), block_superset(lay))
    if lay.n_partial:
        with pytest.raises(ValueError, match="strict=True"):
            ex.to_flashinfer_variable(lay, strict=True)
    else:  # exact; block sizes are inferred from the sizes (a length below the block shrinks it)
        assert np.array_equal(back.to_dense(), lay.to_dense())
        if lay.q_len >= lay.block_q and lay.kv_len >= lay.block_k:
            assert back == lay


def test_flashinfer_variable_nonuniform_needs_block():
    g = np.array([[[True, False], [False, True]]])
    with pytest.raises(ValueError, match="pass block="):
        ex.from_flashinfer_variable(g, [[3, 5]], [[5, 3]])
    lay = ex.from_flashinfer_variable(g, [[3, 5]], [[5, 3]], block=4)
    expect = np.zeros((8, 8), bool)
    expect[:3, :5] = True
    expect[3:, 5:] = True
    assert np.array_equal(lay.to_dense()[0], expect)


# ------------------------------------------------------------------ DeepSpeed / xformers / MIT
@given(layouts(square_blocks=True))
def test_deepspeed_roundtrip_blocks(lay):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyExportWarning)
        t = ex.to_deepspeed(lay)
        x = ex.to_xformers(lay)
    assert t.dtype == np.int64 and t.shape == (lay.heads, lay.n_qb, lay.n_kb)
    assert np.array_equal(t, x) and set(np.unique(t)) <= {0, 1}
    back = ex.from_deepspeed(t, lay.block_q, lay.q_len, lay.kv_len)
    assert np.array_equal(back.row_ptr, lay.row_ptr) and np.array_equal(back.col_idx, lay.col_idx)
    assert (back.kind == FULL).all()
    assert np.array_equal(back.to_dense(), block_superset(lay))
    if lay.n_partial == 0:
        assert back == lay
    else:
        with pytest.raises(ValueError, match="partial block"):
            ex.to_deepspeed(lay, strict=True)


def test_deepspeed_warns_and_refuses():
    lay = Layout.from_dense(np.tril(np.ones((64, 64), bool)), 16)
    with pytest.warns(LossyExportWarning, match="4 partial block"):
        ex.to_deepspeed(lay)
    with pytest.raises(ValueError, match="strict=True"):
        ex.to_deepspeed(lay, strict=True)
    with pytest.raises(ValueError, match="square blocks"):
        ex.to_deepspeed(Layout.from_dense(np.ones((8, 8), bool), (4, 2)))
    assert ex.to_deepspeed(Layout.from_dense(np.ones((1, 8, 8), bool), 4), heads=3).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="0 or 1"):
        ex.from_deepspeed(np.full((1, 2, 2), 2), 4)


@st.composite
def bsa_layouts(draw):
    """Layouts on 128 x 128 blocks (what Block-Sparse-Attention reads), batched or not."""
    lead = draw(st.sampled_from([(1,), (3,), (2, 1), (2, 2)]))
    q, k = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    m = np.stack([make_mask(draw(st.sampled_from(["random", "band", "blocky"])), 1, q, k, draw(st.integers(0, 2**31)),
                            0.3)[0] for _ in range(int(np.prod(lead)))]).reshape(lead + (q, k))
    return Layout.from_dense(m, 128)


@given(bsa_layouts(), st.sampled_from(["documented", "kernel"]))
def test_block_sparse_attn_roundtrip(lay, encoding):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyExportWarning)
        d = ex.to_block_sparse_attn(lay, encoding=encoding)
    bbm, hmt = d["base_blockmask"], d["head_mask_type"]
    assert bbm.dtype == bool and bbm.shape == (lay.batch, lay.heads, lay.n_qb, lay.n_kb)
    assert hmt.dtype == np.int32
    if encoding == "documented":  # what block_sparse_attn_func takes: 1 per block-sparse head ...
        assert hmt.tolist() == [1] * lay.heads
        assert bbm.shape[1] == int((hmt == 1).sum())  # ... and one mask head per block-sparse head
    else:
        assert hmt.tolist() == list(range(1, lay.heads + 1))
    back = ex.from_block_sparse_attn(bbm, hmt, lay.q_len, lay.kv_len, encoding=encoding)
    shape = (lay.batch, lay.heads, lay.q_len, lay.kv_len)
    want = block_superset(lay).reshape(shape)
    assert back.batch in (1, lay.batch) and back.heads == lay.heads
    if lay.batch > 1 and not (want == want[:1]).all():
        assert back.batch == lay.batch  # different batch elements stay apart
    got = np.broadcast_to(back.to_dense().reshape((back.batch,) + shape[1:]), shape)
    assert np.array_equal(got, want)


def test_block_sparse_attn_documented_head_mask_type():
    """The k-th head marked 1 reads base_blockmask[:, k - 1]; 0 is dense; -1 (streaming) is refused."""
    L = 256
    masks = np.zeros((1, 2, 2, 2), bool)
    masks[0, 0] = np.tril(np.ones((2, 2), bool))
    masks[0, 1] = np.eye(2, dtype=bool)
    lay = ex.from_block_sparse_attn(masks, [1, 0, 1], q_len=L)
    d = lay.to_dense()
    assert lay.heads == 3 and d[1].all()
    assert np.array_equal(d[0], np.kron(masks[0, 0], np.ones((128, 128), bool)))
    assert np.array_equal(d[2], np.kron(masks[0, 1], np.ones((128, 128), bool)))
    with pytest.raises(ValueError, match="one mask head per block-sparse head"):
        ex.from_block_sparse_attn(masks, [1, 1, 1], q_len=L)
    with pytest.raises(ValueError, match="encoding='kernel'"):
        ex.from_block_sparse_attn(masks, [1, 2], q_len=L)  # the old 1, 2, ... form needs encoding="kernel"
    kern = ex.from_block_sparse_attn(masks, [2, 0, 1], q_len=L, encoding="kernel")
    assert np.array_equal(kern.to_dense()[0], d[2]) and np.array_equal(kern.to_dense()[2], d[0])
    with pytest.raises(ValueError, match="streaming"):
        ex.from_block_sparse_attn(masks, [1, -1, 1], q_len=L)


def test_block_sparse_attn_head_types_and_refusals():
    lay = Layout.from_dense(np.tril(np.ones((256, 256), bool)), 128)
    with pytest.warns(LossyExportWarning):
        d = ex.to_block_sparse_attn(lay, heads=4, batch=2)
    assert d["head_mask_type"].tolist() == [1, 1, 1, 1] and d["base_blockmask"].shape == (2, 4, 2, 2)
    assert (d["base_blockmask"] == d["base_blockmask"][:1, :1]).all()  # a one-head layout repeated
    with pytest.raises(ValueError, match="128x128"):
        ex.to_block_sparse_attn(Layout.from_dense(np.ones((64, 64), bool), 32))
    with pytest.raises(ValueError, match="strict=True"):
        ex.to_block_sparse_attn(lay, strict=True)
    batched = Layout.from_dense(np.stack([np.ones((1, 256, 256), bool), np.zeros((1, 256, 256), bool)]), 128)
    d = ex.to_block_sparse_attn(batched)
    assert d["base_blockmask"][0].all() and not d["base_blockmask"][1].any()
    with pytest.raises(ValueError, match="batch=3"):
        ex.to_block_sparse_attn(batched, batch=3)
    back = ex.from_block_sparse_attn(d["base_blockmask"], d["head_mask_type"], 256)
    assert back.batch == 2 and back == batched
    assert ex.from_block_sparse_attn(d["base_blockmask"], d["head_mask_type"], 256, batch_index=1).nnz == 0


# ------------------------------------------------------------------ splash
@given(layouts())
def test_splash_info_roundtrip(lay):
    info = ex.to_splash_info(lay)
    codes = info["block_mask"]
    assert codes.shape == (lay.heads, lay.n_qb, lay.n_kb) and codes.dtype == np.int32
    assert (codes > 0).sum() == lay.nnz_blocks
    pmb = info["partial_mask_blocks"]
    assert pmb.shape[0] == len({b.tobytes() for b in pmb})  # deduplicated
    part = codes == 1
    assert (info["mask_next"][part] < pmb.shape[0]).all()
    assert ex.from_splash_info(info) == lay


def _padded_partial_blocks(dense, bq, bk):
    H, q, k = dense.shape
    return dense.reshape(H, q // bq, bq, k // bk, bk).transpose(0, 1, 3, 2, 4)


@given(st.integers(1, 3), st.sampled_from([(16, 16), (16, 32), (32, 16)]), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from(["random", "causal", "band", "blocky", "intervals"]), st.integers(0, 2**31))
def test_splash_matches_jax_process_mask(H, block, nq, nk, kind, seed):
    mask_lib = pytest.importorskip(
        "jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask",
        reason="jax splash attention not importable on this jax build")
    info_lib = pytest.importorskip(
        "jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask_info",
        reason="jax splash attention not importable on this jax build")
    bq, bk = block
    dense = make_mask(kind, H, nq * bq, nk * bk, seed, 0.3)
    lay = Layout.from_dense(dense, block)
    mh = ex.to_splash_mask(lay)
    assert isinstance(mh, mask_lib.MultiHeadMask) and mh.shape == dense.shape
    for h in range(H):
        assert isinstance(mh.masks[h], mask_lib.NumpyMask)
        assert np.array_equal(mh.masks[h].array, dense[h])
    ref, _ = info_lib.process_mask(mh, block, shrink_grid=False, downcast_smem_data=False)
    ours = ex.to_splash_info(lay)
    if ref.block_mask.shape[0] == 1 and H > 1:  # splash broadcasts identical heads
        assert (ours["block_mask"] == ours["block_mask"][:1]).all()
        sl = slice(0, 1)
    else:
        sl = slice(None)
    assert np.array_equal(np.asarray(ref.block_mask), ours["block_mask"][sl])
    assert np.array_equal(np.asarray(ref.data_next), ours["data_next"][sl])
    if ref.partial_mask_blocks is None:
        assert ours["partial_mask_blocks"].shape[0] == 0
    else:
        assert np.array_equal(np.asarray(ref.partial_mask_blocks), ours["partial_mask_blocks"])
        assert np.array_equal(np.asarray(ref.mask_next), ours["mask_next"][sl])


def test_splash_mask_repeats_one_head():
    pytest.importorskip("jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask",
                        reason="jax splash attention not importable on this jax build")
    lay = Layout.from_dense(np.tril(np.ones((32, 32), bool)), 16)
    assert ex.to_splash_mask(lay, heads=4).shape == (4, 32, 32)


# ------------------------------------------------------------------ FlashMask
def _flashmask_representable(dense: np.ndarray) -> bool:
    """Independent oracle: at most one masked run per key column on each side of the diagonal."""
    H, L, _ = dense.shape
    i = np.arange(L)[:, None]
    j = np.arange(L)[None, :]
    for side in (i >= j, i < j):
        masked = ~dense & side[None]
        start = masked & ~np.concatenate([np.zeros((H, 1, L), bool), masked[:, :-1]], axis=1)
        if (start.sum(axis=1) > 1).any():
            return False
    return True


@given(layouts(square=True))
def test_flashmask_roundtrip_or_refusal(lay):
    dense = lay.to_dense()
    try:
        d = ex.to_flashmask(lay)
    except ValueError as e:
        assert "FlashMask represents at most one masked run" in str(e)
        assert not _flashmask_representable(dense)
        return
    assert _flashmask_representable(dense)
    sri = d["startend_row_indices"]
    assert sri.dtype == np.int32 and sri.shape[:3] == (1, lay.heads, lay.q_len)
    is_causal = not np.triu(dense, 1).any()
    assert d["causal"] == is_causal
    assert sri.shape[3] in ((1, 2) if is_causal else (2, 4))
    back = ex.from_flashmask(sri, d["causal"], block=lay.block)
    assert back == lay
    # the non-causal form of a causal layout is exact too
    if is_causal:
        d2 = ex.to_flashmask(lay, causal=False)
        assert d2["startend_row_indices"].shape[3] in (2, 4)
        assert ex.from_flashmask(d2["startend_row_indices"], False, block=lay.block) == lay


def test_flashmask_forms_and_errors():
    L = 8
    causal = Layout.from_dense(np.tril(np.ones((L, L), bool)), 4)
    d = ex.to_flashmask(causal)
    assert d["causal"] and d["startend_row_indices"][0, 0, :, 0].tolist() == [L] * L
    # document mask: causal inside two segments [0, 3) and [3, 8) -> LTS = segment end
    seg = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    doc = Layout.from_dense(np.tril(np.ones((L, L), bool)) & (seg[:, None] == seg[None, :]), 4)
    assert ex.to_flashmask(doc)["startend_row_indices"][0, 0, :, 0].tolist() == [3, 3, 3, 8, 8, 8, 8, 8]
    with pytest.raises(ValueError, match="causal=True but head 0 lets query 0 attend the later key 1"):
        ex.to_flashmask(Layout.from_dense(np.ones((L, L), bool), 4), causal=True)
    holes = np.tril(np.ones((L, L), bool))
    holes[[2, 5], 0] = False  # column 0: two masked runs below the diagonal
    with pytest.raises(ValueError, match=r"key column 0 of head 0 has 2 masked runs on or below the diagonal"):
        ex.to_flashmask(Layout.from_dense(holes, 4))
    with pytest.raises(ValueError, match="square"):
        ex.to_flashmask(Layout.from_dense(np.ones((4, 6), bool), 4))
    full = ex.to_flashmask(Layout.from_dense(np.ones((L, L), bool), 4))
    assert not full["causal"] and full["startend_row_indices"].shape[3] == 2


# ------------------------------------------------------------------ MagiAttention
@given(layouts(max_len=100))
def test_magi_roundtrip(lay):
    dense = lay.to_dense()
    for h in range(lay.heads):
        d = ex.to_magi(lay, head=h)
        n = d["attn_type_map"].shape[0]
        assert d["q_ranges"].shape == (n, 2) and d["k_ranges"].shape == (n, 2)
        assert d["q_ranges"].dtype == np.int32 and set(d["attn_type_map"].tolist()) <= {0, 1, 2, 3}
        back = ex.from_magi(**d, block=lay.block)
        assert np.array_equal(back.to_dense()[0], dense[h])


def test_magi_slice_counts_and_errors():
    L = 64
    i, j = np.arange(L)[:, None], np.arange(L)[None, :]
    causal = ex.to_magi(Layout.from_dense(j <= i, 16))
    assert causal["q_ranges"].tolist() == [[0, L]] and causal["attn_type_map"].tolist() == [1]
    win = ex.to_magi(Layout.from_dense((j <= i) & (i - j < 5), 16))
    assert win["attn_type_map"].tolist() == [1, 3]
    inv = ex.to_magi(Layout.from_dense(j >= i, 16))
    assert inv["attn_type_map"].tolist() == [2]
    primes = (j <= i) & np.isin(i - j, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31])
    with pytest.raises(ValueError, match="max_slices=10"):
        ex.to_magi(Layout.from_dense(primes, 16), max_slices=10)
    with pytest.raises(ValueError, match="overlap at query 1, key 0"):
        ex.from_magi([[0, 4], [1, 2]], [[0, 4], [0, 1]], [0, 0], 4, 4, block=2)
    with pytest.raises(ValueError, match="unknown mask type"):
        ex.from_magi([[0, 4]], [[0, 4]], ["diagonal"], 4, 4)
    # bottom-right aligned causal when nk > nq
    lay = ex.from_magi([[0, 2]], [[0, 4]], ["causal"], 2, 4, block=2)
    assert lay.to_dense()[0].astype(int).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


# ------------------------------------------------------------------ package
def test_import_does_not_need_torch_or_jax():
    import subprocess
    import sys

    code = ("import sys, maskc; before = {'torch', 'jax'} & set(sys.modules); import maskc.export as e; "
            "new = ({'torch', 'jax'} & set(sys.modules)) - before; assert not new, new; "
            "assert 'to_flex_block_mask' in e.__all__")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_flex_names_are_reexported():
    pytest.importorskip("torch", reason="torch not installed: FlexAttention export needs it")
    import maskc.export.flex as flex

    assert ex.from_flex_block_mask is flex.from_flex_block_mask
    assert ex.to_flex_block_mask is flex.to_flex_block_mask
    with pytest.raises(AttributeError):
        ex.to_nonexistent_format  # noqa: B018


def test_type_errors_name_the_function():
    with pytest.raises(TypeError, match="to_deepspeed: expected a maskc Layout"):
        ex.to_deepspeed(np.ones((2, 2)))
