"""The pattern DSL (core), named sequences, the pattern library and the text form."""

from maskc.patterns.core import (
    Pattern, block_level, causal, cols, full, global_tokens, heads, offsets, predicate,
    ring_local, rows, segments, stride, sums, window,
)
from maskc.patterns.parse import parse

__all__ = [
    "Pattern", "block_level", "causal", "cols", "full", "global_tokens", "heads", "offsets",
    "predicate", "ring_local", "rows", "segments", "stride", "sums", "window", "parse",
]
