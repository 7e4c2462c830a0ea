"""Local properties of a layout: causality, empty rows, row degree, density.

All functions take a :class:`~maskc.ir.layout.Layout`, or a pattern with ``q_len=``
(and optionally ``kv_len=``, ``block=``, ``heads=``), which is compiled first. They
work on the block-sparse arrays (cost O(stored blocks) plus O(block_q * block_k) per
block that straddles the diagonal), never on the dense mask. Counterexamples name the
stored slice: the head, or ``b * heads + h`` for a batched layout (the messages spell out
batch and head). Query positions are layout rows (add ``q_offset`` for absolute ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskc.guarantees._common import GuaranteeError, Source, as_layout, slice_name, slice_rows
from maskc.ir.layout import Layout


@dataclass(frozen=True)
class Violations:
    """Pairs that break a property.

    Attributes:
        count: exact number of offending (head, query, key) triples.
        examples: int64 [m, 3] rows (head, query, key), the smallest in that order,
            at most ``limit`` of them.
    """

    count: int
    examples: np.ndarray

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class DegreeStats:
    """Allowed keys per query row over every stored head.

    ``argmin`` / ``argmax`` are ``(head, query)`` of the first row with that degree;
    ``per_head_mean`` is float64 [heads].
    """

    min: int
    max: int
    mean: float
    argmin: tuple[int, int]
    argmax: tuple[int, int]
    per_head_mean: np.ndarray


# ------------------------------------------------------------------ causality
def causal_violations(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
                      heads: int | None = None, limit: int = 10) -> Violations:
    """Allowed pairs whose key comes after the query (j > i).

    Cost: O(stored blocks) to classify blocks, plus the element bits of blocks that
    straddle the diagonal (O(n_qb) of them for block-causal layouts).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import causal_violations
        >>> v = causal_violations(mc.window(1, 1), q_len=4, block=2)
        >>> v.count, v.examples[0].tolist()
        (3, [0, 0, 1])
    """
    lay = as_layout(x, q_len, kv_len, block, heads)
    if lay.nnz_blocks == 0:
        return Violations(0, np.zeros((0, 3), np.int64))
    Bq, Bk = lay.block_q, lay.block_k
    rows = lay.block_row.astype(np.int64)
    cols = lay.col_idx.astype(np.int64)
    vr, vc = lay.block_extents
    q_lo = rows * Bq + lay.q_offset  # absolute positions: causality compares i + q_offset with j
    q_hi = q_lo + vr - 1
    k_lo = cols * Bk
    k_hi = k_lo + vc - 1
    above = k_lo > q_hi  # every allowed element is a violation
    cross = (~above) & (k_hi > q_lo)  # some elements may be violations
    count = int(lay.block_nnz[above].sum())
    cross_idx = np.flatnonzero(cross)
    bad_cross: list[np.ndarray] = []
    # straddling blocks: count their bits above the diagonal, in chunks
    for s in range(0, cross_idx.size, 4096):
        sel = cross_idx[s : s + 4096]
        el = lay.block_tiles(sel)
        i = q_lo[sel][:, None, None] + np.arange(Bq)[None, :, None]
        j = k_lo[sel][:, None, None] + np.arange(Bk)[None, None, :]
        n_bad = (el & (j > i)).sum(axis=(1, 2))
        count += int(n_bad.sum())
        bad_cross.append(sel[n_bad > 0])
    if count == 0:
        return Violations(0, np.zeros((0, 3), np.int64))
    # examples: walk the offending (head, query block) rows in order until `limit` are found
    heads_ = lay.block_head.astype(np.int64)
    key = heads_ * lay.n_qb + rows
    bad = np.concatenate([np.flatnonzero(above)] + bad_cross)
    order = np.argsort(key[bad], kind="stable")
    bad = bad[order]
    found: list[np.ndarray] = []
    got = 0
    for k0 in np.unique(key[bad]):
        sel = bad[key[bad] == k0]
        el = lay.block_tiles(sel)
        i = q_lo[sel][:, None, None] + np.arange(Bq)[None, :, None]
        j = k_lo[sel][:, None, None] + np.arange(Bk)[None, None, :]
        b_, r, c = np.nonzero(el & (j > i))
        ex = np.stack([heads_[sel][b_], rows[sel][b_] * Bq + r, k_lo[sel][b_] + c], axis=1)
        found.append(ex[np.lexsort((ex[:, 2], ex[:, 1], ex[:, 0]))])
        got += ex.shape[0]
        if got >= limit:
            break
    ex = np.concatenate(found)[:limit]
    return Violations(count, ex.astype(np.int64))


def is_causal(x: Source, **kw) -> bool:
    """True when no allowed pair has key j > query i (see :func:`causal_violations`).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import is_causal
        >>> is_causal(mc.causal() & mc.offsets("primes"), q_len=64, block=16)
        True
    """
    return causal_violations(x, limit=1, **kw).count == 0


def check_causal(x: Source, **kw) -> None:
    """Raise :class:`GuaranteeError` naming (head, query, key) of a pair with j > i.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_causal
        >>> check_causal(mc.causal(), q_len=8, block=4)  # passes silently
    """
    v = causal_violations(x, limit=1, **kw)
    if v.count:
        h, i, j = (int(t) for t in v.examples[0])
        off = x.q_offset if isinstance(x, Layout) else 0
        pos = f"query {i}" + (f" (position {i + off})" if off else "")
        raise GuaranteeError(
            "causal",
            f"not causal: {_where(x, h)}, {pos} attends key {j} (> {i + off}); {v.count:,} such pair(s) in all",
            head=h, query=i, key=j, count=v.count,
        )


# ----------------------------------------------------------------- empty rows
def empty_rows(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
               heads: int | None = None, limit: int | None = None) -> np.ndarray:
    """Query rows with no allowed key: int64 [m, 2] rows (head, query), sorted.

    Cost: O(stored blocks * block_q) via :meth:`Layout.row_counts`.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import empty_rows
        >>> empty_rows(mc.offsets([2]), q_len=4, block=2).tolist()
        [[0, 0], [0, 1]]
    """
    lay = as_layout(x, q_len, kv_len, block, heads)
    h, i = np.nonzero(slice_rows(lay) == 0)
    out = np.stack([h, i], axis=1).astype(np.int64)
    return out if limit is None else out[:limit]


def check_no_empty_rows(x: Source, **kw) -> None:
    """Raise :class:`GuaranteeError` naming (head, query) of a row with no allowed key.

    A row with no key outputs zeros and lse = -inf in every backend; usually a bug.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_no_empty_rows
        >>> check_no_empty_rows(mc.window(2), q_len=8, block=4)
    """
    e = empty_rows(x, **kw)
    if e.shape[0]:
        h, i = (int(t) for t in e[0])
        raise GuaranteeError(
            "no_empty_rows", f"empty row: {_where(x, h)}, query {i} attends no key; {e.shape[0]:,} empty row(s) in all",
            head=h, query=i, count=int(e.shape[0]),
        )


# --------------------------------------------------------------------- degree
def row_degree(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
               heads: int | None = None) -> DegreeStats:
    """Min / max / mean number of allowed keys per query row (over every stored head).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import row_degree
        >>> d = row_degree(mc.window(2), q_len=10, block=4)
        >>> d.min, d.max, d.mean, d.argmax
        (1, 3, 2.7, (0, 2))
    """
    lay = as_layout(x, q_len, kv_len, block, heads)
    rc = slice_rows(lay)
    amin = np.unravel_index(int(np.argmin(rc)), rc.shape)
    amax = np.unravel_index(int(np.argmax(rc)), rc.shape)
    return DegreeStats(
        min=int(rc.min()), max=int(rc.max()), mean=float(rc.mean()),
        argmin=(int(amin[0]), int(amin[1])), argmax=(int(amax[0]), int(amax[1])),
        per_head_mean=rc.mean(axis=1).astype(np.float64),
    )


def check_row_degree(x: Source, min: int | None = None, max: int | None = None, **kw) -> None:
    """Raise :class:`GuaranteeError` at a row whose degree is outside ``[min, max]``.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_row_degree, GuaranteeError
        >>> try:
        ...     check_row_degree(mc.causal(), max=3, q_len=8, block=4)
        ... except GuaranteeError as e:
        ...     e.query, e.details["degree"]
        (3, 4)
    """
    lay = as_layout(x, **_lens(kw))
    rc = slice_rows(lay)
    for bound, bad, word in ((min, lambda: rc < min, "below"), (max, lambda: rc > max, "above")):
        if bound is None:
            continue
        h, i = np.nonzero(bad())
        if h.size:
            hh, ii = int(h[0]), int(i[0])
            raise GuaranteeError(
                "row_degree",
                f"row degree {word} {bound}: {slice_name(lay, hh)}, query {ii} has {int(rc[hh, ii])} allowed key(s); "
                f"{h.size:,} such row(s)",
                head=hh, query=ii, degree=int(rc[hh, ii]), count=int(h.size),
            )


# -------------------------------------------------------------------- density
def density(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
            heads: int | None = None) -> float:
    """Allowed pairs / (heads * q_len * kv_len).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import density
        >>> density(mc.causal(), q_len=4, block=2)
        0.625
    """
    return as_layout(x, q_len, kv_len, block, heads).density


def block_density(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
                  heads: int | None = None) -> float:
    """Non-empty blocks / (heads * n_qb * n_kb): the work a block-sparse kernel does.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import block_density
        >>> block_density(mc.causal(), q_len=8, block=2)
        0.625
    """
    return as_layout(x, q_len, kv_len, block, heads).block_density


def _where(x: Source, s: int) -> str:
    return slice_name(x, s) if isinstance(x, Layout) else f"head {s}"


def _lens(kw: dict) -> dict:
    extra = set(kw) - {"q_len", "kv_len", "block", "heads"}
    if extra:
        raise TypeError(f"unexpected keyword argument(s) {sorted(extra)}")
    return {"q_len": kw.get("q_len"), "kv_len": kw.get("kv_len"), "block": kw.get("block", 128),
            "heads": kw.get("heads")}


def _check_range(name: str, value: float, lo: float | None, hi: float | None, lay: Layout, *,
                 blocks: bool = False) -> None:
    """Raise when ``value`` is outside ``[lo, hi]``, naming the densest (too dense) or sparsest row.

    For block density (``blocks``) the row is a block row: its stored-block count, and its
    first query as ``query``.
    """
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return
    too_dense = hi is not None and value > hi
    if blocks:
        rc = np.diff(lay.row_ptr, axis=1)  # stored blocks per block row
    else:
        rc = slice_rows(lay)
    h, r = (int(x) for x in np.unravel_index(int(np.argmax(rc) if too_dense else np.argmin(rc)), rc.shape))
    if blocks:
        query, what = r * lay.block_q, f"block row {r} (queries {r * lay.block_q}..) with {int(rc[h, r])} stored block(s)"
    else:
        query, what = r, f"query {r} with {int(rc[h, r])} key(s)"
    raise GuaranteeError(
        name,
        f"{name} {value:.6g} is outside [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        f" (q_len={lay.q_len}, kv_len={lay.kv_len}, block=({lay.block_q}, {lay.block_k})); "
        f"{'densest' if too_dense else 'sparsest'} row: {slice_name(lay, h)}, {what}",
        head=h, query=query, value=value, **({"block_row": r, "blocks": int(rc[h, r])} if blocks else {}),
    )


def check_density(x: Source, max: float | None = None, min: float | None = None, **kw) -> None:
    """Raise :class:`GuaranteeError` when the density is outside ``[min, max]``.

    The counterexample is the densest row (too dense) or the sparsest row (too sparse).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_density
        >>> check_density(mc.window(3), max=0.1, q_len=256, block=64)
    """
    lay = as_layout(x, **_lens(kw))
    _check_range("density", lay.density, min, max, lay)


def check_block_density(x: Source, max: float | None = None, min: float | None = None, **kw) -> None:
    """Raise :class:`GuaranteeError` when the block density is outside ``[min, max]``.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_block_density
        >>> check_block_density(mc.window(3), max=0.5, q_len=256, block=64)
    """
    lay = as_layout(x, **_lens(kw))
    _check_range("block_density", lay.block_density, min, max, lay, blocks=True)
