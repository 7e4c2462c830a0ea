"""The jax backend: forward against the float64 reference, gradients against torch float64
autograd through the reference, block lists, jit, and the empty-row contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.backends import attention, last_choice
from maskc.backends.crosscheck import TOLERANCES, rel_err
from maskc.backends.reference import attention_reference

jax = pytest.importorskip("jax", reason="jax is not installed: the jax backend cannot be tested")
jnp = jax.numpy


@st.composite
def cases(draw, max_len=200):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    # a few length buckets keep the number of jit compilations small
    Lq = draw(st.sampled_from([1, 37, max_len]))
    Lk = draw(st.sampled_from([5, 101, max_len]))
    kv_heads, Hq = draw(st.sampled_from([(1, 1), (1, 2), (2, 2)]))
    Hl = draw(st.sampled_from([1, Hq]))
    mask = rng.random((Hl, Lq, Lk)) < draw(st.sampled_from([0.03, 0.3]))
    mask[:, rng.integers(0, Lq, size=draw(st.integers(0, 2)))] = False
    if draw(st.booleans()):
        mask[:, : Lq // 2, : Lk // 2] = True
    block = draw(st.sampled_from([16, 32, (32, 16)]))
    B = 1
    D = 16
    q64 = rng.normal(size=(B, Hq, Lq, D))
    k64, v64 = rng.normal(size=(2, B, kv_heads, Lk, D))
    g64 = rng.normal(size=q64.shape)
    return mc.Layout.from_dense(mask, block), q64, k64, v64, g64


def _rounded(x, dtype):
    return np.asarray(jnp.asarray(x, dtype=dtype).astype(jnp.float32), dtype=np.float64)


@settings(max_examples=10)
@given(cases(), st.sampled_from(["float32", "bfloat16", "float16"]))
def test_jax_forward_matches_reference(case, dtype):
    lay, q64, k64, v64, _ = case
    q, k, v = (jnp.asarray(x, dtype=dtype) for x in (q64, k64, v64))
    out, lse = attention(q, k, v, lay, backend="jax", return_lse=True)
    assert out.dtype == q.dtype and out.shape == q.shape and lse.shape == q.shape[:3]
    qr, kr, vr = (_rounded(x, dtype) for x in (q64, k64, v64))
    ref, ref_lse = attention_reference(qr, kr, vr, lay, scale=16**-0.5, keep_float64=True)
    tol = TOLERANCES[dtype]
    assert rel_err(np.asarray(out.astype(jnp.float32)), ref) <= tol
    assert rel_err(np.asarray(lse), ref_lse) <= 1e-5  # lse is computed in float32
    assert np.all(np.asarray(out)[np.isneginf(ref_lse)] == 0)


@settings(max_examples=6)
@given(cases(max_len=128))
def test_jax_grads_match_torch_float64_autograd(case):
    lay, q64, k64, v64, g64 = case
    q, k, v = (jnp.asarray(x, dtype=jnp.float32) for x in (q64, k64, v64))
    qf, kf, vf, gf = (_rounded(x, "float32") for x in (q64, k64, v64, g64))

    def loss(q, k, v):
        return jnp.sum(attention(q, k, v, lay, backend="jax") * jnp.asarray(gf, jnp.float32))

    grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    qt, kt, vt = (torch.tensor(x, requires_grad=True) for x in (qf, kf, vf))
    out, _ = attention_reference(qt, kt, vt, lay, scale=16**-0.5, keep_float64=True)
    (out * torch.from_numpy(gf)).sum().backward()
    # dq, dk are exactly 0 when every row has one key: measure them against ||dv|| at least
    floor = float(np.linalg.norm(vt.grad.numpy()))
    for got, want, fl in zip(grads, (qt.grad, kt.grad, vt.grad), (floor, floor, 0.0)):
        g = np.asarray(got)
        assert np.isfinite(g).all()
        assert rel_err(g, want.numpy(), floor=fl) <= 1e-5


def test_block_lists_pad_and_encode_kinds():
    m = np.zeros((1, 4, 6), bool)
    m[0, :2, :2] = True  # FULL block (0, 0)
    m[0, 2, 5] = True  # PARTIAL block (1, 2), ragged
    lay = mc.Layout.from_dense(m, 2)
    from maskc.backends.jax_backend import block_lists

    bl = block_lists(lay)
    assert bl["cols"].shape == (1, 2, 1) and bl["table"].shape[0] >= lay.n_unique_masks + 2
    assert bl["cols"][0, :, 0].tolist() == [0, 2]
    assert bl["mids"][0, 0, 0] == 1 and bl["mids"][0, 1, 0] == 2
    assert bl["table"][2].tolist() == [[False, True], [False, False]]


def test_under_jit_and_auto_selection():
    lay = mc.compile(mc.causal() & mc.window(7), q_len=50, block=16)
    q = jnp.asarray(np.random.default_rng(0).normal(size=(1, 2, 50, 16)), jnp.float32)
    attention(q, q, q, lay)
    assert last_choice().name == "jax"
    f = jax.jit(lambda q: attention(q, q, q, lay, backend="jax"))
    np.testing.assert_allclose(np.asarray(f(q)), np.asarray(attention(q, q, q, lay, backend="jax")), rtol=1e-6)


def test_empty_rows_have_zero_finite_grads():
    m = np.tril(np.ones((20, 20), bool))
    m[4] = False
    lay = mc.Layout.from_dense(m, 16)
    q = jnp.asarray(np.random.default_rng(1).normal(size=(1, 1, 20, 16)), jnp.float32)
    out, lse = attention(q, q, q, lay, backend="jax", return_lse=True)
    assert np.all(np.asarray(out)[0, 0, 4] == 0) and np.isneginf(np.asarray(lse)[0, 0, 4])
    g = jax.grad(lambda q: jnp.sum(attention(q, q, q, lay, backend="jax")))(q)
    assert np.isfinite(np.asarray(g)).all()
