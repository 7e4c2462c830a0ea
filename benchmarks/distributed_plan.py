"""Sparse-aware context parallelism from the plan alone (no devices): bytes per rank and balance.

For each pattern, sequence length and rank count, builds ``maskc.distributed.plan`` and
prints a markdown table: the strategy chosen, the load imbalance (max / mean computed
blocks), the keys and values each rank receives (max and mean over ranks) against what
all-gather context parallelism and ring attention receive for the same sharding, and the
plan's build time. Byte figures: head_dim 128, bfloat16, 8 kv heads, batch 1.

    python benchmarks/distributed_plan.py                       # 128K, 1M, 4M tokens x 8, 64, 512 ranks
    python benchmarks/distributed_plan.py --sizes 131072 --ranks 8

Layouts that the compiler builds slowly at 1M+ tokens today are built from an
equivalent form checked against the compiler at 128K tokens (see ``layouts``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import maskc as mc
from maskc.distributed import plan
from maskc.distributed.plan import expand_ranges
from maskc.ir.layout import FULL, PARTIAL

BLOCK = 128


def document_lengths(n: int, lo: int, hi: int, seed: int = 0) -> list[int]:
    """Random document lengths in [lo, hi] summing to n (the last one cut to fit)."""
    rng = np.random.default_rng(seed)
    lens: list[int] = []
    while sum(lens) < n:
        lens.append(int(rng.integers(lo, hi + 1)))
    lens[-1] -= sum(lens) - n
    return lens


def document_layout(lengths: list[int], block: int = BLOCK, chunk: int = 4096) -> mc.Layout:
    """The Layout of ``mc.document_mask(lengths)`` (causal) built directly with numpy.

    Query block ``qb`` reads key blocks from the start of its first row's document to
    ``qb``; a block is FULL when its rows and keys lie in one document strictly before the
    diagonal. Partial masks come from the segment ids, ``chunk`` blocks at a time.
    """
    n = int(sum(lengths))
    seg = np.repeat(np.arange(len(lengths)), lengths)
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])[seg]
    n_qb = -(-n // block)
    a = np.arange(n_qb) * block
    last = np.minimum(a + block, n) - 1
    kb_lo = start[a] // block
    counts = np.arange(n_qb) - kb_lo + 1
    kb = expand_ranges(kb_lo, counts)
    qb = np.repeat(np.arange(n_qb), counts)
    k_last = np.minimum(kb * block + block, n) - 1
    full = (kb < qb) & (seg[a[qb]] == seg[last[qb]]) & (seg[kb * block] == seg[a[qb]]) & (seg[k_last] == seg[a[qb]])
    part = np.flatnonzero(~full)
    t = np.arange(block)
    packed = []
    for s in range(0, len(part), chunk):
        p = part[s: s + chunk]
        i = qb[p, None] * block + t  # [c, block]
        j = kb[p, None] * block + t
        ok_i, ok_j = i < n, j < n
        si, sj = seg[np.minimum(i, n - 1)], seg[np.minimum(j, n - 1)]
        allowed = (si[:, :, None] == sj[:, None, :]) & (j[:, None, :] <= i[:, :, None])
        allowed &= ok_i[:, :, None] & ok_j[:, None, :]
        packed.append(np.packbits(allowed, axis=2, bitorder="little"))
    bits = np.concatenate(packed) if packed else np.zeros((0, block, block // 8), np.uint8)
    rows = np.ascontiguousarray(bits.reshape(len(part), -1)).view(np.dtype((np.void, block * block // 8)))
    uniq, inv = np.unique(rows.reshape(-1), return_inverse=True)  # bytes rows: much faster than axis=0
    masks = np.frombuffer(uniq.tobytes(), np.uint8).reshape(len(uniq), -1)
    pid = np.full(len(kb), -1, np.int32)
    pid[part] = inv.reshape(-1)
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)[None, :]
    return mc.Layout(q_len=n, kv_len=n, block_q=block, block_k=block, row_ptr=row_ptr, col_idx=kb.astype(np.int32),
                     kind=np.where(full, FULL, PARTIAL).astype(np.int8), partial_id=pid,
                     masks=masks.reshape(-1, block, block // 8).astype(np.uint8),
                     pattern_text=f"document_mask({len(lengths)} documents)").validate()


def layouts(n: int) -> dict[str, mc.Layout]:
    """The benchmark's layouts at ``n`` tokens (compile time is printed separately)."""
    window = mc.block_level(mc.causal() & mc.window(4096 // BLOCK), BLOCK)  # = causal() & window(4096)'s blocks
    primes = mc.causal() & (mc.block_level(mc.window(0) | mc.offsets("primes"), BLOCK) | mc.global_tokens(2))
    out = {
        "causal window 4K": lambda: mc.compile(window, q_len=n, block=BLOCK),
        "documents 16K-32K (causal)": lambda: document_layout(document_lengths(n, 16384, 32768)),
        "block-level PrimeBird": lambda: mc.compile(primes, q_len=n, block=BLOCK),
        "πAttention (ring 64 + doubling π-step 16)": lambda: mc.compile(
            mc.pi_attention_union(r=64, period=16, variant="doubling", causal=True), q_len=n, block=BLOCK),
        "BigBird (3 window, 1 global, 3 random blocks)": lambda: mc.compile(
            mc.bigbird(window=3, global_tokens=BLOCK, random_blocks=3, block=BLOCK), q_len=n, block=BLOCK),
    }
    if n <= 1 << 20:  # every earlier block is needed: these layouts have n_qb^2 / 2 blocks
        out["πAttention (ring 64 + π-step 16, all)"] = lambda: mc.compile(
            mc.pi_attention_union(r=64, period=16, causal=True), q_len=n, block=BLOCK)
        out["causal (full)"] = lambda: mc.compile(mc.causal(), q_len=n, block=BLOCK)
    return out


def check_equivalent_forms(n: int = 1 << 17) -> None:
    """The fast forms equal the compiler's at ``n`` tokens (blocks and masks)."""
    win = mc.compile(mc.causal() & mc.window(4096), q_len=n, block=BLOCK)
    fast = mc.compile(mc.block_level(mc.causal() & mc.window(4096 // BLOCK), BLOCK), q_len=n, block=BLOCK)
    assert np.array_equal(win.row_ptr, fast.row_ptr) and np.array_equal(win.col_idx, fast.col_idx)
    lens = document_lengths(n, 16384, 32768)
    assert document_layout(lens) == mc.compile(mc.document_mask(lens), q_len=n, block=BLOCK)


def _h(b: float) -> str:
    for unit, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= s:
            return f"{b / s:.1f} {unit}"
    return f"{b:.0f} B"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1 << 17, 1 << 20, 1 << 22])
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 64, 512])
    ap.add_argument("--patterns", nargs="*", default=None, help="substrings of pattern names to keep")
    args = ap.parse_args(argv)
    check_equivalent_forms()
    print("| pattern | tokens | ranks | strategy | imbalance | max recv / rank | mean recv / rank | all-gather recv "
          "/ rank | ring recv / rank | max / all-gather | mean / all-gather | layout s | plan s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        for name, make in layouts(n).items():
            if args.patterns and not any(p in name for p in args.patterns):
                continue
            t0 = time.perf_counter()
            lay = make()
            t_lay = time.perf_counter() - t0
            for P in args.ranks:
                t0 = time.perf_counter()
                rep = plan(lay, P, head_dim=128, dtype="bfloat16", kv_heads=8).report()
                t_plan = time.perf_counter() - t0
                recv = np.asarray(rep["bytes_received"], np.float64)
                ag = float(max(rep["allgather_bytes_received"]))
                print(f"| {name} | {n:,} | {P} | {rep['strategy']} | {rep['imbalance']:.3f} | {_h(recv.max())} | "
                      f"{_h(recv.mean())} | {_h(ag)} | {_h(max(rep['ring_bytes_received']))} | "
                      f"{100 * recv.max() / ag:.2f}% | {100 * recv.mean() / ag:.2f}% | {t_lay:.1f} | {t_plan:.2f} |",
                      flush=True)
            del lay


if __name__ == "__main__":
    main()
