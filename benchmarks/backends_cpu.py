"""CPU inference through each backend that takes torch tensors: why ``auto`` picks the torch backend.

Forward only (``torch.no_grad()``), float32, batch 4, 4 heads, head_dim 16, block 128; each
figure is the median of ``--runs`` warm calls, backends timed round-robin in one process.

    python benchmarks/backends_cpu.py
    python benchmarks/backends_cpu.py --sizes 1024 --runs 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import maskc as mc


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default="torch,flex,reference")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [b for b in args.backends.split(",") if mc.backends.available()[b][0]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, batch 4, heads 4, head_dim 16, "
          f"block 128, median of {args.runs}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| N | pattern | " + " | ".join(f"{n} ms" for n in names) + " | " +
          " | ".join(f"{n} / torch" for n in names if n != "torch") + " |")
    print("|---|---|" + "---|" * (2 * len(names) - 1))
    torch.manual_seed(0)
    for N in args.sizes:
        for label, pat in (("causal window 128", mc.causal() & mc.window(128)), ("causal", mc.causal())):
            lay = mc.compile(pat, N, block=128)
            q, k, v = (torch.randn(4, 4, N, 16) for _ in range(3))
            times: dict[str, list[float]] = {n: [] for n in names}
            with torch.no_grad():
                for n in names:
                    mc.attention(q, k, v, lay, backend=n)  # warm-up
                for _ in range(args.runs):
                    for n in names:
                        t0 = time.perf_counter()
                        mc.attention(q, k, v, lay, backend=n)
                        times[n].append(time.perf_counter() - t0)
            med = {n: statistics.median(t) for n, t in times.items()}
            print(f"| {N} | {label} | " + " | ".join(f"{med[n] * 1e3:.0f}" for n in names) + " | " +
                  " | ".join(f"{med[n] / med['torch']:.1f}x" for n in names if n != "torch") + " |", flush=True)


if __name__ == "__main__":
    main()
