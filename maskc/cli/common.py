"""Shared pieces of the ``maskc`` sub-commands: where a layout comes from."""

from __future__ import annotations

import argparse
import os
import time

from maskc.compiler import compile
from maskc.ir import Layout, load
from maskc.patterns.parse import parse


def add_source_args(p: argparse.ArgumentParser, default_len: int | None = None, default_block: int = 128,
                    files: bool = True) -> None:
    """Add the source of a layout to a sub-command: ``EXPR|FILE`` (``EXPR`` when not
    ``files``), ``--len``, ``--kv-len``, ``--q-offset``, ``--block``."""
    if files:
        p.add_argument("source", metavar="EXPR|FILE", help="a pattern expression (maskc text form) or a layout file "
                       "(.npz / .safetensors)")
    else:
        p.add_argument("source", metavar="EXPR", help="pattern expression, e.g. \"causal() & window(128)\"")
    p.add_argument("--len", dest="q_len", type=int, default=default_len, required=not files and default_len is None,
                   help="query length for an expression" + (f" (default {default_len})" if default_len else ""))
    p.add_argument("--kv-len", dest="kv_len", type=int, default=None, help="key length (default: --q-offset + --len)")
    p.add_argument("--q-offset", dest="q_offset", type=int, default=0,
                   help="absolute position of the first query (decode / chunked prefill: kv_len - len; default 0)")
    p.add_argument("--block", type=int, default=default_block, help=f"block size (default {default_block})")


def load_source(args: argparse.Namespace) -> tuple[Layout, float]:
    """A Layout from ``args.source``: a layout file, or an expression compiled at --len.

    Returns ``(layout, seconds)`` where seconds is the compile (or load) time.
    """
    src = args.source
    t0 = time.perf_counter()
    if os.path.isfile(src):
        if args.kv_len is not None or getattr(args, "q_offset", 0):
            raise ValueError("--kv-len and --q-offset apply to a pattern expression; a layout file has its own sizes")
        lay = load(src)
    elif src.endswith((".npz", ".safetensors", ".npy")):
        raise ValueError(f"layout file {src!r} does not exist")
    else:
        if args.q_len is None:
            raise ValueError("a pattern expression needs --len N (and optionally --kv-len M, --block B)")
        lay = compile(parse(src), q_len=args.q_len, kv_len=args.kv_len, block=args.block,
                      q_offset=getattr(args, "q_offset", 0))
    return lay, time.perf_counter() - t0
