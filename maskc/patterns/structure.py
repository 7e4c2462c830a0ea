"""Structural nodes: block-level lifts, per-head and per-batch patterns, named library patterns.

Example:
    >>> import maskc as mc
    >>> p = mc.batched([mc.causal(), mc.full()])
    >>> p.n_batch, p.for_batch(1).text(), p.dense(2).shape
    (2, 'full()', (2, 1, 2, 2))
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from maskc.limits import MAX_BATCH, MAX_HEADS, check_int
from maskc.patterns.base import Pattern, Sizes, as_pattern, bracket_depth, register_combinator
from maskc.patterns.indexset import IndexSet
from maskc.patterns.segments import Lengths

#: Largest block of a block-level lift.
MAX_LIFT = 1 << 20


@register_combinator
class BlockLevel(Pattern):
    """``inner`` applied to block indices: (i, j) allowed iff inner(i // b, j // b).

    The inner pattern sees ceil(q_total / b) query and ceil(kv_len / b) key positions.
    """

    __slots__ = ("inner", "block")
    _AXIS = "B"

    def __init__(self, inner: Pattern, block: int):
        self._init(inner=as_pattern(inner, "at_block_level"), block=check_int(block, "block_level block", 1, MAX_LIFT))

    def _children(self):
        return (self.inner,)

    def _rebuild(self, children):
        return BlockLevel(children[0], self.block)

    def _key_fields(self):
        return (self.inner, self.block)

    def _make_text(self):
        return f"block_level({self.inner.text()}, {self.block})"

    def _eval(self, i, j, s):
        b = self.block
        return self.inner._eval(i // b, j // b, Sizes(-(-s.q_total // b), -(-s.kv_len // b), s.batch, s.head))

    def _lower(self, sink):
        sink.leaf_block_level(self)


def _pattern_list(patterns: Iterable[Pattern], what: str, limit: int) -> tuple[Pattern, ...]:
    """The patterns as a tuple, refusing more than ``limit`` before materialising them."""
    if hasattr(patterns, "__len__") and len(patterns) > limit:  # type: ignore[arg-type]
        raise ValueError(f"{what} takes at most {limit:,} patterns, got {len(patterns):,}")  # type: ignore[arg-type]
    try:
        it = iter(patterns)
    except TypeError:
        raise TypeError(f"{what} needs a list of patterns, got {type(patterns).__name__}") from None
    out: list[Pattern] = []
    for p in it:
        if len(out) >= limit:
            raise ValueError(f"{what} takes at most {limit:,} patterns")
        out.append(as_pattern(p, what))
    if not out:
        raise ValueError(f"{what} needs at least one pattern")
    return tuple(out)


class _PerSlice(Pattern):
    """One pattern per head (``heads``) or per batch element (``batched``)."""

    __slots__ = ("patterns",)
    name = ""
    counts = ""
    limit = 0

    def __init__(self, patterns: Iterable[Pattern]):
        pats = _pattern_list(patterns, f"{self.name}([...])", self.limit)
        for p in pats:
            if getattr(p, self.counts) is not None:
                raise ValueError(f"{self.name}([...]) cannot be nested")
        self._init(patterns=pats)

    def _count(self, what, kids):
        return len(self.patterns) if what == self.counts else super()._count(what, kids)

    def _children(self):
        return self.patterns

    def _rebuild(self, children):
        return type(self)(children)

    def _key_fields(self):
        return self.patterns

    def _make_text(self):
        return f"{self.name}([" + ", ".join(p.text() for p in self.patterns) + "])"

    def _text_depth(self, kids, text):
        return 2 + max(c._tdepth for c in kids)

    def _pick(self, k: int) -> Pattern:
        k = check_int(k, "head" if self.counts == "n_heads" else "batch element", 0)
        if k >= len(self.patterns):
            raise ValueError(f"{k} is out of range for {self.name}([...]) with {len(self.patterns)} patterns")
        return self.patterns[k]

    def _eval(self, i, j, s):
        raise ValueError(f"evaluate a {self.name}([...]) pattern per slice: pattern.evaluate(..., head=h, batch=b)")

    def _lower(self, sink):
        raise ValueError(f"lower a head-free, batch-free pattern: pattern.for_batch(b).for_head(h), "
                         f"not a {self.name}([...]) node")


class Heads(_PerSlice):
    """A different pattern per head: ``heads([p0, p1, ...])``."""

    __slots__ = ()
    name = "heads"
    counts = "n_heads"
    limit = MAX_HEADS

    def for_head(self, h: int) -> Pattern:
        return self._pick(h)


class Batched(_PerSlice):
    """A different pattern per batch element: ``batched([p0, p1, ...])``."""

    __slots__ = ()
    name = "batched"
    counts = "n_batch"
    limit = MAX_BATCH

    def for_batch(self, b: int) -> Pattern:
        return self._pick(b)


def literal(v: Any, in_list: bool = False) -> str:
    """The text of a library keyword value (int, bool, None, str, IndexSet, Lengths, tuple).

    Inside a list an index set is always written as a list, so ``[[3], [0, 1]]`` (two
    sets) cannot be read as one set.
    """
    if isinstance(v, IndexSet):
        return v.text(as_list=in_list)
    if isinstance(v, Lengths):
        return v.text()
    if isinstance(v, tuple):
        return "[" + ", ".join(literal(x, True) for x in v) + "]"
    return repr(v)


class Named(Pattern):
    """A library pattern: keeps its constructor call as text, compiles as its body.

    Library constructors return Named nodes so that ``prime_bird(window=3)`` prints and
    parses as itself. Keyword values are canonical (ints, bools, None, strings, index
    sets, segment lengths and tuples of them).
    """

    __slots__ = ("name", "kwargs", "body")

    def __init__(self, name: str, kwargs: Mapping[str, Any], body: Pattern):
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise ValueError(f"a named pattern needs an ASCII identifier as name, got {name!r}")
        self._init(name=name, kwargs=tuple(sorted(kwargs.items())), body=as_pattern(body, name))

    def _children(self):
        return (self.body,)

    def _key_fields(self):
        return (self.name, self.kwargs, self.body)

    def _make_text(self):
        return f"{self.name}(" + ", ".join(f"{k}={literal(v)}" for k, v in self.kwargs) + ")"

    def _text_depth(self, kids, text):
        return bracket_depth(text)

    def _axis(self, kids):
        return self.body.axis

    def for_head(self, h):
        return self.body.for_head(h) if self._n_heads is not None else self

    def for_batch(self, b):
        return self.body.for_batch(b) if self._n_batch is not None else self

    def lowered(self):
        return self.body.lowered()

    def membership(self, q_total: int, kv_len: int):
        """The body's membership array (a body on one axis only)."""
        return self.body.membership(q_total, kv_len)

    def _eval(self, i, j, s):
        return self.body._eval(i, j, s)

    def _lower(self, sink):
        self.body.lower(sink)
