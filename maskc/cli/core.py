"""``maskc compile``, ``maskc info``, ``maskc patterns`` and ``maskc warmup``."""

from __future__ import annotations

import argparse
import os
import sys

import maskc as mc
from maskc.cli.common import add_source_args, load_source
from maskc.compiler import warmup
from maskc.patterns.sequences import sequence_doc, sequence_names


def register(subparsers) -> None:
    """Add the core sub-commands to the ``maskc`` parser."""
    c = subparsers.add_parser("compile", help="compile a pattern expression to a layout file")
    add_source_args(c, files=False)
    c.add_argument("-o", "--output", required=True, help="output file (.npz or .safetensors)")
    c.set_defaults(func=run_compile)

    w = subparsers.add_parser("warmup", help="build the compiler's numba kernels now (once per machine; "
                              "otherwise the first compile does it)")
    w.set_defaults(func=run_warmup)

    i = subparsers.add_parser("info", help="sizes, blocks, density and masks of a pattern or layout file")
    add_source_args(i, default_len=4096)
    i.set_defaults(func=run_info)

    p = subparsers.add_parser("patterns", help="list the library patterns and named sequences")
    p.set_defaults(func=run_patterns)



def run_compile(args: argparse.Namespace) -> int:
    lay, dt = load_source(args)
    lay.save(args.output)
    print(lay.summary())
    print(f"  compiled in {dt * 1e3:.1f} ms; wrote {args.output} ({os.path.getsize(args.output):,} bytes)")
    return 0


def info_rows(name: str, lay, seconds: float) -> list[str]:
    """One table row of ``maskc info`` / the demo for a layout."""
    total = lay.heads * lay.n_qb * lay.n_kb
    return [name, f"{lay.q_len}x{lay.kv_len}", f"{lay.block_q}x{lay.block_k}", str(lay.heads),
            f"{lay.nnz_blocks:,}/{total:,}", f"{100 * lay.block_density:.1f}%", f"{lay.n_full:,}",
            f"{lay.n_partial:,}", f"{lay.n_unique_masks:,}", f"{100 * lay.density:.3f}%",
            f"{seconds * 1e3:.1f}", f"{lay.nbytes:,}"]


INFO_COLUMNS = ["pattern", "q x kv", "block", "heads", "blocks", "block %", "full", "partial", "unique masks",
                "density", "compile ms", "bytes"]


def run_warmup(args: argparse.Namespace) -> int:
    """Build (or load from numba's disk cache) every kernel of the compiler, with progress."""
    warmup(out=sys.stdout)
    return 0


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; aligned plain text otherwise (CI logs, pipes)."""
    if not sys.stdout.isatty():
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
        fmt = lambda cells: "  ".join(  # noqa: E731
            (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
        print(title)
        print(fmt(columns))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print(fmt(r))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i > 0)
    for r in rows:
        table.add_row(*r)
    Console().print(table)


def run_info(args: argparse.Namespace) -> int:
    lay, dt = load_source(args)
    print(f"pattern: {lay.pattern_text or args.source}")
    print_table("maskc info", INFO_COLUMNS, [info_rows("layout", lay, dt)])
    return 0


def run_patterns(args: argparse.Namespace) -> int:
    rows = []
    for name in mc.library_names():
        fn = getattr(mc.library, name)
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        rows.append([name, doc])
    print_table("library patterns (maskc.library; also usable in the text form)", ["name", "rule"], rows)
    print_table("named sequences (offsets('name'), sums('name'), rows/cols('name'))", ["name", "values"],
                [[n, sequence_doc(n)] for n in sequence_names()])
    return 0
