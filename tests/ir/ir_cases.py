"""Layouts for the IR tests: seeded random masks of a few structures, batched or not."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from maskc.ir.layout import Layout


def random_mask(shape: tuple[int, ...], seed: int, density: float = 0.4, structure: str = "random") -> np.ndarray:
    """A bool mask of ``shape`` (last two axes query, key): random, banded or tiled with holes."""
    rng = np.random.default_rng(seed)
    q, k = shape[-2:]
    i, j = np.arange(q)[:, None], np.arange(k)[None, :]
    if structure == "band":
        w = rng.integers(1, max(2, q), size=shape[:-2] + (1, 1))
        return np.broadcast_to((j <= i) & (i - j < w), shape).copy()
    if structure == "tiles":  # whole 8x8 tiles on or off, then a few holes: FULL and PARTIAL mixed
        t = rng.random(shape[:-2] + (-(-q // 8), -(-k // 8))) < density
        m = np.repeat(np.repeat(t, 8, axis=-2), 8, axis=-1)[..., :q, :k].copy()
        return m & ~(rng.random(shape) < 0.03)
    return rng.random(shape) < density


@st.composite
def dense_masks(draw, max_len: int = 70, batched: bool | None = None):
    """(mask, block): masks [H, q, k] or [B, H, q, k] with ragged lengths."""
    b = draw(st.booleans()) if batched is None else batched
    lead = (draw(st.integers(1, 3)), draw(st.integers(1, 2))) if b else (draw(st.integers(1, 3)),)
    q, k = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    structure = draw(st.sampled_from(["random", "band", "tiles"]))
    m = random_mask(lead + (q, k), draw(st.integers(0, 2**31)), draw(st.sampled_from([0.05, 0.5, 0.95])), structure)
    block = (draw(st.sampled_from([1, 3, 8, 16])), draw(st.sampled_from([1, 5, 8, 16])))
    return m, block


@st.composite
def layouts(draw, max_len: int = 70, batched: bool | None = None):
    m, block = draw(dense_masks(max_len, batched))
    return Layout.from_dense(m, block, "random()").validate()
