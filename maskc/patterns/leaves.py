"""Leaves on one axis: each rule is a membership array over one variable.

========  ========================  ==================================================
axis      variable                  leaves
========  ========================  ==================================================
``"D"``   the offset d = i - j      full, causal, window, ring_local, stride, offsets
``"S"``   the sum s = i + j         sums
``"R"``   the query position i      rows
``"C"``   the key position j        cols
========  ========================  ==================================================

At sizes (q_total, kv_len) a D or S membership has q_total + kv_len - 1 entries (index
d + kv_len - 1, resp. s), an R membership q_total, a C membership kv_len. A leaf
defines only ``membership``; its element rule is a lookup into it, so the compiler
(which reads memberships) and ``dense`` cannot disagree. Named sequences are generated
to a limit: offsets to ``max(q_total, kv_len)`` (the sequence length N), sums to
``q_total + kv_len - 2``, rows / cols to the largest (shifted) position they test;
only ``'paley_residues'`` depends on the limit.

Example:
    >>> import maskc as mc
    >>> mc.window(1).membership(3, 3).astype(int).tolist()     # d = -2 .. 2
    [0, 0, 1, 1, 0]
    >>> mc.cols(range(2, 4), period=4).dense(1, 9)[0, 0].astype(int).tolist()
    [0, 0, 1, 1, 0, 0, 1, 1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.limits import check_int
from maskc.patterns.algebra import Or
from maskc.patterns.base import Pattern, Sizes, axis_index, check_bool, lookup
from maskc.patterns.indexset import IndexSet


class AxisLeaf(Pattern):
    """A leaf on one axis; subclasses implement ``membership(q_total, kv_len)``."""

    __slots__ = ()

    def membership(self, q_total: int, kv_len: int) -> np.ndarray:  # pragma: no cover - abstract
        """bool array over the axis variable (see the module docstring)."""
        raise NotImplementedError

    def _eval(self, i, j, s: Sizes):
        return lookup(self.membership(s.q_total, s.kv_len), axis_index(self._AXIS, i, j, s))


def _offsets(q_total: int, kv_len: int) -> np.ndarray:
    """Every offset d = i - j, from -(kv_len - 1) to q_total - 1 (index d + kv_len - 1)."""
    return np.arange(-(kv_len - 1), q_total, dtype=np.int64)


class _Constant(AxisLeaf):
    """An offset leaf without parameters, written ``name()``."""

    __slots__ = ()
    _AXIS = "D"
    name = ""

    def __init__(self):
        self._init()

    def _key_fields(self):
        return ()

    def _make_text(self):
        return f"{self.name}()"


class Full(_Constant):
    """Every pair allowed (dense attention)."""

    __slots__ = ()
    name = "full"

    def membership(self, q_total, kv_len):
        return np.ones(q_total + kv_len - 1, dtype=bool)


class Causal(_Constant):
    """Key not after the query: j <= i."""

    __slots__ = ()
    name = "causal"

    def membership(self, q_total, kv_len):
        m = np.zeros(q_total + kv_len - 1, dtype=bool)
        m[kv_len - 1:] = True
        return m


class Window(AxisLeaf):
    """Relative band -right <= i - j <= left."""

    __slots__ = ("left", "right")
    _AXIS = "D"

    def __init__(self, left: int, right: int = 0):
        lf = check_int(left, "window left")
        rt = check_int(right, "window right")
        if lf + rt < 0:
            raise ValueError(f"window(left={lf}, right={rt}) is empty: need left + right >= 0")
        self._init(left=lf, right=rt)

    def _key_fields(self):
        return (self.left, self.right)

    def _make_text(self):
        return f"window({self.left})" if self.right == 0 else f"window({self.left}, {self.right})"

    def membership(self, q_total, kv_len):
        n = q_total + kv_len - 1
        m = np.zeros(n, dtype=bool)
        a = max(-self.right + kv_len - 1, 0)
        b = min(self.left + kv_len - 1, n - 1)
        if a <= b:
            m[a: b + 1] = True
        return m


class RingLocal(AxisLeaf):
    """Circular distance min(|i - j| mod N, N - |i - j| mod N) <= radius, N = kv_len."""

    __slots__ = ("radius",)
    _AXIS = "D"

    def __init__(self, radius: int):
        self._init(radius=check_int(radius, "ring_local radius", 0))

    def _key_fields(self):
        return (self.radius,)

    def _make_text(self):
        return f"ring_local({self.radius})"

    def membership(self, q_total, kv_len):
        m = np.mod(_offsets(q_total, kv_len), kv_len)
        return np.minimum(m, kv_len - m) <= self.radius


class Stride(AxisLeaf):
    """Periodic offsets: (i - j) mod period == phase (both directions)."""

    __slots__ = ("period", "phase")
    _AXIS = "D"

    def __init__(self, period: int, phase: int = 0):
        p = check_int(period, "stride period", 1)
        ph = check_int(phase, "stride phase", 0)
        if ph >= p:
            raise ValueError(f"stride phase must be in [0, period={p}), got {ph}")
        self._init(period=p, phase=ph)

    def _key_fields(self):
        return (self.period, self.phase)

    def _make_text(self):
        return f"stride({self.period})" if self.phase == 0 else f"stride({self.period}, {self.phase})"

    def membership(self, q_total, kv_len):
        return np.mod(_offsets(q_total, kv_len), self.period) == self.phase


class Offsets(AxisLeaf):
    """Offsets from a set: i - j in S (or |i - j| in S when symmetric)."""

    __slots__ = ("seq", "symmetric")
    _AXIS = "D"

    def __init__(self, seq: Any, symmetric: bool = False):
        self._init(seq=IndexSet(seq, "offsets", allow_negative=True), symmetric=check_bool(symmetric, "offsets symmetric"))

    def _key_fields(self):
        return (self.seq.key(), self.symmetric)

    def _make_text(self):
        return f"offsets({self.seq.text()}, symmetric=True)" if self.symmetric else f"offsets({self.seq.text()})"

    def membership(self, q_total, kv_len):
        d = _offsets(q_total, kv_len)
        limit = max(q_total, kv_len)
        m = self.seq.contains(d, limit)
        return m | self.seq.contains(-d, limit) if self.symmetric else m


class Sums(AxisLeaf):
    """Hankel rule: i + j in S."""

    __slots__ = ("seq",)
    _AXIS = "S"

    def __init__(self, seq: Any):
        self._init(seq=IndexSet(seq, "sums"))

    def _key_fields(self):
        return (self.seq.key(),)

    def _make_text(self):
        return f"sums({self.seq.text()})"

    def membership(self, q_total, kv_len):
        return self.seq.membership(q_total + kv_len - 1)


class _IndexLeaf(AxisLeaf):
    """Positions on one side in a set: ``(x + shift) in S``, or ``(x + shift) mod period in S``."""

    __slots__ = ("idx", "shift", "period")
    name = ""

    def __init__(self, indices: Any, shift: int = 0, period: int | None = None):
        per = None if period is None else check_int(period, f"{self.name} period", 1)
        self._init(idx=IndexSet(indices, f"{self.name} indices"), shift=check_int(shift, f"{self.name} shift"),
                   period=per)

    def _key_fields(self):
        return (self.idx.key(), self.shift, self.period)

    def _make_text(self):
        extra = (f", shift={self.shift}" if self.shift else "") + (f", period={self.period}" if self.period else "")
        return f"{self.name}({self.idx.text()}{extra})"

    def _member(self, n: int) -> np.ndarray:
        if self.period is None:
            return self.idx.membership(n, self.shift)
        x = np.mod(np.arange(n, dtype=np.int64) + self.shift, self.period)
        return self.idx.contains(x, limit=max(int(x.max()), 0) if n else 0)


class Rows(_IndexLeaf):
    """Query rows in a set: (i + shift) in S. ``rows(4)`` means the first 4 queries."""

    __slots__ = ()
    _AXIS = "R"
    name = "rows"

    def membership(self, q_total, kv_len):
        return self._member(q_total)


class Cols(_IndexLeaf):
    """Key columns in a set: (j + shift) in S. ``cols(4)`` means the first 4 keys."""

    __slots__ = ()
    _AXIS = "C"
    name = "cols"

    def membership(self, q_total, kv_len):
        return self._member(kv_len)


class GlobalTokens(Pattern):
    """Global tokens G: rows G attend everything and everything attends columns G."""

    __slots__ = ("idx",)

    def __init__(self, n_or_indices: Any):
        self._init(idx=IndexSet(n_or_indices, "global_tokens"))

    def _key_fields(self):
        return (self.idx.key(),)

    def _make_text(self):
        return f"global_tokens({self.idx.text()})"

    def lowered(self) -> Pattern:
        return Or(Rows(self.idx), Cols(self.idx))

    def _eval(self, i, j, s):
        return self.lowered()._eval(i, j, s)

    def _lower(self, sink):
        self.lowered().lower(sink)
