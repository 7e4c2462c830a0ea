"""maskc's Triton block-sparse attention vs a float64 dense reference (forward, lse, gradients).

On CPU the kernels run under TRITON_INTERPRET=1 (set by tests/conftest.py), so sizes stay
tiny. On a CUDA machine run with TRITON_INTERPRET=0 to test the compiled kernels. The
configurations cover sub-tiles of the layout block, the default-table tiles of blocks 64
and 128, strided split-heads views, batched layouts, GQA, padded and large head dims.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.errors import MaskcError

triton = pytest.importorskip("triton", reason="triton not installed: the triton backend cannot run")

from maskc.backends import triton_backend as tb  # noqa: E402

_ok, _why = tb.is_available()
pytestmark = pytest.mark.skipif(not _ok, reason=f"triton backend unavailable: {_why}")

from _triton_cases import DEV, DEVICES, check as _check  # noqa: E402  (tests/backends/_triton_cases.py)
from maskc.backends.triton_configs import TileConfig  # noqa: E402


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_forward_backward_multihead_gqa_ragged(bk, dtype, device):
    """Two heads with different patterns, GQA 4:2, ragged q_len != kv_len, empty rows."""
    rng = np.random.default_rng(3)
    lay = bk.random_layout(rng, heads=4, q_len=45, kv_len=70, block=(16, 16))
    assert lay.n_full > 0 and lay.n_partial > 0
    assert (lay.row_counts() == 0).any()
    _check(bk, lay, B=2 if dtype == torch.float32 else 1, Hq=4, Hkv=2, D=32, dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_layout_rect_blocks_padded_head_dim(bk, device):
    """One-head layout broadcast over 2 heads, block (32, 16), head_dim 24 padded to 32."""
    rng = np.random.default_rng(4)
    lay = bk.random_layout(rng, heads=1, q_len=50, kv_len=40, block=(32, 16))
    _check(bk, lay, B=1, Hq=2, Hkv=1, D=24, dtype=torch.float32, device=device, seed=5)


def test_block_16x32_causal_window(bk):
    lay = mc.Layout.from_dense(np.tril(np.ones((60, 60), bool)) & ~np.tril(np.ones((60, 60), bool), -20), (16, 32))
    _check(bk, lay, B=1, Hq=1, Hkv=1, D=16, dtype=torch.float32, seed=6)


def _mixed(rng, heads, q_len, kv_len, block, density=0.3, batch=None):
    """Random bits, a first block row of FULL blocks (the ragged last key block included), empty rows."""
    shape = (heads, q_len, kv_len) if batch is None else (batch, heads, q_len, kv_len)
    bq = block if isinstance(block, int) else block[0]
    m = rng.random(shape) < density
    m[..., :bq, :] = True
    m[..., bq + 1, :] = False
    m[..., -2, :] = False
    return mc.Layout.from_dense(m, block)


T = TileConfig


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sub_tiles_of_the_layout_block(bk, dtype):
    """A (32, 64) layout block walked as 16-row query tiles and 16/32-wide key tiles, FULL tail included."""
    lay = _mixed(np.random.default_rng(11), heads=2, q_len=70, kv_len=90, block=(32, 64))
    assert lay.n_full and lay.n_partial and lay.kv_len % lay.block_k
    tiles = {"fwd": T(16, 32, 4, 2), "dq": T(16, 16, 4, 2), "dkdv": T(16, 32, 4, 2)}
    _check(bk, lay, B=1, Hq=2, Hkv=1, D=16, dtype=dtype, tiles=tiles, seed=12)


@pytest.mark.parametrize("block", [64, 128])
def test_default_table_tiles_of_large_blocks(bk, block):
    """Blocks 64 and 128 with the launchers' own tiles (the Hopper table: 128 x 64 sub-tiles of 128)."""
    lay = _mixed(np.random.default_rng(block), heads=1, q_len=2 * block + 9, kv_len=2 * block + 5,
                 block=block, density=0.05)
    _check(bk, lay, B=1, Hq=2, Hkv=2, D=16, dtype=torch.float32, seed=block)


def test_split_heads_views_used_in_place(bk, monkeypatch):
    """[B, L, H, D] projections viewed as [B, H, L, D] reach the kernels as they are (no copy)."""
    seen = []
    real = tb.launches

    def spy(kind, t, *a, **kw):
        seen.append((kind, t["q"].is_contiguous(), t["k"].stride()))
        return real(kind, t, *a, **kw)

    monkeypatch.setattr(tb, "launches", spy)
    lay = _mixed(np.random.default_rng(5), heads=2, q_len=40, kv_len=36, block=16)
    _check(bk, lay, B=2, Hq=2, Hkv=1, D=16, dtype=torch.float16, split_heads=True, seed=7)
    assert {k for k, *_ in seen} == {"fwd", "dq", "dkdv"}
    assert all(not contiguous for _, contiguous, _ in seen)
    assert all(strides == (36 * 16, 16, 16, 1) for *_, strides in seen)


def test_batched_layout_reads_each_batch_elements_slice(bk):
    """layout.batch = 2 with different masks per batch element and per head (slice b * heads + h)."""
    lay = _mixed(np.random.default_rng(8), heads=2, q_len=37, kv_len=45, block=16, batch=2)
    assert lay.batch == 2 and lay.heads == 2
    per_b = [mc.Layout.from_dense(m, 16) for m in lay.to_dense()]

    def ref(q, k, v, layout, scale):  # the float64 truth, one batch element (one layout) at a time
        outs = [bk.ref(q[b:b + 1], k[b:b + 1], v[b:b + 1], per_b[b], scale) for b in range(2)]
        return torch.cat([o for o, _ in outs]), torch.cat([s for _, s in outs])

    _check(types.SimpleNamespace(**{**vars(bk), "ref": ref}), lay, B=2, Hq=2, Hkv=2, D=16, dtype=torch.float32,
           seed=9)
    q = torch.randn(3, 2, 37, 16)
    with pytest.raises(MaskcError, match="batch"):
        tb.attention_triton(q, q[:, :, :1].expand(3, 2, 45, 16), q[:, :, :1].expand(3, 2, 45, 16), lay, scale=0.3)


@pytest.mark.parametrize("D", [48, 128])
def test_gqa_of_four_padded_and_large_head_dims(bk, D):
    """Hq = 4 over one kv head; head_dim 48 (padded to 64 inside) and 128."""
    lay = _mixed(np.random.default_rng(D), heads=1, q_len=33, kv_len=40, block=16)
    _check(bk, lay, B=1, Hq=4, Hkv=1, D=D, dtype=torch.float32, seed=D)


def test_tile_override_must_divide_the_layout_block():
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), 32)
    q = torch.randn(1, 1, 32, 16, device=DEV)
    with pytest.raises(MaskcError, match="divide"):
        tb.attention_triton(q, q, q, lay, scale=0.25, tiles={"fwd": T(64, 32, 4, 2)})


@settings(max_examples=6, deadline=None)
@given(
    data=st.data(),
    q_len=st.integers(1, 48),
    kv_len=st.integers(1, 48),
    heads=st.sampled_from([1, 2]),
    gqa=st.booleans(),
    density=st.floats(0.0, 1.0),
)
def test_random_layouts_hypothesis(bk, data, q_len, kv_len, heads, gqa, density):
    """Random layouts (any density, incl. empty and full), forward + gradients in fp32."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    mask = rng.random((heads, q_len, kv_len)) < density
    lay = mc.Layout.from_dense(mask, 16)
    Hq = 2
    Hkv = 1 if gqa else 2
    _check(bk, lay, B=1, Hq=Hq, Hkv=Hkv, D=16, dtype=torch.float32, seed=seed % 1000)


def test_no_blocks_at_all(bk):
    """A layout with no stored block: zeros, -inf, zero gradients, no NaN."""
    lay = mc.Layout.from_dense(np.zeros((20, 30), bool), 16)
    assert lay.nnz_blocks == 0
    q = torch.randn(1, 1, 20, 16, device=DEV, requires_grad=True)
    k = torch.randn(1, 1, 30, 16, device=DEV, requires_grad=True)
    v = torch.randn(1, 1, 30, 16, device=DEV, requires_grad=True)
    out, lse = tb.attention_triton(q, k, v, lay, scale=0.25)
    assert torch.all(out == 0) and torch.all(lse == float("-inf"))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.all(t.grad == 0)


def test_device_arrays_cached_in_the_backends_own_cache():
    """Uploaded once per (layout, device) into the backend's LayoutCache; the layout is not written."""
    lay = mc.Layout.from_dense(np.tril(np.ones((32, 32), bool)), 16)
    q = torch.randn(1, 1, 32, 16, device=DEV)
    before = dict(lay._cache)
    tb.attention_triton(q, q, q, lay, scale=0.25)
    cached = tb.device_arrays(lay, q.device)
    tb.attention_triton(q, q, q, lay, scale=0.25)
    assert tb.device_arrays(lay, q.device) is cached
    assert not any("triton" in str(k) for k in lay._cache) and set(before) <= set(lay._cache)
    assert cached["col_idx"].dtype == torch.int32 and cached["masks"].dtype == torch.int32


@pytest.mark.parametrize("block", [(24, 16), (16, 8), (16, 512)])
def test_unsupported_block_sizes_clear_error(block):
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), block)
    q = torch.randn(1, 1, 32, 16)
    with pytest.raises(MaskcError, match="power of two"):
        tb.attention_triton(q, q, q, lay, scale=0.25)


@pytest.mark.parametrize("d", [8, 160])
def test_unsupported_head_dim_clear_error(d):
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), 16)
    q = torch.randn(1, 1, 32, d)
    with pytest.raises(MaskcError, match="head_dim"):
        tb.attention_triton(q, q, q, lay, scale=0.25)


def test_unsupported_dtype_and_shape_errors():
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), 16)
    q = torch.randn(1, 1, 32, 16, dtype=torch.float64)
    with pytest.raises(MaskcError, match="float64"):
        tb.attention_triton(q, q, q, lay, scale=0.25)
    q = torch.randn(1, 1, 31, 16)
    with pytest.raises(MaskcError, match="sequence lengths"):
        tb.attention_triton(q, q, q, lay, scale=0.25)
    q = torch.randn(1, 3, 32, 16)
    lay2 = mc.Layout.from_dense(np.ones((2, 32, 32), bool), 16)
    with pytest.raises(MaskcError, match="heads"):
        tb.attention_triton(q, q, q, lay2, scale=0.25)


def test_is_available_reports_reason(monkeypatch):
    ok, reason = tb.is_available()
    assert ok and reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ok, reason = tb.is_available()
    assert not ok and "TRITON_INTERPRET" in reason


def test_autotune_path_wraps_every_candidate(bk, monkeypatch):
    """With autotuning on, each kernel goes through triton.autotune over its whole space (stubbed here:
    the interpreter cannot time kernels); the result still matches the reference."""
    calls = []

    def fake_autotune(configs, key):
        def wrap(fn):
            calls.append((fn.__name__, [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in configs]))

            class Tuned:
                def __getitem__(self, grid):
                    c = configs[-1]  # the last candidate: not the default tile

                    def launch(*args, **consts):
                        meta = {**consts, **c.kwargs}
                        fn[grid(meta)](*args, **meta, num_warps=c.num_warps, num_stages=c.num_stages)
                    return launch
            return Tuned()
        return wrap

    monkeypatch.setattr(triton, "autotune", fake_autotune)
    monkeypatch.setattr(tb, "_autotune_here", lambda q: True)
    monkeypatch.setattr(tb, "_TUNED", {})
    lay = _mixed(np.random.default_rng(21), heads=1, q_len=130, kv_len=140, block=128, density=0.05)
    _check(bk, lay, B=1, Hq=1, Hkv=1, D=64, dtype=torch.bfloat16, seed=22)
    assert [name for name, _ in calls] == ["_fwd_kernel", "_dq_kernel", "_dkdv_kernel"]
    assert all(len(tiles) > 1 for _, tiles in calls)
