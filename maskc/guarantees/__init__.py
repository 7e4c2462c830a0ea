"""Guarantees: exact properties of layouts and patterns, each with a ``check_*``.

Every function accepts a :class:`~maskc.Layout`, or a pattern with ``q_len=`` (and
optionally ``kv_len=``, ``block=``, ``heads=``). A ``check_*`` raises
:class:`GuaranteeError` (an ``AssertionError``) carrying a concrete counterexample
(head, query, key); bad arguments raise ``ValueError``. See docs/guarantees.md.

Example:
    >>> import maskc as mc
    >>> from maskc import guarantees as g
    >>> p = mc.causal() & (mc.window(1) | mc.offsets("primes"))
    >>> g.check_causal(p, q_len=512, block=64)
    >>> g.hop_diameter(p, q_len=65536)
    3
"""

from maskc.guarantees._common import GuaranteeError
from maskc.guarantees.basic import (
    DegreeStats, Violations, block_density, causal_violations, check_block_density, check_causal,
    check_density, check_no_empty_rows, check_row_degree, density, empty_rows, is_causal, row_degree,
)
from maskc.guarantees.coverage import (
    PiCoverage, PiVerdict, check_pi_claims, claim_gcd, claim_prefix, claim_residue, cyclic_jumps,
    pi_attention_pattern, pi_coverage, pi_step, verify_pi_claims,
)
from maskc.guarantees.reach import (
    HopProfile, ReachReport, check_diameter, check_reachable, hop_diameter, layout_offsets, min_hops,
    offset_hops, reachability, reachable_within, unreachable_pairs,
)
from maskc.guarantees.sidon import check_sidon, is_sidon, sidon_violation

__all__ = [
    "GuaranteeError",
    "Violations", "DegreeStats", "causal_violations", "is_causal", "check_causal", "empty_rows",
    "check_no_empty_rows", "row_degree", "check_row_degree", "density", "block_density", "check_density",
    "check_block_density",
    "HopProfile", "ReachReport", "reachability", "hop_diameter", "reachable_within", "unreachable_pairs",
    "min_hops", "check_reachable", "check_diameter", "offset_hops", "layout_offsets",
    "sidon_violation", "is_sidon", "check_sidon",
    "PiVerdict", "PiCoverage", "verify_pi_claims", "check_pi_claims", "claim_residue", "claim_gcd",
    "claim_prefix", "pi_coverage", "pi_step", "pi_attention_pattern", "cyclic_jumps",
]
