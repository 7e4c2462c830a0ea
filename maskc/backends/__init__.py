"""Attention backends: one interface, run-time selection, numerical cross-check.

``attention(q, k, v, layout)`` runs block-sparse attention with q ``[B, Hq, Lq, D]`` and
k, v ``[B, Hkv, Lk, D]`` (``Hq % Hkv == 0``) on the backend chosen by name, by the
environment variable ``MASKC_BACKEND``, or automatically from the array type and device.

Built-in backends:

=========  =============  ===========  =====  ==========================================
name       arrays         devices      grads  notes
=========  =============  ===========  =====  ==========================================
reference  numpy/torch/j  any          torch  dense float64 masked softmax (the truth)
torch      torch          any          yes    bucketed bmm over block lists; CPU default
scipy      numpy          cpu          no     token CSR, segment softmax, O(nnz) memory
jax        jax            cpu/gpu      yes    jit, padded per-row block lists
flex       torch          cpu/cuda     cuda   torch FlexAttention with a BlockMask
triton     torch          cuda (cpu*)  yes    block-sparse flash attention (*interpreter)
dia        torch          any          yes    diagonal sets (``DiagonalLayout``), no blocks
=========  =============  ===========  =====  ==========================================

Layouts are :class:`maskc.Layout` (format "blocks") or
:class:`~maskc.backends.formats.DiagonalLayout` (format "diagonal"); each backend
declares the formats it runs (see :mod:`maskc.backends.formats`).

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

from maskc.backends.api import attention
from maskc.backends.builtins import register_builtins
from maskc.backends.checks import InputInfo, validate_inputs
from maskc.backends.formats import DiagonalLayout, layout_format
from maskc.backends.registry import (
    ENTRY_POINT_GROUP,
    ENV_VAR,
    Availability,
    Backend,
    available,
    format_available,
    get,
    names,
    register,
    unregister,
)
from maskc.backends.selection import Choice, last_choice, record_choice, select

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
    "record_choice",
    "DiagonalLayout",
    "layout_format",
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


register_builtins()


# The submodule maskc.backends.crosscheck shares its name with the function: import the
# function last so the package attribute is the function (the module stays importable).
from maskc.backends.crosscheck import CrosscheckReport, crosscheck  # noqa: E402
