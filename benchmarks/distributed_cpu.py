"""Measured on CPU: maskc.distributed vs all-gather context parallelism, 4 gloo processes.

Both run the same local backend (``maskc.distributed.local.local_attention``) on the same
sharding (``maskc.distributed.plan``): all-gather CP gathers every rank's keys and values
(``torch.distributed.nn.functional.all_gather``, whose backward reduces dK / dV back), then
attends its queries to the full sequence; maskc.distributed moves only the key blocks the
layout reads, overlapped with the local part. Prints a markdown table of the best of
``--repeat`` wall times (rank 0's, after a barrier) for the forward pass and for forward +
backward, float32, one thread per process.

    python benchmarks/distributed_cpu.py                       # 32K tokens, 4 processes
    python benchmarks/distributed_cpu.py --tokens 8192 --repeat 1 --patterns window
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import maskc as mc
import maskc.distributed as md
from maskc.distributed.local import local_attention
from maskc.distributed.views import sub_layout

BLOCK = 128


def patterns(n: int) -> dict[str, mc.Layout]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from distributed_plan import document_lengths

    primes = mc.causal() & (mc.block_level(mc.window(0) | mc.offsets("primes"), BLOCK) | mc.global_tokens(2))
    return {
        "causal window 4K": mc.causal() & mc.window(4096),
        "documents 4K-8K (causal)": mc.document_mask(document_lengths(n, 4096, 8192)),
        "block-level PrimeBird": primes,
        "πAttention (ring 64 + doubling π-step 16)": mc.pi_attention_union(r=64, period=16, variant="doubling",
                                                                           causal=True),
        "BigBird (3 window, 1 global, 3 random blocks)": mc.bigbird(window=3, global_tokens=BLOCK, random_blocks=3,
                                                                   block=BLOCK),
    }


def allgather_attention(q, k, v, dp, rows_layout, scale):
    """All-gather CP: every rank's k / v gathered, the rank's rows against the whole sequence."""
    from torch.distributed.nn.functional import all_gather

    k_full = dp.unshard(list(all_gather(k)))
    v_full = dp.unshard(list(all_gather(v)))
    return local_attention(q, k_full, v_full, rows_layout, scale=scale)[0]


def rows_of(dp, rank):
    """The rank's query rows against every key block, in global key order."""
    lay = dp.layout
    sel = np.flatnonzero(dp.owner[lay.block_row] == rank)
    n_r = int(dp.tokens_per_rank[rank])
    return sub_layout(lay, sel, dp.local_index[lay.block_row[sel]], lay.col_idx[sel], n_r, lay.kv_len)


def best(fn, repeat):
    fn()  # warm-up (caches, first messages)
    times = []
    for _ in range(repeat):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        dist.barrier()
        times.append(time.perf_counter() - t0)
    return min(times)


def worker(rank, world, store, args):
    warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather is deprecated", FutureWarning)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    n, H, D = args.tokens, args.heads, args.head_dim
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, H, n, D, generator=g) for _ in range(3))
    if rank == 0:
        print(f"torch {torch.__version__}, {world} gloo processes x 1 thread, {n:,} tokens, batch 1, {H} heads, "
              f"head_dim {D}, float32, block {BLOCK}; best of {args.repeat}\n")
        print("| pattern | strategy | imbalance | maskc recv (max rank) | all-gather recv | maskc fwd s | "
              "all-gather fwd s | speed-up | maskc fwd+bwd s | all-gather fwd+bwd s | speed-up |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for name, pat in patterns(n).items():
        if args.patterns and not any(p in name for p in args.patterns):
            continue
        lay = mc.compile(pat, q_len=n, block=BLOCK)
        dp = md.plan(lay, world, head_dim=D, dtype="float32", kv_heads=H)
        rows = rows_of(dp, rank)
        ql, kl, vl = (dp.shard(x, rank) for x in (q, k, v))
        s = D ** -0.5

        def fwd_maskc():
            with torch.no_grad():
                md.attention(ql, kl, vl, dp, scale=s)

        def fwd_ag():
            with torch.no_grad():
                allgather_attention(ql, kl, vl, dp, rows, s)

        def fb(run):
            def step():
                a, b, c = (x.clone().requires_grad_(True) for x in (ql, kl, vl))
                run(a, b, c).sum().backward()
            return step

        t = [best(fwd_maskc, args.repeat), best(fwd_ag, args.repeat),
             best(fb(lambda a, b, c: md.attention(a, b, c, dp, scale=s)), args.repeat),
             best(fb(lambda a, b, c: allgather_attention(a, b, c, dp, rows, s)), args.repeat)]
        if rank == 0:
            rep = dp.report()
            mib = 2**20
            print(f"| {name} | {rep['strategy']} | {rep['imbalance']:.3f} | {max(rep['bytes_received']) / mib:.1f} MiB | "
                  f"{max(rep['allgather_bytes_received']) / mib:.1f} MiB | {t[0]:.2f} | {t[1]:.2f} | {t[1] / t[0]:.2f}x | "
                  f"{t[2]:.2f} | {t[3]:.2f} | {t[3] / t[2]:.2f}x |", flush=True)
    dist.destroy_process_group()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--patterns", nargs="*", default=None, help="substrings of pattern names to keep")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(worker, args=(args.world, os.path.join(d, "store"), args), nprocs=args.world)


if __name__ == "__main__":
    main()
