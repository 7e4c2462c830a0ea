"""CPU benchmark: maskc's scipy backend vs torch's dense scaled_dot_product_attention.

Pattern: causal sliding window of 128 keys, ``causal() & window(127)``, plus 2 global
key tokens: density about 0.8% at 16,384 tokens (block 128 for the layout). Same float32
inputs for both; SDPA runs dense without a mask and with ``is_causal=True`` (its fastest
forms; a boolean mask would only make it slower). Median of ``--runs`` runs after one
warm-up, under ``torch.inference_mode``. Prints a markdown table; writes nothing.

    python benchmarks/scipy_vs_sdpa.py [--len 16384] [--head-dim 64] [--heads 1,4] [--runs 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import maskc as mc
from maskc.backends import attention


def median_time(fn, runs: int, warmup: bool = True) -> float:
    if warmup:
        fn()  # warm-up (builds the token CSR / first-touch memory)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--len", type=int, default=16384)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--heads", default="1,4", help="comma-separated head counts (default 1,4: fits in 2 min)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--block", type=int, default=128)
    args = ap.parse_args()
    N, D = args.len, args.head_dim
    pattern = mc.causal() & (mc.window(127) | mc.global_tokens(2))
    t = time.perf_counter()
    layout = mc.compile(pattern, q_len=N, block=args.block)
    t_compile = time.perf_counter() - t
    print(f"pattern {pattern.text()}  N={N}  head_dim={D}  density={100 * layout.density:.3f}%  "
          f"nnz/row={layout.nnz / N:.1f}  compile {t_compile:.2f}s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rng = np.random.default_rng(0)
    print()
    print("| heads | scipy (s) | SDPA dense fp32 (s) | SDPA is_causal (s) | SDPA / scipy | causal SDPA / scipy "
          "| scipy max abs err vs float64 |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for H in (int(h) for h in args.heads.split(",")):
        q, k, v = (rng.standard_normal((1, H, N, D), dtype=np.float32) for _ in range(3))
        qt, kt, vt = (torch.from_numpy(x) for x in (q, k, v))
        t_sp = median_time(lambda: attention(q, k, v, layout, backend="scipy"), args.runs)
        with torch.inference_mode():
            small = qt[:, :, :256]  # warm SDPA on a small input: a full-size warm-up costs a whole run
            torch.nn.functional.scaled_dot_product_attention(small, small, small)
            torch.nn.functional.scaled_dot_product_attention(small, small, small, is_causal=True)
            sdpa = torch.nn.functional.scaled_dot_product_attention
            t_sd = median_time(lambda: sdpa(qt, kt, vt), args.runs, warmup=False)
            t_sc = median_time(lambda: sdpa(qt, kt, vt, is_causal=True), args.runs, warmup=False)
        # correctness spot check on 64 rows against a masked float64 computation
        out = attention(q, k, v, layout, backend="scipy")
        rows = np.linspace(0, N - 1, 64).astype(int)
        err = 0.0
        for i in rows:
            js = np.flatnonzero((np.arange(N) <= i) & ((i - np.arange(N) <= 127) | (np.arange(N) < 2)))
            s = k[0, 0, js].astype(np.float64) @ q[0, 0, i] / np.sqrt(D)
            w = np.exp(s - s.max())
            err = max(err, float(np.abs((w / w.sum()) @ v[0, 0, js] - out[0, 0, i]).max()))
        print(f"| {H} | {t_sp:.3f} | {t_sd:.3f} | {t_sc:.3f} | {t_sd / t_sp:.1f}x | {t_sc / t_sp:.1f}x "
              f"| {err:.1e} (head 0, 64 rows) |")


if __name__ == "__main__":
    main()
