"""Tests of maskc.nn: shapes and errors, agreement with independent dense oracles written
from the modules' documented rules, gradients (float64 gradcheck on tiny sizes) and exact causal leakage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maskc as mc
from maskc.nn import (
    AdaptivePiAttention, MianChowlaSelfAttention, MomentumAttentionBlock, NesterovAttentionBlock, PiAttention,
    PrimeHarmonyAttention, PrimeSelfAttention, RiemannPositionalEncoding, SparseSelfAttention, SquareSelfAttention,
    entropy_hinge, prime_composite_regularizer, von_mangoldt,
)
from maskc.nn._functional import layout_is_causal

REF = "reference"


def _out(res):
    return res[0] if isinstance(res, tuple) else res


def assert_causal(module: torch.nn.Module, d: int, T: int = 23, t0: int = 9, seed: int = 0) -> None:
    """Changing tokens >= t0 never changes outputs < t0 (exactly), and does change later ones."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, T, d, generator=g)
    x2 = x.clone()
    x2[:, t0:] = torch.randn(2, T - t0, d, generator=g)
    y1, y2 = _out(module(x)), _out(module(x2))
    assert torch.equal(y1[:, :t0], y2[:, :t0]), f"{type(module).__name__} leaks the future into the past"
    assert not torch.equal(y1[:, t0:], y2[:, t0:])


def masked_softmax_attention(q, k, v, mask):
    """Independent dense oracle: q,k,v [B,H,T,D] float64, mask bool [H or 1, T, S]."""
    s = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask[None], float("-inf"))
    return torch.einsum("bhij,bhjd->bhid", torch.softmax(s, dim=-1), v)


def _bird_mask(T: int, seq: list[int], w: int = 3, G: int = 2) -> torch.Tensor:
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    d = i - j
    m = (d >= 0) & ((j < G) | (d <= w) | np.isin(d, seq))
    return torch.from_numpy(m)[None]


# ------------------------------------------------------------- SparseSelfAttention
def test_sparse_self_attention_matches_dense_oracle():
    torch.manual_seed(0)
    pat = mc.causal() & (mc.window(2) | mc.offsets([5, 7]))
    attn = SparseSelfAttention(16, 2, pat, backend=REF, block=8).double()
    x = torch.randn(2, 19, 16, dtype=torch.float64)
    y, w = attn(x)
    assert w is None and y.shape == x.shape
    H = 2
    q, k, v = (attn.q_proj(x), attn.k_proj(x), attn.v_proj(x))
    sh = lambda t: t.view(2, 19, H, 8).transpose(1, 2)  # noqa: E731
    i = torch.arange(19)[:, None]
    d = i - torch.arange(19)[None, :]
    mask = ((d >= 0) & ((d <= 2) | (d == 5) | (d == 7)))[None]
    ref = masked_softmax_attention(sh(q), sh(k), sh(v), mask).transpose(1, 2).reshape(2, 19, 16)
    torch.testing.assert_close(y, attn.out_proj(ref), rtol=1e-10, atol=1e-12)


def test_sparse_self_attention_per_head_patterns_and_cache():
    pat = mc.heads([mc.causal() & mc.window(1), mc.causal()])
    attn = SparseSelfAttention(8, 2, pat, backend=REF, block=4)
    attn(torch.randn(1, 10, 8))
    lay = attn.layout(10)
    assert lay.heads == 2 and attn.layout(10) is lay
    assert lay.row_counts()[0].tolist() == [1] + [2] * 9
    with pytest.raises(ValueError, match="num_heads=3"):
        SparseSelfAttention(9, 3, pat)


def test_sparse_self_attention_errors():
    attn = SparseSelfAttention(8, 2, mc.causal(), backend=REF)
    with pytest.raises(ValueError, match="batch, seq, embed_dim=8"):
        attn(torch.randn(1, 10, 8, 1))
    assert attn(torch.randn(10, 8))[0].shape == (10, 8)  # unbatched [seq, E], as nn.MultiheadAttention
    with pytest.raises(ValueError, match="embed_dim=8"):
        attn(torch.randn(1, 10, 6))
    with pytest.raises(ValueError, match="need_weights"):
        attn(torch.randn(1, 4, 8), need_weights=True)
    with pytest.raises(ValueError, match="pattern"):
        attn(torch.randn(1, 4, 8), attn_mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        SparseSelfAttention(10, 3, mc.causal())
    with pytest.raises(TypeError, match="Pattern, Layout or Plan"):
        SparseSelfAttention(8, 2, "causal()")
    lay = mc.compile(mc.causal(), 6, block=4)
    fixed = SparseSelfAttention(8, 2, lay, backend=REF)
    assert fixed(torch.randn(1, 6, 8))[0].shape == (1, 6, 8)
    with pytest.raises(ValueError, match="compiled for q_len=6"):
        fixed(torch.randn(1, 7, 8))


def test_sparse_self_attention_cross_attention_lengths():
    attn = SparseSelfAttention(8, 2, mc.full(), backend=REF, block=4)
    y, _ = attn(torch.randn(2, 5, 8), torch.randn(2, 9, 8), torch.randn(2, 9, 8))
    assert y.shape == (2, 5, 8) and attn.layout(5, 9).kv_len == 9


def test_sparse_self_attention_auto_backend_trains_on_cpu():
    attn = SparseSelfAttention(8, 2, mc.causal() & mc.window(3), backend="auto", block=4)
    x = torch.randn(2, 12, 8, requires_grad=True)
    y, _ = attn(x)
    assert mc.backends.last_choice().name == "torch"  # never the dense float64 reference
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert attn.q_proj.weight.grad.abs().sum() > 0


def test_sparse_self_attention_gradcheck():
    torch.manual_seed(1)
    attn = SparseSelfAttention(4, 2, mc.causal() & (mc.window(1) | mc.offsets("primes")), backend=REF, block=4)
    attn = attn.double()
    x = torch.randn(1, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: attn(t)[0], (x,))


@pytest.mark.parametrize("cls", [SparseSelfAttention])
def test_sparse_self_attention_causal(cls):
    assert_causal(cls(12, 3, mc.causal() & (mc.window(2) | mc.global_tokens(1) | mc.offsets("squares")),
                      backend=REF, block=8), 12)


# ------------------------------------------------------------ PrimeAttention.jl birds
@pytest.mark.parametrize("cls,seq", [
    (PrimeSelfAttention, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]),
    (SquareSelfAttention, [1, 4, 9, 16, 25]),
    (MianChowlaSelfAttention, [1, 2, 4, 8, 13, 21]),
])
def test_bird_modules_match_spec_mask_and_are_causal(cls, seq):
    attn = cls(12, heads=3, backend=REF, block=8)
    assert attn.num_heads == 3 and (attn.window, attn.global_tokens, attn.cap) == (3, 2, None)
    lay = attn.layout(30)
    np.testing.assert_array_equal(lay.to_dense()[0], _bird_mask(30, seq)[0].numpy())
    assert_causal(attn, 12)


def test_bird_cap_and_errors():
    attn = PrimeSelfAttention(8, heads=2, window=1, global_tokens=0, cap=5, backend=REF, block=8)
    row = attn.layout(20).to_dense()[0, 19]
    assert np.flatnonzero(row).tolist() == [14, 16, 17, 18, 19]  # d in {0, 1} ∪ {2, 3, 5}
    with pytest.raises(ValueError, match="window"):
        PrimeSelfAttention(8, window=-1)
    with pytest.raises(ValueError, match="cap"):
        PrimeSelfAttention(8, cap=0)


# ------------------------------------------------------------ πAttention
def _ring_mask(T, r, causal):
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    if causal:
        return (i - j >= 0) & (i - j <= r)
    a = np.abs(i - j)
    return np.minimum(a, T - a) <= r


def _pi_mask(T, p, causal):
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    m = (i - j) % p == 0
    return m & (i >= j) if causal else m


@pytest.mark.parametrize("causal,gate", [(True, "token"), (False, "token"), (False, "pooled")])
def test_pi_attention_matches_two_softmax_oracle(causal, gate):
    torch.manual_seed(2)
    T, E, H = 21, 12, 3
    attn = PiAttention(E, H, period=4, radius=2, causal=causal, gate=gate, backend=REF, block=8).double()
    x = torch.randn(2, T, E, dtype=torch.float64)
    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    sh = lambda t: t.view(2, T, H, E // H).transpose(1, 2)  # noqa: E731
    yl = masked_softmax_attention(sh(q), sh(k), sh(v), torch.from_numpy(_ring_mask(T, 2, causal))[None])
    yp = masked_softmax_attention(sh(q), sh(k), sh(v), torch.from_numpy(_pi_mask(T, 4, causal))[None])
    if gate == "token":
        g = torch.sigmoid(attn.gate_proj(attn.gate_norm(x))).transpose(1, 2)[..., None]
        assert g.shape == (2, H, T, 1)
    else:
        pooled = torch.cat([q.mean(1), k.mean(1), v.mean(1)], -1)
        g = torch.sigmoid(attn.gate_net(pooled))[:, :, None, None]
    ref = (g * yl + (1 - g) * yp).transpose(1, 2).reshape(2, T, E)
    torch.testing.assert_close(attn(x), attn.out_proj(ref), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant,m", [("all", None), ("bounded", 2), ("doubling", None)])
def test_pi_attention_causal_variants(variant, m):
    assert_causal(PiAttention(12, 3, period=3, radius=2, variant=variant, m=m, backend=REF, block=8), 12)


def test_pi_attention_errors_and_gradcheck():
    with pytest.raises(ValueError, match="causal=False"):
        PiAttention(8, 2, gate="pooled", causal=True)
    with pytest.raises(ValueError, match="gate"):
        PiAttention(8, 2, gate="mean")
    with pytest.raises(ValueError, match="variant"):
        PiAttention(8, 2, variant="powers")
    with pytest.raises(ValueError, match="d_model=8"):
        PiAttention(8, 2, backend=REF)(torch.randn(1, 5, 4))
    torch.manual_seed(3)
    attn = PiAttention(4, 2, period=3, radius=1, backend=REF, block=4).double()
    x = torch.randn(1, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attn, (x,))


def test_adaptive_pi_attention_causal_and_mixture():
    attn = AdaptivePiAttention(12, 3, pairs=[(4, 2), (8, 2), (4, 5)], backend=REF, block=8)
    assert sorted(attn._local) == [2, 5] and sorted(attn._pi) == [4, 8]  # shared components
    assert_causal(attn, 12)
    w = attn.mixture_weights(torch.randn(2, 10, 12))
    assert w.shape == (2, 10, 3)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 10))
    nc = AdaptivePiAttention(12, 3, pairs=[(4, 2)], causal=False, backend=REF, block=8)
    assert nc.mixture_weights(torch.randn(2, 10, 12)).shape == (2, 1, 1)
    x = torch.randn(2, 10, 12, requires_grad=True)
    nc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one"):
        AdaptivePiAttention(12, 3, pairs=[])


def test_adaptive_pi_gradcheck():
    torch.manual_seed(4)
    attn = AdaptivePiAttention(4, 2, pairs=[(2, 1), (3, 2)], backend=REF, block=4).double()
    x = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attn, (x,))


# ------------------------------------------------------------ PrimeFormer
def test_prime_harmony_output_gate_and_omega():
    torch.manual_seed(5)
    pats = [mc.causal() & mc.window(1), mc.causal() & mc.offsets([0, 2, 3])]
    attn = PrimeHarmonyAttention(8, 2, patterns=pats, backend=REF, block=4).double()
    with torch.no_grad():
        attn.alpha.copy_(torch.tensor([0.3, -0.2]))
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    q, k, v = (t.view(2, 11, 2, 4).transpose(1, 2) for t in attn.qkv(x).chunk(3, -1))
    masks = torch.from_numpy(np.stack([p.dense(11)[0] for p in pats]))
    o = masked_softmax_attention(q, k, v, masks)
    gate = torch.sigmoid((q * attn.phi[None, :, None, :]).sum(-1) + attn.phi_bias[None, :, None])
    om = torch.softmax(attn.alpha, 0)
    ref = (o * gate[..., None] * om[None, :, None, None]).transpose(1, 2).reshape(2, 11, 8)
    torch.testing.assert_close(attn(x), attn.out_proj(ref), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attn.omega.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_prime_harmony_default_nine_heads_causal_and_grad():
    attn = PrimeHarmonyAttention(18, 9, backend=REF, block=8)
    assert [p.text().split("(")[0] for p in attn.head_patterns] == [
        "twin_primes", "arithmetic_progression", "goldbach", "mersenne", "sieve", "riemann_zeros",
        "prime_gaps", "quadratic_residue", "prime_powers"]
    assert attn.layout(20).heads == 9
    assert_causal(attn, 18, T=20, t0=7)
    cyc = PrimeHarmonyAttention(20, 10, patterns=[mc.causal()], backend=REF)
    assert len(cyc.head_patterns) == 10
    x = torch.randn(1, 12, 18, requires_grad=True)
    attn(x).sum().backward()
    assert torch.isfinite(x.grad).all() and attn.alpha.grad.abs().sum() > 0 and attn.phi.grad.abs().sum() > 0


def test_prime_harmony_gradcheck():
    torch.manual_seed(6)
    attn = PrimeHarmonyAttention(4, 2, patterns=[mc.causal() & mc.window(1), mc.causal() & mc.offsets("primes")],
                                 backend=REF, block=4).double()
    x = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attn, (x,))


def test_riemann_pe_additive_values():
    import mpmath

    gam = [float(mpmath.zetazero(k).imag) for k in (1, 2, 3)]
    pe = RiemannPositionalEncoding(6)
    tab = pe.encoding(9)
    for pos in (0, 1, 8):
        u = math.log(pos + 1)
        for k in range(3):
            assert tab[pos, 2 * k].item() == pytest.approx(math.cos(gam[k] * u) / math.sqrt(3), abs=1e-9)
            assert tab[pos, 2 * k + 1].item() == pytest.approx(math.sin(gam[k] * u) / math.sqrt(3), abs=1e-9)
    ph = RiemannPositionalEncoding(6, phase=True).encoding(4)
    assert ph[0, 0].item() == pytest.approx(math.cos(math.atan(2 * gam[0])) / math.sqrt(3), abs=1e-9)
    x = torch.randn(2, 9, 6)
    torch.testing.assert_close(pe(x), x + tab.float())
    with pytest.raises(ValueError, match="even"):
        RiemannPositionalEncoding(5)
    with pytest.raises(ValueError, match="d_model=6"):
        pe(torch.randn(2, 9, 4))


def test_riemann_pe_rotary_is_log_relative():
    pe = RiemannPositionalEncoding(8, mode="rotary").double()
    q = torch.randn(8, dtype=torch.float64)
    k = torch.randn(8, dtype=torch.float64)
    rq = pe(q.expand(12, 8))
    rk = pe(k.expand(12, 8))
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(12))
    # (i+1)/(j+1) = 2 for (1, 0), (3, 1), (11, 5): equal scores
    s = [float(rq[i] @ rk[j]) for i, j in ((1, 0), (3, 1), (11, 5))]
    assert s[0] == pytest.approx(s[1], abs=1e-9) and s[0] == pytest.approx(s[2], abs=1e-9)
    assert float(rq[2] @ rk[0]) != pytest.approx(s[0], abs=1e-6)


def test_von_mangoldt():
    lam = von_mangoldt(13)
    expect = {2: math.log(2), 3: math.log(3), 4: math.log(2), 5: math.log(5), 7: math.log(7), 8: math.log(2),
              9: math.log(3), 11: math.log(11)}
    for n in range(13):
        assert lam[n] == pytest.approx(expect.get(n, 0.0))


def test_prime_composite_regularizer_values():
    N = 12
    allow = torch.ones(N, N, dtype=torch.bool).tril()
    # build the smoothed target by hand and check KL(P_eps || P_eps) = 0
    lam = von_mangoldt(N)
    P = np.zeros((N, N))
    for i in range(N):
        w = np.array([lam[i - j] if i - j >= 2 else 0.0 for j in range(N)])
        u = np.array([1.0 if j <= i else 0.0 for j in range(N)]) / (i + 1)
        p = w / w.sum() if w.sum() > 0 else u
        P[i] = 0.9 * p + 0.1 * u
    Pt = torch.tensor(P)
    assert float(prime_composite_regularizer(Pt, alpha=1.0)) == pytest.approx(0.0, abs=1e-12)
    # uniform attention: KL(U || P_eps) by hand
    U = allow.double() / allow.sum(-1, keepdim=True)
    kl = [sum(U[i, j] * math.log(U[i, j] / P[i, j]) for j in range(i + 1)) for i in range(N)]
    got = prime_composite_regularizer(U[None, None].expand(2, 3, N, N), alpha=1e-3)
    assert float(got) == pytest.approx(1e-3 * np.mean(kl), rel=1e-9)
    # lists (layers) average, gradient is finite
    A = torch.softmax(torch.randn(2, N, N).masked_fill(~allow, float("-inf")), -1).requires_grad_(True)
    loss = prime_composite_regularizer([A, A.detach()])
    loss.backward()
    assert torch.isfinite(A.grad).all() and float(loss.detach()) > 0
    with pytest.raises(ValueError, match="eps"):
        prime_composite_regularizer(A, eps=0.0)
    lay = mc.compile(mc.causal() & mc.window(3), N, block=4)
    assert float(prime_composite_regularizer(U, allowed=lay)) > 0


def test_entropy_hinge():
    N = 4096
    hi = math.log(math.log(N) / math.log(math.log(N)))
    inside = torch.zeros(1, 5, N)
    inside[..., :3] = 1 / 3  # entropy log 3 in [log 2, hi]
    assert float(entropy_hinge(inside)) == 0.0
    onehot = torch.zeros(1, 2, N)
    onehot[..., 0] = 1
    assert float(entropy_hinge(onehot)) == pytest.approx(math.log(2))
    uni = torch.full((1, 1, 64), 1 / 64)
    hi64 = math.log(math.log(64) / math.log(math.log(64)))
    assert float(entropy_hinge(uni)) == pytest.approx(math.log(64) - hi64, rel=1e-5)
    assert float(entropy_hinge(uni, n=N)) == pytest.approx(math.log(64) - hi, rel=1e-5)
    with pytest.raises(ValueError, match="N >= 3"):
        entropy_hinge(torch.full((1, 2), 0.5))


# ------------------------------------------------------------ helpers
def test_layout_is_causal():
    for p, expect in [(mc.causal(), True), (mc.causal() & mc.window(3), True), (mc.window(2, 1), False),
                      (mc.full(), False), (mc.causal().at_block_level(4), False),
                      (mc.causal() & mc.offsets("primes"), True), (mc.global_tokens(2), False)]:
        assert layout_is_causal(mc.compile(p, 13, block=4)) is expect, p.text()


# ------------------------------------------------------------ review fixes
def _causal_configs():
    """Every causal configuration of every module: name -> (module, width)."""
    torch.manual_seed(12)
    pat = mc.causal() & (mc.window(2) | mc.offsets("primes"))
    per_head = mc.heads([mc.causal() & mc.window(1), mc.causal() & mc.offsets([0, 3, 5, 8])])
    return {
        "sparse/per-head": (SparseSelfAttention(8, 2, per_head, backend=REF, block=8), 8),
        "sparse/layout": (SparseSelfAttention(8, 2, mc.compile(pat, 23, block=8), backend=REF), 8),
        "sparse/plan": (SparseSelfAttention(8, 2, mc.plan(pat, 23, block=8, head_dim=4), backend=REF), 8),
        "prime/cap": (PrimeSelfAttention(8, heads=2, window=1, global_tokens=1, cap=7, backend=REF, block=8), 8),
        "square/no-global": (SquareSelfAttention(8, heads=2, global_tokens=0, backend=REF, block=8), 8),
        "mian_chowla": (MianChowlaSelfAttention(8, heads=2, window=0, backend=REF, block=8), 8),
        "adaptive/bounded": (AdaptivePiAttention(8, 2, pairs=[(3, 1), (5, 2)], variant="bounded", m=2,
                                                 backend=REF, block=8), 8),
        "adaptive/doubling": (AdaptivePiAttention(8, 2, pairs=[(2, 1)], variant="doubling", backend=REF, block=8), 8),
        "harmony/custom": (PrimeHarmonyAttention(8, 2, patterns=[mc.causal() & mc.window(2), mc.causal()],
                                                 backend=REF, block=8), 8),
        "harmony/cycled": (PrimeHarmonyAttention(10, 10, backend=REF, block=8), 10),
        "riemann/additive": (RiemannPositionalEncoding(8, phase=True), 8),
        "riemann/rotary": (RiemannPositionalEncoding(8, mode="rotary"), 8),
    }


@pytest.mark.parametrize("name", list(_causal_configs()))
def test_every_causal_configuration_is_exactly_causal(name):
    module, d = _causal_configs()[name]
    for training in (True, False):
        module.train(training)
        assert_causal(module, d)


def test_dense_mask_cache_survives_id_reuse():
    from maskc.nn._functional import _DENSE_CACHE, dense_mask

    a = mc.compile(mc.causal() & mc.window(1), 9, block=4)
    b = mc.compile(mc.causal(), 9, block=4)
    _DENSE_CACHE[id(b)] = (a, a.to_dense())  # what a reused id would look like
    np.testing.assert_array_equal(dense_mask(b), b.to_dense())


def test_modules_accept_a_plan():
    torch.manual_seed(19)
    pat = mc.causal() & (mc.window(2) | mc.offsets("primes"))
    pl = mc.plan(pat, 20, block=8, head_dim=4)
    by_plan = SparseSelfAttention(8, 2, pl, backend=REF)
    by_pat = SparseSelfAttention(8, 2, pat, backend=REF, block=8)
    by_pat.load_state_dict(by_plan.state_dict())
    x = torch.randn(2, 20, 8)
    torch.testing.assert_close(by_plan(x)[0], by_pat(x)[0])
    assert "plan(" in repr(by_plan)
    with pytest.raises(ValueError, match="plan was made for q_len=20"):
        by_plan(torch.randn(1, 21, 8))


@pytest.mark.parametrize("make", [
    lambda: SparseSelfAttention(8, 2, mc.causal(), backend=REF),
    lambda: PrimeSelfAttention(8, heads=2, backend=REF),
    lambda: PiAttention(8, 2, period=2, radius=1, backend=REF),
    lambda: AdaptivePiAttention(8, 2, pairs=[(2, 1)], backend=REF),
    lambda: PrimeHarmonyAttention(8, 2, backend=REF),
    lambda: MomentumAttentionBlock(8, 2, backend=REF),
    lambda: NesterovAttentionBlock(8, 2, backend=REF),
])
def test_dtype_errors_are_clear(make):
    m = make()
    with pytest.raises(TypeError, match=r"dtype torch.float64 does not match the module's parameters \(torch.float32\)"):
        m(torch.randn(1, 5, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        m(torch.ones(1, 5, 8, dtype=torch.long))


@pytest.mark.parametrize("mod", ["attention", "pi", "primeformer", "sympformer"])
def test_docstring_examples_run(mod):
    """The short examples in the docstrings are part of the contract: run them."""
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(f"maskc.nn.{mod}"), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
