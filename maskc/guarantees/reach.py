"""k-hop reachability: what stacked attention layers can route, exactly.

Token graph: one node per position 0..N-1 (``q_len == kv_len == N``), an edge i -> j
when query i may attend key j. Through k stacked layers with this pattern, query i
at the top depends on key j at the bottom iff there is a path i -> j1 -> ... -> j of at
most k edges (every step an allowed edge, every position in [0, N)). A token always
reaches itself with zero layers (its residual stream), so the diagonal never needs an
edge; for j != i the pattern's own edges decide (its self edges only lengthen paths).

Targets: with ``causal=True`` every query must reach every key j <= i; with
``causal=False`` every key. ``causal=None`` (default) picks True when the layout is
causal. The *diameter* is the smallest k at which every target pair is reachable
(None when some pair never is).

Engines, chosen automatically and always exact:

* ``offsets`` (Toeplitz patterns, whose rule depends only on d = i - j): reachability
  of (i, j) depends only on d, computed as a 1-D offset sumset with uint64 bitsets.
  - one-sided offset sets (all d >= 0, e.g. anything ``& causal()``): every path is
    monotone, so it stays inside [j, i]: exact for every N;
  - circulant offset sets (``ring_local``, ``stride(s)`` with s | N): a Cayley graph
    on Z_N, exact with cyclic shifts;
  - two-sided sets: exact when max(D+) + max(-D-) <= N (then any multiset of steps
    with an in-range total can be ordered to stay in [0, N): take a step left when it
    fits, else a step right); otherwise an upper bound (sumset truncated to
    |d| < N) and a lower bound (steps of one sign only, or steps with |d| <= N/2) are
    computed, and the answer is used only when they agree on every target d.
  Cost per hop: O(|D| * N / 64) word operations; 65,536 tokens take milliseconds to
  a second. Patterns are checked for this structure with ``pattern.lowered().axis ==
  "D"``; layouts by comparing every stored block with the Toeplitz prediction.
* ``graph`` (everything else): all-sources bitset propagation over the CSR token
  graph, O(nnz * N / 64) per hop and N^2 / 8 bytes; refused above
  ``max_graph_tokens`` (16,384) or ``max_work`` word operations with a
  :class:`~maskc.errors.TooLargeError` that says so.
"""

from __future__ import annotations

import numpy as np

from maskc.errors import TooLargeError
from maskc.guarantees import _kernels as K
from maskc.guarantees._common import GuaranteeError, Source, as_layout, slice_name
from maskc.guarantees.basic import is_causal
from maskc.guarantees.reach_offsets import (
    HopProfile, _profile_from_membership, check_tokens, layout_offsets, offset_hops,
)
from maskc.guarantees.reach_report import HeadReach, ReachReport
from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern

__all__ = ["HopProfile", "ReachReport", "reachability", "hop_diameter", "reachable_within", "unreachable_pairs",
           "min_hops", "check_reachable", "check_diameter", "offset_hops", "layout_offsets"]

#: Largest token graph the generic (non-Toeplitz) engine accepts.
MAX_GRAPH_TOKENS = 16_384
#: Largest number of uint64 word operations the generic engine may spend.
MAX_GRAPH_WORK = 4_000_000_000


def _profile_report(prof: HopProfile, n: int, causal: bool) -> HeadReach:
    d = np.arange(0 if causal else -(n - 1), n, dtype=np.int64)
    h = prof.at(d).astype(np.int64)
    pairs = n - np.abs(d)  # pairs (i, j) with i - j = d
    never = int(pairs[h < 0].sum())
    hmax = int(h.max(initial=0))
    reached_by = np.cumsum(np.bincount(h[h >= 0], weights=pairs[h >= 0], minlength=hmax + 2)).astype(np.int64)
    unreached = int(pairs.sum()) - reached_by  # index k: not reachable within k hops
    return HeadReach(f"offsets/{prof.method}", unreached, True, prof, causal=causal)


def _graph_report(lay: Layout, head: int, causal: bool, max_hops: int | None, max_work: int,
                  max_graph_tokens: int, causal_graph: bool, toeplitz: bool = False) -> HeadReach:
    n = lay.q_len
    if n > max_graph_tokens:
        why = ("is a two-sided offset pattern whose reachability depends on position (long steps in both "
               "directions)" if toeplitz else "is not a Toeplitz (offset-only) pattern")
        raise TooLargeError(
            f"{slice_name(lay, head)} of {lay.pattern_text or 'this layout'} {why}, so "
            f"reachability needs the generic graph engine, which is limited to {max_graph_tokens:,} tokens "
            f"(N^2/8 bytes of bitsets); got {n:,}. Pass max_graph_tokens= to raise the limit, or check a "
            "shorter length"
        )
    csr = lay.to_scipy("csr", head)
    res = K.graph_hops(csr.indptr.astype(np.int64), csr.indices.astype(np.int64), n, causal, causal_graph,
                       np.int64(max_hops if max_hops is not None else n + 1), np.int64(max_work))
    unreached, fi, fj, _, _, fixpoint, exceeded = res
    if exceeded:
        raise TooLargeError(
            f"graph reachability of head {head} stopped after {len(unreached) - 1} hop(s): the next hop would "
            f"exceed max_work={max_work:,} word operations (nnz={csr.nnz:,}, N={n:,}); pass max_hops= or a "
            "larger max_work=, or use a Toeplitz pattern"
        )
    first = [None if i < 0 else (int(i), int(j)) for i, j in zip(fi, fj)]
    complete = bool(fixpoint or unreached[-1] == 0)
    return HeadReach("graph", np.asarray(unreached, dtype=np.int64), complete, None, first, csr, causal)


def _pattern_membership(p: Pattern, n: int, h: int) -> np.ndarray | None:
    ph = p.for_head(h).lowered()
    if ph.axis != "D":
        return None
    return np.asarray(ph.membership(n, n), dtype=bool)


def reachability(x: Source, *, q_len: int | None = None, kv_len: int | None = None, block=128,
                 heads: int | None = None, causal: bool | None = None, max_hops: int | None = None,
                 max_graph_tokens: int = MAX_GRAPH_TOKENS, max_work: int = MAX_GRAPH_WORK) -> ReachReport:
    """Exact k-hop reachability of a pattern (at given lengths) or a layout.

    See the module docstring for the semantics and the engines. ``max_hops`` bounds
    the generic graph engine only (the offset engine always runs to completion);
    when it stops early, :attr:`ReachReport.diameter` is None unless every pair was
    already reached.

    Example (the diameter of a causal window w is ceil((N - 1) / w)):
        >>> import maskc as mc
        >>> from maskc.guarantees import reachability
        >>> reachability(mc.causal() & mc.window(3), q_len=65536).diameter
        21845
    """
    if isinstance(x, Pattern) and (q_len is None):
        raise ValueError(f"pattern {x.text()} needs q_len= to check reachability")
    if isinstance(x, Pattern):
        kv = q_len if kv_len is None else kv_len
        if kv != q_len:
            raise ValueError(f"reachability stacks layers, so it needs q_len == kv_len; got {q_len} and {kv}")
        n = check_tokens(q_len)
        H = int(heads or x.n_heads or 1)
        mems = [_pattern_membership(x, n, h) for h in range(H)]
        profs = [None if mm is None else _profile_from_membership(mm, n) for mm in mems]
        lay = None if all(pr is not None for pr in profs) else as_layout(x, q_len, kv_len, block, heads)
    else:
        lay = as_layout(x, q_len, kv_len, block, heads)
        if lay.kv_len != lay.q_len:
            raise ValueError(
                f"reachability stacks layers, so it needs q_len == kv_len; got {lay.q_len} and {lay.kv_len}"
            )
        n, H = lay.q_len, lay.n_slices
        check_tokens(n)
        mems = [layout_offsets(lay, h) for h in range(H)]
        profs = [None if mm is None else _profile_from_membership(mm, n) for mm in mems]
    if causal is None:
        if lay is None:
            causal = all(not pr.offsets.size or pr.offsets.min() >= 0 for pr in profs)  # type: ignore[union-attr]
        else:
            causal = is_causal(lay)
    out: list[HeadReach] = []
    causal_graph = None
    for h in range(H):
        if profs[h] is not None:
            out.append(_profile_report(profs[h], n, causal))
        else:
            assert lay is not None
            if causal_graph is None:
                causal_graph = is_causal(lay)
            out.append(_graph_report(lay, min(h, lay.n_slices - 1), causal, max_hops, max_work, max_graph_tokens,
                                     causal_graph, toeplitz=mems[h] is not None))
    return ReachReport(n, bool(causal), out)


def hop_diameter(x: Source, **kw) -> int | None:
    """Smallest number of layers after which every query reaches every target key.

    Targets are earlier keys (causal) or all keys; None when some pair is never
    reachable. Keywords as for :func:`reachability`.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import hop_diameter
        >>> hop_diameter(mc.causal() & (mc.window(1) | mc.offsets("primes")), q_len=65536)
        3
        >>> hop_diameter(mc.stride(4), q_len=64) is None   # never leaves its residue class
        True
    """
    return reachability(x, **kw).diameter


def reachable_within(x: Source, k: int, **kw) -> bool:
    """True when every query reaches every target key through at most k layers.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import reachable_within
        >>> reachable_within(mc.causal() & mc.window(8), 2, q_len=17)
        True
    """
    _check_k(k)
    return reachability(x, **kw).reachable_within(k)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k (number of layers) must be a non-negative integer, got {k!r}")


def unreachable_pairs(x: Source, k: int, *, limit: int = 100, **kw) -> np.ndarray:
    """Target pairs not reachable within k layers: int64 [m, 3] rows (head, query, key).

    Sorted by head, then query, then key; at most ``limit`` rows (the exact total is
    ``reachability(...).unreachable_count(k)``).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import unreachable_pairs
        >>> unreachable_pairs(mc.causal() & mc.window(2), 1, q_len=5).tolist()
        [[0, 3, 0], [0, 4, 0], [0, 4, 1]]
    """
    _check_k(k)
    rep = reachability(x, **kw)
    rows: list[np.ndarray] = []
    got = 0
    for h, hr in enumerate(rep.heads):
        if got >= limit or hr.unreached_at(k) == 0:
            continue
        if hr.profile is not None:
            ex = _profile_pairs(hr.profile, rep.n, rep.causal, k, limit - got)
        else:
            ex = _graph_pairs(hr, rep, k, limit - got, kw)
        if ex.size:
            rows.append(np.concatenate([np.full((ex.shape[0], 1), h), ex], axis=1))
            got += ex.shape[0]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), np.int64)


def _profile_pairs(prof: HopProfile, n: int, causal: bool, k: int, limit: int) -> np.ndarray:
    out: list[tuple[int, int]] = []
    jr = np.arange(n)
    for i in range(n):
        js = jr[: i + 1] if causal else jr
        h = prof.at(i - js)
        bad = js[(h < 0) | (h > k)]
        out.extend((i, int(j)) for j in bad[: limit - len(out)])
        if len(out) >= limit:
            break
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _graph_pairs(hr: HeadReach, rep: ReachReport, k: int, limit: int, kw: dict) -> np.ndarray:
    csr = hr.csr
    n = rep.n
    res = K.graph_hops(csr.indptr.astype(np.int64), csr.indices.astype(np.int64), n, rep.causal, False,
                       np.int64(k), np.int64(kw.get("max_work", MAX_GRAPH_WORK)))
    R = res[3]
    out: list[tuple[int, int]] = []
    for i in range(n):
        bits = np.unpackbits(R[i].view(np.uint8), bitorder="little")[:n].astype(bool)
        top = i + 1 if rep.causal else n
        miss = np.flatnonzero(~bits[:top])
        out.extend((i, int(j)) for j in miss[: limit - len(out)])
        if len(out) >= limit:
            break
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def min_hops(x: Source, query: int, key: int, *, head: int = 0, **kw) -> int | None:
    """Fewest layers through which ``query`` reaches ``key`` (0 when equal); None if never.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import min_hops
        >>> p = mc.causal() & (mc.window(1) | mc.offsets("primes"))
        >>> [min_hops(p, 27, 0, q_len=4096), min_hops(p, 28, 0, q_len=4096)]
        [3, 2]
    """
    rep = reachability(x, **kw)
    if not 0 <= head < len(rep.heads):
        raise ValueError(f"head must be in [0, {len(rep.heads)}), got {head}")
    for name, v in (("query", query), ("key", key)):
        if not 0 <= v < rep.n:
            raise ValueError(f"{name} must be in [0, {rep.n}), got {v}")
    return _pair_hops(rep.heads[head], query, key)


def _pair_hops(hr: HeadReach, query: int, key: int) -> int | None:
    if query == key:
        return 0
    if hr.profile is not None:
        h = int(hr.profile.at([query - key])[0])
        return None if h < 0 else h
    from scipy.sparse.csgraph import shortest_path

    dist = shortest_path(hr.csr, unweighted=True, indices=[int(query)])[0, int(key)]
    return None if not np.isfinite(dist) else int(dist)


def check_reachable(x: Source, k: int, **kw) -> None:
    """Raise :class:`GuaranteeError` naming (head, query, key) not reachable within k layers.

    The error's ``details`` hold ``needs`` (the hop count that pair needs, None =
    never) and ``count`` (all unreachable target pairs).

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_reachable, GuaranteeError
        >>> try:
        ...     check_reachable(mc.causal() & mc.window(2), 1, q_len=5)
        ... except GuaranteeError as e:
        ...     e.counterexample, e.details["needs"]
        ((0, 3, 0), 2)
    """
    _check_k(k)
    rep = reachability(x, **kw)
    f = rep.first_unreachable(k)
    if f is None:
        return
    h, i, j = f
    hr = rep.heads[h]
    needs_v = _pair_hops(hr, i, j)
    what = "earlier key" if rep.causal else "key"
    raise GuaranteeError(
        "reachable",
        f"not every query reaches every {what} within {k} layer(s): head {h}, query {i} cannot reach key {j} "
        f"({'never reachable' if needs_v is None else f'needs {needs_v} layers'}); "
        f"{rep.unreachable_count(k):,} unreachable pair(s) in all; diameter {rep.diameter}",
        head=h, query=i, key=j, needs=needs_v, count=rep.unreachable_count(k), diameter=rep.diameter,
    )


def check_diameter(x: Source, max_hops: int, **kw) -> None:
    """Same as :func:`check_reachable` with ``k = max_hops``: the diameter is at most max_hops."""
    check_reachable(x, max_hops, **kw)
