"""Checks and benchmark cases of :mod:`benchmarks.gpu_suite`.

Everything runs on ``DEVICE`` ("cuda"); the CI smoke test sets it to "cpu" (Triton's
interpreter) with ``SMOKE`` sizes, to run every line of the suite before a GPU is lent.
"""

from __future__ import annotations

import math
import time

import numpy as np

DEVICE = "cuda"
SMOKE = False  #: tiny sizes (CI smoke run on CPU)


def _n(length: int) -> int:
    return min(length, 160) if SMOKE else length

TEST_FILES = ["tests/backends/test_triton.py", "tests/backends/test_triton_exact.py",
              "tests/backends/test_flex.py", "tests/planner"]
HEADER = ("| case | tokens | D | block density | kernel | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s | "
          "fwd vs flex | fwd+bwd vs flex | vs dense (fwd / fwd+bwd) |\n"
          "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
BLOCK = 128


def _doc_lengths(L: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    out, left = [], L
    while left > 0:
        n = int(min(left, rng.integers(L // 16, L // 4 + 1)))
        out.append(n)
        left -= n
    return out


def pattern(name: str, L: int):
    import maskc as mc

    if name == "causal window 1K":
        return mc.causal() & mc.window(1024)
    if name == "block primes + window + globals":
        return mc.causal() & (mc.block_level(mc.window(1) | mc.offsets("primes"), BLOCK) | mc.cols(range(BLOCK)))
    if name == "BigBird":
        return mc.bigbird(window=3, global_tokens=BLOCK, random_blocks=3, block=BLOCK)
    if name == "document mask":
        return mc.document_mask(_doc_lengths(L))
    if name == "πAttention union":
        return mc.pi_attention_union(causal=True)
    if name == "squares + window":
        return mc.causal() & (mc.window(64) | mc.offsets("squares"))
    raise ValueError(name)


def cases(quick: bool = False, only: str | None = None):
    """``(name, lengths, head dims, kind)`` of every benchmark case (``only``: "sparse" or "planner")."""
    lengths = [8192, 32768] if quick else [8192, 16384, 32768, 65536]
    dims = [128] if quick else [64, 128]
    sparse = [(n, lengths, dims, "sparse") for n in
              ("causal window 1K", "block primes + window + globals", "BigBird", "document mask")]
    planner = [(n, [32768], dims, "planner") for n in ("πAttention union", "squares + window")]
    return [c for c in sparse + planner if only in (None, c[3])]


# ------------------------------------------------------------------ checks
def _qkv(B, Hq, Hkv, L, D, dtype, seed=0):
    import torch

    g = torch.Generator(device=DEVICE).manual_seed(seed)
    return [torch.randn(B, h, L, D, device=DEVICE, generator=g).to(dtype) for h in (Hq, Hkv, Hkv)]


def _rel(a, b) -> float:
    """||a - b|| / ||b|| where b is finite; a must match b's -inf entries (lse of empty rows)."""
    import torch

    a, b = a.detach().double(), b.detach().double()
    fin = torch.isfinite(b)
    if not torch.equal(a[~fin], b[~fin]):
        return float("inf")
    return float((a[fin] - b[fin]).norm() / max(float(b[fin].norm()), 1e-30))


def _compare(run, layout, dtype, D, Hq=4, Hkv=2, poison=False):
    """Max relative error of run(q, k, v) (out, lse, dq, dk, dv) against the float64 reference."""
    import torch

    from maskc.backends.reference import attention_reference

    q, k, v = _qkv(1, Hq, Hkv, layout.q_len, D, dtype)
    if poison:  # NaN / inf at keys nobody attends must not reach any row
        dead = np.nonzero(~layout.to_dense().any(axis=(0, 1)))[0]
        k[:, :, dead] = float("nan")
        v[:, :, dead] = float("inf")
    ins = [x.clone().requires_grad_() for x in (q, k, v)]
    refs = [torch.nan_to_num(x.double(), nan=0.0, posinf=0.0, neginf=0.0).requires_grad_() for x in (q, k, v)]
    out, lse = run(*ins)
    rout, rlse = attention_reference(*refs, layout, scale=D ** -0.5, keep_float64=True)
    dout = torch.randn_like(rout)
    (out.double() * dout).sum().backward()
    (rout * dout).sum().backward()
    errs = [_rel(out, rout), _rel(lse, rlse)] + [_rel(a.grad, r.grad) for a, r in zip(ins, refs)]
    finite = all(torch.isfinite(t).all() for t in (out, *(a.grad for a in ins)))
    tol = {torch.float32: 1e-3, torch.float16: 5e-3, torch.bfloat16: 1e-2}[dtype]
    if max(errs) >= tol or not finite:
        raise AssertionError(f"rel errors out/lse/dq/dk/dv {['%.1e' % e for e in errs]} (tol {tol}), finite={finite}")
    return max(errs)


def _mixed_layout(L, block, seed=0):
    import maskc as mc

    rng = np.random.default_rng(seed)
    m = rng.random((4, L, L)) < 0.05  # one mask per query head (Hq = 4)
    m |= np.tril(np.ones((L, L), bool)) & ~np.tril(np.ones((L, L), bool), -block)
    m[:, :, 7] = False
    m[:, 11, :] = False
    return mc.Layout.from_dense(m, block)


def checks():
    import torch

    from maskc.backends.triton_backend import attention_triton

    def triton_case(dtype, D, block, poison=False):
        lay = _mixed_layout(_n(1000), block)
        return lambda: "max rel err %.1e" % _compare(
            lambda q, k, v: attention_triton(q, k, v, lay, scale=D ** -0.5), lay, dtype, D, poison=poison)

    def flex_case():
        from maskc.backends.flex import attention_flex

        if DEVICE == "cpu":
            return "skipped: torch has no CPU flex backward"
        lay = _mixed_layout(1024, 128)
        return "max rel err %.1e" % _compare(lambda q, k, v: attention_flex(q, k, v, lay, scale=64 ** -0.5),
                                            lay, torch.bfloat16, 64)

    def planner_case():
        import maskc as mc
        from maskc.backends.reference import attention_reference
        from maskc.planner import plan

        worst, n = 0.0, _n(2048)
        for name in ("πAttention union", "squares + window"):
            p = pattern(name, n)
            pl = plan(p, n, block=128, head_dim=64, device="h100")
            q, k, v = _qkv(1, 2, 2, n, 64, torch.bfloat16)
            out = pl.run(q, k, v)
            ref, _ = attention_reference(q.double(), k.double(), v.double(), mc.compile(p, n, block=128),
                                         scale=0.125, keep_float64=True)
            worst = max(worst, _rel(out, ref))
            if worst >= 1e-2:
                raise AssertionError(f"{name}: rel err {worst:.1e} ({[pt.lowering for pt in pl.parts]})")
        return f"max rel err {worst:.1e}"

    def dia_case():
        import maskc as mc
        from maskc.backends.dia_triton import dia_attention_triton

        offs = [0, 1, 4, 9, 16, 25, 100]
        lay = mc.compile(mc.causal() & mc.offsets(offs), _n(1500), block=64)
        return "max rel err %.1e" % _compare(lambda q, k, v: dia_attention_triton(q, k, v, offs, scale=0.125),
                                            lay, torch.bfloat16, 64)

    cfgs = [(torch.bfloat16, 64, 64), (torch.bfloat16, 128, 128), (torch.bfloat16, 64, 128),
            (torch.float16, 128, 64), (torch.float32, 128, 128)]
    out = [(f"triton {str(dt)[6:]} D{D} block {b}", triton_case(dt, D, b)) for dt, D, b in cfgs[:1 if SMOKE else 5]]
    out.append(("triton exact rows, NaN / inf at unattended keys", triton_case(torch.bfloat16, 64, 64, True)))
    out += [("flex compiled fwd+bwd", flex_case), ("planner DIA (triton)", dia_case),
            ("planner plans (DIA / residue / bsr)", planner_case)]
    return out


# ------------------------------------------------------------------ benchmarks
def _ms(fn, rep, grads=()):
    import triton.testing

    if DEVICE == "cpu":  # smoke run: one call, wall clock
        t = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - t)
    return float(triton.testing.do_bench(fn, warmup=max(5, rep // 4), rep=rep, grad_to_none=list(grads)))


_FLEX = {}


def _flex():
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    if "fn" not in _FLEX:  # one dynamic-shape compile per head dim instead of one per length
        _FLEX["fn"] = flex_attention if DEVICE == "cpu" else torch.compile(flex_attention, dynamic=True)
    return _FLEX["fn"]


def bench_case(name, kind, L, D, heads=16, rep=40):
    """Markdown rows of one (case, length, head dim)."""
    import torch
    import torch.nn.functional as F

    import maskc as mc
    from maskc.backends.triton_backend import attention_triton
    from maskc.export.flex import to_flex_block_mask

    p = pattern(name, L)
    lay = mc.compile(p, q_len=L, block=BLOCK)
    leaves = [x.requires_grad_() for x in _qkv(1, heads, heads, L, D, torch.bfloat16)]
    plain = [x.detach() for x in leaves]  # forward timings: no autograd bookkeeping
    dout = torch.randn_like(plain[0])
    scale = 1.0 / math.sqrt(D)
    sparse = 4.0 * heads * lay.nnz_blocks * BLOCK * BLOCK * D
    causal = kind == "planner"
    dense = 4.0 * heads * L * L * D * (0.5 if causal else 1.0)
    fns = {"maskc-triton": (lambda q, k, v: attention_triton(q, k, v, lay, scale=scale)[0], sparse)}
    if kind == "sparse":
        bm = to_flex_block_mask(lay, DEVICE)
        flex = _flex()
        fns["flex"] = (lambda q, k, v: flex(q, k, v, block_mask=bm, scale=scale), sparse)
    else:
        from maskc.planner import plan

        gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else ""
        pl = plan(p, L, block=BLOCK, head_dim=D, device="h200" if "H200" in gpu else "h100")
        fns["maskc-plan"] = (lambda q, k, v: pl.run(q, k, v, scale=scale), sparse)
    fns["sdpa-dense" + (" causal" if causal else "")] = (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=scale, is_causal=causal), dense)
    res = {}
    for label, (fn, flops) in fns.items():
        with torch.no_grad():
            f = _ms(lambda: fn(*plain), rep)
        try:
            fb = _ms(lambda: fn(*leaves).backward(dout), rep, leaves)
        except Exception:  # e.g. no backward on this device: report the forward only
            fb = float("nan")
        res[label] = (f, flops / f / 1e9, fb, 3.5 * flops / fb / 1e9)
    ref = res.get("flex")
    dn = [v for key, v in res.items() if key.startswith("sdpa")][0]
    rows = []
    for label, (f, tf, fb, tfb) in res.items():
        vs_flex = (f"{ref[0] / f:.2f}x", f"{ref[2] / fb:.2f}x") if ref else ("-", "-")  # flex time / time
        vs_dense = f"{tf / dn[1]:.0%} / {tfb / dn[3]:.0%} TFLOP/s, {dn[0] / f:.1f}x / {dn[2] / fb:.1f}x time"
        rows.append(f"| {name} | {L} | {D} | {100 * lay.block_density:.2f}% | {label} | {f:.3f} | {tf:.0f} | "
                    f"{fb:.3f} | {tfb:.0f} | {vs_flex[0]} | {vs_flex[1]} | {vs_dense} |")
    return rows
