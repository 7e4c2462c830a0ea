"""``attention(q, k, v, layout)``: validate once, select a backend, run it, check what it returned.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.backends.api import attention
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
    >>> attention(np.ones((1, 1, 4, 8)), np.ones((1, 1, 4, 8)), np.ones((1, 1, 4, 8)), lay).shape
    (1, 1, 4, 8)
"""

from __future__ import annotations

import sys
from typing import Any

from maskc.backends.checks import InputInfo, validate_arrays, validate_layout, validate_scale
from maskc.backends.formats import layout_format
from maskc.backends.selection import select


def attention(
    q: Any,
    k: Any,
    v: Any,
    layout: Any,
    backend: str = "auto",
    scale: float | None = None,
    return_lse: bool = False,
    dropout_p: float = 0.0,
    dropout_seed: int | None = None,
) -> Any:
    """Block-sparse attention ``softmax(q k^T * scale + mask) v`` over the pairs a layout allows.

    Args:
        q: ``[batch, q_heads, q_len, head_dim]`` numpy array, torch tensor or jax array.
        k, v: ``[batch, kv_heads, kv_len, head_dim]``, same library, dtype and device as q;
            ``q_heads % kv_heads == 0`` (grouped-query attention).
        layout: a :class:`maskc.Layout` with ``q_len``/``kv_len`` matching, 1 head
            (broadcast) or ``q_heads`` heads, batch 1 (broadcast) or the inputs' batch;
            a :class:`~maskc.backends.formats.DiagonalLayout`; or an object with
            ``__maskc_attention__`` (a plan), to which the call is delegated.
        backend: a registered name (see :func:`available`) or "auto".
        scale: score scale, default ``1 / sqrt(head_dim)``.
        return_lse: also return the log-sum-exp ``[batch, q_heads, q_len]``.
        dropout_p: probability of dropping each attention probability (torch tensors;
            surviving ones are scaled by ``1 / (1 - p)``, as ``nn.MultiheadAttention``
            does in training). Only backends registered with ``dropout=True`` take it
            ("torch"); others refuse it with the reason.
        dropout_seed: seed of the dropout mask (default: drawn from torch's generator).

    Returns:
        out like q (same array type, dtype, device), or ``(out, lse)``. A query row with no
        allowed key gives out = 0 and lse = -inf.

    Example:
        >>> import torch, maskc as mc
        >>> lay = mc.Layout.from_dense(torch.ones(4, 4, dtype=torch.bool).tril().numpy(), block=2)
        >>> q = torch.randn(2, 4, 4, 16)
        >>> kv = torch.randn(2, 2, 4, 16)
        >>> attention(q, kv, kv, lay, backend="reference").shape
        torch.Size([2, 4, 4, 16])
    """
    if _custom_op_path(layout):  # traced by torch.compile, or layout tensors: the torch custom op
        from maskc.backends.torch_ops import compiled_attention  # lazy: imports torch
        return compiled_attention(q, k, v, layout, backend, scale, return_lse, dropout_p)
    info = validate_arrays(q, k, v)
    if layout_format(layout) is None and callable(getattr(layout, "__maskc_attention__", None)):
        if dropout_p:
            raise ValueError("dropout_p is not supported through a plan: pass the pattern's Layout, or dropout_p=0")
        return layout.__maskc_attention__(q, k, v, backend=backend, scale=scale, return_lse=return_lse)
    validate_layout(layout, info)
    s = validate_scale(scale, info.head_dim)
    p = _check_dropout(dropout_p, info)
    rec = select(info, q, backend, layout, dropout=p > 0)
    if p > 0:
        out, lse = rec.impl(q, k, v, layout, scale=s, dropout_p=p, dropout_seed=dropout_seed)
    else:
        out, lse = rec.impl(q, k, v, layout, scale=s)
    if tuple(out.shape) != tuple(q.shape) or tuple(lse.shape) != tuple(q.shape[:3]):
        raise RuntimeError(
            f"backend {rec.name!r} returned out {tuple(out.shape)} and lse {tuple(lse.shape)}, "
            f"expected {tuple(q.shape)} and {tuple(q.shape[:3])}: a bug in that backend"
        )
    return (out, lse) if return_lse else out


def _custom_op_path(layout: Any) -> bool:
    """True while ``torch.compile`` traces, or for a ``torch_ops.LayoutTensors`` layout."""
    if "torch" in sys.modules and sys.modules["torch"].compiler.is_compiling():
        return True
    ops = sys.modules.get("maskc.backends.torch_ops")
    return ops is not None and isinstance(layout, ops.LayoutTensors)


def _check_dropout(dropout_p: Any, info: InputInfo) -> float:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)):
        raise TypeError(f"dropout_p must be a float in [0, 1), got {type(dropout_p).__name__}")
    p = float(dropout_p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if p > 0 and info.lib != "torch":
        raise ValueError(f"dropout_p > 0 needs torch tensors (the torch backend), got {info.lib} arrays")
    return p
