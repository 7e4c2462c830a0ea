"""Compile one slice (one batch element, one head) of a pattern to a one-slice Layout.

Stages, each sized before it allocates (:class:`~maskc.compiler.budget.Budget`):

1. **Program**: the pattern lowers itself into leaves and set operations.
2. **Tables**: each leaf's data becomes block tables and per-row run lists.
3. **Row walk**: every block row is evaluated on run lists (empty stretches skipped),
   first counting blocks and content-key slots, then writing every non-empty block with
   its key (:mod:`maskc.compiler.rowwalk`).
4. **Bits**: one representative block per content key gets its element bits;
   predicates are called only where the rest of the expression leaves them a say.
5. **Finalize**: masks are deduplicated by content; blocks that turned out EMPTY are
   dropped and the candidates become the BSR arrays in place.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from maskc.jit import njit, prange

from maskc.compiler import bits as B
from maskc.compiler import codes
from maskc.compiler.budget import Budget
from maskc.compiler import alloc, interp, npbits
from maskc.compiler.order import leaf_estimates
from maskc.compiler.program import build_program
from maskc.compiler.rowwalk import Blocks, Slots, fill_rows, fill_rows_serial, kept_dtype, walk_rows
from maskc.compiler.runs import arena_bytes
from maskc.compiler.runtime import NS_PER_BIT, NS_PER_BLOCK_WRITTEN, NS_PER_ROW_WALKED, kernel_threads, threads_for
from maskc.compiler.grid import AT_KSEG, AT_QSEG, Grid, make_grid
from maskc.compiler.tables import build_tables
from maskc.ir.layout import Layout

#: Bytes of predicate bits evaluated per batch.
_PRED_BATCH_BYTES = 1 << 26
#: Bytes the row walk keeps per undecided run besides its bounds (its content-key slot).
_UNDECIDED_RUN_BYTES = 4


@dataclass
class CompileStats:
    """Work counters of a compile (summed over slices and block-level inner patterns).

    ``row_runs``: runs and intervals the row walk made; ``blocks``: non-empty blocks
    written; ``keys``: representative blocks evaluated; ``bit_elements``: elements of
    those blocks; ``predicate_calls``: predicate evaluations; ``slice_dependent``: a
    predicate reads the batch element and head, so equal slices are not shared.
    """

    slices: int = 0
    block_rows: int = 0
    row_runs: int = 0
    blocks: int = 0
    keys: int = 0
    bit_elements: int = 0
    predicate_calls: int = 0
    slice_dependent: bool = False
    #: wall-clock seconds per stage (program, tables, walk, bits, finalize)
    seconds: dict = field(default_factory=dict)

    def _lap(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + t - t0
        return t


@functools.lru_cache(maxsize=64)
def _predicate_kernel(fn, arity: int, parallel: bool):
    """A kernel filling ``out[slot[t], a, c] = fn(..., i0[t] + a, j0[t] + c, *args)``."""
    if arity == 2:
        @njit(parallel=parallel)
        def kern(i0s, j0s, rows, cols, slots, out, b, h, args):
            for t in prange(i0s.shape[0]):
                for a in range(rows[t]):
                    for c in range(cols[t]):
                        out[slots[t], a, c] = fn(i0s[t] + a, j0s[t] + c, *args)
    else:
        @njit(parallel=parallel)
        def kern(i0s, j0s, rows, cols, slots, out, b, h, args):
            for t in prange(i0s.shape[0]):
                for a in range(rows[t]):
                    for c in range(cols[t]):
                        out[slots[t], a, c] = fn(b, h, i0s[t] + a, j0s[t] + c, *args)
    return kern


def dedupe_packed(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique packed masks and the id of every input mask (hashing, checked exactly)."""
    n = packed.shape[0]
    if n == 0:
        return packed, np.zeros(0, dtype=np.int64)
    flat = packed.reshape(n, -1)
    pad = -flat.shape[1] % 8
    if pad:
        flat = np.concatenate([flat, np.zeros((n, pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(flat).view(np.uint64)
    _, first, group = np.unique(B.mask_hashes(words), return_index=True, return_inverse=True)
    group = group.reshape(-1).astype(np.int64)
    if not B.same_as_first(words, first.astype(np.int64), group):  # a hash collision: exact
        _, first, group = np.unique(np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1]))).reshape(-1),
                                    return_index=True, return_inverse=True)
        group = group.reshape(-1).astype(np.int64)
    return np.ascontiguousarray(packed[first]), group


def _slot_widths(slots: np.ndarray, lv, grid: Grid) -> np.ndarray:
    """Coordinate range of every key slot (columns of ``slots``: kind, tail, context)."""
    out = np.empty(slots.shape[1], dtype=np.int64)
    from_tables = {codes.K_DIAG: grid.width, codes.K_ANTI: grid.width, codes.K_ROW: grid.n_qb, codes.K_COL: grid.n_kb}
    for s, (kind, ctx) in enumerate(zip(slots[0].tolist(), slots[2].tolist())):
        if kind == codes.K_CONTENT:  # the product of the leaves' distinct contents
            out[s] = int(np.prod([max(int(lv.param[l]), 1) for l in range(len(lv.kind)) if ctx >> l & 1]))
        elif kind in from_tables:
            out[s] = from_tables[kind]
        else:
            leaf = (kind - codes.K_SEG_COL) // 2
            if (kind - codes.K_SEG_COL) % 2 == 0:  # (key block, segment) incidences
                base = lv.at[leaf, AT_KSEG]
                out[s] = lv.kinc_ptr[base + grid.n_kb] - lv.kinc_ptr[base]
            else:
                base = lv.at[leaf, AT_QSEG]
                out[s] = lv.qinc_ptr[base + grid.n_qb] - lv.qinc_ptr[base]
    return out


def _bits(prog, ops, args, lv, grid, rep_qb, rep_kb, budget, stats, b, h):
    """Packed bits and true classes of the representative blocks."""
    n = rep_qb.size
    rmax, cmax = min(grid.bq, grid.q_len), min(grid.bk, grid.kv_len)
    pb = -(-grid.bk // 8)
    budget.take(2 * n * (grid.bq * pb + 1), f"the bits of {n:,} representative blocks")
    packed = np.zeros((n, grid.bq, pb), dtype=np.uint8)
    kclass = np.zeros(n, dtype=np.int8)
    preds = prog.predicates
    pred_of_leaf = np.full(max(len(prog.leaves), 1), -1, dtype=np.int64)
    pred_of_leaf[preds] = np.arange(len(preds))
    threads = threads_for(NS_PER_BIT * n * rmax * cmax)
    budget.take(threads * (ops.size + 1) * rmax * cmax, "the block evaluators' scratch")
    stats.bit_elements += n * rmax * cmax

    def evaluate(s, e, gbits, gslot):
        if interp.is_copy(B.block_bits_serial) and e - s <= interp.MAX_BIT_BLOCKS:  # a compile without numba
            npbits.block_bits(ops, args, lv, grid, rep_qb[s:e], rep_kb[s:e], gbits, gslot, pred_of_leaf,
                              packed[s:e], kclass[s:e])
        elif threads == 1:
            interp.jitted(B.block_bits_serial)(ops, args, lv, grid, rep_qb[s:e], rep_kb[s:e], gbits, gslot,
                                               pred_of_leaf, packed[s:e], kclass[s:e])
        else:
            with kernel_threads(threads):
                B.block_bits(ops, args, lv, grid, rep_qb[s:e], rep_kb[s:e], gbits, gslot, pred_of_leaf,
                             max(1, min(e - s, 4 * threads)), packed[s:e], kclass[s:e])

    if not preds:
        evaluate(0, n, np.zeros((1, 1, 1), np.bool_), np.zeros((1, 1), np.int64))
        return packed, kclass
    with kernel_threads(threads):
        need = np.zeros((n, len(preds)), dtype=np.int64)
        B.predicates_needed(ops, args, lv, grid, pred_of_leaf, rep_qb, rep_kb, need)
        need = need > 0
        step = max(1, _PRED_BATCH_BYTES // (len(preds) * rmax * cmax))
        for s in range(0, n, step):
            e = min(n, s + step)
            nd = need[s:e]
            gslot = np.full(nd.shape, -1, dtype=np.int64)
            gslot[nd] = np.arange(int(nd.sum()))
            gbits = np.zeros((max(int(nd.sum()), 1), rmax, cmax), dtype=np.bool_)
            for p, leaf in enumerate(preds):
                t = np.flatnonzero(nd[:, p])
                if not t.size:
                    continue
                qb, kb = rep_qb[s + t], rep_kb[s + t]
                rows = np.minimum(grid.bq, grid.q_len - qb * grid.bq)
                cols = np.minimum(grid.bk, grid.kv_len - kb * grid.bk)
                call = prog.leaves[leaf].data
                _predicate_kernel(call.jit, call.arity, threads > 1)(grid.q_offset + qb * grid.bq, kb * grid.bk, rows, cols,
                                                        gslot[t, p].copy(), gbits, b, h, call.args)
                stats.predicate_calls += int((rows * cols).sum())
            evaluate(s, e, gbits, gslot)
    return packed, kclass


def compile_slice(pattern, grid: Grid, budget: Budget, stats: CompileStats, b: int = 0, h: int = 0,
                  text: str | None = None, program=None) -> Layout:
    """One-slice Layout of a batch- and head-free pattern at ``grid`` (``program``: the
    pattern already lowered at these sizes)."""
    stats.slices += 1
    stats.block_rows += grid.n_qb
    t = time.perf_counter()
    prog = build_program(pattern, grid.q_total, grid.kv_len, budget) if program is None else program
    if any(leaf.kind == codes.T_PRED and leaf.data.arity == 4 for leaf in prog.leaves):
        stats.slice_dependent = True

    def compile_inner(inner, q_len, kv_len, q_offset, block):
        sub = build_program(inner, q_offset + q_len, kv_len, budget)
        if sub.root[0] == "leaf" and sub.leaves[0].kind in (codes.T_D, codes.T_S, codes.T_R, codes.T_C):
            return sub.leaves[0].kind, sub.leaves[0].data
        return compile_slice(inner, make_grid(q_len, kv_len, q_offset, *block), budget, stats, b, h, text="",
                             program=sub)

    t = stats._lap("program", t)
    lv = build_tables(prog.leaves, grid, budget, compile_inner)
    t = time.perf_counter() if any(leaf.kind == codes.T_BLOCK for leaf in prog.leaves) else stats._lap("tables", t)
    estimates = leaf_estimates(lv, grid)
    ops, args, depth, interests = prog.instructions(estimates, grid.n_kb)
    share = len(prog.leaves) <= codes.CTX_LEAVES
    n_qb = grid.n_qb
    budget.take(n_qb * 40 + arena_bytes(grid.n_kb, depth, interests), "the row walk's scratch")
    counts = np.zeros(n_qb, dtype=np.int64)
    owns = np.zeros(n_qb, dtype=np.int64)
    bound, flag = kept_dtype(grid.n_kb)
    run_bytes = 2 * np.dtype(bound).itemsize
    max_kept = max(0, budget.max_bytes - budget.used) // (run_bytes + _UNDECIDED_RUN_BYTES)
    runs_per_row = min(sum(e.runs for e in estimates) + 2, 2 * grid.n_kb + 2)
    cap = min(max_kept, max(1024, int(n_qb * runs_per_row)))  # untouched capacity costs no memory
    first = (np.empty(cap, bound), np.empty(cap, bound), np.empty(cap, np.int32))
    slots, kept, work = walk_rows(ops, args, lv, grid, share, depth, interests, counts, owns, max_kept, first, flag)
    if work < 0:
        budget.take(budget.max_bytes + 1, "the row walk's runs")
    budget.take(kept.lo.size * run_bytes + kept.und_slot.size * _UNDECIDED_RUN_BYTES, "the row walk's runs")
    stats.row_runs += int(work)
    row_ptr = np.zeros(n_qb + 1, dtype=np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    own_ptr = np.zeros(n_qb + 1, dtype=np.int64)
    np.cumsum(owns, out=own_ptr[1:])
    n_cand = int(row_ptr[-1])
    slot_base = np.zeros(slots.shape[1] + 1, dtype=np.int64)
    np.cumsum(_slot_widths(slots, lv, grid), out=slot_base[1:])
    n_key_space = int(slot_base[-1] + own_ptr[-1])
    budget.take(n_cand * 9 + n_key_space * 17, f"the {n_cand:,} non-empty blocks and their content keys")
    if n_key_space >= 2**31 - 1:
        raise ValueError(f"{n_key_space:,} block contents exceed the int32 mask ids; use a larger block")
    stats.blocks += n_cand
    out = Blocks(row_ptr, own_ptr, alloc.empty(n_cand, np.int32), alloc.empty(n_cand, np.int8),
                 alloc.empty(n_cand, np.int32), alloc.full(n_key_space, -1, np.int64))
    key_slots = Slots(np.ascontiguousarray(slots[0]), np.ascontiguousarray(slots[2]), slot_base)
    threads = threads_for(NS_PER_BLOCK_WRITTEN * n_cand + NS_PER_ROW_WALKED * n_qb)
    if threads == 1:
        fill_rows_serial(lv, grid, kept, key_slots, out, flag)
    else:
        with kernel_threads(threads):
            fill_rows(lv, grid, kept, key_slots, out, min(n_qb, 8 * threads), flag)
    del kept
    cand_col, cand_cls, cand_key, rep = out.col, out.cls, out.key, out.rep
    used = np.flatnonzero(rep >= 0)
    rep_qb, rep_kb = rep[used] >> 32, rep[used] & 0xFFFFFFFF
    del rep
    stats.keys += used.size
    t = stats._lap("walk", t)
    packed, kclass = _bits(prog, ops, args, lv, grid, rep_qb, rep_kb, budget, stats, b, h)
    t = stats._lap("bits", t)
    part = np.flatnonzero(kclass == codes.PARTIAL)
    masks, ids = dedupe_packed(packed[part])
    del packed
    key_pid = np.full(n_key_space, -1, dtype=np.int64)
    key_pid[used[part]] = ids
    key_class = np.zeros(n_key_space, dtype=np.int8)
    key_class[used] = kclass
    threads = threads_for(NS_PER_BLOCK_WRITTEN * n_cand)
    if threads == 1:
        kept = B.finalize(row_ptr, cand_col, cand_cls, cand_key, key_class, key_pid)
    else:
        with kernel_threads(threads):
            empty = B.resolve_rows(row_ptr, cand_cls, cand_key, key_class, key_pid, min(n_qb, 8 * threads))
        kept = B.drop_empty(row_ptr, cand_col, cand_cls, cand_key) if empty else n_cand
    if kept < n_cand:
        cand_col, cand_cls, cand_key = cand_col[:kept].copy(), cand_cls[:kept].copy(), cand_key[:kept].copy()
    stats._lap("finalize", t)
    return Layout(q_len=grid.q_len, kv_len=grid.kv_len, block_q=grid.bq, block_k=grid.bk, row_ptr=row_ptr[None, :],
                  col_idx=cand_col, kind=cand_cls, partial_id=cand_key, masks=masks,
                  pattern_text=pattern.text() if text is None else text, q_offset=grid.q_offset)
