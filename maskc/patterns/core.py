"""The DSL's node classes and constructors under their historical module name.

The implementation lives in single-purpose modules (:mod:`~maskc.patterns.base`,
:mod:`~maskc.patterns.algebra`, :mod:`~maskc.patterns.leaves`,
:mod:`~maskc.patterns.segments`, :mod:`~maskc.patterns.structure`,
:mod:`~maskc.patterns.cells`, :mod:`~maskc.patterns.predicate`,
:mod:`~maskc.patterns.constructors`); every name that lived here stays importable.

Example:
    >>> from maskc.patterns.core import Or, Window, causal, window
    >>> isinstance(causal() | window(2), Or), isinstance(window(2), Window)
    (True, True)
"""

from __future__ import annotations

from maskc.limits import MAX_INT
from maskc.limits import check_int as _check_int  # noqa: F401  (kept for callers of the old private helper)
from maskc.patterns.algebra import And, Diff, Not, Or
from maskc.patterns.base import AXES, Pattern, Sizes, as_pattern
from maskc.patterns.cells import Cells, RandomKeys
from maskc.patterns.constructors import (
    batched, block_level, causal, cols, full, global_tokens, heads, offsets, predicate, random_keys, ring_local,
    rows, segments, stride, sums, window,
)
from maskc.patterns.indexset import MAX_EXPLICIT, IndexSet
from maskc.patterns.leaves import AxisLeaf, Causal, Cols, Full, GlobalTokens, Offsets, RingLocal, Rows, Stride, Sums, Window
from maskc.patterns.predicate import Predicate, register_predicate, registered_predicate
from maskc.patterns.segments import Lengths, Segments
from maskc.patterns.structure import Batched, BlockLevel, Heads, Named

__all__ = [
    "Pattern", "Sizes", "AXES", "as_pattern", "Or", "And", "Not", "Diff", "AxisLeaf", "Full", "Causal", "Window",
    "RingLocal", "Stride", "Offsets", "Sums", "Rows", "Cols", "GlobalTokens", "Segments", "Lengths", "Predicate",
    "BlockLevel", "Heads", "Batched", "Named", "Cells", "RandomKeys", "IndexSet", "MAX_EXPLICIT", "MAX_INT",
    "register_predicate", "registered_predicate",
    "full", "causal", "window", "ring_local", "stride", "offsets", "sums", "global_tokens", "rows", "cols",
    "segments", "predicate", "heads", "batched", "block_level", "random_keys",
]
