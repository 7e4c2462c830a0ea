"""The one adapter through which a rank runs attention over its own blocks: ``(out, lse)``.

Every local part goes through :func:`maskc.attention` with ``return_lse=True``: on CPU
(and any device without a CUDA kernel) the ``"torch"`` backend (batched block-sparse,
differentiable in q, k, v and through lse; it reads every stored slice of a batched or
per-head layout itself); on CUDA :data:`CUDA_BACKEND` (not exercised by the CPU test suite).

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
from maskc.ir.layout import Layout

#: Backend used for the local parts on CUDA tensors.
CUDA_BACKEND: str = "triton"
#: Backend used for the local parts everywhere else.
CPU_BACKEND: str = "torch"


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


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: Layout | None, *,
                    scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q ``[B, Hq, n, D]`` over k / v ``[B, Hkv, m, D]`` on ``layout``'s blocks.

    ``layout=None`` means no block at all: zeros and lse = -inf. Differentiable.
    """
    if layout is None:
        return _NoKeys.apply(q, k, v)
    backend = CUDA_BACKEND if q.is_cuda else CPU_BACKEND
    return maskc_attention(q, k, v, layout, backend=backend, scale=scale, return_lse=True)
