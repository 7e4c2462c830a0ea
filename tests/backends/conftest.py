"""Shared helpers of the backend tests: float64 dense reference, error measure, random layouts,
and the session-wide compiled FlexAttention (compiled once: ~17 s or more on a small CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc

#: relative-error tolerances against float64 (DESIGN.md, Tolerances; fp32 through tl.dot)
TOL = {torch.float32: 1e-3, torch.float16: 5e-3, torch.bfloat16: 1e-2}


def dense_reference(q, k, v, layout: "mc.Layout", scale: float):
    """Masked softmax attention in float64 (differentiable): (out, lse).

    Rows with no allowed key give out 0 and lse -inf. GQA by repeating kv heads.
    """
    q, k, v = q.double(), k.double(), v.double()
    mask = torch.from_numpy(layout.to_dense())[None]  # [1, H or 1, Lq, Lk]
    g = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(g, 1)
    v = v.repeat_interleave(g, 1)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, -1)
    finite = torch.isfinite(lse)
    p = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse))[..., None])
    return p @ v, lse


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| over finite reference entries; NaN or a non-finite mismatch -> inf."""
    x = x.detach().double()
    ref = ref.detach().double()
    if torch.isnan(x).any():
        return float("inf")
    fin = torch.isfinite(ref)
    if not torch.equal(torch.isfinite(x), fin) or not torch.equal(x[~fin], ref[~fin]):
        return float("inf")
    den = ref[fin].norm().item()
    num = (x[fin] - ref[fin]).norm().item()
    return num / den if den > 0 else num


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


@pytest.fixture(scope="session")
def compiled_flex():
    """The module-level torch.compile(flex_attention) (each new shape compiles once per session)."""
    from maskc.backends.flex import compiled_flex_attention

    return compiled_flex_attention()


@pytest.fixture(scope="session")
def bk():
    """The helpers above as one namespace (session-scoped, so hypothesis tests may use it)."""
    import types

    return types.SimpleNamespace(TOL=TOL, ref=dense_reference, rel_err=rel_err, random_layout=random_layout)
