"""Stand-in pattern nodes for the parts of the lowering protocol the DSL provides.

Each node lowers itself through ``lower(sink)`` (the compiler's sink protocol) and has
its own element-by-element definition (``_eval``), so the compiler's side of segment ids,
explicit cells, FlexAttention-style predicates with data, and per-batch patterns is
tested independently of how the DSL builds them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from maskc.patterns import core as P


def _set(obj, **values):
    for k, v in values.items():
        object.__setattr__(obj, k, v)


class SegmentIds(P.Pattern):
    """seg(i) == seg(j) with arbitrary integer ids: not sorted, negative, with gaps.

    Position x has id ``ids[x % len(ids)] + (x // len(ids)) * shift``: with ``shift = 0``
    the ids repeat, with a large shift every period has ids of its own.
    """

    axis = "SEG"

    def __init__(self, ids, shift=0):
        _set(self, ids=tuple(int(x) for x in ids), shift=int(shift))

    def text(self):
        return f"segment_ids_standin({list(self.ids)}, shift={self.shift})"

    def _key(self):
        return (self.ids, self.shift)

    def segment_ids(self, n):
        x = np.arange(n)
        return np.asarray(self.ids, dtype=np.int64)[x % len(self.ids)] + (x // len(self.ids)) * self.shift

    def _eval(self, i, j, q, k):
        ids = self.segment_ids(max(q, k))
        return ids[i] == ids[j]

    def lower(self, sink):
        sink.leaf_segments(self)


class Cells(P.Pattern):
    """An explicit set of allowed (i, j) pairs."""

    def __init__(self, pairs):
        _set(self, pairs=tuple(sorted({(int(a), int(b)) for a, b in pairs})))

    def text(self):
        return f"cells_standin({len(self.pairs)})"

    def _key(self):
        return (self.pairs,)

    def cells(self, q_total, kv_len):
        kept = [(a, b) for a, b in self.pairs if a < q_total and b < kv_len]
        i = np.array([a for a, _ in kept], dtype=np.int64)
        j = np.array([b for _, b in kept], dtype=np.int64)
        return i, j

    def _eval(self, i, j, q, k):
        m = np.zeros((q, k), dtype=bool)
        a, b = self.cells(q, k)
        m[a, b] = True
        return m[np.clip(i, 0, q - 1), np.clip(j, 0, k - 1)]

    def lower(self, sink):
        sink.leaf_cells(self)


@njit(cache=False)
def _flex_rule(b, h, i, j, table):
    return table[(i * 7 + j * 3 + b * 5 + h) % table.shape[0]] != 0


class FlexPredicate(P.Pattern):
    """A predicate in FlexAttention's order ``f(b, h, q_idx, kv_idx, *args)`` reading a
    data table: the compiler calls it with the slice's batch element and head."""

    axis = "G"
    arity = 4

    def __init__(self, table):
        _set(self, table=np.asarray(table, dtype=np.int64), jit=_flex_rule)
        self.table.setflags(write=False)

    @property
    def args(self):
        return (self.table,)

    def text(self):
        return f"flex_standin({self.table.tolist()})"

    def _key(self):
        return (tuple(self.table.tolist()),)

    def expected(self, b, h, q, k, q_offset=0):
        """The mask of slice (b, h): rows q_offset.. of q_offset + q rows."""
        i = np.arange(q_offset, q_offset + q)[:, None]
        j = np.arange(k)[None, :]
        return self.table[(i * 7 + j * 3 + b * 5 + h) % self.table.size] != 0

    def _eval(self, i, j, q, k):
        return self.table[(i * 7 + j * 3) % self.table.size] != 0

    def lower(self, sink):
        sink.leaf_predicate(self)


class Batched(P.Pattern):
    """A different pattern per batch element: ``n_batch`` and ``for_batch(b)``."""

    def __init__(self, parts):
        _set(self, items=tuple(parts))

    @property
    def n_batch(self):
        return len(self.items)

    def for_batch(self, b):
        return self.items[b]

    def children(self):
        return self.items

    def text(self):
        return "batched_standin([" + ", ".join(p.text() for p in self.items) + "])"

    def _key(self):
        return self.items

    def _eval(self, i, j, q, k):  # pragma: no cover - compile resolves batch elements first
        raise TypeError("a batched pattern is evaluated per batch element")
