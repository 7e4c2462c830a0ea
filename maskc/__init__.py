"""maskc: a mask compiler for structured sparse attention.

Declare a sparsity pattern, compile it to a block-sparse layout, run attention on any
backend, export the layout, and prove properties of it.

Example:
    >>> import maskc as mc
    >>> p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    >>> layout = mc.compile(p, q_len=1024, block=128)
    >>> layout.nnz_blocks
    36
"""

from maskc.errors import LayoutFormatError, MaskcError, PatternSyntaxError, TooLargeError
from maskc.ir import FULL, PARTIAL, Layout, load
from maskc.patterns.core import (
    Pattern, block_level, causal, cols, full, global_tokens, heads, offsets, predicate,
    ring_local, rows, segments, stride, sums, window,
)
from maskc.patterns.parse import parse
from maskc.compiler import compile

__version__ = "0.1.0"

__all__ = [
    "Layout", "load", "compile", "parse", "Pattern",
    "full", "causal", "window", "ring_local", "stride", "offsets", "sums", "global_tokens",
    "rows", "cols", "segments", "predicate", "heads", "block_level",
    "FULL", "PARTIAL", "MaskcError", "PatternSyntaxError", "LayoutFormatError", "TooLargeError",
]
