"""``mc.compile``: lower a Pattern to a Layout without materialising the N x N mask.

Steps, per head (see DESIGN.md "Compilation without N x N"):

1. *Program*: the head's pattern is flattened into a postfix program whose leaves are
   maximal single-axis subtrees (a union of Toeplitz rules becomes one membership
   array over d = i - j, and so on), segment rules, block-level rules and predicates.
2. *Classify* every block EMPTY / PARTIAL / FULL / UNKNOWN from prefix counts
   (numba, parallel over block rows): O(n_qb * n_kb * leaves), no element work.
3. *Key* every undecided block by what provably determines its content (its diagonal
   for Toeplitz-only blocks, plus the classes of the decided leaves), so a Toeplitz
   pattern evaluates one representative block per diagonal, not one per block.
4. *Bits*: element bits only for representative blocks, only for their undecided
   leaves; deduplicate the packed masks; drop blocks that turn out empty.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from maskc.compiler import kernels as K
from maskc.errors import TooLargeError
from maskc.ir.convert import dedupe_masks
from maskc.ir.layout import FULL, PARTIAL, Layout, normalize_block
from maskc.patterns import core as P

#: Default cap on the compiler's working memory (bytes), checked before allocating.
DEFAULT_MAX_BYTES = 6 * 2**30
#: Representative blocks evaluated per batch when predicates are present.
_PRED_CHUNK = 1024
_CACHE: "OrderedDict[tuple, Layout]" = OrderedDict()
_CACHE_SIZE = 32
_LOCK = threading.Lock()


@contextlib.contextmanager
def _keep_torch_threads():
    """Restore torch's intra-op thread count after numba's parallel kernels.

    numba's OpenMP threading layer shares libgomp with torch, and a parallel launch sets
    the OpenMP thread count: without this, compiling a layout would silently change
    ``torch.get_num_threads()`` (e.g. from 1 back to all cores) for the rest of the process.
    """
    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if n is not None and torch.get_num_threads() != n:
            torch.set_num_threads(n)


def clear_cache() -> None:
    """Forget every cached compilation."""
    with _LOCK:
        _CACHE.clear()


@dataclass
class Program:
    """A head's pattern flattened for the numba kernels (see maskc.compiler.kernels)."""

    ops: list = field(default_factory=list)
    args: list = field(default_factory=list)
    ltype: list = field(default_factory=list)
    membs: list = field(default_factory=list)  # uint8 arrays (D/S/R/C), else empty
    auxs: list = field(default_factory=list)  # int64 arrays (SEG ids, B coarse CSR)
    p0: list = field(default_factory=list)
    p1: list = field(default_factory=list)
    preds: list = field(default_factory=list)  # (leaf index, Predicate)

    def add_leaf(self, ltype: int, memb=None, aux=None, p0: int = 0, p1: int = 0) -> None:
        self.ops.append(K.OP_LEAF)
        self.args.append(len(self.ltype))
        self.ltype.append(ltype)
        self.membs.append(np.zeros(0, np.uint8) if memb is None else np.asarray(memb, dtype=np.uint8))
        self.auxs.append(np.zeros(0, np.int64) if aux is None else np.asarray(aux, dtype=np.int64))
        self.p0.append(p0)
        self.p1.append(p1)

    def arrays(self):
        """Concatenate leaf data into the flat arrays the kernels take.

        ``memb`` and ``pref`` share offsets ``po``: leaf l's membership is
        ``memb[po[l]:po[l] + n_l]`` and its prefix counts ``pref[po[l]:po[l] + n_l + 1]``.
        """
        L = len(self.ltype)
        sizes = np.array([m.size + 1 for m in self.membs], dtype=np.int64)
        po = np.zeros(L, dtype=np.int64)
        if L:
            po[1:] = np.cumsum(sizes)[:-1]
        total = int(sizes.sum()) if L else 1
        memb = np.zeros(max(total, 1), dtype=np.uint8)
        pref = np.zeros(max(total, 1), dtype=np.int64)
        for l, m in enumerate(self.membs):
            memb[po[l]: po[l] + m.size] = m
            np.cumsum(m, out=pref[po[l] + 1: po[l] + m.size + 1])
        ao = np.zeros(L, dtype=np.int64)
        if L:
            ao[1:] = np.cumsum([a.size for a in self.auxs])[:-1]
        aux = np.concatenate(self.auxs) if any(a.size for a in self.auxs) else np.zeros(1, np.int64)
        return dict(
            ops=np.asarray(self.ops, dtype=np.int64),
            args=np.asarray(self.args, dtype=np.int64),
            ltype=np.asarray(self.ltype, dtype=np.int64),
            pref=pref,
            memb=memb,
            po=po,
            aux=aux.astype(np.int64, copy=False),
            ao=ao,
            p0=np.asarray(self.p0, dtype=np.int64),
            p1=np.asarray(self.p1, dtype=np.int64),
        )


_AXIS_TYPE = {"D": K.T_D, "S": K.T_S, "R": K.T_R, "C": K.T_C}


def build_program(pattern: P.Pattern, q_len: int, kv_len: int) -> Program:
    """Flatten a head-free, lowered pattern into a :class:`Program`."""
    prog = Program()

    def emit(node: P.Pattern) -> None:
        ax = node.axis
        if ax in _AXIS_TYPE:
            prog.add_leaf(_AXIS_TYPE[ax], memb=node.membership(q_len, kv_len))
        elif isinstance(node, (P.Or, P.And)):
            for c in node.parts:
                emit(c)
            prog.ops.append(K.OP_OR if isinstance(node, P.Or) else K.OP_AND)
            prog.args.append(len(node.parts))
        elif isinstance(node, P.Not):
            emit(node.a)
            prog.ops.append(K.OP_NOT)
            prog.args.append(0)
        elif isinstance(node, P.Segments):
            prog.add_leaf(K.T_SEG, aux=node.segment_ids(max(q_len, kv_len)))
        elif isinstance(node, P.Predicate):
            prog.preds.append((len(prog.ltype), node))
            prog.add_leaf(K.T_G)
        elif isinstance(node, P.BlockLevel):
            b = node.block
            cq, ck = -(-q_len // b), -(-kv_len // b)
            inner = _compile_head(node.inner, cq, ck, _inner_block(cq), _inner_block(ck))
            csr = inner.to_scipy("csr")
            csr.sort_indices()
            idx = csr.indices.astype(np.int64)
            # run_end[e]: position of the last element of the run of consecutive columns holding e
            brk = np.ones(idx.size, dtype=bool)
            if idx.size:
                brk[:-1] = idx[1:] != idx[:-1] + 1
                brk[csr.indptr[1:-1] - 1] = True  # runs never cross rows
            pos = np.arange(idx.size)
            run_end = np.minimum.accumulate(np.where(brk, pos, idx.size)[::-1])[::-1] if idx.size else pos
            aux = np.concatenate([csr.indptr.astype(np.int64), idx, run_end.astype(np.int64)])
            prog.add_leaf(K.T_B, aux=aux, p0=b, p1=cq)
        else:  # pragma: no cover - every node type is handled above
            raise TypeError(f"the compiler does not know pattern node {type(node).__name__}")

    emit(pattern.lowered())
    return prog


def _inner_block(n: int) -> int:
    return 64 if n >= 64 else 16


@functools.lru_cache(maxsize=None)
def _predicate_kernel(pred: P.Predicate):
    from numba import njit, prange

    fn = pred.jit

    @njit(parallel=True)
    def kern(i0s, j0s, rows, cols, out, g):
        for t in prange(i0s.shape[0]):
            for a in range(rows[t]):
                for b in range(cols[t]):
                    out[g, t, a, b] = fn(i0s[t] + a, j0s[t] + b)

    return kern


def _compile_head(pattern: P.Pattern, q_len: int, kv_len: int, bq: int, bk: int,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> Layout:
    """Compile one head-free pattern to a single-head Layout."""
    n_qb, n_kb = -(-q_len // bq), -(-kv_len // bk)
    prog = build_program(pattern, q_len, kv_len)
    A = prog.arrays()
    common = (A["ltype"], A["pref"], A["po"], A["aux"], A["ao"], A["p0"], A["p1"], q_len, kv_len)

    g = math.gcd(bq, bk)
    tab_cls, tab_run, to = _leaf_tables(prog, A, q_len, kv_len, bq, bk, g)
    walk = (A["ops"], A["args"], *common, bq, bk, g, tab_cls, tab_run, to, 31)
    counts = np.zeros(n_qb, dtype=np.int64)
    uniq = np.zeros(n_qb, dtype=np.int64)
    slot_kind, slot_tail, slot_ctx = K.plan_rows(*walk, counts, uniq)
    cand_ptr = np.zeros(n_qb + 1, dtype=np.int64)
    np.cumsum(counts, out=cand_ptr[1:])
    uniq_ptr = np.zeros(n_qb + 1, dtype=np.int64)
    np.cumsum(uniq, out=uniq_ptr[1:])
    n_cand = int(cand_ptr[-1])
    W = max(((n_qb - 1) * bq + (n_kb - 1) * bk) // g + 1, n_qb, n_kb)
    n_key_space = slot_kind.size * W + int(uniq_ptr[-1])
    need = n_cand * (4 + 1 + 4) + n_key_space * 8
    if need > max_bytes:
        raise TooLargeError(
            f"the layout has {n_cand:,} non-empty blocks and needs about {need / 2**30:.1f} GiB to build, above "
            f"max_bytes={max_bytes / 2**30:.1f} GiB; use a larger block or a sparser pattern"
        )
    if n_key_space >= 2**31 - 1:
        raise TooLargeError(f"{n_key_space:,} distinct block contents exceed the int32 mask ids; use a larger block")
    cand_col = np.empty(n_cand, dtype=np.int32)
    cand_cls = np.empty(n_cand, dtype=np.int8)
    cand_key = np.empty(n_cand, dtype=np.int32)
    rep = np.full(n_key_space, -1, dtype=np.int64)
    K.fill_rows(*walk, cand_ptr, uniq_ptr, slot_kind, slot_tail, slot_ctx, W, cand_col, cand_cls, cand_key, rep)
    used = np.flatnonzero(rep >= 0)
    rep_qb = rep[used] >> 32
    rep_kb = rep[used] & 0xFFFFFFFF
    n_keys = used.size
    del rep

    pb = -(-bk // 8)
    packed = np.zeros((n_keys, bq, pb), dtype=np.uint8)
    kclass = np.zeros(n_keys, dtype=np.int8)
    n_g = len(prog.preds)
    gidx = np.full(len(prog.ltype), -1, dtype=np.int64)
    for gi, (leaf, _) in enumerate(prog.preds):
        gidx[leaf] = gi
    rest = (A["ltype"], A["pref"], A["memb"], A["po"], A["aux"], A["ao"], A["p0"], A["p1"], q_len, kv_len, bq, bk)
    if n_g == 0:
        K.block_bits(A["ops"], A["args"], *rest, rep_qb, rep_kb, np.zeros((1, 1, 1, 1), np.bool_), gidx,
                     packed, kclass)
    else:
        for s in range(0, n_keys, _PRED_CHUNK):
            e = min(s + _PRED_CHUNK, n_keys)
            rq, rk = rep_qb[s:e], rep_kb[s:e]
            i0s, j0s = rq * bq, rk * bk
            rows = np.minimum(bq, q_len - i0s)
            cols = np.minimum(bk, kv_len - j0s)
            gbits = np.zeros((n_g, e - s, bq, bk), dtype=np.bool_)
            for gi, (_, pred) in enumerate(prog.preds):
                _predicate_kernel(pred)(i0s, j0s, rows, cols, gbits, gi)
            K.block_bits(A["ops"], A["args"], *rest, rq, rk, gbits, gidx, packed[s:e], kclass[s:e])

    part = np.flatnonzero(kclass == PARTIAL)
    masks, ids = _dedupe_packed(packed[part])
    del packed
    key_pid = np.full(n_key_space, -1, dtype=np.int64)
    key_pid[used[part]] = ids
    key_class = np.zeros(n_key_space, dtype=np.int8)
    key_class[used] = kclass
    kept = K.finalize(cand_ptr, cand_col, cand_cls, cand_key, key_class, key_pid)
    if kept < n_cand:
        cand_col, cand_cls, cand_key = cand_col[:kept].copy(), cand_cls[:kept].copy(), cand_key[:kept].copy()
    row_ptr, col_idx, kind, partial_id = cand_ptr, cand_col, cand_cls, cand_key
    return Layout(q_len, kv_len, bq, bk, row_ptr[None, :], col_idx, kind, partial_id, masks, pattern.text())


def _class_of(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    return np.where(count == 0, K.EMPTY, np.where(count == total, K.FULL, K.PARTIAL)).astype(np.int8)


def _run_to_start(c: np.ndarray) -> np.ndarray:
    """For each x, x minus the start of the run of equal values containing x."""
    idx = np.arange(c.size)
    start = np.r_[True, c[1:] != c[:-1]] if c.size else np.zeros(0, bool)
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def _run_to_end(c: np.ndarray) -> np.ndarray:
    """For each x, the end of the run of equal values containing x, minus x."""
    return _run_to_start(c[::-1])[::-1].copy()


def _leaf_tables(prog: Program, A: dict, q_len: int, kv_len: int, bq: int, bk: int, g: int):
    """Per-leaf class tables for interior (full-size) blocks and distances to the next change.

    D: indexed by diagonal x (offset qb*bq - kb*bk = x*g - (n_kb-1)*bk); S: by
    anti-diagonal y (qb*bq + kb*bk = y*g); R: by qb; C: by kb. Generic leaves: none.
    """
    n_qb, n_kb = -(-q_len // bq), -(-kv_len // bk)
    W = max(((n_qb - 1) * bq + (n_kb - 1) * bk) // g + 1, n_qb, n_kb)
    cls_parts, run_parts = [], []
    to = np.zeros(len(prog.ltype), dtype=np.int64)
    off = 0
    for l, t in enumerate(prog.ltype):
        m = prog.membs[l]
        pref = A["pref"][A["po"][l]: A["po"][l] + m.size + 1]
        if t in (K.T_D, K.T_S):
            x = np.arange(W, dtype=np.int64) * g
            if t == K.T_D:
                lo = x - (n_kb - 1) * bk - (bk - 1) + (kv_len - 1)
                hi = lo + bq + bk - 2
            else:
                lo = x
                hi = x + bq + bk - 2
            lo = np.clip(lo, 0, m.size - 1)
            hi = np.clip(hi, 0, m.size - 1)
            c = _class_of(pref[hi + 1] - pref[lo], hi - lo + 1)
            run = _run_to_start(c) if t == K.T_D else _run_to_end(c)
        elif t == K.T_R:
            i0 = np.arange(n_qb, dtype=np.int64) * bq
            i1 = np.minimum(i0 + bq, q_len)
            c = _class_of(pref[i1] - pref[i0], i1 - i0)
            run = np.zeros(n_qb, dtype=np.int64)
        elif t == K.T_C:
            j0 = np.arange(n_kb, dtype=np.int64) * bk
            j1 = np.minimum(j0 + bk, kv_len)
            c = _class_of(pref[j1] - pref[j0], j1 - j0)
            run = _run_to_end(c)
        else:
            c = np.zeros(0, np.int8)
            run = np.zeros(0, np.int64)
        to[l] = off
        off += c.size
        cls_parts.append(c)
        run_parts.append(run.astype(np.int64))
    tab_cls = np.concatenate(cls_parts) if off else np.zeros(1, np.int8)
    tab_run = np.concatenate(run_parts) if off else np.zeros(1, np.int64)
    return tab_cls.astype(np.int8), tab_run, to


def _dedupe_packed(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique packed masks (first-appearance order) and the id of every input mask."""
    n = packed.shape[0]
    ids = np.empty(n, dtype=np.int64)
    seen: dict[bytes, int] = {}
    first: list[int] = []
    for t in range(n):
        key = packed[t].tobytes()
        u = seen.get(key)
        if u is None:
            u = seen[key] = len(first)
            first.append(t)
        ids[t] = u
    return np.ascontiguousarray(packed[np.asarray(first, dtype=np.int64)]), ids


def _merge_heads(layouts: list[Layout], text: str) -> Layout:
    if len(layouts) == 1:
        lay = layouts[0]
        return Layout(lay.q_len, lay.kv_len, lay.block_q, lay.block_k, lay.row_ptr, lay.col_idx, lay.kind,
                      lay.partial_id, lay.masks, text)
    first = layouts[0]
    all_masks = np.concatenate([l.masks for l in layouts])
    masks, ids = _dedupe_packed(all_masks)
    row_ptrs, pids = [], []
    base = mbase = 0
    for l in layouts:
        row_ptrs.append(l.row_ptr[0] + base)
        pid = l.partial_id.astype(np.int64)
        part = pid >= 0
        pid[part] = ids[pid[part] + mbase]
        pids.append(pid.astype(np.int32))
        base += l.nnz_blocks
        mbase += l.masks.shape[0]
    return Layout(first.q_len, first.kv_len, first.block_q, first.block_k, np.stack(row_ptrs),
                  np.concatenate([l.col_idx for l in layouts]), np.concatenate([l.kind for l in layouts]),
                  np.concatenate(pids), masks, text)


def compile(pattern: P.Pattern, q_len: int, kv_len: int | None = None, block: int | tuple[int, int] = 128,
            heads: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES, cache: bool = True) -> Layout:
    """Compile a pattern to a block-sparse :class:`~maskc.ir.layout.Layout`.

    Never allocates O(q_len x kv_len): work and memory grow with the number of blocks.
    Results are cached by (pattern, sizes).

    Args:
        pattern: the rule, e.g. ``mc.causal() & mc.window(64)``.
        q_len: number of query tokens. kv_len: number of key tokens (default q_len).
        block: tile size, an int or ``(block_q, block_k)``.
        heads: number of attention heads. A pattern without ``heads([...])`` is stored
            once and broadcasts; with ``heads([...])`` it must match the pattern's count.
        max_bytes: refuse (TooLargeError, before allocating) above this working memory.

    Example:
        >>> import maskc as mc
        >>> lay = mc.compile(mc.causal() & mc.window(255), q_len=4096, block=128)
        >>> (lay.nnz_blocks, lay.n_full, lay.n_partial, lay.n_unique_masks)
        (93, 31, 62, 2)
    """
    if not isinstance(pattern, P.Pattern):
        raise TypeError(f"compile() needs a maskc Pattern, got {type(pattern).__name__}; "
                        "text patterns go through maskc.parse first")
    q_len = P._check_int(q_len, "q_len", 1, 2**31 - 1)
    kv_len = q_len if kv_len is None else P._check_int(kv_len, "kv_len", 1, 2**31 - 1)
    bq, bk = normalize_block(block)
    n = pattern.n_heads
    if heads is not None:
        heads = P._check_int(heads, "heads", 1, 65536)
        if n is not None and heads != n:
            raise ValueError(f"heads={heads} does not match the pattern's heads([...]) of {n} patterns")
    key = (pattern, q_len, kv_len, bq, bk)
    if cache:
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    per_head = [pattern.for_head(h) for h in range(n or 1)]
    with _keep_torch_threads():
        lay = _merge_heads([_compile_head(p, q_len, kv_len, bq, bk, max_bytes) for p in per_head], pattern.text())
    for a in (lay.row_ptr, lay.col_idx, lay.kind, lay.partial_id, lay.masks):
        a.setflags(write=False)
    if cache:
        with _LOCK:
            _CACHE[key] = lay
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return lay
