"""Patterns are values: frozen, hashable and equal by content, no truth value, one text, one
evaluation protocol (dense, the lowering protocol and the compiler agree), and a compile
cache that hits exactly for equal patterns."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import maskc as mc
from maskc.patterns.core import (
    And, Batched, BlockLevel, Cols, Diff, GlobalTokens, Heads, Named, Not, Offsets, Or, Predicate, RandomKeys, Rows,
    Segments, Sums, Window,
)
from maskc.testing import patterns as base_patterns
from _pattern_helpers import RecordingSink, compiled_dense, lowered_dense  # noqa: E402


@mc.predicate
def _parity(i, j):
    return (i - j) % 2 == 0


@mc.predicate
def _flex_rule(b, h, q_idx, kv_idx):
    return (q_idx + kv_idx + h + 2 * b) % 3 != 0


_IDS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3] * 8)
_same_id = mc.predicate(lambda i, j, ids: ids[min(i, ids.shape[0] - 1)] == ids[min(j, ids.shape[0] - 1)],
                        args=(_IDS,))

EXAMPLES = [
    mc.full(), mc.causal(), mc.window(3, 1), mc.ring_local(2), mc.stride(3, 1), mc.offsets("primes"),
    mc.offsets([1, range(5, 9)], symmetric=True), mc.sums([3, 4]), mc.rows(4, shift=1), mc.cols(range(2, 4), period=5),
    mc.global_tokens([0, 7]), mc.segments([3, 5]), mc.segments("prime_gaps"), _parity, _flex_rule, _same_id,
    mc.causal().at_block_level(4), mc.heads([mc.causal(), mc.full()]), mc.batched([mc.causal(), mc.window(2)]),
    mc.random_keys(2, seed=3, recent=1), mc.causal() | mc.window(2), mc.causal() & mc.cols(3), ~mc.window(1),
    mc.causal() - mc.window(1), mc.prime_bird(), mc.document_mask([2, 3]), mc.key_padding([1, 1, 0]),
]


# ============================================================== frozen values
@pytest.mark.parametrize("p", EXAMPLES, ids=lambda p: p.text())
def test_nodes_are_frozen_hashable_values(p):
    h, t = hash(p), p.text()
    for name in ("left", "parts", "axis", "_text", "anything"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(p, name, 99)
    with pytest.raises(AttributeError, match="immutable"):
        del p.axis
    assert not hasattr(p, "__dict__")
    assert hash(p) == h and p.text() == t
    with pytest.raises(TypeError, match=r"& \(and\), \| \(or\)"):
        bool(p)
    with pytest.raises(TypeError):
        p and mc.causal()  # noqa: B015 - the silent pick of Python's `and` is what is refused
    assert copy.copy(p) is p and copy.deepcopy(p) is p
    back = pickle.loads(pickle.dumps(p))
    assert back == p and hash(back) == h and back.text() == t
    assert mc.parse(t) == p


def test_mutation_from_the_issue_is_refused():
    w = mc.window(3)
    with pytest.raises(AttributeError):
        w.left = 99
    assert w.text() == "window(3)" and w == mc.window(3)


def test_equal_by_content_not_identity():
    assert mc.window(3) == mc.window(3) and mc.window(3) != mc.window(3, 1)
    assert mc.offsets([1, 2, 3, 4]) == mc.offsets(range(1, 5)) == mc.parse("offsets(range(1, 5))")
    assert mc.offsets(list(range(0, 64, 2))) == mc.offsets(range(0, 63, 2))
    assert mc.segments(ids=[7, 7, 1, 1, 1]) == mc.segments([2, 3])
    assert mc.document_mask(cu_seqlens=[0, 2, 5]) == mc.document_mask([2, 3])
    assert (mc.causal() | (mc.window(1) | mc.cols(2))) == ((mc.causal() | mc.window(1)) | mc.cols(2))
    assert ~~mc.causal() == mc.causal()
    assert {mc.window(3): 1}[mc.parse("window(3)")] == 1
    assert mc.causal() != "causal()" and (mc.causal() == 3) is False


# ==================================================== the lowering protocol
def _calls(p):
    sink = RecordingSink()
    p.lower(sink)
    return sink.calls


def test_lower_calls_the_sink_per_node_kind():
    assert _calls(mc.causal() & mc.window(3)) == [("axis", "D", "causal() & window(3)")]  # one axis: one leaf
    assert _calls(mc.causal() & (mc.rows(2) | mc.segments([2, 2]))) == [
        ("axis", "D", "causal()"), ("axis", "R", "rows(2)"), ("segments", "segments([2, 2])"), ("op", "or", 2),
        ("op", "and", 2)]
    assert _calls(mc.global_tokens(2)) == [("axis", "R", "rows(2)"), ("axis", "C", "cols(2)"), ("op", "or", 2)]
    assert _calls(mc.causal() - mc.segments([3])) == [
        ("axis", "D", "causal()"), ("segments", "segments([3])"), ("op", "not", 1), ("op", "and", 2)]
    assert _calls(~mc.segments([3])) == [("segments", "segments([3])"), ("op", "not", 1)]
    assert _calls(mc.window(0).at_block_level(8) | _flex_rule) == [
        ("block_level", 8, "window(0)"), ("predicate", "_flex_rule", 4), ("op", "or", 2)]
    assert _calls(mc.random_keys(2, seed=1)) == [("cells", "random_keys(2, seed=1)")]
    assert _calls(mc.sliding_window(4)) == [("axis", "D", "sliding_window(symmetric=False, w=4)")]
    assert _calls(mc.prime_gaps()) == [("axis", "D", "causal()"), ("segments", "segments('prime_gaps')"),
                                       ("op", "and", 2)]
    for per_slice in (mc.heads([mc.causal()]), mc.batched([mc.causal()])):
        with pytest.raises(ValueError, match="for_batch"):
            per_slice.lower(RecordingSink())


# ========================================================= random patterns
_DRAWN_PREDICATES = [_parity, _flex_rule, _same_id]


def _extra_leaves():
    return st.one_of(
        st.builds(lambda c, s, r, b, sym: mc.random_keys(c, seed=s, recent=r, symmetric=sym).at_block_level(b),
                  st.integers(1, 3), st.integers(0, 50), st.integers(0, 2), st.sampled_from([1, 4, 8]), st.booleans()),
        st.builds(lambda a, w, p: mc.cols(range(a, a + w), period=p), st.integers(0, 6), st.integers(1, 4),
                  st.integers(2, 11)),
        st.builds(lambda a, s, p: mc.rows(range(a, 10 ** 12, s), shift=p), st.integers(0, 9), st.integers(2, 5),
                  st.integers(0, 3)),
        st.builds(mc.offsets, st.sampled_from([range(-10 ** 12, 1), range(-3, 4), "paley_residues"])),
        st.builds(mc.sums, st.sampled_from(["paley_residues", range(5, 10 ** 12, 7)])),
        st.builds(mc.segments, st.sampled_from([range(1, 10 ** 12), range(3, 40, 2), [4, 4, 4]])),
        st.sampled_from(_DRAWN_PREDICATES),
    )


def _batched(children):
    return st.lists(children, min_size=1, max_size=3).map(mc.batched)


def full_patterns():
    """The library's strategy plus cells, periodic columns, huge ranges, predicates, batches, heads."""
    leaf = st.one_of(base_patterns(max_depth=1), _extra_leaves())
    tree = st.recursive(leaf, lambda kids: st.one_of(
        st.builds(lambda a, b: a | b, kids, kids), st.builds(lambda a, b: a & b, kids, kids),
        st.builds(lambda a, b: a - b, kids, kids), kids.map(lambda a: ~a)), max_leaves=4)
    return st.one_of(tree, st.builds(lambda a, b: a & b, tree, _batched(tree)),
                     st.lists(tree, min_size=2, max_size=3).map(mc.heads))


@settings(max_examples=60)
@given(p=full_patterns(), q=st.integers(1, 45), k=st.integers(1, 45), off=st.integers(0, 20))
def test_dense_equals_the_lowering_at_odd_lengths_and_offsets(p, q, k, off):
    """dense (element rules) and lower(sink) (what the compiler reads) agree, with q_offset too."""
    got = p.dense(q, k, q_offset=off)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, lowered_dense(p, q, k, q_offset=off), err_msg=p.text())
    whole = p.dense(off + q, k)
    np.testing.assert_array_equal(got, whole[..., off:, :], err_msg=f"{p.text()}: q_offset rows")


@settings(max_examples=60)
@given(p=full_patterns(), other=full_patterns())
def test_text_hash_and_equality_agree(p, other):
    text = p.text()
    back = mc.parse(text)
    assert back == p and hash(back) == hash(p) and back.text() == text
    assert (p == other) == (text == other.text())
    if p == other:
        assert hash(p) == hash(other)


@settings(max_examples=25)
@given(data=st.data(), q=st.integers(1, 70), k=st.integers(1, 70), block=st.sampled_from([8, 16, (8, 16)]))
def test_compile_equals_dense_on_random_patterns(data, q, k, block):
    """Every node kind (cells, batches, predicates with data or (b, h), block levels) compiles to its definition."""
    p = data.draw(full_patterns())
    want = p.dense(q, k)
    got = np.broadcast_to(compiled_dense(p, q, k, block=block), want.shape)
    np.testing.assert_array_equal(got, want, err_msg=p.text())


@settings(max_examples=40)
@given(a=base_patterns(max_depth=2), b=base_patterns(max_depth=2), same=st.booleans(), n=st.integers(1, 200))
def test_compile_is_cached_only_for_equal_patterns(a, b, same, n):
    """The compile cache keys on patterns: equal patterns (even rebuilt from text) share one
    layout; unequal patterns never do."""
    if same:
        b = mc.parse(a.text())
    la = mc.compile(a, n, block=32)
    lb = mc.compile(b, n, block=32)
    assert (la is lb) == (a == b)
    assert mc.compile(mc.parse(a.text()), n, block=32) is la
    if a != b:
        assert not (np.array_equal(la.to_dense(), lb.to_dense()) and la.pattern_text == lb.pattern_text)


# ========================================================= limit-dependent data
@pytest.mark.parametrize("n", [5, 13, 31, 40, 97])
def test_paley_residues_dense_and_compile_agree(n):
    """sums('paley_residues') once disagreed in 424 of 961 elements at 31: the element rule and the
    membership generated the limit-dependent sequence to different limits. Now they are one."""
    for p in (mc.sums("paley_residues"), mc.offsets("paley_residues"), mc.rows("paley_residues", shift=2),
              mc.cols("paley_residues"), mc.quadratic_residue()):
        want = p.dense(n)
        np.testing.assert_array_equal(lowered_dense(p, n), want)
        np.testing.assert_array_equal(mc.compile(p, n, block=128, cache=False).to_dense(), want, err_msg=p.text())


def test_documented_sequence_limits():
    # sums: generated to the largest sum q + k - 2 = 60 (p = 61); offsets: to N = max(q, k) = 31 (p = 37)
    from maskc.patterns.sequences import quadratic_residues

    s = mc.sums("paley_residues").dense(31)[0]
    assert set(np.flatnonzero(s[0])) == set(quadratic_residues(61)) & set(range(31))
    o = mc.offsets("paley_residues").dense(31)[0]
    assert set(np.flatnonzero(o[30])) == {30 - d for d in quadratic_residues(37) if d <= 30}


def test_node_classes_stay_importable():
    for cls in (And, Batched, BlockLevel, Cols, Diff, GlobalTokens, Heads, Named, Not, Offsets, Or, Predicate,
                RandomKeys, Rows, Segments, Sums, Window):
        assert cls.__module__.startswith("maskc.patterns.")


def test_compile_with_q_offset_equals_rows_of_the_full_layout():
    for p in (mc.causal() & mc.window(8), mc.bigbird(block=4, global_tokens=2, random_blocks=1, seed=3),
              mc.document_mask([40, 100, 200]), mc.prime_bird(), _flex_rule & mc.causal()):
        full = mc.compile(p, 300, block=32).to_dense()
        for T in (1, 64):
            part = mc.compile(p, T, 300, block=32, q_offset=300 - T).to_dense()
            np.testing.assert_array_equal(part, full[..., 300 - T:, :], err_msg=p.text())
            np.testing.assert_array_equal(part, p.dense(T, 300, q_offset=300 - T), err_msg=p.text())


def test_a_new_node_kind_follows_the_documented_recipe():
    """Subclass, declare __slots__, call _init, implement the four node methods: it is then a
    frozen value that evaluates, lowers, and composes like the built-in nodes."""
    from maskc.patterns.core import Cells, Pattern

    class Diagonal(Cells):
        __slots__ = ("step",)

        def __init__(self, step):
            self._init(step=step)

        def _key_fields(self):
            return (self.step,)

        def _make_text(self):
            return f"diagonal_example({self.step})"

        def cells(self, q_total, kv_len):
            i = np.arange(0, min(q_total, kv_len), self.step, dtype=np.int64)
            return i, i.copy()

    p = mc.causal() & (Diagonal(3) | mc.cols(1))
    np.testing.assert_array_equal(p.dense(7), lowered_dense(p, 7))
    assert p.dense(7)[0, 6].tolist() == [True] + [False] * 5 + [True]
    assert Diagonal(3) == Diagonal(3) != Diagonal(2)
    with pytest.raises(AttributeError, match="immutable"):
        Diagonal(3).step = 4

    class Forgot(Pattern):
        def __init__(self):
            pass

    with pytest.raises(AttributeError, match=r"calls self._init"):
        hash(Forgot())
