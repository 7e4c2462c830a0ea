"""Hypothesis strategies for the export tests: random layouts with ragged lengths, several
heads and blocks of 16 / 32 / 64, built from boolean masks of several structures."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from maskc.ir.layout import Layout

BLOCKS = (16, 32, 64)


def make_mask(kind: str, H: int, q: int, k: int, seed: int, density: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(q)[:, None]
    j = np.arange(k)[None, :]
    if kind == "random":
        m = rng.random((H, q, k)) < density
    elif kind == "causal":
        m = np.broadcast_to(j <= i, (H, q, k)).copy()
    elif kind == "band":
        w = rng.integers(1, max(2, q), size=H)
        m = np.stack([(j <= i) & (i - j < w[h]) for h in range(H)])
    elif kind == "blocky":  # whole 16x16 tiles on or off, then a few holes: FULL and PARTIAL mixed
        tiles = rng.random((H, -(-q // 16), -(-k // 16))) < density
        m = np.repeat(np.repeat(tiles, 16, axis=1), 16, axis=2)[:, :q, :k].copy()
        m &= ~(rng.random((H, q, k)) < 0.02)
    else:  # intervals: column-wise masked runs (what FlashMask / Magi represent)
        m = np.ones((H, q, k), bool)
        for h in range(H):
            a = rng.integers(0, q + 1, size=k)
            b = np.minimum(q, a + rng.integers(0, q + 1, size=k))
            m[h] &= ~((i >= a[None, :]) & (i < b[None, :]))
    return m


@st.composite
def masks(draw, max_len: int = 140, max_heads: int = 3, square: bool = False):
    kind = draw(st.sampled_from(["random", "causal", "band", "blocky", "intervals"]))
    H = draw(st.integers(1, max_heads))
    q = draw(st.integers(1, max_len))
    k = q if square else draw(st.integers(1, max_len))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.05, 0.3, 0.7, 0.97]))
    return make_mask(kind, H, q, k, seed, density)


@st.composite
def layouts(draw, max_len: int = 140, max_heads: int = 3, square: bool = False, square_blocks: bool = False):
    m = draw(masks(max_len, max_heads, square))
    bq = draw(st.sampled_from(BLOCKS))
    bk = bq if square_blocks else draw(st.sampled_from(BLOCKS))
    return Layout.from_dense(m, (bq, bk)).validate()


def head_layout(lay: Layout, h: int) -> Layout:
    """Stored head ``h`` of ``lay`` as a one-head layout."""
    return Layout.from_dense(lay.to_dense()[h:h + 1], lay.block)
