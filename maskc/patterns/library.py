"""The pattern library: named seed patterns (SPEC A-C) and classical patterns (SPEC E).

Every constructor returns a :class:`~maskc.patterns.core.Named` node whose text is
the call itself (keyword arguments sorted, defaults included) and whose body is made
of the DSL's structured leaves, so the compiler works on offsets, rows, columns and
segments rather than on element predicates. ``mc.parse(p.text()) == p`` for every
pattern here (the constructors are registered with the text form on import).

Conventions (shared/SPEC.md): positions are 0-based, query ``i``, key ``j``, offset
``d = i - j``; "causal" means ``j <= i``; rules on the *value* of a position use
``v(i) = i + 1``; every seed pattern includes the diagonal ``d = 0``. "Keys per row"
below is the number of allowed keys of query row ``i`` in an ``N``-token self-attention.

Example:
    >>> import maskc as mc
    >>> from maskc.patterns import library as L
    >>> p = L.prime_bird()
    >>> p.text()
    'prime_bird(cap=None, global_tokens=2, window=3)'
    >>> mc.parse(p.text()) == p
    True
    >>> p.dense(12)[0, 11].nonzero()[0].tolist()   # j < 2, 8 <= j <= 11, 11 - j prime
    [0, 1, 4, 6, 8, 9, 10, 11]
"""

from __future__ import annotations

from math import gcd
from typing import Callable, Sequence

import numpy as np
from numba import njit

from maskc.patterns import sequences as _seq  # noqa: F401  (registers the named sequences used below)
from maskc.patterns.core import (
    MAX_INT, Named, Pattern, Predicate, block_level, causal, cols, global_tokens, heads, offsets,
    ring_local, segments, stride, window,
)
from maskc.patterns.parse import register_constructor

__all__ = [
    # SPEC A
    "prime_bird", "square_bird", "mian_chowla_bird",
    # SPEC B
    "pi_ring", "ring_local_pattern", "pi_step", "pi_attention_union",
    # SPEC C
    "twin_primes", "arithmetic_progression", "goldbach", "mersenne", "sieve", "riemann_zeros",
    "prime_gaps", "quadratic_residue", "prime_powers", "primeformer_heads", "PRIMEFORMER_HEADS",
    "riemann_zero_offsets", "VALUE_DIVIDES",
    # SPEC E
    "sliding_window", "dilated_window", "longformer", "bigbird", "sparse_transformer_strided",
    "sparse_transformer_fixed", "chunked_causal", "prefix_lm", "document_mask", "attention_sinks",
    # registry
    "LIBRARY", "library_names", "gallery_patterns",
]


# ============================================================ parameter checks
def _int(fn: str, name: str, value, lo: int = 0, hi: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer in [{lo}, {hi:,}], got {type(value).__name__} {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{fn}: {name} must be in [{lo}, {hi:,}], got {v:,}")
    return v


def _opt_int(fn: str, name: str, value, lo: int = 0, hi: int = MAX_INT) -> int | None:
    return None if value is None else _int(fn, name, value, lo, hi)


def _bool(fn: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)


def _indices(fn: str, name: str, value) -> int | tuple[int, ...]:
    """An int n (the first n positions) or a list of distinct non-negative positions."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _int(fn, name, value)
    try:
        vals = [_int(fn, f"{name} entry", v) for v in value]
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an int or a list of non-negative ints, got {value!r}") from None
    return tuple(sorted(set(vals)))


def _union(*parts: Pattern | None) -> Pattern:
    ps = [p for p in parts if p is not None]
    out = ps[0]
    for p in ps[1:]:
        out = out | p
    return out


def _diag() -> Pattern:
    """d = 0 only."""
    return window(0)


# ======================================================== SPEC A: Bird patterns
def _bird(name: str, seq: str, window_: int, global_tokens_: int, cap: int | None) -> Named:
    w = _int(name, "window", window_)
    g = _int(name, "global_tokens", global_tokens_)
    c = _opt_int(name, "cap", cap)
    offs = offsets(seq) if c is None else offsets(seq) & window(c)
    body = causal() & _union(window(w), offs, cols(g) if g else None)
    return Named(name, {"window": w, "global_tokens": g, "cap": c}, body)


def prime_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """PrimeSelfAttention's mask (SPEC A): causal union of globals, a window and prime offsets.

    Rule: ``j <= i`` and (``j < global_tokens`` or ``0 <= d <= window`` or ``d`` prime,
    ``d <= cap``). Keys are a set (a key allowed by several rules counts once).
    ``cap=None`` means no cap; the original used ``cap = seq_len_max = 4096``.

    Keys per row: ~ pi(i) + window + 1 + global_tokens ≈ i / ln i (total ≈ N² / (2 ln N),
    not O(N log N)).

    Example:
        >>> prime_bird(window=1, global_tokens=1).dense(8)[0, 7].nonzero()[0].tolist()
        [0, 2, 4, 5, 6, 7]
    """
    return _bird("prime_bird", "primes", window, global_tokens, cap)


def square_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """SquareSelfAttention's mask (SPEC A): globals, a window and square offsets n², n >= 1.

    Rule: ``j <= i`` and (``j < global_tokens`` or ``0 <= d <= window`` or ``d = n²``,
    ``n >= 1``, ``d <= cap``).

    Keys per row: ~ floor(sqrt(i)) + window + 1 + global_tokens ≈ sqrt(i).

    Example:
        >>> square_bird(window=0, global_tokens=0).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 5, 8, 9]
    """
    return _bird("square_bird", "squares", window, global_tokens, cap)


def mian_chowla_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """MianChowlaSelfAttention's mask (SPEC A): globals, a window and Mian-Chowla offsets.

    The Mian-Chowla sequence 1, 2, 4, 8, 13, 21, 31, 45, 66, ... is the greedy Sidon set
    (all pairwise differences distinct). Rule: ``j <= i`` and (``j < global_tokens`` or
    ``0 <= d <= window`` or ``d`` in the sequence, ``d <= cap``).

    Keys per row: ~ #{terms <= i} + window + 1 + global_tokens ≈ i^0.39 (measured:
    27 terms <= 1,000, 66 <= 10,000, 161 <= 100,000).

    Example:
        >>> mian_chowla_bird(window=0, global_tokens=0).dense(14)[0, 13].nonzero()[0].tolist()
        [0, 5, 9, 11, 12, 13]
    """
    return _bird("mian_chowla_bird", "mian_chowla", window, global_tokens, cap)


# ======================================================== SPEC B: πAttention
def pi_ring(r: int = 32, causal: bool = False) -> Named:
    """πAttention's ring-local component (SPEC B).

    Non-causal (the seed): ``min(|i - j| mod N, N - |i - j| mod N) <= r`` with
    ``N = kv_len``: a band of radius ``r`` that wraps around the ends. Causal form:
    ``0 <= d <= r`` (no wrap: wrapping would look at the future).

    Keys per row: min(2r + 1, N) non-causal; min(r, i) + 1 causal.

    Example:
        >>> pi_ring(r=1).dense(6)[0, 0].nonzero()[0].tolist()
        [0, 1, 5]
        >>> pi_ring(r=1, causal=True).dense(6)[0, 0].nonzero()[0].tolist()
        [0]
    """
    rr = _int("pi_ring", "r", r)
    c = _bool("pi_ring", "causal", causal)
    body = window(rr) if c else ring_local(rr)
    return Named("pi_ring", {"r": rr, "causal": c}, body)


def ring_local_pattern(r: int = 32, causal: bool = False) -> Named:
    """Alias of :func:`pi_ring` (the text form is ``pi_ring(...)``)."""
    return pi_ring(r, causal)


_PI_VARIANTS = ("all", "bounded", "doubling")


def pi_step(period: int = 16, variant: str = "all", m: int | None = None, causal: bool = False) -> Named:
    """πAttention's π-step component (SPEC B): periodic jumps by multiples of ``period``.

    Variants (``d = i - j``; the non-causal forms go both directions, ``|d|``; the causal
    forms need ``d >= 0``; ``d = 0`` is always included):

    - ``"all"`` (the seed): ``d mod period == 0``. Keys per row ≈ N / period
      (causal: floor(i / period) + 1).
    - ``"bounded"``: ``d = k * period`` with ``0 <= k <= m`` (``m`` required). Keys per
      row <= 2m + 1 (causal: m + 1).
    - ``"doubling"``: ``d in {0} ∪ {period * 2**k : 0 <= k <= m}`` (``m=None``: every k).
      Keys per row ≈ 2 log2(N / period) + 1 (causal: about half).

    Example:
        >>> pi_step(period=3, causal=True).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 3, 6, 9]
        >>> pi_step(period=2, variant="doubling", causal=True).dense(10)[0, 9].nonzero()[0].tolist()
        [1, 5, 7, 9]
        >>> pi_step(period=2, variant="bounded", m=1).dense(9)[0, 4].nonzero()[0].tolist()
        [2, 4, 6]
    """
    fn = "pi_step"
    p = _int(fn, "period", period, 1)
    if variant not in _PI_VARIANTS:
        raise ValueError(f"{fn}: variant must be one of {', '.join(map(repr, _PI_VARIANTS))}, got {variant!r}")
    c = _bool(fn, "causal", causal)
    mm = _opt_int(fn, "m", m, 0, 64 if variant == "doubling" else MAX_INT)
    if variant == "all":
        if mm is not None:
            raise ValueError(f"{fn}: m applies to variant 'bounded' or 'doubling' only; use m=None with variant='all'")
        body = _causal() & stride(p) if c else stride(p)
    elif variant == "bounded":
        if mm is None:
            raise ValueError(f"{fn}: variant='bounded' needs m, the largest multiple (an integer >= 0)")
        if mm * p > MAX_INT:
            raise ValueError(f"{fn}: m * period must be at most {MAX_INT:,}, got {mm * p:,}")
        body = stride(p) & (window(mm * p) if c else window(mm * p, mm * p))
    else:
        ks, k = [], 0
        while (mm is None or k <= mm) and p << k <= MAX_INT:
            ks.append(p << k)
            k += 1
        body = offsets([0] + ks, symmetric=not c)
    return Named(fn, {"period": p, "variant": variant, "m": mm, "causal": c}, body)


def pi_attention_union(r: int = 32, period: int = 16, variant: str = "all", m: int | None = None,
                       causal: bool = False) -> Named:
    """The union of πAttention's two components: ``pi_ring(r) | pi_step(period, ...)`` (SPEC B).

    πAttention itself runs the two as *separate* softmax attentions fused by a gate
    (``maskc.nn.PiAttention``); this single mask is what one attention over both sees,
    useful for coverage and hop-diameter analysis.

    Keys per row ≈ 2r + 1 + N / period (non-causal, variant "all").

    Example:
        >>> pi_attention_union(r=1, period=4).dense(9)[0, 0].nonzero()[0].tolist()
        [0, 1, 4, 8]
    """
    ring = pi_ring(r, causal)
    step = pi_step(period, variant, m, causal)
    kwargs = dict(step.kwargs)
    kwargs["r"] = dict(ring.kwargs)["r"]
    return Named("pi_attention_union", kwargs, ring | step)


def _causal() -> Pattern:
    return causal()


# ========================================================== SPEC C: PrimeFormer
def twin_primes() -> Named:
    """PrimeFormer head 1 (SPEC C): offsets ``d in {0, 1, 2} ∪ {p prime : p ± 2 prime}``.

    Causal, diagonal included. Twin-prime members: 3, 5, 7, 11, 13, 17, 19, 29, 31, ...

    Keys per row: 3 + the twin-prime members up to i, ~ 4 C₂ i / ln² i asymptotically
    (C₂ ≈ 0.66; measured: 2,447 members <= 10^5).

    Example:
        >>> twin_primes().dense(14)[0, 13].nonzero()[0].tolist()
        [0, 2, 6, 8, 10, 11, 12, 13]
    """
    return Named("twin_primes", {}, window(2) | offsets("twin_primes"))


def arithmetic_progression(q: int = 4, a: int = 1) -> Named:
    """PrimeFormer head 2 (SPEC C, Dirichlet): ``d`` prime with ``d ≡ a (mod q)``, plus ``d = 0``.

    ``a`` must be coprime to ``q`` (else at most one prime qualifies); heads may use
    different coprime ``a``. Causal.

    Keys per row ≈ pi(i) / phi(q) + 1.

    Example:
        >>> arithmetic_progression(q=4, a=1).dense(20)[0, 19].nonzero()[0].tolist()
        [2, 6, 14, 19]
    """
    fn = "arithmetic_progression"
    qq = _int(fn, "q", q, 1, 1 << 30)
    aa = _int(fn, "a", a, 0, qq - 1)
    if gcd(aa, qq) != 1:
        raise ValueError(f"{fn}: a must be coprime to q (Dirichlet); got a={aa}, q={qq}, gcd {gcd(aa, qq)}")
    body = _diag() | (offsets("primes") & stride(qq, aa)) if qq > 1 else _diag() | offsets("primes")
    return Named(fn, {"q": qq, "a": aa}, body)


def goldbach() -> Named:
    """PrimeFormer head 3 (SPEC C): ``v(j)`` prime and ``v(i) - v(j)`` prime, plus ``d = 0``.

    With ``v(i) = i + 1``: key ``j`` is the smaller-or-larger summand ``v(j)`` of a
    Goldbach partition ``v(i) = v(j) + p``; since ``v(i) - v(j) = d`` the rule is
    "column ``j + 1`` prime and offset ``d`` prime" (a column set ∩ an offset set). Causal.

    Keys per row: 1 + the number of ordered prime pairs (p, q) with p + q = v(i), which
    for even v(i) grows like v(i) / ln² v(i) up to the Hardy-Littlewood factor; for odd
    v(i) at most two (``v(j) = 2`` or ``v(j) = v(i) - 2``).

    Example:
        >>> goldbach().dense(10)[0, 9].nonzero()[0].tolist()   # v = 10 = 3 + 7 = 5 + 5 = 7 + 3
        [2, 4, 6, 9]
    """
    return Named("goldbach", {}, _diag() | (cols("primes", shift=1) & offsets("primes")))


def mersenne(primes_only: bool = False) -> Named:
    """PrimeFormer head 4 (SPEC C): ``d in {2^k - 1 : k >= 1}`` (1, 3, 7, 15, 31, ...) plus ``d = 0``.

    ``primes_only=True`` keeps the Mersenne primes only (3, 7, 31, 127, 8191, ...). Causal.

    Keys per row: floor(log2(i + 1)) + 1 (primes_only: a handful, <= 8 below 2^31).

    Example:
        >>> mersenne().dense(16)[0, 15].nonzero()[0].tolist()
        [0, 8, 12, 14, 15]
    """
    po = _bool("mersenne", "primes_only", primes_only)
    return Named("mersenne", {"primes_only": po}, _diag() | offsets("mersenne_primes" if po else "mersenne"))


@njit(cache=False)
def _value_divides(i, j):
    # v(j) | v(i) with v = position + 1
    return (i + 1) % (j + 1) == 0


#: ``v(j)`` divides ``v(i)``: the one rule in the library with no structured form.
VALUE_DIVIDES = Predicate(_value_divides, "maskc_value_divides")


def sieve(divisors: bool = False) -> Named:
    """PrimeFormer head 5 (SPEC C): ``v(j)`` a prime factor of ``v(i)``, plus ``d = 0``.

    ``divisors=True``: every divisor ``v(j) | v(i)`` (which includes ``v(j) = 1``, i.e.
    key 0, and the diagonal). Divisibility has no offset / row / column structure, so
    the body is ``causal() & cols('primes', shift=1) & <numba predicate v(j) | v(i)>``
    (the structured parts prune blocks before the predicate is evaluated). Causal.

    Keys per row: omega(v(i)) + 1 <= log2(i + 1) + 1, about ln ln i on average
    (divisors: tau(v(i)), about ln i on average). Total O(N log log N) / O(N log N).

    Example:
        >>> sieve().dense(12)[0, 11].nonzero()[0].tolist()        # 12 = 2^2 * 3
        [1, 2, 11]
        >>> sieve(divisors=True).dense(12)[0, 11].nonzero()[0].tolist()
        [0, 1, 2, 3, 5, 11]
    """
    dv = _bool("sieve", "divisors", divisors)
    body = causal() & VALUE_DIVIDES if dv else _diag() | (causal() & cols("primes", shift=1) & VALUE_DIVIDES)
    return Named("sieve", {"divisors": dv}, body)


def riemann_zero_offsets(K: int) -> list[int]:
    """``sorted({round(gamma_k) : 1 <= k <= K})``, gamma_k the zeta zeros' ordinates.

    Example:
        >>> riemann_zero_offsets(5)
        [14, 21, 25, 30, 33]
    """
    from maskc.patterns.zeta import zeta_zeros

    return sorted({int(v) for v in np.rint(zeta_zeros(K))})


def riemann_zeros(K: int = 64) -> Named:
    """PrimeFormer head 6 (SPEC C): ``d in {round(gamma_k) : k <= K}`` plus ``d = 0``.

    gamma_k is the ordinate of the k-th nontrivial zeta zero (14.13, 21.02, 25.01, ...),
    from the packaged table of 1,000 zeros (mpmath beyond it: slow). Offsets that round
    to the same integer count once. Causal.

    Keys per row <= K + 1: one plus the number of zeros with gamma_k <= i + 1/2, i.e.
    ≈ (i / 2π) ln(i / 2πe) for i < gamma_K, then K + 1 (O(N) total for fixed K).

    Example:
        >>> riemann_zeros(K=3).dense(30)[0, 29].nonzero()[0].tolist()
        [4, 8, 15, 29]
    """
    k = _int("riemann_zeros", "K", K, 0, 100_000)
    offs = riemann_zero_offsets(k)
    return Named("riemann_zeros", {"K": k}, _diag() | offsets(offs) if offs else _diag())


def prime_gaps() -> Named:
    """PrimeFormer head 7 (SPEC C): ``v(i)`` and ``v(j)`` in the same prime gap ``[p_n, p_{n+1})``.

    Block-diagonal by prime gaps (position 0, ``v = 1``, is its own block), made causal.

    Keys per row: i + 2 - p_n for ``p_n <= v(i) < p_{n+1}``, i.e. at most the prime gap
    g_n, ≈ ln i on average (O(N log N) total).

    Example:
        >>> prime_gaps().dense(12)[0, 9].nonzero()[0].tolist()   # v = 10 in [7, 11)
        [6, 7, 8, 9]
    """
    return Named("prime_gaps", {}, causal() & segments("prime_gaps"))


def quadratic_residue() -> Named:
    """PrimeFormer head 8 (SPEC C): ``d`` a quadratic residue of the Paley prime, plus ``d = 0``.

    p is the smallest prime ``>= N`` with ``p ≡ 1 (mod 4)`` and the rule is
    ``Legendre(d mod p / p) = +1``; with ``d <= N - 1 < p`` that is ``d`` a nonzero square
    mod p. N is ``max(q_len, kv_len)`` (the ``offsets('paley_residues')`` sequence is
    generated for that limit, so the mask of a prefix is *not* the prefix of the mask:
    a different N may pick a different prime). Causal.

    Keys per row ≈ (i + 1) / 2 (about half of the causal prefix: Θ(N²) total).

    Example:
        >>> quadratic_residue().dense(13)[0, 12].nonzero()[0].tolist()   # p = 13: {1, 3, 4, 9, 10, 12}
        [0, 2, 3, 8, 9, 11, 12]
    """
    return Named("quadratic_residue", {}, _diag() | offsets("paley_residues"))


def prime_powers(proper: bool = False) -> Named:
    """PrimeFormer head 9 (SPEC C): ``d = p^k``, p prime, k >= 1 (von Mangoldt Λ(d) > 0), plus ``d = 0``.

    ``proper=True``: ``k >= 2`` only (4, 8, 9, 16, 25, 27, ...). Causal.

    Keys per row ≈ pi(i) + 1 ≈ i / ln i (proper: ≈ 2 sqrt(i) / ln i + 1).

    Example:
        >>> prime_powers().dense(10)[0, 9].nonzero()[0].tolist()
        [0, 1, 2, 4, 5, 6, 7, 9]
        >>> prime_powers(proper=True).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 1, 5, 9]
    """
    pr = _bool("prime_powers", "proper", proper)
    return Named("prime_powers", {"proper": pr}, _diag() | offsets("proper_prime_powers" if pr else "prime_powers"))


#: The nine PrimeFormer head patterns in SPEC C's order (constructors, default options).
PRIMEFORMER_HEADS: tuple[Callable[[], Named], ...] = (
    twin_primes, arithmetic_progression, goldbach, mersenne, sieve, riemann_zeros, prime_gaps,
    quadratic_residue, prime_powers,
)


def primeformer_heads(n_heads: int = 9) -> Named:
    """PrimeHarmonyAttention's per-head masks (SPEC C): the nine patterns, one per head.

    Head h uses pattern ``h mod 9`` in the order twin_primes, arithmetic_progression,
    goldbach, mersenne, sieve, riemann_zeros, prime_gaps, quadratic_residue,
    prime_powers. When heads cycle (n_heads > 9) the arithmetic-progression head of the
    c-th cycle uses residue ``a = 1`` (c even) or ``a = 3`` (c odd) mod 4, so repeated
    AP heads differ (SPEC: "heads may take different coprime a"); the other eight
    repeat unchanged.

    Keys per row: per head, as in each pattern.

    Example:
        >>> p = primeformer_heads(10)
        >>> p.n_heads, p.for_head(9).text()
        (10, 'twin_primes()')
        >>> primeformer_heads(11).for_head(10).text()
        'arithmetic_progression(a=3, q=4)'
    """
    n = _int("primeformer_heads", "n_heads", n_heads, 1, 4096)
    pats = []
    for h in range(n):
        k, cycle = h % 9, h // 9
        pats.append(arithmetic_progression(4, 1 if cycle % 2 == 0 else 3) if k == 1 else PRIMEFORMER_HEADS[k]())
    return Named("primeformer_heads", {"n_heads": n}, heads(pats))


# ========================================================== SPEC E: classical
def sliding_window(w: int, symmetric: bool = False) -> Named:
    """Sliding-window attention (SPEC E): ``0 <= d <= w`` (causal) or ``|d| <= w`` (symmetric).

    Keys per row: min(i, w) + 1 causal; up to 2w + 1 symmetric. O(N w) total.

    Example:
        >>> sliding_window(2).dense(5)[0, 4].nonzero()[0].tolist()
        [2, 3, 4]
        >>> sliding_window(1, symmetric=True).dense(5)[0, 2].nonzero()[0].tolist()
        [1, 2, 3]
    """
    ww = _int("sliding_window", "w", w)
    s = _bool("sliding_window", "symmetric", symmetric)
    return Named("sliding_window", {"w": ww, "symmetric": s}, window(ww, ww) if s else window(ww))


def dilated_window(w: int, dilation: int, symmetric: bool = False) -> Named:
    """Dilated sliding window (SPEC E): ``d = k * dilation`` for ``0 <= k <= w`` (``|d|`` if symmetric).

    Keys per row: min(w, floor(i / dilation)) + 1 causal; up to 2w + 1 symmetric.

    Example:
        >>> dilated_window(2, 3).dense(10)[0, 9].nonzero()[0].tolist()
        [3, 6, 9]
    """
    fn = "dilated_window"
    ww = _int(fn, "w", w)
    dl = _int(fn, "dilation", dilation, 1)
    s = _bool(fn, "symmetric", symmetric)
    if ww * dl > MAX_INT:
        raise ValueError(f"{fn}: w * dilation must be at most {MAX_INT:,}, got {ww * dl:,}")
    span = window(ww * dl, ww * dl) if s else window(ww * dl)
    body = span if dl == 1 else stride(dl) & span
    return Named(fn, {"w": ww, "dilation": dl, "symmetric": s}, body)


def longformer(window: int, global_tokens: int | Sequence[int], causal: bool = False) -> Named:
    """Longformer (SPEC E): symmetric band ``|d| <= window`` plus global tokens.

    ``global_tokens``: an int n (the first n positions) or a list of positions; global
    rows attend every key and every query attends global columns. ``causal=True``
    intersects everything with ``j <= i``. (``window`` is the one-sided radius; the
    paper's "window size w" is 2 * window.)

    Keys per row: 2 window + 1 + |G| (global rows: N). O(N (w + |G|)) total.

    Example:
        >>> longformer(1, 1).dense(6)[0, 4].nonzero()[0].tolist()
        [0, 3, 4, 5]
    """
    fn = "longformer"
    w = _int(fn, "window", window)
    g = _indices(fn, "global_tokens", global_tokens)
    c = _bool(fn, "causal", causal)
    glob = _global_leaf(g)
    body = _union(_window(w, 0 if c else w), glob)
    return Named(fn, {"window": w, "global_tokens": g, "causal": c},
                 _causal() & body if c else body)


def _window(left: int, right: int) -> Pattern:
    return window(left, right)


def _global_leaf(g: int | tuple[int, ...]) -> Pattern | None:
    if g == 0 or g == ():
        return None
    return global_tokens(g if isinstance(g, int) else list(g))


_LCG_M = 2147483647  # 2^31 - 1


@njit(cache=False)
def _bb_mix(x):
    # a nonlinear mixing step on [0, 2^31 - 1); every product stays below 2^62
    x = (x * 48271) % 2147483647
    x = (x * x + 7) % 2147483647
    return (x * 16807) % 2147483647


@njit(cache=False)
def _bb_picks(qb, kb, seed, r, radius, gb):
    # is kb one of the r random key blocks of query block qb? candidates [gb, qb - radius)
    lo = gb
    hi = qb - radius
    n = hi - lo
    if n <= 0 or kb < lo or kb >= hi:
        return False
    if n <= r:
        return True
    picks = np.empty(r, dtype=np.int64)
    got = 0
    s = _bb_mix(_bb_mix(seed % 2147483647 + 1) + qb % 2147483647)
    t = 0
    while got < r and t < 1000 * r:
        t += 1
        s = _bb_mix(s + t)
        x = lo + s % n
        new = True
        for u in range(got):
            if picks[u] == x:
                new = False
                break
        if new:
            picks[got] = x
            got += 1
            if x == kb:
                return True
    return False


_BB_PREDICATES: dict[tuple, Predicate] = {}


def _bigbird_random(seed: int, r: int, radius: int, gb: int, symmetric: bool) -> Predicate:
    key = (seed, r, radius, gb, symmetric)
    if key not in _BB_PREDICATES:
        name = f"maskc_bigbird_random_s{seed}_r{r}_w{radius}_g{gb}_{'sym' if symmetric else 'causal'}"
        if symmetric:
            def rule(qb, kb):
                return _bb_picks(qb, kb, seed, r, radius, gb) or _bb_picks(kb, qb, seed, r, radius, gb)
        else:
            def rule(qb, kb):
                return _bb_picks(qb, kb, seed, r, radius, gb)
        rule.__name__ = name
        _BB_PREDICATES[key] = Predicate(rule, name)
    return _BB_PREDICATES[key]


def bigbird(window: int = 3, global_tokens: int = 64, random_blocks: int = 3, block: int = 64, seed: int = 0,
            causal: bool = False) -> Named:
    """BigBird (SPEC E), block level: window blocks + global tokens + seeded random blocks.

    With ``qb = i // block`` and ``kb = j // block``:

    - window: ``|qb - kb| <= window // 2`` (``window`` blocks per row, odd; BigBird's 3);
    - global: the first ``global_tokens`` tokens, as rows and as columns (token level;
      the default is one block, as in BigBird-ITC);
    - random: query block ``qb`` draws ``random_blocks`` distinct key blocks uniformly from
      the earlier blocks ``[gb, qb - window // 2)`` outside its window and past the
      ``gb = global_tokens // block`` all-global blocks (all of them if there are no
      more); the non-causal form adds the transpose, so the random block graph is
      symmetric (each row gets its r draws to the left plus about r ln(n_b / qb) to the
      right). The draws are a fixed function of ``(seed, qb)`` (a seeded hash, see
      ``_bb_picks``), so the mask is deterministic, does not depend on the sequence
      length, and a shorter sequence's mask is a prefix of a longer one's.
    - ``causal=True``: everything intersected with ``j <= i`` at token level (random
      blocks are then only the left draws).

    Keys per row ≈ block * (window + 2 random_blocks) + global_tokens non-causal,
    block * (window // 2 + random_blocks) + global_tokens causal: O(N) total.

    Example:
        >>> p = bigbird(window=3, global_tokens=2, random_blocks=1, block=2, seed=0)
        >>> bool((p.dense(20) == p.dense(20)).all()), int(p.dense(20)[0, 19].sum()) >= 6
        (True, True)
    """
    fn = "bigbird"
    w = _int(fn, "window", window, 1, 1 << 20)
    if w % 2 == 0:
        raise ValueError(f"{fn}: window must be an odd number of blocks (1, 3, 5, ...), got {w}")
    g = _int(fn, "global_tokens", global_tokens)
    r = _int(fn, "random_blocks", random_blocks, 0, 1024)
    b = _int(fn, "block", block, 1, 1 << 20)
    sd = _int(fn, "seed", seed, 0, _LCG_M - 1)
    c = _bool(fn, "causal", causal)
    rad = w // 2
    local = _window(rad, 0 if c else rad)
    inner = local | _bigbird_random(sd, r, rad, g // b, not c) if r else local
    body = _union(block_level(inner, b), _global_leaf(g))
    kwargs = {"window": w, "global_tokens": g, "random_blocks": r, "block": b, "seed": sd, "causal": c}
    return Named(fn, kwargs, _causal() & body if c else body)


def sparse_transformer_strided(stride: int) -> Named:
    """Sparse Transformer, strided (SPEC E; Child et al. 2019), both heads' masks merged.

    Causal and (``0 <= d < stride`` (the previous ``stride`` tokens) or
    ``d mod stride == 0``).

    Keys per row ≈ stride + i / stride (minimal at stride ≈ sqrt(N): O(N sqrt N) total).

    Example:
        >>> sparse_transformer_strided(3).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 3, 6, 7, 8, 9]
    """
    s = _int("sparse_transformer_strided", "stride", stride, 1)
    return Named("sparse_transformer_strided", {"stride": s}, causal() & (window(s - 1) | _stride(s)))


def _stride(period: int) -> Pattern:
    return stride(period)


def sparse_transformer_fixed(block: int, c: int = 1) -> Named:
    """Sparse Transformer, fixed (SPEC E; Child et al. 2019), both heads' masks merged.

    Causal and (same block: ``i // block == j // block``, or ``j`` a summary column:
    ``j mod block >= block - c``). Block-structured as in the original: the "same block"
    part is ``block_level(window(0), block)``.

    Keys per row: (i mod block) + 1 + c * floor(i / block) ≈ c i / block.

    Example:
        >>> sparse_transformer_fixed(4, 1).dense(10)[0, 9].nonzero()[0].tolist()
        [3, 7, 8, 9]
    """
    fn = "sparse_transformer_fixed"
    b = _int(fn, "block", block, 1, 1 << 20)
    cc = _int(fn, "c", c, 1, b)
    same = block_level(window(0), b)
    if cc == b:  # every column is a summary column: plain causal attention
        body = causal()
    elif b % cc == 0:  # summary columns are every (b // cc)-th block of cc tokens
        body = causal() & (same | block_level(cols(range(b // cc - 1, MAX_INT, b // cc)), cc))
    else:
        body = causal() & (same | _union(*(cols(range(b - cc + t, MAX_INT, b)) for t in range(cc))))
    return Named(fn, {"block": b, "c": cc}, body)


def chunked_causal(chunk: int) -> Named:
    """Chunked causal attention (SPEC E): causal within chunks of ``chunk`` tokens.

    Rule: ``j <= i`` and ``i // chunk == j // chunk``.

    Keys per row: (i mod chunk) + 1.

    Example:
        >>> chunked_causal(3).dense(7)[0, 4].nonzero()[0].tolist()
        [3, 4]
    """
    ch = _int("chunked_causal", "chunk", chunk, 1, 1 << 20)
    return Named("chunked_causal", {"chunk": ch}, causal() & block_level(window(0), ch))


def prefix_lm(prefix: int) -> Named:
    """Prefix-LM (SPEC E): bidirectional over the first ``prefix`` tokens, causal after.

    Rule: ``j <= i`` or ``j < prefix`` (queries in the prefix see the whole prefix;
    later queries see the prefix anyway through causality).

    Keys per row: max(i + 1, prefix).

    Example:
        >>> prefix_lm(3).dense(5)[0].astype(int).sum(axis=1).tolist()
        [3, 3, 3, 4, 5]
    """
    p = _int("prefix_lm", "prefix", prefix)
    return Named("prefix_lm", {"prefix": p}, causal() | cols(p) if p else causal())


def document_mask(lengths: Sequence[int], causal: bool = True) -> Named:
    """Document / packed-sequence masking (SPEC E): attend within the same document only.

    ``lengths`` are the documents' lengths in packing order; positions past their sum
    form one last document. ``causal=True`` (default) adds ``j <= i``.

    Keys per row: position within its document + 1 (causal) or the document's length.

    Example:
        >>> document_mask([2, 3]).dense(5)[0].astype(int).sum(axis=1).tolist()
        [1, 2, 1, 2, 3]
    """
    fn = "document_mask"
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
        lengths = [lengths]
    try:
        lens = tuple(_int(fn, "lengths entry", v, 1) for v in lengths)
    except TypeError:
        raise TypeError(f"{fn}: lengths must be a list of positive ints, got {lengths!r}") from None
    if not lens:
        raise ValueError(f"{fn}: lengths must hold at least one document length")
    c = _bool(fn, "causal", causal)
    seg = segments(list(lens))
    return Named(fn, {"lengths": lens, "causal": c}, _causal() & seg if c else seg)


def attention_sinks(n_sinks: int = 4, window: int = 1020) -> Named:
    """Streaming attention with sinks (SPEC E; StreamingLLM): the first tokens plus a causal window.

    Rule: ``j <= i`` and (``j < n_sinks`` or ``0 <= d <= window``).

    Keys per row: min(i + 1, n_sinks + window + 1) (1,024 with the defaults).

    Example:
        >>> attention_sinks(1, 2).dense(6)[0, 5].nonzero()[0].tolist()
        [0, 3, 4, 5]
    """
    fn = "attention_sinks"
    n = _int(fn, "n_sinks", n_sinks)
    w = _int(fn, "window", window)
    body = causal() & (cols(n) | _window(w, 0)) if n else _window(w, 0)
    return Named(fn, {"n_sinks": n, "window": w}, body)


# ==================================================================== registry
#: Every library constructor by its text-form name.
LIBRARY: dict[str, Callable[..., Named]] = {
    "prime_bird": prime_bird, "square_bird": square_bird, "mian_chowla_bird": mian_chowla_bird,
    "pi_ring": pi_ring, "pi_step": pi_step, "pi_attention_union": pi_attention_union,
    "twin_primes": twin_primes, "arithmetic_progression": arithmetic_progression, "goldbach": goldbach,
    "mersenne": mersenne, "sieve": sieve, "riemann_zeros": riemann_zeros, "prime_gaps": prime_gaps,
    "quadratic_residue": quadratic_residue, "prime_powers": prime_powers, "primeformer_heads": primeformer_heads,
    "sliding_window": sliding_window, "dilated_window": dilated_window, "longformer": longformer,
    "bigbird": bigbird, "sparse_transformer_strided": sparse_transformer_strided,
    "sparse_transformer_fixed": sparse_transformer_fixed, "chunked_causal": chunked_causal,
    "prefix_lm": prefix_lm, "document_mask": document_mask, "attention_sinks": attention_sinks,
}

for _name, _fn in LIBRARY.items():
    register_constructor(_name, _fn)
register_constructor("ring_local_pattern", ring_local_pattern)


def library_names() -> list[str]:
    """Names of the library's constructors (as used in the text form)."""
    return sorted(LIBRARY)


def gallery_patterns() -> dict[str, Named]:
    """One representative instance of every library pattern, sized for 128-token pictures.

    Example:
        >>> sorted(gallery_patterns()) == library_names()
        True
    """
    return {
        "prime_bird": prime_bird(), "square_bird": square_bird(), "mian_chowla_bird": mian_chowla_bird(),
        "pi_ring": pi_ring(r=8), "pi_step": pi_step(period=16),
        "pi_attention_union": pi_attention_union(r=8, period=16),
        "twin_primes": twin_primes(), "arithmetic_progression": arithmetic_progression(),
        "goldbach": goldbach(), "mersenne": mersenne(), "sieve": sieve(), "riemann_zeros": riemann_zeros(),
        "prime_gaps": prime_gaps(), "quadratic_residue": quadratic_residue(), "prime_powers": prime_powers(),
        "primeformer_heads": primeformer_heads(9),
        "sliding_window": sliding_window(16), "dilated_window": dilated_window(8, 4),
        "longformer": longformer(8, 2), "bigbird": bigbird(window=3, global_tokens=8, random_blocks=1, block=8),
        "sparse_transformer_strided": sparse_transformer_strided(16),
        "sparse_transformer_fixed": sparse_transformer_fixed(16, 2), "chunked_causal": chunked_causal(32),
        "prefix_lm": prefix_lm(32), "document_mask": document_mask([40, 24, 50]),
        "attention_sinks": attention_sinks(4, 16),
    }
