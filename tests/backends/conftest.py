"""Shared helpers of the backend tests: the float64 truth, the error measure and tolerances of
the project (float32 1e-5, triton 1e-3, bfloat16 1e-2, float16 5e-3), random layouts, a registry scratch fixture, and the session-wide compiled
FlexAttention (compiled once: ~17 s or more on a small CPU).

The truth is maskc's reference backend (float64, torch autograd), itself checked against
independent implementations in test_reference.py; the error measure and the tolerances are
crosscheck's, so tests and ``maskc check`` judge backends by one rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc
import maskc.backends as mb
from maskc.backends.crosscheck import TOLERANCES, normalize_dtype
from maskc.backends.crosscheck import rel_err as _rel_err
from maskc.backends.reference import attention_reference


def tol(dtype, backend: str = "reference") -> float:
    """The relative-error tolerance for ``backend`` at ``dtype`` (its overrides included).

    float32 1e-5 (triton 1e-3: tl.dot may use tf32), bfloat16 1e-2, float16 5e-3.
    """
    dt = normalize_dtype(dtype)
    return mb.get(backend).tolerance.get(dt, TOLERANCES[dt])


def dense_reference(q, k, v, layout: "mc.Layout", scale: float):
    """Masked softmax attention in float64 (differentiable for torch): (out, lse).

    Rows with no allowed key give out 0 and lse -inf. GQA and one-head layouts as in attention().
    """
    return attention_reference(q, k, v, layout, scale=scale, keep_float64=True)


def _np64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x).astype(np.float64)


def rel_err(x, ref, floor: float = 0.0) -> float:
    """crosscheck's ||x - ref|| / max(||ref||, floor) on any arrays; -inf must match; NaN -> NaN (fails)."""
    return _rel_err(_np64(x), _np64(ref), floor=floor)


def random_layout(rng: np.random.Generator, heads: int, q_len: int, kv_len: int, block,
                  density: float = 0.3, empty_rows: int = 2) -> "mc.Layout":
    """A random layout mixing scattered bits, one full block run and some empty query rows."""
    m = rng.random((heads, q_len, kv_len)) < density
    for h in range(heads):
        r0 = 16 * int(rng.integers(0, max(1, q_len // 16)))
        c0 = 16 * int(rng.integers(0, max(1, kv_len // 16)))
        m[h, r0:r0 + 16, c0:c0 + 32] = True  # block-aligned: yields FULL blocks for blocks <= 16x32
        free = np.setdiff1d(np.arange(q_len), np.arange(r0, r0 + 16))
        for r in rng.choice(free, size=min(empty_rows, free.size), replace=False):
            m[h, r] = False
    return mc.Layout.from_dense(m, block)


@pytest.fixture
def scratch():
    """Backend names a test registers; they are unregistered afterwards."""
    added: list[str] = []
    yield added
    for n in added:
        mb.unregister(n)


@pytest.fixture(scope="session")
def compiled_flex():
    """The module-level torch.compile(flex_attention) (each new shape compiles once per session)."""
    from maskc.backends.flex import compiled_flex_attention

    return compiled_flex_attention()


@pytest.fixture(scope="session")
def bk():
    """The helpers above as one namespace (session-scoped, so hypothesis tests may use it)."""
    import types

    return types.SimpleNamespace(tol=tol, ref=dense_reference, rel_err=rel_err, random_layout=random_layout)
