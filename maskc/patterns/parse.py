"""The string form of the DSL, parsed safely (AST whitelist; never ``eval``).

Accepted: calls of whitelisted constructors by bare name (``causal()``,
``window(3)``, ``offsets('primes')``, ``prime_bird(window=3)``, ...), the operators
``|``, ``&``, ``-``, ``~``, parentheses, integer / string / bool literals, lists and
tuples of them, and ``range(a, b[, step])``. Refused: attribute access, subscripts,
lambdas, comprehensions, names that are not constructors, ``**`` and every other
operator, integers beyond 2**40, text over 100,000 characters, nesting deeper than 64.

Example:
    >>> import maskc as mc
    >>> mc.parse("causal() & (window(3) | offsets('squares'))").text()
    "causal() & (window(3) | offsets('squares'))"
    >>> mc.parse("__import__('os')")
    Traceback (most recent call last):
    ...
    maskc.errors.PatternSyntaxError: '__import__' is not a pattern constructor; known: ... (column 1)
    ...
"""

from __future__ import annotations

import ast
from typing import Any, Callable

from maskc.errors import PatternSyntaxError
from maskc.patterns import core
from maskc.patterns.core import MAX_INT, Pattern

MAX_TEXT = 100_000
MAX_DEPTH = 64
MAX_LIST = core.MAX_EXPLICIT

_CONSTRUCTORS: dict[str, Callable[..., Pattern]] = {
    "full": core.full,
    "causal": core.causal,
    "window": core.window,
    "ring_local": core.ring_local,
    "stride": core.stride,
    "offsets": core.offsets,
    "sums": core.sums,
    "global_tokens": core.global_tokens,
    "rows": core.rows,
    "cols": core.cols,
    "segments": core.segments,
    "heads": core.heads,
    "block_level": core.block_level,
    "predicate": lambda name: core.registered_predicate(name),
}


def register_constructor(name: str, fn: Callable[..., Pattern]) -> None:
    """Make ``name(...)`` available in the text form (used by the pattern library)."""
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"constructor name must be a public identifier, got {name!r}")
    _CONSTRUCTORS[name] = fn


def constructor_names() -> list[str]:
    """Names the text form accepts as calls."""
    return sorted(_CONSTRUCTORS)


class _Parser:
    def __init__(self, text: str):
        self.text = text

    def fail(self, node: ast.AST | None, msg: str, token: str = "") -> PatternSyntaxError:
        col = getattr(node, "col_offset", -1) + 1 if node is not None else 0
        return PatternSyntaxError(msg, self.text, col, token)

    def token(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.text, node) or type(node).__name__
        return seg if len(seg) <= 40 else seg[:37] + "..."

    def expr(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"expression nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.BinOp):
            ops = {ast.BitOr: "|", ast.BitAnd: "&", ast.Sub: "-"}
            if type(node.op) not in ops:
                sym = {ast.Pow: "**", ast.Add: "+", ast.Mult: "*", ast.Div: "/", ast.Mod: "%",
                       ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^",
                       ast.MatMult: "@"}.get(type(node.op), type(node.op).__name__)
                raise self.fail(node, f"operator {sym!r} is not allowed; patterns combine with | & - ~", sym)
            a, b = self.expr(node.left, depth + 1), self.expr(node.right, depth + 1)
            for side, v in ((node.left, a), (node.right, b)):
                if not isinstance(v, Pattern):
                    raise self.fail(side, f"operand of {ops[type(node.op)]!r} must be a pattern, got {self.token(side)!r}")
            return {"|": a.__or__, "&": a.__and__, "-": a.__sub__}[ops[type(node.op)]](b)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                v = self.expr(node.operand, depth + 1)
                if not isinstance(v, Pattern):
                    raise self.fail(node, "operand of '~' must be a pattern")
                return ~v
            if isinstance(node.op, ast.USub):
                v = self.expr(node.operand, depth + 1)
                if isinstance(v, bool) or not isinstance(v, int):
                    raise self.fail(node, "unary minus applies to integers only")
                return -v
            raise self.fail(node, f"unary operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or v is None:
                return v
            if isinstance(v, int):
                if abs(v) > MAX_INT:
                    raise self.fail(node, f"integer {self.token(node)} is larger than the limit {MAX_INT:,}")
                return v
            if isinstance(v, str):
                if len(v) > 200:
                    raise self.fail(node, "string literal longer than 200 characters")
                return v
            raise self.fail(node, f"literal {self.token(node)!r} of type {type(v).__name__} is not allowed "
                                  "(integers, strings and booleans only)")
        if isinstance(node, (ast.List, ast.Tuple)):
            if len(node.elts) > MAX_LIST:
                raise self.fail(node, f"list longer than {MAX_LIST:,} elements")
            return [self.expr(e, depth + 1) for e in node.elts]
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id in _CONSTRUCTORS:
                raise self.fail(node, f"{node.id!r} must be called: write {node.id}(...)", node.id)
            raise self.fail(node, f"unknown name {node.id!r}; only pattern constructors may be called", node.id)
        if isinstance(node, ast.Attribute):
            raise self.fail(node, f"attribute access {self.token(node)!r} is not allowed", node.attr)
        if isinstance(node, ast.Lambda):
            raise self.fail(node, "lambda is not allowed; define a @maskc.predicate in Python instead", "lambda")
        raise self.fail(node, f"{type(node).__name__} {self.token(node)!r} is not allowed in a pattern", self.token(node))

    def call(self, node: ast.Call, depth: int) -> Any:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, f"only calls of constructor names are allowed, got {self.token(node.func)!r}",
                            self.token(node.func))
        name = node.func.id
        if name == "range":
            if node.keywords or not 1 <= len(node.args) <= 3:
                raise self.fail(node, "range takes 1 to 3 positional integers")
            args = [self.expr(a, depth + 1) for a in node.args]
            if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
                raise self.fail(node, "range arguments must be integers")
            try:
                return range(*args)
            except ValueError as e:
                raise self.fail(node, f"range(...): {e}", "range") from None
        if name not in _CONSTRUCTORS:
            raise self.fail(node.func, f"{name!r} is not a pattern constructor; known: {', '.join(constructor_names())}", name)
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, "*args is not allowed")
            args.append(self.expr(a, depth + 1))
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(kw.value, "**kwargs is not allowed")
            kwargs[kw.arg] = self.expr(kw.value, depth + 1)
        try:
            return _CONSTRUCTORS[name](*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise self.fail(node, f"{name}(...): {e}", name) from None


def parse(text: str) -> Pattern:
    """Parse the text form of a pattern (see module docstring for the grammar).

    Raises :class:`~maskc.errors.PatternSyntaxError` (a ValueError) naming the
    offending token and its 1-based column.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() needs a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise PatternSyntaxError(f"pattern text is {len(text):,} characters, above the limit of {MAX_TEXT:,}")
    depth = cur = 0
    for ch in text:  # reject deep nesting before Python's parser recurses on it
        if ch in "([{":
            cur += 1
            depth = max(depth, cur)
        elif ch in ")]}":
            cur -= 1
    if depth > MAX_DEPTH:
        raise PatternSyntaxError(f"pattern text nests brackets {depth} deep, above the limit of {MAX_DEPTH}")
    src = text.strip()
    offset = len(text) - len(text.lstrip())
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        col = (e.offset or 0) + offset
        if (e.lineno or 1) > 1 or not e.offset or col > len(text):  # the parser ran off the end
            col = len(text.rstrip()) + 1
            msg = "the text ends too early (an operand or a closing bracket is missing)"
        else:
            msg = "invalid syntax" if e.msg == "invalid syntax" else f"invalid syntax: {e.msg}"
        raise PatternSyntaxError(msg, text, col, "") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise PatternSyntaxError(f"pattern text could not be parsed: {type(e).__name__}") from None
    p = _Parser(src)
    try:
        value = p.expr(tree.body)
    except PatternSyntaxError as e:
        if offset:
            raise PatternSyntaxError(str(e).split(" (column")[0], text, e.column + offset, e.token) from None
        raise
    if not isinstance(value, Pattern):
        raise PatternSyntaxError(f"text must describe a pattern, got a {type(value).__name__}", text, 1)
    return value
