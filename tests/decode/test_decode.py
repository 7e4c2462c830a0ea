"""mc.decode_attention: token-by-token decode and chunked prefill agree with the full-sequence layout's
rows (float32 vs the float64 reference), for every library pattern's masks, batched / per-head
patterns, per-batch positions; errors for bad inputs; the work of a step is one row of the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc
from maskc.backends.reference import attention_reference
from maskc.decode.keys import decode_keys
from maskc.patterns.library import gallery_patterns

N, B, H, HKV, D = 64, 2, 4, 2, 16


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert not torch.isnan(a).any()
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm().clamp_min(1e-300))


def _documents() -> mc.Pattern:
    rng = np.random.default_rng(3)
    ids = np.sort(rng.integers(0, 5, size=(B, N)), axis=1)  # fresh random boundaries per sample
    return mc.causal() & mc.document_mask(segment_ids=ids)


PATTERNS = {
    "causal": lambda: mc.causal(),
    "causal_window": lambda: mc.causal() & mc.window(7),
    "prime_bird": lambda: mc.prime_bird(window=3, global_tokens=2),
    "pi_attention": lambda: mc.pi_attention_union(r=4, period=8, causal=True),
    "documents": _documents,
    "per_head": lambda: mc.heads([mc.causal() & mc.window(3), mc.prime_bird(), mc.causal(),
                                  mc.causal() & mc.stride(5)]),
}


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, N, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, HKV, N, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, HKV, N, D, generator=g, dtype=torch.float64)
    return q, k, v


def _full_reference(pattern, q, k, v):
    lay = mc.compile(pattern, N, block=16, heads=H if pattern.n_heads else None)
    return attention_reference(q, k, v, lay, scale=D ** -0.5, keep_float64=True)[0]


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("chunk", [1, 16])
def test_decode_matches_full_rows(name: str, chunk: int) -> None:
    """64 token-by-token steps (chunk 1) and chunked prefill (chunk 16) into a preallocated cache whose
    unwritten slots hold NaN (never read): every row equals the full layout's row, rel err < 1e-5."""
    pattern = PATTERNS[name]()
    q, k, v = _inputs()
    want = _full_reference(pattern, q, k, v)
    kc = torch.full((B, HKV, N, D), float("nan"))
    vc = torch.full((B, HKV, N, D), float("nan"))
    outs = []
    for t in range(0, N, chunk):
        kc[:, :, t:t + chunk] = k[:, :, t:t + chunk].float()
        vc[:, :, t:t + chunk] = v[:, :, t:t + chunk].float()
        outs.append(mc.decode_attention(q[:, :, t:t + chunk].float(), kc, vc, pattern, position=t))
    got = torch.cat(outs, dim=2)
    assert got.dtype == torch.float32
    assert _rel(got, want) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("name", ["prime_bird", "documents", "per_head"])
def test_named_backend_runs_the_compiled_rows(backend: str, name: str) -> None:
    """A named backend compiles the rows (q_offset = position) and agrees with the gather path."""
    pattern = PATTERNS[name]()
    q, k, v = (x.float() for x in _inputs(1))
    for t, T in ((40, 1), (17, 16)):
        a = mc.decode_attention(q[:, :, t:t + T], k, v, pattern, position=t)
        b = mc.decode_attention(q[:, :, t:t + T], k, v, pattern, position=t, backend=backend)
        assert _rel(a, b) < 1e-5


def test_long_chunks_go_through_a_compiled_layout(monkeypatch) -> None:
    """Past MAX_ROW_ELEMENTS mask elements the rows are compiled (auto backend), with the same result."""
    import maskc.decode.attention as decode

    pattern = PATTERNS["documents"]()
    q, k, v = _inputs(7)
    want = _full_reference(pattern, q, k, v)[:, :, 16:48]
    monkeypatch.setattr(decode, "MAX_ROW_ELEMENTS", 100)
    got = mc.decode_attention(q[:, :, 16:48].float(), k.float(), v.float(), pattern, position=16)
    assert _rel(got, want) < 1e-5
    with pytest.raises(ValueError, match="gather path"):
        mc.decode_attention(q[:, :, :16].float(), k.float(), v.float(), pattern, position=torch.tensor([0, 1]))


def _rows(keys, width: int) -> np.ndarray:
    """The dense rows ``[Bm, Hm, T, width]`` a DecodeKeys describes."""
    Bm, Hm, T, K = keys.allowed.shape
    m = np.zeros((Bm, Hm, T, width), dtype=bool)
    b, h, t, s = np.nonzero(keys.allowed)
    m[b, h, t, keys.index[b, h, s]] = True
    return m


@pytest.mark.parametrize("name", mc.library_names())
def test_every_library_pattern_decode_rows_equal_full_rows(name: str) -> None:
    """Each library pattern (gallery instance, 128 tokens): with every key present (kv_len = N) the rows of
    each decode step and of each 16-row prefill chunk equal the full mask's rows; with the default
    kv_len = position + T they equal mc.compile(..., q_offset=position)'s rows (the decode definition)."""
    n = 128
    p = gallery_patterns()[name]
    full = p.dense(n)
    full = full if full.ndim == 4 else full[None]
    batch = full.shape[0]
    for t in range(n):
        got = _rows(decode_keys(p, 1, n, t, batch=batch), n)
        np.testing.assert_array_equal(np.broadcast_to(got, full[:, :, t:t + 1].shape), full[:, :, t:t + 1])
    for t in range(0, n, 16):
        got = _rows(decode_keys(p, 16, n, t, batch=batch), n)
        np.testing.assert_array_equal(np.broadcast_to(got, full[:, :, t:t + 16].shape), full[:, :, t:t + 16])
    for t in (0, 5, 63, 127):
        lay = mc.compile(p, 1, kv_len=t + 1, q_offset=t, block=16, heads=full.shape[1] if p.n_heads else None)
        want = lay.to_dense()
        want = want if want.ndim == 4 else want[None]
        got = _rows(decode_keys(p, 1, None, t, batch=batch), t + 1)
        np.testing.assert_array_equal(np.broadcast_to(got, want.shape), want)


def test_per_batch_positions_equal_one_call_per_element() -> None:
    pattern = _documents()
    q, k, v = (x.float() for x in _inputs(2))
    pos = torch.tensor([50, 9])
    got = mc.decode_attention(q[:, :, :1], k, v, pattern, position=pos)
    for b in range(B):
        p_b = pattern.for_batch(b)
        one = mc.decode_attention(q[b:b + 1, :, :1], k[b:b + 1], v[b:b + 1], p_b, position=int(pos[b]))
        assert _rel(got[b:b + 1], one) < 1e-6
    # each element sees only its own keys: changing element 1's keys past its position changes nothing
    k2 = k.clone()
    k2[1, :, 10:] = float("nan")
    assert torch.equal(mc.decode_attention(q[:, :, :1], k2, v, pattern, position=pos)[1], got[1])


def test_gradients_match_the_reference() -> None:
    pattern = mc.prime_bird()
    q, k, v = _inputs(4)
    t, T = 30, 4
    leaves = [x[:, :, :t + T].clone().requires_grad_(True) for x in (q, k, v)]
    qd, kd, vd = leaves
    out = mc.decode_attention(qd[:, :, t:], kd, vd, pattern, position=t)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), leaves)
    lay = mc.compile(pattern, T, kv_len=t + T, q_offset=t, block=16)
    ref_leaves = [x.detach().clone().requires_grad_(True) for x in leaves]
    ref = attention_reference(ref_leaves[0][:, :, t:], ref_leaves[1], ref_leaves[2], lay, scale=D ** -0.5,
                              keep_float64=True)[0]
    want = torch.autograd.grad((ref * w).sum(), ref_leaves)
    for g, r in zip(grads, want):
        assert _rel(g, r) < 1e-10


def test_row_without_keys_gives_zeros_and_minus_inf() -> None:
    pad = np.ones((B, N), dtype=bool)
    pad[1] = False  # element 1: every key is padding
    pattern = mc.causal() & mc.key_padding(pad)
    q, k, v = (x.float() for x in _inputs(5))
    out, lse = mc.decode_attention(q[:, :, 20:21], k, v, pattern, position=20, return_lse=True)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.isneginf(lse[1]).all() and torch.isfinite(lse[0]).all()


def test_values_a_row_may_not_attend_never_reach_it() -> None:
    q, k, v = (x.float() for x in _inputs(6))
    k[:, :, 5], v[:, :, 6] = float("inf"), float("nan")
    out = mc.decode_attention(q[:, :, 40:44], k, v, mc.causal() & mc.window(8), position=40)
    assert torch.isfinite(out).all()
    bad = mc.decode_attention(q[:, :, 10:11], k, v, mc.causal() & mc.window(8), position=10)
    assert torch.isnan(bad).all()  # this row does attend key 6


def test_a_step_evaluates_one_row_and_layers_share_it() -> None:
    """Work counter: a decode step at L = 4096 evaluates 4096 mask elements (one row), not L^2; the
    second layer of the same step reuses the first one's keys."""
    pattern = mc.prime_bird()
    L = 4096
    first = decode_keys(pattern, 1, None, L - 1)
    assert first.evaluated == L
    assert decode_keys(pattern, 1, None, L - 1) is first
    assert decode_keys(pattern, 16, None, L - 16).evaluated == 16 * L
    assert first.n_keys == int(mc.prime_bird().dense(1, L, q_offset=L - 1).sum())


def _ok():
    q = torch.randn(1, 2, 1, 8)
    kv = torch.randn(1, 1, 10, 8)
    return q, kv


@pytest.mark.parametrize("change, match", [
    (lambda a: {**a, "position": 10}, "exceeds the cache length"),
    (lambda a: {**a, "position": -1}, ">= 0"),
    (lambda a: {**a, "position": 2.5}, "int or a"),
    (lambda a: {**a, "position": torch.tensor([1, 2])}, r"\[B=1\]"),
    (lambda a: {**a, "q": a["q"].double()}, "dtype"),
    (lambda a: {**a, "q": a["q"].numpy()}, "torch tensors"),
    (lambda a: {**a, "k_cache": torch.randn(1, 1, 9, 8)}, "same shape"),
    (lambda a: {**a, "k_cache": torch.randn(2, 1, 10, 8), "v_cache": torch.randn(2, 1, 10, 8)}, "batch"),
    (lambda a: {**a, "q": torch.randn(1, 3, 1, 8), "k_cache": torch.randn(1, 2, 10, 8),
                "v_cache": torch.randn(1, 2, 10, 8)}, "heads"),
    (lambda a: {**a, "pattern": mc.compile(mc.causal(), 10)}, "Layout fixes its rows"),
    (lambda a: {**a, "pattern": mc.heads([mc.causal()] * 3)}, "per-head"),
    (lambda a: {**a, "kv_len": 11}, "kv_len"),
])
def test_bad_inputs_are_refused_with_the_fix(change, match) -> None:
    q, kv = _ok()
    args = change({"q": q, "k_cache": kv, "v_cache": kv, "pattern": mc.causal(), "position": 9})
    with pytest.raises((ValueError, TypeError), match=match):
        mc.decode_attention(args.pop("q"), args.pop("k_cache"), args.pop("v_cache"), args.pop("pattern"),
                            args.pop("position"), **args)


def test_per_batch_positions_need_the_gather_path() -> None:
    q = torch.randn(2, 1, 1, 8)
    kv = torch.randn(2, 1, 10, 8)
    with pytest.raises(ValueError, match="gather path"):
        mc.decode_attention(q, kv, kv, mc.causal(), position=torch.tensor([3, 4]), backend="torch")
