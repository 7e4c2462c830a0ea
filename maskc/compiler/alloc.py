"""Large output arrays of a compile, mapped with ordinary pages.

numpy asks the kernel for transparent huge pages on every array of 4 MB or more
(``madvise(MADV_HUGEPAGE)``). A huge page is a whole free 2 MB block of physical memory,
and on a virtual machine that reports free memory to its host (virtio-balloon *free page
reporting*, which hands back free blocks of exactly that size) such a block is usually one
the host has taken back: the first write into it waits for the host to back it again. On
this project's VM (reporting order 9, i.e. 2 MB), writing the 300 MB of a 33.5M-block
layout for the first time cost 0.3-0.8 s of kernel time in a fresh process with huge
pages and 0.1-0.26 s with ordinary pages, which mostly come from memory the guest still
holds; no memory compaction took place (``compact_stall`` in ``/proc/vmstat`` did not
move). Arrays of at least :data:`PLAIN_PAGES_BYTES` are therefore mapped directly
(anonymous ``mmap``, no advice): ordinary pages where huge pages are only on request,
the system's choice where they are enabled everywhere. Smaller arrays stay numpy's, whose
huge pages make repeated compiles cheaper. ``benchmarks/compile_speed.py`` reports each
first call's system time.

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
