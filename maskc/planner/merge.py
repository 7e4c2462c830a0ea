"""Exact log-sum-exp merge of attention over disjoint parts.

If the allowed keys of a query row are split into disjoint sets P_1..P_n and part p
returns ``out_p = softmax over P_p`` and ``lse_p = logsumexp of the scores over P_p``,
then attention over the union is::

    lse = logsumexp_p lse_p
    out = sum_p exp(lse_p - lse) * out_p

A part whose row is empty has ``lse_p = -inf`` and contributes nothing; a row empty in
every part gives ``out = 0`` and ``lse = -inf``. The merge is written with "double
where" guards so that neither the forward nor the backward pass produces NaN on such
rows (torch.logsumexp's gradient is NaN on an all ``-inf`` row).

Example:
    >>> import torch
    >>> from maskc.planner.merge import merge_lse
    >>> o1, l1 = torch.ones(1, 1, 2, 4), torch.tensor([[[0.0, float("-inf")]]])
    >>> o2, l2 = 3 * torch.ones(1, 1, 2, 4), torch.tensor([[[0.0, float("-inf")]]])
    >>> out, lse = merge_lse([(o1, l1), (o2, l2)])
    >>> out[0, 0, :, 0].tolist(), lse[0, 0].tolist()
    ([2.0, 0.0], [0.6931471824645996, -inf])
"""

from __future__ import annotations

from typing import Sequence

import torch

from maskc.backends.softmax import safe_lse

Tensor = torch.Tensor


def merge_lse(parts: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Merge ``[(out_p [.., L, D], lse_p [.., L]), ...]`` of disjoint parts exactly.

    Returns ``(out, lse)`` with out in the dtype of the first part's out and lse float32
    (or float64 if any part's lse is float64). Differentiable; NaN-free on empty rows.

    Raises:
        ValueError: no parts, or shapes that do not agree.
    """
    if not parts:
        raise ValueError("merge_lse needs at least one (out, lse) part")
    out0, lse0 = parts[0]
    for o, l in parts:
        if tuple(o.shape) != tuple(out0.shape) or tuple(l.shape) != tuple(lse0.shape):
            raise ValueError(
                f"merge_lse: part shapes differ: out {tuple(o.shape)} / lse {tuple(l.shape)} vs "
                f"out {tuple(out0.shape)} / lse {tuple(lse0.shape)}"
            )
        if tuple(o.shape[:-1]) != tuple(l.shape):
            raise ValueError(f"merge_lse: out {tuple(o.shape)} and lse {tuple(l.shape)} disagree")
    lse_dtype = torch.float64 if any(l.dtype == torch.float64 for _, l in parts) else torch.float32
    acc_dtype = torch.float64 if lse_dtype == torch.float64 or out0.dtype == torch.float64 else torch.float32
    if len(parts) == 1:
        return out0, lse0.to(lse_dtype)
    lses = torch.stack([l.to(acc_dtype) for _, l in parts])  # [P, ..., L]
    mx = lses.detach().amax(dim=0)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    w = torch.exp(lses - mx)  # exp(-inf) = 0: empty parts vanish
    z = w.sum(dim=0)
    pos = z > 0
    zs = torch.where(pos, z, torch.ones_like(z))
    out = None
    for p, (o, _) in enumerate(parts):
        term = o.to(acc_dtype) * (w[p] / zs).unsqueeze(-1)
        out = term if out is None else out + term
    lse = safe_lse(mx, z)
    return out.to(out0.dtype), lse.to(lse_dtype)
