"""Seeded corrupted layout files (.npz plain and compressed, .safetensors) for fuzzing, and the
check one file must pass: ``mc.load`` semantics (``loads``) return a valid layout or raise
LayoutFormatError; a layout that loads gives the same attention on two backends as an
independent float64 softmax over its own dense mask.

Example:
    >>> import random
    >>> rng = random.Random(0)
    >>> blobs = base_blobs()
    >>> check_file(blobs[0][1], rng)
    'checked'
    >>> len(corrupt(blobs[0][1], rng)) > 0
    True
"""

from __future__ import annotations

import io
import random
import struct
import zipfile

import numpy as np

import maskc as mc
from fuzz_attention import softmax64
from maskc.ir.io import dumps, layout_to_arrays, loads
from maskc.ir.layout import Layout

EXTREMES = [2**62, -1, 2**31, 2**31 - 1, 0, 2**63 - 1, -(2**63), 1 << 40, 255]


def base_layouts() -> list[Layout]:
    """A few small layouts of different kinds (partial and full blocks, heads, batch, offsets)."""
    rng = np.random.default_rng(5)
    return [
        mc.compile(mc.causal() & mc.window(9), q_len=40, block=8),
        mc.compile(mc.heads([mc.causal(), mc.offsets("primes")]), q_len=33, kv_len=29, block=(16, 8)),
        mc.compile(mc.document_mask([5, 9, 13]), q_len=27, block=4),
        mc.compile(mc.causal(), q_len=5, kv_len=37, q_offset=32, block=16),
        Layout.from_dense(rng.random((2, 3, 19, 23)) < 0.4, 8),
        Layout.from_dense(np.zeros((1, 6, 6), bool), 4),
    ]


def base_blobs() -> list[tuple[Layout, bytes]]:
    """Each base layout in each container: npz, compressed npz, safetensors."""
    out = []
    for lay in base_layouts():
        out.append((lay, dumps(lay)))
        out.append((lay, dumps(lay, "safetensors")))
        buf = io.BytesIO()
        np.savez_compressed(buf, **layout_to_arrays(lay))
        out.append((lay, buf.getvalue()))
    return out


def _byte_edit(b: bytearray, rng: random.Random) -> bytearray:
    op = rng.randrange(5)
    if not b:
        return bytearray(rng.randbytes(rng.randrange(64)))
    p = rng.randrange(len(b))
    if op == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == 1:
        b = b[:p]
    elif op == 2:
        b[p:p + 8] = rng.randbytes(8)
    elif op == 3:
        b[p:p] = rng.randbytes(rng.randint(1, 32)) if rng.random() < 0.5 else b""
        if rng.random() < 0.5:
            del b[p:p + rng.randint(1, 32)]
    else:
        b[p:p + 8] = struct.pack("<q", rng.choice(EXTREMES))
    return b


def _array_edit(lay: Layout, rng: random.Random) -> bytes:
    """Change one array of the layout (a value, dtype, shape, or drop it), re-save as npz."""
    arrs = {k: np.array(v) for k, v in layout_to_arrays(lay).items()}
    name = rng.choice(sorted(arrs))
    a = arrs[name]
    op = rng.randrange(7)
    if op == 0 and a.size:
        a.reshape(-1)[rng.randrange(a.size)] = np.array(rng.choice(EXTREMES)).astype(a.dtype)
    elif op == 1:
        arrs[name] = a.astype(rng.choice(["<i8", "<i4", "|i1", "|u1", ">i8", "<f8", "?"]))
    elif op == 2:
        arrs[name] = a[None] if a.ndim < 3 else a.reshape(-1)
    elif op == 3:
        del arrs[name]
    elif op == 4 and a.ndim:
        arrs[name] = a[: max(0, a.shape[0] - 1)]
    elif op == 5:
        arrs[name] = np.asarray(rng.choice(EXTREMES[:4])).astype(a.dtype)
    else:
        arrs["extra" if rng.random() < 0.5 else name] = np.zeros(rng.choice([0, 3, 1 << 16]), np.uint8)
    buf = io.BytesIO()
    (np.savez_compressed if rng.random() < 0.5 else np.savez)(buf, **arrs)
    return buf.getvalue()


def _zip_edit(blob: bytes, rng: random.Random) -> bytes:
    """Rebuild an npz zip with a duplicated, renamed, bombed or differently compressed member."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            members = [(i.filename, z.read(i)) for i in z.infolist()]
    except zipfile.BadZipFile:
        return blob
    op = rng.randrange(4)
    if op == 0:
        members.append(members[rng.randrange(len(members))])
    elif op == 1:
        k = rng.randrange(len(members))
        members[k] = (rng.choice(["x.npy", "../etc.npy", "masks", "a" * 300 + ".npy"]), members[k][1])
    elif op == 2:
        k = rng.randrange(len(members))
        members[k] = (members[k][0], members[k][1][:128] + b"\0" * (8 << 20))
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def corrupt(blob: bytes, rng: random.Random, lay: Layout | None = None) -> bytes:
    """One corrupted file made from ``blob`` (and its layout, for array-level edits)."""
    r = rng.random()
    if lay is not None and r < 0.35:
        return _array_edit(lay, rng)
    if r < 0.45 and blob[:2] == b"PK":
        return _zip_edit(blob, rng)
    b = bytearray(blob)
    for _ in range(rng.randint(1, 3)):
        b = _byte_edit(b, rng)
    return bytes(b)


def check_layout_answers(lay: Layout, rng: random.Random, max_cells: int = 1 << 16) -> bool:
    """For a small layout: reference and scipy backends equal a float64 softmax of its dense mask."""
    if lay.q_len * lay.kv_len * lay.heads * lay.batch > max_cells:
        return False
    d = lay.to_dense()
    mask = d if lay.batch > 1 else d[None]
    g = np.random.default_rng(rng.randrange(2**32))
    H = mask.shape[1]
    q = g.normal(size=(lay.batch, H, lay.q_len, 4))
    k, v = (g.normal(size=(lay.batch, H, lay.kv_len, 4)) for _ in range(2))
    want = softmax64(q, k, v, mask, 0.5)
    for name in ("reference", "scipy"):
        got = np.asarray(mc.backends.attention(q, k, v, lay, backend=name, scale=0.5))
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)
        assert np.isfinite(got).all() and err < 1e-10, f"{name} on a loaded layout: rel err {err}"
    return True


def check_file(blob: bytes, rng: random.Random) -> str:
    """Load ``blob``; a layout that loads must validate and give right answers."""
    lay = loads(blob, max_bytes=64 << 20)
    lay.validate()
    return "checked" if check_layout_answers(lay, rng) else "ok"
