"""Large output arrays of a compile, mapped so that their first touch never stalls.

numpy asks the kernel for transparent huge pages on every array of 4 MB or more
(``madvise(MADV_HUGEPAGE)``). Where the kernel's ``defrag`` setting is ``madvise`` (a
common default), a fault in such a region *compacts memory* until a 2 MB page is free.
On a machine whose memory is full of page cache that stalls: writing the 300 MB of a
33.5M-block layout for the first time took 0.3-0.8 s of kernel time in a fresh process,
against about 0.15 s with ordinary pages (measured with ``benchmarks/compile_speed.py``,
whose first-call column reports the call's system time). Arrays of at least
:data:`PLAIN_PAGES_BYTES` are therefore mapped directly (anonymous ``mmap``, no advice):
they get what the system gives without asking for compaction, ordinary pages where huge
pages are only on request, huge pages when free ones exist where they are enabled
everywhere. Smaller arrays stay numpy's.

Example:
    >>> a = empty(10, np.int32)
    >>> a.dtype, a.shape
    (dtype('int32'), (10,))
"""

from __future__ import annotations

import mmap

import numpy as np

#: Arrays at least this large are mapped without numpy's huge-page advice.
PLAIN_PAGES_BYTES = 64 << 20


def empty(n: int, dtype) -> np.ndarray:
    """An uninitialised, writable 1-D array of ``n`` items (``np.empty`` below the threshold).

    Example:
        >>> big = empty(PLAIN_PAGES_BYTES // 4, np.int32)
        >>> big.flags.writeable, big.size == PLAIN_PAGES_BYTES // 4
        (True, True)
    """
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    if nbytes < PLAIN_PAGES_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(n, dtype=dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=dtype, count=n)  # the array holds the mapping; unmapped with it


def full(n: int, value, dtype) -> np.ndarray:
    """:func:`empty` filled with ``value``."""
    out = empty(n, dtype)
    out.fill(value)
    return out
