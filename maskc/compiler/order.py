"""Operand order of ``&`` and ``|``: the cheapest order by estimated work per block row.

The row walk evaluates the first operand of an intersection on the whole row, and each
further one only where the result so far is not EMPTY (of a union: not FULL), over the
intervals left. An operand with many runs per row fragments those intervals; a selective
one shrinks them. :func:`leaf_estimates` measures every leaf from its tables (fraction of
blocks not EMPTY, fraction FULL, runs per row); :func:`arrange` picks the order of an
operand list that minimises the estimated work, predicates always last.

Example:
    >>> window = Estimate(nonempty=0.004, full=0.003, runs=5.0)
    >>> sums = Estimate(nonempty=0.06, full=0.0, runs=1000.0)
    >>> arrange([sums, window], is_and=True, n_kb=8192)[0]
    [1, 0]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from maskc.compiler import codes
from maskc.compiler.coarse import axis_estimate
from maskc.compiler.grid import AT_COARSE, AT_RUNS, AT_TAB, Grid, LeafTables


@dataclass(frozen=True)
class Estimate:
    """What a leaf or subtree says on an average block row."""

    nonempty: float
    full: float
    runs: float
    predicate: bool = False

    def negated(self) -> "Estimate":
        return Estimate(1.0 - self.full, 1.0 - self.nonempty, self.runs, self.predicate)


def leaf_estimates(lv: LeafTables, grid: Grid) -> list[Estimate]:
    """An :class:`Estimate` of every leaf, from its class tables or run lists."""
    out = []
    for l, kind in enumerate(lv.kind.tolist()):
        at = int(lv.at[l, AT_TAB])
        if kind in (codes.T_D, codes.T_S, codes.T_C, codes.T_R):
            n = {codes.T_R: grid.n_qb, codes.T_C: grid.n_kb}.get(kind, grid.width)
            cls, steps = lv.tab_cls[at: at + n], lv.tab_steps[at: at + n]
            runs = 1.0 if kind == codes.T_R else float(np.count_nonzero(steps == 1))
            if kind in (codes.T_D, codes.T_S):
                runs *= grid.n_kb / grid.width
            out.append(Estimate(float(np.mean(cls != codes.EMPTY)), float(np.mean(cls == codes.FULL)), max(runs, 1.0)))
        elif kind == codes.T_PRED:
            out.append(Estimate(1.0, 0.0, 1.0, predicate=True))
        elif lv.at[l, AT_RUNS] < 0:  # block level on the grid: from its coarse runs (all FULL)
            at = int(lv.at[l, AT_COARSE])
            b = int(lv.param[l])
            rows, cols = -(-grid.q_total // b) - grid.q_offset // b, -(-grid.kv_len // b)
            if lv.coarse_axis[l] >= 0:  # one-axis inner pattern: from its membership runs
                m0, m1 = int(lv.coarse_ptr[at]), int(lv.coarse_ptr[at + 1])
                share, runs = axis_estimate(int(lv.coarse_axis[l]), lv.coarse_lo[m0:m1], lv.coarse_hi[m0:m1],
                                            int(lv.coarse_row0[l]), rows, cols)
                out.append(Estimate(share, share, 1.0 + 2.0 * runs))
                continue
            ptr = lv.coarse_ptr[at: at + rows + 1]
            lo, hi = (a[ptr[0]: ptr[-1]] for a in (lv.coarse_lo, lv.coarse_hi))
            share = float(hi.sum() - lo.sum()) / (rows * cols)
            out.append(Estimate(share, share, 1.0 + 2.0 * (ptr[-1] - ptr[0]) / rows))
        else:
            ptr = lv.run_ptr[int(lv.at[l, AT_RUNS]): int(lv.at[l, AT_RUNS]) + grid.n_qb + 1]
            lo, hi, cls = (a[ptr[0]: ptr[-1]] for a in (lv.run_lo, lv.run_hi, lv.run_cls))
            area = float(grid.n_qb * grid.n_kb)
            full = cls == codes.FULL
            covered = float(hi.sum() - lo.sum())
            covered_full = float(np.sum(hi, where=full) - np.sum(lo, where=full))
            out.append(Estimate(covered / area, covered_full / area, 1.0 + 2.0 * (ptr[-1] - ptr[0]) / grid.n_qb))
    return out


def combined(parts: list[Estimate], is_and: bool) -> Estimate:
    """The estimate of ``a & b & ...`` (or ``|``) taking the operands as independent."""
    ne = [p.nonempty for p in parts]
    fu = [p.full for p in parts]
    if is_and:
        nonempty, full = float(np.prod(ne)), float(np.prod(fu))
    else:
        nonempty, full = 1.0 - float(np.prod([1 - x for x in ne])), 1.0 - float(np.prod([1 - x for x in fu]))
    return Estimate(nonempty, full, sum(p.runs for p in parts), any(p.predicate for p in parts))


def _work(seq: list[Estimate], is_and: bool, n_kb: int) -> float:
    left, intervals, work = float(n_kb), 1.0, 0.0  # blocks still in question, in how many intervals
    for e in seq:
        share = left / n_kb
        work += intervals + e.runs * share
        left *= e.nonempty if is_and else 1.0 - e.full
        intervals = min(max(intervals, 0.5 * e.runs * share), max(left, 1.0))
    return work


def arrange(parts: list[Estimate], is_and: bool, n_kb: int) -> tuple[list[int], Estimate]:
    """Evaluation order of operands (indices) and the estimate of the combination."""
    cheap = [i for i, p in enumerate(parts) if not p.predicate]
    last = [i for i, p in enumerate(parts) if p.predicate]
    if len(cheap) <= 6:
        best = min(itertools.permutations(cheap), key=lambda o: _work([parts[i] for i in o], is_and, n_kb))
    else:
        best = sorted(cheap, key=lambda i: parts[i].nonempty if is_and else parts[i].runs)
    return list(best) + last, combined(parts, is_and)
