#!/usr/bin/env python
"""Your own rules: a numba predicate and a newly registered offset sequence.

1. ``@mc.predicate`` turns a numba-jittable ``f(i, j) -> bool`` into a pattern leaf; the
   compiler evaluates it only on blocks the rest of the expression cannot decide, so
   combine it with structured leaves (``mc.causal() & rule``).
2. ``register_sequence`` adds a named integer sequence usable as ``mc.offsets(name)``
   (here: the triangular numbers 1, 3, 6, 10, ...).

The script checks the compiled layout against the rule evaluated directly, then trains
a few steps of a module that uses both.

Usage:
    python examples/custom_pattern.py [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import maskc as mc
from maskc.nn import SparseSelfAttention
from maskc.patterns.sequences import named_sequence, register_sequence


@mc.predicate
def same_bucket_of_32(i, j):
    """Tokens in the same 32-token bucket (a user's rule, compiled with numba)."""
    return i // 32 == j // 32


@register_sequence("triangular", "n (n + 1) / 2 for n >= 1")
def triangular(limit: int) -> np.ndarray:
    n = np.arange(1, int(np.sqrt(2 * max(limit, 0))) + 2, dtype=np.int64)
    t = n * (n + 1) // 2
    return t[t <= limit]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n = 96 if args.smoke else 512

    print("triangular up to 50:", named_sequence("triangular", 50).tolist())
    pattern = mc.causal() & (same_bucket_of_32 | mc.offsets("triangular"))
    print("pattern:", pattern.text())
    lay = mc.compile(pattern, n, block=32)
    # check against the rule written directly
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    tri = set(named_sequence("triangular", n).tolist())
    direct = (j <= i) & ((i // 32 == j // 32) | np.isin(i - j, sorted(tri)))
    assert np.array_equal(lay.to_dense()[0], direct), "compiled layout differs from the rule"
    print(f"N={n}: layout matches the direct rule; {lay.nnz_blocks} blocks, {lay.nnz:,} pairs, "
          f"keys/row at the end {lay.row_counts()[0, -1]}")
    assert mc.parse(pattern.text()) == pattern  # registered names parse back

    attn = SparseSelfAttention(32, 4, pattern, backend="reference", block=32)
    opt = torch.optim.Adam(attn.parameters(), lr=1e-2)
    x = torch.randn(4, min(n, 128), 32)
    target = torch.roll(x, 1, dims=1)
    for step in range(3 if args.smoke else 20):
        loss = (attn(x)[0] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained {step + 1} steps, loss {float(loss.detach()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
