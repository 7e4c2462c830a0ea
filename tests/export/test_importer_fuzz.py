"""Importers and exporters on hostile input: seeded mutations of valid arguments raise only the
documented error types (ValueError subclasses, TypeError), huge token-level results are
estimated and refused before any work, and interval exports of long layouts stay exact."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import maskc as mc
import maskc.export as ex
from maskc.errors import TooLargeError
from maskc.export import LossyExportWarning
from maskc.ir.layout import Layout


def base_calls():
    """(name, importer, kwargs) built from the exports of a few layouts."""
    rng = np.random.default_rng(1)
    lay = Layout.from_dense(rng.random((2, 37, 45)) < 0.3, 16)
    one = Layout.from_dense(np.tril(np.ones((40, 40), bool)) & (rng.random((40, 40)) < 0.8), 8)
    big = Layout.from_dense(np.tril(np.ones((256, 256), bool)), 128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyExportWarning)
        fi = ex.to_flashinfer_bsr(one)
        fv = ex.to_flashinfer_variable(lay)
        bsa = ex.to_block_sparse_attn(big, heads=2)
        ds = ex.to_deepspeed(one)
    sq = Layout.from_dense(np.tril(np.ones((24, 24), bool)) & ~np.tril(np.ones((24, 24), bool), -5), 8)
    fm = ex.to_flashmask(sq)
    mg = ex.to_magi(sq)
    return [
        ("from_scipy", ex.from_scipy, {"matrix": ex.to_scipy(lay, head=None), "block": 16, "shape": (37, 45)}),
        ("from_flashinfer_bsr", ex.from_flashinfer_bsr, dict(fi)),
        ("from_flashinfer_variable", ex.from_flashinfer_variable, dict(fv)),
        ("from_block_sparse_attn", ex.from_block_sparse_attn,
         {"base_blockmask": bsa["base_blockmask"], "head_mask_type": bsa["head_mask_type"], "q_len": 256}),
        ("from_deepspeed", ex.from_deepspeed, {"layout_tensor": ds, "block": 8, "q_len": 40, "kv_len": 40}),
        ("from_splash_info", lambda **k: ex.from_splash_info(k), ex.to_splash_info(lay)),
        ("from_flashmask", ex.from_flashmask, {"startend_row_indices": fm["startend_row_indices"],
                                               "causal": fm["causal"], "block": 8}),
        ("from_magi", ex.from_magi, {k: mg[k] for k in ("q_ranges", "k_ranges", "attn_type_map", "total_seqlen_q",
                                                         "total_seqlen_k")}),
        ("from_dense", ex.from_dense, {"mask": lay.to_dense(), "block": 16}),
    ]


HOSTILE = [-1, 0, 2**31, 2**63 - 1, -(2**62), 1.5, float("nan"), "3", None, True, (), [[1, 2], [3]], (5,),
           {"a": 1}, (0, 16), (16, 0), (2**20, 2**20), object()]


def mutate(value, rng):
    op = int(rng.integers(8))
    if isinstance(value, list) and value and op < 3:  # a list of scipy matrices: mutate one
        out = list(value)
        k = int(rng.integers(len(out)))
        out[k] = sp.csr_matrix((3, 4)) if op == 0 else (np.eye(3) if op == 1 else out[k].T)
        return out
    if isinstance(value, np.ndarray) and value.size and op < 5:
        a = value.copy()
        if op == 0:
            a.reshape(-1)[int(rng.integers(a.size))] = rng.choice([-1, 2**31 - 1, 7, 0])
            return a
        if op == 1:
            return a[None]
        if op == 2:
            return a.reshape(-1)
        if op == 3:
            return a.astype(np.float32) + 0.5
        return a[..., :-1] if a.shape[-1] > 1 else a[:0]
    return HOSTILE[int(rng.integers(len(HOSTILE)))]


def test_importer_mutations_raise_only_documented_errors():
    rng = np.random.default_rng(20261201)
    calls = base_calls()
    for name, fn, kw in calls:  # the unmutated calls work
        fn(**kw).validate()
    tally = {"ok": 0, "refused": 0}
    for _ in range(1500):
        name, fn, kw = calls[int(rng.integers(len(calls)))]
        kw = dict(kw)
        for key in rng.choice(list(kw), size=int(rng.integers(1, 3)), replace=False):
            kw[key] = mutate(kw[key], rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(**kw).validate()
            tally["ok"] += 1
        except (ValueError, TypeError):
            tally["refused"] += 1
        except Exception as e:  # pragma: no cover - the failure we are looking for
            raise AssertionError(f"{name}({ {k: type(v).__name__ for k, v in kw.items()} }) raised "
                                 f"{type(e).__name__}: {e}") from e
    assert tally["refused"] > 1000, tally


@pytest.mark.parametrize("shape", [(5,), (5, 5, 5), {"q": 5}, (0, 5), (5, -1), ("5", 5), 5])
def test_from_scipy_bad_shape_is_a_value_error(shape):
    m = sp.eye(6, format="csr")
    with pytest.raises((ValueError, TypeError)):
        ex.from_scipy(m, block=4, shape=shape)


def test_long_causal_interval_exports_are_exact_and_token_level_ones_refused():
    """1M-token causal: to_scipy used to run 11-13 s then ask for 2 TiB; Magi / FlashMask now come from blocks."""
    lay = mc.compile(mc.causal(), q_len=1 << 20, block=1024)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match="549,756,338,176 allowed pairs"):
            ex.to_scipy(lay)
        with pytest.raises(TooLargeError, match="allowed pairs"):
            ex.to_scipy(lay, head=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak  # O(blocks) estimates only, nothing token-level
    d = ex.to_magi(lay)
    assert d["q_ranges"].tolist() == [[0, 1 << 20]] and d["attn_type_map"].tolist() == [1]
    f = ex.to_flashmask(lay)
    assert f["causal"] and f["startend_row_indices"].shape == (1, 1, 1 << 20, 1)
    assert (f["startend_row_indices"] == 1 << 20).all()


def test_interval_exports_estimate_their_work_first():
    lay = mc.compile(mc.causal() & mc.offsets("primes"), q_len=4096, block=64)
    with pytest.raises(TooLargeError, match="steps"):
        ex.to_magi(lay, max_work=1000)
    with pytest.raises(TooLargeError, match="steps"):
        ex.to_flashmask(lay, max_work=1000)
    with pytest.raises(ValueError, match="max_slices"):
        ex.to_magi(lay, max_slices=100)


def test_batched_layouts_are_exported_per_target_rules():
    i, j = np.arange(40)[:, None], np.arange(40)[None, :]
    lay = Layout.from_dense(np.stack([(j <= i) & (i - j < w) for w in (3, 11)])[:, None], 8)  # windows per element
    for fn in (ex.to_flashinfer_bsr, ex.to_flashinfer_variable, ex.to_deepspeed, ex.to_magi, ex.to_splash_info):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyExportWarning)
            with pytest.raises(ValueError, match="for_batch"):
                fn(lay)
    f = ex.to_flashmask(lay)
    assert f["startend_row_indices"].shape[:2] == (2, 1)
    for b in range(2):
        one = ex.from_flashmask(f["startend_row_indices"], f["causal"], block=8, batch_index=b)
        assert np.array_equal(one.to_dense()[0], lay.to_dense()[b, 0])
    assert len(ex.to_scipy(lay, head=None)) == 2
    back = ex.from_scipy(ex.to_scipy(lay, head=None), block=8, batch=2)
    assert back == lay
