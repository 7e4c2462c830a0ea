"""Checking the fields of a layout: every size, dtype, pointer, index and mask.

:func:`check_fields` is what :meth:`Layout.validate <maskc.ir.layout.Layout.validate>`
runs. It reads the fields by name from any object that has them (a Layout, or a
namespace being assembled from a file) and raises
:class:`~maskc.errors.LayoutFormatError` naming the first field that is wrong. Its
memory is proportional to the arrays it is given (O(nnzb) plus bounded chunks of the
masks): nothing is sized by ``n_qb`` or ``n_kb`` alone, so a file that declares an
absurd ``kv_len`` costs no more to refuse than its arrays take.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir import kernels as K
from maskc.ir.kinds import FULL, PARTIAL, ceil_div, extent
from maskc.limits import MAX_BATCH, MAX_BLOCK, MAX_HEADS, MAX_LEN, MAX_SLICES

#: Longest pattern text, in utf-8 bytes (the same limit for layouts in memory and in files).
MAX_TEXT_BYTES: int = 16 << 20
#: Masks unpacked at a time while checking them.
_MASK_CHUNK = 4096

_BSR_MESSAGES = {
    K.BSR_PTR_RANGE: ("row_ptr", "values must be in [0, nnzb={n}]; slice {a}, entry {b} is outside"),
    K.BSR_PTR_START: ("row_ptr", "must start at 0"),
    K.BSR_PTR_ORDER: ("row_ptr", "must be non-decreasing within each slice (slice {a}, row {b} decreases)"),
    K.BSR_PTR_CONTIG: ("row_ptr", "slice s must start where slice s-1 ends (row_ptr[s, 0] == row_ptr[s-1, -1]); "
                                  "slice {a} does not"),
    K.BSR_PTR_END: ("row_ptr", "must end at the number of blocks {n}"),
    K.BSR_COL_RANGE: ("col_idx", "values must be in [0, n_kb={kb}); block {a} has {b}"),
    K.BSR_COL_ORDER: ("col_idx", "must be strictly increasing within a block row (first violation at block {a})"),
}


def _need(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise LayoutFormatError(f"layout field {field!r}: {msg}")


def _int_scalar(value: Any, field: str, lo: int, hi: int) -> int:
    _need(isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)), field,
          f"must be an integer, got {type(value).__name__}")
    v = int(value)
    _need(lo <= v <= hi, field, f"must be in [{lo}, {hi}], got {v}")
    return v


def _array(value: Any, field: str, dtype: Any, ndim: int) -> np.ndarray:
    _need(isinstance(value, np.ndarray), field, f"must be a numpy array, got {type(value).__name__}")
    _need(value.dtype == np.dtype(dtype), field, f"must have dtype {np.dtype(dtype)}, got {value.dtype}")
    _need(value.ndim == ndim, field, f"must have {ndim} dimension(s), got shape {value.shape}")
    return value


def check_text(text: Any) -> None:
    """``pattern_text`` must be a str of at most :data:`MAX_TEXT_BYTES` utf-8 bytes."""
    _need(isinstance(text, str), "pattern_text", f"must be a string, got {type(text).__name__}")
    ok = len(text) <= MAX_TEXT_BYTES
    if ok:
        try:
            ok = len(text.encode("utf-8")) <= MAX_TEXT_BYTES
        except UnicodeEncodeError:
            _need(False, "pattern_text", "must be encodable as utf-8 (it holds a lone surrogate)")
    _need(ok, "pattern_text", f"must be at most {MAX_TEXT_BYTES:,} bytes of utf-8")


def check_fields(lay: Any) -> None:
    """Raise :class:`LayoutFormatError` naming the first field of ``lay`` that is wrong.

    Checks, in order: ``pattern_text``; sizes (q_len, kv_len, block_q, block_k, q_offset,
    batch within their limits); dtypes and shapes of every array; ``row_ptr`` values in
    [0, nnzb], starting at 0, ending at nnzb, non-decreasing, slices contiguous;
    ``col_idx`` in [0, n_kb) and strictly increasing within each block row; ``kind`` in
    {PARTIAL, FULL}; ``partial_id`` -1 for FULL and in [0, U) for PARTIAL; every mask used,
    not all zero, no bits past block_k; partial blocks have no bits past a ragged tail and
    do not allow every valid element (those must be FULL).
    Costs O(slices * n_qb + nnzb + U * block_q * block_k) time and O(nnzb) extra memory.
    """
    check_text(lay.pattern_text)
    q_len = _int_scalar(lay.q_len, "q_len", 1, MAX_LEN)
    kv_len = _int_scalar(lay.kv_len, "kv_len", 1, MAX_LEN)
    bq = _int_scalar(lay.block_q, "block_q", 1, MAX_BLOCK)
    bk = _int_scalar(lay.block_k, "block_k", 1, MAX_BLOCK)
    n_qb, n_kb = ceil_div(q_len, bq), ceil_div(kv_len, bk)
    _int_scalar(lay.q_offset, "q_offset", 0, MAX_LEN - q_len)
    batch = _int_scalar(lay.batch, "batch", 1, MAX_BATCH)
    row_ptr = _array(lay.row_ptr, "row_ptr", np.int64, 2)
    S = row_ptr.shape[0]
    _need(S % batch == 0, "row_ptr", f"must have batch * heads rows; {S} rows is not a multiple of batch={batch}")
    _need(1 <= S // batch <= MAX_HEADS and S <= MAX_SLICES, "row_ptr",
          f"must have between 1 and {MAX_HEADS} heads and at most {MAX_SLICES} batch x head slices, got {S} rows")
    _need(row_ptr.shape[1] == n_qb + 1, "row_ptr",
          f"must have shape [slices, n_qb + 1] = [{S}, {n_qb + 1}], got {row_ptr.shape}")
    col_idx = _array(lay.col_idx, "col_idx", np.int32, 1)
    nnzb = col_idx.shape[0]
    _need(nnzb <= S * n_qb * n_kb, "col_idx", f"has {nnzb} blocks, more than slices*n_qb*n_kb = {S * n_qb * n_kb}")
    kind = _array(lay.kind, "kind", np.int8, 1)
    _need(kind.shape[0] == nnzb, "kind", f"length {kind.shape[0]} != number of blocks {nnzb}")
    pid = _array(lay.partial_id, "partial_id", np.int32, 1)
    _need(pid.shape[0] == nnzb, "partial_id", f"length {pid.shape[0]} != number of blocks {nnzb}")
    masks = _array(lay.masks, "masks", np.uint8, 3)
    U = masks.shape[0]
    _need(masks.shape[1:] == (bq, ceil_div(bk, 8)), "masks",
          f"must have shape [U, block_q, ceil(block_k/8)] = [U, {bq}, {ceil_div(bk, 8)}], got {masks.shape}")
    _need(U <= nnzb, "masks", f"has {U} unique masks but only {nnzb} blocks")
    code, a, b = K.check_bsr(np.ascontiguousarray(row_ptr), np.ascontiguousarray(col_idx), np.int64(n_kb))
    if code != K.BSR_OK:
        field, msg = _BSR_MESSAGES[code]
        _need(False, field, msg.format(n=nnzb, kb=n_kb, a=a, b=b))
    if not nnzb:
        return
    _need(bool(np.isin(kind, (PARTIAL, FULL)).all()), "kind", f"values must be {PARTIAL} (partial) or {FULL} (full)")
    full = kind == FULL
    _need(bool(np.all(pid[full] == -1)), "partial_id", "must be -1 for full blocks")
    part = np.flatnonzero(~full)
    u = pid[part]
    _need(bool(np.all((u >= 0) & (u < U))), "partial_id", f"must index masks [0, {U}) for partial blocks")
    if not U:
        return
    used = np.zeros(U, dtype=bool)
    used[u] = True
    _need(bool(used.all()), "masks", "every stored mask must be used by some partial block")
    last_row, last_col, pop = _mask_extents(masks, bk)
    rows = K.block_rows(np.ascontiguousarray(row_ptr), nnzb)[part]
    vr = extent(rows, bq, q_len)
    vc = extent(col_idx[part], bk, kv_len)
    past = (last_row[u] >= vr) | (last_col[u] >= vc)
    if past.any():
        _need(False, "masks", f"partial block {int(part[np.argmax(past)])} has bits set past the sequence end")
    allset = pop[u] == vr * vc
    if allset.any():
        _need(False, "kind", f"block {int(part[np.argmax(allset)])} is marked partial but allows every "
              "valid element (mark it full)")


def _mask_extents(masks: np.ndarray, bk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Last used row, last used column and popcount of every mask (int64 [U] each), in bounded chunks.

    Raises for masks with bits past ``bk`` or with no bit at all.
    """
    U, bq = masks.shape[:2]
    last_row = np.empty(U, np.int64)
    last_col = np.empty(U, np.int64)
    pop = np.empty(U, np.int64)
    for s in range(0, U, _MASK_CHUNK):
        bits = np.unpackbits(masks[s:s + _MASK_CHUNK], axis=2, bitorder="little")  # [n, bq, 8 * W]
        _need(not bits[:, :, bk:].any(), "masks", f"bits beyond block_k={bk} must be zero")
        bits = bits[:, :, :bk].astype(bool)
        any_row = bits.any(axis=2)
        any_col = bits.any(axis=1)
        _need(bool(any_row.any(axis=1).all()), "masks", "a partial mask may not be all zeros (drop the block)")
        last_row[s:s + _MASK_CHUNK] = bq - 1 - np.argmax(any_row[:, ::-1], axis=1)
        last_col[s:s + _MASK_CHUNK] = bk - 1 - np.argmax(any_col[:, ::-1], axis=1)
        pop[s:s + _MASK_CHUNK] = bits.reshape(bits.shape[0], -1).sum(axis=1, dtype=np.int64)
    return last_row, last_col, pop
