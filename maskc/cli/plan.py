"""``maskc plan EXPR --len N``: print the planner's explanation for a pattern.

Example:
    $ maskc plan "causal() & (window(64) | stride(16))" --len 32768 --device h100
"""

from __future__ import annotations

import argparse

from maskc.patterns.parse import parse
from maskc.planner import plan


def register(subparsers) -> None:
    """Add the ``plan`` sub-command."""
    p = subparsers.add_parser("plan", help="explain how a pattern is split and lowered (cost model)",
                              description="Split a pattern into disjoint parts, pick each part's cheapest "
                                          "lowering (block-sparse / DIA / residue / dense / gather) and explain why.")
    p.add_argument("expr", help="pattern in maskc's text form, e.g. \"causal() & window(3)\"")
    p.add_argument("--len", dest="q_len", type=int, required=True, help="query length")
    p.add_argument("--kv-len", dest="kv_len", type=int, default=None, help="key length (default: --len)")
    p.add_argument("--block", type=int, default=128, help="tile size of block-sparse parts (default 128)")
    p.add_argument("--head-dim", type=int, default=64, help="head dimension for the cost model (default 64)")
    p.add_argument("--device", default="cpu", help="cost profile: cpu, h100, h200, cuda (default cpu)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    pl = plan(parse(args.expr), args.q_len, args.kv_len, block=args.block, head_dim=args.head_dim,
              device=args.device)
    print(pl.explain())
    kind = ("measured on a shared 2-core CPU with maskc's torch paths" if pl.profile.name == "cpu"
            else "datasheet peaks x assumed efficiencies, not yet measured")
    print(f"(estimates per batch x head from the '{pl.profile.name}' cost profile: {kind}; "
          f"constants and their sources in maskc/planner/cost.py)")
    return 0
