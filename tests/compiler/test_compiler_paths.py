"""The compiler's newer paths against the element-by-element definition: segment ids in
any order, documents, explicit cells, block-level leaves off the block grid, query
offsets, batched patterns and FlexAttention-style predicates, at odd lengths and blocks."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import maskc as mc
from maskc.ir.layout import FULL, PARTIAL
from standins import Batched, Cells, FlexPredicate, SegmentIds  # noqa: E402  (tests/compiler/standins.py)

ODD_BLOCKS = st.sampled_from([1, 3, 7, 16, 24, 33, (5, 12), (16, 7), (40, 24)])


def _structured_leaves():
    return st.one_of(
        st.builds(mc.window, st.integers(0, 40), st.integers(0, 40)),
        st.just(mc.causal()),
        st.integers(1, 30).flatmap(lambda p: st.builds(mc.stride, st.just(p), st.integers(0, p - 1))),
        st.builds(mc.offsets, st.lists(st.integers(-60, 60), max_size=8)),
        st.builds(mc.sums, st.lists(st.integers(0, 300), max_size=6)),
        st.builds(mc.rows, st.lists(st.integers(0, 200), max_size=6)),
        st.builds(mc.cols, st.lists(st.integers(0, 200), max_size=6), st.integers(0, 3)),
        st.builds(mc.global_tokens, st.integers(0, 5)),
        st.builds(mc.segments, st.lists(st.integers(1, 70), min_size=1, max_size=8)),
        st.builds(SegmentIds, st.lists(st.integers(-3, 3), min_size=1, max_size=40)),
        st.builds(Cells, st.lists(st.tuples(st.integers(0, 160), st.integers(0, 160)), max_size=60)),
        st.builds(lambda p, b: p.at_block_level(b),
                  st.sampled_from([mc.causal(), mc.window(1), mc.offsets([0, 2, 5]), mc.stride(3),
                                   mc.segments([3, 2, 4])]),
                  st.sampled_from([2, 5, 9, 16, 40])),
    )


_OPS = {"|": lambda a, b: a | b, "&": lambda a, b: a & b, "-": lambda a, b: a - b, "~": lambda a, b: ~a}


def _patterns(max_leaves=5):
    """Expression trees over the leaves with | & - ~ (``~`` ignores its second operand)."""
    grow = lambda kids: st.builds(lambda op, a, b: _OPS[op](a, b), st.sampled_from(sorted(_OPS)), kids, kids)  # noqa: E731
    return st.recursive(_structured_leaves(), grow, max_leaves=max_leaves)


def _check(p, q, k, block, q_offset=0):
    lay = mc.compile(p, q, k, block=block, q_offset=q_offset, cache=False)
    lay.validate()
    want = p.dense(q_offset + q, k)[:, q_offset:]
    got = lay.to_dense()
    diff = np.argwhere(got != want)
    assert diff.size == 0, f"{p.text()} q={q} kv={k} block={block} q_offset={q_offset}: {diff[:5].tolist()}"
    vr, vc = lay.valid_rows(), lay.valid_cols()
    for b in range(lay.nnz_blocks):  # FULL blocks allow every valid element, PARTIAL some but not all
        h, r, c = lay.block_head[b], lay.block_row[b], lay.col_idx[b]
        tile = want[h, r * lay.block_q: r * lay.block_q + vr[r], c * lay.block_k: c * lay.block_k + vc[c]]
        assert tile.all() if lay.kind[b] == FULL else (lay.kind[b] == PARTIAL and tile.any() and not tile.all())
    return lay


@settings(max_examples=40)
@given(p=_patterns(), q=st.integers(1, 180), k=st.integers(1, 180), block=ODD_BLOCKS)
def test_structured_leaves_and_combinations_equal_the_definition(p, q, k, block):
    _check(p, q, k, block)


@settings(max_examples=25)
@given(p=_patterns(4), total=st.integers(2, 160), split=st.floats(0, 1), block=ODD_BLOCKS,
       kv_extra=st.integers(-20, 20))
def test_query_offset_gives_the_last_rows_of_the_full_compile(p, total, split, block, kv_extra):
    q_offset = int(split * (total - 1))
    q = total - q_offset
    kv = max(1, total + kv_extra)
    lay = _check(p, q, kv, block, q_offset=q_offset)
    full = mc.compile(p, total, kv, block=block, cache=False)
    assert lay.q_offset == q_offset
    assert np.array_equal(lay.to_dense(), full.to_dense()[:, q_offset:])


def test_query_offset_decode_row_sees_its_window():
    lay = mc.compile(mc.causal() & mc.window(8), q_len=1, kv_len=300, q_offset=299, block=64)
    assert lay.to_dense()[0, 0].nonzero()[0].tolist() == list(range(291, 300))


@settings(max_examples=20)
@given(lengths=st.lists(st.integers(1, 90), min_size=1, max_size=12), causal=st.booleans(),
       block=ODD_BLOCKS, extra=st.integers(0, 40))
def test_documents_of_random_lengths(lengths, causal, block, extra):
    n = sum(lengths) + extra
    _check(mc.document_mask(lengths, causal=causal), n, n, block)


def test_document_partial_blocks_share_masks():
    lengths = [300 + 37 * i for i in range(12)]
    n = sum(lengths)
    lay = _check(mc.document_mask(lengths), n, n, 64)
    # one mask per distinct boundary offset inside a block, not one per partial block
    assert lay.n_partial > 3 * lay.n_unique_masks


@settings(max_examples=15)
@given(items=st.lists(_patterns(3), min_size=1, max_size=4), q=st.integers(1, 120), block=ODD_BLOCKS)
def test_batched_patterns_compile_batch_major(items, q, block):
    lay = mc.compile(Batched(items), q, block=block, cache=False)
    lay.validate()
    assert lay.batch == len(items) and lay.heads == 1
    got = lay.to_dense()
    got = got.reshape(len(items), -1, q, q) if got.ndim == 3 else got
    for b, p in enumerate(items):
        assert np.array_equal(got[b, 0], p.dense(q)[0]), f"batch element {b}: {p.text()}"


def test_batched_heads_and_flex_predicate_see_their_batch_element_and_head():
    table = np.array([1, 0, 0, 1, 1, 0, 1])
    flex = FlexPredicate(table)
    pat = Batched([mc.heads([flex & mc.causal(), flex]), mc.heads([flex, flex | mc.window(2)])])
    q, kv, q_offset = 40, 57, 17
    lay = mc.compile(pat, q, kv, block=(16, 8), q_offset=q_offset, cache=False)
    lay.validate()
    assert (lay.batch, lay.heads) == (2, 2)
    dense = lay.to_dense()
    causal = mc.causal().dense(q_offset + q, kv)[0, q_offset:]
    window = mc.window(2).dense(q_offset + q, kv)[0, q_offset:]
    for b in range(2):
        for h in range(2):
            want = flex.expected(b, h, q, kv, q_offset)
            if (b, h) == (0, 0):
                want = want & causal
            if (b, h) == (1, 1):
                want = want | window
            assert np.array_equal(dense[b, h], want), (b, h)


def test_equal_batch_elements_are_compiled_once():
    p = mc.causal() & mc.window(5)
    lay = mc.compile(Batched([p, p, mc.full(), p]), 100, block=32, cache=False)
    assert mc.compiler.last_stats().slices == 2
    assert lay.batch == 4 and lay.row_ptr.shape == (4, lay.n_qb + 1)


@pytest.mark.parametrize("pattern", [
    SegmentIds([5, 5, 2, 2, 2, 5, -1, 7]),
    mc.causal() & SegmentIds([0] * 30 + [1] * 45 + [0] * 20),
    Cells([(i, (i * 7) % 90) for i in range(0, 200, 3)]) | mc.window(1),
    mc.offsets([0, 3]).at_block_level(7) & ~mc.rows([5, 6, 40]),
])
@pytest.mark.parametrize("block", [1, 8, 13, (32, 5)])
def test_fixed_examples_of_each_run_list_leaf(pattern, block):
    _check(pattern, 177, 149, block)


@pytest.mark.parametrize("q_offset", [0, 15, 16, 100])
@pytest.mark.parametrize("inner, b", [(mc.causal(), 16), (mc.offsets([0, 1, 4]), 32), (mc.window(1) | mc.rows([2]), 16)])
def test_block_level_on_the_block_grid_with_offsets(inner, b, q_offset):
    # b a multiple of the block: a block row lies in one coarse row only when q_offset keeps it there
    _check(inner.at_block_level(b), 70, 150, 16, q_offset=q_offset)


@pytest.mark.parametrize("pattern, most_keys", [
    (mc.causal() & mc.stride(64), 8),                                   # every diagonal holds one of a few windows
    (mc.window(300, 300) & mc.sums(range(0, 1 << 30, 256)), 16),        # offset and sum leaves mixed
    (mc.causal() & (mc.window(63) | mc.global_tokens(range(0, 1 << 30, 2048))), 40),  # rows and columns mixed
])
def test_blocks_with_equal_windows_share_one_key_wherever_they_are(pattern, most_keys):
    from maskc.compiler import last_stats

    lay = _check(pattern, 1536, 1536, 64)
    assert last_stats().keys <= most_keys < lay.n_partial


def test_a_hash_collision_between_windows_turns_content_ids_off(monkeypatch):
    from maskc.compiler import axis

    monkeypatch.setattr(axis, "window_hashes", lambda memb, lo0, step, width, n: np.zeros(n, np.uint64))
    _check(mc.causal() & (mc.offsets([0, 5, 9, 100, 101]) | mc.stride(17)), 700, 650, 32)
    _check(mc.window(40, 40) & mc.sums(range(0, 1 << 20, 64)), 500, 500, 16)
