"""The one adapter through which a rank runs attention over its own blocks: ``(out, lse)``.

On CPU (and any device without a CUDA kernel) the batched block-sparse path of the
planner (:class:`maskc.planner.bsr.LayoutBlocks` + :func:`~maskc.planner.bsr.ell_attention`,
differentiable in q, k, v and through lse) runs once per stored layout slice. When that
path is registered as the backend ``"torch"``, this becomes
``maskc.attention(q, k, v, layout, backend="torch", scale=scale, return_lse=True)``.
On CUDA the call goes through :func:`maskc.attention` with :data:`CUDA_BACKEND`
(not exercised by the CPU test suite).

Example:
    >>> import numpy as np, torch, maskc as mc
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=2)
    >>> q = torch.randn(1, 2, 6, 4, dtype=torch.float64)
    >>> out, lse = local_attention(q, q, q, lay, scale=0.5)
    >>> ref = mc.attention(q, q, q, lay, backend="reference", scale=0.5)
    >>> bool(torch.allclose(out, ref))
    True
"""

from __future__ import annotations

import torch

from maskc.backends import attention as maskc_attention
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import Layout
from maskc.planner.bsr import LayoutBlocks, ell_attention

#: Backend used for the local parts on CUDA tensors.
CUDA_BACKEND: str = "triton"

_BLOCKS = LayoutCache("maskc.distributed.local")


class _NoKeys(torch.autograd.Function):
    """Zeros and lse = -inf for queries that read no key; zero gradients (the graph stays connected)."""

    @staticmethod
    def forward(ctx, q, k, v):
        ctx.meta = [(x.shape, x.dtype, x.device) for x in (q, k, v)]
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        out = q.new_zeros(q.shape[:3] + (v.shape[-1],))
        return out, torch.full(q.shape[:3], float("-inf"), dtype=acc, device=q.device)

    @staticmethod
    def backward(ctx, dout, dlse):
        return tuple(torch.zeros(s, dtype=d, device=dev) for s, d, dev in ctx.meta)


def _per_slice(q, k, v, layout: Layout, scale: float):
    hl, sb = layout.heads, layout.batch
    hq, hkv = q.shape[1], k.shape[1]
    rows = []
    for b in range(sb):
        bsel = slice(None) if sb == 1 else slice(b, b + 1)
        outs, lses = [], []
        for h in range(hl):
            s = b * hl + h
            src = _BLOCKS.get(layout, s, lambda s=s: LayoutBlocks(layout, head=s))
            hs = slice(None) if hl == 1 else slice(h, h + 1)
            ks = slice(None) if hl == 1 else slice(h // (hq // hkv), h // (hq // hkv) + 1)
            o, l = ell_attention(q[bsel, hs], k[bsel, ks], v[bsel, ks], src, scale=scale)
            outs.append(o)
            lses.append(l)
        rows.append((torch.cat(outs, 1), torch.cat(lses, 1)) if hl > 1 else (outs[0], lses[0]))
    if sb == 1:
        return rows[0]
    return torch.cat([o for o, _ in rows], 0), torch.cat([l for _, l in rows], 0)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: Layout | None, *,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q ``[B, Hq, n, D]`` over k / v ``[B, Hkv, m, D]`` on ``layout``'s blocks.

    ``layout=None`` means no block at all: zeros and lse = -inf. Differentiable.
    """
    if layout is None:
        return _NoKeys.apply(q, k, v)
    if q.is_cuda:
        return maskc_attention(q, k, v, layout, backend=CUDA_BACKEND, scale=scale, return_lse=True)
    return _per_slice(q, k, v, layout, scale)
