"""GPU benchmark: maskc's Triton block-sparse attention vs FlexAttention vs dense SDPA.

For each pattern, sequence length and head_dim (bfloat16), times forward and
forward+backward of

* ``maskc-triton``  maskc's kernels (``maskc.backends.triton_backend.attention_triton``),
* ``flex``          ``torch.compile(flex_attention)`` with the *same* BlockMask
                    (``maskc.export.flex.to_flex_block_mask``),
* ``sdpa-dense``    ``torch.nn.functional.scaled_dot_product_attention`` without a mask
                    (the dense throughput reference),

and prints a markdown table. TFLOP/s of the sparse kernels are counted on computed
blocks: forward ``4 * B * H * n_blocks * block_q * block_k * D``, forward+backward 3.5x
that (FlashAttention-2 convention); dense SDPA on its ``Lq * Lk`` pairs.

Patterns (block 128 unless --block):

* ``window``   causal sliding window of 1024 tokens,
* ``primes``   causal, block level: key block kb allowed for query block qb when
               qb - kb is 0, 1 or a prime, or kb < 1 (global block),
* ``bigbird``  non-causal BigBird-like mix: 3-block window, 2 global blocks (rows and
               columns) and 3 random blocks per row (seeded).

Layouts are built from block-level candidates plus a token-level predicate evaluated on
partial blocks only (no N x N mask), so building them at 64K tokens takes seconds.

Usage (needs CUDA; do not set TRITON_INTERPRET):
    python benchmarks/gpu_attention.py                       # full sweep 8K..64K, D 64/128
    python benchmarks/gpu_attention.py --lengths 8192 --head-dims 64 --patterns window
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np


def _require_cuda() -> None:
    try:
        import torch
    except Exception as exc:  # pragma: no cover
        sys.exit(f"gpu_attention.py: torch is not importable ({exc}); nothing to benchmark")
    if not torch.cuda.is_available():
        sys.exit("gpu_attention.py: no CUDA device here. This benchmark times GPU kernels "
                 "(maskc triton, FlexAttention, SDPA) and only runs on a machine with CUDA.")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("gpu_attention.py: TRITON_INTERPRET is set; unset it (the interpreter is a CPU "
                 "emulator and would make every timing meaningless)")


# ------------------------------------------------------------------ layouts
def _primes_upto(n: int) -> np.ndarray:
    sieve = np.ones(n + 1, dtype=bool)
    sieve[:2] = False
    for p in range(2, int(n ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p:: p] = False
    return np.nonzero(sieve)[0]


def layout_from_blocks(L: int, block: int, candidates, predicate):
    """A Layout from block candidates and a token predicate evaluated on those blocks only.

    ``candidates(qb) -> iterable of kb``; ``predicate(i, j) -> bool array`` (numpy
    broadcasting). Each candidate block is classified FULL / PARTIAL / empty from its
    elements; memory O(candidates * block^2) at most per chunk.
    """
    from maskc.ir.convert import dedupe_masks
    from maskc.ir.layout import FULL, PARTIAL, Layout

    n_b = -(-L // block)
    rows, cols = [], []
    for qb in range(n_b):
        kbs = sorted({int(kb) for kb in candidates(qb) if 0 <= kb < n_b})
        rows += [qb] * len(kbs)
        cols += kbs
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    ar = np.arange(block)
    kinds = np.zeros(rows.size, dtype=np.int8)
    part_bits = []
    part_pos = []
    for s in range(0, rows.size, 256):
        r, c = rows[s:s + 256], cols[s:s + 256]
        i = r[:, None, None] * block + ar[None, :, None]
        j = c[:, None, None] * block + ar[None, None, :]
        bits = np.broadcast_to(predicate(i, j), (r.size, block, block)) & (i < L) & (j < L)
        cnt = bits.reshape(r.size, -1).sum(1)
        cap = np.minimum(block, L - r * block) * np.minimum(block, L - c * block)
        k = np.where(cnt == cap, FULL, np.where(cnt > 0, PARTIAL, 0)).astype(np.int8)
        kinds[s:s + 256] = k
        sel = k == PARTIAL
        part_bits.append(bits[sel])
        part_pos.append(np.nonzero(sel)[0] + s)
    keep = kinds != 0
    bits = np.concatenate(part_bits) if part_bits else np.zeros((0, block, block), bool)
    masks, ids = dedupe_masks(bits)
    pid_all = np.full(rows.size, -1, dtype=np.int32)
    if part_pos:
        pid_all[np.concatenate(part_pos)] = ids
    rows, cols, kinds, pid_all = rows[keep], cols[keep], kinds[keep], pid_all[keep]
    row_ptr = np.zeros((1, n_b + 1), dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_b), out=row_ptr[0, 1:])
    if masks.shape[0] == 0:
        masks = np.zeros((0, block, -(-block // 8)), dtype=np.uint8)
    return Layout(q_len=L, kv_len=L, block_q=block, block_k=block, row_ptr=row_ptr,
                  col_idx=cols.astype(np.int32), kind=kinds, partial_id=pid_all,
                  masks=masks).validate()


def build_pattern(name: str, L: int, block: int, seed: int = 0):
    n_b = -(-L // block)
    if name == "window":
        w = 1024
        wb = -(-w // block) + 1
        return layout_from_blocks(L, block, lambda qb: range(qb - wb, qb + 1),
                                  lambda i, j: (i >= j) & (i - j < w))
    if name == "primes":
        allowed = np.zeros(n_b + 1, dtype=bool)
        allowed[[0, 1]] = True
        allowed[_primes_upto(n_b)] = True
        offs = np.nonzero(allowed)[0]
        return layout_from_blocks(
            L, block, lambda qb: set((qb - offs).tolist()) | {0},
            lambda i, j: (i >= j) & (allowed[np.clip(i // block - j // block, 0, n_b)] | (j < block)),
        )
    if name == "bigbird":
        rng = np.random.default_rng(seed)
        rand = rng.integers(0, n_b, size=(n_b, 3))
        g = 2

        def cand(qb):
            if qb < g:
                return range(n_b)
            return set(range(qb - 1, qb + 2)) | set(range(g)) | set(rand[qb].tolist())

        def pred(i, j):
            qb, kb = i // block, j // block
            win = np.abs(qb - kb) <= 1
            glob = (qb < g) | (kb < g)
            rnd = (rand[np.clip(qb, 0, n_b - 1)] == kb[..., None]).any(-1) if kb.ndim else False
            return win | glob | rnd

        return layout_from_blocks(L, block, cand, pred)
    raise SystemExit(f"unknown pattern {name!r} (choose from window, primes, bigbird)")


# ------------------------------------------------------------------ timing
def _bench_ms(fn, reps: int) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=max(3, reps // 4), rep=reps))


def run(args) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from maskc.backends.flex import compiled_flex_attention
    from maskc.backends.triton_backend import attention_triton
    from maskc.export.flex import to_flex_block_mask

    flex = compiled_flex_attention()
    rows = []
    for L in args.lengths:
        for name in args.patterns:
            t0 = time.perf_counter()
            lay = build_pattern(name, L, args.block, args.seed)
            build_s = time.perf_counter() - t0
            for D in args.head_dims:
                B, H = args.batch, args.heads
                dev, dt = "cuda", torch.bfloat16
                q, k, v = (torch.randn(B, H, L, D, device=dev, dtype=dt, requires_grad=True) for _ in range(3))
                dout = torch.randn(B, H, L, D, device=dev, dtype=dt)
                scale = 1.0 / math.sqrt(D)
                bm = to_flex_block_mask(lay, dev)
                flops_fwd = 4.0 * B * H * lay.nnz_blocks * args.block * args.block * D
                dense_fwd = 4.0 * B * H * L * L * D
                cases = {
                    "maskc-triton": (lambda: attention_triton(q, k, v, lay, scale=scale)[0], flops_fwd),
                    "flex": (lambda: flex(q, k, v, block_mask=bm, scale=scale), flops_fwd),
                    "sdpa-dense": (lambda: F.scaled_dot_product_attention(q, k, v, scale=scale), dense_fwd),
                }
                res = {}
                for label, (fn, fl) in cases.items():
                    try:
                        with torch.no_grad():
                            ms_f = _bench_ms(fn, args.reps)

                        def fb(fn=fn):
                            fn().backward(dout)

                        ms_fb = _bench_ms(fb, args.reps) if args.backward else float("nan")
                        res[label] = (ms_f, fl / ms_f / 1e9, ms_fb, 3.5 * fl / ms_fb / 1e9)
                    except Exception as exc:  # report and go on: one failure must not hide the rest
                        print(f"<!-- {label} L={L} D={D} {name}: {type(exc).__name__}: {exc} -->", file=sys.stderr)
                        res[label] = (float("nan"),) * 4
                    q.grad = k.grad = v.grad = None
                rows.append(dict(pattern=name, L=L, D=D, blocks=lay.nnz_blocks,
                                 density=lay.block_density, build_s=build_s, res=res))
                print(_row_md(rows[-1]), flush=True)
                del q, k, v, dout
                torch.cuda.empty_cache()
    return rows


HEADER = ("| pattern | tokens | D | block density | kernel | fwd ms | fwd TFLOP/s | fwd+bwd ms | "
          "fwd+bwd TFLOP/s | fwd vs flex | fwd+bwd vs flex |\n"
          "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")


def _row_md(r: dict) -> str:
    out = []
    fx = r["res"].get("flex", (float("nan"),) * 4)
    for label, (mf, tf, mfb, tfb) in r["res"].items():
        rf = fx[0] / mf if label != "flex" else 1.0
        rfb = fx[2] / mfb if label != "flex" else 1.0
        out.append(f"| {r['pattern']} | {r['L']} | {r['D']} | {100 * r['density']:.2f}% | {label} | "
                   f"{mf:.3f} | {tf:.1f} | {mfb:.3f} | {tfb:.1f} | {rf:.2f}x | {rfb:.2f}x |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    p.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    p.add_argument("--patterns", nargs="+", default=["window", "primes", "bigbird"])
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--reps", type=int, default=100, help="milliseconds of timing per case (do_bench rep)")
    p.add_argument("--no-backward", dest="backward", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _require_cuda()
    import torch

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"batch {args.batch}  heads {args.heads}  block {args.block}  bf16\n")
    print("TFLOP/s on computed blocks (dense SDPA: on all L x L pairs); 'vs flex' = flex time / time.\n")
    print(HEADER)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
