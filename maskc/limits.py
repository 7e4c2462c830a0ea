"""Size limits and the one set of argument checks every entry point uses.

Every public entry point (parse, pattern constructors, compile, files, importers,
exporters, backends, guarantees, pictures) validates its integer arguments with
:func:`check_int` and, before doing work whose time or memory grows with an argument,
estimates that work and calls :func:`refuse_above`. A refusal is a
:class:`~maskc.errors.TooLargeError` (a ``ValueError``) that says what was too large,
the limit, and how to get past it; nothing has been allocated when it is raised.

Example:
    >>> from maskc.limits import check_int, refuse_above
    >>> check_int(7, "q_len", lo=1)
    7
    >>> refuse_above(3 << 30, 1 << 30, "the dense mask", "use to_scipy()")
    Traceback (most recent call last):
    ...
    maskc.errors.TooLargeError: the dense mask needs 3,221,225,472 bytes (3.00 GiB), above the limit of 1,073,741,824 (1.00 GiB); use to_scipy()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.errors import TooLargeError

#: Longest sequence (tokens) a layout may describe: int32 positions.
MAX_LEN: int = 2**31 - 1
#: Most stored heads of a layout.
MAX_HEADS: int = 65536
#: Most stored batch elements of a layout.
MAX_BATCH: int = 65536
#: Most stored (batch element, head) slices of a layout.
MAX_SLICES: int = 1 << 20
#: Largest block edge.
MAX_BLOCK: int = 4096
#: Largest magnitude of an integer pattern parameter.
MAX_INT: int = 1 << 40
#: Longest pattern text in characters: every pattern's ``text()`` fits (a pattern whose text
#: would be longer is refused when it is built) and ``parse`` refuses longer texts.
MAX_TEXT: int = 100_000


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = MAX_INT) -> int:
    """``value`` as an ``int``, or a clear error.

    TypeError for anything that is not an integer (``bool`` included); ValueError
    below ``lo`` or above ``hi`` (``hi`` bounds the magnitude when ``lo`` is None).

    Example:
        >>> check_int(3, "window", lo=0)
        3
        >>> check_int(True, "window")
        Traceback (most recent call last):
        ...
        TypeError: window must be an integer, got bool True
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200])
    v = int(value)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo:,}, got {v:,}")
    if hi is not None:
        if lo is None and abs(v) > hi:
            raise ValueError(f"{name} must be at most {hi:,} in magnitude, got {v:,}")
        if lo is not None and v > hi:
            raise ValueError(f"{name} must be at most {hi:,}, got {v:,}")
    return v


def _human(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def refuse_above(amount: int, limit: int, what: str, fix: str, unit: str = "bytes") -> None:
    """Raise :class:`TooLargeError` when ``amount > limit``; say what, the limit, and the fix.

    Call it with an *estimate* made from the arguments, before allocating or looping.

    Example:
        >>> refuse_above(10, 100, "x", "y")  # within the limit: nothing happens
    """
    if amount <= limit:
        return
    if unit == "bytes":
        raise TooLargeError(
            f"{what} needs {int(amount):,} bytes ({_human(amount)}), above the limit of {int(limit):,} "
            f"({_human(limit)}); {fix}"
        )
    raise TooLargeError(f"{what} needs {int(amount):,} {unit}, above the limit of {int(limit):,}; {fix}")
