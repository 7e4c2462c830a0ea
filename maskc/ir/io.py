"""Reading and writing layout files: ``.npz`` (zip of ``.npy``) and ``.safetensors``.

The schema (docs/format.md) is one flat set of named arrays, the same in both containers.
Loading treats the file as hostile: the container structure, every array header (dtype,
shape) and the sizes they imply are checked *before* any array data is read or any
buffer is allocated, decoded bytes are bounded (``max_bytes``), nothing is ever
unpickled, and the arrays are then validated as a :class:`Layout`. Every problem
raises :class:`~maskc.errors.LayoutFormatError` (a ``ValueError``) naming the file and
the field.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.ir.io import dumps, loads
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> loads(dumps(lay)) == lay, loads(dumps(lay, "safetensors")) == lay
    (True, True)
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.layout import FORMAT_VERSION, Layout, _ceil_div
from maskc.ir.validate import MAX_BATCH, MAX_BLOCK, MAX_LEN, MAX_SLICES

#: Largest file maskc agrees to open (bytes); larger files are refused before reading.
MAX_FILE_BYTES = 8 * 2**30
#: Default bound on the decoded array bytes of one file (all fields together).
DEFAULT_MAX_BYTES = 4 * 2**30
#: Longest stored pattern text (utf-8 bytes).
MAX_TEXT_BYTES = 1 << 20
#: Largest safetensors JSON header accepted (bytes).
MAX_SAFETENSORS_HEADER = 1 << 20
#: Most members an .npz layout file may have.
MAX_MEMBERS = 64
#: Oldest and newest format versions this maskc reads.
MIN_READ_VERSION = 1

#: field -> (little-endian dtype, ndim). Scalars are 0-d int64 (shape (1,) is accepted too).
SCHEMA: dict[str, tuple[str, int]] = {
    "format_version": ("<i8", 0),
    "q_len": ("<i8", 0),
    "kv_len": ("<i8", 0),
    "block_q": ("<i8", 0),
    "block_k": ("<i8", 0),
    "row_ptr": ("<i8", 2),
    "col_idx": ("<i4", 1),
    "kind": ("|i1", 1),
    "partial_id": ("<i4", 1),
    "masks": ("|u1", 3),
    "pattern_text": ("|u1", 1),
    "q_offset": ("<i8", 0),
    "batch": ("<i8", 0),
}
#: Fields added by format version 2 (absent from version 1 files) and their version-1 values.
V2_FIELDS: dict[str, int] = {"q_offset": 0, "batch": 1}
_SCALARS = ("format_version", "q_len", "kv_len", "block_q", "block_k", "q_offset", "batch")
_ARRAYS = ("row_ptr", "col_idx", "kind", "partial_id", "masks")
_ST_DTYPES = {"I64": "<i8", "I32": "<i4", "I8": "|i1", "U8": "|u1"}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_ST_KNOWN = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
             "F64", "I64", "U64"}
_CHUNK = 1 << 24

Format = Literal["npz", "safetensors"]


def _err(source: str, msg: str) -> LayoutFormatError:
    return LayoutFormatError(f"{source}: {msg}")


def _check_members(present, source: str) -> None:
    """Every schema field must be present, except that a version-1 file lacks the V2_FIELDS."""
    missing = set(SCHEMA) - set(present)
    if missing and missing != set(V2_FIELDS):
        raise _err(source, f"missing field(s) {sorted(missing)}; is this a maskc layout file?")


def _check_version_fields(scalars: dict[str, int], present, source: str) -> None:
    """Version 1 files have no V2_FIELDS (their values are the defaults); version >= 2 files have all."""
    v2 = set(V2_FIELDS) & set(present)
    if scalars["format_version"] >= 2 and v2 != set(V2_FIELDS):
        raise _err(source, f"format version {scalars['format_version']} needs the field(s) "
                           f"{sorted(set(V2_FIELDS) - v2)}")
    if scalars["format_version"] == 1 and v2:
        raise _err(source, f"format version 1 has no field(s) {sorted(v2)}")
    for k, default in V2_FIELDS.items():
        scalars.setdefault(k, default)


# ----------------------------------------------------------------------------- writing
def layout_to_arrays(lay: Layout) -> dict[str, np.ndarray]:
    """The layout as the flat dict of arrays of the file schema (see :data:`SCHEMA`)."""
    out: dict[str, np.ndarray] = {"format_version": np.array(FORMAT_VERSION, dtype="<i8")}
    for name in ("q_len", "kv_len", "block_q", "block_k", "q_offset", "batch"):
        out[name] = np.array(int(getattr(lay, name)), dtype="<i8")
    for name in _ARRAYS:
        out[name] = np.ascontiguousarray(np.asarray(getattr(lay, name)), dtype=SCHEMA[name][0])
    out["pattern_text"] = np.frombuffer(lay.pattern_text.encode("utf-8"), dtype=np.uint8).copy()
    return out


def _safetensors_bytes(arrs: dict[str, np.ndarray]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "maskc-layout", "format_version": str(FORMAT_VERSION)}}
    blobs, off = [], 0
    for name in sorted(arrs):
        a = np.ascontiguousarray(arrs[name], dtype=SCHEMA[name][0])
        b = a.tobytes()
        header[name] = {"dtype": _ST_NAMES[SCHEMA[name][0]], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # the safetensors spec pads the header to 8 bytes
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def dumps(lay: Layout, format: Format = "npz") -> bytes:
    """The layout file as bytes (``format`` "npz" or "safetensors"); validates first."""
    lay.validate()
    arrs = layout_to_arrays(lay)
    if format == "safetensors":
        return _safetensors_bytes(arrs)
    if format != "npz":
        raise ValueError(f"format must be 'npz' or 'safetensors', got {format!r}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrs)
    return buf.getvalue()


def save_layout(lay: Layout, path: str | os.PathLike | IO[bytes], format: Format | None = None) -> None:
    """Write ``lay`` to ``path`` (a path or a binary file object).

    ``format`` defaults to "safetensors" when the name ends in ``.safetensors``, else "npz".
    """
    if format is None:
        name = str(path) if isinstance(path, (str, os.PathLike)) else str(getattr(path, "name", ""))
        format = "safetensors" if name.endswith(".safetensors") else "npz"
    data = dumps(lay, format)
    if isinstance(path, (str, os.PathLike)):
        Path(path).write_bytes(data)
    else:
        path.write(data)


# ----------------------------------------------------------------------------- reading
def _read_exact(f: IO[bytes], n: int, source: str, what: str) -> bytes:
    parts, left = [], n
    while left > 0:
        b = f.read(min(left, _CHUNK))
        if not b:
            raise _err(source, f"{what} is truncated ({n - left} of {n} bytes)")
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def _check_header(name: str, dtype: np.dtype, shape: Any, source: str) -> tuple[int, ...]:
    """Check one array header against :data:`SCHEMA`; return the shape."""
    want, ndim = SCHEMA[name]
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise _err(source, f"layout field {name!r} has dtype {dtype}; object / structured dtypes are refused")
    if dtype.str != want:
        raise _err(source, f"layout field {name!r} must have dtype {np.dtype(want)} ({want}), got {dtype} ({dtype.str})")
    if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise _err(source, f"layout field {name!r} has a malformed shape {shape!r}")
    shape = tuple(shape)
    ok_ndim = len(shape) == ndim or (ndim == 0 and shape == (1,))
    if not ok_ndim:
        raise _err(source, f"layout field {name!r} must have {ndim} dimension(s), got shape {shape}")
    if any(d < 0 for d in shape):
        raise _err(source, f"layout field {name!r} has a negative dimension in shape {shape}")
    return shape


def _nbytes(name: str, shape: tuple[int, ...]) -> int:
    n = np.dtype(SCHEMA[name][0]).itemsize
    for d in shape:
        n *= d
    return n


def _check_sizes(scalars: dict[str, int], shapes: dict[str, tuple[int, ...]], source: str, max_bytes: int) -> None:
    """Cross-check array shapes against the scalars before any array data is read."""
    v = scalars["format_version"]
    if v > FORMAT_VERSION:
        raise _err(source, f"layout field 'format_version' is {v}: written by a newer maskc (this one reads "
                           f"versions {MIN_READ_VERSION}..{FORMAT_VERSION}); upgrade maskc")
    if v < MIN_READ_VERSION:
        raise _err(source, f"layout field 'format_version' is {v}, not a valid version "
                           f"(this maskc reads {MIN_READ_VERSION}..{FORMAT_VERSION})")
    for k, hi in (("q_len", MAX_LEN), ("kv_len", MAX_LEN), ("block_q", MAX_BLOCK), ("block_k", MAX_BLOCK),
                  ("batch", MAX_BATCH)):
        if not 1 <= scalars[k] <= hi:
            raise _err(source, f"layout field {k!r} must be in [1, {hi}], got {scalars[k]}")
    if not 0 <= scalars["q_offset"] <= MAX_LEN - scalars["q_len"]:
        raise _err(source, f"layout field 'q_offset' must be in [0, {MAX_LEN} - q_len], got {scalars['q_offset']}")
    n_qb = _ceil_div(scalars["q_len"], scalars["block_q"])
    n_kb = _ceil_div(scalars["kv_len"], scalars["block_k"])
    H = shapes["row_ptr"][0]
    if not 1 <= H <= MAX_SLICES or shapes["row_ptr"][1] != n_qb + 1:
        raise _err(source, f"layout field 'row_ptr' must have shape [batch x heads in 1..{MAX_SLICES}, "
                           f"n_qb + 1 = {n_qb + 1}], got {list(shapes['row_ptr'])}")
    nnzb = shapes["col_idx"][0]
    if nnzb > H * n_qb * n_kb:
        raise _err(source, f"layout field 'col_idx' has {nnzb} blocks, more than heads*n_qb*n_kb = {H * n_qb * n_kb}")
    for k in ("kind", "partial_id"):
        if shapes[k][0] != nnzb:
            raise _err(source, f"layout field {k!r} has length {shapes[k][0]}, expected the {nnzb} blocks of col_idx")
    m = shapes["masks"]
    want = (scalars["block_q"], _ceil_div(scalars["block_k"], 8))
    if m[1:] != want or m[0] > nnzb:
        raise _err(source, f"layout field 'masks' must have shape [U <= {nnzb}, {want[0]}, {want[1]}], got {list(m)}")
    if shapes["pattern_text"][0] > MAX_TEXT_BYTES:
        raise _err(source, f"layout field 'pattern_text' is {shapes['pattern_text'][0]} bytes, above {MAX_TEXT_BYTES}")
    total = sum(_nbytes(k, s) for k, s in shapes.items())
    if total > max_bytes:
        raise _err(source, f"arrays would need {total:,} bytes, above max_bytes={max_bytes:,}; "
                           "pass a larger max_bytes if the file is trusted")


def _scalar_from_bytes(name: str, data: bytes) -> int:
    return int(np.frombuffer(data, dtype="<i8")[0])


def _finish(raw: dict[str, tuple[bytes, tuple[int, ...], bool]], source: str) -> Layout:
    arrs: dict[str, Any] = {}
    for name, (data, shape, fortran) in raw.items():
        dt = np.dtype(SCHEMA[name][0])
        a = np.frombuffer(data, dtype=dt)
        if SCHEMA[name][1] == 0:
            arrs[name] = int(a[0])
            continue
        a = a.reshape(shape, order="F" if fortran else "C")
        arrs[name] = np.ascontiguousarray(a, dtype=dt.newbyteorder("="))
    for k, default in V2_FIELDS.items():
        arrs.setdefault(k, default)
    return _build(arrs, source)


def _build(arrs: dict[str, Any], source: str) -> Layout:
    text = arrs["pattern_text"]
    try:
        pattern_text = text.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise _err(source, f"layout field 'pattern_text' is not valid utf-8 ({e})") from None
    lay = Layout(q_len=arrs["q_len"], kv_len=arrs["kv_len"], block_q=arrs["block_q"], block_k=arrs["block_k"],
                 row_ptr=arrs["row_ptr"], col_idx=arrs["col_idx"], kind=arrs["kind"],
                 partial_id=arrs["partial_id"], masks=arrs["masks"], pattern_text=pattern_text,
                 q_offset=arrs["q_offset"], batch=arrs["batch"])
    try:
        lay.validate()
    except LayoutFormatError as e:
        raise _err(source, str(e)) from None
    return lay


def _field_of(member: str, source: str) -> str:
    if not member.endswith(".npy") or member[:-4] not in SCHEMA:
        raise _err(source, f"unknown member {member[:80]!r}: a maskc layout file holds exactly the fields "
                           f"{sorted(SCHEMA)} (unknown fields are refused; see docs/format.md)")
    return member[:-4]


def _read_npz(f: IO[bytes], source: str, max_bytes: int) -> Layout:
    try:
        zf = zipfile.ZipFile(f)
    except LayoutFormatError:
        raise
    except Exception as e:
        raise _err(source, f"not a readable zip archive ({type(e).__name__}: {e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _err(source, f"zip has {len(infos)} members; a layout file has {len(SCHEMA)}")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = _field_of(info.filename, source)
            if name in members:
                raise _err(source, f"layout field {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise _err(source, f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _err(source, f"member {info.filename!r} uses compression method {info.compress_type}; "
                                   "only stored and deflated members are read")
            if info.file_size > max_bytes + 4096:
                raise _err(source, f"member {info.filename!r} declares {info.file_size:,} bytes, above "
                                   f"max_bytes={max_bytes:,}")
            members[name] = info
        _check_members(members, source)
        # pass 1: headers only (no array data is read, nothing sized by the file is allocated)
        heads: dict[str, tuple[tuple[int, ...], bool, int]] = {}
        for name, info in members.items():
            try:
                with zf.open(info) as m:
                    version = np.lib.format.read_magic(m)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
                    else:
                        raise ValueError(f"npy format version {version} is not read (1.0 and 2.0 are)")
                    offset = m.tell()
            except LayoutFormatError:
                raise
            except Exception as e:  # zip member errors, bad magic, malformed header dicts
                raise _err(source, f"layout field {name!r}: bad .npy header ({type(e).__name__}: {e})") from None
            shape = _check_header(name, dtype, shape, source)
            if not isinstance(fortran, bool):
                raise _err(source, f"layout field {name!r}: bad .npy header (fortran_order {fortran!r})")
            nbytes = _nbytes(name, shape)
            if offset + nbytes != info.file_size:
                raise _err(source, f"layout field {name!r}: header says {nbytes:,} data bytes but the member holds "
                                   f"{info.file_size - offset:,}")
            heads[name] = (shape, fortran, offset)
        # pass 2: scalars, then the size checks, then the arrays
        raw: dict[str, tuple[bytes, tuple[int, ...], bool]] = {}
        scalars: dict[str, int] = {}

        def read(name: str) -> bytes:
            shape, fortran, offset = heads[name]
            try:
                with zf.open(members[name]) as m:
                    _read_exact(m, offset, source, f"layout field {name!r}")
                    data = _read_exact(m, _nbytes(name, shape), source, f"layout field {name!r}")
            except LayoutFormatError:
                raise
            except Exception as e:  # zlib errors, CRC mismatches, truncated archives
                raise _err(source, f"layout field {name!r}: cannot read its data ({type(e).__name__}: {e})") from None
            raw[name] = (data, shape, fortran)
            return data

        for name in _SCALARS:
            if name in members:
                scalars[name] = _scalar_from_bytes(name, read(name))
        _check_version_fields(scalars, members, source)
        _check_sizes(scalars, {k: v[0] for k, v in heads.items() if k not in _SCALARS}, source, max_bytes)
        for name in (*_ARRAYS, "pattern_text"):
            read(name)
    return _finish(raw, source)


def _read_safetensors(f: IO[bytes], size: int, source: str, max_bytes: int) -> Layout:
    if size < 8:
        raise _err(source, "too short to be a safetensors file")
    f.seek(0)
    (n,) = struct.unpack("<Q", _read_exact(f, 8, source, "safetensors header length"))
    if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
        raise _err(source, f"safetensors header length {n:,} is impossible for a {size:,} byte file "
                           f"(or above {MAX_SAFETENSORS_HEADER:,}); not a maskc layout file")

    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate keys in the JSON header")
        return dict(pairs)

    try:
        header = json.loads(_read_exact(f, n, source, "safetensors header").decode("utf-8"), object_pairs_hook=no_dupes)
    except LayoutFormatError:
        raise
    except Exception as e:  # UnicodeDecodeError, JSONDecodeError, RecursionError
        raise _err(source, f"safetensors header is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise _err(source, "safetensors header must be a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _err(source, "safetensors __metadata__ must map strings to strings")
    data_len = size - 8 - n
    entries: dict[str, tuple[tuple[int, ...], int, int]] = {}
    for name, ent in header.items():
        if name not in SCHEMA:
            raise _err(source, f"unknown tensor {str(name)[:80]!r}: a maskc layout file holds exactly the fields "
                               f"{sorted(SCHEMA)} (unknown fields are refused; see docs/format.md)")
        if not isinstance(ent, dict) or set(ent) != {"dtype", "shape", "data_offsets"}:
            raise _err(source, f"layout field {name!r}: tensor entry must have exactly dtype, shape, data_offsets")
        st = ent["dtype"]
        if not isinstance(st, str) or st not in _ST_KNOWN:
            raise _err(source, f"layout field {name!r}: unknown safetensors dtype {str(st)[:40]!r}")
        dtype = np.dtype(_ST_DTYPES[st]) if st in _ST_DTYPES else None
        if dtype is None:
            raise _err(source, f"layout field {name!r} must have dtype {_ST_NAMES[SCHEMA[name][0]]}, got {st}")
        shape = _check_header(name, dtype, ent["shape"], source)
        offs = ent["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise _err(source, f"layout field {name!r}: data_offsets must be two integers")
        b, e = offs
        if not 0 <= b <= e <= data_len:
            raise _err(source, f"layout field {name!r}: data_offsets [{b}, {e}] outside the {data_len:,} data bytes")
        if e - b != _nbytes(name, shape):
            raise _err(source, f"layout field {name!r}: shape {list(shape)} needs {_nbytes(name, shape):,} bytes, "
                               f"data_offsets hold {e - b:,}")
        entries[name] = (shape, b, e)
    _check_members(entries, source)
    spans = sorted((b, e, k) for k, (_, b, e) in entries.items())
    for (b0, e0, k0), (b1, e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise _err(source, f"layout fields {k0!r} and {k1!r} overlap in the data buffer")
    raw: dict[str, tuple[bytes, tuple[int, ...], bool]] = {}

    def read(name: str) -> bytes:
        shape, b, e = entries[name]
        f.seek(8 + n + b)
        data = _read_exact(f, e - b, source, f"layout field {name!r}")
        raw[name] = (data, shape, False)
        return data

    scalars = {k: _scalar_from_bytes(k, read(k)) for k in _SCALARS if k in entries}
    _check_version_fields(scalars, entries, source)
    _check_sizes(scalars, {k: v[0] for k, v in entries.items() if k not in _SCALARS}, source, max_bytes)
    for name in (*_ARRAYS, "pattern_text"):
        read(name)
    return _finish(raw, source)


def _read(f: IO[bytes], size: int, source: str, max_bytes: int) -> Layout:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
    if size > MAX_FILE_BYTES:
        raise _err(source, f"file is {size:,} bytes, above the {MAX_FILE_BYTES:,} byte limit")
    f.seek(0)
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"PK":
        return _read_npz(f, source, max_bytes)
    if len(magic) == 4:
        return _read_safetensors(f, size, source, max_bytes)
    raise _err(source, "not a maskc layout file (neither an .npz archive nor a .safetensors file)")


def loads(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, source: str = "<bytes>") -> Layout:
    """Read a layout from the bytes of an .npz or .safetensors layout file (format sniffed).

    Example:
        >>> import numpy as np, maskc as mc
        >>> from maskc.ir.io import dumps, loads
        >>> loads(dumps(mc.Layout.from_dense(np.eye(4, dtype=bool), block=2))).nnz
        4
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads expects bytes, got {type(data).__name__}")
    return _read(io.BytesIO(bytes(data)), len(data), source, max_bytes)


def load(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> Layout:
    """Read and validate a layout file written by :meth:`Layout.save` (.npz or .safetensors).

    The container is recognised from the content, not the suffix. Never unpickles; any
    malformed content raises :class:`~maskc.errors.LayoutFormatError` (a ValueError)
    naming the field, before anything sized by the file is allocated. ``max_bytes``
    bounds the decoded arrays.

    Example:
        >>> import maskc as mc, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
        >>> mc.compile(mc.window(4), q_len=100, block=32).save(p)
        >>> mc.load(p).nnz
        490
    """
    path = Path(path)
    if not path.is_file():
        raise LayoutFormatError(f"{path}: no such layout file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        return _read(f, size, str(path), max_bytes)


def layout_from_arrays(arrs: dict[str, Any], source: str = "arrays") -> Layout:
    """Build and validate a Layout from a dict of the file schema (e.g. an opened npz).

    Applies the same header and size checks as :func:`load`.
    """
    if not isinstance(arrs, dict):
        raise _err(source, f"expected a dict of arrays, got {type(arrs).__name__}")
    unknown = sorted(str(k)[:80] for k in arrs if k not in SCHEMA)
    if unknown:
        raise _err(source, f"unknown field(s) {unknown}; a maskc layout holds exactly {sorted(SCHEMA)}")
    _check_members(arrs, source)
    raw: dict[str, tuple[bytes, tuple[int, ...], bool]] = {}
    for name in (n for n in SCHEMA if n in arrs):
        a = arrs[name]
        if not isinstance(a, np.ndarray):
            raise _err(source, f"layout field {name!r} must be a numpy array, got {type(a).__name__}")
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder in "=>" and a.dtype.itemsize > 1 else a.dtype
        shape = _check_header(name, dt, a.shape, source)
        raw[name] = (np.ascontiguousarray(a, dtype=SCHEMA[name][0]).tobytes(), shape, False)
    scalars = {k: _scalar_from_bytes(k, raw[k][0]) for k in _SCALARS if k in raw}
    _check_version_fields(scalars, raw, source)
    _check_sizes(scalars, {k: v[1] for k, v in raw.items() if k not in _SCALARS}, source, DEFAULT_MAX_BYTES)
    return _finish(raw, source)
