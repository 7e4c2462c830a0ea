"""CPU benchmark: dense SDPA vs maskc's plan on the issue's patterns (float32, head_dim 64).

Prints a markdown table. Plan construction is timed separately (it is done once per
shape); the timed region is attention only. Each time is the best of ``--repeat`` runs.

    python benchmarks/planner_cpu.py                      # 4K, 8K, 16K forward; fwd+bwd at 4K, 8K
    python benchmarks/planner_cpu.py --sizes 4096 --bwd-sizes 4096 --repeat 1
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import maskc as mc
from maskc.planner import plan
from maskc.planner.cost import best_time


def patterns(block: int) -> dict[str, mc.Pattern]:
    pb = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    return {
        "πAttention union (ring 64 + π-step 16), causal": mc.causal() & (mc.window(64) | mc.stride(16)),
        "squares + window 64, causal": mc.causal() & (mc.window(64) | mc.offsets("squares")),
        "Mian-Chowla + window 64, causal": mc.causal() & (mc.window(64) | mc.offsets("mian_chowla")),
        "PrimeBird token-level (w 3, 2 global, primes)": pb,
        f"PrimeBird block-level ({block})": pb.at_block_level(block),
    }


def best(fn, repeat: int) -> float:
    """Best of ``repeat`` timed calls, no warm-up call (each call at 16K takes seconds)."""
    return best_time(fn, repeat, warmup=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--bwd-sizes", type=int, nargs="*", default=[4096, 8192])
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    D = args.head_dim
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32, batch 1, heads 1, head_dim {D}")
    print()
    print("| pattern | N | pass | dense SDPA (causal) ms | plan ms | speed-up | plan parts | plan build s |")
    print("|---|---|---|---|---|---|---|---|")
    for N in args.sizes:
        q = torch.randn(1, 1, N, D)
        k = torch.randn(1, 1, N, D)
        v = torch.randn(1, 1, N, D)
        with torch.no_grad():
            t_dense = best(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), args.repeat)
        t_dense_b = None
        if N in args.bwd_sizes:
            qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))

            def dense_fb():
                F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).sum().backward()

            t_dense_b = best(dense_fb, args.repeat)
        for name, pat in patterns(args.block).items():
            t0 = time.perf_counter()
            pl = plan(pat, N, block=args.block, head_dim=D, device="cpu")
            t_build = time.perf_counter() - t0
            parts = " + ".join(f"{p.name}:{p.lowering}" for p in pl.parts)
            with torch.no_grad():
                t_plan = best(lambda: pl.run(q, k, v), args.repeat)
            print(f"| {name} | {N} | fwd | {t_dense * 1e3:.0f} | {t_plan * 1e3:.0f} | {t_dense / t_plan:.2f}x | "
                  f"{parts} | {t_build:.2f} |", flush=True)
            if t_dense_b is not None:
                qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))

                def plan_fb():
                    pl.run(qg, kg, vg).sum().backward()

                t_plan_b = best(plan_fb, args.repeat)
                print(f"| {name} | {N} | fwd+bwd | {t_dense_b * 1e3:.0f} | {t_plan_b * 1e3:.0f} | "
                      f"{t_dense_b / t_plan_b:.2f}x | {parts} | |", flush=True)


if __name__ == "__main__":
    main()
