"""The compiler's memory budget: every large allocation is estimated and taken from it first."""

from __future__ import annotations

import contextlib

from maskc.limits import refuse_above

#: Default cap on the compiler's working memory (bytes).
DEFAULT_MAX_BYTES = 6 * 2**30


class Budget:
    """Bytes the compiler may still allocate; :meth:`take` refuses before an allocation.

    Example:
        >>> b = Budget(1000)
        >>> b.take(600, "the candidate arrays")
        >>> b.take(600, "the masks")
        Traceback (most recent call last):
        ...
        maskc.errors.TooLargeError: the masks (with the compiler's other working memory) needs 1,200 bytes (1.17 KiB), ...
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self.used = 0

    def take(self, nbytes: int, what: str, fix: str = "use a larger block, shorter lengths or a sparser pattern, "
             "or raise max_bytes") -> None:
        """Count ``nbytes`` more, or raise TooLargeError (nothing allocated) past ``max_bytes``."""
        total = self.used + int(nbytes)
        refuse_above(total, self.max_bytes, f"{what} (with the compiler's other working memory)", fix)
        self.used = total

    @contextlib.contextmanager
    def transient(self):
        """Memory taken inside the block is given back at its end (freed working memory).

        Example:
            >>> b = Budget(1000)
            >>> with b.transient():
            ...     b.take(900, "scratch")
            >>> b.used
            0
        """
        used = self.used
        try:
            yield self
        finally:
            self.used = used
