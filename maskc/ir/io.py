"""Reading and writing layout files: ``.npz`` (zip of ``.npy``) and ``.safetensors``.

The schema (docs/format.md) is one flat set of named arrays, the same in both containers.
Loading treats the file as hostile: the container structure, every array header (dtype,
shape) and the sizes they imply are checked *before* any array data is read or any
buffer is allocated, decoded bytes are bounded (``max_bytes``), nothing is ever
unpickled, and the arrays are then validated as a :class:`Layout`. Every problem
raises :class:`~maskc.errors.LayoutFormatError` (a ``ValueError``) naming the file and
the field. The container checks live in :mod:`maskc.ir.containers`, the schema in
:mod:`maskc.ir.schema`.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.ir.io import dumps, loads
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> loads(dumps(lay)) == lay, loads(dumps(lay, "safetensors")) == lay
    (True, True)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir import containers
from maskc.ir.containers import MAX_MEMBERS, MAX_SAFETENSORS_HEADER, Format  # noqa: F401  (public limits)
from maskc.ir.layout import Layout
from maskc.ir.schema import (  # noqa: F401  (the schema, re-exported)
    DEFAULT_MAX_BYTES, MAX_FILE_BYTES, MIN_READ_VERSION, SCHEMA, V2_FIELDS, check_max_bytes, layout_fields,
)
from maskc.ir.checks import MAX_TEXT_BYTES  # noqa: F401

__all__ = ["load", "loads", "dumps", "save_layout", "layout_to_arrays", "layout_from_arrays", "SCHEMA"]


def layout_to_arrays(lay: Layout) -> dict[str, np.ndarray]:
    """The layout as the flat dict of arrays of the file schema (see :meth:`Layout.to_arrays`)."""
    return lay.to_arrays()


def layout_from_arrays(arrs: dict[str, Any], source: str = "arrays", max_bytes: int = DEFAULT_MAX_BYTES) -> Layout:
    """Build and validate a Layout from a dict of the file schema (see :meth:`Layout.from_arrays`).

    Applies exactly the checks :func:`load` applies to a file's contents.
    """
    return Layout.from_arrays(arrs, source, max_bytes)


def dumps(lay: Layout, format: Format = "npz") -> bytes:
    """The layout file as bytes (``format`` "npz" or "safetensors"); validates first."""
    return containers.encode(lay.validate().to_arrays(), format)


def save_layout(lay: Layout, path: str | os.PathLike | IO[bytes], format: Format | None = None) -> None:
    """Write ``lay`` to ``path`` (see :meth:`Layout.save`)."""
    lay.save(path, format)


def _read(f: IO[bytes], size: int, source: str, max_bytes: int) -> Layout:
    arrs = containers.read(f, size, source, check_max_bytes(max_bytes), MAX_FILE_BYTES)
    return Layout._checked(layout_fields(arrs, source), source)


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
    return _read(io.BytesIO(data), len(data), source, max_bytes)


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
    with open(path, "rb") as f:
        return _read(f, os.path.getsize(path), str(path), max_bytes)
