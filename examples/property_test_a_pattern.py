#!/usr/bin/env python
"""Prove properties of a pattern: causality, no empty rows, degree bounds, hop reach,
and a hypothesis property test over random lengths.

Uses ``maskc.guarantees`` (exact checks on compiled layouts) and ``maskc.testing``
(hypothesis strategies; hypothesis is in the dev extra).

Usage:
    python examples/property_test_a_pattern.py [--smoke]
"""

from __future__ import annotations

import argparse

import numpy as np
from hypothesis import given, settings

import maskc as mc
import maskc.guarantees as g
import maskc.testing as mt
from maskc.patterns.library import mian_chowla_bird
from maskc.patterns.sequences import named_sequence


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    n = 300 if args.smoke else 4096
    pattern = mian_chowla_bird(window=3, global_tokens=2)
    print("pattern:", pattern.text())
    lay = mc.compile(pattern, n, block=128)
    g.check_causal(lay)
    g.check_no_empty_rows(lay)
    print(f"  causal, no empty rows: ok at N={n}")
    deg = g.row_degree(lay)
    print(f"  row degree: min {deg.min}, max {deg.max}, mean {deg.mean:.1f}")
    m = min(n, 1024)
    print(f"  hop diameter at N={m}: {g.hop_diameter(mc.compile(pattern, m, block=128))}")

    # a property test: at any length the last row has window + globals + offsets keys
    @settings(max_examples=15 if args.smoke else 60, deadline=None)
    @given(mt.lengths(1, 400))
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
