"""Layout files round-trip (both containers, batched layouts, query offsets) and version-1 files load."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, strategies as st

import maskc as mc
from maskc.errors import LayoutFormatError
from maskc.ir.io import dumps, load, loads
from maskc.ir.layout import Layout

from ir_cases import layouts


@given(layouts(), st.integers(0, 1000), st.sampled_from(["npz", "safetensors"]))
def test_round_trip_keeps_every_field(lay, offset, fmt):
    lay = Layout.from_dense(lay.to_dense(), lay.block, lay.pattern_text, q_offset=offset)
    back = loads(dumps(lay, fmt))
    assert back == lay
    assert (back.q_offset, back.batch, back.pattern_text) == (offset, lay.batch, lay.pattern_text)
    assert Layout.from_arrays(lay.to_arrays()) == lay


def npz(arrs: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrs)
    return buf.getvalue()


def v1_arrays(lay: Layout) -> dict:
    arrs = lay.to_arrays()
    del arrs["q_offset"], arrs["batch"]
    arrs["format_version"] = np.array(1, "<i8")
    return arrs


def test_version_1_files_load_with_the_old_meaning(tmp_path):
    lay = mc.compile(mc.causal() & mc.window(9), q_len=70, block=16)
    back = loads(npz(v1_arrays(lay)))
    assert back == lay and (back.q_offset, back.batch) == (0, 1)
    st = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    p = tmp_path / "v1.safetensors"
    p.write_bytes(st.save(v1_arrays(lay)))
    assert load(p) == lay


def test_version_fields_must_match_the_version():
    lay = mc.compile(mc.causal(), q_len=40, block=16)
    arrs = lay.to_arrays()
    arrs["format_version"] = np.array(1, "<i8")  # a version-1 file has no q_offset / batch
    with pytest.raises(LayoutFormatError, match="format version 1 has no field"):
        loads(npz(arrs))
    arrs = lay.to_arrays()
    del arrs["batch"]
    with pytest.raises(LayoutFormatError, match=r"missing field\(s\) \['batch'\]"):
        loads(npz(arrs))
    del arrs["q_offset"]  # a version-2 file without both version-2 fields
    for fn in (lambda: loads(npz(arrs)), lambda: Layout.from_arrays(arrs)):
        with pytest.raises(LayoutFormatError, match="needs the field"):
            fn()


def test_batched_offset_layout_by_path(tmp_path):
    dense = np.random.default_rng(0).random((3, 2, 20, 33)) < 0.4
    lay = Layout.from_dense(dense, (8, 16), "x()", q_offset=13)
    for name in ("b.npz", "b.safetensors"):
        lay.save(tmp_path / name)
        back = mc.load(tmp_path / name)
        assert back == lay and back.to_dense().shape == (3, 2, 20, 33) and back.q_offset == 13
