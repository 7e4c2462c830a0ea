"""Hostile inputs on every backend: exact empty rows whatever unattended keys hold, batched layouts,
allocation-honest size refusals, and inputs that look transposed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import maskc as mc
import maskc.backends as mb

sys.path.insert(0, str(Path(__file__).parents[1] / "fuzz"))
from fuzz_attention import softmax64  # noqa: E402  (the fuzzer's independent float64 attention)

# (backend, array library): every backend maskc owns that runs on this machine's CPU
CASES = [("reference", "numpy"), ("reference", "torch"), ("scipy", "numpy"), ("jax", "jax"), ("flex", "torch"),
         ("torch", "torch")]


def _arr(x: np.ndarray, lib: str):
    if lib == "torch":
        return torch.from_numpy(x)
    if lib == "jax":
        jnp = pytest.importorskip("jax.numpy", reason="jax is not installed")
        return jnp.asarray(x)
    return x


def _np(x) -> np.ndarray:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _skip_unavailable(name):
    ok, why = mb.available()[name]
    if not ok:
        pytest.skip(f"{name} is not available here: {why}")


def _layout_with_traps(N=24):
    """Row 5 attends nothing, key 7 is attended by no row, key 11 only by rows >= 16."""
    rng = np.random.default_rng(0)
    m = rng.random((N, N)) < 0.5
    m[5] = False
    m[:, 7] = False
    m[:, 11] = False
    m[16:, 11] = True
    return m


def _trap_case(name: str, seed: int, batch: int = 1):
    """(layout, q, k, v, the independent float64 answer) on the trap layout, or a skip."""
    _skip_unavailable(name)
    m = _layout_with_traps()
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(batch, 2, 24, 8)).astype(np.float32) for _ in range(3))
    want = softmax64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), m[None, None], 0.3)
    return mc.Layout.from_dense(m, 8), q, k, v, want


@pytest.mark.parametrize("name,lib", CASES, ids=[f"{n}-{l}" for n, l in CASES])
def test_values_at_unattended_keys_never_reach_a_row(name, lib):
    lay, q, k, v, want = _trap_case(name, seed=1, batch=2)
    kb, vb = k.copy(), v.copy()
    kb[:, :, 7] = np.inf  # no row may attend key 7
    vb[:, :, 7] = np.nan
    vb[:, :, 11, 0] = np.inf  # rows >= 16 attend key 11: their out[..., 0] must say so
    with torch.no_grad():
        out, lse = mc.attention(*(_arr(x, lib) for x in (q, kb, vb)), lay, backend=name, scale=0.3, return_lse=True)
    out, lse = _np(out).astype(np.float64), _np(lse)
    assert (out[:, :, 5] == 0).all() and np.isneginf(lse[:, :, 5]).all()  # the empty row: exactly 0, -inf
    clean = np.ones(24, bool)
    clean[16:] = False
    np.testing.assert_allclose(out[:, :, clean], want[:, :, clean], rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.isfinite(lse).sum() == lse.size - 4  # lse depends on q, k only: finite except the empty row
    assert not np.isfinite(out[:, :, 16:, 0]).any()  # non-finite in, non-finite out
    np.testing.assert_allclose(out[:, :, 16:, 1:], want[:, :, 16:, 1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,lib", CASES, ids=[f"{n}-{l}" for n, l in CASES])
def test_a_row_that_attends_a_non_finite_key_is_not_finite_and_the_others_are_exact(name, lib):
    lay, q, k, v, want = _trap_case(name, seed=2)
    kb = k.copy()
    kb[:, :, 11] = np.nan
    with torch.no_grad():
        out = _np(mc.attention(*(_arr(x, lib) for x in (q, kb, v)), lay, backend=name, scale=0.3))
    assert not np.isfinite(out[:, :, 16:]).any()
    np.testing.assert_allclose(out[:, :, :16], want[:, :, :16], rtol=1e-5, atol=1e-6, err_msg=name)


def test_torch_backend_gradients_ignore_non_finite_unattended_keys():
    m = _layout_with_traps()
    lay = mc.Layout.from_dense(m, 8)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 24, 8, generator=g, dtype=torch.float64) for _ in range(3))
    kb, vb = k.clone(), v.clone()
    kb[:, :, 7], vb[:, :, 7] = float("inf"), float("nan")
    grads = []
    for kk, vv in ((k, v), (kb, vb)):
        x = [t.clone().requires_grad_(True) for t in (q, kk, vv)]
        out = mc.attention(*x, lay, backend="torch", scale=0.3)
        grads.append(torch.autograd.grad(out.sum(), x))
    for a, b in zip(*grads):
        assert torch.isfinite(b[:, :, [i for i in range(24) if i != 7]]).all()
    assert torch.allclose(grads[0][0], grads[1][0])  # dq: unchanged by the unattended values


def test_dia_backend_reads_only_attended_keys():
    lay = mb.DiagonalLayout.from_offsets([3, 5], q_len=20)
    q, k, v = (torch.randn(1, 1, 20, 4) for _ in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 19], v2[:, :, 19] = float("inf"), float("nan")  # key 19: no row i has i - 19 in {3, 5}
    a, la = mc.attention(q, k, v, lay, return_lse=True)
    b, lb = mc.attention(q, k2, v2, lay, return_lse=True)
    assert mb.last_choice().name == "dia"
    assert torch.equal(a, b) and torch.equal(la, lb) and (a[:, :, :3] == 0).all()


@pytest.mark.parametrize("name,lib", CASES, ids=[f"{n}-{l}" for n, l in CASES])
@pytest.mark.parametrize("heads", [1, 3])
def test_batched_layouts_match_an_independent_dense_softmax(name, lib, heads):
    _skip_unavailable(name)
    rng = np.random.default_rng(heads)
    B, H, N, M = 3, 3, 21, 30
    m = rng.random((B, heads, N, M)) < 0.35
    m[1, :, 4] = False  # batch element 1: an empty row
    lay = mc.Layout.from_dense(m, (8, 16))
    assert lay.batch == B and lay.heads == heads
    q = rng.normal(size=(B, H, N, 8)).astype(np.float32)
    k, v = (rng.normal(size=(B, 1, M, 8)).astype(np.float32) for _ in range(2))  # GQA: 3 q heads, 1 kv head
    with torch.no_grad():
        out, lse = mc.attention(*(_arr(x, lib) for x in (q, k, v)), lay, backend=name, scale=0.4, return_lse=True)
    want = softmax64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), m, 0.4)
    np.testing.assert_allclose(_np(out), want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.isneginf(_np(lse)[1, :, 4]).all()


def test_batched_layout_needs_the_inputs_batch():
    lay = mc.Layout.from_dense(np.ones((2, 1, 8, 8), bool), 4)
    q = np.ones((3, 1, 8, 4), np.float32)
    with pytest.raises(ValueError, match="layout has batch 2 but q has batch 3"):
        mc.attention(q, q, q, lay)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_reference_counts_broadcast_heads_it_would_materialise(lib):
    lay = mc.compile(mc.causal(), 32, block=32)
    if lib == "torch":
        q = torch.randn(1, 1, 32, 32).expand(1, 10**6, 32, 32)  # stride 0: 4 KiB of data, 8 GiB as float64
    else:
        q = np.broadcast_to(np.random.default_rng(0).normal(size=(1, 1, 32, 32)), (1, 10**6, 32, 32))
    t0 = time.perf_counter()
    with pytest.raises(mc.TooLargeError, match="MAX_BYTES"):
        mc.attention(q, q, q, lay, backend="reference")
    assert time.perf_counter() - t0 < 2.0  # refused from the sizes, before the 7.6 GiB copy


def test_reference_bounds_its_per_head_loop_too():
    lay = mc.compile(mc.causal(), 8, block=8)
    q = np.broadcast_to(np.ones((1, 1, 8, 4)), (1, 10**6, 8, 4))  # 0.24 GiB as float64: within MAX_BYTES
    t0 = time.perf_counter()
    with pytest.raises(mc.TooLargeError, match="MAX_STEPS"):
        mc.attention(q, q, q, lay, backend="reference")
    assert time.perf_counter() - t0 < 2.0


def test_inputs_that_look_transposed_get_a_hint():
    lay = mc.compile(mc.causal(), 64, block=16)
    q = torch.randn(2, 64, 4, 16)  # [batch, seq, heads, head_dim]
    with pytest.raises(ValueError, match=r"looks transposed.*q.transpose\(1, 2\)"):
        mc.attention(q, q, q, lay)
    mc.attention(q.transpose(1, 2), q.transpose(1, 2), q.transpose(1, 2), lay)  # the fix works


@pytest.mark.parametrize("name,lib", CASES, ids=[f"{n}-{l}" for n, l in CASES])
def test_a_masked_key_with_an_enormous_score_does_not_change_a_row(name, lib):
    """Regression for shifting by the raw (masked-included) row maximum: allowed probabilities
    would underflow to 0 and the row would read as empty."""
    lay, q, k, v, _ = _trap_case(name, seed=4)
    q = np.abs(q) + 0.5  # every query scores the key below far above the others
    want = softmax64(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), lay.to_dense()[None], 0.3)
    kb = k.copy()
    kb[:, :, 7] = 1e4  # key 7 is attended by no row
    with torch.no_grad():
        out = _np(mc.attention(*(_arr(x, lib) for x in (q, kb, v)), lay, backend=name, scale=0.3))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6, err_msg=name)
