"""The float64 reference backend against independent implementations.

The reference is the truth for every other backend, so it is checked against code that
shares nothing with it: a per-row loop in plain numpy, and torch's own
scaled_dot_product_attention with a boolean mask; its torch gradients against finite
differences (gradcheck).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import maskc as mc
from maskc.backends import attention
from maskc.backends import reference as refmod
from maskc.errors import TooLargeError

from _cases import attention_cases  # noqa: E402  (tests/backends/_cases.py)


def naive_rows(q, k, v, mask, scale):
    """Per (batch, head, row) softmax over the allowed keys only; float64 numpy."""
    B, Hq, Lq, D = q.shape
    g = Hq // k.shape[1]
    out = np.zeros((B, Hq, Lq, D))
    lse = np.full((B, Hq, Lq), -np.inf)
    for b in range(B):
        for h in range(Hq):
            m = mask[h if mask.shape[0] > 1 else 0]
            for i in range(Lq):
                js = np.flatnonzero(m[i])
                if js.size == 0:
                    continue
                s = (k[b, h // g, js] @ q[b, h, i]) * scale
                w = np.exp(s - s.max())
                out[b, h, i] = (w / w.sum()) @ v[b, h // g, js]
                lse[b, h, i] = s.max() + np.log(w.sum())
    return out, lse


def cases():
    return attention_cases()


@settings(max_examples=20)
@given(cases())
def test_numpy_reference_matches_per_row_loop(case):
    lay, mask, q, k, v = case
    out, lse = attention(q, k, v, lay, backend="reference", return_lse=True)
    want, want_lse = naive_rows(q, k, v, mask, 1 / np.sqrt(q.shape[-1]))
    assert out.dtype == np.float64 and lse.shape == q.shape[:3]
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.isneginf(lse), np.isneginf(want_lse))
    fin = np.isfinite(want_lse)
    np.testing.assert_allclose(lse[fin], want_lse[fin], rtol=1e-12, atol=1e-12)


@settings(max_examples=15)
@given(cases())
def test_torch_reference_matches_sdpa_and_numpy(case):
    lay, mask, q, k, v = case
    qt, kt, vt = (torch.from_numpy(x) for x in (q, k, v))
    out, lse = attention(qt, kt, vt, lay, backend="reference", return_lse=True)
    g = q.shape[1] // k.shape[1]
    m = torch.from_numpy(mask)[None]
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        qt, kt.repeat_interleave(g, 1), vt.repeat_interleave(g, 1), attn_mask=m.expand(1, q.shape[1], *mask.shape[1:])
    )
    nonempty = m.expand(q.shape[0], q.shape[1], *mask.shape[1:]).any(-1)
    torch.testing.assert_close(out[nonempty], sdpa[nonempty], rtol=1e-10, atol=1e-10)
    assert torch.all(out[~nonempty] == 0) and torch.all(torch.isneginf(lse[~nonempty]))
    out_np = attention(q, k, v, lay, backend="reference")
    np.testing.assert_allclose(out.numpy(), out_np, rtol=1e-12, atol=1e-12)


def test_gradcheck_with_empty_rows_and_gqa():
    rng = np.random.default_rng(1)
    mask = rng.random((2, 7, 9)) < 0.4
    mask[0, 3] = False
    lay = mc.Layout.from_dense(mask, 4)
    q = torch.randn(1, 2, 7, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 1, 9, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 1, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v: attention(q, k, v, lay, backend="reference"), (q, k, v))
    out, lse = attention(q, k, v, lay, backend="reference", return_lse=True)
    (out.sum() + lse[torch.isfinite(lse)].sum()).backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.all(q.grad[0, 0, 3] == 0)  # an empty row gets no gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_dtype_is_kept_and_values_are_rounded_float64(dtype):
    lay = mc.compile(mc.causal() & mc.window(5), q_len=40, block=16)
    q, k, v = (torch.randn(1, 2, 40, 8).to(dtype) for _ in range(3))
    out, lse = attention(q, k, v, lay, backend="reference", return_lse=True)
    assert out.dtype == dtype and lse.dtype == torch.float64
    exact, _ = refmod.attention_reference(q, k, v, lay, scale=8**-0.5, keep_float64=True)
    assert torch.equal(out, exact.to(dtype))


def test_head_broadcast_equals_stacked_layout():
    rng = np.random.default_rng(2)
    m = rng.random((1, 20, 30)) < 0.3
    q, k, v = rng.normal(size=(1, 3, 20, 8)), rng.normal(size=(1, 3, 30, 8)), rng.normal(size=(1, 3, 30, 8))
    a = attention(q, k, v, mc.Layout.from_dense(m, 16), backend="reference")
    b = attention(q, k, v, mc.Layout.from_dense(np.repeat(m, 3, 0), 16), backend="reference")
    np.testing.assert_array_equal(a, b)


def test_compiled_pattern_row_zero_sees_only_itself():
    lay = mc.compile(mc.causal(), q_len=33, block=16)
    q = np.random.default_rng(3).normal(size=(1, 1, 33, 8))
    v = np.random.default_rng(4).normal(size=(1, 1, 33, 8))
    out = attention(q, q, v, lay, backend="reference")
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-14)


def test_size_cap_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(refmod, "MAX_SCORE_ELEMENTS", 100)
    lay = mc.Layout.from_dense(np.ones((11, 10), bool), 16)
    q = np.ones((1, 1, 11, 4))
    with pytest.raises(TooLargeError, match="MAX_SCORE_ELEMENTS"):
        attention(q, q[:, :, :10], q[:, :, :10], lay, backend="reference")
