"""maskc's Triton backend: block-sparse flash attention, forward and backward.

The forward and the dQ kernel walk the layout's BSR rows, the dK/dV kernel its CSC
columns, each in tiles chosen per GPU generation, head dim and dtype
(:mod:`maskc.backends.triton_configs`), independent of the layout block. FULL blocks
skip all mask work; PARTIAL blocks read packed 32-bit mask words. The kernels live in
:mod:`maskc.backends.triton_kernels` and :mod:`maskc.backends.triton_kernels_bwd`; this
module checks inputs, uploads the layout arrays once per device (in its own
:class:`~maskc.ir.cache.LayoutCache`), builds the launches and wires them into autograd.
Inputs may be strided views (e.g. ``[B, L, H, D]`` transposed to ``[B, H, L, D]``): only
the last dimension must be contiguous, nothing is copied otherwise.

Runs natively on CUDA and, under ``TRITON_INTERPRET=1``, on CPU tensors (slow: tests
only). See docs/kernels.md.
"""

from __future__ import annotations

import contextlib
import math
import os

from maskc.backends import triton_configs as tc
from maskc.backends.checks import check_direct_call
from maskc.backends.triton_arrays import kernel_arrays
from maskc.errors import MaskcError
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import Layout

__all__ = ["attention_triton", "is_available", "check_supported", "SUPPORTED_DTYPES", "MIN_HEAD_DIM",
           "MAX_HEAD_DIM"]

MIN_HEAD_DIM: int = 16
MAX_HEAD_DIM: int = 128
MIN_BLOCK: int = 16
MAX_BLOCK: int = 256
SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
#: CUDA's limit on the second and third grid axes (heads, batch elements).
MAX_GRID_YZ = 65535

_ARRAYS = LayoutCache("triton")
_TUNED: dict = {}


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


def block_d(head_dim: int) -> int:
    """The padded head dim the kernels use: the next power of two, at least 16."""
    return max(16, 1 << (int(head_dim) - 1).bit_length())


def check_supported(layout: Layout, head_dim: int, dtype) -> None:
    """Raise :class:`~maskc.errors.MaskcError` when the kernels cannot run this case.

    Rules: block sizes powers of two in [16, 256], head_dim in [16, 128] (padded to a
    power of two inside the kernels), dtype float32 / float16 / bfloat16. Head dims above
    128 are refused: their dK/dV accumulators alone exceed the register file at any tile
    that builds without spills (see docs/kernels.md); the flex backend runs them.

    Example:
        >>> import numpy as np, maskc as mc
        >>> check_supported(mc.Layout.from_dense(np.ones((8, 8), bool), 16), 64, "bfloat16")
    """
    for name, b in (("block_q", layout.block_q), ("block_k", layout.block_k)):
        if not (_is_pow2(b) and MIN_BLOCK <= b <= MAX_BLOCK):
            raise MaskcError(
                f"triton backend: layout {name}={b} is not supported; the layout block must be a power "
                f"of two in [{MIN_BLOCK}, {MAX_BLOCK}] (got block=({layout.block_q}, {layout.block_k})); "
                "recompile the layout with e.g. block=64 or block=128, or use another backend"
            )
    if not (MIN_HEAD_DIM <= head_dim <= MAX_HEAD_DIM):
        raise MaskcError(
            f"triton backend: head_dim={head_dim} is not supported (must be in "
            f"[{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]; non-powers of two are padded internally); "
            "use backend='flex' for larger head dims"
        )
    name = str(dtype).replace("torch.", "")
    if name not in SUPPORTED_DTYPES:
        raise MaskcError(f"triton backend: dtype {name} is not supported (supported: {', '.join(SUPPORTED_DTYPES)})")


def device_arrays(layout: Layout, device) -> dict:
    """The layout's kernel arrays (:func:`~maskc.backends.triton_arrays.kernel_arrays`) on ``device``, cached."""
    import torch

    def make():
        host = kernel_arrays(layout)
        return {k: (torch.from_numpy(v).to(device) if not isinstance(v, int) else v) for k, v in host.items()}

    return _ARRAYS.get(layout, str(device), make)


def geometry(layout: Layout, Hq: int) -> dict:
    """The integers the kernels need from a layout for ``Hq`` query heads."""
    return dict(BQ=layout.block_q, BK=layout.block_k, n_qb=layout.n_qb, n_kb=layout.n_kb,
                slice_b=layout.heads if layout.batch > 1 else 0, slice_h=1 if layout.heads > 1 else 0)


def _strides(x) -> tuple[int, int, int]:
    return int(x.stride(0)), int(x.stride(1)), int(x.stride(2))


def _cc(device) -> int:
    import torch

    if device.type != "cuda":
        return 90  # the interpreter: any table works; the Hopper one exercises the sub-tiles
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def _autotune_here(q) -> bool:
    return q.device.type == "cuda" and tc.autotune_enabled()


def configs(kernel: str, q, geo: dict, override: dict | None = None) -> list[tc.TileConfig]:
    """The candidate configurations of ``kernel`` for these inputs (one unless autotuning)."""
    if override and kernel in override:
        return [override[kernel]]
    args = (kernel, _cc(q.device), q.dtype, block_d(q.shape[-1]), geo["BQ"], geo["BK"])
    return tc.space(*args) if _autotune_here(q) else [tc.pick(*args)]


def launches(kind: str, t: dict, arrays: dict, geo: dict, scale: float, cfg: tc.TileConfig | None,
             exact: bool = False):
    """``(kernel, grid, args, constexprs)`` of one launch; ``cfg`` None leaves the tile to the autotuner.

    ``t`` holds the tensors (q, k, v, flags and out, lse or do, delta, dq, dk, dv); ``exact``
    selects the rare redo of flagged rows. Used by the launchers below and by
    :mod:`maskc.backends.kernel_report` (with meta tensors).
    """
    from maskc.backends import triton_kernels as tk
    from maskc.backends import triton_kernels_bwd as tkb

    q, k, v = t["q"], t["k"], t["v"]
    B, Hq, Lq, D = (int(s) for s in q.shape)
    Hkv, Lk = int(k.shape[1]), int(k.shape[2])
    consts = dict(EXACT=exact, BLOCK_D=block_d(D), EVEN_D=D == block_d(D), INTERPRET=q.device.type == "cpu")
    tiles = {} if cfg is None else dict(BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n)
    common = (Hq, Hq // Hkv, geo["slice_b"], geo["slice_h"])
    sizes = (Lq, Lk, D, geo["BQ"], geo["BK"], arrays["mask_w"])
    qkv = (*_strides(q), *_strides(k), *_strides(v))
    if kind == "fwd":
        fn = tk._fwd_kernel
        args = (q, k, v, t["out"], t["lse"], t["flags"], arrays["row_ptr"], arrays["row_mid"], arrays["col_idx"],
                arrays["part_id"], arrays["masks"], scale * tk.LOG2E, *qkv, *_strides(t["out"]), *common, geo["n_qb"],
                *sizes)
    elif kind == "dq":
        fn = tkb._dq_kernel
        args = (q, k, v, t["do"], t["lse"], t["delta"], t["dq"], t["flags"], arrays["row_ptr"], arrays["row_mid"],
                arrays["col_idx"], arrays["part_id"], arrays["masks"], scale * tk.LOG2E, scale,
                *qkv, *_strides(t["do"]), *_strides(t["dq"]), *common, geo["n_qb"], *sizes)
    elif kind == "dkdv":
        fn = tkb._dkdv_kernel
        args = (q, k, v, t["do"], t["lse"], t["delta"], t["dk"], t["dv"], t["kv_flags"], arrays["col_ptr"],
                arrays["col_mid"], arrays["row_idx"], arrays["c_part_id"], arrays["masks"], scale * tk.LOG2E, scale,
                *qkv, *_strides(t["do"]), *_strides(t["dk"]), *_strides(t["dv"]), *common, geo["n_kb"], *sizes)
    else:
        raise ValueError(f"unknown kernel {kind!r}")
    if kind == "dkdv":
        grid = lambda meta: (geo["n_kb"] * (geo["BK"] // meta["BLOCK_N"]), Hkv, B)  # noqa: E731
    else:
        grid = lambda meta: (geo["n_qb"] * (geo["BQ"] // meta["BLOCK_M"]), Hq, B)  # noqa: E731
    return fn, grid, args, {**consts, **tiles}


def delta_launch(out, do, lse, dlse, delta):
    """``(kernel, grid, args, constexprs, num_warps)`` of the delta preprocessing kernel."""
    from maskc.backends import triton_kernels as tk

    B, Hq, Lq, D = (int(s) for s in out.shape)
    bm = 64
    consts = dict(HAS_DLSE=dlse is not None, BLOCK_M=bm, BLOCK_D=block_d(D), EVEN_D=D == block_d(D))
    args = (out, do, lse, lse if dlse is None else dlse, delta, *_strides(out), *_strides(do), Hq, Lq, D)
    return tk._delta_kernel, (-(-Lq // bm), Hq, B), args, consts, 4


def _run(kind: str, t: dict, arrays: dict, geo: dict, scale: float, override: dict | None) -> None:
    import triton

    def launch(c: tc.TileConfig, exact: bool) -> None:
        fn, grid, args, consts = launches(kind, t, arrays, geo, scale, c, exact)
        fn[grid(consts)](*args, **consts, num_warps=c.num_warps, num_stages=c.num_stages, maxnreg=c.maxnreg)

    cands = configs(kind, t["q"], geo, override)
    if len(cands) == 1:
        launch(cands[0], False)
    else:
        key = (kind, tuple(cands))
        fn, grid, args, consts = launches(kind, t, arrays, geo, scale, None)
        if key not in _TUNED:
            _TUNED[key] = triton.autotune(
                [triton.Config(dict(BLOCK_M=c.block_m, BLOCK_N=c.block_n), num_warps=c.num_warps,
                               num_stages=c.num_stages) for c in cands], key=[])(fn)
        _TUNED[key][grid](*args, **consts)
    # rows whose result holds a NaN / inf are redone exactly (programs of clean rows exit at once)
    launch(tc.exact(kind, tc.TileConfig(geo["BQ"], geo["BK"], 4, 1) if len(cands) > 1 else cands[0]), True)


def _forward(q, k, v, layout: Layout, scale: float, override=None):
    import torch

    arrays = device_arrays(layout, q.device)
    geo = geometry(layout, q.shape[1])
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)
    flags = torch.empty(lse.shape, dtype=torch.int8, device=q.device)
    _run("fwd", dict(q=q, k=k, v=v, out=out, lse=lse, flags=flags), arrays, geo, scale, override)
    return out, lse


def _backward(q, k, v, out, lse, dout, dlse, layout: Layout, scale: float, override=None):
    import torch

    arrays = device_arrays(layout, q.device)
    geo = geometry(layout, q.shape[1])
    if dout.stride(-1) != 1:
        dout = dout.contiguous()
    delta = torch.empty_like(lse)
    fn, grid, args, consts, warps = delta_launch(out, dout, lse, None if dlse is None else dlse.contiguous(), delta)
    fn[grid](*args, **consts, num_warps=warps)
    t = dict(q=q, k=k, v=v, do=dout, lse=lse, delta=delta,
             dq=torch.empty_like(q), dk=torch.empty_like(k), dv=torch.empty_like(v),
             flags=torch.empty(lse.shape, dtype=torch.int8, device=q.device),
             kv_flags=torch.empty(k.shape[:3], dtype=torch.int8, device=q.device))
    _run("dq", t, arrays, geo, scale, override)
    _run("dkdv", t, arrays, geo, scale, override)
    return t["dq"], t["dk"], t["dv"]


def _make_function():
    import torch

    class _BlockSparseAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, layout, scale, override):
            out, lse = _forward(q, k, v, layout, scale, override)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.layout, ctx.scale, ctx.override = layout, scale, override
            return out, lse

        @staticmethod
        def backward(ctx, dout, dlse):
            q, k, v, out, lse = ctx.saved_tensors
            if dout is None:
                dout = torch.zeros_like(out)
            dq, dk, dv = _backward(q, k, v, out, lse, dout, dlse, ctx.layout, ctx.scale, ctx.override)
            return dq, dk, dv, None, None, None

    return _BlockSparseAttention


_FUNCTION = None


def _check(q, k, v, layout: Layout, scale) -> None:
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
    if layout.batch > 1 and int(q.shape[0]) != layout.batch:
        raise MaskcError(
            f"triton backend: the layout stores {layout.batch} batch elements but q has batch {q.shape[0]}; "
            "compile the pattern for this batch (or with batch 1 to broadcast)"
        )
    if max(int(q.shape[0]), int(q.shape[1])) > MAX_GRID_YZ:
        raise MaskcError(f"triton backend: batch {q.shape[0]} or heads {q.shape[1]} exceed CUDA's grid limit "
                         f"{MAX_GRID_YZ}; split the batch into chunks")
    if q.device.type == "cpu" and not _interpret():
        raise MaskcError("triton backend: CPU tensors need TRITON_INTERPRET=1 (set before importing triton)")
    if not math.isfinite(float(scale)):
        raise MaskcError(f"triton backend: scale must be finite, got {scale}")


def attention_triton(q, k, v, layout: Layout, *, scale: float, tiles: dict | None = None):
    """Block-sparse attention with maskc's Triton kernels; differentiable in q, k, v.

    Args:
        q: ``[B, Hq, Lq, D]`` float32 / float16 / bfloat16 torch tensor (CUDA, or CPU
            under ``TRITON_INTERPRET=1``); any strides with a contiguous last dim.
        k, v: ``[B, Hkv, Lk, D]``, same dtype and device; ``Hq % Hkv == 0`` (GQA).
        layout: the :class:`~maskc.ir.layout.Layout`: ``heads`` in {1, Hq}, ``batch`` in
            {1, B}, block sizes powers of two in [16, 256], ``q_len == Lq``, ``kv_len == Lk``.
        scale: softmax scale (``1/sqrt(D)`` is the usual choice).
        tiles: optional ``{"fwd" | "dq" | "dkdv": TileConfig}`` overriding the table
            (tests use it to exercise sub-tiles; each tile must divide the layout block).

    Returns:
        ``(out, lse)``: out like ``q``; lse float32 ``[B, Hq, Lq]`` (natural log). A row
        with no allowed key gives out 0 and lse -inf, and values at keys a row may not
        attend never reach it (NaN or inf included). Gradients flow through both outputs.

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

    _check(q, k, v, layout, scale)
    for name, cfg in (tiles or {}).items():
        b_m, b_n = (layout.block_q, layout.block_k)
        if name not in tc.KERNELS or b_m % cfg.block_m or b_n % cfg.block_n or min(cfg.block_m, cfg.block_n) < 16:
            raise MaskcError(f"triton backend: tile {name}={cfg} must name a kernel of {tc.KERNELS} and divide "
                             f"the layout block ({b_m}, {b_n}) with edges >= 16")
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))  # other strides: in place
    with torch.cuda.device(q.device) if q.device.type == "cuda" else contextlib.nullcontext():
        return _FUNCTION.apply(q, k, v, layout, float(scale), tiles)
