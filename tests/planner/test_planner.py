"""Planner: plans are exact against a float64 dense masked softmax of the full pattern."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.planner import plan
from maskc.planner.merge import merge_lse

F32_TOL = 1e-5
TRITON_TOL = 1e-3


def reference(q, k, v, mask: np.ndarray, scale: float):
    """float64 dense masked softmax; mask bool [H or 1, N, M]; empty rows -> 0, -inf."""
    q, k, v = (x.double() for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    m = torch.from_numpy(mask)
    s = (q @ k.transpose(-1, -2) * scale).masked_fill(~m, float("-inf"))
    mx = s.amax(-1, keepdim=True).detach()
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(s - mx)
    z = e.sum(-1)
    out = (e @ v) / torch.where(z > 0, z, torch.ones_like(z)).unsqueeze(-1)
    lse = torch.where(z > 0, mx.squeeze(-1) + torch.log(torch.where(z > 0, z, torch.ones_like(z))),
                      torch.full_like(z, float("-inf")))
    return out, lse


def rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    assert not torch.isnan(a).any(), "NaN in result"
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def check_lse(lse, rlse, tol):
    assert not torch.isnan(lse).any()
    assert torch.equal(torch.isinf(lse), torch.isinf(rlse)), "empty rows differ"
    fin = torch.isfinite(rlse)
    if fin.any():
        assert float((lse.detach().double()[fin] - rlse.detach()[fin]).abs().max()) < tol * 10


def run_case(pattern, N, M, *, block=16, D=16, heads=(4, 2), force=None, allow_whole=False, backend="auto",
             dia="auto", tol=F32_TOL, grads=False, seed=0):
    torch.manual_seed(seed)
    pl = plan(pattern, N, M, block=block, head_dim=D, force=force, allow_whole=allow_whole)
    Hq, Hkv = heads
    dt = torch.float64 if grads else torch.float32
    q = torch.randn(2, Hq, N, D, dtype=dt, requires_grad=grads)
    k = torch.randn(2, Hkv, M, D, dtype=dt, requires_grad=grads)
    v = torch.randn(2, Hkv, M, D, dtype=dt, requires_grad=grads)
    scale = 0.37
    from maskc.backends import attention

    out, lse = attention(q, k, v, pl, backend=backend, scale=scale, return_lse=True) if dia == "auto" else \
        pl.run(q, k, v, backend=backend, scale=scale, return_lse=True, dia=dia)
    mask = pattern.dense(N, M, heads=Hq if pattern.n_heads else None)
    rout, rlse = reference(q, k, v, mask, scale)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert rel(out, rout) < tol, (rel(out, rout), [p.lowering for p in pl.parts])
    check_lse(lse, rlse, tol)
    if grads:
        w, wl = torch.randn_like(rout), torch.randn_like(rlse)
        fin = torch.isfinite(rlse)
        g1 = torch.autograd.grad((out * w).sum() + (torch.where(fin, lse.double(), 0) * wl).sum(), (q, k, v))
        g2 = torch.autograd.grad((rout * w).sum() + (torch.where(fin, rlse, 0) * wl).sum(), (q, k, v))
        for a, b in zip(g1, g2):
            assert rel(a, b) < 1e-10
    return pl


PI_CAUSAL = mc.causal() & (mc.ring_local(6) | mc.stride(4))
PI_FULL = mc.ring_local(6) | mc.stride(4)
SQUARES = mc.causal() & (mc.window(3) | mc.offsets("squares"))
MIAN = mc.causal() & (mc.window(3) | mc.offsets("mian_chowla"))
PRIMEBIRD = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))


@pytest.mark.parametrize("N,M", [(96, 96), (101, 77)])
@pytest.mark.parametrize("force", [None, {"band": "dia", "stride4": "residue"}, {"band": "bsr", "stride4": "dia"},
                                   {"stride4": "bsr"}])
def test_pi_union_causal(N, M, force):
    pl = run_case(PI_CAUSAL, N, M, force=force)
    if force and force.get("stride4") == "residue":
        assert "residue" in [p.lowering for p in pl.parts]


@pytest.mark.parametrize("N,M", [(96, 96), (83, 110)])
@pytest.mark.parametrize("force", [None, {"band": "bsr", "stride4": "residue"}])
def test_pi_union_noncausal(N, M, force):
    pl = run_case(PI_FULL, N, M, force=force)
    assert len(pl.parts) >= 1


@pytest.mark.parametrize("pattern", [SQUARES, MIAN], ids=["squares", "mian_chowla"])
@pytest.mark.parametrize("force", [None, {"offsets": "dia", "band": "bsr"}, {"offsets": "bsr", "band": "dia"}])
def test_offsets_plus_window(pattern, force):
    pl = run_case(pattern, 130, 130, force=force)
    if force:
        want = {"bsr": ("bsr", "dense"), "dia": ("dia",)}[force["offsets"]]
        assert [p.lowering for p in pl.parts if p.name == "offsets"][0] in want


@pytest.mark.parametrize("allow_whole", [False, True])
def test_primebird_token_level(allow_whole):
    pl = run_case(PRIMEBIRD, 120, 120, allow_whole=allow_whole, force=None)
    if not allow_whole:
        assert "gather" in [p.lowering for p in pl.parts]  # the global columns


def test_primebird_block_level():
    p = PRIMEBIRD.at_block_level(16)
    pl = run_case(p, 120, 120)
    assert [x.lowering for x in pl.parts] == ["bsr"]


def test_global_rows_and_cols_noncausal():
    run_case(mc.window(2, 2) | mc.global_tokens([0, 5]) | mc.offsets([17, 30]), 70, 70)


def test_generic_term_is_disjoint():
    @mc.predicate
    def planner_every7(i, j):
        return (i + j) % 7 == 0

    run_case(mc.causal() & (mc.window(3) | planner_every7 | mc.cols([0])), 50, 50)


def test_heads_pattern():
    p = mc.heads([PI_CAUSAL, SQUARES, MIAN, mc.causal() & mc.window(5)])
    run_case(p, 64, 64, heads=(4, 2))


def test_empty_rows_give_zero_and_minus_inf():
    p = mc.offsets([5, 9])  # rows 0..4 have no key
    run_case(p, 40, 40)


@pytest.mark.parametrize("pattern,force", [
    (PI_CAUSAL, {"band": "bsr", "stride4": "residue"}),
    (SQUARES, {"band": "bsr", "offsets": "dia"}),
    (PRIMEBIRD, None),
    (PI_FULL, {"band": "dia", "stride4": "residue"}),
], ids=["pi_residue", "squares_dia", "primebird_gather", "pi_full"])
def test_gradients_vs_float64_autograd(pattern, force):
    run_case(pattern, 75, 75, force=force, grads=True)


@settings(max_examples=20, deadline=None)
@given(
    N=st.integers(5, 90),
    M=st.integers(5, 90),
    causal=st.booleans(),
    w=st.integers(0, 8),
    s=st.integers(2, 9),
    offs=st.lists(st.integers(-40, 60), max_size=6),
    g=st.lists(st.integers(0, 10), max_size=2),
    block=st.sampled_from([8, 16]),
    force_dia=st.booleans(),
)
def test_random_unions(N, M, causal, w, s, offs, g, block, force_dia):
    terms = [mc.window(w, w if not causal else 0), mc.stride(s)]
    if offs:
        terms.append(mc.offsets([abs(o) for o in offs if o >= 0] or [0]))
        neg = [-o for o in offs if o < 0]
        if neg:
            terms.append(mc.window(-min(neg), max(neg)) & mc.stride(3))
    if g:
        terms.append(mc.global_tokens(sorted(set(x for x in g if x < min(N, M))) or [0]))
    union = terms[0]
    for t in terms[1:]:
        union = union | t
    p = mc.causal() & union if causal else union
    force = None
    if force_dia:  # force every piece this plan has away from the cost model's choice where possible
        pieces = plan(p, N, M, block=block, allow_whole=False).heads[0].pieces
        want = {"band": "dia", f"stride{s}": "residue", "offsets": "dia"}
        force = {k: v for k, v in want.items() if k in pieces} or None
    try:
        run_case(p, N, M, block=block, heads=(2, 1), force=force)
    except ValueError as e:  # a forced lowering that does not apply to this piece
        assert "cannot use" in str(e)
        run_case(p, N, M, block=block, heads=(2, 1))


# ------------------------------------------------------------------ merge
def test_merge_matches_union_and_handles_all_minus_inf():
    torch.manual_seed(1)
    o1, o2 = torch.randn(1, 1, 3, 4, dtype=torch.float64), torch.randn(1, 1, 3, 4, dtype=torch.float64)
    l1 = torch.tensor([[[0.5, float("-inf"), float("-inf")]]], dtype=torch.float64, requires_grad=True)
    l2 = torch.tensor([[[1.5, 2.0, float("-inf")]]], dtype=torch.float64, requires_grad=True)
    out, lse = merge_lse([(o1, l1), (o2, l2)])
    w1 = np.exp(0.5) / (np.exp(0.5) + np.exp(1.5))
    assert torch.allclose(out[0, 0, 0], w1 * o1[0, 0, 0] + (1 - w1) * o2[0, 0, 0])
    assert torch.allclose(out[0, 0, 1], o2[0, 0, 1])  # only part 2 has keys
    assert torch.equal(out[0, 0, 2], torch.zeros(4, dtype=torch.float64))
    assert float(lse.detach()[0, 0, 0]) == pytest.approx(np.log(np.exp(0.5) + np.exp(1.5)))
    assert lse[0, 0, 2] == float("-inf")
    (out.sum() + torch.where(torch.isfinite(lse), lse, 0).sum()).backward()
    assert not torch.isnan(l1.grad).any() and not torch.isnan(l2.grad).any()
    assert l1.grad[0, 0, 1] == 0


def test_merge_rejects_bad_input():
    with pytest.raises(ValueError):
        merge_lse([])
    with pytest.raises(ValueError):
        merge_lse([(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2)), (torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3))])


# ------------------------------------------------------------------ triton DIA (interpreter)
def _triton_ok():
    from maskc.backends.dia_triton import is_available

    return is_available()


@pytest.mark.parametrize("N,M,offs", [(21, 19, [-3, 0, 2, 9, 16]), (33, 33, [0, 1, 4, 9, 16, 25]),
                                      (12, 12, [5, 9])])  # rows 0..4 empty: lse -inf, zero grads
def test_dia_triton_fwd_bwd(N, M, offs):
    ok, why = _triton_ok()
    if not ok:
        pytest.skip(f"Triton DIA kernel not runnable here: {why}")
    from maskc.backends.dia_triton import dia_attention_triton

    torch.manual_seed(0)
    q = torch.randn(1, 2, N, 16, requires_grad=True)
    k = torch.randn(1, 1, M, 16, requires_grad=True)
    v = torch.randn(1, 1, M, 16, requires_grad=True)
    out, lse = dia_attention_triton(q, k, v, offs, scale=0.3)
    i, j = np.arange(N)[:, None], np.arange(M)[None, :]
    mask = np.isin(i - j, offs)[None]
    rout, rlse = reference(q, k, v, mask, 0.3)
    assert rel(out, rout) < TRITON_TOL
    check_lse(lse, rlse, TRITON_TOL)
    w, wl = torch.randn_like(rout), torch.randn_like(rlse)
    fin = torch.isfinite(rlse)
    g1 = torch.autograd.grad((out * w).sum() + (torch.where(fin, lse.double(), 0) * wl).sum(), (q, k, v))
    g2 = torch.autograd.grad((rout * w).sum() + (torch.where(fin, rlse, 0) * wl).sum(), (q, k, v))
    for a, b in zip(g1, g2):
        assert rel(a, b) < TRITON_TOL


def test_plan_with_triton_dia_interpreter():
    ok, why = _triton_ok()
    if not ok:
        pytest.skip(f"Triton DIA kernel not runnable here: {why}")
    run_case(SQUARES, 40, 40, force={"band": "bsr", "offsets": "dia"}, dia="triton", tol=TRITON_TOL)


# ------------------------------------------------------------------ explain / cost / errors
def test_explain_mentions_parts_and_tradeoff():
    pl = plan(PI_CAUSAL, 512, block=32, allow_whole=False, force={"stride4": "residue"})
    text = pl.explain()
    assert "residue" in text and "stride4" in text and "at_block_level(32)" in text and "why:" in text


def test_gpu_profile_picks_residue_and_dia_at_32k():
    pi = mc.causal() & (mc.window(64) | mc.stride(16))
    sq = mc.causal() & (mc.window(64) | mc.offsets("squares"))
    assert [p.lowering for p in plan(pi, 32768, device="h100").parts] == ["bsr", "residue"]
    assert [p.lowering for p in plan(sq, 32768, device="h100").parts] == ["bsr", "dia"]


def test_prime_offsets_are_not_made_cheap():
    """Token-level primes: ~N^2/(2 ln N) pairs; no lowering beats dense by much on GPU."""
    pl = plan(PRIMEBIRD, 32768, device="h100")
    nnz = sum(p.nnz for p in pl.parts)
    assert nnz > 32768**2 / (2 * np.log(32768)) * 0.8
    assert 0.5 < pl.speedup_estimate < 1.5
    assert f"x{pl.speedup_estimate:.2f}" in pl.explain()


def test_cpu_baseline_is_torch_sdpa_not_the_planner_kernel():
    """Regression: the CPU "dense SDPA" line priced the planner's own torch block-sparse path (~5x slower than
    torch's fused SDPA), so CPU explains promised speed-ups that measurement contradicted (PrimeBird x2.3
    estimated, x0.04 measured in docs/planner.md)."""
    from maskc.planner import cost as C

    cpu = C.get_profile("cpu")
    assert cpu.sdpa_flops > 3 * cpu.matmul_flops and "sdpa_flops" in cpu.source
    for prof in C.PROFILES.values():  # every constant of every profile says where it comes from
        for name in ("matmul_flops", "dense_flops", "sdpa_flops", "vector_flops", "mem_bw"):
            assert name in prof.source, (prof.name, name)
    pl = plan(PRIMEBIRD, 4096, device="cpu")
    assert pl.speedup_estimate < 1
    assert "dense SDPA is the faster choice" in pl.explain()


def test_explain_units_are_readable():
    from maskc.planner.cost import human_bytes as _bytes, human_seconds as _ms

    assert [_ms(x) for x in (2e-5, 4.56e-3, 1.754)] == ["20 us", "4.56 ms", "1.75 s"]
    assert [_bytes(x) for x in (512, 9.5e5, 2.51e7, 1.19e9)] == ["512 B", "950 kB", "25.1 MB", "1.19 GB"]
    assert "e+" not in plan(PRIMEBIRD, 4096, device="cpu").explain()


@pytest.mark.parametrize("expr", ["prime_bird()", "square_bird()", "pi_attention_union()"])
def test_cli_plan_seed_patterns(expr, capsys):
    from maskc.cli import main

    assert main(["plan", expr, "--len", "2048"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"plan for {expr[:-1]}") and "part 1" in out and "why:" in out
    assert "dense SDPA" in out and "speed-up estimate x" in out and "at_block_level(128)" in out


def test_bad_inputs():
    with pytest.raises(TypeError):
        plan("causal()", 16)
    with pytest.raises(ValueError):
        plan(mc.causal(), 0)
    with pytest.raises(ValueError):
        plan(mc.causal(), 16, device="tpu9")
    pl = plan(mc.causal() & mc.window(2), 16, block=8)
    with pytest.raises(ValueError):
        pl.run(torch.randn(1, 1, 15, 8), torch.randn(1, 1, 16, 8), torch.randn(1, 1, 16, 8))
    with pytest.raises(ValueError):
        plan(SQUARES, 64, force={"offsets": "residue"}, allow_whole=False)


def test_force_with_unknown_piece_name_is_an_error():
    """Regression: a misspelt force key ("strid4") was silently ignored and the test "forcing" it passed anyway."""
    with pytest.raises(ValueError, match=r"no piece named \['strid4'\].*\['band', 'stride4'\]"):
        plan(PI_CAUSAL, 96, block=16, force={"strid4": "residue"})
    pl = plan(PI_CAUSAL, 96, block=16, force={"stride4": "residue"})
    assert [p.lowering for p in pl.parts if p.name == "stride4"] == ["residue"]


def test_cli_plan(capsys):
    from maskc.cli import main

    rc = main(["plan", "causal() & (window(64) | stride(16))", "--len", "32768", "--device", "h100"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "residue" in out and "speed-up" in out
    assert main(["plan", "causal()", "--len", "64", "--device", "nope"]) == 2
