"""Helpers of the pattern tests: a reference sink for ``Pattern.lower`` and the compiler check.

``lowered_dense`` evaluates a pattern *only* through the compiler protocol (``lower`` and
the data it hands over: memberships, segment ids, numba predicates, block-level inners,
explicit cells), on the whole token grid. It is an independent second reading of every
node next to ``Pattern.dense`` (which uses the element rules), so a node whose ``lower``
or data disagrees with its definition fails here even before the compiler reads it.
"""

from __future__ import annotations

import numpy as np
import pytest

import maskc as mc


class RecordingSink:
    """Records the calls a pattern's ``lower`` makes (for tests of the protocol itself)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def leaf_axis(self, node):
        self.calls.append(("axis", node.axis, node.text()))

    def leaf_segments(self, node):
        self.calls.append(("segments", node.text()))

    def leaf_predicate(self, node):
        self.calls.append(("predicate", node.name, node.arity))

    def leaf_block_level(self, node):
        self.calls.append(("block_level", node.block, node.inner.text()))

    def leaf_cells(self, node):
        self.calls.append(("cells", node.text()))

    def op(self, name, n):
        self.calls.append(("op", name, n))


class DenseSink:
    """A postfix evaluator of the lowering protocol on the whole [q_total, kv_len] grid."""

    def __init__(self, q_total: int, kv_len: int, batch: int = 0, head: int = 0):
        self.q, self.k, self.b, self.h = q_total, kv_len, batch, head
        self.i = np.arange(q_total, dtype=np.int64)[:, None]
        self.j = np.arange(kv_len, dtype=np.int64)[None, :]
        self.stack: list[np.ndarray] = []

    def leaf_axis(self, node):
        m = np.asarray(node.membership(self.q, self.k), dtype=bool)
        x = {"D": self.i - self.j + self.k - 1, "S": self.i + self.j,
             "R": self.i + 0 * self.j, "C": self.j + 0 * self.i}[node.axis]
        want = self.q + self.k - 1 if node.axis in "DS" else (self.q if node.axis == "R" else self.k)
        assert m.shape == (want,), f"{node.text()}: membership of length {m.shape}, expected {want}"
        self.stack.append(m[x])

    def leaf_segments(self, node):
        n = max(self.q, self.k)
        ids = node.segment_ids(n)
        assert ids.shape == (n,) and (np.diff(ids) >= 0).all()
        self.stack.append(ids[self.i] == ids[self.j])

    def leaf_predicate(self, node):
        out = np.zeros((self.q, self.k), dtype=bool)
        for a in range(self.q):
            for c in range(self.k):
                pos = (self.b, self.h, a, c) if node.arity == 4 else (a, c)
                out[a, c] = bool(node.jit(*pos, *node.args))
        self.stack.append(out)

    def leaf_block_level(self, node):
        b = node.block
        inner = DenseSink(-(-self.q // b), -(-self.k // b), self.b, self.h).run(node.inner)
        self.stack.append(inner[self.i // b, self.j // b])

    def leaf_cells(self, node):
        ci, cj = node.cells(self.q, self.k)
        assert ci.dtype == np.int64 and cj.dtype == np.int64
        key = ci * self.k + cj
        assert (np.diff(key) > 0).all(), "cells must be sorted and distinct"
        out = np.zeros((self.q, self.k), dtype=bool)
        out[ci, cj] = True
        self.stack.append(out)

    def op(self, name, n):
        args = [self.stack.pop() for _ in range(n)][::-1]
        if name == "not":
            assert n == 1
            self.stack.append(~args[0])
        else:
            assert n >= 2 and name in ("and", "or")
            out = args[0]
            for a in args[1:]:
                out = out & a if name == "and" else out | a
            self.stack.append(out)

    def run(self, pattern) -> np.ndarray:
        pattern.lower(self)
        assert len(self.stack) == 1, f"{pattern.text()} left {len(self.stack)} values"
        return np.broadcast_to(self.stack.pop(), (self.q, self.k))


def lowered_dense(p, q_len: int, kv_len: int | None = None, q_offset: int = 0) -> np.ndarray:
    """What the lowering protocol says, shaped like ``p.dense(q_len, kv_len, q_offset=q_offset)``."""
    q_total = q_offset + q_len
    kv_len = q_total if kv_len is None else kv_len
    B, H = p.n_batch, p.n_heads
    out = np.zeros((B or 1, H or 1, q_len, kv_len), dtype=bool)
    for b in range(B or 1):
        for h in range(H or 1):
            node = p.for_batch(b).for_head(h)
            out[b, h] = DenseSink(q_total, kv_len, b if B else 0, h if H else 0).run(node)[q_offset:]
    return out if B is not None and B > 1 else out[0]


def compiled_dense(p, q_len: int, kv_len: int | None = None, block=16, **kw) -> np.ndarray:
    """``mc.compile(...).to_dense()``."""
    return mc.compile(p, q_len, kv_len, block=block, **kw).to_dense()
