"""Validation of Layout arrays: every size, dtype, pointer and index."""

from __future__ import annotations

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.ir.layout import FULL, MAX_BLOCK, PARTIAL, _ceil_div
from maskc.limits import MAX_BATCH, MAX_HEADS, MAX_LEN, MAX_SLICES
#: Longest pattern text (characters; the file stores at most 1 MiB of utf-8).
MAX_TEXT_CHARS = 1 << 20


def _need(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise LayoutFormatError(f"layout field {field!r}: {msg}")


def _int_scalar(value, field: str, lo: int, hi: int) -> int:
    _need(isinstance(value, (int, np.integer)) and not isinstance(value, bool), field,
          f"must be an integer, got {type(value).__name__}")
    v = int(value)
    _need(lo <= v <= hi, field, f"must be in [{lo}, {hi}], got {v}")
    return v


def _array(value, field: str, dtype, ndim: int) -> np.ndarray:
    _need(isinstance(value, np.ndarray), field, f"must be a numpy array, got {type(value).__name__}")
    _need(value.dtype == np.dtype(dtype), field, f"must have dtype {np.dtype(dtype)}, got {value.dtype}")
    _need(value.ndim == ndim, field, f"must have {ndim} dimension(s), got shape {value.shape}")
    return value


def validate_layout(lay) -> None:
    """Raise :class:`LayoutFormatError` naming the first field that is wrong.

    Checks, in order: sizes (q_len, kv_len, block_q, block_k within their limits); dtypes
    and shapes of every array; ``row_ptr`` values in [0, nnzb], starting at 0, ending at
    nnzb, non-decreasing, heads contiguous; ``col_idx`` in [0, n_kb) and strictly
    increasing within each block row; ``kind`` in {PARTIAL, FULL}; ``partial_id`` -1 for
    FULL and in [0, U) for PARTIAL; every mask used, not all zero, no bits past block_k;
    partial blocks have no bits past a ragged tail and do not allow every valid element
    (those must be FULL); ``pattern_text`` a string of at most 1 MiB of utf-8.
    Costs O(nnzb + U * block_q * block_k); never allocates anything larger.
    """
    _need(isinstance(lay.pattern_text, str), "pattern_text", f"must be a string, got {type(lay.pattern_text).__name__}")
    _need(len(lay.pattern_text) <= MAX_TEXT_CHARS, "pattern_text", f"must be at most {MAX_TEXT_CHARS} characters")
    q_len = _int_scalar(lay.q_len, "q_len", 1, MAX_LEN)
    kv_len = _int_scalar(lay.kv_len, "kv_len", 1, MAX_LEN)
    bq = _int_scalar(lay.block_q, "block_q", 1, MAX_BLOCK)
    bk = _int_scalar(lay.block_k, "block_k", 1, MAX_BLOCK)
    n_qb, n_kb = _ceil_div(q_len, bq), _ceil_div(kv_len, bk)
    _int_scalar(lay.q_offset, "q_offset", 0, MAX_LEN - q_len)
    batch = _int_scalar(lay.batch, "batch", 1, MAX_BATCH)
    row_ptr = _array(lay.row_ptr, "row_ptr", np.int64, 2)
    H = row_ptr.shape[0]
    _need(H % batch == 0, "row_ptr", f"must have batch * heads rows; {H} rows is not a multiple of batch={batch}")
    _need(1 <= H // batch <= MAX_HEADS and H <= MAX_SLICES, "row_ptr",
          f"must have between 1 and {MAX_HEADS} heads and at most {MAX_SLICES} batch x head slices, got {H} rows")
    _need(row_ptr.shape[1] == n_qb + 1, "row_ptr",
          f"must have shape [heads, n_qb + 1] = [{H}, {n_qb + 1}], got {row_ptr.shape}")
    col_idx = _array(lay.col_idx, "col_idx", np.int32, 1)
    nnzb = col_idx.shape[0]
    _need(nnzb <= H * n_qb * n_kb, "col_idx", f"has {nnzb} blocks, more than heads*n_qb*n_kb = {H * n_qb * n_kb}")
    kind = _array(lay.kind, "kind", np.int8, 1)
    _need(kind.shape[0] == nnzb, "kind", f"length {kind.shape[0]} != number of blocks {nnzb}")
    pid = _array(lay.partial_id, "partial_id", np.int32, 1)
    _need(pid.shape[0] == nnzb, "partial_id", f"length {pid.shape[0]} != number of blocks {nnzb}")
    masks = _array(lay.masks, "masks", np.uint8, 3)
    U = masks.shape[0]
    _need(masks.shape[1:] == (bq, _ceil_div(bk, 8)), "masks",
          f"must have shape [U, block_q, ceil(block_k/8)] = [U, {bq}, {_ceil_div(bk, 8)}], got {masks.shape}")
    _need(U <= nnzb, "masks", f"has {U} unique masks but only {nnzb} blocks")
    # row_ptr: range first, so that differences below cannot overflow
    _need(bool(((row_ptr >= 0) & (row_ptr <= nnzb)).all()), "row_ptr",
          f"values must be in [0, nnzb={nnzb}], got range [{row_ptr.min()}, {row_ptr.max()}]")
    _need(row_ptr[0, 0] == 0, "row_ptr", f"must start at 0, got {row_ptr[0, 0]}")
    _need(bool(np.all(np.diff(row_ptr, axis=1) >= 0)), "row_ptr", "must be non-decreasing within each head")
    if H > 1:
        _need(bool(np.all(row_ptr[1:, 0] == row_ptr[:-1, -1])), "row_ptr",
              "head h must start where head h-1 ends (row_ptr[h, 0] == row_ptr[h-1, -1])")
    _need(row_ptr[-1, -1] == nnzb, "row_ptr", f"must end at the number of blocks {nnzb}, got {row_ptr[-1, -1]}")
    if nnzb:
        _need(int(col_idx.min()) >= 0 and int(col_idx.max()) < n_kb, "col_idx",
              f"values must be in [0, n_kb={n_kb}), got range [{col_idx.min()}, {col_idx.max()}]")
        # strictly increasing inside each row: a decrease is only allowed at a row start
        starts = np.zeros(nnzb, dtype=bool)
        flat_ptr = row_ptr[:, :-1].reshape(-1)
        starts[flat_ptr[flat_ptr < nnzb]] = True
        d = np.diff(col_idx.astype(np.int64))
        bad = (d <= 0) & ~starts[1:]
        if bad.any():
            _need(False, "col_idx",
                  f"must be strictly increasing within a block row (first violation at {int(np.argmax(bad)) + 1})")
        _need(bool(np.isin(kind, (PARTIAL, FULL)).all()), "kind", f"values must be {PARTIAL} (partial) or {FULL} (full)")
        full = kind == FULL
        _need(bool(np.all(pid[full] == -1)), "partial_id", "must be -1 for full blocks")
        _need(bool(np.all((pid[~full] >= 0) & (pid[~full] < U))), "partial_id",
              f"must index masks [0, {U}) for partial blocks")
        if U:
            used = np.zeros(U, dtype=bool)
            used[pid[~full]] = True
            _need(bool(used.all()), "masks", "every stored mask must be used by some partial block")
    if U:
        bits = np.unpackbits(masks, axis=2, bitorder="little")  # [U, bq, 8 * ceil(bk / 8)]
        _need(not bits[:, :, bk:].any(), "masks", f"bits beyond block_k={bk} must be zero")
        bits = bits[:, :, :bk]
        any_row = bits.any(axis=2)  # [U, bq]
        any_col = bits.any(axis=1)  # [U, bk]
        _need(bool(any_row.any(axis=1).all()), "masks", "a partial mask may not be all zeros (drop the block)")
        # last used row / column of each mask, and its popcount
        last_row = bq - 1 - np.argmax(any_row[:, ::-1], axis=1)
        last_col = bk - 1 - np.argmax(any_col[:, ::-1], axis=1)
        pop = bits.reshape(U, -1).sum(axis=1, dtype=np.int64)
        part = np.flatnonzero(kind == PARTIAL)
        counts = np.diff(row_ptr, axis=1).reshape(-1)
        rows = np.repeat(np.tile(np.arange(n_qb, dtype=np.int64), H), counts)[part]
        cols = col_idx[part].astype(np.int64)
        vr = np.full(n_qb, bq, np.int64)
        vr[-1] = q_len - (n_qb - 1) * bq
        vc = np.full(n_kb, bk, np.int64)
        vc[-1] = kv_len - (n_kb - 1) * bk
        u = pid[part]
        past = (last_row[u] >= vr[rows]) | (last_col[u] >= vc[cols])
        if past.any():
            _need(False, "masks", f"partial block {int(part[np.argmax(past)])} has bits set past the sequence end")
        allset = pop[u] == vr[rows] * vc[cols]
        if allset.any():
            _need(False, "kind", f"block {int(part[np.argmax(allset)])} is marked partial but allows every "
                  "valid element (mark it full)")
