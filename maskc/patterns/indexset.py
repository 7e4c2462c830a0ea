"""Index sets: the integer sets that offsets, sums, rows, cols and global tokens take.

An :class:`IndexSet` is an immutable value in one of three canonical forms, chosen from
its content (so equal sets are equal values and print the same text):

- ``"runs"``: a sorted union of disjoint runs ``[a, b)`` (single values are runs of one);
- ``"step"``: one arithmetic progression of at least 16 terms with step >= 2;
- ``"named"``: a registered sequence (``'primes'``, ...), generated when evaluated.

Nothing is ever expanded: ``range(0, 2**40)`` stays one run, and membership is computed
arithmetically for the positions asked about, so work is O(positions), never O(values).

Example:
    >>> from maskc.patterns.indexset import IndexSet
    >>> IndexSet([5, 1, 2, 3, 4, 9]).text(), IndexSet(range(0, 10**12)).text()
    ('[range(1, 6), 9]', '1000000000000')
    >>> IndexSet(range(0, 64, 2)) == IndexSet(list(range(0, 64, 2))), IndexSet(range(0, 64, 2)).text()
    (True, 'range(0, 63, 2)')
    >>> IndexSet(range(-2**40, 1), allow_negative=True).contains([-5, 0, 3], limit=3).tolist()
    [True, True, False]
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from maskc.limits import MAX_INT, MAX_TEXT, check_int, refuse_above
from maskc.patterns import sequences as _seq
from maskc.patterns.sequences import sorted_unique

#: Most explicit values (or runs) an index set accepts.
MAX_EXPLICIT = 1 << 20
#: Fewest terms an arithmetic progression needs to be kept as one ``range`` (shorter: listed).
LONG_AP = 16


def to_numpy(obj: Any) -> Any:
    """A torch tensor as a numpy array (other objects unchanged); torch is never imported here."""
    if hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy"):
        return obj.detach().cpu().numpy()
    return obj


class FrozenData:
    """An immutable value made of a ``kind`` and hashable ``data`` (equal when both are)."""

    __slots__ = ("kind", "data", "_cache")

    def _set(self, kind: str, data: Any) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_cache", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is an immutable value")

    def __reduce__(self):
        return (_restore, (type(self), self.kind, self.data))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.kind == other.kind and self.data == other.data

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.kind, self.data))


def _restore(cls: type, kind: str, data: Any) -> FrozenData:
    obj = object.__new__(cls)
    obj._set(kind, data)
    return obj


#: Values a named sequence is generated to per call without regard to the positions asked
#: about (beyond that, at most 64 values per position): 2**24, about 0.2 s for the primes.
NAMED_WORK = 1 << 24
#: Up to this many runs, a membership is written one slice per run (beyond: a running sum).
_SLICED_RUNS = 1024


class IndexSet(FrozenData):
    """A set of integers (see the module docstring). Specs: an ``int`` n (``range(n)``),
    a ``range``, an iterable of ints and ranges (a union), an integer array, or a name.
    """

    __slots__ = ()

    def __init__(self, spec: Any, what: str = "indices", allow_negative: bool = False):
        lo = -MAX_INT if allow_negative else 0
        if isinstance(spec, IndexSet):
            kind, data = spec.kind, spec.data
        elif isinstance(spec, str):
            if spec not in _seq.sequence_names():
                raise ValueError(f"unknown sequence {spec!r} for {what}; known: {', '.join(_seq.sequence_names())}")
            kind, data = "named", spec
        elif isinstance(spec, range):
            kind, data = _canonical(*_from_range(spec, what, lo))
        elif isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
            n = check_int(spec, what, 0, MAX_INT)
            kind, data = "runs", ((0, n) if n else ())
        else:
            kind, data = _canonical(*_from_iterable(to_numpy(spec), what, lo))
        self._set(kind, data)

    def __repr__(self) -> str:
        return f"IndexSet({self.text()})"

    def key(self) -> tuple:
        """The canonical content (hashable)."""
        return (self.kind, self.data)

    # ------------------------------------------------------------- membership
    def contains(self, x: Any, limit: int) -> np.ndarray:
        """Boolean array: is each ``x`` in the set? ``limit`` is what a named sequence is
        generated to (at least ``max(x)``; it matters only for the limit-dependent
        ``'paley_residues'``)."""
        x = np.asarray(x, dtype=np.int64)
        if self.kind == "named":
            self._refuse_named(limit, int(x.size))
            return np.isin(x, _seq.named_sequence(self.data, limit))
        if self.kind == "step":
            first, last, step = self.data
            return (x >= first) & (x <= last) & ((x - first) % step == 0)
        starts, ends = self._runs()
        if starts.size == 0:
            return np.zeros(x.shape, dtype=bool)
        k = np.searchsorted(starts, x, side="right") - 1
        return (k >= 0) & (x < ends[np.maximum(k, 0)])

    def _refuse_named(self, limit: int, positions: int) -> None:
        """Generating a named sequence costs O(limit): bounded by the positions asked about, so
        a large shift or period (values, not sizes) is refused before any work."""
        refuse_above(int(limit), max(NAMED_WORK, 64 * positions),
                     f"the named sequence {self.data!r} up to {int(limit):,} (for {positions:,} positions)",
                     "use a smaller shift or period with a named sequence, or an explicit list or range",
                     unit="values")

    def membership(self, n: int, shift: int = 0) -> np.ndarray:
        """``m[x] = (x + shift) in set`` for x in ``[0, n)``."""
        if self.kind == "step":  # n / step writes, not a modulo per entry
            first, last, step = self.data
            m = np.zeros(max(n, 0), dtype=bool)
            a = first + max(0, -(-(shift - first) // step)) * step
            b = min(last, shift + n - 1)
            if a <= b:
                m[a - shift:b - shift + 1:step] = True
            return m
        if self.kind == "runs":
            starts, ends = self._runs()
            lo, hi = np.clip(starts - shift, 0, n), np.clip(ends - shift, 0, n)
            keep = lo < hi
            lo, hi = lo[keep], hi[keep]
            if lo.size <= _SLICED_RUNS:  # one slice per run: no n-sized temporaries
                m = np.zeros(max(n, 0), dtype=bool)
                for a, b in zip(lo.tolist(), hi.tolist()):
                    m[a:b] = True
                return m
            # +1 / -1 at the clipped run ends, then a running sum in place: O(n + runs)
            delta = np.zeros(max(n, 0) + 1, dtype=np.int32)
            np.add.at(delta, lo, 1)
            np.add.at(delta, hi, -1)
            np.cumsum(delta, out=delta)
            return delta[:-1] > 0
        if self.kind == "named":  # the members in range, written: O(n / 8 + members), no n-sized int64s
            limit = max(n - 1 + shift, 0)
            self._refuse_named(limit, n)
            values = _seq.named_sequence(self.data, limit)
            m = np.zeros(max(n, 0), dtype=bool)
            lo, hi = np.searchsorted(values, [shift, shift + n])
            m[values[lo:hi] - shift] = True
            return m
        return self.contains(np.arange(n, dtype=np.int64) + shift, limit=max(n - 1 + shift, 0))

    def values(self, limit: int) -> np.ndarray:
        """Members in ``[-limit, limit]`` as sorted int64 (costs O(their number))."""
        if self.kind == "named":
            return _seq.named_sequence(self.data, limit)
        if self.kind == "step":
            first, last, step = self.data
            a = first if first >= -limit else first + -(-(-limit - first) // step) * step
            return np.arange(a, min(last, limit) + 1, step, dtype=np.int64)
        starts, ends = self._runs()
        parts = [np.arange(max(a, -limit), min(b, limit + 1), dtype=np.int64) for a, b in zip(starts, ends)
                 if a <= limit and b > -limit]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _runs(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            flat = np.asarray(self.data, dtype=np.int64).reshape(-1, 2)
            starts, ends = flat[:, 0].copy(), flat[:, 1].copy()
            starts.setflags(write=False)
            ends.setflags(write=False)
            object.__setattr__(self, "_cache", (starts, ends))
        return self._cache

    # ------------------------------------------------------------------ text
    def text(self, as_list: bool = False) -> str:
        """Canonical text: a name, ``n`` (for ``range(n)``), ``range(a, b[, s])`` or a list.

        ``as_list=True`` always writes a list (never the bare ``n`` shorthand).
        """
        if self.kind == "named":
            return repr(self.data)
        if self.kind == "step":
            first, last, step = self.data
            t = f"range({first}, {last + 1}, {step})"
            return f"[{t}]" if as_list else t
        pairs = list(zip(self.data[::2], self.data[1::2]))
        if not as_list and len(pairs) == 1:
            a, b = pairs[0]
            if a == 0:
                return str(b)
            if b - a > 3:
                return f"range({a}, {b})"
        items: list[str] = []
        for a, b in pairs:
            if b - a <= 3:
                items.extend(str(v) for v in range(a, b))
            else:
                items.append(f"range({a}, {b})")
        return "[" + ", ".join(items) + "]"


def _check_member(v: int, what: str, lo: int) -> int:
    return check_int(v, f"{what} value", lo, MAX_INT - 1)


def _from_range(r: range, what: str, lo: int) -> tuple[np.ndarray, list[tuple[int, int]], tuple | None]:
    """(values, runs, step) of a range, never expanded."""
    n = len(r)
    if n == 0:
        return np.zeros(0, np.int64), [], None
    first, last = (r[0], r[-1]) if r.step > 0 else (r[-1], r[0])
    _check_member(first, what, lo)
    _check_member(last, what, lo)
    step = abs(r.step)
    if step == 1 or n == 1:
        return np.zeros(0, np.int64), [(first, last + 1)], None
    if n >= LONG_AP:
        return np.zeros(0, np.int64), [], (first, last, step)
    return np.arange(first, last + 1, step, dtype=np.int64), [], None


def _from_iterable(spec: Any, what: str, lo: int) -> tuple[np.ndarray, list[tuple[int, int]], tuple | None]:
    if isinstance(spec, np.ndarray):
        if spec.dtype.kind not in "iu":
            raise TypeError(f"{what} must hold integers, got an array of dtype {spec.dtype}")
        if spec.size > MAX_EXPLICIT:
            raise ValueError(f"{what}: at most {MAX_EXPLICIT:,} explicit values, got {spec.size:,}")
        vals = sorted_unique(spec.astype(np.int64))
        if vals.size:
            _check_member(int(vals[0]), what, lo)
            _check_member(int(vals[-1]), what, lo)
        return vals, [], None
    if hasattr(spec, "__len__") and len(spec) > MAX_EXPLICIT:
        raise ValueError(f"{what}: at most {MAX_EXPLICIT:,} explicit values, got {len(spec):,}")
    try:
        items: Iterable = iter(spec)
    except TypeError:
        raise TypeError(f"{what} must be an int, a range, an iterable of ints (and ranges) or a sequence name, "
                        f"got {type(spec).__name__}") from None
    vals: list[int] = []
    runs: list[tuple[int, int]] = []
    for count, v in enumerate(items):
        if count >= MAX_EXPLICIT:
            raise ValueError(f"{what}: at most {MAX_EXPLICIT:,} explicit values")
        if isinstance(v, range):
            rv, rr, rs = _from_range(v, what, lo)
            if rs is not None:
                first, last, step = rs
                if len(v) + len(vals) > MAX_EXPLICIT:
                    raise ValueError(f"{what}: a stepped range inside a list is expanded; at most "
                                     f"{MAX_EXPLICIT:,} values (give the range alone to keep it unexpanded)")
                rv = np.arange(first, last + 1, step, dtype=np.int64)
            vals.extend(int(x) for x in rv)
            runs.extend(rr)
            if len(runs) * 3 > MAX_TEXT:
                raise ValueError(f"{what}: {len(runs):,} separate ranges would not fit a pattern text "
                                 f"({MAX_TEXT:,} characters)")
        else:
            vals.append(_check_member(v, what, lo))
    return sorted_unique(np.asarray(vals, dtype=np.int64)), runs, None


def _canonical(vals: np.ndarray, runs: list[tuple[int, int]], step: tuple | None) -> tuple[str, tuple]:
    """The canonical (kind, data) of a set given as values, runs and at most one long progression."""
    if step is not None:
        return "step", step
    if not runs and vals.size >= LONG_AP:
        d = np.diff(vals)
        if d[0] >= 2 and (d == d[0]).all():
            return "step", (int(vals[0]), int(vals[-1]), int(d[0]))
    if vals.size:
        brk = np.flatnonzero(np.diff(vals) != 1) + 1
        starts = vals[np.r_[0, brk]]
        ends = vals[np.r_[brk - 1, vals.size - 1]] + 1
        runs = runs + list(zip(starts.tolist(), ends.tolist()))
    if len(runs) * 3 > MAX_TEXT:
        raise ValueError(f"{len(runs):,} separate runs would not fit a pattern text ({MAX_TEXT:,} characters); "
                         "use ranges or a named sequence")
    runs.sort()
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return "runs", tuple(x for ab in merged for x in ab)
