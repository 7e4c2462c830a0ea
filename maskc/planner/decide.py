"""The planner's decisions: a pattern becomes disjoint parts, each with a lowering, a cost and a reason.

Pure: nothing here runs attention. :func:`decide_heads` splits each head's pattern
(:func:`maskc.planner.decompose.decompose`), cuts its Toeplitz membership into pieces
(bands: runs of at least :data:`RUN_MIN` offsets; residue classes of stride periods with
at least :data:`RESIDUE_MIN` offsets; the remaining isolated offsets), prices every
lowering of every piece with the cost model (:mod:`maskc.planner.cost`), and keeps the
cheapest (or the one ``force`` names). Global columns / rows become ``gather`` parts
(up to :data:`GATHER_MAX` of them), anything else a compiled block-sparse part. When one
block-sparse kernel over the whole pattern is estimated cheaper than the parts (by
:data:`WHOLE_MARGIN`), the plan is that single part.

Lowerings: ``bsr`` / ``dense`` (block-sparse over the part's tiles; "dense" when it
touches at least :data:`DENSE_FRACTION` of its envelope), ``dia`` (few offsets: one
shifted K/V slice each), ``residue`` (a periodic part permuted into residue classes),
``gather`` (a thin dense rectangle of global rows or columns) and ``empty``.

Example:
    >>> import maskc as mc
    >>> from maskc.planner.decide import decide_heads
    >>> from maskc.planner.cost import get_profile
    >>> hp, = decide_heads(mc.causal() & (mc.window(8) | mc.offsets("squares")), 256, 256, 32, 16,
    ...                    get_profile("cpu"), allow_whole=False, force={"offsets": "dia"})
    >>> [(p.name, p.lowering) for p in hp.parts]
    [('band', 'bsr'), ('offsets', 'dia')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskc.compiler import compile as compile_pattern
from maskc.patterns.core import And, Not, Or, Pattern
from maskc.planner import cost as C
from maskc.planner.cost import human_seconds as _ms
from maskc.planner.decompose import Decomposition, decompose, pair_count, runs
from maskc.planner.residue import class_groups, reduced_member
from maskc.planner.toeplitz import toeplitz_block_any

#: A contiguous run of at least this many offsets is a band candidate.
RUN_MIN: int = 4
#: A residue class with at least this many offsets is a residue candidate.
RESIDUE_MIN: int = 8
#: A part touching at least this fraction of its envelope's tiles is labelled dense.
DENSE_FRACTION: float = 0.9
#: Global rows / columns sets up to this size use the gather lowering.
GATHER_MAX: int = 512
#: Keep the decomposition unless one whole-pattern part is estimated this much cheaper.
WHOLE_MARGIN: float = 0.9



def dtype_bytes(dtype) -> int:
    """Bytes per element of a torch / numpy dtype or its name (0 for None).

    Example:
        >>> dtype_bytes("bfloat16"), dtype_bytes(None)
        (2, 0)
    """
    if dtype is None:
        return 0
    name = str(dtype).replace("torch.", "")
    if name == "bfloat16":
        return 2
    return int(np.dtype(name).itemsize)


@dataclass
class Part:
    """One disjoint part of a plan and the kernel chosen for it."""

    name: str
    lowering: str  #: bsr | dense | dia | residue | gather | empty
    describe: str  #: what pairs the part holds
    nnz: int
    cost: C.Cost
    why: str
    blocks: int = 0
    offsets: np.ndarray | None = None  #: dia: the offsets d
    member: np.ndarray | None = None  #: Toeplitz parts: membership over d
    period: int = 0
    phase: int = 0
    index: np.ndarray | None = None  #: gather: the rows or columns
    axis: str = ""  #: gather: "rows" | "cols"
    pattern: Pattern | None = None  #: generic parts (compiled)
    layout: Any = None
    alternatives: dict = field(default_factory=dict)  #: lowering -> Cost


@dataclass
class HeadPlan:
    """The parts of one head's pattern (or of every head when the pattern has no heads)."""

    pattern: Pattern
    dec: Decomposition
    parts: list[Part]
    total: C.Cost
    whole: C.Cost | None  #: one block-sparse part for the whole pattern
    note: str = ""
    pieces: list[str] = field(default_factory=list)  #: Toeplitz piece names (the keys ``force`` accepts)


def decide_heads(pattern: Pattern, q_len: int, kv_len: int, block: int, head_dim: int, profile: C.CostProfile,
                 allow_whole: bool = True, force: dict[str, str] | None = None) -> list[HeadPlan]:
    """One :class:`HeadPlan` for a head-free pattern, or one per head of a ``heads([...])`` pattern.

    Raises ValueError when ``force`` names a piece no head has, or a lowering a piece cannot use.
    """
    pats = [pattern] if pattern.n_heads is None else [pattern.for_head(h) for h in range(pattern.n_heads)]
    heads = [_plan_head(p, q_len, kv_len, block, head_dim, profile, allow_whole, force) for p in pats]
    if force:
        known = sorted({n for hp in heads for n in hp.pieces})
        unknown = sorted(set(force) - set(known))
        if unknown:
            raise ValueError(f"force: no piece named {unknown} in this plan; its Toeplitz pieces are {known} "
                             f"(names as in explain(): band, stride<s>, offsets)")
    return heads


def _toeplitz_options(p: C.CostProfile, member: np.ndarray, N: int, M: int, B: int, D: int,
                      period: int = 0, phase: int = 0) -> dict[str, tuple[C.Cost, int]]:
    """Cost of each lowering of one Toeplitz piece: {lowering: (cost, blocks)}."""
    opts: dict[str, tuple[C.Cost, int]] = {}
    anyb = toeplitz_block_any(member, N, M, B, B)
    blocks = int(anyb.sum())
    d = np.arange(-(M - 1), N)
    env = toeplitz_block_any(np.ones_like(member) & ((d >= 0) if not member[: M - 1].any() else True), N, M, B, B)
    dense = blocks >= DENSE_FRACTION * max(int(env.sum()), 1)
    lbl = "dense" if dense else "bsr"
    opts[lbl] = (C.bsr_cost(p, blocks=blocks, block_q=B, block_k=B, n=N, m=M, head_dim=D, dense=dense), blocks)
    n_off = int(member.sum())
    opts["dia"] = (C.dia_cost(p, n=N, n_offsets=n_off, head_dim=D), 0)
    if period > 1:
        inner = C.permute_cost(p, n=N, m=M, head_dim=D)
        rblocks = 0
        for (n, m, c), cls in class_groups(N, M, period, phase).items():
            red = reduced_member(member, N, M, period, c, n, m)
            nb = int(toeplitz_block_any(red, n, m, B, B).sum())
            rblocks += nb * len(cls)
        inner = inner + C.bsr_cost(p, blocks=rblocks, block_q=B, block_k=B, n=N, m=M, head_dim=D)
        opts["residue"] = (inner, rblocks)
    return opts


def _describe_member(member: np.ndarray, M: int, limit: int = 6) -> str:
    rs = runs(member)
    off = M - 1
    items = []
    for a, b in rs[:limit]:
        lo, hi = a - off, b - 1 - off
        items.append(f"{lo}" if lo == hi else f"[{lo}, {hi}]")
    more = f", ... ({len(rs)} runs)" if len(rs) > limit else ""
    return "d in {" + ", ".join(items) + more + "}"


def whole_blocks(dec: Decomposition, B: int) -> int:
    """Tiles of B x B one block-sparse kernel over the whole pattern would touch (an upper bound
    for generic parts: their envelope)."""
    N, M = dec.q_len, dec.kv_len
    anyb = toeplitz_block_any(dec.d_member, N, M, B, B)
    ctxb = toeplitz_block_any(dec.ctx_member, N, M, B, B)
    if dec.cols.size:
        cb = np.zeros(anyb.shape[1], bool)
        cb[np.unique(dec.cols // B)] = True
        anyb |= ctxb & cb[None, :]
    if dec.rows.size:
        rb = np.zeros(anyb.shape[0], bool)
        rb[np.unique(dec.rows // B)] = True
        anyb |= ctxb & rb[:, None]
    n = int(anyb.sum())
    for g in dec.generic:
        n = max(n, int(ctxb.sum()))  # unknown structure: bounded by the envelope
    return n


def _plan_head(pattern: Pattern, N: int, M: int, B: int, D: int, p: C.CostProfile, whole_ok: bool,
               force: dict | None = None) -> HeadPlan:
    dec = decompose(pattern, N, M)
    parts: list[Part] = []
    # ---- Toeplitz pieces: bands (runs), residue classes, isolated offsets
    rem = dec.d_member.copy()
    pieces: list[tuple[str, np.ndarray, int, int]] = []
    band = np.zeros_like(rem)
    for a, b in runs(rem):
        if b - a >= RUN_MIN:
            band[a:b] = True
    if band.any():
        pieces.append(("band", band, 0, 0))
        rem &= ~band
    d = np.arange(-(M - 1), N)
    for s, ph in dec.strides:
        cls = rem & (np.mod(d, s) == ph)
        if cls.sum() >= RESIDUE_MIN:
            pieces.append((f"stride{s}", cls, s, ph))
            rem &= ~cls
    if rem.any():
        pieces.append(("offsets", rem, 0, 0))
    chosen: list[tuple[str, np.ndarray, int, int, str, dict]] = []
    for name, mem, s, ph in pieces:
        opts = _toeplitz_options(p, mem, N, M, B, D, s, ph)
        best = min(opts, key=lambda k: opts[k][0].seconds)
        if force and name in force:
            want = force[name]
            if want == "bsr" and "dense" in opts:
                want = "dense"
            if want not in opts:
                raise ValueError(f"force: piece {name!r} cannot use {force[name]!r}; options: {sorted(opts)}")
            best = want
        chosen.append((name, mem, s, ph, best, opts))
    # merge pieces that chose the same block-sparse / DIA lowering into one part each
    for low in ("bsr", "dense", "dia"):
        group = [c for c in chosen if c[4] == low]
        if not group:
            continue
        mem = np.zeros_like(dec.d_member)
        for c in group:
            mem |= c[1]
        names = "+".join(c[0] for c in group)
        opts = _toeplitz_options(p, mem, N, M, B, D)
        cst, nb = opts.get(low, opts.get("dense" if low == "bsr" else "bsr"))
        alts = {k: v[0] for c in group for k, v in c[5].items()}
        why = "; ".join(_why(c[0], c[4], c[5]) for c in group)
        parts.append(Part(names, low, _describe_member(mem, M), pair_count(mem, N, M), cst, why, blocks=nb,
                          offsets=(np.nonzero(mem)[0] - (M - 1)) if low == "dia" else None, member=mem,
                          alternatives=alts))
    for name, mem, s, ph, low, opts in chosen:
        if low == "residue":
            parts.append(Part(name, "residue", f"{_describe_member(mem, M)} (period {s}, phase {ph})",
                              pair_count(mem, N, M), opts["residue"][0], _why(name, low, opts),
                              blocks=opts["residue"][1], member=mem, period=s, phase=ph,
                              alternatives={k: v[0] for k, v in opts.items()}))
    # ---- global columns / rows
    for axis, idx, terms in (("cols", dec.cols, dec.col_terms), ("rows", dec.rows, dec.row_terms)):
        if idx.size == 0:
            continue
        if axis == "cols":
            i = np.arange(N)[:, None]
            dd = i - idx[None, :] + M - 1
            nnz = int((dec.ctx_member[dd] & ~dec.d_member[dd]).sum())
        else:
            colset = np.zeros(M, bool)
            colset[dec.cols] = True
            dd = idx[:, None] - np.arange(M)[None, :] + M - 1
            nnz = int((dec.ctx_member[dd] & ~dec.d_member[dd] & ~colset[None, :]).sum())
        if nnz == 0:
            continue
        desc = " | ".join(t.text() for t in terms) + " minus the parts above"
        if idx.size <= GATHER_MAX:
            cst = C.gather_cost(p, rows=N if axis == "cols" else idx.size, cols=idx.size if axis == "cols" else M,
                                head_dim=D)
            parts.append(Part(axis, "gather", desc, nnz, cst,
                              f"{idx.size} {axis}: a thin dense rectangle is cheapest", index=idx, axis=axis))
        else:
            pat_parts = [dec.ctx] if dec.ctx is not None else []
            excl = dec.d_terms + (dec.col_terms if axis == "rows" else [])
            body = And(*pat_parts, Or(*terms) if len(terms) > 1 else terms[0],
                       *( [Not(Or(*excl) if len(excl) > 1 else excl[0])] if excl else []))
            parts.append(_generic_part(axis, body, N, M, B, D, p, f"{idx.size} {axis}: too many to gather"))
    for gi, g in enumerate(dec.generic):
        parts.append(_generic_part(f"generic{gi + 1}" if not dec.is_whole else "whole", g, N, M, B, D, p,
                                   "no cheaper structure: compiled block-sparse layout" if not dec.is_whole
                                   else dec.note))
    total = C.ZERO
    for pt in parts:
        total = total + pt.cost
    whole = None
    note = ""
    if not dec.is_whole and len(parts) > 1:
        nb = whole_blocks(dec, B)
        whole = C.bsr_cost(p, blocks=nb, block_q=B, block_k=B, n=N, m=M, head_dim=D)
        if whole_ok and not force and whole.seconds < WHOLE_MARGIN * total.seconds:
            w = _generic_part("whole", pattern.lowered(), N, M, B, D, p,
                              f"one block-sparse kernel over {nb:,} tiles (est {_ms(whole.seconds)}) beats the "
                              f"{len(parts)}-part decomposition (est {_ms(total.seconds)})")
            parts, total, note = [w], w.cost, "whole"
    if not parts:  # nothing allowed anywhere
        parts = [Part("empty", "empty", "no allowed pair", 0, C.ZERO,
                      "empty pattern: every row outputs 0 with lse -inf, no kernel runs",
                      member=np.zeros_like(dec.d_member))]
    return HeadPlan(pattern, dec, parts, total, whole, note, [pc[0] for pc in pieces])


def _why(name: str, low: str, opts: dict) -> str:
    ranked = sorted(opts.items(), key=lambda kv: kv[1][0].seconds)
    alts = ", ".join(f"{k} {_ms(v[0].seconds)}" for k, v in ranked)
    return f"{name}: {low} cheapest ({alts})"


def _generic_part(name: str, pattern: Pattern, N: int, M: int, B: int, D: int, p: C.CostProfile, why: str) -> Part:
    lay = compile_pattern(pattern, N, M, block=B)
    blocks = lay.nnz_blocks
    cst = C.bsr_cost(p, blocks=blocks, block_q=B, block_k=B, n=N, m=M, head_dim=D)
    return Part(name, "bsr", pattern.text() if len(pattern.text()) < 100 else pattern.text()[:97] + "...",
                lay.nnz, cst, why, blocks=blocks, pattern=pattern, layout=lay)
