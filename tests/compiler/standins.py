"""Stand-in pattern nodes for the parts of the lowering protocol the DSL provides.

Each node lowers itself through ``lower(sink)`` (the compiler's sink protocol) and has
its own element-by-element definition (``_eval``), so the compiler's side of segment ids,
explicit cells, FlexAttention-style predicates with data, and per-batch patterns is
tested independently of how the DSL builds them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

import maskc.patterns as P
from maskc.patterns.cells import Cells as _CellsBase


class SegmentIds(P.Pattern):
    """seg(i) == seg(j) with arbitrary integer ids: not sorted, negative, with gaps.

    Position x has id ``ids[x % len(ids)] + (x // len(ids)) * shift``: with ``shift = 0``
    the ids repeat, with a large shift every period has ids of its own.
    """

    __slots__ = ("ids", "shift")
    _AXIS = "SEG"

    def __init__(self, ids, shift=0):
        self._init(ids=tuple(int(x) for x in ids), shift=int(shift))

    def _make_text(self):
        return f"segment_ids_standin({list(self.ids)}, shift={self.shift})"

    def _key_fields(self):
        return (self.ids, self.shift)

    def segment_ids(self, n):
        x = np.arange(n)
        return np.asarray(self.ids, dtype=np.int64)[x % len(self.ids)] + (x // len(self.ids)) * self.shift

    def _eval(self, i, j, s):
        n = max(s.q_total, s.kv_len)
        ids = self.segment_ids(n)
        return ids[np.clip(i, 0, n - 1)] == ids[np.clip(j, 0, n - 1)]

    def _lower(self, sink):
        sink.leaf_segments(self)


class Cells(_CellsBase):
    """An explicit set of allowed (i, j) pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self._init(pairs=tuple(sorted({(int(a), int(b)) for a, b in pairs})))

    def _make_text(self):
        return f"cells_standin({len(self.pairs)})"

    def _key_fields(self):
        return (self.pairs,)

    def cells(self, q_total, kv_len):
        kept = [(a, b) for a, b in self.pairs if a < q_total and b < kv_len]
        i = np.array([a for a, _ in kept], dtype=np.int64)
        j = np.array([b for _, b in kept], dtype=np.int64)
        return i, j


@njit(cache=False)
def _flex_rule(b, h, i, j, table):
    return table[(i * 7 + j * 3 + b * 5 + h) % table.shape[0]] != 0


class FlexPredicate(P.Pattern):
    """A predicate in FlexAttention's order ``f(b, h, q_idx, kv_idx, *args)`` reading a
    data table: the compiler calls it with the slice's batch element and head."""

    __slots__ = ("table", "jit", "arity")
    _AXIS = "G"

    def __init__(self, table):
        table = np.asarray(table, dtype=np.int64)
        table.setflags(write=False)
        self._init(table=table, jit=_flex_rule, arity=4)

    @property
    def args(self):
        return (self.table,)

    def _make_text(self):
        return f"flex_standin({self.table.tolist()})"

    def _key_fields(self):
        return (tuple(self.table.tolist()),)

    def _reads_slice(self):
        return True

    def expected(self, b, h, q, k, q_offset=0):
        """The mask of slice (b, h): rows q_offset.. of q_offset + q rows."""
        i = np.arange(q_offset, q_offset + q)[:, None]
        j = np.arange(k)[None, :]
        return self.table[(i * 7 + j * 3 + b * 5 + h) % self.table.size] != 0

    def _eval(self, i, j, s):
        return self.table[(i * 7 + j * 3 + s.batch * 5 + s.head) % self.table.size] != 0

    def _lower(self, sink):
        sink.leaf_predicate(self)


def Batched(parts):
    """A different pattern per batch element (the DSL's ``batched``)."""
    return P.batched(list(parts))
