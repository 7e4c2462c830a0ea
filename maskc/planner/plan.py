"""``mc.plan``: split a pattern into disjoint parts, lower each to its cheapest kernel, merge exactly.

The planner decides (:mod:`maskc.planner.decide`: pattern -> parts with costs and
reasons), the backend registry executes (:mod:`maskc.planner.execute`: every part is an
ordinary ``mc.attention`` call on a block or diagonal layout) and
:mod:`maskc.planner.explain` says why. Lowerings (see docs/planner.md):

* ``bsr``     block-sparse over the part's non-empty tiles (any block backend: torch on
              CPU, triton on CUDA);
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

import dataclasses
import math

import numpy as np
import torch

from maskc.backends.checks import validate_arrays
from maskc.backends.opaque_op import register_runner, registered_attention
from maskc.limits import MAX_LEN, check_int
from maskc.patterns.core import Pattern
from maskc.planner import cost as C
from maskc.planner.decide import HeadPlan, Part, decide_heads, dtype_bytes
from maskc.planner.execute import PlanRunner
from maskc.planner.explain import explain, part_mask, speedups

Tensor = torch.Tensor


class Plan:
    """An execution plan: disjoint parts, one lowering each, an exact LSE merge.

    Build with :func:`plan`. Run with :meth:`run` or ``mc.attention(q, k, v, plan)``;
    check with ``mc.crosscheck(plan)`` (each part and the merged result against float64).
    Under ``torch.compile(fullgraph=True)`` a run is one opaque custom op (one graph per plan).
    """

    def __init__(self, pattern: Pattern, q_len: int, kv_len: int, block: int, head_dim: int,
                 profile: C.CostProfile, heads: list[HeadPlan], shared: bool, elt: int):
        self.pattern, self.q_len, self.kv_len, self.block = pattern, q_len, kv_len, block
        self.head_dim, self.profile, self.heads, self.shared, self.elt = head_dim, profile, heads, shared, elt
        self._runner = PlanRunner(self)

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
        return [part_mask(part, hp, self.q_len, self.kv_len) for part in hp.parts]

    def __repr__(self) -> str:
        return f"Plan({self.pattern.text()}, q_len={self.q_len}, parts={[p.lowering for p in self.parts]})"

    def explain(self) -> str:
        """Each part, its lowering, size, estimated cost and why; then the token- vs block-level trade-off.

        Example:
            >>> import maskc as mc
            >>> from maskc.planner import plan
            >>> print(plan(mc.causal() & mc.window(4), 64, block=16).explain().splitlines()[0])
            plan for causal() & window(4): q_len=64 kv_len=64 block=16 head_dim=64 profile=cpu
        """
        return explain(self)

    @property
    def speedup_estimate(self) -> float:
        """Estimated dense-SDPA time / plan time (slowest head), from the cost model; < 1 means use SDPA.

        Example:
            >>> import maskc as mc
            >>> from maskc.planner import plan
            >>> plan(mc.causal() & (mc.window(64) | mc.stride(16)), 32768, device="h100").speedup_estimate > 2
            True
        """
        return min(speedups(self))

    # ------------------------------------------------------------------- run
    def __maskc_attention__(self, q, k, v, *, backend: str = "auto", scale: float | None = None,
                            return_lse: bool = False):
        """Hook used by ``mc.attention(q, k, v, plan, ...)``."""
        return self.run(q, k, v, backend=backend, scale=scale, return_lse=return_lse)

    def __maskc_crosscheck__(self, backend: str = "auto", dia: str = "auto"):
        """Hook used by ``mc.crosscheck(plan)``: each part and the merged result, with their exact layouts."""
        return self._runner.check_items(backend, dia)

    def run(self, q: Tensor, k: Tensor, v: Tensor, *, backend: str = "auto", scale: float | None = None,
            return_lse: bool = False, dia: str = "auto"):
        """Run the plan: q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` torch tensors (GQA).

        ``backend`` names the registered backend the block-sparse parts use ("auto": the
        registry's choice, torch on CPU, triton on CUDA). ``dia`` the one of DIA parts:
        "auto", "torch" (the ``dia`` backend), "triton" (``dia-triton``) or a registered
        name. Returns out (and lse when ``return_lse``); ``last_choice()`` then names each
        part's backend.
        """
        if not all(isinstance(x, torch.Tensor) for x in (q, k, v)):
            raise TypeError("Plan.run takes torch tensors q, k, v")
        if torch.compiler.is_compiling():  # traced: the whole plan is one opaque custom op (numpy stays inside)
            return self._traced(q, k, v, backend, scale, return_lse, dia)
        info = validate_arrays(q, k, v)
        if info.q_len != self.q_len or info.kv_len != self.kv_len:
            raise ValueError(f"plan is for q_len={self.q_len}, kv_len={self.kv_len}; got {info.q_len} and {info.kv_len}")
        if not self.shared and info.q_heads != len(self.heads):
            raise ValueError(f"plan has {len(self.heads)} per-head patterns, q has {info.q_heads} heads")
        scale = 1.0 / math.sqrt(info.head_dim) if scale is None else float(scale)
        out, lse = self._runner.run(q, k, v, backend, scale, dia)
        return (out, lse) if return_lse else out

    def _traced(self, q: Tensor, k: Tensor, v: Tensor, backend: str, scale: float | None, return_lse: bool,
                dia: str):
        """What :meth:`run` gives ``torch.compile``: one ``maskc::registered_attention`` node whose eager
        implementation is :meth:`run` (every part, any backend, the merge); its backward reruns it under autograd."""
        if q.dim() != 4 or q.shape[2] != self.q_len or k.shape[2] != self.kv_len:
            raise ValueError(f"plan is for q_len={self.q_len}, kv_len={self.kv_len}; got q {tuple(q.shape)}, "
                             f"k {tuple(k.shape)}")
        out, lse = registered_attention(q, k, v, None, [], _runner_token(self, backend, scale, dia))
        return (out, lse) if return_lse else out


@torch._dynamo.assume_constant_result
def _runner_token(pl: Plan, backend: str, scale: float | None, dia: str) -> str:
    """The op's token for running ``pl`` with these settings (run once, at trace time)."""
    def run(q: Tensor, k: Tensor, v: Tensor, extra: Tensor | None, ints: list) -> tuple[Tensor, Tensor]:
        return pl.run(q, k, v, backend=backend, scale=scale, return_lse=True, dia=dia)

    return register_runner(("plan", id(pl), backend, scale, dia), run)


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
    q_len = check_int(q_len, "plan: q_len", lo=1, hi=MAX_LEN)
    kv_len = q_len if kv_len is None else check_int(kv_len, "plan: kv_len", lo=1, hi=MAX_LEN)
    block = check_int(block, "plan: block", lo=1, hi=4096)
    head_dim = check_int(head_dim, "plan: head_dim", lo=1, hi=1 << 16)
    prof = C.get_profile(device)
    elt = dtype_bytes(dtype) or prof.elt_bytes
    if elt != prof.elt_bytes:
        prof = dataclasses.replace(prof, elt_bytes=elt)
    heads = decide_heads(pattern, q_len, kv_len, block, head_dim, prof, allow_whole, force)
    return Plan(pattern, q_len, kv_len, block, head_dim, prof, heads, pattern.n_heads is None, elt)
