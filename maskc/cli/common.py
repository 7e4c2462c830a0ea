"""Shared pieces of the ``maskc`` sub-commands: where a layout comes from."""

from __future__ import annotations

import argparse
import os
import time


def add_source_args(p: argparse.ArgumentParser, default_len: int | None = None, default_block: int = 128) -> None:
    """Add ``EXPR|FILE``, ``--len``, ``--kv-len``, ``--block`` to a sub-command."""
    p.add_argument("source", metavar="EXPR|FILE", help="a pattern expression (maskc text form) or a layout file "
                   "(.npz / .safetensors)")
    p.add_argument("--len", dest="q_len", type=int, default=default_len,
                   help="query length for an expression" + (f" (default {default_len})" if default_len else ""))
    p.add_argument("--kv-len", dest="kv_len", type=int, default=None, help="key length (default: --len)")
    p.add_argument("--block", type=int, default=default_block, help=f"block size (default {default_block})")


def load_source(args: argparse.Namespace):
    """A Layout from ``args.source``: a layout file, or an expression compiled at --len.

    Returns ``(layout, seconds)`` where seconds is the compile (or load) time.
    """
    import maskc

    src = args.source
    t0 = time.perf_counter()
    if os.path.isfile(src):
        if args.kv_len is not None:
            raise ValueError("--kv-len applies to a pattern expression; a layout file has its own sizes")
        lay = maskc.load(src)
    elif src.endswith((".npz", ".safetensors", ".npy")):
        raise ValueError(f"layout file {src!r} does not exist")
    else:
        if args.q_len is None:
            raise ValueError("a pattern expression needs --len N (and optionally --kv-len M, --block B)")
        pattern = maskc.parse(src)
        lay = maskc.compile(pattern, q_len=args.q_len, kv_len=args.kv_len, block=args.block)
    return lay, time.perf_counter() - t0
