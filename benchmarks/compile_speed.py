"""Compile time and peak memory of mc.compile vs torch's create_block_mask (CPU).

Patterns: causal PrimeBird at token level (window 3, 2 global tokens, prime offsets),
block-level primes (+ diagonal blocks + global tokens), and causal stride 64. Each
(pattern, length) is measured in a fresh subprocess (numba's on-disk cache warm), so
peak memory is that compile's own: the increase of the process's peak RSS (VmHWM)
over its peak just before compiling. torch.nn.attention.flex_attention.create_block_mask
runs on the same pattern up to --max-torch tokens, and its full / partial block lists
are checked equal to maskc's.

Usage:
    python benchmarks/compile_speed.py                       # 4K .. 1M, torch up to 32K
    python benchmarks/compile_speed.py --sizes 4096 32768 --max-torch 8192
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PATTERNS = {
    "prime_bird": "causal() & (window(3) | global_tokens(2) | offsets('primes'))",
    "block_primes": "causal() & (block_level(window(0) | offsets('primes'), 128) | global_tokens(2))",
    "stride64": "causal() & (window(63) | stride(64))",
}

_CHILD = r"""
import json, sys, time
import maskc as mc

def hwm_kib():  # peak RSS of this process image (ru_maxrss would inherit the parent's peak across exec)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

expr, n, block, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
p = mc.parse(expr)
mc.compile(p, 2048, block=block, cache=False)          # warm numba (disk cache)
rss0 = hwm_kib()
times = []
for _ in range(reps):
    t = time.perf_counter(); lay = mc.compile(p, n, block=block, cache=False); times.append(time.perf_counter() - t)
    if _ < reps - 1:
        del lay
peak = hwm_kib()
print(json.dumps(dict(seconds=min(times), peak_mib=(peak - rss0) / 1024, blocks=lay.nnz_blocks,
                      full=lay.n_full, partial=lay.n_partial, masks=lay.n_unique_masks, nbytes=lay.nbytes)))
"""


def run_maskc(expr: str, n: int, block: int, reps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, expr, str(n), str(block), str(reps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_mask_mod(name: str, n: int):
    import torch

    from maskc.patterns.sequences import prime_sieve

    is_prime = torch.from_numpy(prime_sieve(n))
    if name == "prime_bird":
        def mask_mod(b, h, q, k):
            d = q - k
            return (d >= 0) & ((d <= 3) | (k < 2) | (q < 2) | is_prime[d.clamp(min=0)])
    elif name == "block_primes":
        def mask_mod(b, h, q, k):
            db = q // 128 - k // 128
            return (q >= k) & ((db == 0) | is_prime[db.clamp(min=0)] | (k < 2) | (q < 2))
    else:
        def mask_mod(b, h, q, k):
            d = q - k
            return (d >= 0) & ((d <= 63) | (d % 64 == 0))
    return mask_mod


def run_torch(name: str, n: int, block: int):
    """create_block_mask time, and whether its full / partial lists equal maskc's."""
    import numpy as np
    from torch.nn.attention.flex_attention import create_block_mask

    import maskc as mc

    t = time.perf_counter()
    bm = create_block_mask(torch_mask_mod(name, n), None, None, n, n, device="cpu", BLOCK_SIZE=block)
    seconds = time.perf_counter() - t
    n_b = -(-n // block)

    def grid(num, idx, value, g):
        num, idx = num[0, 0].numpy(), idx[0, 0].numpy()
        for r in range(n_b):
            g[r, idx[r, : num[r]]] = value

    g_torch = np.zeros((n_b, n_b), np.int8)
    grid(bm.kv_num_blocks, bm.kv_indices, 1, g_torch)
    grid(bm.full_kv_num_blocks, bm.full_kv_indices, 2, g_torch)
    lay = mc.compile(mc.parse(PATTERNS[name]), n, block=block)
    g_ours = np.zeros((n_b, n_b), np.int8)
    g_ours[lay.block_row, lay.col_idx] = lay.kind
    # FlexAttention lists a FULL block of a ragged tail as partial; lengths here are multiples of the block
    return seconds, bool(np.array_equal(g_torch, g_ours))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 32768, 131072, 1048576])
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--max-torch", type=int, default=32768, help="largest length for create_block_mask")
    ap.add_argument("--reps", type=int, default=3, help="compiles per point (the minimum is reported)")
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    args = ap.parse_args()
    print(f"# compile speed, {os.cpu_count()} CPU cores, block {args.block}\n")
    print("| pattern | tokens | maskc s | maskc peak MiB | blocks | full | partial | unique masks | "
          "create_block_mask s | speed-up | same classification |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.patterns:
        for n in args.sizes:
            r = run_maskc(PATTERNS[name], n, args.block, args.reps)
            ts, same, ratio = "-", "-", "-"
            if n <= args.max_torch:
                tsec, eq = run_torch(name, n, args.block)
                ts, same, ratio = f"{tsec:.2f}", "yes" if eq else "NO", f"{tsec / r['seconds']:.0f}x"
            print(f"| {name} | {n:,} | {r['seconds']:.3f} | {r['peak_mib']:.0f} | {r['blocks']:,} | {r['full']:,} | "
                  f"{r['partial']:,} | {r['masks']:,} | {ts} | {ratio} | {same} |", flush=True)


if __name__ == "__main__":
    main()
