"""Integer sequences used as offset / index sets by patterns.

Every generator returns a sorted, duplicate-free ``int64`` numpy array of the
sequence's values in ``[0, limit]``. Named sequences are looked up with
:func:`named_sequence`; register more with :func:`register_sequence`.

Example:
    >>> from maskc.patterns.sequences import named_sequence
    >>> named_sequence("mian_chowla", 50).tolist()
    [1, 2, 4, 8, 13, 21, 31, 45]
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from maskc.jit import njit

#: Largest limit a sequence may be generated to (guards memory: a sieve to 2**31
#: would need 2 GiB).
MAX_LIMIT = 1 << 30

_REGISTRY: dict[str, Callable[[int], np.ndarray]] = {}


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D int64 array by sorting (numpy 2.4's hash-based unique is up to
    hundreds of times slower on large integer arrays)."""
    s = np.sort(np.asarray(a, dtype=np.int64).reshape(-1))
    if s.size < 2:
        return s
    return s[np.r_[True, s[1:] != s[:-1]]]

_DOCS: dict[str, str] = {}


def register_sequence(name: str, doc: str = ""):
    """Decorator: register ``fn(limit) -> values <= limit`` under ``name``.

    Example:
        >>> import numpy as np
        >>> from maskc.patterns.sequences import register_sequence, named_sequence
        >>> @register_sequence("cubes_demo", "n**3 for n >= 1")
        ... def _cubes(limit):
        ...     n = np.arange(1, int(round(limit ** (1 / 3))) + 2, dtype=np.int64)
        ...     return n[n ** 3 <= limit] ** 3
        >>> named_sequence("cubes_demo", 30).tolist()
        [1, 8, 27]
    """
    if not name.isidentifier():
        raise ValueError(f"sequence name must be an identifier, got {name!r}")

    def deco(fn: Callable[[int], np.ndarray]):
        _REGISTRY[name] = fn
        _DOCS[name] = doc or (fn.__doc__ or "").strip().splitlines()[0] if (doc or fn.__doc__) else ""
        _cached.cache_clear()
        return fn

    return deco


def sequence_names() -> list[str]:
    """Names of all registered sequences."""
    return sorted(_REGISTRY)


def sequence_doc(name: str) -> str:
    """One-line description of a named sequence."""
    return _DOCS.get(name, "")


@functools.lru_cache(maxsize=256)
def _cached(name: str, limit: int) -> np.ndarray:
    vals = np.asarray(_REGISTRY[name](limit), dtype=np.int64)
    vals = sorted_unique(vals[(vals >= 0) & (vals <= limit)])
    vals.setflags(write=False)
    return vals


def named_sequence(name: str, limit: int) -> np.ndarray:
    """Values of sequence ``name`` in ``[0, limit]`` (sorted, unique, read-only int64)."""
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown sequence {name!r}; known sequences: {', '.join(sequence_names())} "
            "(register your own with maskc.patterns.sequences.register_sequence)"
        )
    limit = int(limit)
    if limit < 0:
        return np.zeros(0, dtype=np.int64)
    if limit > MAX_LIMIT:
        raise ValueError(f"sequence limit {limit:,} is above the supported maximum {MAX_LIMIT:,}")
    return _cached(name, limit)


# ---------------------------------------------------------------- generators
def prime_sieve(limit: int) -> np.ndarray:
    """Boolean array ``is_prime[0..limit]`` (sieve of Eratosthenes)."""
    n = max(int(limit), 1) + 1
    s = np.ones(n, dtype=bool)
    s[:2] = False
    for p in range(2, int(n**0.5) + 1):
        if s[p]:
            s[p * p :: p] = False
    return s


@register_sequence("primes", "2, 3, 5, 7, 11, ...")
def primes(limit: int) -> np.ndarray:
    return np.flatnonzero(prime_sieve(limit)).astype(np.int64)


@register_sequence("squares", "n**2 for n >= 1")
def squares(limit: int) -> np.ndarray:
    n = np.arange(1, int(np.sqrt(max(limit, 0))) + 2, dtype=np.int64)
    return n * n


@register_sequence("powers_of_two", "2**k for k >= 0")
def powers_of_two(limit: int) -> np.ndarray:
    return np.array([1 << k for k in range(0, max(int(limit), 1).bit_length() + 1)], dtype=np.int64)


@register_sequence("mersenne", "2**k - 1 for k >= 1")
def mersenne(limit: int) -> np.ndarray:
    return np.array([(1 << k) - 1 for k in range(1, max(int(limit), 1).bit_length() + 2)], dtype=np.int64)


@register_sequence("fibonacci", "1, 2, 3, 5, 8, 13, ... (distinct Fibonacci numbers)")
def fibonacci(limit: int) -> np.ndarray:
    out, a, b = [], 1, 2
    while a <= limit:
        out.append(a)
        a, b = b, a + b
    return np.array(out, dtype=np.int64)


@register_sequence("twin_primes", "primes p with p - 2 or p + 2 prime: 3, 5, 7, 11, 13, ...")
def twin_primes(limit: int) -> np.ndarray:
    s = prime_sieve(limit + 2)
    p = np.flatnonzero(s[: limit + 1])
    ok = s[p + 2] | ((p >= 2) & s[np.maximum(p - 2, 0)])
    return p[ok].astype(np.int64)


@register_sequence("prime_powers", "p**k for prime p, k >= 1 (where von Mangoldt Λ > 0)")
def prime_powers(limit: int) -> np.ndarray:
    ps = primes(limit)
    out = [ps]
    for p in ps:
        if p * p > limit:
            break
        q, pw = [], int(p) * int(p)
        while pw <= limit:
            q.append(pw)
            pw *= int(p)
        out.append(np.array(q, dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@register_sequence("mian_chowla", "greedy Sidon sequence 1, 2, 4, 8, 13, 21, 31, ... (OEIS A005282)")
def mian_chowla(limit: int) -> np.ndarray:
    return _mian_chowla_upto(int(limit))


@functools.lru_cache(maxsize=8)
def _mian_chowla_upto(limit: int) -> np.ndarray:
    return _mian_chowla_kernel(limit)


@njit(cache=True)
def _mian_chowla_kernel(limit):
    # greedy: the next term is the smallest n whose differences to all earlier terms are new
    used = np.zeros(limit + 1, dtype=np.bool_)
    terms = np.zeros(64, dtype=np.int64)
    k = 0
    n = 1
    while n <= limit:
        ok = True
        for t in range(k):
            if used[n - terms[t]]:
                ok = False
                break
        if ok:
            for t in range(k):
                used[n - terms[t]] = True
            if k == terms.shape[0]:
                bigger = np.zeros(2 * k, dtype=np.int64)
                bigger[:k] = terms
                terms = bigger
            terms[k] = n
            k += 1
        n += 1
    return terms[:k].copy()


# ------------------------------------------------- added for the pattern library
@register_sequence("mersenne_primes", "Mersenne primes 2**p - 1: 3, 7, 31, 127, 8191, 131071, ...")
def mersenne_primes(limit: int) -> np.ndarray:
    """Mersenne numbers 2**k - 1 <= limit that are prime (Lucas-Lehmer via sympy)."""
    from sympy import isprime

    out = []
    k = 2
    while (1 << k) - 1 <= limit:
        if isprime(k) and isprime((1 << k) - 1):
            out.append((1 << k) - 1)
        k += 1
    return np.array(out, dtype=np.int64)


@register_sequence("proper_prime_powers", "p**k for prime p and k >= 2: 4, 8, 9, 16, 25, 27, 32, ...")
def proper_prime_powers(limit: int) -> np.ndarray:
    """Prime powers with exponent at least 2 (von Mangoldt support minus the primes)."""
    pp = prime_powers(limit)
    return pp[~prime_sieve(limit)[pp]] if pp.size else pp


def paley_prime(n: int) -> int:
    """The smallest prime p >= n with p = 1 (mod 4) (the Paley prime of length n).

    Example:
        >>> [paley_prime(n) for n in (1, 6, 14, 100)]
        [5, 13, 17, 101]
    """
    from sympy import isprime

    p = max(int(n), 2)
    while not (p % 4 == 1 and isprime(p)):
        p += 1
    return p


def quadratic_residues(p: int) -> np.ndarray:
    """Sorted nonzero quadratic residues modulo the odd prime ``p`` (Legendre symbol +1).

    Example:
        >>> quadratic_residues(13).tolist()
        [1, 3, 4, 9, 10, 12]
    """
    x = np.arange(1, (int(p) - 1) // 2 + 1, dtype=np.int64)
    return sorted_unique((x * x) % int(p))


@register_sequence(
    "paley_residues",
    "nonzero quadratic residues mod p, p = smallest prime >= limit with p = 1 (mod 4); "
    "depends on limit (not prefix-stable)",
)
def paley_residues(limit: int) -> np.ndarray:
    """Quadratic residues of the Paley prime of ``limit``, as offsets for a length-``limit`` mask.

    Unlike the other sequences, the members depend on ``limit``: the Offsets leaf asks
    for ``limit = max(q_len, kv_len)``, so the prime is the one of the sequence length.
    """
    return quadratic_residues(paley_prime(max(int(limit), 1)))
