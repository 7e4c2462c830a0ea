#!/usr/bin/env python
"""Measure the source documents' claims (docs/claims.md) on compiled maskc layouts.

For each pattern: mean keys per row at several N, the fitted growth exponent of
nnz(N) (least squares of log nnz on log N; dense causal = 2, O(N log N) ≈ 1.1 over this
range), and the fraction of non-empty causal blocks at 64- and 128-token tiles.

Usage:
    python scripts/measure_claims.py [--sizes 1024 2048 4096 8192 16384] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import maskc as mc
from maskc.patterns import library as lib


def patterns() -> dict[str, mc.Pattern]:
    return {
        "dense causal": mc.causal(),
        "prime_bird": lib.prime_bird(),
        "square_bird": lib.square_bird(),
        "mian_chowla_bird": lib.mian_chowla_bird(),
        "pi_step(16) causal": lib.pi_step(16, causal=True),
        "pi_ring(32) causal": lib.pi_ring(32, causal=True),
        "pi_step(16) | pi_ring(32), causal": lib.pi_attention_union(r=32, period=16, causal=True),
        "block-level primes (b=128)": mc.causal() & (mc.window(1) | mc.offsets("primes")).at_block_level(128),
        "twin_primes": lib.twin_primes(),
        "arithmetic_progression": lib.arithmetic_progression(),
        "goldbach": lib.goldbach(),
        "mersenne": lib.mersenne(),
        "sieve": lib.sieve(),
        "riemann_zeros K=64": lib.riemann_zeros(),
        "prime_gaps": lib.prime_gaps(),
        "quadratic_residue": lib.quadratic_residue(),
        "prime_powers": lib.prime_powers(),
    }


def causal_blocks(n: int, b: int) -> int:
    nb = -(-n // b)
    return nb * (nb + 1) // 2


def measure(sizes: list[int]) -> dict:
    out = {}
    for name, p in patterns().items():
        t0 = time.perf_counter()
        nnz, keys = [], []
        for n in sizes:
            lay = mc.compile(p, n, block=128)
            nnz.append(lay.nnz)
            keys.append(lay.nnz / n)
        slope = float(np.polyfit(np.log(sizes), np.log(nnz), 1)[0])
        n_blk = sizes[-1]
        frac = {}
        for b in (64, 128):
            lay = mc.compile(p, n_blk, block=b)
            frac[b] = lay.nnz_blocks / causal_blocks(n_blk, b)
        out[name] = {"sizes": sizes, "nnz": nnz, "keys_per_row": keys, "exponent": slope,
                     "block_fraction": frac, "block_n": n_blk, "seconds": time.perf_counter() - t0}
        print(f"{name:<36} keys/row {' '.join(f'{k:8.1f}' for k in keys)}  exp {slope:.3f}  "
              f"blocks@64 {frac[64]:.3f} @128 {frac[128]:.3f}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    res = measure(sorted(args.sizes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
