"""GPU benchmark for the planner (issue 6): dense SDPA, FlexAttention, maskc plan.

Patterns (token level unless noted): πAttention ring 64 + π-step 16 as two gated
components (two attentions, y = g*y_local + (1-g)*y_pi) and as one union; squares +
window 64; Mian-Chowla + window 64; causal PrimeBird token-level and block-level.
Sizes 8K..128K, bf16, head_dim 64 and 128, forward and forward+backward. Prints a
markdown table; exits with a clear message (status 0) when CUDA is absent.

    python benchmarks/planner_gpu.py                          # full sweep
    python benchmarks/planner_gpu.py --sizes 32768 --head-dims 64 --no-flex

Dense SDPA is skipped where the dense causal baseline would not fit; FlexAttention gets a
BlockMask built from the maskc Layout (never create_block_mask at these sizes).
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import maskc as mc
from maskc.planner import plan


def bench(fn, warmup: int = 2, iters: int = 5) -> float:
    """Median milliseconds with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def cases(block: int):
    pb = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    local = mc.causal() & mc.window(64)
    pi = mc.causal() & mc.stride(16)
    return {
        "πAttention union": [mc.causal() & (mc.window(64) | mc.stride(16))],
        "πAttention gated (2 comps)": [local, pi],
        "squares + window": [mc.causal() & (mc.window(64) | mc.offsets("squares"))],
        "Mian-Chowla + window": [mc.causal() & (mc.window(64) | mc.offsets("mian_chowla"))],
        "PrimeBird token": [pb],
        "PrimeBird block": [pb.at_block_level(block)],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384, 32768, 65536, 131072])
    ap.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-bwd", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("planner_gpu.py: no CUDA device; GPU results are pending (see docs/planner.md). Nothing run.")
        return 0
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    profile = "h200" if "H200" in name else "h100"
    print(f"{name}, torch {torch.__version__}, bf16, batch 1, heads {args.heads}, cost profile {profile}")
    print()
    print("| case | N | D | pass | dense SDPA ms | flex ms | plan ms | plan vs SDPA | plan parts | est ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for D in args.head_dims:
        for N in args.sizes:
            torch.manual_seed(0)
            H = args.heads
            q, k, v = (torch.randn(1, H, N, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
            try:
                t_sdpa = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            except torch.OutOfMemoryError:
                t_sdpa = float("nan")
            qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
            t_sdpa_b = float("nan")
            if not args.no_bwd:
                try:
                    t_sdpa_b = bench(lambda: F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).sum().backward())
                except torch.OutOfMemoryError:
                    pass
            for cname, pats in cases(args.block).items():
                plans = [plan(p, N, block=args.block, head_dim=D, device=profile) for p in pats]
                gate = torch.sigmoid(torch.randn(1, H, N, 1, device=dev, dtype=torch.bfloat16))

                def run(qq, kk, vv):
                    ys = [pl.run(qq, kk, vv) for pl in plans]
                    return ys[0] if len(ys) == 1 else gate * ys[0] + (1 - gate) * ys[1]

                t_flex = float("nan")
                if not args.no_flex:
                    try:
                        from maskc.backends import attention

                        lays = [mc.compile(p, N, block=args.block) for p in pats]
                        t_flex = bench(lambda: [attention(q, k, v, lay, backend="flex") for lay in lays])
                    except Exception as e:  # flex unavailable or failed: report, keep going
                        print(f"<!-- flex failed for {cname} N={N}: {type(e).__name__}: {e} -->", file=sys.stderr)
                with torch.no_grad():
                    t_plan = bench(lambda: run(q, k, v))
                parts = " + ".join(f"{p.name}:{p.lowering}" for pl in plans for p in pl.parts)
                est = sum(pl.estimated_seconds for pl in plans) * H * 1e3
                print(f"| {cname} | {N} | {D} | fwd | {t_sdpa:.3f} | {t_flex:.3f} | {t_plan:.3f} | "
                      f"{t_sdpa / t_plan:.2f}x | {parts} | {est:.3f} |", flush=True)
                if not args.no_bwd:
                    t_plan_b = bench(lambda: run(qg, kg, vg).sum().backward())
                    print(f"| {cname} | {N} | {D} | fwd+bwd | {t_sdpa_b:.3f} | | {t_plan_b:.3f} | "
                          f"{t_sdpa_b / t_plan_b:.2f}x | {parts} | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
