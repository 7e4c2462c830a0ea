"""``mc.plan``: split a pattern into disjoint parts, lower each to its cheapest kernel, merge exactly.

Lowerings (see docs/planner.md):

* ``bsr``     block-sparse over the part's non-empty tiles (planner's torch path on CPU,
              any registered backend via ``mc.attention`` otherwise);
* ``dense``   the same kernel when the part touches (nearly) every tile of its envelope;
* ``dia``     Toeplitz part with few offsets: each offset is one shifted K/V slice;
* ``residue`` periodic part (i - j) mod s == phase: tokens permuted into residue classes;
* ``gather``  global rows / columns: a thin dense rectangle.

Parts are disjoint by construction, so softmax over the pattern equals the log-sum-exp
merge of the parts' (out, lse) — exact, not an approximation.

Example:
    >>> import torch, maskc as mc
    >>> from maskc.planner import plan
    >>> p = mc.causal() & (mc.window(8) | mc.offsets("squares"))
    >>> pl = plan(p, 256, block=32, allow_whole=False, force={"band": "bsr", "offsets": "dia"})
    >>> [part.lowering for part in pl.parts]
    ['bsr', 'dia']
    >>> q = torch.randn(1, 2, 256, 16)
    >>> out, lse = pl.run(q, q, q, return_lse=True)
    >>> out.shape
    torch.Size([1, 2, 256, 16])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from maskc.patterns.core import Offsets, Or, Pattern, Window
from maskc.planner import cost as C
from maskc.planner.bsr import LayoutBlocks, ToeplitzBlocks, ell_attention, toeplitz_block_any
from maskc.planner.decompose import Decomposition, decompose, pair_count, runs
from maskc.planner.merge import merge_lse

Tensor = torch.Tensor

#: A contiguous run of at least this many offsets is a band candidate.
RUN_MIN: int = 4
#: A residue class with at least this many offsets is a residue candidate.
RESIDUE_MIN: int = 8
#: A part touching at least this fraction of its envelope's tiles is labelled dense.
DENSE_FRACTION: float = 0.9
#: Global rows / columns sets up to this size use the gather lowering.
GATHER_MAX: int = 512
#: Keep the decomposition unless one whole-pattern part is estimated this much cheaper.
WHOLE_MARGIN: float = 0.9


def _dtype_bytes(dtype) -> int:
    if dtype is None:
        return 0
    return torch.empty(0, dtype=dtype).element_size()


def member_pattern(member: np.ndarray, q_len: int, kv_len: int) -> Pattern:
    """A pattern with exactly this offset membership (windows for runs, else offsets).

    Example:
        >>> import numpy as np
        >>> from maskc.planner.plan import member_pattern
        >>> d = np.arange(-3, 4); member_pattern((d >= 0) & (d <= 2), 4, 4).text()
        'window(2)'
    """
    rs = runs(member)
    off = kv_len - 1
    if not rs:
        return Offsets([q_len + kv_len + 1])  # empty within range
    if len(rs) <= 16:
        ws = [Window(b - 1 - off, -(a - off)) for a, b in rs]
        return ws[0] if len(ws) == 1 else Or(*ws)
    vals = (np.nonzero(member)[0] - off).tolist()
    return Offsets(vals)


@dataclass
class Part:
    """One disjoint part of a plan and the kernel chosen for it."""

    name: str
    lowering: str  #: bsr | dense | dia | residue | gather | empty
    describe: str  #: what pairs the part holds
    nnz: int
    cost: C.Cost
    why: str
    blocks: int = 0
    offsets: np.ndarray | None = None  #: dia: the offsets d
    member: np.ndarray | None = None  #: Toeplitz parts: membership over d
    period: int = 0
    phase: int = 0
    index: np.ndarray | None = None  #: gather: the rows or columns
    axis: str = ""  #: gather: "rows" | "cols"
    pattern: Pattern | None = None  #: generic parts (compiled)
    layout: Any = None
    alternatives: dict = field(default_factory=dict)  #: lowering -> Cost


@dataclass
class HeadPlan:
    """The parts of one head's pattern (or of every head when the pattern has no heads)."""

    pattern: Pattern
    dec: Decomposition
    parts: list[Part]
    total: C.Cost
    whole: C.Cost | None  #: one block-sparse part for the whole pattern
    note: str = ""
    pieces: list[str] = field(default_factory=list)  #: Toeplitz piece names (the keys ``force`` accepts)


class Plan:
    """An execution plan: disjoint parts, one lowering each, an exact LSE merge.

    Build with :func:`plan`. Run with :meth:`run` or ``mc.attention(q, k, v, plan)``.
    """

    def __init__(self, pattern: Pattern, q_len: int, kv_len: int, block: int, head_dim: int,
                 profile: C.CostProfile, heads: list[HeadPlan], shared: bool, elt: int):
        self.pattern, self.q_len, self.kv_len, self.block = pattern, q_len, kv_len, block
        self.head_dim, self.profile, self.heads, self.shared, self.elt = head_dim, profile, heads, shared, elt
        self._layouts: dict = {}

    # ---------------------------------------------------------------- info
    @property
    def parts(self) -> list[Part]:
        """The parts of head 0 (of every head for a pattern without ``heads``)."""
        return self.heads[0].parts

    @property
    def estimated_seconds(self) -> float:
        """Estimated forward time per (batch x head) on the plan's profile."""
        return max(h.total.seconds for h in self.heads)

    def part_masks(self, head: int = 0) -> list[np.ndarray]:
        """The exact pairs of each part of head ``head``: bool ``[q_len, kv_len]`` per part.

        The parts are disjoint and their union is the pattern (of that head); tests and
        plots use this to check it. Memory O(parts * q_len * kv_len): small sizes only.

        Example:
            >>> import maskc as mc
            >>> from maskc.planner import plan
            >>> pl = plan(mc.causal() & (mc.window(4) | mc.global_tokens(1)), 32, block=8, allow_whole=False)
            >>> ms = pl.part_masks()
            >>> bool((sum(m.astype(int) for m in ms) <= 1).all())
            True
            >>> bool((sum(ms) == mc.compile(pl.pattern, 32, block=8).to_dense()[0]).all())
            True
        """
        hp = self.heads[head]
        N, M = self.q_len, self.kv_len
        dd = np.arange(N)[:, None] - np.arange(M)[None, :] + (M - 1)
        out = []
        for part in hp.parts:
            if part.pattern is not None:
                m = np.asarray(part.pattern.dense(N, M), bool).reshape(N, M)
            elif part.lowering == "gather":
                dec = hp.dec
                m = np.zeros((N, M), bool)
                keep = dec.ctx_member[dd] & ~dec.d_member[dd]
                if part.axis == "cols":
                    m[:, part.index] = keep[:, part.index]
                else:
                    colset = np.zeros(M, bool)
                    colset[dec.cols] = True
                    m[part.index] = keep[part.index] & ~colset[None, :]
            elif part.member is not None:
                m = part.member[dd]
            elif part.offsets is not None:
                m = np.isin(dd - (M - 1), part.offsets)
            else:  # pragma: no cover
                raise RuntimeError(f"part {part.name!r} has no pairs description")
            out.append(m)
        return out

    def __repr__(self) -> str:
        return f"Plan({self.pattern.text()}, q_len={self.q_len}, parts={[p.lowering for p in self.parts]})"

    # --------------------------------------------------------------- explain
    def explain(self) -> str:
        """Each part, its lowering, size, estimated cost and why; then the token- vs block-level trade-off.

        Example:
            >>> import maskc as mc
            >>> print(mc_plan := __import__("maskc.planner", fromlist=["plan"]).plan(
            ...     mc.causal() & mc.window(4), 64, block=16).explain().splitlines()[0])  # doctest: +ELLIPSIS
            plan for causal() & window(4): q_len=64 kv_len=64 block=16 head_dim=64 profile=cpu
        """
        p = self.profile
        lines = [
            f"plan for {self.pattern.text()}: q_len={self.q_len} kv_len={self.kv_len} block={self.block} "
            f"head_dim={self.head_dim} profile={p.name}"
        ]
        for hi, hp in enumerate(self.heads):
            if not self.shared:
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
            lines.extend(self._tradeoff(hp))
        return "\n".join(lines)

    @staticmethod
    def _speedup(hp: HeadPlan, dense: C.Cost) -> float:
        return dense.seconds / max(hp.total.seconds, 1e-12)

    @property
    def speedup_estimate(self) -> float:
        """Estimated dense-SDPA time / plan time (slowest head), from the cost model; < 1 means use SDPA.

        Example:
            >>> import maskc as mc
            >>> from maskc.planner import plan
            >>> plan(mc.causal() & (mc.window(64) | mc.stride(16)), 32768, device="h100").speedup_estimate > 2
            True
        """
        out = []
        for hp in self.heads:
            dense = C.sdpa_cost(self.profile, n=self.q_len, m=self.kv_len, block=self.block, head_dim=self.head_dim,
                                causal=_known_causal(hp.dec))
            out.append(self._speedup(hp, dense))
        return min(out)

    def _tradeoff(self, hp: HeadPlan) -> list[str]:
        p, N, M, B, D = self.profile, self.q_len, self.kv_len, self.block, self.head_dim
        n_qb, n_kb = -(-N // B), -(-M // B)
        pat = hp.pattern
        causal = _known_causal(hp.dec)
        dense = C.sdpa_cost(p, n=N, m=M, block=B, head_dim=D, causal=causal)
        nnz = sum(pt.nnz for pt in hp.parts)
        blocks = _whole_blocks(hp.dec, B)
        out = [
            f"  dense SDPA ({'causal' if causal else 'full'}) estimate: {_ms(dense.seconds)}; "
            f"plan speed-up estimate x{self._speedup(hp, dense):.2f}"
            + (" (below 1: dense SDPA is the faster choice here)" if self._speedup(hp, dense) < 1 else ""),
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

    # ------------------------------------------------------------------- run
    def __maskc_attention__(self, q, k, v, *, backend: str = "auto", scale: float | None = None,
                            return_lse: bool = False):
        """Hook used by ``mc.attention(q, k, v, plan, ...)``."""
        return self.run(q, k, v, backend=backend, scale=scale, return_lse=return_lse)

    def run(self, q: Tensor, k: Tensor, v: Tensor, *, backend: str = "auto", scale: float | None = None,
            return_lse: bool = False, dia: str = "auto"):
        """Run the plan: q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` torch tensors (GQA).

        ``backend`` selects what block-sparse parts use: "auto" (planner's torch path on
        CPU, "triton" on CUDA), "torch", or any registered maskc backend name.
        ``dia`` selects the DIA kernel: "auto" (Triton on CUDA, torch elsewhere),
        "torch" or "triton". Returns out (and lse when ``return_lse``).
        """
        if not all(isinstance(x, torch.Tensor) for x in (q, k, v)):
            raise TypeError("Plan.run takes torch tensors q, k, v")
        if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
            raise ValueError(f"q, k, v must be [batch, heads, seq, head_dim]; got {tuple(q.shape)}, {tuple(k.shape)}")
        Bt, Hq, N, D = q.shape
        if N != self.q_len or k.shape[2] != self.kv_len or v.shape[2] != self.kv_len:
            raise ValueError(f"plan is for q_len={self.q_len}, kv_len={self.kv_len}; got {N} and {k.shape[2]}")
        Hkv = k.shape[1]
        if Hq % Hkv:
            raise ValueError(f"q heads {Hq} must be a multiple of kv heads {Hkv}")
        if not self.shared and Hq != len(self.heads):
            raise ValueError(f"plan has {len(self.heads)} per-head patterns, q has {Hq} heads")
        scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
        if self.shared:
            out, lse = self._run_head(self.heads[0], q, k, v, backend, scale, dia)
        else:
            g = Hq // Hkv
            res = [self._run_head(hp, q[:, h: h + 1], k[:, h // g: h // g + 1], v[:, h // g: h // g + 1],
                                  backend, scale, dia) for h, hp in enumerate(self.heads)]
            out = torch.cat([r[0] for r in res], dim=1)
            lse = torch.cat([r[1] for r in res], dim=1)
        return (out, lse) if return_lse else out

    def _bsr(self, q, k, v, *, member=None, layout=None, n=None, m=None, backend, scale):
        """Block-sparse attention over a Toeplitz member (at n x m) or a compiled layout."""
        n = q.shape[2] if n is None else n
        m = k.shape[2] if m is None else m
        name = _resolve_backend(backend, q)
        if name == "torch":
            src = ToeplitzBlocks(member, n, m, self.block) if layout is None else LayoutBlocks(layout)
            return ell_attention(q, k, v, src, scale=scale)
        from maskc.backends import attention

        if layout is None:
            key = (member.tobytes(), n, m)
            layout = self._layouts.get(key)
            if layout is None:
                import maskc as mc

                layout = mc.compile(member_pattern(member, n, m), n, m, block=self.block)
                self._layouts[key] = layout
        return attention(q, k, v, layout, backend=name, scale=scale, return_lse=True)

    def _run_head(self, hp: HeadPlan, q, k, v, backend, scale, dia):
        outs = []
        for part in hp.parts:
            if part.lowering in ("bsr", "dense"):
                if part.layout is not None or part.pattern is not None:
                    lay = part.layout if part.layout is not None else self._compile(part)
                    outs.append(self._bsr(q, k, v, layout=lay, backend=backend, scale=scale))
                else:
                    outs.append(self._bsr(q, k, v, member=part.member, backend=backend, scale=scale))
            elif part.lowering == "dia":
                outs.append(_run_dia(q, k, v, part.offsets, scale, dia))
            elif part.lowering == "residue":
                from maskc.planner.residue import residue_attention

                def inner(qg, kg, vg, red, n, m):
                    return self._bsr(qg, kg, vg, member=red, n=n, m=m, backend=backend, scale=scale)

                outs.append(residue_attention(q, k, v, part.member, part.period, part.phase, inner))
            elif part.lowering == "gather":
                outs.append(_run_gather(q, k, v, part, hp.dec, scale))
            elif part.lowering == "empty":
                lse_dt = torch.float64 if q.dtype == torch.float64 else torch.float32
                outs.append((q.new_zeros(q.shape[:3] + (v.shape[3],)),
                             torch.full(q.shape[:3], float("-inf"), dtype=lse_dt, device=q.device)))
            else:  # pragma: no cover
                raise RuntimeError(f"unknown lowering {part.lowering!r}")
        return merge_lse(outs)

    def _compile(self, part: Part):
        import maskc as mc

        part.layout = mc.compile(part.pattern, self.q_len, self.kv_len, block=self.block)
        return part.layout


def _bytes(n: float) -> str:
    """A byte count for humans: 950 kB, 25.1 MB, 1.19 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _known_causal(dec: Decomposition) -> bool:
    """True when the decomposition proves j <= i for every pair (the dense baseline is then causal SDPA)."""
    M = dec.kv_len
    if dec.ctx is not None:
        return not dec.ctx_member[: M - 1].any()
    return not dec.generic and not dec.cols.size and not dec.rows.size and not dec.d_member[: M - 1].any()


def _ms(s: float) -> str:
    """A duration for humans: 12.3 us, 4.56 ms, 1.75 s."""
    if s >= 1.0:
        return f"{s:.3g} s"
    return f"{s * 1e3:.3g} ms" if s >= 1e-4 else f"{s * 1e6:.3g} us"


def _resolve_backend(backend: str, q: Tensor) -> str:
    if backend in ("auto", None):
        if q.is_cuda:
            return "triton"
        return "torch"
    return backend


def _run_dia(q, k, v, offsets, scale, dia):
    use_triton = dia == "triton" or (dia == "auto" and q.is_cuda)
    if use_triton:
        from maskc.planner.dia_triton import dia_attention_triton

        return dia_attention_triton(q, k, v, offsets, scale=scale)
    from maskc.planner.dia import dia_attention

    return dia_attention(q, k, v, offsets, scale=scale)


def _run_gather(q, k, v, part: Part, dec: Decomposition, scale: float):
    """Dense attention on a thin rectangle: all queries x a few columns, or a few rows x all keys."""
    Bt, Hq, N, D = q.shape
    M = k.shape[2]
    g = Hq // k.shape[1]
    kk = k.repeat_interleave(g, 1) if g > 1 else k
    vv = v.repeat_interleave(g, 1) if g > 1 else v
    idx = torch.from_numpy(part.index).to(q.device)
    off = M - 1
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    if part.axis == "cols":
        i = np.arange(N)[:, None]
        j = part.index[None, :]
        dd = i - j + off
        mask = dec.ctx_member[dd] & ~dec.d_member[dd]
        s = torch.matmul(q.to(acc), kk[:, :, idx].to(acc).transpose(-1, -2)) * scale
        vs = vv[:, :, idx].to(acc)
    else:
        i = part.index[:, None]
        j = np.arange(M)[None, :]
        dd = i - j + off
        colset = np.zeros(M, bool)
        colset[dec.cols] = True
        mask = dec.ctx_member[dd] & ~dec.d_member[dd] & ~colset[None, :]
        s = torch.matmul(q[:, :, idx].to(acc), kk.to(acc).transpose(-1, -2)) * scale
        vs = vv.to(acc)
    mt = torch.from_numpy(mask).to(q.device)
    s = s.masked_fill(~mt, float("-inf"))
    mx = s.detach().amax(-1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(s - mx.unsqueeze(-1))
    z = e.sum(-1)
    from maskc.planner.merge import safe_lse

    o = torch.matmul(e, vs) / torch.where(z > 0, z, torch.ones_like(z)).unsqueeze(-1)
    lse = safe_lse(mx, z)
    if part.axis == "rows":
        o_full = torch.zeros(Bt, Hq, N, D, dtype=acc, device=q.device).index_copy(2, idx, o)
        lse_full = torch.full((Bt, Hq, N), float("-inf"), dtype=acc, device=q.device).index_copy(2, idx, lse)
        o, lse = o_full, lse_full
    return o.to(q.dtype), lse.to(torch.float64 if q.dtype == torch.float64 else torch.float32)


# ==================================================================== planning
def _toeplitz_options(p: C.CostProfile, member: np.ndarray, N: int, M: int, B: int, D: int,
                      period: int = 0, phase: int = 0) -> dict[str, tuple[C.Cost, int]]:
    """Cost of each lowering of one Toeplitz piece: {lowering: (cost, blocks)}."""
    opts: dict[str, tuple[C.Cost, int]] = {}
    anyb = toeplitz_block_any(member, N, M, B, B)
    blocks = int(anyb.sum())
    d = np.arange(-(M - 1), N)
    env = toeplitz_block_any(np.ones_like(member) & ((d >= 0) if not member[: M - 1].any() else True), N, M, B, B)
    dense = blocks >= DENSE_FRACTION * max(int(env.sum()), 1)
    lbl = "dense" if dense else "bsr"
    opts[lbl] = (C.bsr_cost(p, blocks=blocks, block_q=B, block_k=B, n=N, m=M, head_dim=D, dense=dense), blocks)
    n_off = int(member.sum())
    opts["dia"] = (C.dia_cost(p, n=N, n_offsets=n_off, head_dim=D), 0)
    if period > 1:
        from maskc.planner.residue import class_groups, reduced_member

        inner = C.permute_cost(p, n=N, m=M, head_dim=D)
        rblocks = 0
        for (n, m, c), cls in class_groups(N, M, period, phase).items():
            red = reduced_member(member, N, M, period, c, n, m)
            nb = int(toeplitz_block_any(red, n, m, B, B).sum())
            rblocks += nb * len(cls)
        inner = inner + C.bsr_cost(p, blocks=rblocks, block_q=B, block_k=B, n=N, m=M, head_dim=D)
        opts["residue"] = (inner, rblocks)
    return opts


def _describe_member(member: np.ndarray, M: int, limit: int = 6) -> str:
    rs = runs(member)
    off = M - 1
    items = []
    for a, b in rs[:limit]:
        lo, hi = a - off, b - 1 - off
        items.append(f"{lo}" if lo == hi else f"[{lo}, {hi}]")
    more = f", ... ({len(rs)} runs)" if len(rs) > limit else ""
    return "d in {" + ", ".join(items) + more + "}"


def _whole_blocks(dec: Decomposition, B: int) -> int:
    N, M = dec.q_len, dec.kv_len
    anyb = toeplitz_block_any(dec.d_member, N, M, B, B)
    ctxb = toeplitz_block_any(dec.ctx_member, N, M, B, B)
    if dec.cols.size:
        cb = np.zeros(anyb.shape[1], bool)
        cb[np.unique(dec.cols // B)] = True
        anyb |= ctxb & cb[None, :]
    if dec.rows.size:
        rb = np.zeros(anyb.shape[0], bool)
        rb[np.unique(dec.rows // B)] = True
        anyb |= ctxb & rb[:, None]
    n = int(anyb.sum())
    for g in dec.generic:
        n = max(n, int(ctxb.sum()))  # unknown structure: bounded by the envelope
    return n


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


def _plan_head(pattern: Pattern, N: int, M: int, B: int, D: int, p: C.CostProfile, whole_ok: bool,
               force: dict | None = None) -> HeadPlan:
    dec = decompose(pattern, N, M)
    parts: list[Part] = []
    # ---- Toeplitz pieces: bands (runs), residue classes, isolated offsets
    rem = dec.d_member.copy()
    pieces: list[tuple[str, np.ndarray, int, int]] = []
    band = np.zeros_like(rem)
    for a, b in runs(rem):
        if b - a >= RUN_MIN:
            band[a:b] = True
    if band.any():
        pieces.append(("band", band, 0, 0))
        rem &= ~band
    d = np.arange(-(M - 1), N)
    for s, ph in dec.strides:
        cls = rem & (np.mod(d, s) == ph)
        if cls.sum() >= RESIDUE_MIN:
            pieces.append((f"stride{s}", cls, s, ph))
            rem &= ~cls
    if rem.any():
        pieces.append(("offsets", rem, 0, 0))
    chosen: list[tuple[str, np.ndarray, int, int, str, dict]] = []
    for name, mem, s, ph in pieces:
        opts = _toeplitz_options(p, mem, N, M, B, D, s, ph)
        best = min(opts, key=lambda k: opts[k][0].seconds)
        if force and name in force:
            want = force[name]
            if want == "bsr" and "dense" in opts:
                want = "dense"
            if want not in opts:
                raise ValueError(f"force: piece {name!r} cannot use {force[name]!r}; options: {sorted(opts)}")
            best = want
        chosen.append((name, mem, s, ph, best, opts))
    # merge pieces that chose the same block-sparse / DIA lowering into one part each
    for low in ("bsr", "dense", "dia"):
        group = [c for c in chosen if c[4] == low]
        if not group:
            continue
        mem = np.zeros_like(dec.d_member)
        for c in group:
            mem |= c[1]
        names = "+".join(c[0] for c in group)
        opts = _toeplitz_options(p, mem, N, M, B, D)
        cst, nb = opts.get(low, opts.get("dense" if low == "bsr" else "bsr"))
        alts = {k: v[0] for c in group for k, v in c[5].items()}
        why = "; ".join(_why(c[0], c[4], c[5]) for c in group)
        parts.append(Part(names, low, _describe_member(mem, M), pair_count(mem, N, M), cst, why, blocks=nb,
                          offsets=(np.nonzero(mem)[0] - (M - 1)) if low == "dia" else None, member=mem,
                          alternatives=alts))
    for name, mem, s, ph, low, opts in chosen:
        if low == "residue":
            parts.append(Part(name, "residue", f"{_describe_member(mem, M)} (period {s}, phase {ph})",
                              pair_count(mem, N, M), opts["residue"][0], _why(name, low, opts),
                              blocks=opts["residue"][1], member=mem, period=s, phase=ph,
                              alternatives={k: v[0] for k, v in opts.items()}))
    # ---- global columns / rows
    for axis, idx, terms in (("cols", dec.cols, dec.col_terms), ("rows", dec.rows, dec.row_terms)):
        if idx.size == 0:
            continue
        if axis == "cols":
            i = np.arange(N)[:, None]
            dd = i - idx[None, :] + M - 1
            nnz = int((dec.ctx_member[dd] & ~dec.d_member[dd]).sum())
        else:
            colset = np.zeros(M, bool)
            colset[dec.cols] = True
            dd = idx[:, None] - np.arange(M)[None, :] + M - 1
            nnz = int((dec.ctx_member[dd] & ~dec.d_member[dd] & ~colset[None, :]).sum())
        if nnz == 0:
            continue
        desc = " | ".join(t.text() for t in terms) + " minus the parts above"
        if idx.size <= GATHER_MAX:
            cst = C.gather_cost(p, rows=N if axis == "cols" else idx.size, cols=idx.size if axis == "cols" else M,
                                head_dim=D)
            parts.append(Part(axis, "gather", desc, nnz, cst,
                              f"{idx.size} {axis}: a thin dense rectangle is cheapest", index=idx, axis=axis))
        else:
            from maskc.patterns.core import And, Not

            pat_parts = [dec.ctx] if dec.ctx is not None else []
            excl = dec.d_terms + (dec.col_terms if axis == "rows" else [])
            body = And(*pat_parts, Or(*terms) if len(terms) > 1 else terms[0],
                       *( [Not(Or(*excl) if len(excl) > 1 else excl[0])] if excl else []))
            parts.append(_generic_part(axis, body, N, M, B, D, p, f"{idx.size} {axis}: too many to gather"))
    for gi, g in enumerate(dec.generic):
        parts.append(_generic_part(f"generic{gi + 1}" if not dec.is_whole else "whole", g, N, M, B, D, p,
                                   "no cheaper structure: compiled block-sparse layout" if not dec.is_whole
                                   else dec.note))
    total = C.ZERO
    for pt in parts:
        total = total + pt.cost
    whole = None
    note = ""
    if not dec.is_whole and len(parts) > 1:
        nb = _whole_blocks(dec, B)
        whole = C.bsr_cost(p, blocks=nb, block_q=B, block_k=B, n=N, m=M, head_dim=D)
        if whole_ok and not force and whole.seconds < WHOLE_MARGIN * total.seconds:
            w = _generic_part("whole", pattern.lowered(), N, M, B, D, p,
                              f"one block-sparse kernel over {nb:,} tiles (est {_ms(whole.seconds)}) beats the "
                              f"{len(parts)}-part decomposition (est {_ms(total.seconds)})")
            parts, total, note = [w], w.cost, "whole"
    if not parts:  # nothing allowed anywhere
        parts = [Part("empty", "empty", "no allowed pair", 0, C.ZERO,
                      "empty pattern: every row outputs 0 with lse -inf, no kernel runs",
                      member=np.zeros_like(dec.d_member))]
    return HeadPlan(pattern, dec, parts, total, whole, note, [pc[0] for pc in pieces])


def _why(name: str, low: str, opts: dict) -> str:
    ranked = sorted(opts.items(), key=lambda kv: kv[1][0].seconds)
    alts = ", ".join(f"{k} {_ms(v[0].seconds)}" for k, v in ranked)
    return f"{name}: {low} cheapest ({alts})"


def _generic_part(name: str, pattern: Pattern, N: int, M: int, B: int, D: int, p: C.CostProfile, why: str) -> Part:
    import maskc as mc

    lay = mc.compile(pattern, N, M, block=B)
    blocks = lay.nnz_blocks
    cst = C.bsr_cost(p, blocks=blocks, block_q=B, block_k=B, n=N, m=M, head_dim=D)
    return Part(name, "bsr", pattern.text() if len(pattern.text()) < 100 else pattern.text()[:97] + "...",
                lay.nnz, cst, why, blocks=blocks, pattern=pattern, layout=lay)


def plan(pattern: Pattern, q_len: int, kv_len: int | None = None, block: int = 128, head_dim: int = 64,
         device: str | C.CostProfile = "cpu", dtype=None, allow_whole: bool = True,
         force: dict[str, str] | None = None) -> Plan:
    """Plan attention over ``pattern`` at ``q_len`` x ``kv_len``: disjoint parts, cheapest lowering each.

    Args:
        pattern: a maskc pattern (``heads([...])`` patterns get one sub-plan per head).
        q_len, kv_len: sequence lengths (kv_len defaults to q_len).
        block: tile size of block-sparse parts (square).
        head_dim: for the cost model.
        device: cost profile: "cpu", "cuda" / "h100", "h200", or a CostProfile.
        dtype: element type for the cost model's bytes (default: the profile's).
        allow_whole: allow replacing the decomposition by one block-sparse part when
            the cost model says that is cheaper.
        force: override the cost model for Toeplitz pieces, e.g. ``{"band": "dia",
            "stride16": "residue", "offsets": "bsr"}`` (piece names as in explain()).

    Example:
        >>> import maskc as mc
        >>> from maskc.planner import plan
        >>> pl = plan(mc.causal() & (mc.window(64) | mc.stride(16)), 32768, device="h100")
        >>> [(p.name, p.lowering) for p in pl.parts]
        [('band', 'bsr'), ('stride16', 'residue')]
    """
    if not isinstance(pattern, Pattern):
        raise TypeError(f"plan needs a maskc Pattern, got {type(pattern).__name__}")
    for nm, val in (("q_len", q_len), ("block", block), ("head_dim", head_dim)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ValueError(f"plan: {nm} must be a positive int, got {val!r}")
    kv_len = q_len if kv_len is None else kv_len
    if not isinstance(kv_len, (int, np.integer)) or kv_len < 1:
        raise ValueError(f"plan: kv_len must be a positive int, got {kv_len!r}")
    prof = C.get_profile(device)
    elt = _dtype_bytes(dtype) or prof.elt_bytes
    if elt != prof.elt_bytes:
        import dataclasses

        prof = dataclasses.replace(prof, elt_bytes=elt)
    q_len, kv_len, block, head_dim = int(q_len), int(kv_len), int(block), int(head_dim)
    if pattern.n_heads is None:
        heads = [_plan_head(pattern, q_len, kv_len, block, head_dim, prof, allow_whole, force)]
        shared = True
    else:
        heads = [_plan_head(pattern.for_head(h), q_len, kv_len, block, head_dim, prof, allow_whole, force)
                 for h in range(pattern.n_heads)]
        shared = False
    if force:
        known = sorted({n for hp in heads for n in hp.pieces})
        unknown = sorted(set(force) - set(known))
        if unknown:
            raise ValueError(f"force: no piece named {unknown} in this plan; its Toeplitz pieces are {known} "
                             f"(names as in explain(): band, stride<s>, offsets)")
    return Plan(pattern, q_len, kv_len, block, head_dim, prof, heads, shared, elt)
