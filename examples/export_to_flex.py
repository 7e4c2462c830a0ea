#!/usr/bin/env python
"""Export a maskc layout to a FlexAttention BlockMask and check flex against the reference.

The BlockMask is built from the layout's block arrays (no ``create_block_mask``, no
N x N evaluation). Needs torch >= 2.5 with ``torch.nn.attention.flex_attention`` and
``maskc.export.to_flex_block_mask``; the script says so and exits 0 when either is missing.

Usage:
    python examples/export_to_flex.py [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import maskc as mc
from maskc.backends import attention


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        from maskc.export import to_flex_block_mask
        from torch.nn.attention.flex_attention import flex_attention
    except (ImportError, AttributeError) as e:
        print(f"skipping: FlexAttention export is not available here ({e})")
        return 0
    n = 256 if args.smoke else 2048
    from maskc.patterns.library import prime_bird

    pattern = prime_bird(window=3, global_tokens=2)
    lay = mc.compile(pattern, n, block=128)
    t0 = time.perf_counter()
    bm = to_flex_block_mask(lay)
    print(f"N={n}: BlockMask from the layout in {1000 * (time.perf_counter() - t0):.1f} ms; "
          f"BLOCK_SIZE={bm.BLOCK_SIZE}, sparsity {bm.sparsity():.1f}%")
    q, k, v = torch.randn(3, 1, 2, n, 32).unbind(0)
    try:
        out = flex_attention(q, k, v, block_mask=bm)
    except Exception as e:  # flex on CPU needs a recent torch / compiler toolchain
        print(f"skipping the numeric check: flex_attention failed on this machine ({type(e).__name__}: {e})")
        return 0
    n_ref = min(n, 1024)
    small = mc.compile(pattern, n_ref, block=128)
    ref = attention(q[..., :n_ref, :], k[..., :n_ref, :], v[..., :n_ref, :], small, backend="reference")
    # rows < n_ref see only keys < n_ref (causal), so the prefixes must agree
    err = float((out[..., :n_ref, :] - ref).norm() / ref.norm())
    print(f"flex vs reference (first {n_ref} rows): relative error {err:.2e}")
    if err > 1e-4:
        print("MISMATCH", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
