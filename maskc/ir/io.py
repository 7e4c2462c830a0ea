"""Reading and writing layout files (.npz with allow_pickle=False; .safetensors).

See docs/format.md for the schema. Loading validates every field before use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.layout import FORMAT_VERSION, Layout

#: Largest file maskc agrees to read (bytes); larger files are refused before reading.
MAX_FILE_BYTES = 8 * 2**30
_ARRAYS = ("row_ptr", "col_idx", "kind", "partial_id", "masks")
_SCALARS = ("format_version", "q_len", "kv_len", "block_q", "block_k")
#: Longest stored pattern text (bytes).
MAX_TEXT_BYTES = 1 << 20


def layout_to_arrays(lay: Layout) -> dict[str, np.ndarray]:
    """The layout as a flat dict of numpy arrays (the file schema)."""
    out = {name: np.asarray(getattr(lay, name)) for name in _ARRAYS}
    out["format_version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    for name in ("q_len", "kv_len", "block_q", "block_k"):
        out[name] = np.array(getattr(lay, name), dtype=np.int64)
    out["pattern_text"] = np.frombuffer(lay.pattern_text.encode("utf-8"), dtype=np.uint8).copy()
    return out


def layout_from_arrays(arrs: dict[str, np.ndarray], source: str = "arrays") -> Layout:
    """Build and validate a Layout from the file schema; LayoutFormatError on any problem."""
    missing = [k for k in (*_SCALARS, *_ARRAYS, "pattern_text") if k not in arrs]
    if missing:
        raise LayoutFormatError(f"{source}: missing field(s) {missing}; is this a maskc layout file?")
    scal = {}
    for k in _SCALARS:
        a = arrs[k]
        if a.shape != () or a.dtype.kind not in "iu":
            raise LayoutFormatError(f"{source}: layout field {k!r} must be an integer scalar, got dtype {a.dtype} shape {a.shape}")
        scal[k] = int(a)
    if scal["format_version"] != FORMAT_VERSION:
        raise LayoutFormatError(
            f"{source}: layout field 'format_version' is {scal['format_version']}, this maskc reads version "
            f"{FORMAT_VERSION}; re-export the layout with a matching maskc"
        )
    text = arrs["pattern_text"]
    if text.dtype != np.uint8 or text.ndim != 1 or text.size > MAX_TEXT_BYTES:
        raise LayoutFormatError(f"{source}: layout field 'pattern_text' must be utf-8 bytes (uint8, at most {MAX_TEXT_BYTES})")
    try:
        pattern_text = text.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise LayoutFormatError(f"{source}: layout field 'pattern_text' is not valid utf-8 ({e})") from None
    lay = Layout(
        q_len=scal["q_len"], kv_len=scal["kv_len"], block_q=scal["block_q"], block_k=scal["block_k"],
        row_ptr=arrs["row_ptr"], col_idx=arrs["col_idx"], kind=arrs["kind"],
        partial_id=arrs["partial_id"], masks=arrs["masks"], pattern_text=pattern_text,
    )
    try:
        lay.validate()
    except LayoutFormatError as e:
        raise LayoutFormatError(f"{source}: {e}") from None
    return lay


def save_layout(lay: Layout, path) -> None:
    """Write ``lay`` to ``path``: safetensors if the name ends in .safetensors, else npz."""
    path = Path(path)
    arrs = layout_to_arrays(lay)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v.reshape(-1) if v.ndim == 0 else v) for k, v in arrs.items()},
                  str(path), metadata={"maskc_scalars": ",".join(_SCALARS)})
        return
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrs)


def load(path) -> Layout:
    """Read and validate a layout file written by :meth:`Layout.save`.

    Never unpickles; any malformed content raises ValueError naming the field.

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
    if size > MAX_FILE_BYTES:
        raise LayoutFormatError(f"{path}: file is {size:,} bytes, above the {MAX_FILE_BYTES:,} byte limit")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file

            raw = load_file(str(path))
        except Exception as e:  # safetensors raises its own error types on corrupt headers
            raise LayoutFormatError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
        arrs = {k: (v.reshape(()) if k in _SCALARS and v.shape == (1,) else v) for k, v in raw.items()}
        return layout_from_arrays(arrs, str(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrs = {}
            for k in z.files:
                arrs[k] = z[k]
    except LayoutFormatError:
        raise
    except Exception as e:  # zipfile / numpy format errors on corrupt input
        raise LayoutFormatError(f"{path}: not a readable maskc .npz file ({type(e).__name__}: {e})") from None
    return layout_from_arrays(arrs, str(path))
