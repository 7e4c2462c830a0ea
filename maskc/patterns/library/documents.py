"""Packed documents and key padding, per sequence or per batch element.

``document_mask`` lets a token attend only within its own document (causal by default);
``key_padding`` removes padding keys. Both accept one sequence or a batch (``[B, N]``
numpy arrays, torch tensors or nested lists) and then give a ``batched([...])`` pattern
that composes with any other (``mc.causal() & mc.key_padding(mask)``). Their text is
compact: document lengths and runs of real keys, never one number per token.

Example:
    >>> import numpy as np, maskc as mc
    >>> docs = mc.document_mask(segment_ids=np.array([[0, 0, 1, 1], [5, 5, 5, 6]]))
    >>> docs.text(), docs.n_batch
    ('document_mask(causal=True, lengths=[[2, 2], [3, 1]])', 2)
    >>> pad = mc.key_padding(np.array([[True, True, True, False], [False, True, True, True]]))
    >>> pad.text()
    'key_padding(real=[[0, 1, 2], [1, 2, 3]], width=4)'
    >>> (docs & pad).dense(4)[1, 0, 2].astype(int).tolist()   # batch 1, row 2: same doc, causal, key 0 padded
    [0, 1, 1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.limits import MAX_BATCH, MAX_LEN, check_int
from maskc.patterns.base import check_bool
from maskc.patterns.constructors import causal as _causal
from maskc.patterns.indexset import IndexSet, to_numpy
from maskc.patterns.leaves import Cols
from maskc.patterns.registry import library_pattern
from maskc.patterns.segments import Lengths, Segments, lengths_from_ids
from maskc.patterns.structure import Batched, Named


def _is_rows(x: Any) -> bool:
    """A batch given as a list of per-element specs (lists, tuples, ranges or arrays)?"""
    if isinstance(x, np.ndarray):
        return x.ndim == 2
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(
        isinstance(r, (list, tuple, range, np.ndarray)) for r in x)


def _batch(rows: Any, what: str) -> list:
    if len(rows) > MAX_BATCH:
        raise ValueError(f"{what}: at most {MAX_BATCH:,} batch elements, got {len(rows):,}")
    return list(rows)


def _cu_lengths(cu: Any, what: str) -> Lengths:
    a = np.asarray(to_numpy(cu))
    if a.ndim != 1 or a.size < 2 or a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be 1-D integer offsets [0, end_1, end_2, ...] with at least two entries, "
                         f"got shape {a.shape} dtype {a.dtype}")
    d = np.diff(a.astype(np.int64))
    if a[0] != 0 or (d < 0).any():
        raise ValueError(f"{what} must start at 0 and never decrease (FlashAttention's cu_seqlens), got "
                         f"{a[:8].tolist()}{' ...' if a.size > 8 else ''}")
    d = d[d > 0]
    if d.size == 0:
        raise ValueError(f"{what} describes no token")
    return Lengths(d.tolist(), what)


@library_pattern("documents", gallery={"lengths": [40, 24, 50]})
def document_mask(lengths: Any = None, causal: bool = True, *, segment_ids: Any = None,
                  cu_seqlens: Any = None) -> Named:
    """Document / packed-sequence masking: attend within the same document only.

    Give exactly one of:

    - ``lengths``: the documents' lengths in packing order (a list or a range); positions
      past their sum form one last document. A list of such lists is one per batch
      element.
    - ``segment_ids``: ``[N]`` or ``[B, N]`` integer ids (numpy, torch or lists) in which
      every document is one contiguous run of equal ids (the values do not matter;
      an id that reappears after another is refused).
    - ``cu_seqlens``: FlashAttention's varlen offsets ``[0, end_1, ..., end_n]`` of one
      packed sequence (a list of them: one per batch element); empty documents are dropped.

    ``causal=True`` (default) adds ``j <= i``. Keys per row: position within its document
    + 1 (causal) or the document's length.

    Example:
        >>> document_mask([2, 3]).dense(5)[0].astype(int).sum(axis=1).tolist()
        [1, 2, 1, 2, 3]
        >>> document_mask(cu_seqlens=[0, 2, 5]) == document_mask([2, 3])
        True
    """
    fn = "document_mask"
    if sum(x is not None for x in (lengths, segment_ids, cu_seqlens)) != 1:
        raise TypeError(f"{fn} takes exactly one of lengths, segment_ids= and cu_seqlens=")
    c = check_bool(causal, f"{fn}: causal")
    if segment_ids is not None:
        ids = np.asarray(to_numpy(segment_ids))
        if ids.ndim == 2:
            lens: Any = tuple(lengths_from_ids(r, f"segment_ids[{b}]") for b, r in enumerate(_batch(ids, fn)))
        else:
            lens = lengths_from_ids(ids, "segment_ids")
    elif cu_seqlens is not None:
        cu = to_numpy(cu_seqlens)
        if _is_rows(cu):
            lens = tuple(_cu_lengths(r, f"cu_seqlens[{b}]") for b, r in enumerate(_batch(cu, fn)))
        else:
            lens = _cu_lengths(cu, "cu_seqlens")
    else:
        spec = to_numpy(lengths)
        if _is_rows(spec):
            lens = tuple(Lengths(r, f"{fn}: lengths[{b}]") for b, r in enumerate(_batch(spec, fn)))
        else:
            lens = Lengths(spec, f"{fn}: lengths")
    seg = Batched(Segments(x) for x in lens) if isinstance(lens, tuple) else Segments(lens)
    return Named(fn, {"lengths": lens, "causal": c}, _causal() & seg if c else seg)


def _real_keys(row: np.ndarray) -> IndexSet:
    m = np.asarray(row, dtype=bool).astype(np.int8)
    d = np.diff(np.r_[np.int8(0), m, np.int8(0)])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return IndexSet([range(int(a), int(b)) for a, b in zip(starts, ends)], "key_padding")


class KeyPadding(Named):
    """Keys allowed only where a key padding mask is True; refuses sizes past its width."""

    __slots__ = ()

    def __init__(self, real: IndexSet | tuple[IndexSet, ...], width: int):
        if isinstance(real, tuple):
            body: Any = Batched(Cols(r) for r in real)
        else:
            body = Cols(real)
        super().__init__("key_padding", {"real": real, "width": width}, body)

    def _width(self) -> int:
        return dict(self.kwargs)["width"]

    def _check(self, kv_len: int) -> None:
        if kv_len > self._width():
            raise ValueError(f"the key padding mask covers {self._width():,} keys, but the pattern is evaluated at "
                             f"kv_len={kv_len:,}; pass a mask as wide as the keys (True = real token)")

    def membership(self, q_total, kv_len):
        self._check(kv_len)
        return super().membership(q_total, kv_len)

    def _eval(self, i, j, s):
        self._check(s.kv_len)
        return super()._eval(i, j, s)

    def for_batch(self, b):
        real = dict(self.kwargs)["real"]
        return KeyPadding(real[b], self._width()) if isinstance(real, tuple) else self

    def lowered(self):
        return self


@library_pattern("documents", gallery={"mask": [True] * 100 + [False] * 28})
def key_padding(mask: Any = None, *, real: Any = None, width: int | None = None) -> Named:
    """Key padding: a key may be attended only if it is a real token.

    ``mask``: bool ``[kv_len]`` or ``[B, kv_len]`` (numpy, torch or lists; 0/1 integers
    too, like transformers' ``attention_mask``), True (1) = real token, False (0) =
    padding. The text form stores the runs of real keys (``real=``) and the mask's
    ``width``; evaluating at more keys than ``width`` is refused. A query row whose keys
    are all padding allows no key (attention returns zeros there).

    Example:
        >>> key_padding([0, 1, 1, 1]).text()
        'key_padding(real=[1, 2, 3], width=4)'
        >>> key_padding([0, 1, 1, 1]).dense(2, 4)[0].astype(int).tolist()
        [[0, 1, 1, 1], [0, 1, 1, 1]]
    """
    fn = "key_padding"
    if (mask is None) == (real is None):
        raise TypeError(f"{fn} takes a mask, or real= and width= (the text form), exactly one of them")
    if real is not None:
        if width is None:
            raise TypeError(f"{fn}: real= needs width=, the number of keys the mask covers")
        w = check_int(width, f"{fn}: width", 1, MAX_LEN)
        rows = _is_rows(real)
        sets = tuple(IndexSet(r, f"{fn}: real[{b}]") for b, r in enumerate(_batch(real, fn))) if rows \
            else IndexSet(real, f"{fn}: real")
        for s in sets if rows else (sets,):
            end = 0 if s.kind == "named" else s.data[1] + 1 if s.kind == "step" else (s.data[-1] if s.data else 0)
            if s.kind == "named" or end > w:
                raise ValueError(f"{fn}: real keys must be positions in [0, width={w:,})")
        return KeyPadding(sets, w)
    if width is not None:
        raise TypeError(f"{fn}: width= goes with real=; a mask knows its width")
    m = np.asarray(to_numpy(mask))
    if m.dtype.kind == "b":
        pass
    elif m.dtype.kind in "iu" and m.size and ((m == 0) | (m == 1)).all():
        m = m.astype(bool)
    elif m.size:
        raise TypeError(f"{fn}: the mask must be bool (or 0/1 integers), True = real token; got dtype {m.dtype}")
    if m.ndim not in (1, 2) or m.shape[-1] == 0:
        raise ValueError(f"{fn}: the mask must be [kv_len] or [batch, kv_len] with kv_len >= 1, got shape {m.shape}")
    if m.ndim == 2:
        return KeyPadding(tuple(_real_keys(r) for r in _batch(m, fn)), m.shape[1])
    return KeyPadding(_real_keys(m), m.shape[0])
