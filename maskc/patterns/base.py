"""The pattern base class: frozen values, the algebra operators and the evaluation protocol.

A :class:`Pattern` is an immutable expression tree node. Subclasses declare their fields
in ``__slots__``, set them once in ``__init__`` through :meth:`Pattern._init`, and
implement four small methods:

- ``_children()``: the direct sub-patterns; ``_rebuild(children)``: the same node over
  other children (used by ``for_head``, ``for_batch`` and ``lowered``);
- ``_key_fields()``: the node's content (hashable), and ``_make_text()``: its text;
- ``_eval(i, j, sizes)``: the element-by-element rule (see the package docstring);
- ``_lower(sink)``: how the compiler reads it (nodes on one axis need none).

Example:
    >>> import maskc as mc
    >>> w = mc.window(3)
    >>> w.left = 99
    Traceback (most recent call last):
    ...
    AttributeError: Window patterns are immutable values (hashable, used as cache keys); build a new pattern instead of setting 'left'
    >>> mc.window(3) == mc.window(3), hash(mc.window(3)) == hash(w)
    (True, True)
    >>> bool(mc.causal())
    Traceback (most recent call last):
    ...
    TypeError: a pattern has no truth value: combine patterns with & (and), | (or) and ~ (not), not with Python's and / or / not
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

from maskc.limits import MAX_LEN, MAX_TEXT, check_int, refuse_above

#: Axis classes whose leaves are one membership array over one variable (see the package docstring).
AXES = ("D", "S", "R", "C")
#: Deepest bracket nesting of a pattern's text (the parser refuses deeper texts).
MAX_DEPTH = 64


class Sizes(NamedTuple):
    """What a node is evaluated at: ``q_total`` query positions, ``kv_len`` keys, slice (batch, head)."""

    q_total: int
    kv_len: int
    batch: int = 0
    head: int = 0


class Pattern:
    """Base class of every pattern node: an immutable value, hashable and equal by content.

    Combine with ``|`` (union), ``&`` (intersection), ``-`` (difference) and ``~``
    (complement). ``bool(pattern)`` raises: Python's ``and`` / ``or`` / ``not`` would
    silently pick one operand.
    """

    __slots__ = ("_key", "_hash", "_text", "_tdepth", "_n_heads", "_n_batch", "_flex", "axis", "__weakref__")
    #: precedence in text(): 4 atom, 3 unary ~, 2 binary -, 1 &, 0 |
    _prec: ClassVar[int] = 4
    #: the axis class of a leaf type (None: decided per node, see ``_axis``)
    _AXIS: ClassVar[str | None] = None

    # ------------------------------------------------------------ construction
    def _init(self, **fields: Any) -> None:
        """Set the node's fields once, then derive its key, text and head / batch counts."""
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        setattr_ = object.__setattr__
        kids = self._children()
        key = self._key_fields()
        setattr_(self, "_key", key)
        setattr_(self, "_hash", hash((type(self).__name__, key)))
        setattr_(self, "_n_heads", self._count("n_heads", kids) if kids else None)
        setattr_(self, "_n_batch", self._count("n_batch", kids) if kids else None)
        setattr_(self, "_flex", any(c._flex for c in kids) or self._reads_slice())
        setattr_(self, "axis", self._axis(kids))
        text = self._make_text()
        if len(text) > MAX_TEXT:
            refuse_above(len(text), MAX_TEXT, f"the text of this {type(self).__name__} pattern",
                         "use ranges or named sequences instead of long explicit lists", unit="characters")
        depth = self._text_depth(kids, text)
        if depth > MAX_DEPTH:
            raise ValueError(f"this pattern's text would nest brackets {depth} deep, above the limit of {MAX_DEPTH}; "
                             "flatten the expression (unions and intersections of many operands do not nest)")
        setattr_(self, "_text", text)
        setattr_(self, "_tdepth", depth)

    def _count(self, what: str, kids: tuple["Pattern", ...]) -> int | None:
        counts = {getattr(c, what) for c in kids} - {None}
        if len(counts) > 1:
            label = "heads([...])" if what == "n_heads" else "batched([...])"
            raise ValueError(f"{label} nodes with different counts {sorted(counts)} cannot be combined")
        return counts.pop() if counts else None

    def _axis(self, kids: tuple["Pattern", ...]) -> str | None:
        return self._AXIS

    def _reads_slice(self) -> bool:
        return False

    def _text_depth(self, kids: tuple["Pattern", ...], text: str) -> int:
        if not kids:
            return bracket_depth(text)
        return max(c._tdepth for c in kids) + 1

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} patterns are immutable values (hashable, used as cache keys); "
            f"build a new pattern instead of setting {name!r}"
        )

    def __getattr__(self, name: str) -> Any:
        if name in Pattern.__slots__:
            raise AttributeError(
                f"{type(self).__name__} was not initialised: a Pattern subclass declares __slots__ for its fields "
                "and its __init__ calls self._init(field=value, ...), then implements _key_fields, _make_text, "
                "_eval(i, j, sizes) and _lower(sink) (see maskc.patterns.base)")
        raise AttributeError(f"{type(self).__name__} pattern has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} patterns are immutable values; cannot delete {name!r}")

    def __reduce__(self):
        fields = {}
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name != "__weakref__" and hasattr(self, name):
                    fields[name] = getattr(self, name)
        return (_restore, (type(self), fields))

    def __copy__(self) -> "Pattern":
        return self

    def __deepcopy__(self, memo: dict) -> "Pattern":
        return self

    # ------------------------------------------------------------ node methods
    def _children(self) -> tuple["Pattern", ...]:
        return ()

    def _rebuild(self, children: tuple["Pattern", ...]) -> "Pattern":
        return self

    def _key_fields(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _make_text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _eval(self, i: np.ndarray, j: np.ndarray, s: Sizes) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _lower(self, sink: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------- combinators
    def __or__(self, other: "Pattern") -> "Pattern":
        return _combinator("Or")(self, as_pattern(other, "|"))

    def __and__(self, other: "Pattern") -> "Pattern":
        return _combinator("And")(self, as_pattern(other, "&"))

    def __sub__(self, other: "Pattern") -> "Pattern":
        return _combinator("Diff")(self, as_pattern(other, "-"))

    def __invert__(self) -> "Pattern":
        return _combinator("Not")(self)

    def __bool__(self) -> bool:
        raise TypeError("a pattern has no truth value: combine patterns with & (and), | (or) and ~ (not), "
                        "not with Python's and / or / not")

    def at_block_level(self, block: int) -> "Pattern":
        """Apply this rule to block indices: (i, j) allowed iff (i // block, j // block) is.

        Example:
            >>> import maskc as mc
            >>> mc.causal().at_block_level(2).dense(4)[0].astype(int).tolist()
            [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
        """
        return _combinator("BlockLevel")(self, block)

    # ---------------------------------------------------------------- identity
    def text(self) -> str:
        """The canonical text form; ``mc.parse(p.text()) == p``."""
        return self._text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pattern):
            return NotImplemented
        return self is other or (type(self) is type(other) and self._hash == other._hash and self._key == other._key)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        t = self._text
        return f"<Pattern {t if len(t) <= 200 else t[:197] + '...'}>"

    def __str__(self) -> str:
        return self._text

    def children(self) -> tuple["Pattern", ...]:
        """Direct sub-patterns (empty for leaves)."""
        return self._children()

    # ------------------------------------------------------- heads and batches
    @property
    def n_heads(self) -> int | None:
        """Number of heads if the pattern contains a ``heads([...])`` node, else None."""
        return self._n_heads

    @property
    def n_batch(self) -> int | None:
        """Number of batch elements if the pattern contains a ``batched([...])`` node, else None."""
        return self._n_batch

    @property
    def uses_batch_head(self) -> bool:
        """True if a FlexAttention-style predicate ``f(b, h, q_idx, kv_idx)`` is inside."""
        return self._flex

    def for_head(self, h: int) -> "Pattern":
        """The head-free pattern that head ``h`` uses."""
        if self._n_heads is None:
            return self
        return self._rebuild(tuple(c.for_head(h) for c in self._children()))

    def for_batch(self, b: int) -> "Pattern":
        """The batch-free pattern that batch element ``b`` uses."""
        if self._n_batch is None:
            return self
        return self._rebuild(tuple(c.for_batch(b) for c in self._children()))

    def lowered(self) -> "Pattern":
        """An equivalent pattern made of primitive nodes only (named patterns expand)."""
        kids = self._children()
        return self._rebuild(tuple(c.lowered() for c in kids)) if kids else self

    # -------------------------------------------------------------- evaluation
    def evaluate(self, i, j, q_len: int, kv_len: int | None = None, head: int = 0, batch: int = 0) -> np.ndarray:
        """The rule at broadcastable integer arrays of absolute query and key positions.

        ``q_len`` is the number of query positions the pattern sees (``q_offset + q_len``
        of a compile: ``q_total``); this is the direct element-by-element definition,
        O(broadcast size).

        Example:
            >>> import maskc as mc
            >>> mc.causal().evaluate([0, 1, 2], [1, 1, 1], 3).tolist()
            [False, True, True]
        """
        kv_len = q_len if kv_len is None else kv_len
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        p = self.for_batch(batch).for_head(head)
        s = Sizes(int(q_len), int(kv_len), batch if self._n_batch else 0, head if self._n_heads else 0)
        return np.broadcast_to(p._eval(i, j, s), np.broadcast_shapes(i.shape, j.shape))

    def dense(self, q_len: int, kv_len: int | None = None, heads: int | None = None, q_offset: int = 0, *,
              max_elements: int = 1 << 28) -> np.ndarray:
        """The mask as bool ``[heads, q_len, kv_len]`` (``[batch, heads, ...]`` when batched, batch > 1).

        Rows are query positions ``q_offset .. q_offset + q_len - 1`` of the pattern seen at
        ``q_total = q_offset + q_len`` queries and ``kv_len`` keys (default ``q_total``),
        exactly what ``mc.compile(..., q_offset=q_offset)`` stores.

        Example:
            >>> import maskc as mc
            >>> mc.window(1).dense(3)[0].astype(int).tolist()
            [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
            >>> mc.causal().dense(1, kv_len=4, q_offset=3)[0].astype(int).tolist()
            [[1, 1, 1, 1]]
        """
        q_len = check_int(q_len, "q_len", 1, MAX_LEN)
        q_offset = check_int(q_offset, "q_offset", 0, MAX_LEN - q_len)
        q_total = q_offset + q_len
        kv_len = q_total if kv_len is None else check_int(kv_len, "kv_len", 1, MAX_LEN)
        n_heads, n_batch = self._n_heads, self._n_batch
        H = n_heads or 1
        if heads is not None:
            H = check_int(heads, "heads", 1, 65536)
            if n_heads is not None and H != n_heads:
                raise ValueError(f"heads={H} does not match the pattern's heads([...]) of {n_heads} patterns")
            if n_heads is None and H > 1 and self._flex:
                raise ValueError("this pattern holds a (b, h, q_idx, kv_idx) predicate but no heads([...]) node, so "
                                 "it is one mask for every head (h = 0); say the heads with mc.heads([...])")
        B = n_batch or 1
        refuse_above(B * H * q_len * kv_len, max_elements, f"the dense mask of {B} x {H} x {q_len} x {kv_len}",
                     "compile the pattern instead (mc.compile) or raise max_elements", unit="elements")
        i = np.arange(q_offset, q_total, dtype=np.int64)[:, None]
        j = np.arange(kv_len, dtype=np.int64)[None, :]
        out = np.empty((B, H, q_len, kv_len), dtype=bool)
        for b in range(B):
            pb = self.for_batch(b)
            for h in range(H if n_heads else 1):
                s = Sizes(q_total, kv_len, b if n_batch else 0, h if n_heads else 0)
                out[b, h] = pb.for_head(h)._eval(i, j, s)
            if not n_heads:
                out[b, 1:] = out[b, 0]
        return out if n_batch is not None and n_batch > 1 else out[0]

    # --------------------------------------------------------------- compiler
    def lower(self, sink: Any) -> None:
        """Describe this head-free, batch-free pattern to the compiler (double dispatch).

        A node on one axis (``D``, ``S``, ``R``, ``C``) calls ``sink.leaf_axis(self)``;
        segment nodes ``sink.leaf_segments(self)``, predicates ``sink.leaf_predicate(self)``,
        block-level nodes ``sink.leaf_block_level(self)``, explicit pair sets
        ``sink.leaf_cells(self)``; unions and intersections lower their operands and then
        call ``sink.op("or" | "and", n)``, a complement ``sink.op("not", 1)``.
        """
        if self.axis in AXES:
            sink.leaf_axis(self)
        else:
            self._lower(sink)


def bracket_depth(text: str) -> int:
    """Deepest nesting of ( and [ in ``text`` outside quotes."""
    depth = deepest = 0
    quote = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]":
            depth -= 1
    return deepest


def _restore(cls: type, fields: dict) -> Pattern:
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


_COMBINATORS: dict[str, type] = {}


def register_combinator(cls: type) -> type:
    """Class decorator: make ``cls`` what the operators of :class:`Pattern` build."""
    _COMBINATORS[cls.__name__] = cls
    return cls


def _combinator(name: str) -> type:
    return _COMBINATORS[name]


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool`` (numpy bools too), or a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}"[:200])
    return bool(value)


def as_pattern(obj: Any, op: str) -> Pattern:
    """``obj`` if it is a pattern, else a TypeError naming the operation."""
    if not isinstance(obj, Pattern):
        raise TypeError(f"cannot combine a Pattern with {type(obj).__name__} using {op!r}; both sides must be patterns")
    return obj


def axis_index(axis: str, i: np.ndarray, j: np.ndarray, s: Sizes) -> np.ndarray:
    """Where (i, j) falls in a membership array of ``axis`` (see the package docstring)."""
    if axis == "D":
        return i - j + (s.kv_len - 1)
    if axis == "S":
        return i + j
    if axis == "R":
        return i + 0 * j
    return j + 0 * i


def lookup(member: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``member[x]`` where ``0 <= x < len(member)``, False elsewhere."""
    n = member.shape[0]
    if n == 0:
        return np.zeros(np.shape(x), dtype=bool)
    return member[np.clip(x, 0, n - 1)] & (x >= 0) & (x < n)
