"""Sidon sets (all pairwise differences distinct) and πAttention's three coverage statements:
(1) π-step hops alone stay in the residue class i mod π; (2) cyclic ±π jumps on n tokens reach
exactly i + gcd(π, n)·Z_n; (3) causal window(r) | π-step reaches every earlier key within
1 + ceil((π - 1) / r) hops."""

import math

import numpy as np
import pytest

import maskc as mc
from maskc.guarantees import (
    GuaranteeError, check_pi_claims, check_sidon, claim_gcd, claim_prefix, claim_residue, is_sidon,
    pi_coverage, sidon_violation, verify_pi_claims,
)
from maskc.patterns.sequences import named_sequence


def brute_sidon(vals):
    seen = {}
    for a in vals:
        for b in vals:
            if a > b:
                if a - b in seen:
                    return False
                seen[a - b] = (a, b)
    return True


def test_mian_chowla_is_sidon():
    assert is_sidon("mian_chowla", limit=200_000)
    check_sidon(named_sequence("mian_chowla", 10_000))


@pytest.mark.parametrize("name", ["primes", "squares", "powers_of_two", "fibonacci", "mersenne"])
def test_other_sequences(name):
    vals = named_sequence(name, 300).tolist()
    assert is_sidon(vals) == brute_sidon(vals)


def test_sidon_counterexample():
    with pytest.raises(GuaranteeError) as e:
        check_sidon([1, 2, 4, 8, 13, 21, 31, 45, 66, 81, 97, 123, 148, 182, 204, 252, 290, 291])
    (a, b), (c, d) = e.value.details["pairs"]
    assert a - b == c - d == e.value.details["difference"] and {a, b} != {c, d}
    assert sidon_violation([0, 1, 3]) is None
    assert sidon_violation([0, 1, 2]) == ((1, 0), (2, 1))
    with pytest.raises(ValueError, match="limit"):
        is_sidon("primes")


@pytest.mark.parametrize("n", [60, 64, 97, 1000, 4096])
@pytest.mark.parametrize("period", [3, 8, 16, 30])
def test_spec_b_statements(n, period):
    res = claim_residue(n, period)
    assert res.holds and res.measured == period
    g = claim_gcd(n, period)
    assert g.holds and g.measured == math.gcd(period, n)
    for r in (1, 4, 32):
        v = claim_prefix(n, period, r)
        assert v.holds, v
        assert v.expected == 1 + math.ceil((period - 1) / r)


def test_prefix_bound_is_tight_for_long_sequences():
    v = claim_prefix(4096, 16, 4)
    assert v.measured == v.expected == 5 and v.note == "bound is tight"


def test_bounded_variant_breaks_prefix_claim():
    with pytest.raises(GuaranteeError) as e:
        check_pi_claims(1000, 16, 4, variant=1)
    assert e.value.details["measured"] == 65 and e.value.details["expected"] == 5
    q, k = e.value.query, e.value.key
    assert q - k > 16 and (q - k) % 16 > 4  # needs more than one pi-hop and more than one window hop


def test_pi_coverage_sets():
    c = pi_coverage(64, 8, 0, source=3)
    assert c.reachable.tolist() == list(range(3, 64, 8)) and c.diameter is None
    c = pi_coverage(64, 8, 1)
    assert c.reachable.size == 64 and c.diameter is not None
    cyc = claim_gcd(60, 8)
    assert cyc.measured == 4  # i + 4 Z_60: 4 residue classes
    assert all(v.holds for v in verify_pi_claims(4096, 16, 4))
