"""``maskc show``: print a layout's terminal picture and optionally write a PNG.

Usage::

    maskc show "causal() & (window(3) | offsets('primes'))" --len 4096 --block 128
    maskc show layout.npz --png layout.png --head 0
"""

from __future__ import annotations

import argparse

from maskc.cli.common import add_source_args, load_source
from maskc.viz import save_png, terminal_picture


def register(subparsers) -> None:
    """Add the ``show`` sub-command to the ``maskc`` parser."""
    p = subparsers.add_parser(
        "show", help="picture of a layout (terminal; PNG with --png)",
        description="Compile a pattern expression (or load a layout file) and print its block picture; "
                    "write a PNG with block layout, token zoom and row-degree histogram with --png.",
    )
    add_source_args(p, default_len=1024)
    p.add_argument("--png", default=None, metavar="OUT", help="write a PNG picture to OUT")
    p.add_argument("--head", type=int, default=None, help="head to show (terminal default 0; PNG default all)")
    p.add_argument("--width", type=int, default=64, help="terminal picture width in characters (default 64)")
    p.add_argument("--zoom", type=int, nargs=4, metavar=("Q0", "Q1", "K0", "K1"), default=None,
                   help="token window of the PNG's zoomed view")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lay = load_source(args)[0]
    head = 0 if args.head is None else args.head
    if not 0 <= head < lay.heads:
        raise ValueError(f"--head must be in [0, {lay.heads}), got {head}")
    print(terminal_picture(lay, head=head, max_width=args.width))
    if args.png:
        out = save_png(lay, args.png, head=args.head, zoom=tuple(args.zoom) if args.zoom else None)
        print(f"wrote {out}")
    return 0
