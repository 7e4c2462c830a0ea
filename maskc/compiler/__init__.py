"""Pattern -> Layout compilation (numba), in work that grows with the output, never N x N.

``compile`` (the public entry point, also ``mc.compile``), ``as_layout`` (a Layout or
a Pattern compiled at given sizes), ``last_stats`` (work counters of the last compile),
``clear_cache`` and ``warmup`` (build numba's kernels ahead of the first compile).
"""

from maskc.compiler.build import CompileStats
from maskc.compiler.compile import as_layout, clear_cache, compile, last_stats
from maskc.compiler.warmup import warmup

__all__ = ["compile", "as_layout", "clear_cache", "last_stats", "CompileStats", "warmup"]
