"""The two containers of layout files: ``.npz`` (a zip of ``.npy``) and ``.safetensors``.

Reading treats the file as hostile. For both containers the structure and every array
header (dtype, shape) are checked against the schema, then the scalars are read and the
sizes the headers imply are cross-checked (:func:`maskc.ir.schema.check_sizes`), all
before any array data is read or any buffer sized by the file is allocated; decoded
bytes are bounded by ``max_bytes`` and nothing is ever unpickled. The safetensors
container is written and decoded by the ``safetensors`` package (which checks offsets,
coverage and dtypes); maskc reads its JSON header first only to refuse duplicate keys,
unknown fields and wrong dtypes or shapes before the package decodes anything.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import IO, Any, Literal

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.kinds import FORMAT_VERSION
from maskc.ir.schema import (
    ARRAYS, SCALARS, SCHEMA, check_header, check_members, check_sizes, check_version_fields, err, nbytes,
)

Format = Literal["npz", "safetensors"]
#: Most members an .npz layout file may have.
MAX_MEMBERS = 64
#: Largest safetensors JSON header accepted (bytes).
MAX_SAFETENSORS_HEADER = 1 << 20
_ST_DTYPES = {"I64": "<i8", "I32": "<i4", "I8": "|i1", "U8": "|u1"}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_CHUNK = 1 << 20


def _safetensors():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError("reading or writing .safetensors layout files needs the safetensors package: "
                          "pip install safetensors (or use the .npz format)") from None
    return safetensors


# ----------------------------------------------------------------------------- writing
def encode(arrs: dict[str, np.ndarray], format: Format = "npz") -> bytes:
    """The bytes of a layout file holding the schema arrays ``arrs``."""
    if format == "safetensors":
        st = _safetensors()
        meta = {"format": "maskc-layout", "format_version": str(FORMAT_VERSION)}
        return st.numpy.save({k: np.ascontiguousarray(v, dtype=SCHEMA[k][0]) for k, v in arrs.items()}, metadata=meta)
    if format != "npz":
        raise ValueError(f"format must be 'npz' or 'safetensors', got {format!r}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrs)
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading
def _read_into(f: IO[bytes], n: int, source: str, what: str) -> bytearray:
    """Exactly ``n`` bytes of ``f`` into one buffer (no second copy), or a LayoutFormatError."""
    buf = bytearray(n)
    view, pos = memoryview(buf), 0
    while pos < n:
        got = f.readinto(view[pos:pos + _CHUNK])  # type: ignore[attr-defined]
        if not got:
            raise err(source, f"{what} is truncated ({pos} of {n} bytes)")
        pos += got
    return buf


def _array(name: str, data: Any, shape: tuple[int, ...], fortran: bool = False) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.dtype(SCHEMA[name][0]))
    return a.reshape(shape, order="F" if fortran else "C")


def read_npz(f: IO[bytes], source: str, max_bytes: int) -> dict[str, np.ndarray]:
    """The checked schema arrays of an .npz layout file."""
    try:
        zf = zipfile.ZipFile(f)
    except Exception as e:
        raise err(source, f"not a readable zip archive ({type(e).__name__}: {e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise err(source, f"zip has {len(infos)} members; a layout file has {len(SCHEMA)}")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy") or info.filename[:-4] not in SCHEMA:
                raise err(source, f"unknown member {info.filename[:80]!r}: a maskc layout file holds exactly the "
                                  f"fields {sorted(SCHEMA)} (unknown fields are refused; see docs/format.md)")
            name = info.filename[:-4]
            if name in members:
                raise err(source, f"layout field {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise err(source, f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise err(source, f"member {info.filename!r} uses compression method {info.compress_type}; "
                                  "only stored and deflated members are read")
            if info.file_size > max_bytes + 4096:
                raise err(source, f"member {info.filename!r} declares {info.file_size:,} bytes, above "
                                  f"max_bytes={max_bytes:,}")
            members[name] = info
        check_members(members, source)
        # pass 1: headers only (no array data is read, nothing sized by the file is allocated)
        heads: dict[str, tuple[tuple[int, ...], bool, int]] = {}
        for name, info in members.items():
            try:
                with zf.open(info) as m:
                    version = np.lib.format.read_magic(m)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"npy format version {version} is not read (1.0 and 2.0 are)")
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(m)
                    offset = m.tell()
            except Exception as e:  # zip member errors, bad magic, malformed header dicts
                raise err(source, f"layout field {name!r}: bad .npy header ({type(e).__name__}: {e})") from None
            shape = check_header(name, dtype, shape, source)
            if not isinstance(fortran, bool):
                raise err(source, f"layout field {name!r}: bad .npy header (fortran_order {fortran!r})")
            if offset + nbytes(name, shape) != info.file_size:
                raise err(source, f"layout field {name!r}: header says {nbytes(name, shape):,} data bytes but the "
                                  f"member holds {info.file_size - offset:,}")
            heads[name] = (shape, fortran, offset)
        # pass 2: scalars, then the size checks, then the arrays
        out: dict[str, np.ndarray] = {}

        def read(name: str) -> np.ndarray:
            shape, fortran, offset = heads[name]
            try:
                with zf.open(members[name]) as m:
                    m.read(offset)
                    data = _read_into(m, nbytes(name, shape), source, f"layout field {name!r}")
            except LayoutFormatError:
                raise
            except Exception as e:  # zlib errors, CRC mismatches, truncated archives
                raise err(source, f"layout field {name!r}: cannot read its data ({type(e).__name__}: {e})") from None
            out[name] = _array(name, data, shape, fortran)
            return out[name]

        scalars = {k: int(read(k).reshape(-1)[0]) for k in SCALARS if k in members}
        check_version_fields(scalars, members, source)
        check_sizes(scalars, {k: v[0] for k, v in heads.items() if k not in SCALARS}, source, max_bytes)
        for name in (*ARRAYS, "pattern_text"):
            read(name)
    return out


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys in the JSON header")
    return dict(pairs)


def _header_length(first8: bytes, size: int, source: str) -> int:
    (n,) = struct.unpack("<Q", bytes(first8[:8]))
    if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
        raise err(source, f"safetensors header length {n:,} is impossible for a {size:,} byte file "
                          f"(or above {MAX_SAFETENSORS_HEADER:,}); not a maskc layout file")
    return n


def _safetensors_header(data: Any, size: int, source: str, max_bytes: int) -> dict[str, tuple[int, ...]]:
    """Check the JSON header (``data`` holds at least its first 8 + n bytes); return the field shapes."""
    n = _header_length(data, size, source)
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"), object_pairs_hook=_no_dupes)
    except Exception as e:  # UnicodeDecodeError, JSONDecodeError, RecursionError, duplicate keys
        raise err(source, f"safetensors header is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise err(source, "safetensors header must be a JSON object")
    header.pop("__metadata__", None)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, ent in header.items():
        if name not in SCHEMA:
            raise err(source, f"unknown tensor {str(name)[:80]!r}: a maskc layout file holds exactly the fields "
                              f"{sorted(SCHEMA)} (unknown fields are refused; see docs/format.md)")
        st = ent.get("dtype") if isinstance(ent, dict) else None
        want = _ST_NAMES[SCHEMA[name][0]]
        if st != want:
            raise err(source, f"layout field {name!r} must have dtype {want}, got {str(st)[:40]}")
        shapes[name] = check_header(name, np.dtype(SCHEMA[name][0]), ent.get("shape"), source)
    check_members(shapes, source)
    if size - 8 - n > max_bytes + 4096:
        raise err(source, f"the data buffer holds {size - 8 - n:,} bytes, above max_bytes={max_bytes:,}; "
                          "pass a larger max_bytes if the file is trusted")
    return shapes


def read_safetensors(data: Any, source: str, max_bytes: int) -> dict[str, np.ndarray]:
    """The checked schema arrays of the bytes of a .safetensors layout file."""
    if len(data) < 8:
        raise err(source, "too short to be a safetensors file")
    shapes = _safetensors_header(data, len(data), source, max_bytes)
    st = _safetensors()
    try:
        tensors = dict(st.deserialize(bytes(data)))
    except Exception as e:  # the package's SafetensorError: offsets, coverage, sizes
        raise err(source, f"not a valid safetensors file ({type(e).__name__}: {str(e)[:200]})") from None
    out = {k: _array(k, t["data"], shapes[k]) for k, t in tensors.items()}
    scalars = {k: int(out[k].reshape(-1)[0]) for k in SCALARS if k in out}
    check_version_fields(scalars, out, source)
    check_sizes(scalars, {k: v for k, v in shapes.items() if k not in SCALARS}, source, max_bytes)
    return out


def read(f: IO[bytes], size: int, source: str, max_bytes: int, max_file_bytes: int) -> dict[str, np.ndarray]:
    """The checked schema arrays of a layout file of either container (sniffed from the content)."""
    if size > max_file_bytes:
        raise err(source, f"file is {size:,} bytes, above the {max_file_bytes:,} byte limit")
    f.seek(0)
    magic = f.read(8)
    f.seek(0)
    if magic[:2] == b"PK":
        return read_npz(f, source, max_bytes)
    if len(magic) == 8:
        # the header is checked before the rest of the file is read
        n = _header_length(magic, size, source)
        _safetensors_header(_read_into(f, 8 + n, source, "safetensors header"), size, source, max_bytes)
        f.seek(0)
        return read_safetensors(_read_into(f, size, source, "file"), source, max_bytes)
    raise err(source, "not a maskc layout file (neither an .npz archive nor a .safetensors file)")
