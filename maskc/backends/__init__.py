"""Attention backends: one interface, run-time selection, numerical cross-check.

``attention(q, k, v, layout)`` runs block-sparse attention with q ``[B, Hq, Lq, D]`` and
k, v ``[B, Hkv, Lk, D]`` (``Hq % Hkv == 0``) on the backend chosen by name, by the
environment variable ``MASKC_BACKEND``, or automatically from the array type and device.

Built-in backends:

=========  =============  ===========  =====  ==========================================
name       arrays         devices      grads  notes
=========  =============  ===========  =====  ==========================================
reference  numpy/torch/j  any          torch  dense float64 masked softmax (the truth)
scipy      numpy          cpu          no     token CSR, segment softmax, O(nnz) memory
jax        jax            cpu/gpu      yes    jit, padded per-row block lists
flex       torch          cpu/cuda     yes    torch FlexAttention with a BlockMask
triton     torch          cuda (cpu*)  yes    block-sparse flash attention (*interpreter)
=========  =============  ===========  =====  ==========================================

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.backends import attention, last_choice
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> q = np.random.default_rng(0).normal(size=(1, 2, 6, 8)).astype(np.float32)
    >>> out, lse = attention(q, q, q, lay, return_lse=True)
    >>> out.shape, lse.shape, last_choice().name
    ((1, 2, 6, 8), (1, 2, 6), 'scipy')
"""

from __future__ import annotations

from typing import Any

from maskc.backends.checks import InputInfo, validate_arrays, validate_inputs, validate_layout, validate_scale
from maskc.backends.registry import (
    ENTRY_POINT_GROUP,
    ENV_VAR,
    Availability,
    Backend,
    Choice,
    available,
    format_available,
    get,
    last_choice,
    names,
    register,
    select,
    unregister,
)

__all__ = [
    "attention",
    "available",
    "format_available",
    "register",
    "unregister",
    "get",
    "names",
    "select",
    "last_choice",
    "crosscheck",
    "CrosscheckReport",
    "Backend",
    "Choice",
    "Availability",
    "InputInfo",
    "validate_inputs",
    "ENV_VAR",
    "ENTRY_POINT_GROUP",
]


def attention(
    q: Any,
    k: Any,
    v: Any,
    layout: Any,
    backend: str = "auto",
    scale: float | None = None,
    return_lse: bool = False,
) -> Any:
    """Block-sparse attention ``softmax(q k^T * scale + mask) v`` over the pairs a layout allows.

    Args:
        q: ``[batch, q_heads, q_len, head_dim]`` numpy array, torch tensor or jax array.
        k, v: ``[batch, kv_heads, kv_len, head_dim]``, same library, dtype and device as q;
            ``q_heads % kv_heads == 0`` (grouped-query attention).
        layout: a :class:`maskc.Layout` with ``q_len``/``kv_len`` matching and 1 head
            (broadcast) or ``q_heads`` heads; or an object with ``__maskc_attention__``
            (a plan), to which the call is delegated.
        backend: a registered name (see :func:`available`) or "auto".
        scale: score scale, default ``1 / sqrt(head_dim)``.
        return_lse: also return the log-sum-exp ``[batch, q_heads, q_len]``.

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
    info = validate_arrays(q, k, v)
    from maskc.ir.layout import Layout

    if not isinstance(layout, Layout) and callable(getattr(layout, "__maskc_attention__", None)):
        return layout.__maskc_attention__(q, k, v, backend=backend, scale=scale, return_lse=return_lse)
    validate_layout(layout, info)
    s = validate_scale(scale, info.head_dim)
    rec = select(info, q, backend, layout)
    out, lse = rec.impl(q, k, v, layout, scale=s)
    if tuple(out.shape) != tuple(q.shape) or tuple(lse.shape) != tuple(q.shape[:3]):
        raise RuntimeError(
            f"backend {rec.name!r} returned out {tuple(out.shape)} and lse {tuple(lse.shape)}, "
            f"expected {tuple(q.shape)} and {tuple(q.shape[:3])}: a bug in that backend"
        )
    return (out, lse) if return_lse else out


# ------------------------------------------------------------ built-in backends
def _reference_impl(q, k, v, layout, *, scale):
    from maskc.backends.reference import attention_reference

    return attention_reference(q, k, v, layout, scale=scale)


def _scipy_impl(q, k, v, layout, *, scale):
    from maskc.backends.scipy_backend import attention_scipy

    return attention_scipy(q, k, v, layout, scale=scale)


def _jax_impl(q, k, v, layout, *, scale):
    from maskc.backends.jax_backend import attention_jax

    return attention_jax(q, k, v, layout, scale=scale)


def _lazy_check(module: str, what: str):
    def check():
        import importlib

        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            return False, f"{module} could not be imported ({what}): {e}"
        fn = getattr(mod, "is_available", None)
        if fn is None:
            return False, f"{module} has no is_available()"
        return fn()

    return check


def _triton_impl(q, k, v, layout, *, scale):
    from maskc.backends.triton_backend import attention_triton

    return attention_triton(q, k, v, layout, scale=scale)


def _flex_impl(q, k, v, layout, *, scale):
    from maskc.backends.flex import attention_flex

    return attention_flex(q, k, v, layout, scale=scale)


def _triton_supports(q, layout):
    from maskc.backends.triton_backend import check_supported

    if layout is not None:
        try:
            check_supported(layout, int(q.shape[-1]), q.dtype)
        except ValueError as e:
            return False, str(e)
    return True, ""


def _flex_supports(q, layout):
    from maskc.backends.flex import supports

    return supports(q, layout)


def _register_builtins() -> None:
    register(
        "reference",
        _reference_impl,
        array=("numpy", "torch", "jax"),
        grads=True,
        devices=("cpu", "cuda", "gpu", "mps"),
        priority=0,
        description="dense float64 masked softmax; the truth for cross-checks (torch autograd)",
    )
    register(
        "scipy",
        _scipy_impl,
        array="numpy",
        check=_lazy_check("maskc.backends.scipy_backend", "scipy backend"),
        grads=False,
        devices=("cpu",),
        priority=10,
        dtypes=("float16", "float32", "float64"),
        description="token-level CSR: gathered scores, segment softmax, sparse @ V; O(nnz) memory",
    )
    register(
        "jax",
        _jax_impl,
        array="jax",
        check=_lazy_check("maskc.backends.jax_backend", "jax backend"),
        grads=True,
        devices=("cpu", "gpu", "cuda", "tpu"),
        priority=10,
        dtypes=("float16", "bfloat16", "float32", "float64"),
        description="jit block-sparse attention over padded per-row block lists (jax.grad)",
    )
    register(
        "flex",
        _flex_impl,
        array="torch",
        check=_lazy_check("maskc.backends.flex", "torch FlexAttention backend"),
        supports=_flex_supports,
        grads=("cuda",),
        devices=("cpu", "cuda"),
        priority=20,
        dtypes=("float16", "bfloat16", "float32", "float64"),
        description="torch FlexAttention with a BlockMask built from the layout",
    )
    register(
        "triton",
        _triton_impl,
        array="torch",
        check=_lazy_check("maskc.backends.triton_backend", "Triton block-sparse kernels"),
        supports=_triton_supports,
        grads=True,
        devices=("cuda", "cpu"),
        auto_devices=("cuda",),
        priority=30,
        dtypes=("float16", "bfloat16", "float32"),
        tolerance={"float32": 1e-3},
        description="block-sparse flash attention fwd+bwd (CUDA; CPU with TRITON_INTERPRET=1)",
    )


_register_builtins()


# The submodule maskc.backends.crosscheck shares its name with the function: import the
# function last so the package attribute is the function (the module stays importable).
from maskc.backends.crosscheck import CrosscheckReport, crosscheck  # noqa: E402
