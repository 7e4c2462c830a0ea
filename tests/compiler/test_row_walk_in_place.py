"""The row walk's in-place combinations: ``causal() & X`` keeps X's runs left of the
diagonal where they are, and ``small | X`` keeps X's runs after the small operand's last
run; both against the element-by-element definition, with operands of many runs."""

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import last_stats

LONG = [
    mc.offsets("primes").at_block_level(4),       # one-block runs on every block row
    mc.stride(9) | mc.offsets([0, 1, 2]),         # many short partial runs
    mc.sums(range(0, 4000, 11)) | mc.window(2),   # partial anti-diagonal runs
    mc.document_mask([37, 200, 91, 300, 12]) & mc.stride(5),
]
SMALL = [mc.cols([0, 1]), mc.global_tokens(3), mc.cols([0, 5, 6, 7]), mc.rows([2, 40]) | mc.cols([2])]


@pytest.mark.parametrize("long", LONG, ids=lambda p: p.text()[:40])
@pytest.mark.parametrize("small", SMALL, ids=lambda p: p.text())
@pytest.mark.parametrize("n, block", [(640, 4), (643, (4, 8)), (500, 1)])
def test_in_place_combinations_equal_the_definition(long, small, n, block):
    for p in (mc.causal() & long, mc.causal() & (small | long), small | long, long | small, ~small | long):
        lay = mc.compile(p, n, block=block, cache=False)
        lay.validate()
        assert np.array_equal(lay.to_dense(), p.dense(n)), p.text()


def test_causal_intersection_merges_only_near_the_diagonal():
    long = mc.offsets("primes").at_block_level(4)
    mc.compile(long, 2048, block=4, cache=False)
    alone = last_stats().row_runs
    mc.compile(mc.causal() & long, 2048, block=4, cache=False)
    both = last_stats().row_runs
    assert both < alone + 6 * 512  # the intersection adds O(1) per row, not the row's runs again
