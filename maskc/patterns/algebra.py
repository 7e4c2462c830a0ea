"""The combinators: union ``a | b``, intersection ``a & b``, complement ``~a``, difference ``a - b``.

Unions and intersections are n-ary and flat (``a | (b | c)`` is one union of three), so
a union of many operands never nests; ``~~a`` is ``a``.

Example:
    >>> import maskc as mc
    >>> p = mc.window(1) | (mc.window(2) | mc.cols(1))
    >>> len(p.parts), p.text()
    (3, 'window(1) | window(2) | cols(1)')
    >>> (~~mc.causal()) == mc.causal()
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.patterns.base import AXES, Pattern, Sizes, as_pattern, register_combinator


class _NAry(Pattern):
    """A flat union or intersection of two or more operands."""

    __slots__ = ("parts",)
    op = ""
    _opname = ""

    def __init__(self, *parts: Pattern):
        flat: list[Pattern] = []
        for p in parts:
            as_pattern(p, self.op)
            flat.extend(p.parts if type(p) is type(self) else (p,))
        if len(flat) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")
        self._init(parts=tuple(flat))

    def _children(self):
        return self.parts

    def _rebuild(self, children):
        return type(self)(*children)

    def _key_fields(self):
        return self.parts

    def _wrap(self, p: Pattern) -> bool:
        return p._prec < self._prec or (isinstance(p, _NAry) and p._prec == self._prec)

    def _make_text(self):
        return f" {self.op} ".join(f"({p.text()})" if self._wrap(p) else p.text() for p in self.parts)

    def _text_depth(self, kids, text):
        return max(c._tdepth + self._wrap(c) for c in kids)

    def _axis(self, kids):
        axes = {c.axis for c in kids}
        return axes.pop() if len(axes) == 1 and axes <= set(AXES) else None

    def _combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def membership(self, q_total: int, kv_len: int) -> np.ndarray:
        """The operands' membership arrays combined (operands on one axis only)."""
        out = self.parts[0].membership(q_total, kv_len)
        for p in self.parts[1:]:
            out = self._combine(out, p.membership(q_total, kv_len))
        return out

    def _eval(self, i, j, s: Sizes):
        out = self.parts[0]._eval(i, j, s)
        for p in self.parts[1:]:
            out = self._combine(out, p._eval(i, j, s))
        return out

    def _lower(self, sink: Any) -> None:
        for p in self.parts:
            p.lower(sink)
        sink.op(self._opname, len(self.parts))


@register_combinator
class Or(_NAry):
    """Union: allowed if any operand allows. Written ``a | b``."""

    __slots__ = ()
    op = "|"
    _opname = "or"
    _prec = 0

    def _combine(self, a, b):
        return a | b


@register_combinator
class And(_NAry):
    """Intersection: allowed if every operand allows. Written ``a & b``."""

    __slots__ = ()
    op = "&"
    _opname = "and"
    _prec = 1

    def _combine(self, a, b):
        return a & b


@register_combinator
class Not(Pattern):
    """Complement: allowed where the operand is not. Written ``~a``; ``~~a`` is ``a``."""

    __slots__ = ("a",)
    _prec = 3

    def __new__(cls, a: Pattern):
        if isinstance(a, Not):
            return a.a
        return super().__new__(cls)

    def __init__(self, a: Pattern):
        self._init(a=as_pattern(a, "~"))

    def _children(self):
        return (self.a,)

    def _rebuild(self, children):
        return Not(children[0])

    def _key_fields(self):
        return (self.a,)

    def _make_text(self):
        return "~" + (self.a.text() if self.a._prec >= 3 else f"({self.a.text()})")

    def _text_depth(self, kids, text):
        return self.a._tdepth + (self.a._prec < 3)

    def _axis(self, kids):
        return self.a.axis if self.a.axis in AXES else None

    def membership(self, q_total: int, kv_len: int) -> np.ndarray:
        """The operand's membership array, negated (operand on one axis only)."""
        return ~self.a.membership(q_total, kv_len)

    def _eval(self, i, j, s):
        return ~self.a._eval(i, j, s)

    def _lower(self, sink):
        self.a.lower(sink)
        sink.op("not", 1)


@register_combinator
class Diff(Pattern):
    """Difference: allowed by ``a`` and not by ``b``. Written ``a - b``; lowers as ``a & ~b``."""

    __slots__ = ("a", "b")
    _prec = 2

    def __init__(self, a: Pattern, b: Pattern):
        self._init(a=as_pattern(a, "-"), b=as_pattern(b, "-"))

    def _children(self):
        return (self.a, self.b)

    def _rebuild(self, children):
        return Diff(*children)

    def _key_fields(self):
        return (self.a, self.b)

    def _make_text(self):
        left = self.a.text() if self.a._prec >= 2 else f"({self.a.text()})"
        right = self.b.text() if self.b._prec > 2 else f"({self.b.text()})"
        return f"{left} - {right}"

    def _text_depth(self, kids, text):
        return max(self.a._tdepth + (self.a._prec < 2), self.b._tdepth + (self.b._prec <= 2))

    def _axis(self, kids):
        return self.a.axis if self.a.axis == self.b.axis and self.a.axis in AXES else None

    def membership(self, q_total: int, kv_len: int) -> np.ndarray:
        """``a``'s membership and not ``b``'s (operands on one axis only)."""
        return self.a.membership(q_total, kv_len) & ~self.b.membership(q_total, kv_len)

    def _eval(self, i, j, s):
        return self.a._eval(i, j, s) & ~self.b._eval(i, j, s)

    def _lower(self, sink):
        self.a.lower(sink)
        self.b.lower(sink)
        sink.op("not", 1)
        sink.op("and", 2)

    def lowered(self) -> Pattern:
        return And(self.a.lowered(), Not(self.b.lowered()))
