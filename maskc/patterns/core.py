"""The pattern DSL: an immutable expression tree of attention-mask rules.

A pattern is a predicate ``M(h, i, j)``: query ``i`` may attend key ``j`` in head
``h`` for given ``q_len`` and ``kv_len``. Leaves carry *structure* that the compiler
exploits; combinators are ``|`` (union), ``&`` (intersection), ``~`` (complement) and
``-`` (difference).

Every leaf belongs to an *axis class* that says what it depends on:

========  ==========================================  ==========================
axis      depends on                                  leaves
========  ==========================================  ==========================
``"D"``   the offset d = i - j (Toeplitz)             full, causal, window, ring_local, stride, offsets
``"S"``   the sum s = i + j (Hankel)                  sums
``"R"``   the query index i                           rows
``"C"``   the key index j                             cols
``"SEG"`` segment ids, seg(i) == seg(j)               segments
``"G"``   anything: a numba predicate f(i, j)          predicate
``"B"``   a pattern on block indices                  block_level / at_block_level
========  ==========================================  ==========================

Example:
    >>> import maskc as mc
    >>> p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    >>> p.text()
    "causal() & (window(3) | global_tokens(2) | offsets('primes'))"
    >>> mc.parse(p.text()) == p
    True
    >>> p.dense(6)[0].astype(int).sum(axis=1).tolist()
    [1, 2, 3, 4, 5, 6]
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from maskc.patterns import sequences as _seq

#: Largest explicit index / offset set a leaf accepts.
MAX_EXPLICIT = 1 << 20
#: Largest integer a pattern parameter may take.
MAX_INT = 1 << 40


# ============================================================== value helpers
def _check_int(value, name: str, lo: int | None = None, hi: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if abs(v) > hi:
        raise ValueError(f"{name} must be at most {hi:,} in magnitude, got {v:,}")
    return v


class IndexSet:
    """A set of non-negative integers: explicit values, a range, or a named sequence.

    Specs accepted by leaves: an ``int`` n (means ``range(n)``), a ``range`` with
    positive step, an iterable of ints, or the name of a registered sequence.
    """

    __slots__ = ("kind", "data")

    def __init__(self, spec, what: str = "indices", allow_negative: bool = False):
        if isinstance(spec, IndexSet):
            self.kind, self.data = spec.kind, spec.data
            return
        if isinstance(spec, str):
            if spec not in _seq.sequence_names():
                raise ValueError(
                    f"unknown sequence {spec!r} for {what}; known: {', '.join(_seq.sequence_names())}"
                )
            self.kind, self.data = "named", spec
        elif isinstance(spec, range):
            if spec.step <= 0:
                raise ValueError(f"{what}: range step must be positive, got {spec.step}")
            a = _check_int(spec.start, f"{what} range start", None if allow_negative else 0)
            b = _check_int(spec.stop, f"{what} range stop")
            self.kind, self.data = "range", (a, max(a, b), _check_int(spec.step, f"{what} range step", 1))
        elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            n = _check_int(spec, what, 0)
            self.kind, self.data = "range", (0, n, 1)
        else:
            try:
                vals = list(spec)
            except TypeError:
                raise TypeError(
                    f"{what} must be an int, a range, an iterable of ints or a sequence name, "
                    f"got {type(spec).__name__}"
                ) from None
            if len(vals) > MAX_EXPLICIT:
                raise ValueError(f"{what}: at most {MAX_EXPLICIT:,} explicit values, got {len(vals):,}")
            lo = None if allow_negative else 0
            clean = sorted({_check_int(v, f"{what} value", lo) for v in vals})
            self.kind, self.data = "values", tuple(clean)

    def values(self, limit: int) -> np.ndarray:
        """Members in ``[-limit, limit]`` (or ``[0, limit]``) as sorted int64."""
        if self.kind == "named":
            return _seq.named_sequence(self.data, limit)
        if self.kind == "range":
            a, b, s = self.data
            b = min(b, limit + 1)
            return np.arange(a, b, s, dtype=np.int64) if b > a else np.zeros(0, np.int64)
        v = np.asarray(self.data, dtype=np.int64)
        return v[np.abs(v) <= limit]

    def membership(self, n: int, shift: int = 0) -> np.ndarray:
        """Boolean array m[x] = (x + shift) in set, for x in [0, n)."""
        m = np.zeros(max(n, 0), dtype=bool)
        vals = self.values(max(n - 1 + shift, 0)) - shift
        vals = vals[(vals >= 0) & (vals < n)]
        m[vals] = True
        return m

    def text(self) -> str:
        if self.kind == "named":
            return repr(self.data)
        if self.kind == "range":
            a, b, s = self.data
            if a == 0 and s == 1:
                return str(b)
            return f"range({a}, {b})" if s == 1 else f"range({a}, {b}, {s})"
        return "[" + ", ".join(str(v) for v in self.data) + "]"

    def key(self):
        return (self.kind, self.data)


# ================================================================= the base
class Pattern:
    """Base class of every pattern node. Patterns are immutable and hashable.

    Subclasses set ``axis`` (see the module docstring) and implement ``text``,
    ``_key`` and ``_eval``; axis leaves also implement ``membership``.
    """

    axis: str | None = None
    #: precedence for text(): 4 atom, 3 unary ~, 2 binary -, 1 &, 0 |
    _prec: int = 4

    # ---- combinators
    def __or__(self, other: "Pattern") -> "Pattern":
        return Or(self, _as_pattern(other, "|"))

    def __and__(self, other: "Pattern") -> "Pattern":
        return And(self, _as_pattern(other, "&"))

    def __sub__(self, other: "Pattern") -> "Pattern":
        return Diff(self, _as_pattern(other, "-"))

    def __invert__(self) -> "Pattern":
        return Not(self)

    def at_block_level(self, block: int) -> "Pattern":
        """Apply this rule to block indices: (i, j) allowed iff (i // block, j // block) is.

        Example:
            >>> import maskc as mc
            >>> mc.causal().at_block_level(2).dense(4)[0].astype(int).tolist()
            [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
        """
        return BlockLevel(self, block)

    # ---- identity
    def text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _key(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"<Pattern {self.text()}>"

    def __str__(self) -> str:
        return self.text()

    def children(self) -> tuple["Pattern", ...]:
        """Direct sub-patterns (empty for leaves)."""
        return ()

    # ---- heads
    @property
    def n_heads(self) -> int | None:
        """Number of heads if the pattern contains a :func:`heads` node, else None."""
        counts = {c.n_heads for c in self.children()} - {None}
        if len(counts) > 1:
            raise ValueError(f"heads([...]) nodes with different head counts {sorted(counts)} in {self.text()}")
        return counts.pop() if counts else None

    def for_head(self, h: int) -> "Pattern":
        """The head-free pattern that head ``h`` uses."""
        return self

    # ---- dense oracle (small sizes; tests and pictures)
    def _eval(self, i: np.ndarray, j: np.ndarray, q_len: int, kv_len: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def evaluate(self, i, j, q_len: int, kv_len: int | None = None, head: int = 0) -> np.ndarray:
        """Evaluate the rule on broadcastable integer arrays of query and key positions.

        This is the direct, element-by-element definition (the oracle the compiler is
        tested against); it costs O(size of the broadcast).
        """
        kv_len = q_len if kv_len is None else kv_len
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        return np.broadcast_to(self.for_head(head)._eval(i, j, q_len, kv_len), np.broadcast_shapes(i.shape, j.shape))

    def dense(self, q_len: int, kv_len: int | None = None, heads: int | None = None,
              max_elements: int = 1 << 28) -> np.ndarray:
        """The mask as bool [heads, q_len, kv_len], evaluated element by element.

        Example:
            >>> import maskc as mc
            >>> mc.window(1).dense(3)[0].astype(int).tolist()
            [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
        """
        kv_len = q_len if kv_len is None else kv_len
        H = heads or self.n_heads or 1
        if H * q_len * kv_len > max_elements:
            from maskc.errors import TooLargeError

            raise TooLargeError(
                f"dense mask of {H} x {q_len} x {kv_len} = {H * q_len * kv_len:,} elements is above "
                f"max_elements={max_elements:,}; compile the pattern instead (mc.compile)"
            )
        i = np.arange(q_len, dtype=np.int64)[:, None]
        j = np.arange(kv_len, dtype=np.int64)[None, :]
        return np.stack([np.array(self.evaluate(i, j, q_len, kv_len, head=h), dtype=bool) for h in range(H)])

    # ---- compiler support
    def lowered(self) -> "Pattern":
        """An equivalent pattern made only of primitive nodes (named patterns expand)."""
        return self


def _as_pattern(obj, op: str) -> Pattern:
    if not isinstance(obj, Pattern):
        raise TypeError(f"cannot combine a Pattern with {type(obj).__name__} using {op!r}; both sides must be patterns")
    return obj


# ========================================================== combinators
class _NAry(Pattern):
    op = ""
    _prec = 0

    def __init__(self, *parts: Pattern):
        flat: list[Pattern] = []
        for p in parts:
            _as_pattern(p, self.op)
            flat.extend(p.parts if type(p) is type(self) else (p,))
        if len(flat) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")
        self.parts = tuple(flat)

    def children(self):
        return self.parts

    def text(self) -> str:
        return f" {self.op} ".join(
            f"({p.text()})" if p._prec < self._prec or (isinstance(p, _NAry) and p._prec == self._prec) else p.text()
            for p in self.parts
        )

    def _key(self):
        return self.parts

    @property
    def axis(self):  # type: ignore[override]
        axes = {p.axis for p in self.parts}
        return axes.pop() if len(axes) == 1 and None not in axes and not axes & {"G", "B", "SEG"} else None


class Or(_NAry):
    """Union: allowed if any operand allows. Written ``a | b``."""

    op = "|"
    _prec = 0

    def _eval(self, i, j, q, k):
        out = self.parts[0]._eval(i, j, q, k)
        for p in self.parts[1:]:
            out = out | p._eval(i, j, q, k)
        return out

    def membership(self, q_len, kv_len):
        out = self.parts[0].membership(q_len, kv_len)
        for p in self.parts[1:]:
            out = out | p.membership(q_len, kv_len)
        return out

    def for_head(self, h):
        return Or(*(p.for_head(h) for p in self.parts))

    def lowered(self):
        return Or(*(p.lowered() for p in self.parts))


class And(_NAry):
    """Intersection: allowed if every operand allows. Written ``a & b``."""

    op = "&"
    _prec = 1

    def _eval(self, i, j, q, k):
        out = self.parts[0]._eval(i, j, q, k)
        for p in self.parts[1:]:
            out = out & p._eval(i, j, q, k)
        return out

    def membership(self, q_len, kv_len):
        out = self.parts[0].membership(q_len, kv_len)
        for p in self.parts[1:]:
            out = out & p.membership(q_len, kv_len)
        return out

    def for_head(self, h):
        return And(*(p.for_head(h) for p in self.parts))

    def lowered(self):
        return And(*(p.lowered() for p in self.parts))


class Diff(Pattern):
    """Difference: allowed by ``a`` and not by ``b``. Written ``a - b``."""

    _prec = 2

    def __init__(self, a: Pattern, b: Pattern):
        self.a, self.b = _as_pattern(a, "-"), _as_pattern(b, "-")

    def children(self):
        return (self.a, self.b)

    def text(self):
        left = self.a.text() if self.a._prec >= 2 else f"({self.a.text()})"
        right = self.b.text() if self.b._prec > 2 else f"({self.b.text()})"
        return f"{left} - {right}"

    def _key(self):
        return (self.a, self.b)

    @property
    def axis(self):  # type: ignore[override]
        return And(self.a, Not(self.b)).axis

    def _eval(self, i, j, q, k):
        return self.a._eval(i, j, q, k) & ~self.b._eval(i, j, q, k)

    def membership(self, q_len, kv_len):
        return self.a.membership(q_len, kv_len) & ~self.b.membership(q_len, kv_len)

    def for_head(self, h):
        return Diff(self.a.for_head(h), self.b.for_head(h))

    def lowered(self):
        return And(self.a.lowered(), Not(self.b.lowered()))


class Not(Pattern):
    """Complement: allowed where the operand is not. Written ``~a``."""

    _prec = 3

    def __init__(self, a: Pattern):
        self.a = _as_pattern(a, "~")

    def children(self):
        return (self.a,)

    def text(self):
        return "~" + (self.a.text() if self.a._prec >= 3 else f"({self.a.text()})")

    def _key(self):
        return (self.a,)

    @property
    def axis(self):  # type: ignore[override]
        ax = self.a.axis
        return ax if ax not in ("G", "B", "SEG") else None

    def _eval(self, i, j, q, k):
        return ~self.a._eval(i, j, q, k)

    def membership(self, q_len, kv_len):
        return ~self.a.membership(q_len, kv_len)

    def for_head(self, h):
        return Not(self.a.for_head(h))

    def lowered(self):
        return Not(self.a.lowered())


# ====================================================================== leaves
def _d_range(q_len: int, kv_len: int) -> np.ndarray:
    """All offsets d = i - j, from -(kv_len - 1) to q_len - 1 (index = d + kv_len - 1)."""
    return np.arange(-(kv_len - 1), q_len, dtype=np.int64)


class _DLeaf(Pattern):
    """A rule on the offset d = i - j; subclasses implement ``_d_rule(d, q_len, kv_len)``."""

    axis = "D"

    def _d_rule(self, d: np.ndarray, q_len: int, kv_len: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _eval(self, i, j, q, k):
        return self._d_rule(i - j, q, k)

    def membership(self, q_len, kv_len):
        """bool [q_len + kv_len - 1]: rule at d = index - (kv_len - 1)."""
        return np.asarray(self._d_rule(_d_range(q_len, kv_len), q_len, kv_len), dtype=bool)


class Full(_DLeaf):
    """Every pair allowed (dense attention)."""

    def text(self):
        return "full()"

    def _key(self):
        return ()

    def _d_rule(self, d, q, k):
        return np.ones(np.shape(d), dtype=bool)


class Causal(_DLeaf):
    """Key not after the query: j <= i."""

    def text(self):
        return "causal()"

    def _key(self):
        return ()

    def _d_rule(self, d, q, k):
        return d >= 0


class Window(_DLeaf):
    """Relative band -right <= i - j <= left."""

    def __init__(self, left: int, right: int = 0):
        self.left = _check_int(left, "window left")
        self.right = _check_int(right, "window right")
        if self.left + self.right < 0:
            raise ValueError(f"window(left={left}, right={right}) is empty: need left + right >= 0")

    def text(self):
        return f"window({self.left})" if self.right == 0 else f"window({self.left}, {self.right})"

    def _key(self):
        return (self.left, self.right)

    def _d_rule(self, d, q, k):
        return (d <= self.left) & (d >= -self.right)


class RingLocal(_DLeaf):
    """Circular distance min(|i-j| mod N, N - |i-j| mod N) <= radius, N = kv_len."""

    def __init__(self, radius: int):
        self.radius = _check_int(radius, "ring_local radius", 0)

    def text(self):
        return f"ring_local({self.radius})"

    def _key(self):
        return (self.radius,)

    def _d_rule(self, d, q, k):
        m = np.mod(d, k)
        return np.minimum(m, k - m) <= self.radius


class Stride(_DLeaf):
    """Periodic offsets: (i - j) mod period == phase (both directions)."""

    def __init__(self, period: int, phase: int = 0):
        self.period = _check_int(period, "stride period", 1)
        self.phase = _check_int(phase, "stride phase", 0)
        if self.phase >= self.period:
            raise ValueError(f"stride phase must be in [0, period={self.period}), got {self.phase}")

    def text(self):
        return f"stride({self.period})" if self.phase == 0 else f"stride({self.period}, {self.phase})"

    def _key(self):
        return (self.period, self.phase)

    def _d_rule(self, d, q, k):
        return np.mod(d, self.period) == self.phase


class Offsets(_DLeaf):
    """Offsets from a set: i - j in S (or |i - j| in S when symmetric)."""

    def __init__(self, seq, symmetric: bool = False):
        self.seq = IndexSet(seq, "offsets", allow_negative=True)
        if not isinstance(symmetric, bool):
            raise TypeError(f"offsets symmetric must be True or False, got {symmetric!r}")
        self.symmetric = symmetric

    def text(self):
        return f"offsets({self.seq.text()}, symmetric=True)" if self.symmetric else f"offsets({self.seq.text()})"

    def _key(self):
        return (self.seq.key(), self.symmetric)

    def _d_rule(self, d, q, k):
        vals = self.seq.values(max(q, k))
        hit = np.isin(d, vals)
        if self.symmetric:
            hit = hit | np.isin(-d, vals)
        return hit

    def membership(self, q_len, kv_len):
        m = np.zeros(q_len + kv_len - 1, dtype=bool)
        vals = self.seq.values(max(q_len, kv_len))
        for v in (vals, -vals) if self.symmetric else (vals,):
            v = v[(v > -kv_len) & (v < q_len)]
            m[v + kv_len - 1] = True
        return m


class Sums(Pattern):
    """Hankel rule: i + j in S."""

    axis = "S"

    def __init__(self, seq):
        self.seq = IndexSet(seq, "sums")

    def text(self):
        return f"sums({self.seq.text()})"

    def _key(self):
        return (self.seq.key(),)

    def _eval(self, i, j, q, k):
        return np.isin(i + j, self.seq.values(q + k))

    def membership(self, q_len, kv_len):
        """bool [q_len + kv_len - 1]: rule at s = index."""
        return self.seq.membership(q_len + kv_len - 1)


class _IndexLeaf(Pattern):
    name = ""

    def __init__(self, indices, shift: int = 0):
        self.idx = IndexSet(indices, f"{self.name} indices")
        self.shift = _check_int(shift, f"{self.name} shift")

    def text(self):
        if self.shift:
            return f"{self.name}({self.idx.text()}, shift={self.shift})"
        return f"{self.name}({self.idx.text()})"

    def _key(self):
        return (self.idx.key(), self.shift)

    def _member(self, x, n):
        return self.idx.membership(n, self.shift)[np.clip(x, 0, max(n - 1, 0))] & (x >= 0) & (x < n)


class Rows(_IndexLeaf):
    """Query rows in a set: (index + shift) in S. ``rows(4)`` means the first 4 queries."""

    axis = "R"
    name = "rows"

    def _eval(self, i, j, q, k):
        return self._member(i, q) & np.ones(np.shape(j), dtype=bool)

    def membership(self, q_len, kv_len):
        return self.idx.membership(q_len, self.shift)


class Cols(_IndexLeaf):
    """Key columns in a set: (index + shift) in S. ``cols(4)`` means the first 4 keys."""

    axis = "C"
    name = "cols"

    def _eval(self, i, j, q, k):
        return self._member(j, k) & np.ones(np.shape(i), dtype=bool)

    def membership(self, q_len, kv_len):
        return self.idx.membership(kv_len, self.shift)


class GlobalTokens(Pattern):
    """Global tokens G: rows G attend everything and everything attends columns G."""

    def __init__(self, n_or_indices):
        self.idx = IndexSet(n_or_indices, "global_tokens")

    def text(self):
        return f"global_tokens({self.idx.text()})"

    def _key(self):
        return (self.idx.key(),)

    def lowered(self):
        return Or(Rows(self.idx), Cols(self.idx))

    def _eval(self, i, j, q, k):
        return self.lowered()._eval(i, j, q, k)


class Segments(Pattern):
    """Block-diagonal by segments: allowed iff seg(i) == seg(j).

    ``segments([5, 3, 8])`` gives segments of those lengths (document / packed-sequence
    masking); positions past their sum form one last segment. ``segments('prime_gaps')``
    puts v = i + 1 into the interval [p_n, p_{n+1}) of consecutive primes (positions
    with v < 2 form segment 0).
    """

    axis = "SEG"

    def __init__(self, spec):
        if isinstance(spec, str):
            if spec != "prime_gaps":
                raise ValueError(f"unknown segment rule {spec!r}; use 'prime_gaps' or a list of segment lengths")
            self.spec = spec
        else:
            lens = list(spec) if not isinstance(spec, (int, np.integer)) else [spec]
            if not lens or len(lens) > MAX_EXPLICIT:
                raise ValueError(f"segments needs 1..{MAX_EXPLICIT:,} lengths, got {len(lens):,}")
            self.spec = tuple(_check_int(v, "segment length", 1) for v in lens)

    def text(self):
        if isinstance(self.spec, str):
            return f"segments({self.spec!r})"
        return "segments([" + ", ".join(map(str, self.spec)) + "])"

    def _key(self):
        return (self.spec,)

    def segment_ids(self, n: int) -> np.ndarray:
        """Non-decreasing segment id of positions 0..n-1 (int64)."""
        pos = np.arange(n, dtype=np.int64)
        if isinstance(self.spec, str):
            ps = _seq.named_sequence("primes", n + 1)
            return np.searchsorted(ps, pos + 1, side="right").astype(np.int64)
        bounds = np.cumsum(np.asarray(self.spec, dtype=np.int64))
        return np.searchsorted(bounds, pos, side="right").astype(np.int64)

    def _eval(self, i, j, q, k):
        n = max(q, k)
        ids = self.segment_ids(n)
        return ids[np.clip(i, 0, n - 1)] == ids[np.clip(j, 0, n - 1)]


class Predicate(Pattern):
    """A user's rule ``f(i, j) -> bool``, compiled with numba (``@mc.predicate``).

    The function must be numba-jittable (nopython). It is evaluated blockwise only on
    blocks the rest of the expression cannot decide, so combine it with structured
    leaves (``mc.causal() & my_rule``) to keep compilation sparse.
    """

    axis = "G"

    def __init__(self, fn: Callable[[int, int], bool], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"predicate needs a function (i, j) -> bool, got {type(fn).__name__}")
        import numba

        self.name = name or getattr(fn, "__name__", "predicate")
        if not self.name.isidentifier():
            raise ValueError(f"predicate name must be an identifier, got {self.name!r}")
        py = getattr(fn, "py_func", fn)
        self.py_func = py
        self.jit = fn if hasattr(fn, "py_func") else numba.njit(cache=False)(fn)
        _PREDICATES[self.name] = self

    def __call__(self, i: int, j: int) -> bool:
        return bool(self.py_func(i, j))

    def text(self):
        return f"predicate({self.name!r})"

    def _key(self):
        return (self.name, id(self.py_func))

    def _eval(self, i, j, q, k):
        vec = np.vectorize(lambda a, b: bool(self.py_func(int(a), int(b))), otypes=[bool])
        return vec(i, j)


_PREDICATES: dict[str, Predicate] = {}


def registered_predicate(name: str) -> Predicate:
    """The predicate registered under ``name`` by ``@mc.predicate`` (for parsing)."""
    if name not in _PREDICATES:
        raise ValueError(
            f"no predicate named {name!r} is registered; define it in Python with @maskc.predicate first"
            + (f" (registered: {', '.join(sorted(_PREDICATES))})" if _PREDICATES else "")
        )
    return _PREDICATES[name]


class BlockLevel(Pattern):
    """``inner`` applied to block indices: (i, j) allowed iff inner(i // b, j // b).

    The inner pattern sees lengths ceil(q_len / b) and ceil(kv_len / b).
    """

    axis = "B"

    def __init__(self, inner: Pattern, block: int):
        self.inner = _as_pattern(inner, "at_block_level")
        self.block = _check_int(block, "block_level block", 1, 1 << 20)

    def children(self):
        return (self.inner,)

    def text(self):
        return f"block_level({self.inner.text()}, {self.block})"

    def _key(self):
        return (self.inner, self.block)

    def for_head(self, h):
        return BlockLevel(self.inner.for_head(h), self.block)

    def lowered(self):
        return BlockLevel(self.inner.lowered(), self.block)

    def _eval(self, i, j, q, k):
        b = self.block
        return self.inner._eval(i // b, j // b, -(-q // b), -(-k // b))


class Heads(Pattern):
    """A different pattern per head: ``heads([p0, p1, ...])``."""

    def __init__(self, patterns: Sequence[Pattern]):
        pats = tuple(patterns)
        if not pats:
            raise ValueError("heads([...]) needs at least one pattern")
        for p in pats:
            _as_pattern(p, "heads")
            if p.n_heads is not None:
                raise ValueError("heads([...]) cannot be nested")
        self.patterns = pats

    def children(self):
        return self.patterns

    @property
    def n_heads(self) -> int:  # type: ignore[override]
        return len(self.patterns)

    def for_head(self, h: int) -> Pattern:
        if not 0 <= h < len(self.patterns):
            raise ValueError(f"head {h} out of range for heads([...]) with {len(self.patterns)} patterns")
        return self.patterns[h]

    def text(self):
        return "heads([" + ", ".join(p.text() for p in self.patterns) + "])"

    def _key(self):
        return self.patterns

    def _eval(self, i, j, q, k):  # pragma: no cover - evaluate() resolves heads first
        raise ValueError("evaluate a heads([...]) pattern per head: pattern.evaluate(..., head=h)")


class Named(Pattern):
    """A library pattern: keeps its constructor call as text, compiles as its body.

    Library constructors (``maskc.patterns.library``) return Named nodes so that
    ``prime_bird(window=3)`` prints and parses as itself.
    """

    def __init__(self, name: str, kwargs: dict, body: Pattern):
        self.name = name
        self.kwargs = tuple(sorted(kwargs.items()))
        self.body = _as_pattern(body, name)

    def children(self):
        return (self.body,)

    @property
    def axis(self):  # type: ignore[override]
        return self.body.axis

    def text(self):
        args = ", ".join(f"{k}={_literal(v)}" for k, v in self.kwargs)
        return f"{self.name}({args})"

    def _key(self):
        return (self.name, self.kwargs)

    def for_head(self, h):
        return self.body.for_head(h) if self.body.n_heads is not None else self

    def lowered(self):
        return self.body.lowered()

    def membership(self, q_len, kv_len):
        return self.body.membership(q_len, kv_len)

    def _eval(self, i, j, q, k):
        return self.body._eval(i, j, q, k)


def _literal(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    if isinstance(v, range):
        return f"range({v.start}, {v.stop})" if v.step == 1 else f"range({v.start}, {v.stop}, {v.step})"
    return repr(v)


# ================================================================ constructors
def full() -> Pattern:
    """Dense attention: every (i, j).

    Example:
        >>> import maskc as mc
        >>> int(mc.full().dense(3).sum())
        9
    """
    return Full()


def causal() -> Pattern:
    """Causal attention: j <= i.

    Example:
        >>> import maskc as mc
        >>> int(mc.causal().dense(4).sum())
        10
    """
    return Causal()


def window(left: int, right: int = 0) -> Pattern:
    """Relative band: -right <= i - j <= left (``window(w)`` is causal-side only).

    Example:
        >>> import maskc as mc
        >>> mc.window(1, 1).dense(3)[0].astype(int).tolist()
        [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    return Window(left, right)


def ring_local(radius: int) -> Pattern:
    """Ring neighbourhood: circular distance of i and j (mod kv_len) <= radius.

    Example:
        >>> import maskc as mc
        >>> mc.ring_local(1).dense(4)[0, 0].astype(int).tolist()
        [1, 1, 0, 1]
    """
    return RingLocal(radius)


def stride(period: int, phase: int = 0) -> Pattern:
    """Periodic: (i - j) mod period == phase, in both directions.

    Example:
        >>> import maskc as mc
        >>> mc.stride(2).dense(4)[0, 3].astype(int).tolist()
        [0, 1, 0, 1]
    """
    return Stride(period, phase)


def offsets(seq, symmetric: bool = False) -> Pattern:
    """Offsets from a set S: i - j in S (|i - j| in S when ``symmetric``).

    ``seq`` is an iterable of ints or a named sequence: 'primes', 'squares',
    'mian_chowla', 'powers_of_two', 'mersenne', 'fibonacci', 'twin_primes',
    'prime_powers' (and any registered with ``register_sequence``).

    Example:
        >>> import maskc as mc
        >>> mc.offsets("primes").dense(8)[0, 7].nonzero()[0].tolist()
        [0, 2, 4, 5]
    """
    return Offsets(seq, symmetric)


def sums(seq) -> Pattern:
    """Hankel rule: i + j in S (an iterable of ints or a named sequence).

    Example:
        >>> import maskc as mc
        >>> mc.sums([3]).dense(4)[0].nonzero()[0].tolist()
        [0, 1, 2, 3]
    """
    return Sums(seq)


def global_tokens(n_or_indices) -> Pattern:
    """Global tokens: those rows attend every key and every query attends those columns.

    Example:
        >>> import maskc as mc
        >>> int(mc.global_tokens(1).dense(4).sum())
        7
    """
    return GlobalTokens(n_or_indices)


def rows(indices, shift: int = 0) -> Pattern:
    """Queries in a set (``rows(n)``: the first n; ``shift``: test index + shift).

    Example:
        >>> import maskc as mc
        >>> int(mc.rows([0, 2]).dense(3).sum())
        6
    """
    return Rows(indices, shift)


def cols(indices, shift: int = 0) -> Pattern:
    """Keys in a set (``cols(n)``: the first n; ``shift``: test index + shift).

    Example:
        >>> import maskc as mc
        >>> mc.cols("primes", shift=1).dense(6)[0, 0].nonzero()[0].tolist()
        [1, 2, 4]
    """
    return Cols(indices, shift)


def segments(spec) -> Pattern:
    """Segment (document) masking: allowed iff i and j lie in the same segment.

    Example:
        >>> import maskc as mc
        >>> mc.segments([2, 2]).dense(4)[0].astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    return Segments(spec)


def predicate(fn: Callable[[int, int], bool] | None = None, *, name: str | None = None):
    """Decorator: turn a numba-jittable ``f(i, j) -> bool`` into a pattern leaf.

    The predicate is registered under its name so ``parse("predicate('f')")`` finds it.

    Example:
        >>> import maskc as mc
        >>> @mc.predicate
        ... def same_parity(i, j):
        ...     return (i - j) % 2 == 0
        >>> int((mc.causal() & same_parity).dense(4).sum())
        6
    """
    if fn is None:
        return lambda f: Predicate(f, name)
    return Predicate(fn, name)


def heads(patterns: Iterable[Pattern]) -> Pattern:
    """One pattern per head.

    Example:
        >>> import maskc as mc
        >>> mc.heads([mc.causal(), mc.full()]).dense(2).sum(axis=(1, 2)).tolist()
        [3, 4]
    """
    return Heads(list(patterns))


def block_level(inner: Pattern, block: int) -> Pattern:
    """``inner.at_block_level(block)``: the rule applied to (i // block, j // block)."""
    return BlockLevel(inner, block)
