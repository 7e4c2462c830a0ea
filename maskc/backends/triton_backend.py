"""maskc's Triton backend: block-sparse flash attention, forward and backward.

The forward and the dQ kernel walk the layout's BSR rows, the dK/dV kernel walks its
CSC columns; FULL blocks skip masking (except the ragged key tail), PARTIAL blocks
apply their bitmask from the layout's deduplicated dictionary. The kernels live in
:mod:`maskc.backends.triton_kernels`; this module checks inputs, uploads the layout
arrays once per device (cached in ``layout._cache``) and wires the kernels into
autograd.

Runs natively on CUDA and, under ``TRITON_INTERPRET=1``, on CPU tensors (slow: tests
only). See docs/kernels.md.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from maskc.backends.checks import check_direct_call
from maskc.errors import MaskcError
from maskc.ir.layout import Layout

__all__ = ["attention_triton", "is_available", "SUPPORTED_DTYPES", "MIN_HEAD_DIM", "MAX_HEAD_DIM"]

MIN_HEAD_DIM: int = 16
MAX_HEAD_DIM: int = 128
MIN_BLOCK: int = 16
MAX_BLOCK: int = 256
SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def is_available() -> tuple[bool, str]:
    """Whether the Triton backend can run here, and why not.

    Needs triton importable and either a CUDA device or ``TRITON_INTERPRET=1``
    (Triton's CPU interpreter, slow but exact enough for tests).

    Example:
        >>> from maskc.backends import triton_backend
        >>> ok, reason = triton_backend.is_available()
        >>> isinstance(ok, bool) and isinstance(reason, str)
        True
    """
    try:
        import torch
    except Exception as exc:  # pragma: no cover - torch is a hard dependency of this backend
        return False, f"torch not importable: {exc}"
    try:
        import triton  # noqa: F401
    except Exception as exc:
        return False, f"triton not importable: {exc}"
    if torch.cuda.is_available():
        return True, "triton on CUDA"
    if _interpret():
        return True, "triton interpreter on CPU (TRITON_INTERPRET=1; slow, for tests)"
    return False, "no CUDA device and TRITON_INTERPRET is not set (set TRITON_INTERPRET=1 to run on CPU)"


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def _next_pow2(x: int) -> int:
    return 1 << (int(x) - 1).bit_length()


#: CUDA's limit on the second grid axis (batch x heads programs per block row).
MAX_GRID_Y = 65535


def check_supported(layout: Layout, head_dim: int, dtype) -> None:
    """Raise :class:`~maskc.errors.MaskcError` when the kernels cannot run this case.

    Rules: block sizes powers of two in [16, 256] (the kernel tile equals the layout
    block), head_dim in [16, 128], dtype float32 / float16 / bfloat16.
    """
    for name, b in (("block_q", layout.block_q), ("block_k", layout.block_k)):
        if not (_is_pow2(b) and MIN_BLOCK <= b <= MAX_BLOCK):
            raise MaskcError(
                f"triton backend: layout {name}={b} is not supported; the kernel tile equals the "
                f"layout block, which must be a power of two in [{MIN_BLOCK}, {MAX_BLOCK}] "
                f"(got block=({layout.block_q}, {layout.block_k})); recompile the layout with e.g. "
                "block=64 or block=128, or use another backend"
            )
    if not (MIN_HEAD_DIM <= head_dim <= MAX_HEAD_DIM):
        raise MaskcError(
            f"triton backend: head_dim={head_dim} is not supported (must be in "
            f"[{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]; non-powers of two are padded internally)"
        )
    name = str(dtype).replace("torch.", "")
    if name not in SUPPORTED_DTYPES:
        raise MaskcError(f"triton backend: dtype {name} is not supported (supported: {', '.join(SUPPORTED_DTYPES)})")


def _device_arrays(layout: Layout, device) -> dict:
    """The layout's arrays on ``device`` as int32 / uint8 tensors, uploaded once and cached."""
    import torch

    key = ("triton", str(device))
    cached = layout._cache.get(key)
    if cached is not None:
        return cached
    if layout.nnz_blocks >= 2**31 - 1:
        raise MaskcError(f"triton backend: {layout.nnz_blocks} blocks exceed the int32 indices of the kernels")

    def t(a: np.ndarray, dtype) -> "torch.Tensor":
        a = np.ascontiguousarray(a)
        if a.size == 0:  # kernels never read it, but pointers must be valid
            a = np.zeros(1, dtype=a.dtype)
        return torch.from_numpy(np.array(a, dtype=dtype)).to(device)  # copy: layouts are read-only

    csc = layout.csc
    masks = layout.masks
    if masks.shape[0] == 0:
        masks = np.zeros((1, layout.block_q, max(1, masks.shape[2] if masks.ndim == 3 else 1)), np.uint8)
    arrays = {
        "row_ptr": t(layout.row_ptr.reshape(-1), np.int32),
        "col_idx": t(layout.col_idx, np.int32),
        "kind": t(layout.kind, np.int32),
        "pid": t(layout.partial_id, np.int32),
        "masks": t(masks.reshape(-1), np.uint8),
        "col_ptr": t(csc.col_ptr.reshape(-1), np.int32),
        "row_idx": t(csc.row_idx, np.int32),
        "perm": t(csc.perm, np.int32),
        "mask_w": int(layout.masks.shape[2]) if layout.masks.ndim == 3 else -(-layout.block_k // 8),
    }
    layout._cache[key] = arrays
    return arrays


def _launch_meta(q, k, layout: Layout) -> dict:
    import torch

    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    if q.device.type == "cuda" and B * Hq > MAX_GRID_Y:
        raise MaskcError(
            f"triton backend: batch x heads = {B} x {Hq} = {B * Hq} exceeds CUDA's grid limit of {MAX_GRID_Y} "
            "programs on the second axis; split the batch into chunks of at most "
            f"{MAX_GRID_Y // Hq} sequences"
        )
    return dict(
        B=B, Hq=Hq, Hkv=Hkv, G=Hq // Hkv, Lq=Lq, Lk=k.shape[2], D=D,
        BLOCK_D=max(16, _next_pow2(D)),
        mult=0 if layout.heads == 1 else 1,
        nw=4 if max(layout.block_q, layout.block_k) <= 64 else 8,
        # Triton's CPU interpreter computes bf16 tl.dot wrongly (triton 3.x): upcast there
        upcast=bool(q.device.type == "cpu" and q.dtype == torch.bfloat16),
    )


def _forward(q, k, v, layout: Layout, scale: float):
    import torch

    from maskc.backends import triton_kernels as tk

    a = _device_arrays(layout, q.device)
    m = _launch_meta(q, k, layout)
    out = torch.empty_like(q)
    lse = torch.empty((m["B"], m["Hq"], m["Lq"]), dtype=torch.float32, device=q.device)
    grid = (layout.n_qb, m["B"] * m["Hq"])
    tk._fwd_kernel[grid](
        q, k, v, out, lse,
        a["row_ptr"], a["col_idx"], a["kind"], a["pid"], a["masks"],
        scale * tk.LOG2E,
        m["Hq"], m["G"], m["mult"], layout.n_qb, m["Lq"], m["Lk"], m["D"],
        BLOCK_Q=layout.block_q, BLOCK_K=layout.block_k, BLOCK_D=m["BLOCK_D"], MASK_W=a["mask_w"],
        UPCAST=m["upcast"], num_warps=m["nw"],
    )
    return out, lse


def _backward(q, k, v, out, lse, dout, dlse, layout: Layout, scale: float):
    import torch

    from maskc.backends import triton_kernels as tk

    a = _device_arrays(layout, q.device)
    m = _launch_meta(q, k, layout)
    dout = dout.contiguous()
    # delta = rowsum(dO * O); a gradient on lse enters as ds += p * dlse, i.e. delta -= dlse
    delta = (dout.float() * out.float()).sum(-1)
    if dlse is not None:
        delta = delta - torch.where(torch.isfinite(lse), dlse.float(), torch.zeros_like(delta))
    delta = delta.contiguous()
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    common = dict(BLOCK_Q=layout.block_q, BLOCK_K=layout.block_k, BLOCK_D=m["BLOCK_D"],
                  MASK_W=a["mask_w"], UPCAST=m["upcast"], num_warps=m["nw"])
    tk._bwd_dq_kernel[(layout.n_qb, m["B"] * m["Hq"])](
        q, k, v, dout, lse, delta, dq,
        a["row_ptr"], a["col_idx"], a["kind"], a["pid"], a["masks"],
        scale * tk.LOG2E, scale,
        m["Hq"], m["G"], m["mult"], layout.n_qb, m["Lq"], m["Lk"], m["D"],
        **common,
    )
    tk._bwd_dkdv_kernel[(layout.n_kb, m["B"] * m["Hkv"])](
        q, k, v, dout, lse, delta, dk, dv,
        a["col_ptr"], a["row_idx"], a["perm"], a["kind"], a["pid"], a["masks"],
        scale * tk.LOG2E, scale,
        m["Hq"], m["G"], m["mult"], layout.n_kb, m["Lq"], m["Lk"], m["D"],
        **common,
    )
    return dq, dk, dv


def _make_function():
    import torch

    class _BlockSparseAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, layout, scale):
            out, lse = _forward(q, k, v, layout, scale)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.layout = layout
            ctx.scale = scale
            return out, lse

        @staticmethod
        def backward(ctx, dout, dlse):
            q, k, v, out, lse = ctx.saved_tensors
            if dout is None:
                dout = torch.zeros_like(out)
            dq, dk, dv = _backward(q, k, v, out, lse, dout, dlse, ctx.layout, ctx.scale)
            return dq, dk, dv, None, None

    return _BlockSparseAttention


_FUNCTION = None


def attention_triton(q, k, v, layout: Layout, *, scale: float):
    """Block-sparse attention with maskc's Triton kernels; differentiable in q, k, v.

    Args:
        q: ``[B, Hq, Lq, D]`` float32 / float16 / bfloat16 torch tensor (CUDA, or CPU
            under ``TRITON_INTERPRET=1``).
        k, v: ``[B, Hkv, Lk, D]``, same dtype and device; ``Hq % Hkv == 0`` (GQA).
        layout: the :class:`~maskc.ir.layout.Layout`, ``heads`` in {1, Hq}, block sizes
            powers of two in [16, 256], ``q_len == Lq``, ``kv_len == Lk``.
        scale: softmax scale (``1/sqrt(D)`` is the usual choice).

    Returns:
        ``(out, lse)``: out like ``q``; lse float32 ``[B, Hq, Lq]`` (natural log). A row
        with no allowed key gives out 0 and lse -inf. Gradients flow to q, k, v through
        both outputs.

    Example:
        >>> import os, torch, maskc as mc
        >>> os.environ.setdefault("TRITON_INTERPRET", "1")  # doctest: +SKIP
        >>> lay = mc.compile(mc.causal(), q_len=40, block=16)
        >>> q = k = v = torch.randn(1, 1, 40, 16)
        >>> out, lse = attention_triton(q, k, v, lay, scale=0.25)  # doctest: +SKIP
        >>> out.shape, lse.shape  # doctest: +SKIP
        (torch.Size([1, 1, 40, 16]), torch.Size([1, 1, 40]))
    """
    global _FUNCTION
    import torch

    ok, reason = is_available()
    if not ok:
        raise MaskcError(f"triton backend unavailable: {reason}")
    if not (q.dtype == k.dtype == v.dtype):
        raise MaskcError(f"triton backend: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] != k.shape[-1] or v.shape[-1] != k.shape[-1]:
        raise MaskcError(
            f"triton backend: q, k, v must share head_dim, got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}"
        )
    check_supported(layout, int(q.shape[-1]), q.dtype)
    check_direct_call("triton", q, k, layout)
    if q.device.type == "cpu" and not _interpret():
        raise MaskcError("triton backend: CPU tensors need TRITON_INTERPRET=1 (set before importing triton)")
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if not math.isfinite(float(scale)):
        raise MaskcError(f"triton backend: scale must be finite, got {scale}")
    with torch.cuda.device(q.device) if q.device.type == "cuda" else contextlib.nullcontext():
        return _FUNCTION.apply(q, k, v, layout, float(scale))

