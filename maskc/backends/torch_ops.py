"""maskc attention as ``torch.library`` custom ops, so it runs under ``torch.compile(fullgraph=True)``.

The torch backend (:mod:`maskc.backends.torch_backend`) walks a :class:`~maskc.ir.Layout`
with numpy, Python loops and caches: none of that can be traced by dynamo. Here it is
wrapped in two opaque custom ops, ``maskc::block_sparse_attention`` (forward) and
``maskc::block_sparse_attention_backward`` (registered as its autograd formula), each
with a fake (meta) implementation, so a compiled graph holds one node per attention
call and no graph break.

The layout enters the ops as tensors (:class:`LayoutTensors`): ``row_ptr`` (fixed shape
``[slices, n_qb + 1]``) and the block lists ``col_idx`` / ``kind`` / ``partial_id`` and
partial ``masks`` padded to a bound (default: every block of every slice). A new layout
of the same sizes (a new document mask, say) is then new tensor *data* of the same
shapes: the compiled graph is reused, no recompile. Compile the pattern (numba) and
build the tensors **outside** the compiled function and pass them in as an argument.

Inside the op the tensors are turned back into a Layout (kept in a small cache keyed on
their content, so the chunk plans of the torch backend are built once per distinct
layout) and the torch backend runs eagerly. The backward recomputes the forward under
autograd (twice the forward's work, O(chunk) extra memory) and returns its gradients.

Only the torch backend runs a Layout under compile (:func:`compiled_attention` refuses
other names; a :class:`~maskc.planner.Plan` traces as one opaque op of its own, see
:mod:`maskc.backends.opaque_op`): for FlexAttention pass ``mc.export.to_flex_block_mask(layout)`` into the compiled
function and call torch's ``flex_attention`` there (it traces); the triton kernels are
CUDA-only and untested under compile here. Dropout is
refused under compile (the seed would be a traced random number); train the compiled
model with ``dropout_p=0`` or run dropout eagerly.

Example:
    >>> import torch, maskc as mc
    >>> from maskc.backends import torch_ops
    >>> lay = mc.compile(mc.causal() & mc.window(3), q_len=10, block=4)
    >>> lt = torch_ops.layout_tensors(lay)
    >>> q = torch.randn(1, 2, 10, 8)
    >>> out = torch_ops.attention(q, q, q, lt)  # the same call traces under torch.compile(fullgraph=True)
    >>> torch.allclose(out, mc.attention(q, q, q, lay, backend="torch"), atol=1e-6)
    True
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from maskc.backends.api import attention as maskc_attention
from maskc.backends.opaque_op import register_runner, registered_attention
from maskc.backends.torch_backend import attention_torch
from maskc.ir.layout import Layout

Tensor = torch.Tensor

#: Distinct layouts rebuilt from tensors kept alive (with their chunk plans) inside the ops.
LAYOUT_CACHE_SIZE: int = 16
_LAYOUTS: "OrderedDict[tuple, Layout]" = OrderedDict()


@dataclass(frozen=True)
class LayoutTensors:
    """A Layout as tensors of fixed shapes (block lists padded to ``max_blocks``, masks to ``max_masks``).

    Pass it to a compiled function as an argument: its tensors are graph inputs, its
    ints (sizes) are guarded constants. Build it with :func:`layout_tensors`.
    """

    row_ptr: Tensor  # int64 [slices, n_qb + 1]
    col_idx: Tensor  # int64 [max_blocks]
    kind: Tensor  # int8 [max_blocks]
    partial_id: Tensor  # int64 [max_blocks]
    masks: Tensor  # uint8 [max_masks, block_q, ceil(block_k / 8)]
    q_len: int
    kv_len: int
    block_q: int
    block_k: int
    q_offset: int
    batch: int
    heads: int  # stored heads (1 broadcasts over any head count)


def layout_tensors(layout: Layout, max_blocks: int | None = None, max_masks: int | None = None,
                   device: Any = None) -> LayoutTensors:
    """The tensors of ``layout`` padded to ``max_blocks`` blocks and ``max_masks`` partial masks.

    The defaults are the largest any layout of these sizes can need (every block of
    every slice), so every layout of the same ``(q_len, kv_len, block, slices)`` gives
    tensors of the same shapes. Pass smaller bounds to save memory; a layout over them
    is refused with the numbers.

    Example:
        >>> import maskc as mc
        >>> lt = layout_tensors(mc.compile(mc.causal(), q_len=9, block=4))
        >>> tuple(lt.row_ptr.shape), tuple(lt.col_idx.shape), tuple(lt.masks.shape)
        ((1, 4), (9,), (9, 4, 1))
    """
    if not isinstance(layout, Layout):
        raise TypeError(f"layout_tensors takes a maskc.Layout, got {type(layout).__name__}")
    bound = layout.n_slices * layout.n_qb * layout.n_kb
    nb = bound if max_blocks is None else int(max_blocks)
    nm = bound if max_masks is None else int(max_masks)
    if layout.nnz_blocks > nb or layout.n_unique_masks > nm:
        raise ValueError(f"layout has {layout.nnz_blocks} blocks and {layout.n_unique_masks} partial masks, over the "
                         f"bounds max_blocks={nb} / max_masks={nm}: raise the bounds (default: every block)")

    def pad(a: np.ndarray, n: int, fill: int) -> Tensor:
        out = np.full((n,) + a.shape[1:], fill, dtype=a.dtype)
        out[: a.shape[0]] = a
        return torch.from_numpy(out).to(device)

    return LayoutTensors(
        torch.from_numpy(np.array(layout.row_ptr, dtype=np.int64)).to(device),
        pad(layout.col_idx.astype(np.int64), nb, 0), pad(layout.kind.astype(np.int8), nb, 0),
        pad(layout.partial_id.astype(np.int64), nb, -1), pad(layout.masks.astype(np.uint8), nm, 0),
        int(layout.q_len), int(layout.kv_len), int(layout.block_q), int(layout.block_k), int(layout.q_offset),
        int(layout.batch), int(layout.heads))


def _layout_of(row_ptr: Tensor, col_idx: Tensor, kind: Tensor, partial_id: Tensor, masks: Tensor,
               sizes: list[int]) -> Layout:
    """The Layout these (real) tensors hold, from a content-keyed cache (validated once per distinct content)."""
    arrs = [t.detach().cpu().numpy() for t in (row_ptr, col_idx, kind, partial_id, masks)]
    rp, ci, kd, pid, mk = arrs
    nnz = int(rp[-1, -1])
    pid = pid[:nnz]
    n_masks = int(pid.max()) + 1 if nnz and pid.size and pid.max() >= 0 else 0
    parts = (rp, ci[:nnz], kd[:nnz], pid, mk[:n_masks])
    digest = hashlib.blake2b(b"".join(np.ascontiguousarray(a).tobytes() for a in parts), digest_size=16).digest()
    key = (tuple(sizes), rp.shape, digest)
    hit = _LAYOUTS.get(key)
    if hit is not None:
        _LAYOUTS.move_to_end(key)
        return hit
    q_len, kv_len, block_q, block_k, q_offset, batch = sizes
    lay = Layout(q_len=q_len, kv_len=kv_len, block_q=block_q, block_k=block_k, row_ptr=rp.copy(),
                 col_idx=parts[1].astype(np.int32), kind=parts[2].copy(), partial_id=pid.astype(np.int32),
                 masks=parts[4].copy(), pattern_text="<tensors>", q_offset=q_offset, batch=batch).validate()
    _LAYOUTS[key] = lay
    while len(_LAYOUTS) > LAYOUT_CACHE_SIZE:
        _LAYOUTS.popitem(last=False)
    return lay


@torch._dynamo.assume_constant_result
def _constant_tensors(layout: Layout, device: torch.device) -> LayoutTensors:
    """:func:`layout_tensors` of a Layout that is a constant of a traced graph (run once, at trace time)."""
    return layout_tensors(layout, device=device)


def _lse_dtype(q: Tensor) -> torch.dtype:
    return torch.float64 if q.dtype == torch.float64 else torch.float32


@torch.library.custom_op("maskc::block_sparse_attention", mutates_args=())
def _forward_op(q: Tensor, k: Tensor, v: Tensor, row_ptr: Tensor, col_idx: Tensor, kind: Tensor,
                partial_id: Tensor, masks: Tensor, sizes: list[int], scale: float) -> tuple[Tensor, Tensor]:
    lay = _layout_of(row_ptr, col_idx, kind, partial_id, masks, sizes)
    with torch.no_grad():
        out, lse = attention_torch(q, k, v, lay, scale=scale)
    return out.contiguous(), lse.contiguous()


@_forward_op.register_fake
def _forward_fake(q, k, v, row_ptr, col_idx, kind, partial_id, masks, sizes, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=_lse_dtype(q))  # contiguous, as the real op


@torch.library.custom_op("maskc::block_sparse_attention_backward", mutates_args=())
def _backward_op(dout: Tensor, dlse: Tensor, q: Tensor, k: Tensor, v: Tensor, row_ptr: Tensor, col_idx: Tensor,
                 kind: Tensor, partial_id: Tensor, masks: Tensor, sizes: list[int],
                 scale: float) -> tuple[Tensor, Tensor, Tensor]:
    lay = _layout_of(row_ptr, col_idx, kind, partial_id, masks, sizes)
    with torch.enable_grad():
        qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
        out, lse = attention_torch(qq, kk, vv, lay, scale=scale)
        dq, dk, dv = torch.autograd.grad((out, lse), (qq, kk, vv), (dout, dlse))
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@_backward_op.register_fake
def _backward_fake(dout, dlse, q, k, v, row_ptr, col_idx, kind, partial_id, masks, sizes, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, row_ptr, col_idx, kind, partial_id, masks, sizes, scale = inputs
    ctx.save_for_backward(q, k, v, row_ptr, col_idx, kind, partial_id, masks)
    ctx.sizes, ctx.scale = sizes, scale


def _backward(ctx, dout, dlse):
    q, k, v, row_ptr, col_idx, kind, partial_id, masks = ctx.saved_tensors
    dout = torch.zeros_like(q) if dout is None else dout
    dlse = q.new_zeros(q.shape[:3], dtype=_lse_dtype(q)) if dlse is None else dlse
    dq, dk, dv = _backward_op(dout, dlse, q, k, v, row_ptr, col_idx, kind, partial_id, masks, ctx.sizes, ctx.scale)
    return dq, dk, dv, None, None, None, None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def attention(q: Tensor, k: Tensor, v: Tensor, layout: LayoutTensors | Layout, scale: float | None = None,
              return_lse: bool = False) -> Any:
    """Block-sparse attention through the custom op: traceable by ``torch.compile(fullgraph=True)``.

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]``; ``layout`` a :class:`LayoutTensors`
    (pass it into the compiled function: a new layout of the same sizes reuses the graph)
    or a Layout (converted here: fine eagerly; under compile a Layout held by the model
    is a constant of the graph). Returns out like q, or ``(out, lse)``.

    Example:
        >>> import torch, maskc as mc
        >>> lt = layout_tensors(mc.compile(mc.causal(), q_len=6, block=4))
        >>> q = torch.randn(1, 1, 6, 4, requires_grad=True)
        >>> attention(q, q, q, lt).sum().backward()
        >>> q.grad.shape
        torch.Size([1, 1, 6, 4])
    """
    lt = layout if isinstance(layout, LayoutTensors) else _constant_tensors(layout, q.device)
    if not isinstance(lt, LayoutTensors):
        raise TypeError(f"layout must be a maskc.Layout or LayoutTensors, got {type(layout).__name__}")
    B, Hq, N, D = q.shape
    Hkv, M = k.shape[1], k.shape[2]
    if (N, M) != (lt.q_len, lt.kv_len) or Hq % Hkv or lt.heads not in (1, Hq) or lt.batch not in (1, B):
        raise ValueError(f"inputs q {tuple(q.shape)}, k {tuple(k.shape)} do not fit the layout "
                         f"(q_len={lt.q_len}, kv_len={lt.kv_len}, heads={lt.heads}, batch={lt.batch})")
    s = float(D) ** -0.5 if scale is None else float(scale)
    sizes = [lt.q_len, lt.kv_len, lt.block_q, lt.block_k, lt.q_offset, lt.batch]
    out, lse = _forward_op(q, k, v, lt.row_ptr, lt.col_idx, lt.kind, lt.partial_id, lt.masks, sizes, s)
    return (out, lse) if return_lse else out


def compiled_attention(q: Any, k: Any, v: Any, layout: Any, backend: str, scale: float | None, return_lse: bool,
                       dropout_p: float) -> Any:
    """What ``mc.attention`` runs while ``torch.compile`` traces it: the custom op, or a refusal naming the fix.

    Example:
        >>> import torch, maskc as mc
        >>> q = torch.randn(1, 1, 4, 8)
        >>> compiled_attention(q, q, q, mc.compile(mc.causal(), q_len=4), "torch", None, False, 0.0).shape
        torch.Size([1, 1, 4, 8])
    """
    if dropout_p:
        raise ValueError("dropout_p > 0 is not supported under torch.compile (its seed would be traced); "
                         "compile the model with dropout 0 or run dropout eagerly")
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"under torch.compile mc.attention takes torch tensors, got {type(q).__name__}")
    if not isinstance(layout, (Layout, LayoutTensors)) and callable(getattr(layout, "__maskc_attention__", None)):
        return layout.__maskc_attention__(q, k, v, backend=backend, scale=scale, return_lse=return_lse)  # a Plan
    if backend == "flex":
        raise ValueError("backend='flex' does not run inside a torch.compile graph through mc.attention: build the "
                         "BlockMask outside (mc.export.to_flex_block_mask(layout)) and call torch's flex_attention in "
                         "the model (it traces), or pass backend='torch'")
    if backend not in ("auto", "torch"):
        if not isinstance(layout, Layout):
            raise ValueError(f"backend={backend!r} under torch.compile needs a maskc.Layout (layout tensors run on "
                             "the 'torch' custom op only): pass the Layout, or backend='torch'")
        # any other backend (flex, triton, jax-free torch ones) runs eagerly as one opaque graph node
        out, lse = registered_attention(q, k, v, None, [], _backend_token(layout, backend, scale))
        return (out, lse) if return_lse else out
    if not isinstance(layout, (Layout, LayoutTensors)):
        raise TypeError(f"under torch.compile mc.attention takes a maskc.Layout, torch_ops.LayoutTensors or a Plan, "
                        f"got {type(layout).__name__}: pass mc.compile(pattern, ...) or its layout_tensors")
    return attention(q, k, v, layout, scale=scale, return_lse=return_lse)


@torch._dynamo.assume_constant_result
def _backend_token(layout: Layout, backend: str, scale: float | None) -> str:
    """The opaque op's token for ``layout`` on a named backend (run once, at trace time; the runner
    holds the layout, so its id is never reused while the token lives)."""
    def run(q, k, v, extra, ints):
        return maskc_attention(q, k, v, layout, backend=backend, scale=scale, return_lse=True)

    return register_runner(("layout", id(layout), backend, scale), run)


def is_compiling() -> bool:
    """True while dynamo traces (``torch.compiler.is_compiling()``)."""
    return bool(torch.compiler.is_compiling())
