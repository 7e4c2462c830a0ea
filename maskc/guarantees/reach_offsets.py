"""The offset engine of k-hop reachability: Toeplitz (offset-only) token graphs.

A Toeplitz pattern's rule depends only on d = i - j, so whether query i reaches key j in
k hops depends only on d too: the minimal hop counts come from a 1-D offset sumset over
uint64 bitsets (:func:`offset_hops`), exactly, for one-sided offset sets (every path is
monotone), circulant sets (a Cayley graph on Z_N) and two-sided sets whose long steps fit
in [0, N) (else an upper and a lower bound must agree). :func:`layout_offsets` recognises
a Toeplitz slice of a compiled layout. See :mod:`maskc.guarantees.reach` for the engines'
use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskc.errors import TooLargeError
from maskc.guarantees import _kernels as K
from maskc.guarantees._common import token_row
from maskc.ir.layout import Layout
from maskc.limits import MAX_LEN, check_int, refuse_above

_NEVER = np.iinfo(np.int32).max
#: Largest number of uint64 word operations one offset-sumset run may spend (a few seconds).
MAX_OFFSET_WORK = 4_000_000_000
#: Longest sequence the offset engine accepts (its arrays take about 16 bytes per token).
MAX_OFFSET_TOKENS = 1 << 26


def check_tokens(n: int) -> int:
    """``n`` as the token count of an offset-engine run, refused above :data:`MAX_OFFSET_TOKENS`."""
    n = check_int(n, "n (tokens)", 1, MAX_LEN)
    refuse_above(n, MAX_OFFSET_TOKENS, "the offset reachability engine", "check a shorter length", unit="tokens")
    return n
#: Largest block grid (cells) :func:`layout_offsets` scans when block_q != block_k.
MAX_TOEPLITZ_CELLS = 1 << 30


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
    hops, done, _, exceeded = K.sumset_hops(start, shifts.astype(np.int64), target, np.int64(cap),
                                            np.int64(MAX_OFFSET_WORK))
    if exceeded:
        raise TooLargeError(
            f"the offset reachability engine stopped after {done} hop(s) of {shifts.size:,} offsets over "
            f"{start.size:,} positions: the next hop would exceed {MAX_OFFSET_WORK:,} word operations "
            "(maskc.guarantees.reach_offsets.MAX_OFFSET_WORK); check a shorter length")
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
    n = check_tokens(n)
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
    vr_b, vc_b = lay.block_extents
    for s in range(0, first.size, 512):
        sel = idx[first[s : s + 512]]
        actual = lay.block_tiles(sel)
        d = delta[first[s : s + 512]][:, None, None] + r_ar[None] - c_ar[None]
        di = d + n - 1
        ok = (di >= 0) & (di < 2 * n - 1)
        pred = np.where(ok, mpad[np.where(ok, di, -1)], False)
        vr, vc = vr_b[sel], vc_b[sel]
        pred &= (np.arange(Bq)[None, :] < vr[:, None])[:, :, None]
        pred &= (np.arange(Bk)[None, :] < vc[:, None])[:, None, :]
        if not np.array_equal(actual, pred):
            return None
    return m if _predicted_blocks(lay, m) == hi - lo else None


def _predicted_blocks(lay: Layout, m: np.ndarray) -> int:
    """Number of blocks the offset membership ``m`` makes non-empty on the layout's grid.

    A block (qb, kb) covers offsets [qb*Bq - kb*Bk - (vc-1), qb*Bq - kb*Bk + (vr-1)]. With square
    blocks the blocks of one block diagonal (qb - kb fixed) away from the ragged tails share
    that range, so they are counted per diagonal: O(n_qb + n_kb). Otherwise block rows are
    scanned in chunks (refused above MAX_TOEPLITZ_CELLS cells).
    """
    n, Bq, Bk = lay.q_len, lay.block_q, lay.block_k
    cum = np.concatenate([[0], np.cumsum(m, dtype=np.int64)])

    def any_in(dl: np.ndarray, dh: np.ndarray) -> np.ndarray:  # some offset of [dl, dh] is in m
        return cum[np.clip(dh + n, 0, 2 * n - 1)] - cum[np.clip(dl + n - 1, 0, 2 * n - 1)] > 0

    R, C = lay.n_qb - (n % Bq != 0), lay.n_kb - (lay.kv_len % Bk != 0)  # interior rows / columns
    count = 0
    if Bq == Bk and R and C:
        t = np.arange(-(C - 1), R, dtype=np.int64)  # qb - kb
        pairs = np.minimum(R, C + t) - np.maximum(0, t)
        count += int(pairs[any_in(t * Bq - (Bk - 1), t * Bq + (Bq - 1))].sum())
    elif R and C:
        refuse_above(R * C, MAX_TOEPLITZ_CELLS, "the Toeplitz check of this layout's block grid",
                     "use square blocks (block_q == block_k)", unit="cells")
        kb = np.arange(C, dtype=np.int64)[None, :]
        for q0 in range(0, R, 256):
            qb = np.arange(q0, min(q0 + 256, R), dtype=np.int64)[:, None]
            count += int(np.count_nonzero(any_in(qb * Bq - kb * Bk - (Bk - 1), qb * Bq - kb * Bk + (Bq - 1))))
    # the ragged last block row and column, one block at a time
    qb_t = np.arange(lay.n_qb, dtype=np.int64)
    kb_t = np.arange(lay.n_kb, dtype=np.int64)
    edge = [(qb_t[R:, None], kb_t[None, :])] if R < lay.n_qb else []
    if C < lay.n_kb:
        edge.append((qb_t[:R, None], kb_t[None, C:]))
    for qb, kb in edge:
        d = qb * Bq - kb * Bk
        count += int(np.count_nonzero(any_in(d - (lay.col_extent(kb) - 1), d + (lay.row_extent(qb) - 1))))
    return count


