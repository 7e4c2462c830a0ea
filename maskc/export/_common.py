"""Helpers shared by the exporters: argument checks, slice selection, the lossy-export policy
and numpy / torch conversion. Block-level work (tiles, extents, grids, constructors) is done
by :class:`~maskc.ir.layout.Layout` itself."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.kinds import normalize_block
from maskc.ir.layout import Layout
from maskc.limits import MAX_INT, check_int

__all__ = ["LossyExportWarning", "check_layout", "as_block", "positive_int", "select_head", "require_unbatched",
           "lossy_partial", "to_torch", "to_numpy", "int_array", "bool_array", "require_keys", "validated"]


class LossyExportWarning(UserWarning):
    """An export dropped information (partial-block detail); the target sees a superset mask."""


def check_layout(layout: Any, fn: str) -> Layout:
    """Return ``layout`` if it is a :class:`Layout`, else raise a TypeError naming ``fn``."""
    if not isinstance(layout, Layout):
        raise TypeError(f"{fn}: expected a maskc Layout, got {type(layout).__name__}; "
                        "build one with mc.compile(pattern, q_len) or mc.Layout.from_dense(mask)")
    return layout


def as_block(block: Any) -> tuple[int, int]:
    """``(block_q, block_k)`` from an int or a pair (see :func:`maskc.ir.kinds.normalize_block`)."""
    return normalize_block(block)


def positive_int(value: Any, name: str, hi: int = MAX_INT) -> int:
    """``value`` as an int in [1, hi] (TypeError for non-integers, ValueError out of range)."""
    return check_int(value, name, 1, hi)


def require_unbatched(layout: Layout, target: str) -> None:
    """Refuse a layout with a batch axis for a target that has none, naming the fix."""
    if layout.batch > 1:
        raise ValueError(f"{target} has no batch axis, but this layout stores {layout.batch} batch elements; "
                         "export each one: layout.for_batch(b)")


def select_head(layout: Layout, head: int | None, target: str) -> int:
    """The stored slice to export to a target that applies one mask to every head (and has no batch)."""
    require_unbatched(layout, target)
    if head is None:
        if layout.slices_identical():
            return 0
        raise ValueError(f"{target} applies one mask to every attention head, but this layout stores "
                         f"{layout.heads} different heads; pass head=h (one export per head)")
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= int(head) < layout.heads:
        raise ValueError(f"head must be an int in [0, {layout.heads}), got {head!r}"[:200])
    return int(head)


def lossy_partial(layout: Layout, target: str, strict: bool, alternative: str) -> None:
    """Warn (or raise when ``strict``) that partial-block detail is lost in ``target``."""
    n = layout.n_partial
    if not n:
        return
    msg = (f"{target} stores a block-level layout only: {n} partial block(s) of this layout "
           f"become fully allowed blocks, so the target attends to a superset of the maskc mask")
    if strict:
        raise ValueError(msg + f"; refused because strict=True ({alternative})")
    warnings.warn(msg + f" (pass strict=True to refuse; {alternative})", LossyExportWarning, stacklevel=3)


def to_torch(d: dict[str, Any], device: Any) -> dict[str, Any]:
    """Convert the numpy arrays of ``d`` to torch tensors on ``device`` (None: keep numpy)."""
    if device is None:
        return d
    try:
        import torch
    except ImportError:
        raise ImportError("device= asks for torch tensors, but torch is not installed; "
                          "pip install torch, or leave device=None for numpy arrays") from None
    return {k: (torch.from_numpy(np.ascontiguousarray(v)).to(device) if isinstance(v, np.ndarray) else v)
            for k, v in d.items()}


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy / torch / jax / list) as a numpy array; refuses object and ragged arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular numeric array ({e})"[:300]) from None
    if a.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got an object array")
    return a


def int_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` as an int64 array (integers, or bools), with ``ndim`` dimensions if given."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values above the int64 range")
    return a.astype(np.int64)


def bool_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` as a bool array; integers must be 0/1."""
    a = to_numpy(x, name)
    if a.dtype != bool:
        if a.dtype.kind not in "iu" or (a.size and not np.isin(a, (0, 1)).all()):
            raise ValueError(f"{name} must be boolean (or 0/1 integers), got dtype {a.dtype}")
        a = a.astype(bool)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return a


def require_keys(d: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    """Raise a ValueError naming the keys of ``d`` that are missing."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{what}: missing key(s) {missing}")


def validated(lay: Layout) -> Layout:
    """Validate a layout built by an importer; a failure is a bug or bad input (ValueError)."""
    try:
        return lay.validate()
    except LayoutFormatError as e:
        raise ValueError(f"imported arrays do not form a valid layout: {e}") from None
