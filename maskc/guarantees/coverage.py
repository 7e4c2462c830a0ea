"""Coverage of periodic patterns (πAttention), computed exactly.

πAttention fuses a local ring of radius r (keys with |i - j| <= r) with a π-step
component (keys at offsets that are multiples of the period π). Three statements are
made about it, and checked here:

1. **residue**: hops along the π-step component alone never leave the residue class
   i mod π;
2. **gcd**: cyclic jumps i -> i ± π (mod N) reach exactly i + gcd(π, N)·Z_N, so all N
   positions iff gcd(π, N) = 1;
3. **prefix**: with a local radius r >= 1, a causal token reaches its whole prefix
   within 1 + ceil((π - 1) / r) layers.

:func:`verify_pi_claims` checks each statement with the exact reachability engines
(:mod:`maskc.guarantees.reach`) for given parameters and returns the measured values;
:func:`check_pi_claims` raises :class:`GuaranteeError` with a counterexample when a
statement is false. The π-step ``variant``: ``"all"`` multiples of π (the form the
statements are about), an int M for {mπ : 1 <= m <= M}, or ``"pow2"`` for {π·2^m};
statement 3 is false for the bounded variants at lengths beyond their reach, and the
checker says so with the pair that needs more layers. Lengths are bounded like every
offset-engine run (``maskc.guarantees.reach_offsets.MAX_OFFSET_TOKENS``).

Example:
    >>> from maskc.guarantees import verify_pi_claims
    >>> [(v.claim, v.holds, v.measured) for v in verify_pi_claims(4096, 16, 4)]
    [('residue', True, 16), ('gcd', True, 16), ('prefix', True, 5)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from maskc.guarantees._common import GuaranteeError
from maskc.guarantees.reach import reachability
from maskc.guarantees.reach_offsets import check_tokens
from maskc.patterns.core import Pattern, causal, offsets, ring_local, stride, window
from maskc.patterns.library import pi_step as _library_pi_step


def pi_step(period: int, *, is_causal: bool = False, variant="all", n: int | None = None) -> Pattern:
    """The π-step component: all multiples of π (``variant="all"``), {mπ : m <= M}
    (int M) or {π·2^m} (``"pow2"``), both directions unless ``is_causal``; the library's
    :func:`~maskc.patterns.library.pi_step` (``n`` is accepted for old callers; unused).

    Example:
        >>> from maskc.guarantees.coverage import pi_step
        >>> pi_step(4, is_causal=True).text()
        "pi_step(causal=True, m=None, period=4, variant='all')"
    """
    _pos_int(period, "period")
    if variant == "all":
        return _library_pi_step(period, causal=is_causal)
    if variant == "pow2":
        return _library_pi_step(period, "doubling", causal=is_causal)
    if isinstance(variant, int) and not isinstance(variant, bool) and variant >= 1:
        return _library_pi_step(period, "bounded", m=variant, causal=is_causal)
    raise ValueError(f"variant must be 'all', 'pow2' or a positive int M, got {variant!r}")


def pi_attention_pattern(period: int, radius: int, *, is_causal: bool = False, variant="all",
                         n: int | None = None) -> Pattern:
    """Union of πAttention's two components as one token graph.

    Causal: ``causal() & (window(r) | π-step)``; non-causal: ``ring_local(r) | π-step``.
    (The module attends them separately and gates the outputs; information flows along
    the union.)

    Example:
        >>> from maskc.guarantees.coverage import pi_attention_pattern
        >>> pi_attention_pattern(16, 4, is_causal=True).text()
        "causal() & (window(4) | pi_step(causal=False, m=None, period=16, variant='all'))"
    """
    step = pi_step(period, variant=variant, n=n)
    local = window(radius) if is_causal else ring_local(radius)
    return causal() & (local | step) if is_causal else local | step


def cyclic_jumps(period: int, n: int) -> Pattern:
    """The cyclic jump graph i -> i ± π (mod n), with self edges, as offsets of one length n.

    Example:
        >>> from maskc.guarantees.coverage import cyclic_jumps
        >>> cyclic_jumps(3, 8).text()
        'offsets([-5, -3, 0, 3, 5])'
    """
    _pos_int(period, "period")
    vals = {0}
    for d in (period % n, -(period % n), period % n - n, n - period % n):
        if abs(d) <= n - 1:
            vals.add(d)
    return offsets(sorted(vals))


@dataclass(frozen=True)
class PiVerdict:
    """One of the three coverage statements checked at one parameter set.

    ``measured`` / ``expected``: residue claim: the period of the reachable offsets
    (smallest positive reachable multiple) vs π; gcd claim: the number of residue
    classes (N / |reachable set|) vs gcd(π, N); prefix claim: the measured diameter vs
    the bound 1 + ceil((π - 1)/r). ``counterexample``: (query, key) breaking it, or None.
    """

    claim: str
    params: dict
    holds: bool
    measured: int | None
    expected: int
    counterexample: tuple[int, int] | None = None
    note: str = field(default="")


def _pos_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def claim_residue(n: int, period: int) -> PiVerdict:
    """Statement 1: π-step hops alone (non-causal, all multiples) stay in i mod π."""
    prof = reachability(stride(period), q_len=n).heads[0]
    d = np.arange(-(n - 1), n)
    h = _hops(prof, d)
    reach = h >= 0
    leak = reach & (np.mod(d, period) != 0)
    miss = ~reach & (np.mod(d, period) == 0)
    ce = None
    if leak.any():
        dd = int(d[leak][np.argmin(np.abs(d[leak]))])
        ce = (max(dd, 0), max(-dd, 0))
    elif miss.any():
        dd = int(d[miss][np.argmin(np.abs(d[miss]))])
        ce = (max(dd, 0), max(-dd, 0))
    pos = d[reach & (d > 0)]
    period_measured = int(pos.min()) if pos.size else None
    return PiVerdict("residue", {"n": n, "period": period}, ce is None, period_measured, period, ce,
                     "reachable offsets are exactly the multiples of the period")


def claim_gcd(n: int, period: int) -> PiVerdict:
    """Statement 2: cyclic ±π jumps reach exactly i + gcd(π, n)·Z_n."""
    g = math.gcd(period, n)
    hr = reachability(cyclic_jumps(period, n), q_len=n, causal=False).heads[0]
    d = np.arange(0, n)  # residues (i - j) mod n
    reach = _hops(hr, d) >= 0
    expect = (d % g) == 0
    ce = None
    if not np.array_equal(reach, expect):
        r = int(np.flatnonzero(reach != expect)[0])
        ce = (r, 0)
    classes = n // max(int(reach.sum()), 1)
    return PiVerdict("gcd", {"n": n, "period": period}, ce is None, classes, g, ce,
                     f"reachable positions from i: i + {g}·Z_{n}" + (" (all)" if g == 1 else ""))


def claim_prefix(n: int, period: int, radius: int, variant="all") -> PiVerdict:
    """Statement 3: causal window(r) | π-step reaches every earlier key within 1 + ceil((π-1)/r)."""
    _pos_int(radius, "radius")
    bound = 1 + -(-(period - 1) // radius)
    rep = reachability(pi_attention_pattern(period, radius, is_causal=True, variant=variant, n=n), q_len=n)
    diam = rep.diameter
    holds = diam is not None and diam <= bound
    ce = None
    note = "bound is tight" if diam == bound else ("bound holds, not tight" if holds else "bound is FALSE")
    if not holds:
        f = rep.first_unreachable(bound)
        ce = (f[1], f[2]) if f else None
    return PiVerdict("prefix", {"n": n, "period": period, "radius": radius, "variant": variant}, holds,
                     diam, bound, ce, note)


def _hops(hr, d: np.ndarray) -> np.ndarray:
    if hr.profile is None:  # pragma: no cover - the patterns above are Toeplitz
        raise RuntimeError("expected an offset-structured pattern")
    return hr.profile.at(d)


def verify_pi_claims(n: int, period: int, radius: int = 1, variant="all") -> list[PiVerdict]:
    """All three coverage statements at one (N, π, r); see :class:`PiVerdict`.

    Cost: three exact offset-sumset runs, O(hops * |offsets| * N / 64) each.
    """
    n = check_tokens(n)
    period = _pos_int(period, "period")
    return [claim_residue(n, period), claim_gcd(n, period), claim_prefix(n, period, radius, variant)]


def check_pi_claims(n: int, period: int, radius: int = 1, variant="all") -> None:
    """Raise :class:`GuaranteeError` naming (query, key) when a coverage statement is false here.

    Example:
        >>> from maskc.guarantees import check_pi_claims, GuaranteeError
        >>> check_pi_claims(1000, 16, 4)
        >>> try:
        ...     check_pi_claims(1000, 16, 4, variant=1)   # only the offset π itself
        ... except GuaranteeError as e:
        ...     e.details["measured"], e.details["expected"]
        (65, 5)
    """
    for v in verify_pi_claims(n, period, radius, variant):
        if not v.holds:
            q, k = v.counterexample if v.counterexample else (None, None)
            raise GuaranteeError(
                f"pi_{v.claim}",
                f"the πAttention '{v.claim}' statement is false for {v.params}: measured {v.measured}, "
                f"expected {v.expected}; counterexample query {q}, key {k} ({v.note})",
                head=0, query=q, key=k, measured=v.measured, expected=v.expected, params=v.params,
            )


@dataclass(frozen=True)
class PiCoverage:
    """Reachable set of a π-step + ring pattern from token ``source``.

    ``hops``: int32 [n] layers needed from ``source`` to each key (-1 never);
    ``reachable``: keys reachable at all; ``diameter``: over all (query, target key).
    """

    n: int
    source: int
    hops: np.ndarray
    diameter: int | None

    @property
    def reachable(self) -> np.ndarray:
        return np.flatnonzero(self.hops >= 0)


def pi_coverage(n: int, period: int, radius: int = 0, *, is_causal: bool = False, variant="all",
                source: int = 0) -> PiCoverage:
    """Exact reachable set of stride π with a ring of radius r (0 = no ring) on n tokens.

    Example (no ring: a token only reaches its residue class):
        >>> from maskc.guarantees import pi_coverage
        >>> c = pi_coverage(64, 8, 0, source=3)
        >>> c.reachable.tolist(), c.diameter
        ([3, 11, 19, 27, 35, 43, 51, 59], None)
    """
    n = check_tokens(n)
    p = pi_step(period, is_causal=is_causal, variant=variant, n=n) if radius == 0 else \
        pi_attention_pattern(period, radius, is_causal=is_causal, variant=variant, n=n)
    rep = reachability(p, q_len=n, causal=is_causal)
    hr = rep.heads[0]
    j = np.arange(n)
    if hr.profile is not None:
        hops = hr.profile.at(source - j).astype(np.int32)
    else:
        from scipy.sparse.csgraph import shortest_path

        dist = shortest_path(hr.csr, unweighted=True, indices=[source])[0]
        hops = np.where(np.isfinite(dist), dist, -1).astype(np.int32)
    return PiCoverage(n, source, hops, rep.diameter)
