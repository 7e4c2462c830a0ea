"""``maskc check`` (cross-check backends on a pattern or layout file) and ``maskc backends``.

Examples::

    maskc check "causal() & window(64)" --len 512 --block 64
    maskc check layout.npz --backends scipy,jax --dtype bfloat16
    maskc backends
"""

from __future__ import annotations

import argparse
import sys

from maskc.backends import crosscheck, format_available
from maskc.cli.common import add_source_args, load_source


def register(subparsers) -> None:
    """Add the ``check`` and ``backends`` sub-commands to the ``maskc`` parser."""
    p = subparsers.add_parser(
        "check",
        help="cross-check every backend against the float64 reference on random inputs",
        description="Run every available backend (or --backends) forward and backward on fresh random "
        "inputs and compare with the float64 reference. Exit code 1 if any backend fails.",
    )
    add_source_args(p, default_len=256, default_block=64)
    p.add_argument("--backends", default=None, help="comma-separated backend names (default: all registered)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 or float64 (default float32)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--heads", type=int, default=None, help="query heads (default: layout heads, 2 if it broadcasts)")
    p.add_argument("--kv-heads", type=int, default=None, help="key/value heads (GQA; default: --heads)")
    p.add_argument("--head-dim", type=int, default=32, help="head dimension (default 32)")
    p.add_argument("--no-grads", action="store_true", help="forward only")
    p.add_argument("--plain", action="store_true", help="plain-text table even on a terminal")
    p.set_defaults(func=run_check)

    b = subparsers.add_parser("backends", help="list the attention backends and whether each can run here")
    b.set_defaults(func=run_backends)


def run_check(args: argparse.Namespace) -> int:
    """Print the crosscheck report; 0 when it passed, 1 when a backend failed or none ran."""
    from rich.console import Console

    layout = load_source(args)[0]
    # a spinner on stderr while backends run (the Triton interpreter takes seconds); silent in pipes
    with Console(stderr=True).status(f"cross-checking backends against float64 on {layout!r}"):
        report = crosscheck(
            layout,
            backends=args.backends,
            dtype=args.dtype,
            seed=args.seed,
            grads=not args.no_grads,
            batch=args.batch,
            heads=args.heads,
            kv_heads=args.kv_heads,
            head_dim=args.head_dim,
        )
    if not args.plain and sys.stdout.isatty():
        Console().print(report.rich_table())
    else:
        print(report.table())
    return 0 if report.passed else 1


def run_backends(args: argparse.Namespace) -> int:
    """Print every registered backend, its arrays, devices, gradients and availability."""
    print(format_available())
    return 0
