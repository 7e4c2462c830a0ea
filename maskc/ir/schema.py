"""The layout file schema: field names, dtypes, versions and the checks made before reading data.

A layout file (``.npz`` or ``.safetensors``, see docs/format.md) and the in-memory dict of
:meth:`Layout.to_arrays <maskc.ir.layout.Layout.to_arrays>` hold the same flat set of
named arrays, :data:`SCHEMA`. The checks here run on array *headers* (dtype, shape) and
scalars, before any array data is read, so a hostile file is refused before anything it
declares is allocated. Every problem raises :class:`~maskc.errors.LayoutFormatError`
naming the source and the field.

Example:
    >>> import numpy as np
    >>> from maskc.ir.schema import check_header
    >>> check_header("row_ptr", np.dtype("<i8"), (1, 3), "f.npz")
    (1, 3)
    >>> check_header("row_ptr", np.dtype("<i4"), (1, 3), "f.npz")
    Traceback (most recent call last):
    ...
    maskc.errors.LayoutFormatError: f.npz: layout field 'row_ptr' must have dtype int64 (<i8), got int32 (<i4)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.checks import MAX_TEXT_BYTES
from maskc.ir.kinds import FORMAT_VERSION, ceil_div
from maskc.limits import MAX_BATCH, MAX_BLOCK, MAX_LEN, MAX_SLICES

#: Largest file maskc agrees to open (bytes); larger files are refused before reading.
MAX_FILE_BYTES = 8 * 2**30
#: Default bound on the decoded array bytes of one file (all fields together).
DEFAULT_MAX_BYTES = 4 * 2**30
#: Oldest format version this maskc reads (the newest is FORMAT_VERSION).
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
SCALARS = ("format_version", "q_len", "kv_len", "block_q", "block_k", "q_offset", "batch")
ARRAYS = ("row_ptr", "col_idx", "kind", "partial_id", "masks")
#: Layout fields that are scalars (every scalar of the schema except the version).
LAYOUT_SCALARS = SCALARS[1:]


def err(source: str, msg: str) -> LayoutFormatError:
    """A LayoutFormatError that names the source."""
    return LayoutFormatError(f"{source}: {msg}")


def check_members(present: Iterable[str], source: str) -> None:
    """Every schema field must be present, except that a version-1 file lacks the V2_FIELDS."""
    missing = set(SCHEMA) - set(present)
    if missing and missing != set(V2_FIELDS):
        raise err(source, f"missing field(s) {sorted(missing)}; is this a maskc layout file?")


def check_version_fields(scalars: dict[str, int], present: Iterable[str], source: str) -> None:
    """Version 1 has no V2_FIELDS (their values are the defaults, filled in here); version >= 2 has all."""
    v2 = set(V2_FIELDS) & set(present)
    if scalars["format_version"] >= 2 and v2 != set(V2_FIELDS):
        raise err(source, f"format version {scalars['format_version']} needs the field(s) "
                          f"{sorted(set(V2_FIELDS) - v2)}")
    if scalars["format_version"] == 1 and v2:
        raise err(source, f"format version 1 has no field(s) {sorted(v2)}")
    for k, default in V2_FIELDS.items():
        scalars.setdefault(k, default)


def check_header(name: str, dtype: np.dtype, shape: Any, source: str) -> tuple[int, ...]:
    """Check one array header against :data:`SCHEMA`; return the shape."""
    want, ndim = SCHEMA[name]
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise err(source, f"layout field {name!r} has dtype {dtype}; object / structured dtypes are refused")
    if dtype.str != want:
        raise err(source, f"layout field {name!r} must have dtype {np.dtype(want)} ({want}), got {dtype} ({dtype.str})")
    if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise err(source, f"layout field {name!r} has a malformed shape {str(shape)[:80]!r}")
    shape = tuple(shape)
    if not (len(shape) == ndim or (ndim == 0 and shape == (1,))):
        raise err(source, f"layout field {name!r} must have {ndim} dimension(s), got shape {shape[:8]}")
    if any(d < 0 for d in shape):
        raise err(source, f"layout field {name!r} has a negative dimension in shape {shape}")
    return shape


def nbytes(name: str, shape: tuple[int, ...]) -> int:
    """Bytes of field ``name`` with ``shape`` (exact, any size)."""
    n = np.dtype(SCHEMA[name][0]).itemsize
    for d in shape:
        n *= d
    return n


def check_sizes(scalars: dict[str, int], shapes: Mapping[str, tuple[int, ...]], source: str, max_bytes: int) -> None:
    """Cross-check the array shapes against the scalars (and ``max_bytes``) before any array data is read."""
    v = scalars["format_version"]
    if v > FORMAT_VERSION:
        raise err(source, f"layout field 'format_version' is {v}: written by a newer maskc (this one reads "
                          f"versions {MIN_READ_VERSION}..{FORMAT_VERSION}); upgrade maskc")
    if v < MIN_READ_VERSION:
        raise err(source, f"layout field 'format_version' is {v}, not a valid version "
                          f"(this maskc reads {MIN_READ_VERSION}..{FORMAT_VERSION})")
    for k, hi in (("q_len", MAX_LEN), ("kv_len", MAX_LEN), ("block_q", MAX_BLOCK), ("block_k", MAX_BLOCK),
                  ("batch", MAX_BATCH)):
        if not 1 <= scalars[k] <= hi:
            raise err(source, f"layout field {k!r} must be in [1, {hi}], got {scalars[k]}")
    if not 0 <= scalars["q_offset"] <= MAX_LEN - scalars["q_len"]:
        raise err(source, f"layout field 'q_offset' must be in [0, {MAX_LEN} - q_len], got {scalars['q_offset']}")
    n_qb = ceil_div(scalars["q_len"], scalars["block_q"])
    n_kb = ceil_div(scalars["kv_len"], scalars["block_k"])
    S = shapes["row_ptr"][0]
    if not 1 <= S <= MAX_SLICES or shapes["row_ptr"][1] != n_qb + 1:
        raise err(source, f"layout field 'row_ptr' must have shape [batch x heads in 1..{MAX_SLICES}, "
                          f"n_qb + 1 = {n_qb + 1}], got {list(shapes['row_ptr'])}")
    nnzb = shapes["col_idx"][0]
    if nnzb > S * n_qb * n_kb:
        raise err(source, f"layout field 'col_idx' has {nnzb} blocks, more than slices*n_qb*n_kb = {S * n_qb * n_kb}")
    for k in ("kind", "partial_id"):
        if shapes[k][0] != nnzb:
            raise err(source, f"layout field {k!r} has length {shapes[k][0]}, expected the {nnzb} blocks of col_idx")
    m = shapes["masks"]
    want = (scalars["block_q"], ceil_div(scalars["block_k"], 8))
    if m[1:] != want or m[0] > nnzb:
        raise err(source, f"layout field 'masks' must have shape [U <= {nnzb}, {want[0]}, {want[1]}], got {list(m)}")
    if shapes["pattern_text"][0] > MAX_TEXT_BYTES:
        raise err(source, f"layout field 'pattern_text' is {shapes['pattern_text'][0]:,} bytes, above "
                          f"{MAX_TEXT_BYTES:,}")
    total = sum(nbytes(k, s) for k, s in shapes.items())
    if total > max_bytes:
        raise err(source, f"arrays would need {total:,} bytes, above max_bytes={max_bytes:,}; "
                          "pass a larger max_bytes if the file is trusted")


def check_max_bytes(max_bytes: Any) -> int:
    """``max_bytes`` must be a non-negative int."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
        raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}"[:200])
    return int(max_bytes)


def check_array_dict(arrs: Any, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Run every check :func:`maskc.load` runs on a file's contents over a dict of numpy arrays.

    Returns the Layout fields (see :func:`layout_fields`).
    """
    if not isinstance(arrs, dict):
        hint = ("; np.load(...) of a layout file returns an NpzFile: pass the path to maskc.load instead, which "
                "checks the archive itself") if hasattr(arrs, "zip") else ""
        raise err(source, f"expected a dict of numpy arrays, got {type(arrs).__name__}{hint}")
    unknown = sorted(str(k)[:80] for k in arrs if k not in SCHEMA)
    if unknown:
        raise err(source, f"unknown field(s) {unknown[:8]}; a maskc layout holds exactly {sorted(SCHEMA)}")
    check_members(arrs, source)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in arrs:
        a = arrs[name]
        if not isinstance(a, np.ndarray):
            raise err(source, f"layout field {name!r} must be a numpy array, got {type(a).__name__}")
        shapes[name] = check_header(name, a.dtype, a.shape, source)
    scalars = {k: int(arrs[k].reshape(-1)[0]) for k in SCALARS if k in arrs}
    check_version_fields(scalars, arrs, source)
    check_sizes(scalars, {k: v for k, v in shapes.items() if k not in SCALARS}, source, check_max_bytes(max_bytes))
    return layout_fields(arrs, source)


def layout_fields(arrs: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Keyword arguments of ``Layout(...)`` from checked schema arrays (V2 fields default for version 1)."""
    out: dict[str, Any] = {}
    for k in LAYOUT_SCALARS:
        out[k] = int(np.asarray(arrs[k]).reshape(-1)[0]) if k in arrs else V2_FIELDS[k]
    for k in ARRAYS:
        a = np.asarray(arrs[k])
        out[k] = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    try:
        out["pattern_text"] = np.asarray(arrs["pattern_text"]).tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise err(source, f"layout field 'pattern_text' is not valid utf-8 ({e})") from None
    return out


def schema_arrays(fields: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The flat dict of arrays of the file schema from a layout's fields (see :data:`SCHEMA`)."""
    out: dict[str, np.ndarray] = {"format_version": np.array(FORMAT_VERSION, dtype="<i8")}
    for name in LAYOUT_SCALARS:
        out[name] = np.array(int(fields[name]), dtype="<i8")
    for name in ARRAYS:
        out[name] = np.ascontiguousarray(np.asarray(fields[name]), dtype=SCHEMA[name][0])
    out["pattern_text"] = np.frombuffer(str(fields["pattern_text"]).encode("utf-8"), dtype=np.uint8).copy()
    return out
