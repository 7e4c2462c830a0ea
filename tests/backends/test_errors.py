"""Input validation in mc.backends.attention: each message names the argument and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc
from maskc.backends import attention

LAY = mc.Layout.from_dense(np.tril(np.ones((2, 10, 12), bool)), 16)


def arrs(B=1, Hq=2, Hkv=2, Lq=10, Lk=12, D=8, dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(B, Hq, Lq, D)).astype(dtype), rng.normal(size=(B, Hkv, Lk, D)).astype(dtype),
            rng.normal(size=(B, Hkv, Lk, D)).astype(dtype))


def test_valid_call_passes():
    assert attention(*arrs(), LAY, backend="reference").shape == (1, 2, 10, 8)


@pytest.mark.parametrize(
    "mutate, exc, match",
    [
        (lambda q, k, v: (q[0], k, v), ValueError, r"q must have 4 dimensions"),
        (lambda q, k, v: (q, k, v[..., :4]), ValueError, r"v must have the same shape as k"),
        (lambda q, k, v: (q, k[..., :4], v[..., :4]), ValueError, r"head_dim 4 but q has 8"),
        (lambda q, k, v: (np.concatenate([q, q]), k, v), ValueError, r"batch size 1 but q has 2"),
        (lambda q, k, v: (q.astype(np.int32), k, v), TypeError, r"q must have a floating dtype"),
        (lambda q, k, v: (q, k.astype(np.float64), v), TypeError, r"k has dtype float64 but q has float32"),
        (lambda q, k, v: (q.tolist(), k, v), TypeError, r"q must be a numpy array, torch tensor or jax array"),
        (lambda q, k, v: (q, torch.from_numpy(k), v), TypeError, r"same array library.*k: torch"),
        (lambda q, k, v: (q[:, :, :9], k, v), ValueError, r"layout.q_len is 10 but q has 9"),
        (lambda q, k, v: (q, k[:, :, :11], v[:, :, :11]), ValueError, r"layout.kv_len is 12 but k/v have 11"),
        (lambda q, k, v: (np.concatenate([q, q], 1), np.concatenate([k, k, k], 1), np.concatenate([v, v, v], 1)),
         ValueError, r"multiple of the k/v heads"),
        (lambda q, k, v: (np.concatenate([q, q], 1), k, v), ValueError, r"layout has 2 heads but q has 4"),
    ],
)
def test_wrong_inputs(mutate, exc, match):
    q, k, v = mutate(*arrs())
    with pytest.raises(exc, match=match):
        attention(q, k, v, LAY, backend="reference")


def test_device_mismatch_names_the_argument():
    q, k, v = (torch.from_numpy(x) for x in arrs())
    with pytest.raises(ValueError, match=r"k is on device meta but q is on cpu"):
        attention(q, k.to("meta"), v, LAY)


def test_pattern_instead_of_layout_says_compile_it():
    with pytest.raises(TypeError, match=r"mc.compile\(pattern, q_len=10, kv_len=12"):
        attention(*arrs(), mc.causal())


def test_other_layout_objects_are_refused():
    with pytest.raises(TypeError, match="layout must be a maskc.Layout"):
        attention(*arrs(), np.ones((10, 12), bool))


@pytest.mark.parametrize("scale, exc", [("0.1", TypeError), (float("nan"), ValueError), (True, TypeError)])
def test_bad_scale(scale, exc):
    with pytest.raises(exc, match="scale"):
        attention(*arrs(), LAY, scale=scale)


def test_errors_come_before_any_backend_runs():
    from maskc.backends import register, unregister

    ran = []
    register("spy", lambda *a, **k: ran.append(1), array="numpy")
    try:
        q, k, v = arrs()
        with pytest.raises(ValueError):
            attention(q[:, :, :9], k, v, LAY, backend="spy")
        assert ran == []
    finally:
        unregister("spy")


def test_gqa_and_broadcast_are_accepted():
    q, k, v = arrs(Hq=4, Hkv=2)
    lay1 = mc.Layout.from_dense(np.tril(np.ones((10, 12), bool)), 16)
    assert attention(q, k, v, lay1, backend="reference").shape == (1, 4, 10, 8)


def test_numpy_bfloat16_is_floating_and_falls_back_to_reference():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (numpy bfloat16) is not installed")
    from maskc.backends import last_choice

    q, k, v = (x.astype(ml_dtypes.bfloat16) for x in arrs())
    out = attention(q, k, v, LAY)  # scipy takes no bfloat16: auto must fall back
    assert last_choice().name == "reference" and out.dtype == q.dtype


def test_unsupported_float_dtype_is_refused_not_truncated():
    q, k, v = (x.astype(np.longdouble) for x in arrs())
    if q.dtype == np.float64:
        pytest.skip("np.longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=r"q has dtype float(96|128).*float16, bfloat16, float32, float64"):
        attention(q, k, v, LAY)


def test_reference_refuses_autograd_scores_above_the_cap_before_allocating(monkeypatch):
    import torch

    import maskc as mc
    from maskc.backends import reference

    monkeypatch.setattr(reference, "MAX_SCORE_ELEMENTS", 4 * 64 * 64 - 1)  # one head fits, four do not
    lay = mc.compile(mc.causal(), 64, block=16)
    q = torch.randn(1, 4, 64, 16, requires_grad=True)
    with pytest.raises(mc.TooLargeError, match="under autograd"):
        mc.attention(q, q, q, lay, backend="reference")
    with torch.no_grad():  # nothing is kept for backward: per-head cap only
        assert mc.attention(q, q, q, lay, backend="reference").shape == q.shape
