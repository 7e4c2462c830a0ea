"""Running a plan: every part goes through the backend registry, then the exact log-sum-exp merge.

Each lowering hands the registry an ordinary input (:func:`maskc.backends.attention`):

* ``bsr`` / ``dense``: a block :class:`maskc.Layout` — compiled for generic parts,
  built straight from the membership array for Toeplitz parts
  (:func:`maskc.planner.toeplitz.toeplitz_layout`);
* ``dia``: a :class:`~maskc.backends.formats.DiagonalLayout` (format "diagonal"), run by
  the ``dia`` backend (torch) or ``dia-triton`` (registered with the builtins: the Triton DIA kernels
  of :mod:`maskc.backends.dia_triton`, CUDA or the interpreter);
* ``residue``: tokens permuted into residue classes (:mod:`maskc.planner.residue`),
  each class a Toeplitz layout of its own;
* ``gather``: the global columns (rows) gathered out of K / V (q), a thin block layout
  over them, the rows scattered back;
* ``empty``: zeros and lse -inf, no call.

Layouts a plan builds are kept by its :class:`PlanRunner`. A run records one
:func:`maskc.backends.last_choice` whose ``parts`` name each part's backend.

Example:
    >>> import torch, maskc as mc, maskc.backends as mb
    >>> from maskc.planner import plan
    >>> pl = plan(mc.causal() & (mc.window(8) | mc.offsets("squares")), 128, block=32, allow_whole=False,
    ...           force={"offsets": "dia"})
    >>> q = torch.randn(1, 2, 128, 16)
    >>> _ = pl.run(q, q, q)
    >>> mb.last_choice().name, mb.last_choice().parts
    ('torch+dia', (('band', 'torch'), ('offsets', 'dia')))
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from maskc.backends import DiagonalLayout, attention, last_choice, record_choice
from maskc.backends.crosscheck import CheckItem
from maskc.backends.softmax import accumulation_dtype
from maskc.compiler import compile as compile_pattern
from maskc.ir.layout import Layout
from maskc.planner.decide import HeadPlan, Part
from maskc.planner.explain import part_mask
from maskc.planner.merge import merge_lse
from maskc.planner.residue import class_groups, reduced_member
from maskc.planner.toeplitz import toeplitz_layout

Tensor = torch.Tensor


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)

#: ``Plan.run(dia=...)`` names: the backend each runs DIA parts on.
DIA_BACKENDS: dict[str, str] = {"auto": "auto", "torch": "dia", "triton": "dia-triton"}






def _empty(q: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    lse = torch.full(q.shape[:3], float("-inf"), dtype=accumulation_dtype(q.dtype), device=q.device)
    return q.new_zeros(q.shape[:3] + (v.shape[3],)), lse


class PlanRunner:
    """Executes one plan's parts through the registry; keeps the layouts it builds."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self._layouts: dict[Any, Any] = {}

    # ------------------------------------------------------------- layouts
    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._layouts:
            self._layouts[key] = make()
        return self._layouts[key]

    def toeplitz(self, member: np.ndarray, n: int, m: int) -> Layout:
        """The block layout of a Toeplitz membership at n x m (cached)."""
        return self._cached(("toeplitz", member.tobytes(), n, m),
                            lambda: toeplitz_layout(member, n, m, self.plan.block))

    def part_layout(self, part: Part) -> Layout:
        """The block layout of a ``bsr`` / ``dense`` part."""
        if part.layout is not None:
            return part.layout
        if part.pattern is not None:
            pl = self.plan
            return self._cached(("compiled", id(part)), lambda: compile_pattern(part.pattern, pl.q_len, pl.kv_len,
                                                                                block=pl.block))
        return self.toeplitz(part.member, self.plan.q_len, self.plan.kv_len)

    def gather_layout(self, part: Part, hp: HeadPlan) -> Layout:
        """The thin layout of a gather part over its gathered columns (rows)."""
        def make() -> Layout:
            N, M, B = self.plan.q_len, self.plan.kv_len, self.plan.block
            dec, idx = hp.dec, part.index
            if part.axis == "cols":
                dd = np.arange(N)[:, None] - idx[None, :] + M - 1
                mask = dec.ctx_member[dd] & ~dec.d_member[dd]
                return Layout.from_dense(mask, block=(B, min(B, idx.size)))
            colset = np.zeros(M, bool)
            colset[dec.cols] = True
            dd = idx[:, None] - np.arange(M)[None, :] + M - 1
            mask = dec.ctx_member[dd] & ~dec.d_member[dd] & ~colset[None, :]
            return Layout.from_dense(mask, block=(min(B, idx.size), B))

        return self._cached(("gather", id(part)), make)

    # ----------------------------------------------------------------- run
    def run(self, q: Tensor, k: Tensor, v: Tensor, backend: str, scale: float, dia: str) -> tuple[Tensor, Tensor]:
        """All heads, merged per head; records the parts' backends in ``last_choice()``."""
        pl = self.plan
        choices: list[tuple[str, str]] = []
        if pl.shared:
            out, lse = self.run_head(pl.heads[0], q, k, v, backend, scale, dia, choices, "")
        else:
            g = q.shape[1] // k.shape[1]
            res = [self.run_head(hp, q[:, h: h + 1], k[:, h // g: h // g + 1], v[:, h // g: h // g + 1],
                                 backend, scale, dia, choices, f"head{h}:") for h, hp in enumerate(pl.heads)]
            out, lse = torch.cat([r[0] for r in res], dim=1), torch.cat([r[1] for r in res], dim=1)
        used = list(dict.fromkeys(name for _, name in choices)) or ["none"]
        record_choice("+".join(used), "plan: " + ", ".join(f"{p} -> {b}" for p, b in choices), tuple(choices))
        return out, lse

    def run_head(self, hp: HeadPlan, q, k, v, backend, scale, dia, choices, prefix) -> tuple[Tensor, Tensor]:
        """One head plan: every part, then the exact merge."""
        return merge_lse([self.run_part(hp, part, q, k, v, backend, scale, dia, choices, prefix + part.name)
                          for part in hp.parts])

    def run_part(self, hp: HeadPlan, part: Part, q, k, v, backend, scale, dia, choices, label) -> tuple[Tensor, Tensor]:
        """One part's ``(out, lse)`` through the registry."""
        def attend(qq, kk, vv, layout, name):
            res = attention(qq, kk, vv, layout, backend=name, scale=scale, return_lse=True)
            choices.append((label, last_choice().name))
            return res

        low = part.lowering
        if low in ("bsr", "dense"):
            return attend(q, k, v, self.part_layout(part), backend)
        if low == "dia":
            lay = self._cached(("dia", id(part)),
                               lambda: DiagonalLayout.from_offsets(part.offsets, self.plan.q_len, self.plan.kv_len))
            return attend(q, k, v, lay, DIA_BACKENDS.get(dia, dia))
        if low == "residue":
            def inner(qg, kg, vg, red, n, m):
                return attend(qg, kg, vg, self.toeplitz(red, n, m), backend)

            return residue_attention(q, k, v, part.member, part.period, part.phase, inner)
        if low == "gather":
            idx = torch.from_numpy(part.index).to(q.device)
            lay = self.gather_layout(part, hp)
            if part.axis == "cols":
                return attend(q, k.index_select(2, idx), v.index_select(2, idx), lay, backend)
            o, lse = attend(q.index_select(2, idx), k, v, lay, backend)
            out0, lse0 = _empty(q, v)
            return out0.to(o.dtype).index_copy(2, idx, o), lse0.to(lse.dtype).index_copy(2, idx, lse)
        if low == "empty":
            return _empty(q, v)
        raise RuntimeError(f"unknown lowering {low!r}")  # pragma: no cover

    # ----------------------------------------------------------- crosscheck
    def check_items(self, backend: str = "auto", dia: str = "auto") -> list[CheckItem]:
        """Each part (per head for a per-head plan) and the merged result, with the layout of its exact pairs."""
        pl = self.plan
        items = []
        for h, hp in enumerate(pl.heads):
            for part in hp.parts:
                def run(q, k, v, scale, hp=hp, part=part):
                    return self.run_part(hp, part, q, k, v, backend, scale, dia, [], part.name)

                lay = Layout.from_dense(part_mask(part, hp, pl.q_len, pl.kv_len), block=pl.block)
                head = None if pl.shared else h
                items.append(CheckItem(f"{'' if head is None else f'head{h}:'}{part.name}:{part.lowering}", run, lay,
                                       head))
        whole = compile_pattern(pl.pattern, pl.q_len, pl.kv_len, block=pl.block, heads=pl.pattern.n_heads)

        def run_all(q, k, v, scale):
            return self.run(q, k, v, backend, scale, dia)

        items.append(CheckItem("merged", run_all, whole, None))
        return items


def residue_attention(q: Tensor, k: Tensor, v: Tensor, member: np.ndarray, period: int, phase: int,
                      inner: Callable[..., tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Attention over a periodic part by permuting tokens into residue classes.

    ``member`` is the part's membership over d (every allowed d must satisfy
    d mod period == phase). ``inner(q, k, v, reduced_member, n, m)`` runs one class
    problem and returns ``(out, lse)``. Differentiable when ``inner`` is.
    """
    s = int(period)
    B, H, N, D = q.shape
    M = k.shape[2]
    d = np.arange(-(M - 1), N)
    if np.any(member & (np.mod(d, s) != phase)):
        raise ValueError(f"residue part has offsets outside the class d mod {s} == {phase}")
    n_max, m_max = _cdiv(N, s), _cdiv(M, s)
    qc = torch.nn.functional.pad(q, (0, 0, 0, n_max * s - N)).view(B, H, n_max, s, D).transpose(2, 3)
    kc = torch.nn.functional.pad(k, (0, 0, 0, m_max * s - M)).view(B, k.shape[1], m_max, s, D).transpose(2, 3)
    vc = torch.nn.functional.pad(v, (0, 0, 0, m_max * s - M)).view(B, v.shape[1], m_max, s, D).transpose(2, 3)
    lse_dtype = accumulation_dtype(q.dtype)
    outs: list[Tensor | None] = [None] * s
    lses: list[Tensor | None] = [None] * s
    for (n, m, c), cls in class_groups(N, M, s, phase).items():
        red = reduced_member(member, N, M, s, c, n, m)
        g = len(cls)
        a_idx = torch.tensor(cls, device=q.device)
        b_idx = torch.tensor([(a - phase) % s for a in cls], device=q.device)
        # [B, H, g, n, D] -> [B*g, H, n, D]: classes become batch entries
        qg = qc[:, :, a_idx, :n].transpose(1, 2).reshape(B * g, H, n, D)
        kg = kc[:, :, b_idx, :m].transpose(1, 2).reshape(B * g, k.shape[1], m, D)
        vg = vc[:, :, b_idx, :m].transpose(1, 2).reshape(B * g, v.shape[1], m, D)
        o, l = inner(qg, kg, vg, red, n, m) if red.any() else _empty(qg, vg)
        o = o.reshape(B, g, H, n, D)
        l = l.reshape(B, g, H, n).to(lse_dtype)
        for t, a in enumerate(cls):
            outs[a] = torch.nn.functional.pad(o[:, t], (0, 0, 0, n_max - n))
            lses[a] = torch.nn.functional.pad(l[:, t], (0, n_max - n), value=float("-inf"))
    for a in range(s):
        if outs[a] is None:
            outs[a] = q.new_zeros(B, H, n_max, D)
            lses[a] = torch.full((B, H, n_max), float("-inf"), dtype=lse_dtype, device=q.device)
    out = torch.stack(outs, dim=3).reshape(B, H, n_max * s, D)[:, :, :N]  # [B,H,n_max,s,D] -> tokens
    lse = torch.stack(lses, dim=3).reshape(B, H, n_max * s)[:, :, :N]
    return out, lse
