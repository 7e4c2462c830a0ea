"""The pattern library against independent dense implementations of the rules in its docstrings.

Every reference below is a plain-Python rule over (i, j) (trial-division primality,
brute-force sequences, mpmath zeta zeros), never maskc's DSL or sequences. Each library
pattern must agree with it through ``pattern.dense`` and ``mc.compile(...).to_dense()``
at odd lengths and with q_len != kv_len.
"""

from __future__ import annotations

import doctest
import functools
import math
from functools import lru_cache

import numpy as np
import pytest

import maskc as mc
from maskc.patterns import library as L
from _pattern_helpers import compiled_dense, lowered_dense  # noqa: E402  (tests/patterns/_pattern_helpers.py)


# ============================================ plain-Python number theory (no maskc)
#: (q_len, kv_len) pairs: odd lengths, a ragged 130, and q_len != kv_len both ways.
SHAPES = [(1, 1), (7, 7), (31, 31), (97, 97), (130, 130), (31, 97), (97, 31)]


@functools.lru_cache(maxsize=None)
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in range(2, math.isqrt(n) + 1):
        if n % p == 0:
            return False
    return True


@functools.lru_cache(maxsize=None)
def prime_power_exponent(n: int) -> int:
    """k if n = p**k for a prime p and k >= 1, else 0."""
    if n < 2:
        return 0
    p = next(d for d in range(2, n + 1) if n % d == 0)
    k = 0
    while n % p == 0:
        n //= p
        k += 1
    return k if n == 1 else 0


@functools.lru_cache(maxsize=None)
def mian_chowla_set(limit: int) -> frozenset:
    """Greedy Sidon sequence by brute force: next term keeps all pairwise sums distinct."""
    terms: list[int] = []
    sums: set[int] = set()
    n = 1
    while n <= limit:
        new = {n + t for t in terms} | {2 * n}
        if not new & sums:
            terms.append(n)
            sums |= new
        n += 1
    return frozenset(terms)


def dense_from_rule(rule, q_len: int, kv_len: int) -> np.ndarray:
    """bool [q_len, kv_len] with M[i, j] = rule(i, j), by plain loops."""
    m = np.zeros((q_len, kv_len), dtype=bool)
    for i in range(q_len):
        for j in range(kv_len):
            m[i, j] = bool(rule(i, j))
    return m


# ============================================================ reference rules
def bird_rule(kind: str, w: int, G: int, cap):
    def in_seq(d: int) -> bool:
        if kind == "primes":
            return is_prime(d)
        if kind == "squares":
            return d >= 1 and math.isqrt(d) ** 2 == d
        return d in mian_chowla_set(300)

    def rule(i, j):
        d = i - j
        return d >= 0 and (j < G or d <= w or (in_seq(d) and (cap is None or d <= cap)))

    return rule


def ring_rule(r: int, causal: bool, kv_len: int):
    def rule(i, j):
        if causal:
            return 0 <= i - j <= r
        m = abs(i - j) % kv_len
        return min(m, kv_len - m) <= r

    return rule


def pi_step_rule(period: int, variant: str, m, causal: bool):
    def rule(i, j):
        d = i - j
        if causal and d < 0:
            return False
        a = abs(d)
        if variant == "all":
            return a % period == 0
        if variant == "bounded":
            return a % period == 0 and a <= m * period
        if a == 0:
            return True
        if a % period:
            return False
        t = a // period
        return t & (t - 1) == 0 and (m is None or t.bit_length() - 1 <= m)

    return rule


def twin_rule(i, j):
    d = i - j
    return d >= 0 and (d <= 2 or (is_prime(d) and (is_prime(d - 2) or is_prime(d + 2))))


def ap_rule(q: int, a: int):
    return lambda i, j: i == j or (is_prime(i - j) and (i - j) % q == a)


def goldbach_rule(i, j):
    # v(j) prime and v(i) - v(j) prime, v = position + 1
    return i == j or (is_prime(j + 1) and is_prime((i + 1) - (j + 1)))


def mersenne_rule(primes_only: bool):
    def rule(i, j):
        d = i - j
        if d == 0:
            return True
        if d < 1 or (d + 1) & d:
            return False
        return is_prime(d) if primes_only else True

    return rule


def sieve_rule(divisors: bool):
    def rule(i, j):
        if i == j:
            return True
        vi, vj = i + 1, j + 1
        return vj <= vi and vi % vj == 0 and (divisors or is_prime(vj))

    return rule


@lru_cache(maxsize=None)
def mpmath_zeros(K: int) -> tuple[float, ...]:
    import mpmath

    with mpmath.workdps(20):
        return tuple(float(mpmath.zetazero(k).imag) for k in range(1, K + 1))


def riemann_rule(K: int):
    offs = {round(g) for g in mpmath_zeros(K)}
    return lambda i, j: i == j or (i - j) in offs


def prime_gaps_rule(i, j):
    def gap(v):  # index of the largest prime <= v; v < 2 has its own id
        return max((p for p in range(2, v + 1) if is_prime(p)), default=-1)

    return i >= j and gap(i + 1) == gap(j + 1)


def qr_rule(q_len: int, kv_len: int):
    n = max(q_len, kv_len)
    p = n
    while not (p % 4 == 1 and is_prime(p)):
        p += 1

    def rule(i, j):
        d = i - j
        if d == 0:
            return True
        return d > 0 and d % p != 0 and pow(d % p, (p - 1) // 2, p) == 1  # Euler's criterion

    return rule


def prime_powers_rule(proper: bool):
    def rule(i, j):
        d = i - j
        if d == 0:
            return True
        k = prime_power_exponent(d) if d > 0 else 0
        return k >= 2 if proper else k >= 1

    return rule


def sliding_rule(w, symmetric):
    return lambda i, j: abs(i - j) <= w if symmetric else 0 <= i - j <= w


def dilated_rule(w, dil, symmetric):
    def rule(i, j):
        d = i - j
        if d < 0 and not symmetric:
            return False
        return abs(d) % dil == 0 and abs(d) <= w * dil

    return rule


def longformer_rule(w, G, causal):
    gs = set(range(G)) if isinstance(G, int) else set(G)

    def rule(i, j):
        ok = abs(i - j) <= w or i in gs or j in gs
        return ok and (i >= j or not causal)

    return rule


def strided_rule(s):
    return lambda i, j: i >= j and (i - j < s or (i - j) % s == 0)


def fixed_rule(b, c):
    return lambda i, j: i >= j and (i // b == j // b or j % b >= b - c)


def chunked_rule(c):
    return lambda i, j: i >= j and i // c == j // c


def prefix_rule(P):
    return lambda i, j: j <= i or j < P


def document_rule(lengths, causal):
    ends = np.cumsum(lengths)

    def doc(x):
        return int(np.searchsorted(ends, x, side="right"))

    return lambda i, j: doc(i) == doc(j) and (i >= j or not causal)


def sinks_rule(n, w):
    return lambda i, j: i >= j and (j < n or i - j <= w)


# BigBird: the seeded generator is part of the documented rule, re-implemented here in
# plain Python integers (the library's copy is numba code).
_M = 2147483647


def _mix(x):
    x = (x * 48271) % _M
    x = (x * x + 7) % _M
    return (x * 16807) % _M


@lru_cache(maxsize=None)
def bb_random_blocks(qb, seed, r, radius, gb):
    lo, hi = gb, qb - radius
    n = hi - lo
    if n <= 0:
        return frozenset()
    if n <= r:
        return frozenset(range(lo, hi))
    picks: list[int] = []
    s = _mix(_mix(seed % _M + 1) + qb % _M)
    t = 0
    while len(picks) < r and t < 1000 * r:
        t += 1
        s = _mix(s + t)
        x = lo + s % n
        if x not in picks:
            picks.append(x)
    return frozenset(picks)


def bigbird_rule(window, G, r, block, seed, causal):
    rad, gb = window // 2, G // block

    def rule(i, j):
        qb, kb = i // block, j // block
        ok = i < G or j < G or abs(qb - kb) <= rad and (kb <= qb or not causal)
        if r and not ok:
            ok = kb in bb_random_blocks(qb, seed, r, rad, gb) or (
                not causal and qb in bb_random_blocks(kb, seed, r, rad, gb))
        return ok and (i >= j or not causal)

    return rule


# =================================================== (pattern, reference) cases
def _case(p, rule_or_factory, needs_shape=False):
    return pytest.param(p, rule_or_factory, needs_shape, id=p.text())


CASES = [
    _case(L.prime_bird(), bird_rule("primes", 3, 2, None)),
    _case(L.prime_bird(window=0, global_tokens=0, cap=20), bird_rule("primes", 0, 0, 20)),
    _case(L.square_bird(), bird_rule("squares", 3, 2, None)),
    _case(L.square_bird(window=1, global_tokens=5, cap=50), bird_rule("squares", 1, 5, 50)),
    _case(L.mian_chowla_bird(), bird_rule("mc", 3, 2, None)),
    _case(L.mian_chowla_bird(window=0, global_tokens=1), bird_rule("mc", 0, 1, None)),
    _case(L.pi_ring(r=3), lambda q, k: ring_rule(3, False, k), True),
    _case(L.pi_ring(r=32), lambda q, k: ring_rule(32, False, k), True),
    _case(L.pi_ring(r=5, causal=True), lambda q, k: ring_rule(5, True, k), True),
    _case(L.pi_step(period=16), pi_step_rule(16, "all", None, False)),
    _case(L.pi_step(period=5, causal=True), pi_step_rule(5, "all", None, True)),
    _case(L.pi_step(period=4, variant="bounded", m=3), pi_step_rule(4, "bounded", 3, False)),
    _case(L.pi_step(period=4, variant="bounded", m=3, causal=True), pi_step_rule(4, "bounded", 3, True)),
    _case(L.pi_step(period=3, variant="doubling"), pi_step_rule(3, "doubling", None, False)),
    _case(L.pi_step(period=3, variant="doubling", m=2, causal=True), pi_step_rule(3, "doubling", 2, True)),
    _case(L.pi_attention_union(r=4, period=7),
          lambda q, k: (lambda a, b: (lambda i, j: a(i, j) or b(i, j)))(
              ring_rule(4, False, k), pi_step_rule(7, "all", None, False)), True),
    _case(L.pi_attention_union(r=2, period=3, variant="bounded", m=2, causal=True),
          lambda q, k: (lambda a, b: (lambda i, j: a(i, j) or b(i, j)))(
              ring_rule(2, True, k), pi_step_rule(3, "bounded", 2, True)), True),
    _case(L.twin_primes(), twin_rule),
    _case(L.arithmetic_progression(), ap_rule(4, 1)),
    _case(L.arithmetic_progression(q=4, a=3), ap_rule(4, 3)),
    _case(L.arithmetic_progression(q=10, a=7), ap_rule(10, 7)),
    _case(L.goldbach(), goldbach_rule),
    _case(L.mersenne(), mersenne_rule(False)),
    _case(L.mersenne(primes_only=True), mersenne_rule(True)),
    _case(L.sieve(), sieve_rule(False)),
    _case(L.sieve(divisors=True), sieve_rule(True)),
    _case(L.riemann_zeros(), riemann_rule(64)),
    _case(L.riemann_zeros(K=7), riemann_rule(7)),
    _case(L.prime_gaps(), prime_gaps_rule),
    _case(L.quadratic_residue(), qr_rule, True),
    _case(L.prime_powers(), prime_powers_rule(False)),
    _case(L.prime_powers(proper=True), prime_powers_rule(True)),
    _case(L.sliding_window(5), sliding_rule(5, False)),
    _case(L.sliding_window(4, symmetric=True), sliding_rule(4, True)),
    _case(L.dilated_window(3, 4), dilated_rule(3, 4, False)),
    _case(L.dilated_window(2, 5, symmetric=True), dilated_rule(2, 5, True)),
    _case(L.longformer(3, 2), longformer_rule(3, 2, False)),
    _case(L.longformer(2, [0, 10, 40], causal=True), longformer_rule(2, [0, 10, 40], True)),
    _case(L.bigbird(window=3, global_tokens=8, random_blocks=2, block=8, seed=0),
          bigbird_rule(3, 8, 2, 8, 0, False)),
    _case(L.bigbird(window=1, global_tokens=3, random_blocks=3, block=5, seed=7, causal=True),
          bigbird_rule(1, 3, 3, 5, 7, True)),
    _case(L.bigbird(window=5, global_tokens=0, random_blocks=1, block=4, seed=123),
          bigbird_rule(5, 0, 1, 4, 123, False)),
    _case(L.sparse_transformer_strided(6), strided_rule(6)),
    _case(L.sparse_transformer_fixed(8, 2), fixed_rule(8, 2)),
    _case(L.sparse_transformer_fixed(7, 3), fixed_rule(7, 3)),
    _case(L.sparse_transformer_fixed(5, 5), fixed_rule(5, 5)),
    _case(L.chunked_causal(9), chunked_rule(9)),
    _case(L.prefix_lm(10), prefix_rule(10)),
    _case(L.prefix_lm(0), prefix_rule(0)),
    _case(L.document_mask([5, 17, 3, 40]), document_rule([5, 17, 3, 40], True)),
    _case(L.document_mask([30, 30], causal=False), document_rule([30, 30], False)),
    _case(L.attention_sinks(4, 8), sinks_rule(4, 8)),
    _case(L.attention_sinks(0, 3), sinks_rule(0, 3)),
]


_REFS: dict = {}


def _reference(pattern, rule, needs_shape, q, k):
    key = (pattern, q, k)
    if key not in _REFS:
        _REFS[key] = dense_from_rule(rule(q, k) if needs_shape else rule, q, k)
    return _REFS[key]


@pytest.mark.parametrize("pattern, rule, needs_shape", CASES)
def test_dense_and_lowering_match_independent_reference(pattern, rule, needs_shape):
    for q, k in SHAPES:
        ref = _reference(pattern, rule, needs_shape, q, k)
        got = pattern.dense(q, k)
        assert got.shape == (1, q, k)
        bad = np.argwhere(got[0] != ref)
        assert bad.size == 0, f"{pattern.text()} at {q}x{k}: dense() differs at (i, j) = {bad[:5].tolist()}"
        low = lowered_dense(pattern, q, k)
        bad = np.argwhere(low[0] != ref)
        assert bad.size == 0, f"{pattern.text()} at {q}x{k}: lower(sink) differs at {bad[:5].tolist()}"


@pytest.mark.parametrize("pattern, rule, needs_shape", CASES)
def test_compile_matches_independent_reference(pattern, rule, needs_shape):
    for q, k in SHAPES:
        comp = compiled_dense(pattern, q, k)
        assert comp.shape[1:] == (q, k)
        bad = np.argwhere(comp[0] != _reference(pattern, rule, needs_shape, q, k))
        assert bad.size == 0, f"{pattern.text()} at {q}x{k}: compile().to_dense() differs at {bad[:5].tolist()}"


def test_compile_with_uneven_blocks():
    p = L.prime_bird()
    ref = dense_from_rule(bird_rule("primes", 3, 2, None), 61, 45)
    assert (mc.compile(p, 61, 45, block=(8, 16)).to_dense()[0] == ref).all()


def test_primeformer_heads_per_head():
    n = 11
    p = L.primeformer_heads(n)
    assert p.n_heads == n
    rules = [lambda q, k: twin_rule, lambda q, k: ap_rule(4, 1), lambda q, k: goldbach_rule,
             lambda q, k: mersenne_rule(False), lambda q, k: sieve_rule(False), lambda q, k: riemann_rule(64),
             lambda q, k: prime_gaps_rule, qr_rule, lambda q, k: prime_powers_rule(False)]
    rules += [lambda q, k: twin_rule, lambda q, k: ap_rule(4, 3)]  # second cycle: a = 3
    for q, k in [(37, 37), (23, 41)]:
        dense = p.dense(q, k)
        comp = mc.compile(p, q, k, block=8).to_dense()
        assert dense.shape == (n, q, k)
        comp = np.broadcast_to(comp, dense.shape)
        for h, rule in enumerate(rules):
            ref = dense_from_rule(rule(q, k), q, k)
            assert (dense[h] == ref).all(), f"head {h}"
            assert (comp[h] == ref).all(), f"compiled head {h}"


# ======================================================= seed-pattern properties
SEED_PATTERNS = [
    L.prime_bird(), L.square_bird(), L.mian_chowla_bird(), L.pi_ring(), L.pi_ring(causal=True), L.pi_step(),
    L.pi_step(causal=True), L.pi_step(variant="bounded", m=2), L.pi_step(variant="doubling", causal=True),
    L.pi_attention_union(), *(f() for f in L.PRIMEFORMER_HEADS), L.mersenne(primes_only=True),
    L.sieve(divisors=True), L.prime_powers(proper=True), L.arithmetic_progression(q=8, a=5),
]
CAUSAL_SEEDS = [p for p in SEED_PATTERNS if dict(p.kwargs).get("causal", True)]


@pytest.mark.parametrize("p", SEED_PATTERNS, ids=lambda p: p.text())
def test_seed_patterns_include_diagonal(p):
    m = p.dense(97)[0]
    assert m.diagonal().all()
    assert m.any(axis=1).all()


@pytest.mark.parametrize("p", CAUSAL_SEEDS, ids=lambda p: p.text())
def test_causal_seed_patterns_are_causal(p):
    m = p.dense(97)[0]
    assert not np.triu(m, 1).any()


def test_noncausal_pi_patterns_see_the_future():
    assert np.triu(L.pi_ring().dense(97)[0], 1).any()
    assert np.triu(L.pi_step().dense(97)[0], 1).any()


# ========================================================= text form round trip
ALL_PATTERNS = [case.values[0] for case in CASES] + list(L.gallery_patterns().values()) + [
    L.primeformer_heads(20), L.ring_local_pattern(7, True)]


@pytest.mark.parametrize("p", ALL_PATTERNS, ids=lambda p: p.text())
def test_text_round_trip(p):
    back = mc.parse(p.text())
    assert back == p and hash(back) == hash(p)
    assert back.text() == p.text()
    assert (back.dense(23) == p.dense(23)).all()


def test_text_is_the_call():
    assert L.prime_bird().text() == "prime_bird(cap=None, global_tokens=2, window=3)"
    assert L.pi_step(8, "bounded", 3).text() == "pi_step(causal=False, m=3, period=8, variant='bounded')"
    assert L.document_mask([3, 4]).text() == "document_mask(causal=True, lengths=[3, 4])"
    assert L.ring_local_pattern(5) == L.pi_ring(5)
    assert L.prime_bird(window=4) != L.prime_bird()
    assert sorted(L.gallery_patterns()) == L.library_names()


# ================================================================ BigBird
def test_bigbird_deterministic_and_seeded():
    a = L.bigbird(window=3, global_tokens=4, random_blocks=2, block=4, seed=1).dense(128)
    b = L.bigbird(window=3, global_tokens=4, random_blocks=2, block=4, seed=1).dense(128)
    c = L.bigbird(window=3, global_tokens=4, random_blocks=2, block=4, seed=2).dense(128)
    assert (a == b).all()
    assert (a != c).any()


def test_bigbird_random_block_counts_and_prefix_stability():
    block, r = 4, 2
    p = L.bigbird(window=3, global_tokens=0, random_blocks=r, block=block, seed=5, causal=True)
    m = p.dense(160)[0]
    blocks = m.reshape(40, block, 40, block).any(axis=(1, 3))
    for qb in range(40):
        left = blocks[qb, : max(qb - 1, 0)].sum()  # strictly left of the window (radius 1)
        assert left == min(r, max(qb - 1, 0)), qb
    # the mask of a shorter sequence is the prefix of the longer one's
    assert (p.dense(77)[0] == m[:77, :77]).all()
    sym = L.bigbird(window=3, global_tokens=0, random_blocks=r, block=block, seed=5).dense(160)[0]
    assert (sym == sym.T).all()


def test_bigbird_random_blocks_are_data_not_a_predicate_per_seed():
    """Seeded random blocks are generated arrays (a cells leaf), so a new seed compiles no new function."""
    from maskc.patterns.core import Cells, Predicate

    def nodes(node):
        yield node
        for c in node.children():
            yield from nodes(c)

    for seed in (0, 1, 2):
        body = list(nodes(L.bigbird(window=3, global_tokens=2, random_blocks=2, block=2, seed=seed).lowered()))
        assert not any(isinstance(n, Predicate) for n in body)
        assert sum(isinstance(n, Cells) for n in body) == 1
    # the one library predicate: its numba form agrees with the Python function
    pr = L.VALUE_DIVIDES
    for i in range(0, 40, 3):
        for j in range(0, 40, 2):
            assert bool(pr.jit(i, j)) == bool(pr.py_func(i, j))


# ============================================================ keys per row
def test_keys_per_row_formulas():
    n = 200
    i = np.arange(n)
    assert (L.mersenne().dense(n)[0].sum(1) == np.floor(np.log2(i + 1)).astype(int) + 1).all()
    assert (L.sliding_window(7).dense(n)[0].sum(1) == np.minimum(i, 7) + 1).all()
    assert (L.prefix_lm(20).dense(n)[0].sum(1) == np.maximum(i + 1, 20)).all()
    assert (L.chunked_causal(16).dense(n)[0].sum(1) == i % 16 + 1).all()
    assert (L.sparse_transformer_fixed(16, 2).dense(n)[0].sum(1) == i % 16 + 1 + 2 * (i // 16)).all()
    assert (L.pi_ring(5).dense(n)[0].sum(1) == 11).all()
    assert (L.attention_sinks(4, 10).dense(n)[0].sum(1) == np.minimum(i + 1, 15)).all()
    qr = L.quadratic_residue().dense(n)[0].sum(1)
    assert abs(qr[-1] - n / 2) < 0.15 * n  # about half of the causal prefix
    pb = L.prime_bird(window=3, global_tokens=2).dense(n)[0].sum(1)
    # a set: primes 2, 3 lie in the window and 199 = n - 1 - 0 is also a global key: counted once
    assert pb[-1] == len({d for d in range(n) if is_prime(d)} | set(range(4)) | {n - 1, n - 2}) == 49


# ============================================================ parameter errors
@pytest.mark.parametrize("call, match", [
    (lambda: L.prime_bird(window=-1), r"prime_bird: window must be >= 0, got -1"),
    (lambda: L.square_bird(global_tokens=1.5), r"square_bird: global_tokens must be an integer"),
    (lambda: L.mian_chowla_bird(cap=-3), r"cap must be >= 0"),
    (lambda: L.pi_step(period=0), r"pi_step: period must be >= 1"),
    (lambda: L.pi_step(variant="every"), r"variant must be one of 'all', 'bounded', 'doubling'"),
    (lambda: L.pi_step(variant="bounded"), r"variant='bounded' needs m"),
    (lambda: L.pi_step(m=3), r"m applies to variant"),
    (lambda: L.pi_ring(r=3, causal="yes"), r"pi_ring: causal must be True or False"),
    (lambda: L.arithmetic_progression(q=4, a=2), r"a must be coprime to q"),
    (lambda: L.arithmetic_progression(q=4, a=4), r"a must be at most 3"),
    (lambda: L.riemann_zeros(K=-1), r"riemann_zeros: K must be >= 0"),
    (lambda: L.riemann_zeros(K=1001), r"riemann_zeros: K must be at most 1,000"),
    (lambda: L.primeformer_heads(0), r"n_heads must be >= 1"),
    (lambda: L.dilated_window(3, 0), r"dilation must be >= 1"),
    (lambda: L.bigbird(window=2), r"window must be an odd number of blocks"),
    (lambda: L.bigbird(seed=-1), r"bigbird: seed must be >= 0"),
    (lambda: L.sparse_transformer_fixed(8, 9), r"c must be at most 8"),
    (lambda: L.chunked_causal(0), r"chunk must be >= 1"),
    (lambda: L.document_mask([]), r"at least one length"),
    (lambda: L.document_mask([3, 0]), r"lengths entry must be >= 1"),
    (lambda: L.longformer(2, [1, -1]), r"global_tokens value must be >= 0"),
])
def test_bad_parameters_name_the_parameter(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_parse_reports_bad_library_parameters():
    with pytest.raises(mc.PatternSyntaxError, match="window must be >= 0") as e:
        mc.parse("causal() | prime_bird(window=-2)")
    assert e.value.column == 12


def test_docstring_examples():
    from maskc.patterns.library import bird, classical, documents, pi, primeformer

    attempted = 0
    for mod in (L, bird, pi, primeformer, classical, documents):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__
        attempted += res.attempted
    assert attempted > 30


# ============================================ random parameters (hypothesis)
from hypothesis import given, strategies as st  # noqa: E402


@given(kind=st.sampled_from(["primes", "squares", "mc"]), w=st.integers(0, 6), G=st.integers(0, 4),
       cap=st.one_of(st.none(), st.integers(0, 40)), q=st.integers(1, 45), k=st.integers(1, 45))
def test_bird_random_parameters(kind, w, G, cap, q, k):
    ctor = {"primes": L.prime_bird, "squares": L.square_bird, "mc": L.mian_chowla_bird}[kind]
    p = ctor(window=w, global_tokens=G, cap=cap)
    assert (p.dense(q, k)[0] == dense_from_rule(bird_rule(kind, w, G, cap), q, k)).all()


@given(period=st.integers(1, 9), variant=st.sampled_from(["all", "bounded", "doubling"]),
       m=st.integers(0, 5), causal=st.booleans(), q=st.integers(1, 45), k=st.integers(1, 45))
def test_pi_step_random_parameters(period, variant, m, causal, q, k):
    mm = None if variant == "all" else m
    p = L.pi_step(period, variant, mm, causal)
    assert (p.dense(q, k)[0] == dense_from_rule(pi_step_rule(period, variant, mm, causal), q, k)).all()


@given(block=st.integers(1, 12), data=st.data(), n=st.integers(1, 60))
def test_fixed_random_parameters(block, data, n):
    c = data.draw(st.integers(1, block))
    assert (L.sparse_transformer_fixed(block, c).dense(n)[0] == dense_from_rule(fixed_rule(block, c), n, n)).all()


@given(w=st.integers(0, 6), dil=st.integers(1, 6), sym=st.booleans(), n=st.integers(1, 60))
def test_dilated_random_parameters(w, dil, sym, n):
    assert (L.dilated_window(w, dil, sym).dense(n)[0] == dense_from_rule(dilated_rule(w, dil, sym), n, n)).all()


@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=6), causal=st.booleans(), n=st.integers(1, 80))
def test_document_random_parameters(lengths, causal, n):
    got = L.document_mask(lengths, causal).dense(n)[0]
    assert (got == dense_from_rule(document_rule(lengths, causal), n, n)).all()
