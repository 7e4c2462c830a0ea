#!/usr/bin/env python
"""Prove properties of a pattern: causality, no empty rows, degree bounds, hop reach,
and a hypothesis property test over random lengths.

Uses ``maskc.guarantees`` (exact checks on compiled layouts) and, when present,
``maskc.testing`` (hypothesis strategies). Each part says so and is skipped when the
module is missing.

Usage:
    python examples/property_test_a_pattern.py [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np

import maskc as mc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    n = 300 if args.smoke else 4096
    from maskc.patterns.library import mian_chowla_bird

    pattern = mian_chowla_bird(window=3, global_tokens=2)
    print("pattern:", pattern.text())
    try:
        import maskc.guarantees as g
    except ImportError as e:
        print(f"maskc.guarantees is not available ({e}); skipping the exact checks")
        g = None
    if g is not None:
        lay = mc.compile(pattern, n, block=128)
        for name in ("check_causal", "check_no_empty_rows"):
            fn = getattr(g, name, None)
            if fn is None:
                print(f"  {name}: not provided by this maskc.guarantees")
                continue
            fn(lay)
            print(f"  {name}: ok at N={n}")
        if hasattr(g, "row_degree"):
            deg = g.row_degree(lay)
            print(f"  row degree: min {deg.min}, max {deg.max}, mean {deg.mean:.1f}")
        if hasattr(g, "hop_diameter"):
            m = min(n, 1024)
            print(f"  hop diameter at N={m}: {g.hop_diameter(mc.compile(pattern, m, block=128))}")
    # a property test: at any length the last row has window + globals + offsets keys
    try:
        from hypothesis import given, settings
        from hypothesis import strategies as st
    except ImportError as e:
        print(f"hypothesis is not installed ({e}); skipping the property test")
        return 0
    try:
        import maskc.testing as mt
        lengths = getattr(mt, "lengths", None)
    except ImportError:
        print("maskc.testing is not available; using plain hypothesis integers for lengths")
        lengths = None
    strat = lengths() if callable(lengths) else st.integers(min_value=1, max_value=400)

    from maskc.patterns.sequences import named_sequence

    @settings(max_examples=15 if args.smoke else 60, deadline=None)
    @given(strat)
    def last_row_keys(length):
        lay = mc.compile(pattern, length, block=64)
        i = length - 1
        offs = set(range(0, min(3, i) + 1)) | set(named_sequence("mian_chowla", i).tolist())
        expect = {i - d for d in offs} | set(range(min(2, length)))
        assert set(np.flatnonzero(lay.to_dense()[0, i]).tolist()) == expect

    last_row_keys()
    print("property test passed: the last row's keys are exactly globals ∪ window ∪ Mian-Chowla offsets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
