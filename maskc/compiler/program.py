"""The compiler's view of one pattern slice: a :class:`Program` of leaves and set operations.

A pattern lowers itself into a Program (the *sink* of ``Pattern.lower``): every leaf
node calls one ``leaf_*`` method, which records the leaf's data at the sizes being
compiled, and every combinator calls :meth:`Program.op` after lowering its operands.
The Program keeps the expression as a tree of leaf indices and emits it as a linear
instruction stream (:meth:`Program.instructions`) for the numba kernels.

Example:
    >>> import maskc as mc
    >>> prog = build_program(mc.causal() & (mc.window(3) | mc.cols(2)), q_total=64, kv_len=64)
    >>> [leaf.text for leaf in prog.leaves]
    ['causal()', 'window(3)', 'cols(2)']
    >>> prog.root
    ('and', (('leaf', 0), ('or', (('leaf', 1), ('leaf', 2)))))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from maskc.compiler import codes
from maskc.compiler.budget import Budget
from maskc.compiler.order import Estimate, arrange
from maskc.errors import TooLargeError

_AXIS_KIND = {"D": codes.T_D, "S": codes.T_S, "R": codes.T_R, "C": codes.T_C}
_AXIS_KINDS = frozenset(_AXIS_KIND.values())
#: a guess of the fraction of blocks a leaf kind leaves non-empty, for programs built
#: without estimates (a segment leaf leaves a row's own documents, a predicate everything)
_SELECTIVITY = {codes.T_SEG: 0, codes.T_CELLS: 0, codes.T_BLOCK: 1, codes.T_R: 2, codes.T_C: 3,
                codes.T_D: 4, codes.T_S: 4, codes.T_PRED: 9}


@dataclass(frozen=True)
class Leaf:
    """One leaf of a Program.

    ``data`` by kind: T_D / T_S / T_R / T_C a bool membership array (over d + kv_len - 1,
    s, i or j); T_SEG int64 segment ids of positions 0..max(q_total, kv_len)-1; T_BLOCK
    ``(inner pattern, coarse block)``; T_CELLS ``(i, j)`` int64 arrays of allowed pairs;
    T_PRED a :class:`PredicateCall`.
    """

    kind: int
    data: Any
    text: str


@dataclass(frozen=True)
class PredicateCall:
    """How the compiler calls a predicate: ``jit(i, j, *args)`` (arity 2) or
    ``jit(b, h, i, j, *args)`` (arity 4, FlexAttention's mask_mod order)."""

    jit: Callable
    arity: int
    args: tuple


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _call_pattern(what: str, fn: Callable, *args):
    """Call into the pattern; a MemoryError there becomes a TooLargeError naming the leaf."""
    try:
        return fn(*args)
    except MemoryError:
        raise TooLargeError(f"{what} does not fit in memory at these sizes; use shorter lengths "
                            "or a pattern with smaller parameters") from None


def _leaf_ids(node: tuple) -> int:
    """The smallest leaf index in ``node``."""
    if node[0] == "leaf":
        return node[1]
    if node[0] == "not":
        return _leaf_ids(node[1])
    return min(_leaf_ids(kid) for kid in node[1])


class Program:
    """The sink of ``Pattern.lower``: leaves with their data at ``(q_total, kv_len)``.

    ``q_total`` is the number of query rows the pattern sees (``q_offset + q_len``).
    Leaf methods check the memory their data takes against ``budget`` before asking the
    pattern for it.
    """

    def __init__(self, q_total: int, kv_len: int, budget: Budget | None = None):
        self.q_total, self.kv_len = int(q_total), int(kv_len)
        self.budget = budget if budget is not None else Budget()
        self.leaves: list[Leaf] = []
        self._stack: list[tuple] = []

    # ------------------------------------------------------------ sink protocol
    def leaf_axis(self, node) -> None:
        """A rule on one axis (``node.axis`` in D, S, R, C) given by ``node.membership``."""
        kind = _AXIS_KIND[node.axis]
        q, k = self.q_total, self.kv_len
        size = {codes.T_D: q + k - 1, codes.T_S: q + k - 1, codes.T_R: q, codes.T_C: k}[kind]
        text = _short(node.text())
        # the pattern's own temporaries (offsets, rule), its bool array, the tables' copy
        self.budget.take(24 * size, f"the membership array of {text} ({size:,} entries)",
                         "a leaf on one axis is evaluated at every offset of the sequences: use shorter "
                         "lengths, or raise max_bytes")
        memb = np.asarray(_call_pattern(f"the membership array of {text}", node.membership, q, k))
        if memb.shape != (size,):
            raise ValueError(f"{text}: membership({q}, {k}) has shape {memb.shape}, expected ({size},)")
        self._push(Leaf(kind, memb.astype(bool, copy=False), text))

    def leaf_segments(self, node) -> None:
        """seg(i) == seg(j) with ``node.segment_ids(n)`` (any integers; one id per position)."""
        n = max(self.q_total, self.kv_len)
        text = _short(node.text())
        self.budget.take(24 * n, f"the segment ids of {text} ({n:,} positions)",
                         "use shorter lengths, or raise max_bytes")
        ids = np.asarray(_call_pattern(f"the segment ids of {text}", node.segment_ids, n))
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{text}: segment_ids({n}) must be {n} integers, got {ids.dtype} {ids.shape}")
        self._push(Leaf(codes.T_SEG, ids.astype(np.int64, copy=False), text))

    def leaf_predicate(self, node) -> None:
        """A numba predicate: ``node.jit``, ``node.arity`` (2 or 4), ``node.args``."""
        arity = int(getattr(node, "arity", 2))
        if arity not in (2, 4):
            raise ValueError(f"{_short(node.text())}: predicate arity must be 2 (i, j) or 4 (b, h, i, j), got {arity}")
        call = PredicateCall(node.jit, arity, tuple(getattr(node, "args", ())))
        self._push(Leaf(codes.T_PRED, call, _short(node.text())))

    def leaf_block_level(self, node) -> None:
        """``node.inner`` applied to cells ``(i // node.block, j // node.block)``."""
        self._push(Leaf(codes.T_BLOCK, (node.inner, int(node.block)), _short(node.text())))

    def leaf_cells(self, node) -> None:
        """An explicit set of allowed pairs, ``node.cells(q_total, kv_len) -> (i, j)``."""
        text = _short(node.text())
        i, j = _call_pattern(f"the cells of {text}", node.cells, self.q_total, self.kv_len)
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        if i.shape != j.shape or i.ndim != 1:
            raise ValueError(f"{text}: cells() must return two 1-D arrays of equal length")
        if i.size and (i.min() < 0 or i.max() >= self.q_total or j.min() < 0 or j.max() >= self.kv_len):
            raise ValueError(f"{text}: cells() returned a pair outside [0, {self.q_total}) x [0, {self.kv_len})")
        self.budget.take(40 * i.size, f"the cells of {text}")
        self._push(Leaf(codes.T_CELLS, (i, j), text))

    def op(self, name: str, n: int) -> None:
        """Combine the last ``n`` results: ``"and"``, ``"or"`` (n >= 2) or ``"not"`` (n == 1)."""
        if name not in ("and", "or", "not") or (name == "not") != (n == 1) or n < 1 or n > len(self._stack):
            raise ValueError(f"bad program op {name!r} on {n} operands ({len(self._stack)} on the stack)")
        parts = self._stack[-n:]
        del self._stack[-n:]
        if name == "not":
            node = parts[0][1] if parts[0][0] == "not" else ("not", parts[0])
        else:
            flat: list[tuple] = []
            for p in parts:
                flat.extend(p[1] if p[0] == name else (p,))
            flat = self._merge_axis_leaves(name, flat)
            node = flat[0] if len(flat) == 1 else (name, tuple(flat))
        self._stack.append(node)

    def _merge_axis_leaves(self, name: str, operands: list[tuple]) -> list[tuple]:
        """Operands that are leaves on the same axis become one leaf (their memberships
        combined element by element), so a union of many offsets or windows costs one leaf.

        The operands' leaves are the tail of ``self.leaves`` (leaves and results are pushed
        in the same order), so they are renumbered in place.
        """
        groups: dict[int, list[int]] = {}
        for at, p in enumerate(operands):
            if p[0] == "leaf" and self.leaves[p[1]].kind in _AXIS_KINDS:
                groups.setdefault(self.leaves[p[1]].kind, []).append(at)
        if all(len(g) < 2 for g in groups.values()):
            return operands
        first = min(_leaf_ids(p) for p in operands)
        old = self.leaves[first:]
        del self.leaves[first:]
        merged_at = {g[0]: g for g in groups.values() if len(g) > 1}
        dropped = {at for g in merged_at.values() for at in g[1:]}
        combine = np.logical_or if name == "or" else np.logical_and
        out: list[tuple] = []
        for at, p in enumerate(operands):
            if at in dropped:
                continue
            if at in merged_at:
                members = [old[operands[a][1] - first] for a in merged_at[at]]
                memb = combine.reduce([m.data for m in members])
                text = _short(f" {'|' if name == 'or' else '&'} ".join(m.text for m in members))
                self.leaves.append(Leaf(members[0].kind, memb, text))
                out.append(("leaf", len(self.leaves) - 1))
            else:
                out.append(self._renumber(p, old, first))
        return out

    def _renumber(self, node: tuple, old: list[Leaf], first: int) -> tuple:
        """``node`` with its leaves appended again to ``self.leaves`` (from ``old``, offset ``first``)."""
        if node[0] == "leaf":
            self.leaves.append(old[node[1] - first])
            return ("leaf", len(self.leaves) - 1)
        if node[0] == "not":
            return ("not", self._renumber(node[1], old, first))
        return (node[0], tuple(self._renumber(kid, old, first) for kid in node[1]))

    def _push(self, leaf: Leaf) -> None:
        self.leaves.append(leaf)
        self._stack.append(("leaf", len(self.leaves) - 1))

    # ------------------------------------------------------------ results
    @property
    def root(self) -> tuple:
        """The expression tree: ``("leaf", l)``, ``("not", node)``, ``("and" | "or", nodes)``."""
        if len(self._stack) != 1:
            raise ValueError(f"the pattern lowered to {len(self._stack)} results instead of one")
        return self._stack[0]

    @property
    def predicates(self) -> list[int]:
        """Indices of the predicate leaves."""
        return [i for i, leaf in enumerate(self.leaves) if leaf.kind == codes.T_PRED]

    def instructions(self, estimates: list[Estimate] | None = None,
                     n_kb: int = 1) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(ops, args, max_results, max_interests)`` of the instruction stream.

        Each further operand of ``&`` is evaluated only where the result is not yet
        EMPTY (of ``|``: not yet FULL). Operands come in the order of least estimated
        work (:func:`maskc.compiler.order.arrange`, from per-leaf ``estimates`` for rows
        of ``n_kb`` key blocks; without estimates, by kind), predicates last.
        ``max_results`` / ``max_interests`` are the deepest the evaluators' stacks go.
        """
        ops: list[int] = []
        args: list[int] = []
        if estimates is None:
            estimates = [Estimate(_SELECTIVITY[leaf.kind] / 10, 0.0, 1.0, leaf.kind == codes.T_PRED)
                         for leaf in self.leaves]

        def plan(node) -> tuple[tuple, Estimate]:
            """The node with its operands in evaluation order, and its estimate."""
            if node[0] == "leaf":
                return node, estimates[node[1]]
            if node[0] == "not":
                kid, est = plan(node[1])
                return ("not", kid), est.negated()
            planned = [plan(kid) for kid in node[1]]
            order, est = arrange([e for _, e in planned], node[0] == "and", n_kb)
            return (node[0], tuple(planned[i][0] for i in order)), est

        def emit(node) -> None:
            if node[0] == "leaf":
                ops.append(codes.OP_LEAF)
                args.append(node[1])
            elif node[0] == "not":
                emit(node[1])
                ops.append(codes.OP_NOT)
                args.append(0)
            else:
                is_and = node[0] == "and"
                emit(node[1][0])
                for kid in node[1][1:]:
                    at = len(ops)
                    ops.append(codes.OP_NARROW_AND if is_and else codes.OP_NARROW_OR)
                    args.append(-1)
                    emit(kid)
                    args[at] = len(ops)  # the matching combine
                    ops.append(codes.OP_AND if is_and else codes.OP_OR)
                    args.append(0)

        emit(plan(self.root)[0])
        depth = interests = max_depth = max_interests = 0
        for op in ops:
            if op == codes.OP_LEAF:
                depth += 1
            elif op in (codes.OP_NARROW_AND, codes.OP_NARROW_OR):
                interests += 1
            elif op in (codes.OP_AND, codes.OP_OR):
                depth -= 1
                interests -= 1
            max_depth, max_interests = max(max_depth, depth), max(max_interests, interests)
        return np.asarray(ops, np.int64), np.asarray(args, np.int64), max_depth, max_interests


def build_program(pattern, q_total: int, kv_len: int, budget: Budget | None = None) -> Program:
    """Lower a batch- and head-free pattern into a :class:`Program` at ``(q_total, kv_len)``."""
    prog = Program(q_total, kv_len, budget)
    pattern.lowered().lower(prog)
    prog.root  # exactly one result
    return prog
