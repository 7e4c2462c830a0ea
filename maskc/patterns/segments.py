"""Segments (documents): query i may attend key j iff both lie in the same segment.

Segments are given by their lengths in order (positions past their sum form one last
segment), by segment ids, or by the rule ``'prime_gaps'``. Lengths stay compact: a long
arithmetic progression (16 or more terms, e.g. ``range(1, 2**30)``) is kept as a range
and only the lengths that cover the positions asked about are ever generated.

Segment ids are accepted as a 1-D integer array (numpy, torch or a list) in which every
id forms **one contiguous run** (``[0, 0, 1, 1, 1, 7]``: the values themselves do not
matter, only where they change); an id that reappears after another one is refused,
because it would not be a document. The ids become run lengths, so the text stays short.

Example:
    >>> import maskc as mc
    >>> mc.segments(ids=[4, 4, 9, 9, 9, 2]).text()
    'segments([2, 3, 1])'
    >>> mc.segments(range(1, 2**30)).segment_ids(7).tolist()   # lengths 1, 2, 3, ...
    [0, 1, 1, 2, 2, 2, 3]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.limits import MAX_INT, check_int
from maskc.patterns import sequences as _seq
from maskc.patterns.base import Pattern
from maskc.patterns.indexset import LONG_AP, MAX_EXPLICIT, FrozenData, to_numpy


class Lengths(FrozenData):
    """An immutable sequence of positive segment lengths: a tuple, or a long progression."""

    __slots__ = ()

    def __init__(self, spec: Any, what: str = "segment lengths"):
        spec = to_numpy(spec)
        if isinstance(spec, Lengths):
            kind, data = spec.kind, spec.data
        elif isinstance(spec, range):
            kind, data = _from_range(spec, what)
        else:
            if isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
                spec = [spec]
            if hasattr(spec, "__len__") and len(spec) > MAX_EXPLICIT:
                raise ValueError(f"{what}: at most {MAX_EXPLICIT:,} explicit lengths, got {len(spec):,}")
            try:
                vals = tuple(check_int(v, f"{what} entry", 1) for v in spec)
            except TypeError as e:
                if "must be an integer" in str(e):
                    raise
                raise TypeError(f"{what} must be a list of positive ints or a range, got {type(spec).__name__}") from None
            if not vals:
                raise ValueError(f"{what} must hold at least one length")
            kind, data = "list", vals
            if len(vals) >= LONG_AP:
                d = np.diff(np.asarray(vals, dtype=np.int64))
                if d[0] != 0 and (d == d[0]).all() and abs(vals[-1] + int(d[0])) <= MAX_INT:
                    kind, data = "range", (vals[0], len(vals), int(d[0]))
        self._set(kind, data)

    def __len__(self) -> int:
        return len(self.data) if self.kind == "list" else self.data[1]

    def text(self) -> str:
        """``[5, 3, 8]`` or ``range(first, stop, step)``."""
        if self.kind == "list":
            return "[" + ", ".join(map(str, self.data)) + "]"
        first, count, step = self.data
        stop = first + count * step
        return f"range({first}, {stop})" if step == 1 else f"range({first}, {stop}, {step})"

    def bounds(self, n: int) -> np.ndarray:
        """Cumulative ends of the first lengths, enough to cover positions ``0 .. n-1``."""
        if self.kind == "list":
            if self._cache is None:
                b = np.cumsum(np.asarray(self.data, dtype=np.int64))
                b.setflags(write=False)
                object.__setattr__(self, "_cache", b)
            return self._cache
        first, count, step = self.data
        m = min(count, max(n, 1))  # every length is >= 1: n lengths cover n positions
        return np.cumsum(first + step * np.arange(m, dtype=np.int64))


def _from_range(r: range, what: str) -> tuple[str, tuple]:
    n = len(r)
    if n == 0:
        raise ValueError(f"{what} must hold at least one length")
    lo = min(r[0], r[-1])
    check_int(lo, f"{what} entry", 1)
    check_int(max(r[0], r[-1]), f"{what} entry", 1, MAX_INT)
    check_int(r.start + n * r.step, f"{what} range end")
    if n < LONG_AP:
        return "list", tuple(r)
    return "range", (r[0], n, r.step)


def lengths_from_ids(ids: Any, what: str = "segment_ids") -> Lengths:
    """Run lengths of 1-D segment ids in which every id forms one contiguous run."""
    a = np.asarray(to_numpy(ids))
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D here, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} must not be empty")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integers, got dtype {a.dtype}")
    if a.size > MAX_INT:  # pragma: no cover - an array this large cannot exist
        raise ValueError(f"{what} is too long")
    starts = np.r_[0, np.flatnonzero(a[1:] != a[:-1]) + 1]
    run_ids = a[starts]
    order = np.argsort(run_ids, kind="stable")
    dup = np.flatnonzero(run_ids[order][1:] == run_ids[order][:-1])
    if dup.size:
        first, again = sorted((int(starts[order[dup[0]]]), int(starts[order[dup[0] + 1]])))
        raise ValueError(
            f"{what}: id {int(a[first])} appears in two separate runs (positions {first} and {again}); every "
            "segment must be one contiguous run of positions (renumber the ids, or use a predicate for "
            "non-contiguous groups)")
    return Lengths(np.diff(np.r_[starts, a.size]).tolist(), what)


class Segments(Pattern):
    """Block-diagonal by segments: allowed iff seg(i) == seg(j).

    ``segments([5, 3, 8])`` gives segments of those lengths (document / packed-sequence
    masking); positions past their sum form one last segment. ``segments('prime_gaps')``
    puts v = i + 1 into the interval [p_n, p_{n+1}) of consecutive primes (positions
    with v < 2 form segment 0).
    """

    __slots__ = ("spec",)
    _AXIS = "SEG"

    def __init__(self, spec: Any):
        if isinstance(spec, str):
            if spec != "prime_gaps":
                raise ValueError(f"unknown segment rule {spec!r}; use 'prime_gaps', a list of segment lengths "
                                 "or segments(ids=...)")
            self._init(spec=spec)
        else:
            self._init(spec=Lengths(spec))

    def _key_fields(self):
        return (self.spec,)

    def _make_text(self):
        return f"segments({self.spec!r})" if isinstance(self.spec, str) else f"segments({self.spec.text()})"

    def segment_ids(self, n: int) -> np.ndarray:
        """Non-decreasing segment id of positions 0..n-1 (int64)."""
        if isinstance(self.spec, str):
            ps = _seq.named_sequence("primes", n + 1)
            return np.searchsorted(ps, np.arange(1, n + 1, dtype=np.int64), side="right").astype(np.int64)
        # id k covers [bounds[k-1], bounds[k]) clipped to n: a repeat, O(n) without a binary search per position
        ends = np.minimum(self.spec.bounds(n), n)
        return np.repeat(np.arange(ends.size + 1, dtype=np.int64), np.diff(ends, prepend=0, append=n))

    def _eval(self, i, j, s):
        n = max(s.q_total, s.kv_len)
        ids = self.segment_ids(n)
        return ids[np.clip(i, 0, n - 1)] == ids[np.clip(j, 0, n - 1)]

    def _lower(self, sink):
        sink.leaf_segments(self)
