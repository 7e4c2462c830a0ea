"""Hostile sizes in layout files and array dicts: refused or loaded with memory proportional to
the input (measured with tracemalloc, which sees numpy's allocations), and the in-memory
constructor applies exactly the checks the file reader applies."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest

import maskc as mc
from maskc.errors import LayoutFormatError
from maskc.ir.checks import MAX_TEXT_BYTES
from maskc.ir.io import dumps, layout_from_arrays, loads
from maskc.ir.kinds import PARTIAL, ceil_div
from maskc.ir.layout import Layout
from maskc.ir.masks import pack_masks

from ir_cases import random_mask


def peak_bytes(fn):
    """(result, peak traced bytes) of fn()."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def far_key_layout(kv_len: int, block: int) -> Layout:
    """Two query blocks whose only blocks are the first and the (ragged) last key block."""
    n_kb = ceil_div(kv_len, block)
    last_cols = kv_len - (n_kb - 1) * block
    mask = np.zeros((1, block, block), bool)
    mask[0, :, : max(1, last_cols - 1) if last_cols > 1 else 1] = True
    mask[0, -1, 0] = bool(last_cols > 1) or mask[0, -1, 0]
    kind = np.array([2, PARTIAL, 2, PARTIAL], np.int8)
    lay = Layout(q_len=2 * block, kv_len=kv_len, block_q=block, block_k=block,
                 row_ptr=np.array([[0, 2, 4]], np.int64), col_idx=np.array([0, n_kb - 1] * 2, np.int32),
                 kind=kind, partial_id=np.array([-1, 0, -1, 0], np.int32), masks=pack_masks(mask))
    if last_cols == 1:  # a one-column tail cannot hold a partial block: make it full
        lay = Layout.from_blocks(2 * block, kv_len, block, [0] * 4, [0, 0, 1, 1], [0, n_kb - 1] * 2)
    return lay.validate()


@pytest.mark.parametrize("block", [1, 8])
def test_absurd_kv_len_costs_what_the_file_holds(block):
    """A 2 KB file declaring kv_len 2**31 - 1 used to allocate 2.2 GB (block 8) or fail with MemoryError (block 1)."""
    lay = far_key_layout(2**31 - 1, block)
    blob = dumps(lay)
    assert len(blob) < 4096
    back, peak = peak_bytes(lambda: loads(blob))
    assert back == lay and peak < 8 << 20, peak
    (nnz, counts), peak = peak_bytes(lambda: (back.nnz, back.row_counts()))
    assert nnz == int(back.block_nnz.sum()) == lay.nnz and counts.shape == (1, 2 * block)
    assert peak < 8 << 20, peak


def test_compressed_row_pointers_decode_without_blowup():
    """A small compressed file whose row_ptr inflates to tens of MB: peak memory stays ~ the decoded size."""
    q_len = 6_000_000
    arrs = Layout.from_blocks(q_len, 16, (1, 16), [], [], []).to_arrays()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrs)
    blob = buf.getvalue()
    decoded = arrs["row_ptr"].nbytes
    assert len(blob) * 100 < decoded  # the file is a small fraction of what it declares
    lay, peak = peak_bytes(lambda: loads(blob))
    assert lay.q_len == q_len and lay.nnz_blocks == 0
    assert peak < 1.6 * decoded, (peak, decoded)
    with pytest.raises(LayoutFormatError, match="max_bytes"):
        loads(blob, max_bytes=decoded // 2)


def test_validation_memory_is_proportional_to_the_arrays():
    lay = far_key_layout(2**31 - 1, 64)
    _, peak = peak_bytes(lay.validate)
    assert peak < 4 << 20, peak


def test_pattern_text_limit_is_the_same_in_memory_and_in_files(tmp_path):
    base = Layout.from_dense(np.eye(8, dtype=bool), 4)
    long = Layout(**{**{k: getattr(base, k) for k in ("q_len", "kv_len", "block_q", "block_k", "row_ptr",
                                                     "col_idx", "kind", "partial_id", "masks")},
                     "pattern_text": "é" * (MAX_TEXT_BYTES // 2)})
    long.validate()
    p = tmp_path / "long.npz"
    long.save(p)
    assert mc.load(p).pattern_text == long.pattern_text
    too_long = Layout(**{**{k: getattr(long, k) for k in ("q_len", "kv_len", "block_q", "block_k", "row_ptr",
                                                         "col_idx", "kind", "partial_id", "masks")},
                         "pattern_text": long.pattern_text + "x"})
    with pytest.raises(LayoutFormatError, match="pattern_text"):
        too_long.validate()
    arrs = long.to_arrays()
    arrs["pattern_text"] = np.concatenate([arrs["pattern_text"], np.frombuffer(b"x", np.uint8)])
    for fn in (lambda: loads(npz(arrs)), lambda: layout_from_arrays(arrs)):
        with pytest.raises(LayoutFormatError, match="pattern_text"):
            fn()


def test_a_long_compiled_text_validates_and_saves(tmp_path):
    lens = np.random.default_rng(0).integers(1, 9, size=3_000).tolist()
    lay = mc.compile(mc.segments(lens), q_len=int(sum(lens)), block=512)
    assert len(lay.pattern_text) > 6_000
    lay.validate().save(tmp_path / "seg.safetensors")
    assert mc.load(tmp_path / "seg.safetensors") == lay


def npz(arrs: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrs)
    return buf.getvalue()


def outcome(fn):
    try:
        return ("ok", fn())
    except LayoutFormatError as e:
        return ("refused", str(e).split(": ", 1)[-1])


def mutated_dicts(lay: Layout, rng: np.random.Generator, n: int):
    arrs = lay.to_arrays()
    names = sorted(arrs)
    for _ in range(n):
        d = {k: v.copy() for k, v in arrs.items()}
        name = names[rng.integers(len(names))]
        a = d[name]
        op = rng.integers(6)
        if op == 0 and a.size:
            a.reshape(-1)[rng.integers(a.size)] = np.array(rng.integers(-3, 300)).astype(a.dtype)
        elif op == 1:
            d[name] = a.astype(rng.choice(["<i8", "<i4", "|i1", "|u1", ">i8", "<f8"]))
        elif op == 2:
            d[name] = a.reshape((1,) + a.shape) if a.ndim < 3 else a.reshape(-1)
        elif op == 3:
            del d[name]
        elif op == 4 and a.ndim:
            d[name] = a[: max(0, a.shape[0] - 1)]
        else:
            d[name] = np.asarray(rng.integers(0, 2**31), dtype=a.dtype)
        yield d


def test_layout_from_arrays_agrees_with_the_file_reader():
    rng = np.random.default_rng(13)
    agreed = refused = 0
    for seed, block in ((1, 8), (2, (4, 16)), (3, 3)):
        lay = Layout.from_dense(random_mask((2, 30, 21), seed, 0.4, "tiles"), block, "t()")
        for d in mutated_dicts(lay, rng, 150):
            a, b = outcome(lambda: layout_from_arrays(d)), outcome(lambda: loads(npz(d)))
            assert a[0] == b[0], (a, b)
            if a[0] == "ok":
                assert a[1] == b[1]
            else:
                refused += 1
            agreed += 1
    assert agreed == 450 and refused > 300


def test_layout_from_arrays_refuses_what_load_refuses():
    lay = Layout.from_dense(random_mask((1, 20, 20), 4), 8)
    blob = npz(lay.to_arrays())
    with np.load(io.BytesIO(blob)) as f:
        with pytest.raises(LayoutFormatError, match="maskc.load"):
            layout_from_arrays(f)
    d = lay.to_arrays()
    d["row_ptr"] = d["row_ptr"].astype(">i8")
    for fn in (lambda: layout_from_arrays(d), lambda: loads(npz(d))):
        with pytest.raises(LayoutFormatError, match="row_ptr"):
            fn()
    d = lay.to_arrays()
    d["row_ptr"] = d["row_ptr"].tolist()
    with pytest.raises(LayoutFormatError, match="numpy array"):
        layout_from_arrays(d)
    with pytest.raises(LayoutFormatError, match="max_bytes"):
        layout_from_arrays(lay.to_arrays(), max_bytes=10)
