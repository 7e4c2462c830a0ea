"""Work grows with the output, not with the block grid: counters from the kernels
(:func:`maskc.compiler.last_stats`), never wall-clock.

Doubling the length doubles the block rows; the row walk's work (runs and intervals it
makes) must double too, not quadruple as classifying every block pair of the grid would.
"""

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import last_stats
from standins import SegmentIds  # noqa: E402  (tests/compiler/standins.py)

N = 1 << 15
BLOCK = 64


def _documents(n, length=1000):
    return [length] * (n // length) + [n % length or length]


FAMILIES = {
    "documents (1000 tokens each)": lambda n: mc.document_mask(_documents(n)),
    "documents (64 per sequence)": lambda n: mc.document_mask([n // 64] * 64),
    "documents by segment ids": lambda n: mc.document_mask(segment_ids=np.arange(n) // 1000),
    "documents by cu_seqlens": lambda n: mc.document_mask(cu_seqlens=np.append(np.arange(0, n, 1000), n)),
    "bidirectional documents": lambda n: mc.document_mask(_documents(n), causal=False),
    "seeded random blocks (bigbird)": lambda n: mc.bigbird(window=3, global_tokens=64, random_blocks=3, block=BLOCK,
                                                           seed=7, causal=True),
    "segment ids out of order": lambda n: mc.causal() & SegmentIds([3] * 700 + [1] * 900 + [3] * 500 + [-2] * 999,
                                                                   shift=10),
    "window": lambda n: mc.causal() & mc.window(300),
    "chunks": lambda n: mc.chunked_causal(500),
    "stride inside a window": lambda n: mc.window(2000) & mc.stride(7),
    "offsets": lambda n: mc.causal() & mc.offsets([0, 1, 90, 777, 4000]),
    "sums": lambda n: mc.sums(range(0, 1 << 30, 1000)) & mc.window(150, 150),
    "global tokens": lambda n: mc.causal() & (mc.window(64) | mc.global_tokens(4)),
    "rows and columns": lambda n: mc.window(100) | mc.rows([5, 7000]) | mc.cols([3, 9000, 20000]),
    "block level (aligned)": lambda n: mc.causal() & mc.window(1).at_block_level(256),
    "block level (off the grid)": lambda n: mc.causal() & mc.offsets([0, 1, 3]).at_block_level(45),
    "union of families": lambda n: mc.document_mask(_documents(n)) | mc.window(40) | mc.global_tokens(2),
    "difference": lambda n: (mc.causal() & mc.window(500)) - mc.stride(3) - mc.rows([7]),
    "intersection of documents and window": lambda n: mc.document_mask(_documents(n, 3000)) & mc.window(200),
}


def _work(pattern, n):
    lay = mc.compile(pattern, n, block=BLOCK, cache=False)
    st = last_stats()
    return st.row_runs, st.blocks, lay


@pytest.mark.parametrize("name", list(FAMILIES))
def test_doubling_the_length_doubles_the_row_walk(name):
    make = FAMILIES[name]
    runs1, blocks1, lay1 = _work(make(N), N)
    runs2, blocks2, lay2 = _work(make(2 * N), 2 * N)
    assert runs2 <= 2.2 * runs1 + 64, f"{name}: {runs1} -> {runs2} runs when the length doubled"
    grid2 = lay2.n_qb * lay2.n_kb
    assert runs2 < grid2 / 20, f"{name}: {runs2} runs for a grid of {grid2} block pairs"


@pytest.mark.parametrize("name", [k for k in FAMILIES if k != "documents (64 per sequence)"])
def test_linear_outputs_stay_linear(name):
    make = FAMILIES[name]
    _, blocks1, _ = _work(make(N), N)
    _, blocks2, _ = _work(make(2 * N), 2 * N)
    assert blocks2 <= 2.2 * blocks1 + 64


def test_document_mask_work_is_a_few_runs_per_block_row():
    runs, blocks, lay = _work(mc.document_mask([N // 64] * 64), N)
    assert runs <= 8 * lay.n_qb
    assert blocks == lay.nnz_blocks  # nothing was written that was not kept


def test_predicates_are_evaluated_on_candidate_blocks_only():
    rule = mc.predicate(lambda i, j: (i ^ j) % 3 != 0, name="growth_test_xor")
    lay = mc.compile(mc.causal() & mc.window(100) & rule, N, block=BLOCK, cache=False)
    calls = last_stats().predicate_calls
    assert calls <= 3 * lay.n_qb * BLOCK * BLOCK  # about two blocks per row, not N x N / 2
    lay2 = mc.compile(mc.causal() & mc.window(100) & rule, 2 * N, block=BLOCK, cache=False)
    assert last_stats().predicate_calls <= 2.2 * calls
    assert lay2.nnz_blocks <= 2.2 * lay.nnz_blocks
