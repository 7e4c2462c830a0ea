"""The text form of the DSL, read by a small parser of its own (never ``eval``, no Python AST).

Grammar (Python's precedence: ``-`` binds tighter than ``&``, ``&`` tighter than ``|``)::

    union  := inter ('|' inter)*             inter := diff ('&' diff)*
    diff   := unary ('-' unary)*             unary := ('~' | '-') unary | atom
    atom   := NAME '(' args ')' | '(' union [',' ...] ')' | '[' items ']'
            | INT | 'STRING' | True | False | None
    args   := positional values, then NAME '=' value pairs

Calls are allowed only of registered constructors (the DSL leaves, ``predicate('name')``,
the library patterns) and ``range(a, b[, step])``. Values are patterns, integers
(magnitude at most 2**40), strings (at most 200 characters, no escapes), booleans,
None, lists and ranges. Everything else (attributes, subscripts, lambdas, other
operators, floats, ``*args``) is refused with the line and character column of the
offending token.

Cost: one left-to-right pass; a text of n characters is at most n tokens, each handled
once, so time and memory grow linearly with n (brackets nest at most 64 deep; unions
and intersections of any number of operands do not nest). Constructors then do work
linear in their arguments (explicit lists are sorted) and never in the *values* of
integers: ``range(0, 2**40)`` stays a range. Texts over 100,000 characters (``maskc.limits.MAX_TEXT``) are refused before any
work. Every pattern's ``text()`` obeys these limits, so it always parses back.

Example:
    >>> import maskc as mc
    >>> mc.parse("causal() & (window(3) | offsets('squares'))").text()
    "causal() & (window(3) | offsets('squares'))"
    >>> mc.parse("window(3) + window(2)")
    Traceback (most recent call last):
    ...
    maskc.errors.PatternSyntaxError: operator '+' is not allowed; patterns combine with | & - ~ (column 11)
    ...
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from maskc.errors import PatternSyntaxError
from maskc.limits import MAX_INT, MAX_TEXT
from maskc.patterns import constructors as _constructors  # noqa: F401  (registers the DSL leaves)
from maskc.patterns import library as _library  # noqa: F401  (registers the library patterns)
from maskc.patterns.algebra import And, Diff, Or
from maskc.patterns.base import MAX_DEPTH, Pattern
from maskc.patterns.indexset import MAX_EXPLICIT
from maskc.patterns.registry import constructor_names, lookup_constructor, register_constructor

__all__ = ["parse", "register_constructor", "constructor_names", "MAX_TEXT", "MAX_DEPTH", "MAX_LIST"]

MAX_LIST = MAX_EXPLICIT
MAX_STRING = 200

_TOKEN = re.compile(r"""[ \t\r\n\f\v]*(?:
    (?P<float>\d[\d_]*\.\d*|\.\d+|\d[\d_]*[eE])
  | (?P<int>\d[\d_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<op>\*\*|//|<<|>>|<=|>=|==|!=|~+|[|&\-()\[\],=+*/%^@.:<>{};!])
  | (?P<bad>.))
""", re.VERBOSE)
_REFUSED = {"+", "*", "/", "//", "%", "**", "<<", ">>", "^", "@", "<", ">", "<=", ">=", "==", "!="}
_KEYWORDS = {
    "lambda": "lambda is not allowed; define a @maskc.predicate in Python instead",
    "and": "use & (intersection) instead of Python's and", "or": "use | (union) instead of Python's or",
    "not": "use ~ (complement) instead of Python's not",
}
_CLOSE = {"(": ")", "[": "]"}


class _Tok(NamedTuple):
    kind: str  # int, float, name, str, op, end, bad
    value: str
    start: int


def tokenize(text: str) -> list[_Tok]:
    """Every token of ``text`` (whitespace dropped), then an ``end`` token: one regex pass."""
    make = tuple.__new__
    toks = [make(_Tok, (g, m.group(g), m.start(g))) for m in _TOKEN.finditer(text) for g in (m.lastgroup,)]
    toks.append(make(_Tok, ("end", "", len(text))))
    return toks


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.k = 0
        self.brackets: list[_Tok] = []

    @property
    def tok(self) -> _Tok:
        return self.toks[self.k]

    def advance(self) -> _Tok:
        t = self.toks[self.k]
        if t[0] != "end":
            self.k += 1
        return t

    def at(self, value: str) -> bool:
        t = self.toks[self.k]
        return t[1] == value and t[0] == "op"

    def peek_is(self, value: str) -> bool:
        """Is the token after the current one ``value``?"""
        t = self.toks[min(self.k + 1, len(self.toks) - 1)]
        return t[1] == value and t[0] == "op"

    def fail(self, message: str, tok: _Tok | int) -> PatternSyntaxError:
        pos = tok if isinstance(tok, int) else tok.start
        token = "" if isinstance(tok, int) else tok.value
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return PatternSyntaxError(message, self.text, col, token, line)

    def unexpected(self, what: str) -> PatternSyntaxError:
        t = self.tok
        if t.kind == "end":
            if self.brackets:
                b = self.brackets[-1]
                line = self.text.count("\n", 0, b.start) + 1
                col = b.start - (self.text.rfind("\n", 0, b.start) + 1) + 1
                return self.fail(f"invalid syntax: the text ends too early: {b.value!r} at line {line}, column {col} "
                                 "is never closed", b)
            return self.fail(f"invalid syntax: the text ends too early ({what} is missing)", len(self.text.rstrip()))
        if t.kind == "bad" or t.kind == "str" and "\n" in t.value:
            return self.fail(f"invalid syntax: unexpected character {t.value!r}"
                             + (" (strings take no escapes or newlines)" if t.value in "'\"\\" else ""), t)
        return self.fail(f"invalid syntax: expected {what}, got {t.value!r}", t)

    def open(self) -> None:
        t = self.advance()
        self.brackets.append(t)
        if len(self.brackets) > MAX_DEPTH:
            raise self.fail(f"brackets nest deeper than the limit of {MAX_DEPTH}", t)

    def close(self) -> None:
        want = _CLOSE[self.brackets[-1].value]
        if not self.at(want):
            raise self.unexpected(f"',' or {want!r}")
        self.brackets.pop()
        self.advance()

    # ------------------------------------------------------- expressions
    def union(self) -> tuple[Any, _Tok]:
        return self._chain(self.inter, "|", Or)

    def inter(self) -> tuple[Any, _Tok]:
        return self._chain(self.diff, "&", And)

    def _chain(self, sub, op: str, build) -> tuple[Any, _Tok]:
        first = sub()
        if not self.at(op):
            return first
        parts = [first]
        while self.at(op):
            self.advance()
            parts.append(sub())
        for value, where in parts:
            if not isinstance(value, Pattern):
                raise self.fail(f"operand of {op!r} must be a pattern, got {where.value!r}", where)
        return build(*(v for v, _ in parts)), first[1]

    def diff(self) -> tuple[Any, _Tok]:
        left = self.unary()
        while self.at("-"):
            self.advance()
            right = self.unary()
            for value, where in (left, right):
                if not isinstance(value, Pattern):
                    raise self.fail(f"operand of '-' must be a pattern, got {where.value!r}", where)
            left = (Diff(left[0], right[0]), left[1])
        return left

    def unary(self) -> tuple[Any, _Tok]:
        ops: list[_Tok] = []
        while self.tok[0] == "op" and (self.tok[1] == "-" or self.tok[1][0] == "~"):
            t = self.advance()
            if len(t[1]) % 2:  # a run of tildes: only its parity matters (~~x is x)
                ops.append(tuple.__new__(_Tok, ("op", t[1][0], t[2])))
        value, where = self.atom()
        t = self.tok
        if t.kind == "op" and t.value in _REFUSED:
            raise self.fail(f"operator {t.value!r} is not allowed; patterns combine with | & - ~", t)
        if t.kind == "name" and t.value in _KEYWORDS:
            raise self.fail(_KEYWORDS[t.value], t)
        ops = _cancel_pairs(ops)
        for op in reversed(ops):
            if op.value == "~":
                if not isinstance(value, Pattern):
                    raise self.fail("operand of '~' must be a pattern", op)
                value = ~value
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise self.fail("unary minus applies to integers only", op)
                value = -value
        return value, ops[0] if ops else where

    def atom(self) -> tuple[Any, _Tok]:
        t = self.tok
        if t.kind == "int":
            self.advance()
            digits = t.value.replace("_", "")
            if t.value.endswith("_") or "__" in t.value:
                raise self.fail(f"integer {t.value[:30]} is malformed", t)
            if len(digits) > 20 or int(digits) > MAX_INT:
                raise self.fail(f"integer {t.value[:30]} is larger than the limit {MAX_INT:,}", t)
            return self._postfix(int(digits), t)
        if t.kind == "float":
            raise self.fail("floats are not allowed (integers, strings and booleans only)", t)
        if t.kind == "str":
            self.advance()
            if len(t.value) - 2 > MAX_STRING:
                raise self.fail(f"string literal longer than {MAX_STRING} characters", t)
            return self._postfix(t.value[1:-1], t)
        if t.kind == "name":
            return self.name()
        if self.at("("):
            self.open()
            value, _ = self.union()
            if self.at(","):
                items = [value]
                while self.at(","):
                    self.advance()
                    if self.at(")"):
                        break
                    items.append(self.union()[0])
                value = items
            self.close()
            return self._postfix(value, t)
        if self.at("["):
            return self._postfix(self.items(), t)
        raise self.unexpected("an operand")

    def _postfix(self, value: Any, where: _Tok) -> tuple[Any, _Tok]:
        t = self.tok
        if self.at("."):
            raise self.fail("attribute access is not allowed", t)
        if self.at("["):
            raise self.fail("subscripts are not allowed", t)
        if self.at("("):
            raise self.fail("only constructor names may be called", t)
        return value, where

    def items(self) -> list:
        self.open()
        out: list = []
        toks = self.toks
        while not self.at("]"):
            if len(out) >= MAX_LIST:
                raise self.fail(f"list longer than {MAX_LIST:,} elements", self.tok)
            t = toks[self.k]
            nxt = toks[self.k + 1] if t[0] != "end" else t  # the end token is the last one
            if t[0] == "int" and nxt[0] == "op" and nxt[1] in (",", "]") and len(t[1]) < 13 and "_" not in t[1]:
                out.append(int(t[1]))  # the common case, a plain integer item, without the expression descent
                self.k += 1
            else:
                out.append(self.union()[0])
            if self.tok.kind == "name" and self.tok.value == "for":
                raise self.fail("comprehensions are not allowed", self.tok)
            if not self.at(","):
                break
            self.advance()
        self.close()
        return out

    def name(self) -> tuple[Any, _Tok]:
        t = self.advance()
        if t.value in ("True", "False", "None"):
            return self._postfix({"True": True, "False": False, "None": None}[t.value], t)
        if t.value in _KEYWORDS:
            raise self.fail(_KEYWORDS[t.value], t)
        if self.at("."):
            raise self.fail(f"attribute access after {t.value!r} is not allowed", self.tok)
        fn = lookup_constructor(t.value)
        if not self.at("("):
            if fn is not None or t.value == "range":
                raise self.fail(f"{t.value!r} must be called: write {t.value}(...)", t)
            raise self.fail(f"unknown name {t.value!r}; only pattern constructors may be called", t)
        if fn is None and t.value != "range":
            raise self.fail(f"{t.value!r} is not a pattern constructor; known: {', '.join(constructor_names())}", t)
        args, kwargs = self.arguments(t)
        if t.value == "range":
            if kwargs or not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
                raise self.fail("range takes 1 to 3 integers", t)
            try:
                return self._postfix(range(*args), t)
            except ValueError as e:
                raise self.fail(f"range(...): {e}", t) from None
        try:
            value = fn(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise self.fail(f"{t.value}(...): {e}", t) from None
        return self._postfix(value, t)

    def arguments(self, name: _Tok) -> tuple[list, dict]:
        self.open()
        args: list = []
        kwargs: dict = {}
        while not self.at(")"):
            t = self.tok
            if self.at("*") or self.at("**"):
                raise self.fail("*args is not allowed" if t.value == "*" else "**kwargs is not allowed", t)
            if t.kind == "name" and self.peek_is("="):
                self.advance()
                self.advance()
                if t.value in kwargs:
                    raise self.fail(f"keyword argument {t.value!r} repeated", t)
                kwargs[t.value] = self.union()[0]
            elif kwargs:
                raise self.fail("a positional argument follows a keyword argument", t)
            elif t[0] == "int" and self.toks[self.k + 1][1] in (",", ")") and len(t[1]) < 13 and "_" not in t[1]:
                args.append(int(t[1]))  # a plain integer argument, without the expression descent
                self.k += 1
            else:
                args.append(self.union()[0])
            if not self.at(","):
                break
            self.advance()
        self.close()
        return args, kwargs


def _cancel_pairs(ops: list[_Tok]) -> list[_Tok]:
    """Prefix operators with adjacent equal pairs removed (``~~x`` is ``x``, ``--3`` is ``3``)."""
    out: list[_Tok] = []
    for op in ops:
        if out and out[-1].value == op.value:
            out.pop()
        else:
            out.append(op)
    return out


def parse(text: str) -> Pattern:
    """Parse the text form of a pattern (see the module docstring for the grammar and cost).

    Raises :class:`~maskc.errors.PatternSyntaxError` (a ValueError) naming the
    offending token and its 1-based line and character column.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() needs a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise PatternSyntaxError(f"pattern text is {len(text):,} characters, above the limit of {MAX_TEXT:,}")
    p = _Parser(text)
    first = p.tok
    value, _ = p.union()
    if p.tok.kind != "end":
        if p.at(")") or p.at("]"):
            raise p.fail(f"unmatched {p.tok.value!r}", p.tok)
        raise p.unexpected("an operator (| & -) or the end of the text")
    if not isinstance(value, Pattern):
        raise p.fail(f"text must describe a pattern, got a {type(value).__name__}", first)
    return value
