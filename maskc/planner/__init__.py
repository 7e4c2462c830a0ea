"""The planner: disjoint decomposition, per-part lowering (BSR / DIA / residue / dense / gather), exact LSE merge.

Every part runs through the backend registry (``mc.attention`` on a block or diagonal
layout); the planner only decides and merges.

Example:
    >>> import maskc as mc
    >>> from maskc.planner import plan
    >>> pl = plan(mc.causal() & (mc.window(3) | mc.offsets("mian_chowla")), 512, block=64)
    >>> "dia" in [p.lowering for p in pl.parts]
    True
"""

from maskc.planner.cost import PROFILES, CostProfile, get_profile
from maskc.planner.merge import merge_lse
from maskc.planner.plan import Part, Plan, plan

__all__ = ["plan", "Plan", "Part", "merge_lse", "CostProfile", "PROFILES", "get_profile"]
