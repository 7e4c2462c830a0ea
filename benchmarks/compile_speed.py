"""Compile time of mc.compile per pattern family, and against torch's create_block_mask (CPU).

Three tables, printed as markdown:

1. **Families** at 128K / 1M / 4M tokens (block 128; a size is skipped where the output
   does not fit in --max-bytes): the first compile at that size in a fresh process (after
   one compile of the same pattern at 64K tokens has loaded the kernels from numba's disk
   cache) and the best of --reps later ones, the output blocks, ns per output block, and
   the work counters (runs the row walk made, blocks whose bits were evaluated).
2. **Document masks** with realistic lengths (documents of 16K-32K tokens, seeded) at 32K
   to 1M tokens, against ``create_block_mask`` (eager, and ``_compile=True``) up to
   where it finishes within --torch-limit seconds; the full / partial block lists are
   compared.
3. **A training step's batch**: B sequences of N tokens with fresh random document
   boundaries every step (a B-dimension mask), maskc vs ``create_block_mask``.
4. **Cold start** (not run by default): the best of --reps fresh processes for
   ``import maskc``, the first compile of ``causal() & window(64)`` at 4096 tokens, and
   ``maskc info "causal() & window(64)" --len 4096``.

Every point of table 1 runs in its own subprocess, so a "first" time is a first call; "of which
system ms" is the kernel time of that call (``getrusage``): the first touch of fresh output
memory, mostly, which depends on how much free memory (and free huge pages) the machine has.

Usage:
    python benchmarks/compile_speed.py                     # everything (about 15 minutes on 2 cores)
    python benchmarks/compile_speed.py --tables 1 --sizes 131072 1048576 --reps 3
    python benchmarks/compile_speed.py --tables 1 --sizes 1048576 --families "sums in a window"
    python benchmarks/compile_speed.py --tables 4 --reps 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

BLOCK = 128

def document_lengths(n: int, seed: int = 0, lo: int = 16384, hi: int = 32768) -> list[int]:
    """Document lengths drawn uniformly from [lo, hi] until they cover n tokens (the last cut)."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < n:
        d = min(int(rng.integers(lo, hi + 1)), n - total)
        out.append(d)
        total += d
    return out


def _families() -> dict:
    """family name -> (length -> pattern)."""
    import maskc as mc

    return {
        "documents (64 equal)": lambda n: mc.document_mask([n // 64] * 64),
        "documents (16K-32K)": lambda n: mc.document_mask(document_lengths(n)),
        "causal window 1024": lambda n: mc.causal() & mc.window(1024),
        "chunked causal 4096": lambda n: mc.chunked_causal(4096),
        "longformer 512 + 64 global": lambda n: mc.longformer(512, 64, causal=True),
        "sparse transformer strided 64": lambda n: mc.causal() & (mc.window(63) | mc.stride(64)),
        "prime_bird (offsets)": lambda n: mc.prime_bird(),
        "prime_bird at block level": lambda n: mc.causal() & (mc.block_level(mc.window(0) | mc.offsets("primes"), 128)
                                                              | mc.global_tokens(2)),
        "sums in a window": lambda n: mc.window(2048, 2048) & mc.sums(range(0, 1 << 40, 512)),
        "documents & window | global": lambda n: mc.document_mask(document_lengths(n)) & mc.window(4096)
        | mc.global_tokens(64),
    }


FAMILY_NAMES = ["documents (64 equal)", "documents (16K-32K)", "causal window 1024", "chunked causal 4096",
                "longformer 512 + 64 global", "sparse transformer strided 64", "prime_bird (offsets)",
                "prime_bird at block level", "sums in a window", "documents & window | global"]


def child(spec: dict) -> dict:
    """One point of table 1, in a fresh process: first call, then the best of reps."""
    import maskc as mc
    from maskc.compiler import last_stats

    make = _families()[spec["family"]]
    mc.compile(make(1 << 16), 1 << 16, block=BLOCK, cache=False)  # load this pattern's kernels from numba's disk cache
    p = make(spec["n"])
    out = {}
    try:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        lay = mc.compile(p, spec["n"], block=BLOCK, cache=False, max_bytes=spec["max_bytes"])
        out["first"] = time.perf_counter() - t
        # time the operating system spent on the call (first touch of fresh memory, mostly)
        out["first_sys"] = resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0.ru_stime
    except mc.TooLargeError as e:
        return {"skipped": str(e)[:120]}
    times = []
    for _ in range(spec["reps"]):
        del lay
        t = time.perf_counter()
        lay = mc.compile(p, spec["n"], block=BLOCK, cache=False, max_bytes=spec["max_bytes"])
        times.append(time.perf_counter() - t)
    st = last_stats()
    out.update(best=min(times), blocks=lay.nnz_blocks, full=lay.n_full, partial=lay.n_partial,
               masks=lay.n_unique_masks, runs=st.row_runs, keys=st.keys, stages=st.seconds)
    return out


def run_child(spec: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if res.returncode:
        return {"skipped": res.stderr.strip().splitlines()[-1][:120]}
    return json.loads(res.stdout.strip().splitlines()[-1])


STAGES = ("program", "tables", "walk", "bits", "finalize")


def table_families(sizes: list[int], reps: int, max_bytes: int, names: list[str]) -> None:
    print("| pattern | tokens | first call ms | of which system ms | best ms | output blocks | ns / block (best) | "
          "row-walk runs | blocks evaluated | target ms (50 + 20 ns/block) | first / best within | "
          "ms in " + " / ".join(STAGES) + " (last run) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in names:
        cell = name.replace("|", "\\|")  # a pattern's | would end the markdown cell
        for n in sizes:
            r = run_child({"family": name, "n": n, "reps": reps, "max_bytes": max_bytes})
            if "skipped" in r:
                print(f"| {cell} | {n:,} | - | - | - | does not fit: {r['skipped'][:60]} | | | | | | |", flush=True)
                continue
            target = 50 + 20e-6 * r["blocks"]
            within = "/".join("yes" if t * 1e3 <= target else "no" for t in (r["first"], r["best"]))
            print(f"| {cell} | {n:,} | {r['first'] * 1e3:.1f} | {r['first_sys'] * 1e3:.0f} | {r['best'] * 1e3:.1f} | {r['blocks']:,} | "
                  f"{r['best'] * 1e9 / r['blocks']:.1f} | {r['runs']:,} | {r['keys']:,} | {target:.0f} | {within} | "
                  + " / ".join(f"{r['stages'].get(k, 0) * 1e3:.1f}" for k in STAGES) + " |", flush=True)


def _best_seconds(cmd: list[str], reps: int, parse=None) -> float:
    """Best of ``reps`` fresh runs of ``cmd``: wall-clock, or what ``parse(stdout)`` returns."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        best = min(best, parse(out) if parse else time.perf_counter() - t)
    return best


def table_cold_start(reps: int) -> None:
    py = sys.executable
    cli = [py, "-c", "import sys; from maskc.cli import main; sys.exit(main())"]
    first = ("import time, maskc as mc\np = mc.causal() & mc.window(64)\nt = time.perf_counter()\n"
             "mc.compile(p, 4096)\nprint(time.perf_counter() - t)")
    rows = [("python -c 'import maskc'", _best_seconds([py, "-c", "import maskc"], reps)),
            ("first mc.compile(causal() & window(64), 4096) in a process",
             _best_seconds([py, "-c", first], reps, parse=lambda out: float(out.split()[-1]))),
            ('maskc info "causal() & window(64)" --len 4096',
             _best_seconds(cli + ["info", "causal() & window(64)", "--len", "4096"], reps))]
    print(f"| best of {reps} fresh processes | seconds |")
    print("|---|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} |", flush=True)


def torch_document_mask_mod(doc):
    def mask_mod(b, h, q, k):
        return (doc[b, q] == doc[b, k]) & (q >= k)
    return mask_mod


def block_grid_of_torch(bm, n_b: int) -> np.ndarray:
    g = np.zeros((n_b, n_b), np.int8)
    for value, num, idx in ((1, bm.kv_num_blocks, bm.kv_indices), (2, bm.full_kv_num_blocks, bm.full_kv_indices)):
        num, idx = num[0, 0].numpy(), idx[0, 0].numpy()
        for r in range(n_b):
            g[r, idx[r, : num[r]]] = value
    return g


def _eager_fits(batch: int, n: int) -> bool:
    """True when eager ``create_block_mask`` of ``batch`` x n x n fits in half the machine's memory: it
    materialises the dense bool mask and sums it per block in int64 (9 bytes per element)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 9 * batch * n * n <= memory // 2


def table_documents(sizes: list[int], reps: int, limit: float) -> None:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    import maskc as mc

    print("| tokens | documents | maskc best ms | create_block_mask s | ratio | create_block_mask(_compile=True) s "
          "| ratio | same blocks |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    mc.compile(mc.causal(), 4096, block=BLOCK)
    measured = {False: (1, 0.0), True: (1, 0.0)}  # (tokens, seconds) of the last create_block_mask run
    for n in sizes:
        lengths = document_lengths(n)
        p = mc.document_mask(lengths)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            lay = mc.compile(p, n, block=BLOCK, cache=False)
            times.append(time.perf_counter() - t)
        best = min(times)
        doc = torch.from_numpy(np.repeat(np.arange(len(lengths)), lengths))[None]
        mm = torch_document_mask_mod(doc)
        cells = []
        same = "-"
        for compiled in (False, True):
            m, sec = measured[compiled]
            if sec * (n / m) ** 2 > limit:  # its time grows with the square of the length
                cells += ["> limit", "-"]
                continue
            if not compiled and not _eager_fits(1, n):
                cells += [f"needs {9 * n * n / 2**30:.0f} GiB", "-"]
                continue
            t = time.perf_counter()
            bm = create_block_mask(mm, None, None, n, n, device="cpu", BLOCK_SIZE=BLOCK, _compile=compiled)
            if compiled:  # the first call compiles; time a second one
                t = time.perf_counter()
                bm = create_block_mask(mm, None, None, n, n, device="cpu", BLOCK_SIZE=BLOCK, _compile=True)
            sec = time.perf_counter() - t
            measured[compiled] = (n, sec)
            cells += [f"{sec:.2f}", f"{sec / best:.0f}x"]
            n_b = -(-n // BLOCK)
            ours = np.zeros((n_b, n_b), np.int8)
            ours[lay.block_row, lay.col_idx] = lay.kind
            theirs = block_grid_of_torch(bm, n_b)
            if n % BLOCK:  # FlexAttention lists a FULL block of a ragged tail as partial
                theirs[-1][theirs[-1] == 1] = ours[-1][theirs[-1] == 1]
                theirs[:, -1][theirs[:, -1] == 1] = ours[:, -1][theirs[:, -1] == 1]
            same = "yes" if np.array_equal(ours, theirs) else "NO"
        print(f"| {n:,} | {len(lengths)} | {best * 1e3:.1f} | {' | '.join(cells)} | {same} |", flush=True)


def batched(patterns):
    """A per-batch-element pattern: ``mc.batched``, or (before the DSL provides it) a
    minimal node with ``n_batch`` / ``for_batch``, which is all the compiler reads."""
    import maskc as mc

    if hasattr(mc, "batched"):
        return mc.batched(patterns)

    class _Batched(mc.Pattern):
        def __init__(self, items):
            object.__setattr__(self, "items", tuple(items))

        n_batch = property(lambda self: len(self.items))

        def for_batch(self, b):
            return self.items[b]

        def children(self):
            return self.items

        def text(self):
            return f"batched({len(self.items)} patterns)"

        def _key(self):
            return self.items

    return _Batched(patterns)


def table_batch(batch: int, n: int, steps: int, limit: float) -> None:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    import maskc as mc

    rng = np.random.default_rng(1)

    def fresh_lengths():
        return [document_lengths(n, seed=int(rng.integers(1 << 30)), lo=512, hi=8192) for _ in range(batch)]

    mc.compile(mc.causal(), 4096, block=BLOCK)
    ours = []
    for _ in range(steps):
        lengths = fresh_lengths()
        t = time.perf_counter()
        lay = mc.compile(batched([mc.document_mask(le) for le in lengths]), n, block=BLOCK, cache=False)
        ours.append(time.perf_counter() - t)
    assert lay.batch == batch
    doc = torch.zeros((batch, n), dtype=torch.int64)
    mm = torch_document_mask_mod(doc)
    rows = [f"| maskc | {np.median(ours) * 1e3:.1f} ms | {min(ours) * 1e3:.1f} ms | 1x |"]
    quarter = n // 4  # predict the eager time from one sequence of a quarter of the length
    t = time.perf_counter()
    create_block_mask(torch_document_mask_mod(doc[:1, :quarter]), None, None, quarter, quarter, device="cpu",
                      BLOCK_SIZE=BLOCK)
    eager_predicted = (time.perf_counter() - t) * 16 * batch
    for compiled in (True, False):
        if not compiled and eager_predicted > limit:
            rows.append(f"| create_block_mask (eager) | about {eager_predicted:.0f} s (predicted, not run) | | |")
            continue
        if not compiled and not _eager_fits(batch, n):
            rows.append(f"| create_block_mask (eager) | not run: its dense mask and block sums need "
                        f"{9 * batch * n * n / 2**30:.0f} GiB (about {eager_predicted:.0f} s predicted) | | |")
            continue
        secs = []
        for step in range(steps if compiled else 1):
            for b, le in enumerate(fresh_lengths()):
                doc[b] = torch.from_numpy(np.repeat(np.arange(len(le)), le))
            t = time.perf_counter()
            create_block_mask(mm, batch, None, n, n, device="cpu", BLOCK_SIZE=BLOCK, _compile=compiled)
            sec = time.perf_counter() - t
            if not compiled or step > 0:  # the first compiled call compiles the mask function
                secs.append(sec)
            if sec > limit:
                break
        name = "create_block_mask(_compile=True)" if compiled else "create_block_mask (eager)"
        if secs:
            rows.append(f"| {name} | {np.median(secs) * 1e3:.1f} ms | {min(secs) * 1e3:.1f} ms | "
                        f"{np.median(secs) / np.median(ours):.0f}x |")
    print(f"batch {batch} x {n:,} tokens, documents of 512-8192 tokens drawn afresh each step, {steps} steps\n")
    print("| per step | median | best | vs maskc |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sizes", type=int, nargs="+", default=[131072, 1048576, 4194304])
    ap.add_argument("--doc-sizes", type=int, nargs="+", default=[32768, 131072, 524288, 786432, 1048576])
    ap.add_argument("--reps", type=int, default=3, help="warm compiles per point (the best is reported)")
    ap.add_argument("--max-bytes", type=int, default=3 << 30, help="maskc's max_bytes (larger outputs are skipped)")
    ap.add_argument("--torch-limit", type=float, default=60.0, help="seconds create_block_mask may take")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batch-len", type=int, default=32768)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--families", nargs="+", default=None, choices=FAMILY_NAMES, help="table 1's families")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    warnings.filterwarnings("ignore", message="_compile flag")
    import numba
    import torch

    print(f"# compile speed: {datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, numba {numba.__version__}, torch {torch.__version__}, "
          f"block {BLOCK}\n")
    if 1 in args.tables:
        table_families(args.sizes, args.reps, args.max_bytes, args.families or FAMILY_NAMES)
    if 2 in args.tables:
        print()
        table_documents(args.doc_sizes, args.reps, args.torch_limit)
    if 3 in args.tables:
        print()
        table_batch(args.batch, args.batch_len, args.steps, args.torch_limit)
    if 4 in args.tables:
        print()
        table_cold_start(args.reps)


if __name__ == "__main__":
    main()
