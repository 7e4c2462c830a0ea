"""Hypothesis strategy shared by the numpy-side backend tests (reference, scipy).

Random masks with ragged lengths (q_len != kv_len), empty rows, optional dense runs (FULL
blocks), per-head or one-head (broadcast) layouts, GQA, and inputs in a chosen dtype.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import maskc as mc


@st.composite
def attention_cases(draw, max_len=96, blocks=(16, 32, (16, 32), (32, 16)), dtypes=("float64",),
                    densities=(0.05, 0.3, 0.9), head_dims=(4, 16)):
    """``(layout, mask [Hl, Lq, Lk], q, k, v)``; q ``[B, Hq, Lq, D]``, k/v ``[B, Hkv, Lk, D]``."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    Lq, Lk = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    kv_heads = draw(st.integers(1, 2))
    Hq = kv_heads * draw(st.integers(1, 2))
    Hl = draw(st.sampled_from([1, Hq]))
    mask = rng.random((Hl, Lq, Lk)) < draw(st.sampled_from(densities))
    mask[:, rng.integers(0, Lq, size=draw(st.integers(0, 3)))] = False  # empty rows
    if draw(st.booleans()):  # a dense run so that some blocks are FULL
        mask[:, : Lq // 2, : Lk // 3] = True
    block = draw(st.sampled_from(blocks))
    dtype = draw(st.sampled_from(dtypes))
    B, D = draw(st.integers(1, 2)), draw(st.sampled_from(head_dims))
    q, k, v = (rng.normal(size=(B, h, n, D)).astype(dtype) for h, n in ((Hq, Lq), (kv_heads, Lk), (kv_heads, Lk)))
    return mc.Layout.from_dense(mask, block), mask, q, k, v
