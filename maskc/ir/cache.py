"""Per-layout caches that modules own themselves.

A :class:`~maskc.ir.layout.Layout` is immutable and keeps only its own derived views.
A backend or exporter that derives something from a layout (device arrays, a BlockMask,
padded block lists) keeps it in a :class:`LayoutCache` of its own: entries are keyed by
the layout object's identity and a key of the module's choosing, and disappear when the
layout is garbage-collected. Nothing outside :mod:`maskc.ir.layout` touches a layout's
private attributes.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.ir.cache import LayoutCache
    >>> cache = LayoutCache("example")
    >>> lay = mc.Layout.from_dense(np.eye(4, dtype=bool), block=2)
    >>> cache.get(lay, "nnz", lambda: lay.nnz)
    4
    >>> len(cache)
    1
    >>> del lay; import gc; _ = gc.collect(); len(cache)
    0
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


class LayoutCache:
    """Values derived from layouts, dropped with the layout (keyed weakly by identity)."""

    def __init__(self, name: str, max_entries_per_layout: int = 16) -> None:
        self.name = name
        self.max_entries_per_layout = max_entries_per_layout
        self._data: dict[int, dict[Hashable, Any]] = {}
        self._lock = threading.RLock()  # re-entrant: a finalizer may drop a layout during get()

    def get(self, layout: Any, key: Hashable, make: Callable[[], T]) -> T:
        """The value cached for ``(layout, key)``, computing it with ``make()`` once."""
        lid = id(layout)
        with self._lock:
            entries = self._data.get(lid)
            if entries is not None and key in entries:
                return entries[key]
        value = make()
        with self._lock:
            entries = self._data.get(lid)
            if entries is None:
                entries = self._data[lid] = {}
                weakref.finalize(layout, self._drop, lid)
            if len(entries) >= self.max_entries_per_layout:
                entries.pop(next(iter(entries)))
            entries[key] = value
        return value

    def _drop(self, lid: int) -> None:
        with self._lock:
            self._data.pop(lid, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._data.values())

    def __repr__(self) -> str:
        return f"LayoutCache({self.name!r}, {len(self)} entries)"
