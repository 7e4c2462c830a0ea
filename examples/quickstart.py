#!/usr/bin/env python
"""maskc in one page: declare a pattern, compile it, inspect it, attend with it, train with it.

Usage:
    python examples/quickstart.py            # N = 4096 compile + N = 512 attention
    python examples/quickstart.py --smoke    # small sizes
"""

from __future__ import annotations

import argparse

import torch

import maskc as mc
from maskc.backends import attention
from maskc.nn import PrimeSelfAttention, SparseSelfAttention


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n_compile, n_attn = (512, 64) if args.smoke else (4096, 512)

    # 1. a pattern is an expression: causal AND (window OR global tokens OR prime offsets)
    p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    print("pattern:", p.text())
    assert mc.parse(p.text()) == p  # the text form round-trips

    # 2. compile to the block-sparse IR (no N x N mask is built)
    lay = mc.compile(p, q_len=n_compile, block=128)
    keys = lay.row_counts()[0]
    print(f"N={n_compile}: {lay.nnz_blocks} of {lay.n_qb * (lay.n_qb + 1) // 2} causal 128-blocks non-empty, "
          f"{lay.nnz:,} allowed pairs, keys/row at the end {keys[-1]} (~ i/ln i), density {lay.density:.4f}")

    # 3. attention on any backend: q, k, v are [batch, heads, seq, head_dim]
    q, k, v = torch.randn(3, 1, 4, n_attn, 32).unbind(0)
    small = mc.compile(p, q_len=n_attn, block=64)
    out = attention(q, k, v, small, backend="reference")
    print("attention out:", tuple(out.shape))

    # 4. a module: drop-in for nn.MultiheadAttention(batch_first=True); trains on CPU with "reference"
    attn = PrimeSelfAttention(64, heads=4, backend="reference", block=64)
    x = torch.randn(2, n_attn, 64, requires_grad=True)
    y, _ = attn(x)
    y.pow(2).mean().backward()
    print("PrimeSelfAttention:", tuple(y.shape), "grad finite:", bool(torch.isfinite(x.grad).all()))

    # 5. your own pattern in a module
    mine = SparseSelfAttention(64, 4, mc.causal() & (mc.window(8) | mc.stride(16)), backend="reference", block=64)
    print("SparseSelfAttention:", tuple(mine(x)[0].shape), "layout:", mine.layout(n_attn).summary().splitlines()[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
