"""Hostile layout files: thousands of corrupted .npz / .safetensors files made from valid
layouts. Loading must raise LayoutFormatError (a ValueError) or return a valid Layout; never
another exception, never an unpickle, never a hang or an allocation sized by the file."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile

import numpy as np
import pytest

from maskc.errors import LayoutFormatError
from maskc.ir.io import SCHEMA, dumps, layout_to_arrays, load, loads
from maskc.ir.layout import Layout

from ir_cases import random_mask

UNPICKLED: list[str] = []


class Booby:
    """Unpickling this object records it: the loader must never get that far."""

    def __reduce__(self):
        return (UNPICKLED.append, ("unpickled!",))


def base_layouts() -> list[Layout]:
    out = [
        Layout.from_dense(random_mask((2, 37, 29), 1, 0.3), (16, 8), "random()"),
        Layout.from_dense(random_mask((1, 50, 50), 2, structure="band"), 16, "band()"),
        Layout.from_dense(random_mask((3, 70, 45), 3, 0.5, "tiles"), (32, 16)),
        Layout.from_dense(np.zeros((1, 5, 7), bool), 4),  # no blocks at all
        Layout.from_dense(np.ones((1, 9, 9), bool), 64, "full()"),  # ragged FULL
    ]
    return [lay.validate() for lay in out]


def npz_bytes(arrs: dict, compressed: bool = True) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrs)
    return buf.getvalue()


def zip_members(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def fake_npy(descr: str, shape: tuple, payload: bytes = b"") -> bytes:
    """An .npy whose header claims ``shape`` whatever the payload holds."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def st_bytes(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def structured_cases(lay: Layout) -> list[tuple[str, bytes]]:
    """Targeted corruptions of one layout's arrays, as npz (and safetensors) files."""
    good = layout_to_arrays(lay)
    cases: list[tuple[str, bytes]] = []

    def add(desc: str, **changes):
        arrs = dict(good)
        for k, v in changes.items():
            if v is None:
                arrs.pop(k)
            else:
                arrs[k] = v
        cases.append((desc, npz_bytes(arrs, compressed=False)))

    nnzb = lay.nnz_blocks
    for name in SCHEMA:
        a = good[name]
        for dt in ("<f4", "<i2", "<u8", ">i8", "?", "<c8", "<i8", "<i4", "|i1"):
            if np.dtype(dt) != a.dtype:
                add(f"{name} as {dt}", **{name: a.astype(dt)})
        add(f"{name} object", **{name: np.array([Booby()], dtype=object)})
        add(f"{name} missing", **{name: None})
        add(f"{name} 2-d", **{name: np.atleast_2d(a)[None]})
        add(f"{name} empty", **{name: a.reshape(-1)[:0]})
        add(f"{name} structured", **{name: np.zeros(3, dtype=[("a", "<i8"), ("b", "<i4")])})
    for name, val in (("q_len", 2**40), ("q_len", 0), ("q_len", -5), ("kv_len", 2**62), ("block_q", 0),
                      ("block_k", 10**6), ("block_q", 1), ("format_version", 2), ("format_version", 0),
                      ("format_version", -1), ("q_len", 1), ("kv_len", 1)):
        add(f"{name}={val}", **{name: np.array(val, dtype="<i8")})
    if nnzb:
        for name, bad in (("col_idx", 10**6), ("col_idx", -1), ("partial_id", 10**6), ("partial_id", -7),
                          ("kind", 3), ("kind", 0), ("kind", -1)):
            a = good[name].copy()
            a[nnzb // 2] = bad
            add(f"{name}[mid]={bad}", **{name: a})
        rp = good["row_ptr"].copy()
        rp[0, 1], rp[0, -2] = rp[0, -2] + 1, rp[0, 1]
        add("row_ptr swapped", row_ptr=rp)
        for v in (2**62, -2**63, 2**63 - 1, nnzb + 1):
            rp = good["row_ptr"].copy()
            rp.reshape(-1)[rp.size // 2] = v
            add(f"row_ptr mid={v}", row_ptr=rp)
        c = good["col_idx"].copy()
        add("col_idx reversed", col_idx=c[::-1].copy())
        add("col_idx/partial_id swapped", col_idx=good["partial_id"], partial_id=good["col_idx"])
    if lay.n_unique_masks:
        m = good["masks"].copy()
        m[0] = 0
        add("mask all zero", masks=m)
        m = good["masks"].copy()
        m[0] = 255
        add("mask all ones / bits past block_k", masks=m)
        add("masks duplicated rows", masks=np.concatenate([good["masks"], good["masks"]]))
    add("row_ptr/col_idx swapped names", row_ptr=good["col_idx"], col_idx=good["row_ptr"])
    add("pattern_text not utf-8", pattern_text=np.array([0xff, 0xfe, 0x80], np.uint8))
    add("extra key", extra=np.zeros(3))
    add("masks huge", masks=np.zeros((nnzb + 5, lay.block_q, (lay.block_k + 7) // 8), np.uint8))
    # hand-made zips: absurd header shapes (must be refused before allocating), duplicates, bombs
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in good.items()]
    for name in ("col_idx", "masks", "row_ptr", "pattern_text"):
        descr = SCHEMA[name][0]
        for shape in ((2**40,), (2**20, 2**20, 2**20), (2**62, 2), (-1,), (3,)):
            shp = shape if len(shape) == SCHEMA[name][1] else shape[:SCHEMA[name][1]] or ()
            repl = [(n, fake_npy(descr, shp, b"\x00" * 64) if n == f"{name}.npy" else d) for n, d in members]
            cases.append((f"{name} header shape {shp}", zip_members(repl)))
    cases.append(("duplicate member", zip_members(members + members[:1])))
    cases.append(("unknown member", zip_members(members + [("evil.pkl", b"cos\nsystem\n")])))
    cases.append(("too many members", zip_members(members + [(f"x{i}.npy", b"") for i in range(100)])))
    cases.append(("bad npy magic", zip_members([(n, b"NOTNUMPY" + d[8:]) for n, d in members])))
    cases.append(("npy version 9", zip_members([(n, d[:6] + b"\x09\x00" + d[8:]) for n, d in members])))
    bomb = [(n, npy_bytes(np.zeros(8 << 20, np.uint8)) if n == "pattern_text.npy" else d) for n, d in members]
    cases.append(("8 MiB pattern_text bomb", zip_members(bomb)))
    # safetensors: malformed headers
    st = dumps(lay, "safetensors")
    (n,) = struct.unpack("<Q", st[:8])
    header = json.loads(st[8:8 + n])
    data = st[8 + n:]
    cases.append(("st header length huge", struct.pack("<Q", 2**63) + st[8:]))
    cases.append(("st header length past end", struct.pack("<Q", len(st)) + st[8:]))
    cases.append(("st header not json", struct.pack("<Q", 5) + b"{{{{{" + data))
    cases.append(("st header deep nesting", struct.pack("<Q", 100000) + b"[" * 50000 + b"]" * 50000))
    cases.append(("st header list", struct.pack("<Q", 2) + b"[]"))
    cases.append(("st header not utf-8", struct.pack("<Q", 2) + b"\xff\xfe"))
    for key in ("col_idx", "masks", "q_len"):
        for field, val in (("dtype", "F32"), ("dtype", "NOPE"), ("dtype", 7), ("shape", [-1]), ("shape", [True]),
                           ("shape", [2**60, 2**60]), ("shape", "x"), ("data_offsets", [0, 10**12]),
                           ("data_offsets", [5, 2]), ("data_offsets", [0]), ("data_offsets", [0.5, 1])):
            h = json.loads(json.dumps(header))
            h[key][field] = val
            cases.append((f"st {key}.{field}={val!r}", st_bytes(h, data)))
        h = json.loads(json.dumps(header))
        h[key]["extra"] = 1
        cases.append((f"st {key} extra entry key", st_bytes(h, data)))
        h = json.loads(json.dumps(header))
        del h[key]
        cases.append((f"st missing {key}", st_bytes(h, data)))
    h = json.loads(json.dumps(header))
    h["evil"] = h["q_len"]
    cases.append(("st unknown tensor", st_bytes(h, data)))
    h = json.loads(json.dumps(header))
    h["__metadata__"] = {"a": 1}
    cases.append(("st metadata not str", st_bytes(h, data)))
    h = json.loads(json.dumps(header))
    h["kv_len"]["data_offsets"] = h["q_len"]["data_offsets"]
    cases.append(("st overlapping tensors", st_bytes(h, data)))
    raw = st[8:8 + n].replace(b'"q_len"', b'"kv_len"', 1)
    cases.append(("st duplicate key", st[:8] + raw + data))
    return cases


def random_mutations(blob: bytes, rng: np.random.Generator, count: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(count):
        b = bytearray(blob)
        op = rng.integers(0, 5)
        if op == 0:  # flip bytes
            for p in rng.integers(0, len(b), size=rng.integers(1, 9)):
                b[p] ^= 1 << int(rng.integers(0, 8))
            desc = "flip"
        elif op == 1:  # truncate
            b = b[: int(rng.integers(0, len(b)))]
            desc = "truncate"
        elif op == 2:  # random bytes at a random place
            p = int(rng.integers(0, len(b)))
            b[p:p + 8] = rng.integers(0, 256, size=8, dtype=np.uint8).tobytes()
            desc = "overwrite"
        elif op == 3:  # insert / delete a chunk
            p = int(rng.integers(0, len(b)))
            if rng.random() < 0.5:
                b[p:p] = rng.integers(0, 256, size=int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
            else:
                del b[p:p + int(rng.integers(1, 32))]
            desc = "splice"
        else:  # set a little-endian int64 somewhere to an extreme value
            p = int(rng.integers(0, max(1, len(b) - 8)))
            b[p:p + 8] = struct.pack("<q", int(rng.choice([2**62, -1, 2**31, 0, 2**63 - 1])))
            desc = "int64"
        out.append((desc, bytes(b)))
    return out


def check(desc: str, blob: bytes) -> str:
    t0 = time.perf_counter()
    try:
        lay = loads(blob, max_bytes=64 << 20)
        lay.validate()
        result = "ok"
    except LayoutFormatError as e:
        assert str(e), desc
        result = "refused"
    except Exception as e:  # pragma: no cover - the failure we are looking for
        raise AssertionError(f"{desc}: {type(e).__name__}: {e}") from e
    assert time.perf_counter() - t0 < 5.0, f"{desc}: took too long"
    assert not UNPICKLED, f"{desc}: the loader unpickled an object"
    return result


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_structured_corruptions_are_refused():
    seen = {"ok": 0, "refused": 0}
    total = 0
    for lay in base_layouts():
        for desc, blob in structured_cases(lay):
            seen[check(desc, blob)] += 1
            total += 1
    assert total > 400
    # nearly everything here is invalid; the few "ok" are harmless (e.g. a dtype that casts exactly)
    assert seen["refused"] > 0.9 * total, seen


def test_random_byte_corruptions():
    rng = np.random.default_rng(20261122)
    results = {"ok": 0, "refused": 0}
    t0 = time.perf_counter()
    n = 0
    for lay in base_layouts():
        for blob in (dumps(lay, "npz"), npz_bytes(layout_to_arrays(lay), compressed=False),
                     dumps(lay, "safetensors")):
            for desc, bad in random_mutations(blob, rng, 220):
                results[check(desc, bad)] += 1
                n += 1
    assert n >= 3000
    assert results["refused"] > n // 2, results
    assert time.perf_counter() - t0 < 60


def test_garbage_and_empty_inputs():
    rng = np.random.default_rng(7)
    for size in (0, 1, 3, 4, 8, 9, 64, 4096):
        for _ in range(20):
            check(f"garbage {size}", rng.integers(0, 256, size=size, dtype=np.uint8).tobytes())
    for blob in (b"", b"PK", b"PK\x03\x04", b"PK\x05\x06" + b"\x00" * 18, b"\x00" * 8, b"\x93NUMPY"):
        with pytest.raises(LayoutFormatError):
            loads(blob)


def test_absurd_header_refused_before_allocation():
    """A header claiming 2**40 elements must be refused from the header, not by a MemoryError."""
    lay = base_layouts()[0]
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in layout_to_arrays(lay).items()]
    repl = [(n, fake_npy("<i4", (2**40,)) if n == "col_idx.npy" else d) for n, d in members]
    with pytest.raises(LayoutFormatError, match="col_idx"):
        loads(zip_members(repl))


def test_max_bytes_bounds_decoding():
    lay = Layout.from_dense(random_mask((1, 300, 300), 5, 0.5), 8)
    blob = dumps(lay)
    assert loads(blob) == lay
    with pytest.raises(LayoutFormatError, match="max_bytes"):
        loads(blob, max_bytes=1000)


def test_valid_files_load_by_path_in_both_containers(tmp_path):
    for i, lay in enumerate(base_layouts()):
        for suffix in (".npz", ".safetensors"):
            p = tmp_path / f"l{i}{suffix}"
            lay.save(p)
            back = load(p)
            assert back == lay and back.pattern_text == lay.pattern_text
    with pytest.raises(LayoutFormatError, match="no such layout file"):
        load(tmp_path / "missing.npz")


def test_safetensors_library_interop(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors not installed: interop not checkable")
    lay = base_layouts()[0]
    d = st.load(dumps(lay, "safetensors"))  # the library reads our files
    assert np.array_equal(d["row_ptr"], lay.row_ptr)
    assert loads(st.save(d)) == lay  # and we read the library's


def test_error_names_field_and_file(tmp_path):
    lay = base_layouts()[0]
    arrs = layout_to_arrays(lay)
    arrs["col_idx"] = arrs["col_idx"].astype("<i8")
    p = tmp_path / "bad.npz"
    p.write_bytes(npz_bytes(arrs))
    with pytest.raises(LayoutFormatError, match=r"bad\.npz: layout field 'col_idx' must have dtype int32"):
        load(p)
    arrs = layout_to_arrays(lay)
    arrs["format_version"] = np.array(99, "<i8")
    with pytest.raises(LayoutFormatError, match="newer maskc"):
        loads(npz_bytes(arrs))
