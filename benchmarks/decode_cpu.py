"""CPU decode step: ``mc.decode_attention`` vs ``F.scaled_dot_product_attention`` on the KV cache.

One query row (position L - 1) of B = 4 sequences, H = 8 query heads, 2 KV heads (GQA),
head_dim 64, float32, over a cache of L keys. Variants, timed round-robin (one call of each
in turn, so load changes hit all alike), the minimum of ``--repeats`` calls reported, ratios
from the same run:

* ``sdpa causal``: SDPA over every cached key (``enable_gqa=True``): what a dense model does;
* ``sdpa + dense mask``: SDPA with the pattern's row as a bool mask (the same result as maskc);
* ``maskc step``: ``decode_attention`` at a new position each call (the pattern's row is
  evaluated: what the first layer of a step pays);
* ``maskc layer``: the same position again (the keys are cached: every later layer of a step);
* ``maskc rows only``: evaluating the row from the pattern (``decode_keys``), no attention;
* ``mc.compile of the row``: what compiling the same row instead would cost
  (``mc.compile(pattern, 1, L, q_offset=L - 1, block=(16, 128))``, uncached);
* ``maskc backend=torch``: the rows compiled (``mc.compile(q_offset=L-1)``) and run on the
  block-sparse torch backend (only up to ``--torch-max``: it moves the whole cache).

    python benchmarks/decode_cpu.py                       # L = 4K, 16K, 64K
    python benchmarks/decode_cpu.py --lengths 4096 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

import maskc as mc
from maskc.decode.keys import clear_cache, decode_keys

B, H, HKV, D = 4, 8, 2, 64


def patterns() -> dict[str, mc.Pattern]:
    return {"causal window 128": mc.causal() & mc.window(128), "prime_bird": mc.prime_bird()}


def _timer(fn):
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def variants(L: int, name: str, pattern: mc.Pattern, args) -> dict[str, callable]:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, 1, D, generator=g)
    k, v = (torch.randn(B, HKV, L, D, generator=g) for _ in range(2))
    row = torch.from_numpy(pattern.dense(1, L, q_offset=L - 1)[0])  # [1, L]
    step = iter(range(10**9))

    def fresh() -> None:  # a new position each call: the row is evaluated from the pattern
        clear_cache()
        mc.decode_attention(q, k, v, pattern, position=L - 1 - next(step) % 64)

    out = {
        "sdpa causal (all keys)": _timer(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)),
        "sdpa + dense mask": _timer(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=row, enable_gqa=True)),
        "maskc step (row evaluated)": _timer(fresh),
        "maskc layer (row cached)": _timer(lambda: mc.decode_attention(q, k, v, pattern, position=L - 1)),
        "maskc rows only": _timer(lambda: (clear_cache(), decode_keys(pattern, 1, None, L - 1 - next(step) % 64))),
        "mc.compile of the row (for comparison)": _timer(
            lambda: mc.compile(pattern, 1, L, q_offset=L - 1, block=(16, 128), cache=False)),
    }
    if L <= args.torch_max:
        out["maskc backend=torch (compiled rows)"] = _timer(
            lambda: mc.decode_attention(q, k, v, pattern, position=L - 1, backend="torch"))
    return out


def run_length(L: int, args) -> list[str]:
    rows = []
    for pname, pattern in patterns().items():
        vs = variants(L, pname, pattern, args)
        for fn in vs.values():  # warm-up
            fn()
        times = {n: [] for n in vs}
        for _ in range(args.repeats):
            for n, fn in vs.items():
                times[n].append(fn())
        best = {n: min(t) for n, t in times.items()}
        base = best["sdpa causal (all keys)"]
        keys = decode_keys(pattern, 1, None, L - 1).n_keys
        for n in vs:
            ratio = "" if n.startswith(("sdpa causal", "maskc rows", "mc.compile")) else f"{base / best[n]:.2f}x"
            rows.append(f"| {L} | {pname} ({keys} keys) | {n} | {best[n] * 1e3:.3f} | {ratio} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torch-max", type=int, default=16384, help="largest L for the backend='torch' variant")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, B={B}, H={H}, Hkv={HKV}, "
          f"D={D}, one query row at position L-1, min of {args.repeats} calls, round-robin, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| L | pattern | variant | ms / call | speed-up vs SDPA causal |")
    print("|---|---|---|---|---|")
    for L in args.lengths:
        for row in run_length(L, args):
            print(row, flush=True)


if __name__ == "__main__":
    main()
