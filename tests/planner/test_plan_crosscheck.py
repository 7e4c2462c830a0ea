"""A plan through the registry: every part is an ordinary backend call, recorded in last_choice,
and mc.crosscheck(plan) checks each part and the merged result against float64."""

from __future__ import annotations

import pytest
import torch

import maskc as mc
import maskc.backends as mb
from maskc.planner import plan

PATTERN = mc.causal() & (mc.window(6) | mc.offsets("squares") | mc.global_tokens(2) | mc.stride(5))
FORCE = {"band": "bsr", "offsets": "dia", "stride5": "residue"}


def test_crosscheck_of_a_plan_has_one_passing_row_per_part_and_the_merge():
    pl = plan(PATTERN, 90, block=16, allow_whole=False, force=FORCE)
    rep = mc.crosscheck(pl, heads=4, kv_heads=2, batch=2)
    names = [r.backend for r in rep.rows]
    assert names == [f"{p.name}:{p.lowering}" for p in pl.parts] + ["merged"]
    assert {"bsr", "dia", "residue", "gather"} <= {p.lowering for p in pl.parts}
    assert rep.passed, rep.table()
    assert all(r.dq is not None and r.dq < 1e-5 for r in rep.rows)


def test_crosscheck_of_a_per_head_plan_checks_every_heads_parts():
    pl = plan(mc.heads([mc.causal() & mc.window(3), PATTERN]), 48, block=16, allow_whole=False)
    rep = mc.crosscheck(pl, kv_heads=1)
    assert any(r.backend.startswith("head0:") for r in rep.rows) and any(r.backend.startswith("head1:") for r in rep.rows)
    assert rep.passed, rep.table()


def test_crosscheck_of_a_plan_catches_a_wrong_part(scratch_backend):
    def off_by_one_percent(q, k, v, layout, *, scale):
        out, lse = mb.get("torch").impl(q, k, v, layout, scale=scale)
        return out * 1.01, lse

    scratch_backend("skewed", off_by_one_percent)
    pl = plan(PATTERN, 64, block=16, allow_whole=False, force=FORCE)
    rep = mc.crosscheck(pl, backends="skewed", grads=False)
    assert not rep.passed
    bad = {r.backend for r in rep.failed}
    assert "band:bsr" in bad and "merged" in bad and "offsets:dia" not in bad  # DIA parts do not use it
    with pytest.raises(ValueError, match="at most one backend"):
        mc.crosscheck(pl, backends="torch,reference")


def test_a_plan_run_records_each_parts_backend():
    pl = plan(PATTERN, 64, block=16, allow_whole=False, force=FORCE)
    q = torch.randn(1, 2, 64, 16)
    mc.attention(q, q, q, pl)
    ch = mb.last_choice()
    assert ch.name == "torch+dia"
    assert dict(ch.parts) == {"band": "torch", "offsets": "dia", "stride5": "torch", "cols": "torch"}
    pl.run(q, q, q, backend="reference", dia="reference")
    assert set(dict(mb.last_choice().parts).values()) == {"reference"}
