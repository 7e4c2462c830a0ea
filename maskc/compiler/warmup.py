"""Build the compiler's numba kernels ahead of the first compile (``maskc warmup``).

numba compiles each kernel the first time it runs and caches it on disk; on two cores
that takes about a minute in all. :func:`warmup` runs one small compile per group of
kernels, reporting each step, and records that the build is done so later compiles say
nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from maskc.compiler.compile import compile
from maskc.compiler.interp import use_jit
from maskc.compiler.runtime import _stamp, clear_stale_kernels, expect_build, mark_built
import maskc.patterns as P


def _parity(i, j):
    return (i + j) % 2 == 0


def _steps() -> list[tuple[str, Callable[[], object]]]:
    parity = P.predicate(_parity, name="maskc_warmup_parity")
    diagonal = P.causal() & (P.window(3) | P.offsets("primes") | P.rows([1]) | P.cols([2]) | P.sums([5]))
    return [
        ("row walk, bits and masks", lambda: compile(diagonal, 300, block=32, cache=False)),
        ("segment tables", lambda: compile(P.causal() & P.segments([70, 90, 40]), 300, block=32, cache=False)),
        ("block-level tables", lambda: compile(P.block_level(P.window(1), 24), 300, block=32, cache=False)),
        ("predicates", lambda: compile(P.window(40) & parity, 300, block=32, cache=False)),
    ]


def warmup(out: TextIO | None = sys.stderr) -> float:
    """Build (or load from numba's disk cache) every kernel; returns the seconds it took.

    Prints one line per step to ``out`` (None: silent).

    Example:
        >>> from maskc.compiler import warmup
        >>> warmup(out=None) >= 0
        True
    """
    t0 = time.perf_counter()
    clear_stale_kernels()  # kernels of changed sources would otherwise keep their callees' old code
    expect_build()
    use_jit()  # the steps are small: without this they would run the kernels as Python, building nothing
    steps = _steps()
    if out is not None:
        print("maskc warmup: building the compiler's numba kernels (cached on disk after the first time)",
              file=out, flush=True)
    for k, (name, run) in enumerate(steps, 1):
        t = time.perf_counter()
        if out is not None:
            print(f"  [{k}/{len(steps)}] {name} ...", end="", file=out, flush=True)
        run()
        if out is not None:
            print(f" {time.perf_counter() - t:.1f} s", file=out, flush=True)
    mark_built()
    seconds = time.perf_counter() - t0
    if out is not None:
        print(f"maskc warmup: ready in {seconds:.1f} s (kernels cached in {_stamp().parent})", file=out, flush=True)
    return seconds
