"""maskc.distributed on torch.distributed: 2 and 4 spawned gloo ranks against the float64 reference.

Every case checks, per rank and after unsharding: outputs, lse and the gradients of a loss
reading both equal the single-process float64 reference; the bytes handed to
torch.distributed (counted where each message is posted) equal the plan's figures in the
forward pass and, transposed, in the backward pass; the only metadata is the one-time
8-byte plan fingerprint per rank.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import maskc.distributed as md
from dist_cases import layout_of, named_cases, random_cases, reference, rel_err
from dist_cluster import gather

pytestmark = pytest.mark.xdist_group("maskc-distributed-torch")

CASES = named_cases()
TOL = {"float64": 1e-12, "float32": 1e-5}


def check(results, c, world):
    dp = md.plan(layout_of(c), world, head_dim=c["D"], dtype=c["dtype"], batch=c["B"], kv_heads=c["Hkv"])
    ref = reference(c)
    tol = TOL[c["dtype"]]
    for name in ("out", "lse", "dq", "dk", "dv"):
        got = dp.unshard(gather(results, name))
        err = rel_err(got, ref[name])
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol}"
    for r in (r for r in results if r):
        fwd, tot = r["forward"], r["total"]
        assert fwd["forward_received"] == r["plan_received"] and fwd["forward_sent"] == r["plan_sent"]
        # backward: the transposed exchange moves the same bytes the other way
        assert tot["backward_sent"] == r["plan_received"] and tot["backward_received"] == r["plan_sent"]
        assert tot["metadata_sent"] == tot["metadata_received"] == 8 * (world - 1)
    return dp


@pytest.mark.parametrize("name", sorted(CASES))
def test_four_ranks_match_reference(cluster4, name):
    dp = check(cluster4.run("attention_case", c=CASES[name]), CASES[name], 4)
    assert sum(dp.report()["bytes_received"]) > 0  # every case really exchanges blocks


@pytest.mark.parametrize("name", ["window", "documents", "pi_attention", "block_primes"])
def test_two_ranks_match_reference(cluster2, name):
    check(cluster2.run("attention_case", c=CASES[name]), CASES[name], 2)


@pytest.mark.parametrize("strategy", ["contiguous", "zigzag", "lpt"])
def test_every_strategy_is_exact(cluster4, strategy):
    c = CASES["prime_bird"]
    results = cluster4.run("attention_case", c=c, strategy=strategy)
    dp = md.plan(layout_of(c), 4, strategy=strategy)
    ref = reference(c)
    assert rel_err(dp.unshard(gather(results, "out")), ref["out"]) <= 1e-12
    assert rel_err(dp.unshard(gather(results, "dk")), ref["dk"]) <= 1e-12


def test_float32_within_tolerance(cluster4):
    c = dict(CASES["documents"], dtype="float32")
    check(cluster4.run("attention_case", c=c), c, 4)


def test_subgroup_of_the_world(cluster4):
    """A 2-rank process group inside the 4-rank world: group ranks map to global peers."""
    c = CASES["window"]
    results = cluster4.run("attention_case", c=c, subgroup=[1, 3])
    assert [r == {} for r in results] == [True, False, True, False]
    check(results, c, 2)


def test_ranks_with_different_plans_refuse(cluster4):
    with pytest.raises(RuntimeError, match="different dispatch plans") as err:
        cluster4.run("attention_case", c=CASES["window"], strategy="zigzag", odd_rank_strategy="contiguous")
    assert all(f"rank {r} failed" in str(err.value) for r in range(4))  # every rank refused, none hangs
    check(cluster4.run("attention_case", c=CASES["window"]), CASES["window"], 4)  # and the group still works


@settings(max_examples=6)
@given(random_cases())
def test_random_layouts_four_ranks(cluster4, c):
    check(cluster4.run("attention_case", c=c), c, 4)
