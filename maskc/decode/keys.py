"""The keys a few query rows may attend, found straight from a pattern (the decode step's mask).

:func:`decode_keys` evaluates a pattern on query rows ``position .. position + T - 1``
only, seen as ``mc.compile(pattern, q_len=T, kv_len=kv_len, q_offset=position)`` sees
them (the queries are the last ``T`` of ``position + T``), and lists, per (batch element,
head) slice, the keys any of those rows may attend. The work is ``T x kv_len`` mask
elements per slice (one row of the full mask for a decode step), never the full
``kv_len x kv_len`` layout, and no compile. Results are kept in a small cache keyed by
the pattern's content and the sizes, so the layers of one decode step evaluate the
pattern once.

Example:
    >>> import maskc as mc
    >>> keys = decode_keys(mc.causal() & mc.window(2), q_len=1, kv_len=10, position=9)
    >>> keys.index[0, 0].tolist(), keys.evaluated
    ([7, 8, 9], 10)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from maskc.limits import MAX_LEN, check_int
from maskc.patterns.core import Pattern

#: Mask elements (batch x heads x q_len x kv_len) :func:`decode_keys` evaluates at most;
#: larger row ranges (long chunked prefills) go through a compiled layout instead.
MAX_ROW_ELEMENTS: int = 1 << 24

_CACHE: "OrderedDict[tuple, DecodeKeys]" = OrderedDict()
_CACHE_SIZE = 16
_LOCK = threading.Lock()


@dataclass(frozen=True)
class DecodeKeys:
    """The keys of some query rows, per stored slice (``Bm`` batch elements x ``Hm`` heads).

    ``index`` int64 ``[Bm, Hm, K]``: the keys any of the rows may attend, ascending,
    padded with 0; ``valid`` bool ``[Bm, Hm, K]``: the slot holds a key; ``allowed`` bool
    ``[Bm, Hm, T, K]``: row t may attend slot k. ``Bm`` is 1 (one rule for every batch
    element) or the batch, ``Hm`` 1 (every head) or the pattern's heads. ``span`` is
    ``(start, stop)`` when a single slice's keys are exactly ``start .. stop - 1``
    (then a slice of the cache replaces the gather), else None. ``evaluated`` counts the
    mask elements computed.
    """

    index: np.ndarray
    valid: np.ndarray
    allowed: np.ndarray
    span: tuple[int, int] | None
    evaluated: int

    @property
    def padded(self) -> bool:
        """Some slot holds no key (slices read different numbers of keys)."""
        return not bool(self.valid.all())

    @property
    def n_keys(self) -> int:
        """K: key slots per slice (the most keys any slice reads; at least 1)."""
        return int(self.index.shape[-1])


def _positions(position: int | np.ndarray, batch: int) -> tuple[int, ...]:
    if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
        return (check_int(int(position), "position", 0, MAX_LEN - 1),)
    arr = np.asarray(position)
    if arr.ndim != 1 or arr.shape[0] != batch or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"position must be an int or {batch} integer positions (one per batch element), "
                         f"got {arr.dtype} of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= MAX_LEN):
        raise ValueError(f"positions must lie in [0, {MAX_LEN}), got {arr.min()} .. {arr.max()}")
    return tuple(int(p) for p in arr)


def decode_keys(pattern: Pattern, q_len: int, kv_len: int | tuple[int, ...] | None, position: int | np.ndarray,
                batch: int = 1) -> DecodeKeys:
    """The keys of query rows ``position .. position + q_len - 1`` of ``pattern`` (cached).

    Args:
        pattern: any maskc Pattern (per-head ``heads([...])`` and batched patterns
            included: a batched one needs ``batch == pattern.n_batch``).
        q_len: T, the rows (1 for a decode step, more for chunked prefill).
        kv_len: the keys that exist (default ``position + q_len``); one int, or one per
            batch element when ``position`` is per batch element.
        position: absolute position of the first row: an int, or ``batch`` ints.
        batch: the batch size (needed for per-batch positions and batched patterns).

    Example:
        >>> import maskc as mc
        >>> k = decode_keys(mc.causal() & mc.window(1), q_len=2, kv_len=None, position=[3, 0], batch=2)
        >>> k.index.tolist(), k.allowed[1, 0].astype(int).tolist()
        ([[[2, 3, 4]], [[0, 1, 0]]], [[1, 0, 0], [1, 1, 0]])
    """
    if not isinstance(pattern, Pattern):
        raise TypeError(f"decode needs a maskc Pattern (the rule, evaluated per step), got {type(pattern).__name__}")
    q_len = check_int(q_len, "q_len", 1, MAX_LEN)
    pos = _positions(position, batch)
    if kv_len is None:
        kv = tuple(p + q_len for p in pos)
    else:
        kv = (kv_len,) if isinstance(kv_len, (int, np.integer)) else tuple(kv_len)
        kv = tuple(check_int(int(n), "kv_len", 1, MAX_LEN) for n in kv)
        if len(kv) == 1 and len(pos) > 1:
            kv = kv * len(pos)
    nb = pattern.n_batch
    if nb is not None and nb not in (1, batch):
        raise ValueError(f"the pattern holds {nb} batch elements but the inputs have batch {batch}: "
                         "build it for this batch (e.g. mc.document_mask(segment_ids=ids) with ids [batch, N])")
    key = (pattern, q_len, kv, pos, batch if nb else 1)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    keys = _evaluate(pattern, q_len, kv, pos, batch)
    with _LOCK:
        _CACHE[key] = keys
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return keys


def _evaluate(pattern: Pattern, q_len: int, kv: tuple[int, ...], pos: tuple[int, ...], batch: int) -> DecodeKeys:
    n_elem = (batch if (pattern.n_batch or len(pos) > 1) else 1) * (pattern.n_heads or 1) * q_len * max(kv)
    if n_elem > MAX_ROW_ELEMENTS:
        raise ValueError(f"decode_keys would evaluate {n_elem:,} mask elements (more than {MAX_ROW_ELEMENTS:,}); "
                         "compile the rows instead: mc.compile(pattern, q_len, kv_len, q_offset=position)")
    if len(pos) == 1:
        m = pattern.dense(q_len, kv[0], q_offset=pos[0], max_elements=MAX_ROW_ELEMENTS)
        mask = m if m.ndim == 4 else m[None]
    else:  # one evaluation per batch element, keys past its own kv_len padded out
        width = max(kv)
        mask = np.zeros((batch, pattern.n_heads or 1, q_len, width), dtype=bool)
        for b, (p, n) in enumerate(zip(pos, kv)):
            one = pattern.for_batch(b if pattern.n_batch > 1 else 0) if pattern.n_batch else pattern
            mask[b, :, :, :n] = one.dense(q_len, n, q_offset=p, max_elements=MAX_ROW_ELEMENTS)
    return keys_of_mask(mask, n_elem)


def keys_of_mask(mask: np.ndarray, evaluated: int = 0) -> DecodeKeys:
    """:class:`DecodeKeys` of a bool mask ``[Bm, Hm, T, kv_len]`` (the padded key lists).

    Example:
        >>> import numpy as np
        >>> keys_of_mask(np.array([[[[True, False, True]]]])).index.tolist()
        [[[0, 2]]]
    """
    Bm, Hm, T, n = mask.shape
    cols = mask.any(axis=2).reshape(Bm * Hm, n)
    counts = cols.sum(axis=1)
    K = max(int(counts.max()) if counts.size else 0, 1)
    r, c = np.nonzero(cols)
    rank = np.arange(r.shape[0]) - (np.cumsum(counts) - counts)[r]
    index = np.zeros((Bm * Hm, K), dtype=np.int64)
    valid = np.zeros((Bm * Hm, K), dtype=bool)
    index[r, rank] = c
    valid[r, rank] = True
    flat = mask.reshape(Bm * Hm, T, n)
    allowed = np.take_along_axis(flat, index[:, None, :], axis=2) & valid[:, None, :]
    span = None
    if Bm * Hm == 1 and counts[0] > 0 and int(c[-1]) - int(c[0]) + 1 == int(counts[0]):
        span = (int(c[0]), int(c[-1]) + 1)
    for a in (index, valid, allowed):
        a.setflags(write=False)
    return DecodeKeys(index.reshape(Bm, Hm, K), valid.reshape(Bm, Hm, K), allowed.reshape(Bm, Hm, T, K), span,
                      int(evaluated))


def clear_cache() -> None:
    """Forget every cached key list."""
    with _LOCK:
        _CACHE.clear()
