"""PrimeFormer's nine number-theoretic head patterns and their per-head stack.

All nine are causal and include the diagonal d = 0 (d = i - j). Rules on the *value*
of a position use v(i) = i + 1, so position 0 (v = 1) is not divisible by everything.

Example:
    >>> from maskc.patterns.library import primeformer_heads
    >>> p = primeformer_heads(10)
    >>> p.n_heads, p.for_head(9).text()
    (10, 'twin_primes()')
"""

from __future__ import annotations

import functools
from math import gcd
from typing import Callable

import numpy as np
from maskc.jit import njit

from maskc.limits import check_int
from maskc.patterns.base import check_bool
from maskc.patterns.constructors import causal, cols, heads, offsets, segments, stride, window
from maskc.patterns.predicate import Predicate, register_lazy, register_predicate
from maskc.patterns.registry import library_pattern
from maskc.patterns.structure import Named
from maskc.patterns.zeta import table_size, zeta_zeros


@library_pattern("primeformer")
def twin_primes() -> Named:
    """PrimeFormer head 1: offsets ``d in {0, 1, 2} ∪ {p prime : p - 2 or p + 2 prime}``.

    Twin-prime members: 3, 5, 7, 11, 13, 17, 19, 29, 31, ...

    Keys per row: 3 + the twin-prime members up to i, ~ 4 C₂ i / ln² i asymptotically
    (C₂ ≈ 0.66; measured: 2,447 members <= 10^5).

    Example:
        >>> twin_primes().dense(14)[0, 13].nonzero()[0].tolist()
        [0, 2, 6, 8, 10, 11, 12, 13]
    """
    return Named("twin_primes", {}, window(2) | offsets("twin_primes"))


@library_pattern("primeformer")
def arithmetic_progression(q: int = 4, a: int = 1) -> Named:
    """PrimeFormer head 2 (Dirichlet): ``d`` prime with ``d ≡ a (mod q)``, plus ``d = 0``.

    ``a`` must be coprime to ``q`` (else at most one prime qualifies: refused); heads may
    use different coprime ``a``.

    Keys per row ≈ pi(i) / phi(q) + 1.

    Example:
        >>> arithmetic_progression(q=4, a=1).dense(20)[0, 19].nonzero()[0].tolist()
        [2, 6, 14, 19]
    """
    fn = "arithmetic_progression"
    qq = check_int(q, f"{fn}: q", 1, 1 << 30)
    aa = check_int(a, f"{fn}: a", 0, qq - 1)
    if gcd(aa, qq) != 1:
        raise ValueError(f"{fn}: a must be coprime to q (Dirichlet); got a={aa}, q={qq}, gcd {gcd(aa, qq)}")
    body = window(0) | (offsets("primes") & stride(qq, aa)) if qq > 1 else window(0) | offsets("primes")
    return Named(fn, {"q": qq, "a": aa}, body)


@library_pattern("primeformer")
def goldbach() -> Named:
    """PrimeFormer head 3: ``v(j)`` prime and ``v(i) - v(j)`` prime, plus ``d = 0``.

    Key ``j`` is a summand ``v(j)`` of a Goldbach partition ``v(i) = v(j) + p``; since
    ``v(i) - v(j) = d`` the rule is "column ``j + 1`` prime and offset ``d`` prime" (a
    column set ∩ an offset set).

    Keys per row: 1 + the number of ordered prime pairs (p, q) with p + q = v(i), which
    for even v(i) grows like v(i) / ln² v(i) up to the Hardy-Littlewood factor; for odd
    v(i) at most two (``v(j) = 2`` or ``v(j) = v(i) - 2``).

    Example:
        >>> goldbach().dense(10)[0, 9].nonzero()[0].tolist()   # v = 10 = 3 + 7 = 5 + 5 = 7 + 3
        [2, 4, 6, 9]
    """
    return Named("goldbach", {}, window(0) | (cols("primes", shift=1) & offsets("primes")))


@library_pattern("primeformer")
def mersenne(primes_only: bool = False) -> Named:
    """PrimeFormer head 4: ``d in {2^k - 1 : k >= 1}`` (1, 3, 7, 15, 31, ...) plus ``d = 0``.

    ``primes_only=True`` keeps the Mersenne primes only (3, 7, 31, 127, 8191, ...).

    Keys per row: floor(log2(i + 1)) + 1 (primes_only: a handful, <= 8 below 2^31).

    Example:
        >>> mersenne().dense(16)[0, 15].nonzero()[0].tolist()
        [0, 8, 12, 14, 15]
    """
    po = check_bool(primes_only, "mersenne: primes_only")
    return Named("mersenne", {"primes_only": po}, window(0) | offsets("mersenne_primes" if po else "mersenne"))


@njit(cache=True)
def _value_divides(i, j):
    # v(j) | v(i) with v = position + 1
    return (i + 1) % (j + 1) == 0


@functools.cache
def value_divides() -> Predicate:
    """``v(j)`` divides ``v(i)``: the one rule in the library with no structured form (built on first use).

    Example:
        >>> value_divides().dense(4)[0, 3].astype(int).tolist()   # v = 4: divisors 1, 2, 4
        [1, 1, 0, 1]
    """
    return register_predicate(Predicate(_value_divides, "maskc_value_divides"))


register_lazy("maskc_value_divides", value_divides)


def __getattr__(name: str):
    if name == "VALUE_DIVIDES":  # the old module constant, now built on first use
        return value_divides()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@library_pattern("primeformer")
def sieve(divisors: bool = False) -> Named:
    """PrimeFormer head 5: ``v(j)`` a prime factor of ``v(i)``, plus ``d = 0``.

    ``divisors=True``: every divisor ``v(j) | v(i)`` (which includes ``v(j) = 1``, i.e.
    key 0, and the diagonal). Divisibility has no offset / row / column structure, so
    the body is ``causal() & cols('primes', shift=1) & <numba predicate v(j) | v(i)>``
    (the structured parts prune blocks before the predicate is evaluated).

    Keys per row: omega(v(i)) + 1 <= log2(i + 1) + 1, about ln ln i on average
    (divisors: tau(v(i)), about ln i on average). Total O(N log log N) / O(N log N).

    Example:
        >>> sieve().dense(12)[0, 11].nonzero()[0].tolist()        # 12 = 2^2 * 3
        [1, 2, 11]
        >>> sieve(divisors=True).dense(12)[0, 11].nonzero()[0].tolist()
        [0, 1, 2, 3, 5, 11]
    """
    dv = check_bool(divisors, "sieve: divisors")
    body = causal() & value_divides() if dv else window(0) | (causal() & cols("primes", shift=1) & value_divides())
    return Named("sieve", {"divisors": dv}, body)


def riemann_zero_offsets(K: int) -> list[int]:
    """``sorted({round(gamma_k) : 1 <= k <= K})``, gamma_k the zeta zeros' ordinates.

    Example:
        >>> riemann_zero_offsets(5)
        [14, 21, 25, 30, 33]
    """
    return sorted({int(v) for v in np.rint(zeta_zeros(K))})


@library_pattern("primeformer")
def riemann_zeros(K: int = 64) -> Named:
    """PrimeFormer head 6: ``d in {round(gamma_k) : k <= K}`` plus ``d = 0``.

    gamma_k is the ordinate of the k-th nontrivial zeta zero (14.13, 21.02, 25.01, ...),
    read from the packaged table, so ``K`` is at most its size (1,000): constructing
    (or parsing) this pattern never computes zeros. Offsets that round to the same
    integer count once (rounding is half-to-even; no gamma_k of the table is within
    2e-4 of a half-integer, so it is unambiguous).

    Keys per row <= K + 1: one plus the number of zeros with gamma_k <= i + 1/2, i.e.
    ≈ (i / 2π) ln(i / 2πe) for i < gamma_K, then K + 1 (O(N) total for fixed K).

    Example:
        >>> riemann_zeros(K=3).dense(30)[0, 29].nonzero()[0].tolist()
        [4, 8, 15, 29]
    """
    k = check_int(K, "riemann_zeros: K", 0, table_size())
    offs = riemann_zero_offsets(k)
    return Named("riemann_zeros", {"K": k}, window(0) | offsets(offs) if offs else window(0))


@library_pattern("primeformer")
def prime_gaps() -> Named:
    """PrimeFormer head 7: ``v(i)`` and ``v(j)`` in the same prime gap ``[p_n, p_{n+1})``.

    Block-diagonal by prime gaps (position 0, ``v = 1``, is its own block), made causal.

    Keys per row: i + 2 - p_n for ``p_n <= v(i) < p_{n+1}``, i.e. at most the prime gap
    g_n, ≈ ln i on average (O(N log N) total).

    Example:
        >>> prime_gaps().dense(12)[0, 9].nonzero()[0].tolist()   # v = 10 in [7, 11)
        [6, 7, 8, 9]
    """
    return Named("prime_gaps", {}, causal() & segments("prime_gaps"))


@library_pattern("primeformer")
def quadratic_residue() -> Named:
    """PrimeFormer head 8: ``d`` a quadratic residue of the Paley prime, plus ``d = 0``.

    p is the smallest prime ``>= N`` with ``p ≡ 1 (mod 4)`` and the rule is
    ``Legendre(d mod p / p) = +1``; with ``d <= N - 1 < p`` that is ``d`` a nonzero square
    mod p. N is ``max(q_total, kv_len)`` (the ``offsets('paley_residues')`` sequence is
    generated for that limit, so the mask of a prefix is *not* the prefix of the mask:
    a different N may pick a different prime).

    Keys per row ≈ (i + 1) / 2 (about half of the causal prefix: Θ(N²) total).

    Example:
        >>> quadratic_residue().dense(13)[0, 12].nonzero()[0].tolist()   # p = 13: {1, 3, 4, 9, 10, 12}
        [0, 2, 3, 8, 9, 11, 12]
    """
    return Named("quadratic_residue", {}, window(0) | offsets("paley_residues"))


@library_pattern("primeformer")
def prime_powers(proper: bool = False) -> Named:
    """PrimeFormer head 9: ``d = p^k``, p prime, k >= 1 (von Mangoldt Λ(d) > 0), plus ``d = 0``.

    ``proper=True``: ``k >= 2`` only (4, 8, 9, 16, 25, 27, ...).

    Keys per row ≈ pi(i) + 1 ≈ i / ln i (proper: ≈ 2 sqrt(i) / ln i + 1).

    Example:
        >>> prime_powers().dense(10)[0, 9].nonzero()[0].tolist()
        [0, 1, 2, 4, 5, 6, 7, 9]
        >>> prime_powers(proper=True).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 1, 5, 9]
    """
    pr = check_bool(proper, "prime_powers: proper")
    return Named("prime_powers", {"proper": pr}, window(0) | offsets("proper_prime_powers" if pr else "prime_powers"))


#: The nine PrimeFormer head patterns in head order (constructors, default options).
PRIMEFORMER_HEADS: tuple[Callable[[], Named], ...] = (
    twin_primes, arithmetic_progression, goldbach, mersenne, sieve, riemann_zeros, prime_gaps,
    quadratic_residue, prime_powers,
)


@library_pattern("primeformer", gallery={"n_heads": 9})
def primeformer_heads(n_heads: int = 9) -> Named:
    """PrimeHarmonyAttention's per-head masks: the nine patterns, one per head.

    Head h uses pattern ``h mod 9`` in the order twin_primes, arithmetic_progression,
    goldbach, mersenne, sieve, riemann_zeros, prime_gaps, quadratic_residue,
    prime_powers. When heads cycle (n_heads > 9) the arithmetic-progression head of the
    c-th cycle uses residue ``a = 1`` (c even) or ``a = 3`` (c odd) mod 4, so repeated
    AP heads differ; the other eight repeat unchanged.

    Keys per row: per head, as in each pattern.

    Example:
        >>> primeformer_heads(11).for_head(10).text()
        'arithmetic_progression(a=3, q=4)'
    """
    n = check_int(n_heads, "primeformer_heads: n_heads", 1, 4096)
    made = [f() for f in PRIMEFORMER_HEADS]
    odd_ap = arithmetic_progression(4, 3)
    pats = [odd_ap if h % 9 == 1 and (h // 9) % 2 else made[h % 9] for h in range(n)]
    return Named("primeformer_heads", {"n_heads": n}, heads(pats))
