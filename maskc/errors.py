"""Exception types raised by maskc.

Every error maskc raises for bad input is a ``ValueError`` subclass, so callers that
only care about "the input was wrong" can catch ``ValueError``.

Example:
    >>> import maskc as mc
    >>> try:
    ...     mc.parse("causal() +\\n window(2)")
    ... except mc.PatternSyntaxError as e:
    ...     print(e.line, e.column, e.token)
    1 10 +
"""

from __future__ import annotations


class MaskcError(ValueError):
    """Base class of maskc's input errors."""


class PatternSyntaxError(MaskcError):
    """The text form of a pattern could not be parsed.

    Attributes: ``text`` (the whole text), ``line`` and ``column`` (1-based, counted in
    characters, not bytes) and ``token`` (the offending token) name the place; ``column``
    is 0 when the error concerns the whole text (e.g. its length).
    """

    def __init__(self, message: str, text: str = "", column: int = 0, token: str = "", line: int = 1):
        self.text = text
        self.line = line
        self.column = column
        self.token = token
        self.reason = message
        if not column:
            super().__init__(message)
            return
        lines = text.split("\n") if text else [""]
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        lo = max(0, column - 60)  # show at most 120 characters around the column
        snippet = ("..." if lo else "") + src[lo: lo + 120] + ("..." if len(src) > lo + 120 else "")
        caret = " " * (column - 1 - lo + (3 if lo else 0)) + "^"
        where = f"line {line}, column {column}" if len(lines) > 1 else f"column {column}"
        super().__init__(f"{message} ({where})\n  {snippet}\n  {caret}")


class LayoutFormatError(MaskcError):
    """A layout (in memory or loaded from a file) is malformed; the message names the field."""


class TooLargeError(MaskcError):
    """A request would need more memory than the caller allowed; nothing was allocated."""
