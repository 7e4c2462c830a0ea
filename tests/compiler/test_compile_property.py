"""compile(p).to_dense() equals the element-by-element definition of p, for random patterns."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import maskc as mc
from maskc.ir.layout import FULL, PARTIAL


@mc.predicate
def _same_parity(i, j):
    return (i - j) % 2 == 0


@mc.predicate
def _key_divides_query(i, j):
    return (i + 1) % (j + 1) == 0


SMALL = st.integers(0, 12)
NAMED = st.sampled_from(["primes", "squares", "mian_chowla", "powers_of_two", "mersenne", "fibonacci",
                         "twin_primes", "prime_powers"])
VALUES = st.lists(st.integers(0, 40), max_size=6)


def leaves():
    return st.one_of(
        st.just(mc.full()),
        st.just(mc.causal()),
        st.builds(mc.window, SMALL, SMALL),
        st.builds(mc.ring_local, SMALL),
        st.integers(1, 9).flatmap(lambda p: st.builds(mc.stride, st.just(p), st.integers(0, p - 1))),
        st.builds(mc.offsets, st.one_of(NAMED, VALUES), st.booleans()),
        st.builds(mc.sums, st.one_of(NAMED, VALUES)),
        st.builds(mc.global_tokens, st.integers(0, 4)),
        st.builds(mc.rows, st.one_of(VALUES, NAMED)),
        st.builds(mc.cols, st.one_of(VALUES, NAMED), st.integers(0, 2)),
        st.builds(mc.segments, st.lists(st.integers(1, 90), min_size=1, max_size=5)),
        st.sampled_from([_same_parity, _key_divides_query]),
        st.builds(lambda p, b: p.at_block_level(b),
                  st.sampled_from([mc.causal(), mc.offsets("primes"), mc.window(1), mc.stride(3)]),
                  st.sampled_from([3, 8, 16, 32])),
    )


def patterns(max_leaves: int = 6):
    return st.recursive(
        leaves(),
        lambda kids: st.one_of(
            st.builds(lambda a, b: a | b, kids, kids),
            st.builds(lambda a, b: a & b, kids, kids),
            st.builds(lambda a, b: a - b, kids, kids),
            st.builds(lambda a: ~a, kids),
        ),
        max_leaves=max_leaves,
    )


LENGTHS = st.integers(1, 700)
BLOCKS = st.sampled_from([16, 32, 64, (16, 32), (64, 16)])


def _check_layout_matches(p, q, k, block):
    lay = mc.compile(p, q, k, block=block, cache=False)
    lay.validate()
    want = p.dense(q, k)
    got = lay.to_dense()
    assert got.shape == want.shape
    diff = np.argwhere(got != want)
    assert diff.size == 0, f"{p.text()} at q={q} kv={k} block={block}: first mismatches (h, i, j) {diff[:5].tolist()}"
    assert lay.nnz == int(want.sum())
    assert np.array_equal(lay.row_counts(), want.sum(axis=2))
    # FULL blocks allow every valid element; PARTIAL blocks neither none nor all
    vr, vc = lay.valid_rows(), lay.valid_cols()
    for b in range(lay.nnz_blocks):
        h, r, c = lay.block_head[b], lay.block_row[b], lay.col_idx[b]
        tile = want[h, r * lay.block_q: r * lay.block_q + vr[r], c * lay.block_k: c * lay.block_k + vc[c]]
        if lay.kind[b] == FULL:
            assert tile.all()
        else:
            assert lay.kind[b] == PARTIAL and tile.any() and not tile.all()
    return lay


@settings(max_examples=40)
@given(p=patterns(), q=LENGTHS, k=LENGTHS, block=BLOCKS)
def test_compile_equals_dense_definition(p, q, k, block):
    _check_layout_matches(p, q, k, block)


@settings(max_examples=15)
@given(ps=st.lists(patterns(4), min_size=2, max_size=4), q=st.integers(1, 300), block=BLOCKS)
def test_per_head_patterns(ps, q, block):
    lay = _check_layout_matches(mc.heads(ps), q, q, block)
    assert lay.heads == len(ps)


@settings(max_examples=40)
@given(a=patterns(3), b=patterns(3), c=patterns(3), n=st.integers(1, 200))
def test_algebra_laws(a, b, c, n):
    d = lambda p: mc.compile(p, n, block=32, cache=False).to_dense()  # noqa: E731
    A, B, C = d(a), d(b), d(c)
    assert np.array_equal(d(a | b), A | B)
    assert np.array_equal(d(a & b), A & B)
    assert np.array_equal(d(~a), ~A)
    assert np.array_equal(d(a - b), A & ~B)
    assert np.array_equal(d(~(a | b)), d(~a & ~b))  # De Morgan
    assert np.array_equal(d(a & (b | c)), d((a & b) | (a & c)))  # distributivity
    assert np.array_equal(d(a | ~a), np.ones_like(A))


@settings(max_examples=60)
@given(p=patterns())
def test_text_round_trip(p):
    text = p.text()
    assert mc.parse(text) == p
    assert mc.parse(text).text() == text


@pytest.mark.parametrize("n,block", [(1, 16), (17, 16), (129, 64), (700, 64)])
def test_prime_bird_ragged(n, block):
    p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    _check_layout_matches(p, n, n, block)


def test_toeplitz_masks_are_deduplicated_per_diagonal():
    lay = mc.compile(mc.causal() & mc.offsets("primes"), 4096, block=64)
    n_b = 4096 // 64
    # one distinct mask at most per block diagonal
    assert lay.n_unique_masks <= n_b
    assert lay.nnz_blocks == n_b * (n_b + 1) // 2


def test_compile_is_cached_and_read_only():
    p = mc.window(5)
    a = mc.compile(p, 1000, block=64)
    assert mc.compile(p, 1000, block=64) is a
    with pytest.raises(ValueError):
        a.col_idx[0] = 3


def test_heads_argument():
    lay = mc.compile(mc.causal(), 64, block=16, heads=8)
    assert lay.heads == 1  # broadcasts
    with pytest.raises(ValueError, match="heads=3 does not match"):
        mc.compile(mc.heads([mc.causal(), mc.full()]), 64, block=16, heads=3)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="maskc Pattern"):
        mc.compile("causal()", 10)
    with pytest.raises(ValueError, match="q_len must be >= 1"):
        mc.compile(mc.causal(), 0)
    with pytest.raises(ValueError, match="block sizes"):
        mc.compile(mc.causal(), 10, block=0)


def test_million_tokens_block_level_without_dense():
    n = 1 << 20
    lay = mc.compile(mc.causal() & mc.offsets("primes").at_block_level(128) | mc.window(0), n, block=128)
    n_b = n // 128
    assert lay.q_len == n and lay.n_qb == n_b
    with pytest.raises(mc.TooLargeError, match="max_elements"):
        lay.to_dense()
    # diagonal blocks are partial (window(0)); off-diagonal blocks at a prime block distance are full
    from maskc.patterns.sequences import named_sequence

    primes = named_sequence("primes", n_b - 1)
    assert lay.n_full == int(np.sum(n_b - primes))
    assert lay.n_partial == n_b


def test_compile_leaves_torch_thread_count_alone():
    torch = pytest.importorskip("torch", reason="torch is an optional dependency; this checks the interplay")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        mc.compile(mc.causal() & mc.window(3), 4096, block=128, cache=False)
        assert torch.get_num_threads() == 1  # numba's OpenMP launch must not leak into torch
    finally:
        torch.set_num_threads(before)
