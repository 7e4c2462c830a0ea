"""Large compile outputs are mapped without numpy's huge-page advice (maskc.compiler.alloc);
a Layout on such arrays behaves as any other: same arrays, files, exports, attention."""

import mmap

import numpy as np
import pytest
import torch

import maskc as mc
from maskc.compiler import alloc
from maskc.ir.io import dumps, loads


def _mapped(a) -> bool:
    """True when ``a`` (or what it views) is backed by an mmap."""
    while isinstance(a, (np.ndarray, memoryview)):
        a = a.base if isinstance(a, np.ndarray) else a.obj
    return isinstance(a, mmap.mmap)


def test_small_arrays_are_numpys_and_large_ones_mapped():
    assert not _mapped(alloc.empty(10, np.int32))
    big = alloc.full(alloc.PLAIN_PAGES_BYTES // 8, -1, np.int64)
    assert _mapped(big) and big.flags.writeable and (big == -1).all() and big.dtype == np.int64


@pytest.mark.parametrize("pattern", [mc.prime_bird(), mc.document_mask([300, 700, 1048]) & mc.window(200)])
def test_layout_on_mapped_arrays_is_the_same_layout(monkeypatch, pattern):
    want = mc.compile(pattern, 2048, block=16, cache=False)  # 16K tiles: jitted, not interpreted
    monkeypatch.setattr(alloc, "PLAIN_PAGES_BYTES", 1)  # every output array mapped
    lay = mc.compile(pattern, 2048, block=16, cache=False)
    assert _mapped(lay.col_idx) or _mapped(lay.partial_id)
    lay.validate()
    for f in ("row_ptr", "col_idx", "kind", "partial_id", "masks"):
        assert np.array_equal(getattr(lay, f), getattr(want, f)), f
    again = loads(dumps(lay))
    assert np.array_equal(again.to_dense(), want.to_dense())
    bm = mc.export.to_flex_block_mask(lay)
    assert bm is not None
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 2048, 32, generator=g) for _ in range(3))
    out = mc.attention(q, k, v, lay, backend="torch")
    ref = mc.attention(q.double(), k.double(), v.double(), want, backend="reference")
    assert torch.isfinite(out).all()
    assert torch.allclose(out.double(), ref, atol=2e-5, rtol=1e-4)
