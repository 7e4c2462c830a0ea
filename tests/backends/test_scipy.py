"""The scipy backend against the float64 reference, its CSR expansion and its memory cap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import maskc as mc
from maskc.backends import attention, last_choice
from maskc.backends import scipy_backend as sb
from maskc.backends.crosscheck import TOLERANCES, rel_err
from maskc.errors import TooLargeError

from _cases import attention_cases  # noqa: E402  (tests/backends/_cases.py)


def cases():
    return attention_cases(max_len=300, blocks=(16, 32, 64, (16, 64), (64, 32)),
                           dtypes=("float32", "float64", "float16"), densities=(0.02, 0.2, 0.7), head_dims=(8, 32))


@settings(max_examples=25)
@given(cases())
def test_scipy_matches_reference(case):
    lay, _, q, k, v = case
    out, lse = attention(q, k, v, lay, backend="scipy", return_lse=True)
    ref, ref_lse = attention(q, k, v, lay, backend="reference", return_lse=True)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert lse.dtype == (np.float64 if q.dtype == np.float64 else np.float32) and lse.shape == q.shape[:3]
    tol = {"float64": 1e-12}.get(str(q.dtype), TOLERANCES[str(q.dtype)])
    # compare at float64 against the float64 result (ref is cast to q.dtype: redo it exactly)
    from maskc.backends.reference import attention_reference

    exact, _ = attention_reference(q, k, v, lay, scale=q.shape[-1] ** -0.5, keep_float64=True)
    assert rel_err(out, exact) <= tol
    assert rel_err(lse, ref_lse) <= tol  # includes: -inf exactly on the empty rows
    empty = np.isneginf(ref_lse)
    assert np.all(out[empty] == 0)


def test_token_csr_matches_dense_mask():
    rng = np.random.default_rng(5)
    m = rng.random((2, 45, 70)) < 0.25
    m[0, :, 64:] = True  # FULL blocks in the ragged key tail
    lay = mc.Layout.from_dense(m, (16, 32))
    for h in range(2):
        indptr, indices = sb.token_csr(lay, h)
        rows = np.repeat(np.arange(45), np.diff(indptr))
        got = np.zeros((45, 70), bool)
        got[rows, indices] = True
        assert np.array_equal(got, m[h])
        assert indices.size == m[h].sum()  # no duplicates
        for i in range(45):  # sorted within each row
            seg = indices[indptr[i] : indptr[i + 1]]
            assert np.all(np.diff(seg) > 0)


def test_auto_picks_scipy_for_numpy():
    lay = mc.compile(mc.causal(), q_len=20, block=16)
    q = np.random.default_rng(0).normal(size=(1, 1, 20, 8)).astype(np.float32)
    attention(q, q, q, lay)
    assert last_choice().name == "scipy"


def test_all_rows_empty_gives_zeros_and_minus_inf():
    lay = mc.Layout.from_dense(np.zeros((1, 10, 12), bool), 16)
    q = np.ones((1, 2, 10, 4), np.float32)
    kv = np.ones((1, 2, 12, 4), np.float32)
    out, lse = attention(q, kv, kv, lay, backend="scipy", return_lse=True)
    assert np.all(out == 0) and np.all(np.isneginf(lse))


def test_memory_cap_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(sb, "MAX_BYTES", 10_000)
    lay = mc.compile(mc.causal(), q_len=200, block=32)
    q = np.ones((1, 1, 200, 16), np.float32)
    with pytest.raises(TooLargeError, match="MAX_BYTES"):
        attention(q, q, q, lay, backend="scipy")


def test_estimate_grows_with_nnz_not_with_dense_size():
    sparse = mc.compile(mc.causal() & mc.window(3), q_len=4096, block=64)
    small = sb.estimate_bytes(sparse, 1, 1, 64, 4)
    assert small < 4096 * 4096 * 4 / 4  # far below one dense float32 score matrix


def test_scipy_refuses_numpy_bfloat16_with_the_reason():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (numpy bfloat16) is not installed")
    lay = mc.compile(mc.causal(), q_len=20, block=16)
    q = np.ones((1, 1, 20, 8), ml_dtypes.bfloat16)
    with pytest.raises(ValueError, match="scipy.*supports dtypes float16, float32, float64, got bfloat16"):
        attention(q, q, q, lay, backend="scipy")
