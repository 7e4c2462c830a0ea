"""Exception types raised by maskc.

Every error maskc raises for bad input is a ``ValueError`` subclass, so callers that
only care about "the input was wrong" can catch ``ValueError``.
"""

from __future__ import annotations


class MaskcError(ValueError):
    """Base class of maskc's input errors."""


class PatternSyntaxError(MaskcError):
    """The text form of a pattern could not be parsed.

    Attributes ``column`` (1-based) and ``token`` name the offending place.
    """

    def __init__(self, message: str, text: str = "", column: int = 0, token: str = ""):
        self.text = text
        self.column = column
        self.token = token
        where = ""
        if text and column:
            snippet = text if len(text) <= 120 else text[: 117] + "..."
            caret = " " * (min(column, 121) - 1) + "^"
            where = f"\n  {snippet}\n  {caret}"
        super().__init__(f"{message} (column {column}){where}" if column else message)


class LayoutFormatError(MaskcError):
    """A layout (in memory or loaded from a file) is malformed; the message names the field."""


class TooLargeError(MaskcError):
    """A request would need more memory than the caller allowed; nothing was allocated."""
