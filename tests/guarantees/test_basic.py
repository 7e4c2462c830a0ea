"""Causality, empty rows, degree and density checks: answers and counterexamples."""

import numpy as np
import pytest
from hypothesis import given, settings

import maskc as mc
from maskc.guarantees import (
    GuaranteeError, block_density, causal_violations, check_block_density, check_causal, check_density,
    check_no_empty_rows, check_row_degree, density, empty_rows, is_causal, row_degree,
)
from maskc.testing import layouts


def test_causal_passes_and_fails():
    check_causal(mc.causal() & mc.offsets("primes"), q_len=100, block=16)
    with pytest.raises(GuaranteeError) as e:
        check_causal(mc.window(0, 1), q_len=40, block=16)
    assert isinstance(e.value, AssertionError)
    assert e.value.counterexample == (0, 0, 1)
    assert e.value.details["count"] == 39


def test_causal_counterexample_in_far_block():
    # one acausal pair, deep in the matrix: query 70 attends key 90
    mask = np.tril(np.ones((100, 100), bool))
    mask[70, 90] = True
    lay = mc.Layout.from_dense(np.stack([np.tril(np.ones((100, 100), bool)), mask]), 32)
    v = causal_violations(lay)
    assert v.count == 1 and v.examples.tolist() == [[1, 70, 90]]
    assert not is_causal(lay)


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_causal_violations_match_dense(lay):
    dense = lay.to_dense()
    h, i, j = np.nonzero(dense & np.triu(np.ones(dense.shape[1:], bool), 1)[None])
    v = causal_violations(lay, limit=5)
    assert v.count == h.size
    assert v.examples.tolist() == np.stack([h, i, j], 1)[:5].tolist()
    e = empty_rows(lay)
    hh, ii = np.nonzero(~dense.any(axis=2))
    assert e.tolist() == np.stack([hh, ii], 1).tolist()
    d = row_degree(lay)
    rc = dense.sum(axis=2)
    assert (d.min, d.max) == (rc.min(), rc.max()) and d.mean == pytest.approx(rc.mean())
    assert density(lay) == pytest.approx(dense.mean())


def test_empty_rows():
    assert empty_rows(mc.offsets([2]), q_len=4, block=2).tolist() == [[0, 0], [0, 1]]
    with pytest.raises(GuaranteeError) as e:
        check_no_empty_rows(mc.causal() & mc.offsets("primes"), q_len=10, block=4)
    assert e.value.counterexample == (0, 0, None) and e.value.details["count"] == 2
    check_no_empty_rows(mc.causal() & (mc.window(0) | mc.offsets("primes")), q_len=10, block=4)


def test_row_degree():
    d = row_degree(mc.window(2), q_len=10, block=4)
    assert (d.min, d.max, d.mean, d.argmin, d.argmax) == (1, 3, 2.7, (0, 0), (0, 2))
    with pytest.raises(GuaranteeError) as e:
        check_row_degree(mc.causal(), max=3, q_len=8, block=4)
    assert e.value.query == 3 and e.value.details["degree"] == 4 and e.value.details["count"] == 5
    with pytest.raises(GuaranteeError) as e:
        check_row_degree(mc.causal(), min=2, q_len=8, block=4)
    assert e.value.query == 0 and e.value.details["degree"] == 1
    check_row_degree(mc.causal(), min=1, max=8, q_len=8, block=4)


def test_density():
    assert density(mc.causal(), q_len=4, block=2) == 0.625
    assert block_density(mc.causal(), q_len=8, block=2) == 0.625
    check_density(mc.window(3), max=0.1, q_len=256, block=64)
    with pytest.raises(GuaranteeError, match="density"):
        check_density(mc.causal(), max=0.4, q_len=64, block=16)
    with pytest.raises(GuaranteeError) as e:
        check_block_density(mc.causal() & mc.offsets("primes"), max=0.2, q_len=256, block=32)
    # the counterexample is the block row with the most stored blocks (the last one of a causal layout)
    assert e.value.details["block_row"] == 7 and e.value.details["blocks"] == 8 and e.value.query == 7 * 32
    assert "block row 7 (queries 224..) with 8 stored block(s)" in str(e.value)
    with pytest.raises(GuaranteeError) as e:
        check_block_density(mc.causal(), min=0.9, q_len=64, block=16)
    assert e.value.details["block_row"] == 0 and e.value.details["blocks"] == 1
    check_block_density(mc.window(3), min=0.1, max=0.5, q_len=256, block=64)


def test_argument_errors():
    with pytest.raises(ValueError, match="q_len"):
        check_causal(mc.causal())
    with pytest.raises(TypeError):
        check_causal("causal()", q_len=4)
