"""SympFormer blocks: the velocity-form equations against independent dense oracles, exact
causality of every scheme and form, gradients, stability and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import maskc as mc
from maskc.nn import MomentumAttentionBlock, NesterovAttentionBlock

REF = "reference"
SCHEMES = ["damp_kick", "kick_damp", "exponential_euler", "momentum"]
FORMS = ["velocity", "hamiltonian"]
PAT = mc.causal() & (mc.window(2) | mc.offsets("primes"))


def _heads(x, H):
    B, T, E = x.shape
    return x.view(B, T, H, E // H).transpose(1, 2)


def _merge(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def _dense_mask(pattern, T):
    return torch.from_numpy(mc.compile(pattern, T, block=8).to_dense())  # [H, T, T]


def _softmax_weights(blk, xn, mask):
    """Independent dense p_h = softmax(q_h k_hᵀ/√d) over the allowed pairs (float64)."""
    q, k = _heads(blk.q_proj(xn), blk.num_heads), _heads(blk.k_proj(xn), blk.num_heads)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(blk.head_dim)
    return torch.softmax(s.masked_fill(~mask[None], float("-inf")), -1), s


def _block(d=8, H=2, pattern=PAT, **kw):
    return MomentumAttentionBlock(d, H, pattern, backend=REF, block=8, **kw).double()


# ------------------------------------------------------------------ the equations
def test_velocity_force_matches_dense_formula():
    """G̃_i = ½ W_O concat_h[(s_h,i − 2)(p_h v_h)_i + (p_h (s_h ⊙ v_h))_i], s_h,i = |U_h,i|²."""
    torch.manual_seed(0)
    blk = _block(12, 3)
    x, u = torch.randn(2, 19, 12, dtype=torch.float64), torch.randn(2, 19, 12, dtype=torch.float64)
    xn = blk.norm(x)
    p, _ = _softmax_weights(blk, xn, _dense_mask(PAT, 19))
    v, uh = _heads(blk.v_proj(xn), 3), _heads(u, 3)
    s = uh.pow(2).sum(-1, keepdim=True)
    ref = blk.out_proj(_merge(0.5 * ((s - 2) * (p @ v) + p @ (s * v))))
    got = blk.velocity_force(xn, u)
    assert ((got - ref).norm() / ref.norm()).item() < 1e-12


def test_velocity_form_is_the_algorithm_2_force_divided_by_z():
    """With P = U z (B = I), G_i = W_O[(1/2T) Σ_j E_ij (s_i + s_j − 2) v_j], z_i = (1/T) Σ_j E_ij,
    s_i = |P_i|²/z_i² (per head): G_i / z_i is the velocity-form force — z cancels."""
    torch.manual_seed(1)
    T, H = 17, 2
    blk = _block(8, H)
    x, u = torch.randn(1, T, 8, dtype=torch.float64), torch.randn(1, T, 8, dtype=torch.float64)
    xn = blk.norm(x)
    mask = _dense_mask(PAT, T)
    _, scores = _softmax_weights(blk, xn, mask)
    E = torch.exp(scores) * mask[None]
    z = E.sum(-1) / T  # [1, H, T]
    P = _heads(u, H) * z[..., None]
    s = P.pow(2).sum(-1) / z**2
    v = _heads(blk.v_proj(xn), H)
    G = (E * (s[..., :, None] + s[..., None, :] - 2)) @ v / (2 * T)
    ref = blk.out_proj(_merge(G / z[..., None]))
    got = blk.velocity_force(xn, u)
    assert ((got - ref).norm() / ref.norm()).item() < 1e-12


def _coefficients(blk, t):
    hx, hy, c_log, c_lin = (v.item() for v in (blk.h_x, blk.h_y, F.softplus(blk.rho_clog), F.softplus(blk.rho_clin)))
    deta = c_log * math.log1p(hx / t) + c_lin * hx
    return hx, hy, deta, math.exp(-deta)


def test_first_step_defaults_and_time():
    """U₀ = 0, t₀ = 1, h_X = h_Y = 0.5, c_log = 3, c_lin = 1e-4: U₁ = LN_u(h_Y G̃(X, 0)), G̃ = −W_O(p v)."""
    torch.manual_seed(2)
    blk = _block()
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    x1, u1, t1 = blk(x)
    hx, hy, deta, _ = _coefficients(blk, 1.0)
    assert hx == pytest.approx(0.5) and hy == pytest.approx(0.5) and t1.item() == pytest.approx(1.5)
    assert F.softplus(blk.rho_clog).item() == pytest.approx(3.0)
    assert F.softplus(blk.rho_clin).item() == pytest.approx(1e-4)
    assert deta == pytest.approx(3 * math.log(1.5) + 0.5e-4)
    xn = blk.norm(x)
    p, _ = _softmax_weights(blk, xn, _dense_mask(PAT, 11))
    G = blk.out_proj(_merge(-(p @ _heads(blk.v_proj(xn), 2))))  # s = 0: ½((0 − 2) p v + 0)
    torch.testing.assert_close(u1, blk.norm_u(hy * G), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x1, x + hx * u1, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_updates(scheme):
    torch.manual_seed(3)
    blk = _block(scheme=scheme)
    x, u = torch.randn(1, 9, 8, dtype=torch.float64), torch.randn(1, 9, 8, dtype=torch.float64)
    t = 2.5
    x1, u1, t1 = blk(x, u, t)
    hx, hy, deta, sigma = _coefficients(blk, t)
    G = blk.velocity_force(blk.norm(x), u)
    want = {
        "damp_kick": lambda: blk.norm_u(sigma * u + hy * G),
        "kick_damp": lambda: sigma * blk.norm_u(u + hy * G),
        "exponential_euler": lambda: blk.norm_u(sigma * u + hy * (1 - sigma) / deta * G),
        "momentum": lambda: blk.norm_u(torch.sigmoid(blk.a_logit) * u + hy * G),
    }[scheme]()
    torch.testing.assert_close(u1, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x1, x + hx * u1, rtol=1e-10, atol=1e-12)
    assert t1.item() == pytest.approx(t + hx)


def test_hamiltonian_form_force_is_minus_grad_h_with_clamp_and_sequence_normalised_z():
    torch.manual_seed(4)
    T = 10
    blk = _block(form="hamiltonian", pattern=mc.causal() & mc.window(3))
    with torch.no_grad():
        blk.q_proj.weight.mul_(200.0)  # logits beyond ±60: the clamp matters
    x, p = torch.randn(1, T, 8, dtype=torch.float64), torch.randn(1, T, 8, dtype=torch.float64)
    x1, p1, _ = blk(x, p)
    mask = _dense_mask(mc.causal() & mc.window(3), T)
    xq = blk.norm(x).detach().requires_grad_(True)
    xk = blk.norm(x).detach()
    q, k = _heads(blk.q_proj(xq), 2), _heads(blk.k_proj(xk), 2)
    sc = (q @ k.transpose(-1, -2)) / 2.0
    assert sc.detach().abs().max().item() > 60
    z = (torch.exp(sc.clamp(-60, 60)) * mask[None]).sum(-1) / T
    ph = _heads(p, 2)
    H = 0.5 * (ph.pow(2).sum(-1) / z).sum() - 0.5 * z.sum()  # c_B = identity at init
    (g,) = torch.autograd.grad(H, xq)
    hx, hy, _, sigma = _coefficients(blk, 1.0)
    torch.testing.assert_close(p1, blk.norm_u(sigma * p - hy * g), rtol=1e-9, atol=1e-10)
    step = _merge(_heads(p1, 2) / z.detach()[..., None])
    torch.testing.assert_close(x1, x + hx * step, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------ causality
def _configs():
    torch.manual_seed(5)
    per_head = mc.heads([mc.causal() & mc.window(1), PAT])
    return {
        "pattern": lambda **kw: MomentumAttentionBlock(8, 2, PAT, backend=REF, block=8, **kw),
        "layout": lambda **kw: MomentumAttentionBlock(8, 2, mc.compile(PAT, 23, block=8), backend=REF, **kw),
        "plan": lambda **kw: MomentumAttentionBlock(8, 2, mc.plan(PAT, 23, block=8, head_dim=4), backend=REF, **kw),
        "per-head": lambda **kw: MomentumAttentionBlock(8, 2, per_head, backend=REF, block=8, **kw),
    }


def _perturbed(T=23, d=8, t0=9, seed=14):
    """(x, u) and copies whose positions >= t0 are redrawn."""
    g = torch.Generator().manual_seed(seed)
    a = [torch.randn(2, T, d, generator=g) for _ in range(2)]
    b = [t.clone() for t in a]
    for t in b:
        t[:, t0:] = torch.randn(2, T - t0, d, generator=g)
    return a, b


@pytest.mark.parametrize("config", list(_configs()))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_and_form_is_exactly_causal(scheme, form, config):
    """Tokens and velocities from position 9 on are redrawn; two chained blocks; train and eval
    mode: every output before position 9 is bit-identical, and later outputs do change."""
    blk = _configs()[config](scheme=scheme, form=form)
    (x, u), (x2, u2) = _perturbed()

    def run(x, u):
        x1, u1, t1 = blk(x, u)
        return torch.cat(blk(x1, u1, t1)[:2], -1)

    for training in (True, False):
        blk.train(training)
        a, b = run(x, u), run(x2, u2)
        assert torch.equal(a[:, :9], b[:, :9]), f"{scheme}/{form}/{config} leaks the future"
        assert not torch.equal(a[:, 9:], b[:, 9:])


def test_hamiltonian_full_force_leaks_under_a_causal_pattern():
    """Why force='auto' exists: the key side of −∂H/∂x̂_j collects later queries."""
    torch.manual_seed(8)
    blk = MomentumAttentionBlock(8, 2, mc.causal(), form="hamiltonian", force="full", backend=REF, block=8)
    x = torch.randn(1, 12, 8)
    x2 = x.clone()
    x2[:, 8:] += 1.0
    assert not torch.equal(blk(x)[1][:, :8], blk(x2)[1][:, :8])
    blk.force = "auto"
    assert torch.equal(blk(x)[1][:, :8], blk(x2)[1][:, :8])


def test_causal_flag_cache_survives_id_reuse():
    blk = MomentumAttentionBlock(8, 2, mc.causal(), form="hamiltonian", backend=REF, block=8)
    lay = blk.layout(12)
    blk._causal[id(lay)] = (mc.compile(mc.full(), 12, block=8), False)  # a stale entry under a reused id
    assert blk._query_only(lay) is True


def test_nesterov_block_equations_and_causality():
    torch.manual_seed(11)
    blk = NesterovAttentionBlock(8, 2, mc.causal() & mc.offsets([0, 1, 4]), backend=REF, block=8)
    (x, v), (x2, v2) = _perturbed(seed=16)
    a, b = torch.cat(blk(*blk(x, v)), -1), torch.cat(blk(*blk(x2, v2)), -1)
    assert torch.equal(a[:, :9], b[:, :9]) and not torch.equal(a[:, 9:], b[:, 9:])
    x1, v1 = blk(x, v)
    att, _ = blk.attn(blk.norm(x + blk.mu * v))
    torch.testing.assert_close(v1, torch.sigmoid(blk.beta_logit) * v + F.softplus(blk.rho_h) * att)
    torch.testing.assert_close(x1, x + v1)
    blkd = blk.double()
    xx = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: blkd(t)[0], (xx,))


# ------------------------------------------------------------------ gradients, backends, cost
@pytest.mark.parametrize("scheme", SCHEMES)
def test_velocity_form_gradcheck_inputs_and_parameters(scheme):
    torch.manual_seed(18)
    blk = _block(4, 2, mc.causal() & mc.window(2), scheme=scheme)
    x = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    u = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: torch.cat(blk(a, b, 1.5)[:2], -1), (x, u))
    names = ["rho_x", "rho_y", "rho_clog", "rho_clin", "q_proj.weight", "v_proj.weight", "out_proj.weight"]
    names += ["a_logit"] if scheme == "momentum" else []
    params = dict(blk.named_parameters())

    def f(*vals):
        out = torch.func.functional_call(blk, {**params, **dict(zip(names, vals))}, (x.detach(), u.detach(), 1.5))
        return torch.cat(out[:2], -1)

    assert torch.autograd.gradcheck(f, tuple(params[n].detach().clone().requires_grad_(True) for n in names))


@pytest.mark.parametrize("training", [True, False])
def test_hamiltonian_form_gradcheck_in_train_and_eval_mode(training):
    torch.manual_seed(17)
    blk = _block(4, 2, mc.causal() & mc.window(2), form="hamiltonian").train(training)
    x = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    p = (0.1 * torch.randn(1, 6, 4, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: torch.cat(blk(a, b)[:2], -1), (x, p))


def test_one_attention_call_per_block_and_none_in_backward(monkeypatch):
    import maskc.nn.sympformer as S

    calls = []
    real = S.attend
    monkeypatch.setattr(S, "attend", lambda *a, **k: calls.append(1) or real(*a, **k))
    blk = MomentumAttentionBlock(8, 2, mc.causal() & mc.window(2), backend=REF, block=8)
    x, u, t = blk(torch.randn(1, 7, 8))
    blk(x, u, t)[0].sum().backward()
    assert len(calls) == 2


def test_plan_layout_and_pattern_agree_and_other_backends_match_reference():
    torch.manual_seed(19)
    x = torch.randn(2, 23, 8)
    by_pat = MomentumAttentionBlock(8, 2, PAT, backend=REF, block=8)
    for other in (mc.compile(PAT, 23, block=8), mc.plan(PAT, 23, block=8, head_dim=4)):
        blk = MomentumAttentionBlock(8, 2, other, backend=REF)
        blk.load_state_dict(by_pat.state_dict())
        for a, b in zip(blk(x), by_pat(x)):
            torch.testing.assert_close(a, b)
    ref = by_pat(x)[:2]
    for name in ("flex", "scipy"):  # whichever sparse backends take torch tensors here
        by_pat.backend = name
        try:
            with torch.no_grad():
                got = by_pat(x)[:2]
        except (TypeError, ValueError) as e:
            if "numpy" in str(e) or "torch" in str(e):
                continue  # this backend does not take torch tensors
            raise
        for a, b in zip(got, ref):
            assert ((a - b).norm() / b.norm()).item() < 1e-5, name


# ------------------------------------------------------------------ stability
def test_velocity_form_has_no_nan_with_huge_logits_and_inputs():
    """Softmax weights and LN_u bound every term (the Hamiltonian form's 1/z has no such bound)."""
    for seed in range(6):
        torch.manual_seed(seed)
        blk = MomentumAttentionBlock(8, 2, PAT, backend=REF, block=8)
        with torch.no_grad():
            blk.q_proj.weight.mul_(200.0)
            blk.k_proj.weight.mul_(200.0)
        x0 = (100 * torch.randn(2, 16, 8)).requires_grad_(True)
        x, u, t = x0, None, None
        for _ in range(4):
            x, u, t = blk(x, u, t)
        x.square().mean().backward()
        assert torch.isfinite(x).all() and torch.isfinite(u).all() and torch.isfinite(x0.grad).all()


def test_tiny_copy_task_trains_without_nan_at_every_seed():
    """A 2-block velocity-form model with an MLP-free head, 40 AdamW steps at lr 1e-2, 6 seeds."""
    T, V, d = 12, 6, 16
    for seed in range(6):
        torch.manual_seed(seed)
        blocks = torch.nn.ModuleList([MomentumAttentionBlock(d, 2, mc.causal(), backend=REF, block=8)
                                      for _ in range(2)])
        emb, head, pos = torch.nn.Embedding(V, d), torch.nn.Linear(d, V), torch.nn.Parameter(0.1 * torch.randn(T, d))
        params = [*blocks.parameters(), *emb.parameters(), *head.parameters(), pos]
        opt = torch.optim.AdamW(params, lr=1e-2)
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(40):
            pre = torch.from_numpy(rng.integers(0, V, size=(16, T // 2 + 1)))
            seq = torch.cat([pre, pre], 1)[:, : T + 1]
            x, u, t = emb(seq[:, :-1]) + pos, None, None
            for b in blocks:
                x, u, t = b(x, u, t)
            loss = F.cross_entropy(head(x)[:, T // 2:].reshape(-1, V), seq[:, 1 + T // 2:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert np.isfinite(losses).all(), seed
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), seed


# ------------------------------------------------------------------ errors, dtypes, docs
def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="scheme must be one of"):
        MomentumAttentionBlock(8, 2, scheme="leapfrog")
    with pytest.raises(ValueError, match="kick_damp"):
        MomentumAttentionBlock(8, 2, scheme="conformal_symplectic")
    with pytest.raises(ValueError, match="exponential_euler"):
        MomentumAttentionBlock(8, 2, scheme="damped_euler")
    with pytest.raises(ValueError, match="form='hamiltonian'"):
        MomentumAttentionBlock(8, 2, force="query")
    with pytest.raises(ValueError, match="form must be"):
        MomentumAttentionBlock(8, 2, form="lagrangian")
    with pytest.raises(ValueError, match="h_x must be > 0"):
        MomentumAttentionBlock(8, 2, h_x=0.0)
    blk = MomentumAttentionBlock(8, 2, backend=REF)
    with pytest.raises(ValueError, match="velocity u"):
        blk(torch.randn(1, 5, 8), torch.randn(1, 4, 8))
    with pytest.raises(ValueError, match="t must be > 0"):
        blk(torch.randn(1, 5, 8), None, 0.0)


def test_hamiltonian_form_refuses_long_sequences(monkeypatch):
    import maskc.nn.sympformer as S

    monkeypatch.setattr(S, "MAX_DENSE_LEN", 8)
    blk = MomentumAttentionBlock(8, 2, form="hamiltonian", backend=REF)
    with pytest.raises(ValueError, match="use form='velocity'"):
        blk(torch.randn(1, 9, 8))
