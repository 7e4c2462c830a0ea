"""What a plan says about itself: the text of ``Plan.explain()``, its speed-up estimate, the pairs of each part.

Example:
    >>> import maskc as mc
    >>> from maskc.planner import plan
    >>> text = plan(mc.causal() & mc.window(4), 64, block=16).explain()
    >>> text.splitlines()[0]
    'plan for causal() & window(4): q_len=64 kv_len=64 block=16 head_dim=64 profile=cpu'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskc.patterns.core import Pattern
from maskc.planner import cost as C
from maskc.planner.cost import human_bytes as _bytes
from maskc.planner.cost import human_seconds as _ms
from maskc.planner.decide import HeadPlan, Part, whole_blocks
from maskc.planner.decompose import Decomposition, decompose, pair_count

if TYPE_CHECKING:  # the Plan class imports this module
    from maskc.planner.plan import Plan


def known_causal(dec: Decomposition) -> bool:
    """True when the decomposition proves j <= i for every pair (the dense baseline is then causal SDPA)."""
    M = dec.kv_len
    if dec.ctx is not None:
        return not dec.ctx_member[: M - 1].any()
    return not dec.generic and not dec.cols.size and not dec.rows.size and not dec.d_member[: M - 1].any()


def speedups(plan: "Plan") -> list[float]:
    """Estimated dense-SDPA time / plan time, per head."""
    out = []
    for hp in plan.heads:
        dense = C.sdpa_cost(plan.profile, n=plan.q_len, m=plan.kv_len, block=plan.block, head_dim=plan.head_dim,
                            causal=known_causal(hp.dec))
        out.append(dense.seconds / max(hp.total.seconds, 1e-12))
    return out


def part_mask(part: Part, hp: HeadPlan, N: int, M: int) -> np.ndarray:
    """The exact pairs of one part: bool ``[N, M]`` (small sizes only)."""
    dd = np.arange(N)[:, None] - np.arange(M)[None, :] + (M - 1)
    if part.pattern is not None:
        return np.asarray(part.pattern.dense(N, M), bool).reshape(N, M)
    if part.lowering == "gather":
        dec = hp.dec
        m = np.zeros((N, M), bool)
        keep = dec.ctx_member[dd] & ~dec.d_member[dd]
        if part.axis == "cols":
            m[:, part.index] = keep[:, part.index]
        else:
            colset = np.zeros(M, bool)
            colset[dec.cols] = True
            m[part.index] = keep[part.index] & ~colset[None, :]
        return m
    if part.member is not None:
        return part.member[dd]
    if part.offsets is not None:
        return np.isin(dd - (M - 1), part.offsets)
    raise RuntimeError(f"part {part.name!r} has no pairs description")  # pragma: no cover


def explain(plan: "Plan") -> str:
    """Each part, its lowering, size, estimated cost and why; then the token- vs block-level trade-off."""
    p = plan.profile
    lines = [
        f"plan for {plan.pattern.text()}: q_len={plan.q_len} kv_len={plan.kv_len} block={plan.block} "
        f"head_dim={plan.head_dim} profile={p.name}"
    ]
    for hi, hp in enumerate(plan.heads):
        if not plan.shared:
            lines.append(f"head {hi}: {hp.pattern.text()}")
        lines.append(f"  decomposition: {hp.dec.note}")
        for k, part in enumerate(hp.parts, 1):
            size = f"nnz {part.nnz:,}"
            if part.lowering in ("bsr", "dense", "residue"):
                size += f", {part.blocks:,} blocks"
            if part.lowering == "dia":
                size += f", {len(part.offsets):,} offsets"
            if part.lowering == "gather":
                size += f", {len(part.index):,} {part.axis}"
            lines.append(
                f"  part {k} {part.name:9s} {part.describe}\n"
                f"         -> {part.lowering:8s} {size}; est {_ms(part.cost.seconds)} fwd "
                f"({part.cost.flops / 1e9:.3g} GFLOP, {_bytes(part.cost.bytes)}, {part.cost.bound}-bound)\n"
                f"         why: {part.why}"
            )
        lines.append(f"  total: est {_ms(hp.total.seconds)} fwd, {_ms(hp.total.seconds * p.bwd_factor)} fwd+bwd "
                     f"per (batch x head)")
        if hp.whole is not None:
            lines.append(f"  one block-sparse kernel for the whole pattern instead: est {_ms(hp.whole.seconds)}"
                         f"{' (chosen)' if hp.note == 'whole' else ''}")
        lines.extend(_tradeoff(plan, hp))
    return "\n".join(lines)


def _tradeoff(plan: "Plan", hp: HeadPlan) -> list[str]:
    p, N, M, B, D = plan.profile, plan.q_len, plan.kv_len, plan.block, plan.head_dim
    n_qb, n_kb = -(-N // B), -(-M // B)
    pat = hp.pattern
    causal = known_causal(hp.dec)
    dense = C.sdpa_cost(p, n=N, m=M, block=B, head_dim=D, causal=causal)
    speedup = dense.seconds / max(hp.total.seconds, 1e-12)
    nnz = sum(pt.nnz for pt in hp.parts)
    blocks = whole_blocks(hp.dec, B)
    out = [
        f"  dense SDPA ({'causal' if causal else 'full'}) estimate: {_ms(dense.seconds)}; "
        f"plan speed-up estimate x{speedup:.2f}"
        + (" (below 1: dense SDPA is the faster choice here)" if speedup < 1 else ""),
        f"  token level: nnz {nnz:,} ({100 * nnz / max(N * M, 1):.3g}% of pairs), "
        f"{blocks:,}/{n_qb * n_kb:,} tiles of {B}x{B} touched ({100 * blocks / max(n_qb * n_kb, 1):.3g}%)",
    ]
    if pat.axis == "B" or not hasattr(pat, "at_block_level"):
        out.append("  block level: the pattern is already block-level")
        return out
    nb = _block_level_blocks(pat, n_qb, n_kb)
    if nb is None:
        out.append("  block level: not estimated (pattern too large to evaluate per block)")
        return out
    bl = C.bsr_cost(p, blocks=nb, block_q=B, block_k=B, n=N, m=M, head_dim=D)
    out.append(
        f"  at_block_level({B}): {nb:,} full tiles ({100 * nb / max(n_qb * n_kb, 1):.3g}%), nnz {nb * B * B:,}, "
        f"est {_ms(bl.seconds)} (a different, coarser pattern: the rule on tile indices)"
    )
    return out


def _block_level_blocks(pat: Pattern, n_qb: int, n_kb: int) -> int | None:
    try:
        dec = decompose(pat, n_qb, n_kb)
    except ValueError:
        return None
    if not dec.generic:
        tot = pair_count(dec.d_member, n_qb, n_kb)
        # columns / rows minus what the offsets already hold
        for c in dec.cols:
            i = np.arange(n_qb)
            dd = i - c + n_kb - 1
            tot += int((dec.ctx_member[dd] & ~dec.d_member[dd]).sum())
        colset = np.zeros(n_kb, bool)
        colset[dec.cols] = True
        for r in dec.rows:
            j = np.arange(n_kb)
            dd = r - j + n_kb - 1
            tot += int((dec.ctx_member[dd] & ~dec.d_member[dd] & ~colset).sum())
        return tot
    if n_qb * n_kb > (1 << 22):
        return None
    return int(pat.dense(n_qb, n_kb).sum())
