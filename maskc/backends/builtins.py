"""Registration of the built-in backends (imported once by :mod:`maskc.backends`).

Each implementation module is imported on first use, so ``import maskc`` needs neither
torch, jax nor triton. Priorities (higher wins in ``backend="auto"``): triton 30 (CUDA),
torch 25 (CPU torch tensors, training included), flex 20, scipy 10 and jax 10 (their own
array types), dia 5 and the reference 0 (never chosen automatically for training).

Example:
    >>> import maskc.backends as mb
    >>> [mb.get(n).priority for n in ("triton", "torch", "flex", "scipy", "reference")]
    [30, 25, 20, 10, 0]
"""

from __future__ import annotations

import importlib

from maskc.backends.reference import attention_reference
from maskc.backends.reference import supports as reference_supports
from maskc.backends.registry import register


def lazy_check(module: str, what: str):
    """A ``check()`` that imports ``module`` and returns its ``is_available()`` (or why it cannot)."""

    def check():
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            return False, f"{module} could not be imported ({what}): {e}"
        fn = getattr(mod, "is_available", None)
        if fn is None:
            return False, f"{module} has no is_available()"
        return fn()

    return check


def lazy_call(module: str, function: str):
    """An impl (or supports) that imports ``module`` (torch / jax / triton code) on its first call."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    call.__name__ = f"{module.rsplit('.', 1)[-1]}.{function}"
    return call


def _reference_impl(q, k, v, layout, *, scale):
    return attention_reference(q, k, v, layout, scale=scale)


def _triton_supports(q, layout):
    if layout is not None:
        try:
            importlib.import_module("maskc.backends.triton_backend").check_supported(layout, int(q.shape[-1]), q.dtype)
        except ValueError as e:
            return False, str(e)
    return True, ""


def _flex_supports(q, layout):
    return importlib.import_module("maskc.backends.flex").supports(q, layout)


def _dia_triton_supports(q, layout):
    return importlib.import_module("maskc.backends.dia_triton").supports(q, layout)


def register_builtins() -> None:
    """Register reference, torch, dia, dia-triton, scipy, jax, flex and triton (replacing earlier records)."""
    every_device = ("cpu", "cuda", "gpu", "mps")
    register(
        "reference", _reference_impl, array=("numpy", "torch", "jax"), grads=True, devices=every_device,
        priority=0, formats=("blocks", "diagonal"), supports=reference_supports, auto_training=False,
        description="dense float64 masked softmax; the truth for cross-checks (torch autograd)",
    )
    register(
        "torch", lazy_call("maskc.backends.torch_backend", "attention_torch"), array="torch",
        check=lazy_check("maskc.backends.torch_backend", "torch block-sparse backend"),
        grads=True, devices=("cpu", "cuda", "mps"), auto_devices=("cpu",), priority=25, dropout=True,
        dtypes=("float16", "bfloat16", "float32", "float64"),
        description="block-sparse attention in torch ops (bucketed bmm, recompute backward, dropout); CPU default",
    )
    register(
        "dia", lazy_call("maskc.backends.dia_backend", "attention_dia"), array="torch", formats="diagonal",
        check=lazy_check("maskc.backends.dia_backend", "torch DIA backend"),
        grads=True, devices=("cpu", "cuda", "mps"), auto_devices=("cpu", "cuda"), priority=5,
        dtypes=("float16", "bfloat16", "float32", "float64"),
        description="diagonal sets: one shifted K/V slice per offset, O(N * offsets * head_dim)",
    )
    register(
        "scipy", lazy_call("maskc.backends.scipy_backend", "attention_scipy"), array="numpy",
        check=lazy_check("maskc.backends.scipy_backend", "scipy backend"), grads=False, devices=("cpu",),
        priority=10, dtypes=("float16", "float32", "float64"),
        description="token-level CSR: gathered scores, segment softmax, sparse @ V; O(nnz) memory",
    )
    register(
        "jax", lazy_call("maskc.backends.jax_backend", "attention_jax"), array="jax",
        check=lazy_check("maskc.backends.jax_backend", "jax backend"), grads=True,
        devices=("cpu", "gpu", "cuda", "tpu"), priority=10, dtypes=("float16", "bfloat16", "float32", "float64"),
        description="jit block-sparse attention over padded per-row block lists (jax.grad)",
    )
    register(
        "flex", lazy_call("maskc.backends.flex", "attention_flex"), array="torch",
        check=lazy_check("maskc.backends.flex", "torch FlexAttention backend"), supports=_flex_supports,
        grads=("cuda",), devices=("cpu", "cuda"), priority=20, dtypes=("float16", "bfloat16", "float32", "float64"),
        description="torch FlexAttention with a BlockMask built from the layout",
    )
    register(
        "triton", lazy_call("maskc.backends.triton_backend", "attention_triton"), array="torch",
        check=lazy_check("maskc.backends.triton_backend", "Triton block-sparse kernels"), supports=_triton_supports,
        grads=True, devices=("cuda", "cpu"), auto_devices=("cuda",), priority=30,
        dtypes=("float16", "bfloat16", "float32"), tolerance={"float32": 1e-3},
        description="block-sparse flash attention fwd+bwd (CUDA; CPU with TRITON_INTERPRET=1)",
    )
    register(
        "dia-triton", lazy_call("maskc.backends.dia_triton", "attention_dia_triton"), array="torch",
        formats="diagonal", check=lazy_check("maskc.backends.dia_triton", "Triton DIA kernels"),
        supports=_dia_triton_supports, grads=True, devices=("cuda", "cpu"), auto_devices=("cuda",), priority=30,
        dtypes=("float16", "bfloat16", "float32"), tolerance={"float32": 1e-3},
        description="diagonal sets on Triton (online softmax per offset; CUDA, CPU with TRITON_INTERPRET=1)",
    )
