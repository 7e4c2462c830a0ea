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

from dataclasses import dataclass, field

import numpy as np

from maskc.errors import TooLargeError
from maskc.guarantees import _kernels as K
from maskc.guarantees._common import GuaranteeError, Source, as_layout, block_elements, token_row
from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern

#: Largest token graph the generic (non-Toeplitz) engine accepts.
MAX_GRAPH_TOKENS = 16_384
#: Largest number of uint64 word operations the generic engine may spend.
MAX_GRAPH_WORK = 4_000_000_000
_NEVER = np.iinfo(np.int32).max


# ============================================================ offset profiles
@dataclass(frozen=True)
class HopProfile:
    """Minimal hop counts of a Toeplitz token graph, by offset d = i - j.

    Attributes:
        n: number of tokens.
        method: ``"one-sided"``, ``"circulant"`` or ``"two-sided"``.
        hops: int32 hop count per offset; -1 where never reachable. For
            ``circulant`` indexed by d mod n (length n), else by d + n - 1
            (length 2n - 1, d from -(n-1) to n-1).
        offsets: the offset set D (int64, sorted).
    """

    n: int
    method: str
    hops: np.ndarray
    offsets: np.ndarray

    def at(self, d) -> np.ndarray:
        """Hop counts for offsets ``d`` (array-like of ints in [-(n-1), n-1]); -1 = never.

        Example:
            >>> from maskc.guarantees import offset_hops
            >>> offset_hops([0, 1, 2, 3], 20).at([3, 4, 19]).tolist()
            [1, 2, 7]
        """
        d = np.asarray(d, dtype=np.int64)
        if np.any(np.abs(d) > self.n - 1):
            raise ValueError(f"offsets must lie in [-{self.n - 1}, {self.n - 1}] for n={self.n}")
        idx = np.mod(d, self.n) if self.method == "circulant" else d + self.n - 1
        return self.hops[idx]

    def diameter(self, causal: bool = True) -> int | None:
        """Largest hop count over the target offsets (d >= 0, or all d); None if any is -1."""
        d = np.arange(0 if causal else -(self.n - 1), self.n)
        h = self.at(d)
        return None if np.any(h < 0) else int(h.max(initial=0))


def _run(start: np.ndarray, shifts: np.ndarray, target: np.ndarray, max_hops: int | None = None) -> np.ndarray:
    cap = start.size + 1 if max_hops is None else max_hops
    hops, _, _ = K.sumset_hops(start, shifts.astype(np.int64), target, np.int64(cap))
    return hops


def _min_hops(*arrs: np.ndarray) -> np.ndarray:
    stack = np.stack([np.where(a < 0, _NEVER, a) for a in arrs])
    m = stack.min(axis=0)
    return np.where(m == _NEVER, -1, m).astype(np.int32)


def _profile_from_membership(m: np.ndarray, n: int) -> HopProfile | None:
    """The exact :class:`HopProfile` of offset membership m (index d + n - 1), or None
    when the two-sided bounds disagree (reachability then depends on position)."""
    m = np.asarray(m, dtype=bool)
    if m.shape != (2 * n - 1,):
        raise ValueError(f"offset membership must have length 2n - 1 = {2 * n - 1}, got {m.shape}")
    D = np.flatnonzero(m).astype(np.int64) - (n - 1)
    pos, neg = D[D > 0], D[D < 0]
    L2 = 2 * n - 1
    start2 = np.zeros(L2, dtype=bool)
    start2[n - 1] = True
    if neg.size == 0 or pos.size == 0:  # one-sided: monotone paths, exact
        sign = 1 if neg.size == 0 else -1
        start = np.zeros(n, dtype=bool)
        start[0] = True
        h1 = _run(start, sign * (pos if sign == 1 else neg), np.ones(n, dtype=bool))
        hops = np.full(L2, -1, dtype=np.int32)
        if sign == 1:
            hops[n - 1 :] = h1
        else:
            hops[: n][::-1] = h1
        return HopProfile(n, "one-sided", hops, D)
    if n > 1 and np.array_equal(m[n:], m[: n - 1]):  # m[d] == m[d - n] for d in 1..n-1
        res = np.unique(np.mod(D, n))
        res = res[res != 0]
        shifts = np.concatenate([res, res - n])
        start = np.zeros(n, dtype=bool)
        start[0] = True
        return HopProfile(n, "circulant", _run(start, shifts, np.ones(n, dtype=bool)), D)
    target = np.ones(L2, dtype=bool)
    upper = _run(start2, D, target)
    if pos.max() + (-neg.min()) <= n:
        return HopProfile(n, "two-sided", upper, D)
    # lower bounds: step multisets that fit in [0, n) from every start (one sign only,
    # or positive steps <= t with negative steps >= -(n - t)); stop once they meet the upper bound
    cap = int(upper.max(initial=0))  # lower bounds only need to match up to here
    lower = _min_hops(_run(start2, pos, target, cap), _run(start2, neg, target, cap))
    splits = [n // 2]
    e = 1
    while e < n // 2:
        splits += [e, n - e]
        e *= 2
    for t in splits:
        if np.array_equal(lower, upper):
            break
        sub = D[(D <= t) & (D >= -(n - t))]
        lower = _min_hops(lower, _run(start2, sub, target, cap))
    if np.array_equal(lower, upper):
        return HopProfile(n, "two-sided", upper, D)
    return None


def offset_hops(offsets, n: int) -> HopProfile:
    """Exact minimal hop counts, by offset, of the Toeplitz pattern ``offsets(D)`` on n tokens.

    ``offsets`` is an iterable of ints (d = i - j, negative allowed) or a bool
    membership of length 2n - 1 indexed by d + n - 1. Raises ``ValueError`` when
    reachability of this offset set depends on position (use :func:`reachability`,
    which then falls back to the graph engine).

    Example (prime offsets plus a window of 1 on 4,096 tokens):
        >>> import numpy as np
        >>> from maskc.patterns.sequences import named_sequence
        >>> from maskc.guarantees import offset_hops
        >>> prof = offset_hops(np.r_[0, 1, named_sequence("primes", 4095)], 4096)
        >>> prof.diameter(), prof.at([27, 28]).tolist()
        (3, [3, 2])
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    arr = np.asarray(offsets if not isinstance(offsets, (set, frozenset)) else sorted(offsets))
    if arr.dtype == bool:
        m = arr
    else:
        vals = arr.astype(np.int64).reshape(-1)
        vals = vals[np.abs(vals) <= n - 1]
        m = np.zeros(2 * n - 1, dtype=bool)
        m[vals + n - 1] = True
    prof = _profile_from_membership(m, n)
    if prof is None:
        raise ValueError(
            "this two-sided offset set reaches different offsets from different positions "
            "(its long steps in both directions do not fit in [0, n)); use reachability() on a layout"
        )
    return prof


# ================================================= Toeplitz detection on layouts
def layout_offsets(lay: Layout, head: int = 0) -> np.ndarray | None:
    """Offset membership (index d + N - 1) when stored head ``head`` is Toeplitz, else None.

    Exact: every stored block is compared with the block the offset set predicts
    (blocks on one block diagonal share their content, so this costs O(stored
    blocks + distinct diagonals * block_q * block_k)), and the number of non-empty
    blocks predicted equals the number stored.
    """
    n = lay.q_len
    if lay.kv_len != n:
        return None
    Bq, Bk = lay.block_q, lay.block_k
    m = np.zeros(2 * n - 1, dtype=bool)
    m[n - 1 :] = token_row(lay, head, n - 1)[::-1]  # d = n-1-j >= 0
    m[: n] |= token_row(lay, head, 0)[::-1]  # d = -j <= 0, index n-1-j
    lo, hi = int(lay.row_ptr[head, 0]), int(lay.row_ptr[head, -1])
    idx = np.arange(lo, hi)
    rows = lay.block_row[lo:hi].astype(np.int64)
    cols = lay.col_idx[lo:hi].astype(np.int64)
    delta = rows * Bq - cols * Bk
    last_r = rows == lay.n_qb - 1
    last_c = cols == lay.n_kb - 1
    # one representative per (diagonal, tail flags, kind, mask id)
    key = np.stack([delta, last_r, last_c, lay.kind[lo:hi], lay.partial_id[lo:hi]], axis=1)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    # blocks of one (diagonal, tails) group must share their content: one (kind, id) each
    grp = np.unique(key[:, :3], axis=0, return_inverse=True)[1].reshape(-1)
    if np.unique(grp).size != first.size:
        return None
    # compare representatives with the prediction, in chunks
    mpad = np.concatenate([m, np.zeros(1, dtype=bool)])  # index -1 -> False
    r_ar = np.arange(Bq)[:, None]
    c_ar = np.arange(Bk)[None, :]
    for s in range(0, first.size, 512):
        sel = idx[first[s : s + 512]]
        actual = block_elements(lay, sel)
        d = delta[first[s : s + 512]][:, None, None] + r_ar[None] - c_ar[None]
        di = d + n - 1
        ok = (di >= 0) & (di < 2 * n - 1)
        pred = np.where(ok, mpad[np.where(ok, di, -1)], False)
        vr = lay.valid_rows()[rows[first[s : s + 512]]]
        vc = lay.valid_cols()[cols[first[s : s + 512]]]
        pred &= (np.arange(Bq)[None, :] < vr[:, None])[:, :, None]
        pred &= (np.arange(Bk)[None, :] < vc[:, None])[:, None, :]
        if not np.array_equal(actual, pred):
            return None
    # completeness: count blocks the offset set makes non-empty
    cum = np.concatenate([[0], np.cumsum(m, dtype=np.int64)])
    vr_all, vc_all = lay.valid_rows(), lay.valid_cols()
    expected = 0
    kb = np.arange(lay.n_kb, dtype=np.int64)
    for qb0 in range(0, lay.n_qb, 256):
        qb = np.arange(qb0, min(qb0 + 256, lay.n_qb), dtype=np.int64)[:, None]
        dl = qb * Bq - kb[None, :] * Bk - (vc_all[None, :] - 1)
        dh = qb * Bq - kb[None, :] * Bk + (vr_all[qb0 : qb0 + 256][:, None] - 1)
        a = np.clip(dl + n - 1, 0, 2 * n - 1)
        b = np.clip(dh + n, 0, 2 * n - 1)
        expected += int(np.count_nonzero(cum[b] - cum[a] > 0))
    return m if expected == hi - lo else None


# ===================================================================== reports
@dataclass
class HeadReach:
    """Reachability of one stored head.

    ``unreached[k]``: target pairs not reachable within k hops (k = 0..len-1; the
    last value holds for every larger k when ``complete``). For the graph engine
    ``first[k]`` is the smallest such (query, key); the offset engine derives it
    from its per-offset hop counts on demand.
    """

    method: str
    unreached: np.ndarray
    complete: bool
    profile: HopProfile | None = None
    first: list = field(default_factory=list, repr=False)
    csr: object = field(default=None, repr=False)
    causal: bool = True

    @property
    def diameter(self) -> int | None:
        if not self.complete or self.unreached[-1] > 0:
            return None
        return int(np.argmax(self.unreached == 0))

    def unreached_at(self, k: int) -> int:
        return int(self.unreached[min(k, len(self.unreached) - 1)])

    def first_at(self, k: int) -> tuple[int, int] | None:
        if self.profile is None:
            return self.first[min(k, len(self.first) - 1)]
        n = self.profile.n
        d = np.arange(0 if self.causal else -(n - 1), n, dtype=np.int64)
        h = self.profile.at(d)
        bad = (h < 0) | (h > k)
        if not bad.any():
            return None
        # pair with offset d and the smallest query: d >= 0 -> (d, 0), d < 0 -> (0, -d)
        dd = d[bad]
        i = np.where(dd >= 0, dd, 0)
        j = np.where(dd >= 0, 0, -dd)
        t = np.lexsort((j, i))[0]
        return (int(i[t]), int(j[t]))


@dataclass
class ReachReport:
    """Result of :func:`reachability`: per-head results and the overall diameter.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import reachability
        >>> r = reachability(mc.causal() & mc.window(4), q_len=100)
        >>> r.diameter, r.methods, r.unreachable_count(24), r.first_unreachable(24)
        (25, ['offsets/one-sided'], 6, (0, 97, 0))
    """

    n: int
    causal: bool
    heads: list[HeadReach]

    @property
    def methods(self) -> list[str]:
        """Engine used per head (``offsets/<kind>`` or ``graph``)."""
        return [h.method for h in self.heads]

    @property
    def diameter(self) -> int | None:
        """Smallest k that reaches every target pair in every head; None if never."""
        ds = [h.diameter for h in self.heads]
        return None if any(d is None for d in ds) else max(ds, default=0)

    @property
    def head_diameters(self) -> list[int | None]:
        return [h.diameter for h in self.heads]

    def unreachable_count(self, k: int) -> int:
        """Target (head, query, key) triples not reachable within k layers."""
        return int(sum(h.unreached_at(k) for h in self.heads))

    def reachable_within(self, k: int) -> bool:
        """True when every target pair of every head is reachable within k layers."""
        return self.unreachable_count(k) == 0

    def first_unreachable(self, k: int) -> tuple[int, int, int] | None:
        """The smallest (head, query, key) not reachable within k layers, or None."""
        for h, hr in enumerate(self.heads):
            f = hr.first_at(k)
            if f is not None:
                return (h, f[0], f[1])
        return None


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
            f"head {head} of {lay.pattern_text or 'this layout'} {why}, so "
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
        n = int(q_len)
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
        n, H = lay.q_len, lay.heads
        mems = [layout_offsets(lay, h) for h in range(H)]
        profs = [None if mm is None else _profile_from_membership(mm, n) for mm in mems]
    if causal is None:
        if lay is None:
            causal = all(not pr.offsets.size or pr.offsets.min() >= 0 for pr in profs)  # type: ignore[union-attr]
        else:
            from maskc.guarantees.basic import is_causal

            causal = is_causal(lay)
    out: list[HeadReach] = []
    causal_graph = None
    for h in range(H):
        if profs[h] is not None:
            out.append(_profile_report(profs[h], n, causal))
        else:
            assert lay is not None
            if causal_graph is None:
                from maskc.guarantees.basic import is_causal

                causal_graph = is_causal(lay)
            out.append(_graph_report(lay, min(h, lay.heads - 1), causal, max_hops, max_work, max_graph_tokens,
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
