"""numba kernels that import numba only when first called.

``import numba`` costs 0.15-0.4 s, more than a whole small compile: ``maskc info
"causal() & window(64)"`` compiles its 32 block rows as plain Python
(:mod:`maskc.compiler.interp`) and never needs numba at all. So maskc's kernels are
declared with :func:`njit` from here instead of numba's: the decorator records the
function and numba's options, and the first call imports numba and builds (or loads from
numba's disk cache) the real dispatcher, exactly as ``numba.njit(**options)(fn)``.

Inside other kernels a :class:`Kernel` types as its dispatcher (``_numba_type_``), so
kernels call each other, inline and cache as plain numba dispatchers do. ``prange`` is
``range`` until numba is loaded; a kernel that uses it gets numba's ``prange`` in its
module's namespace before numba compiles it.

Example:
    >>> @njit(cache=False)
    ... def add(a, b):
    ...     return a + b
    >>> add.py_func(2, 3), add(2, 3)
    (5, 5)
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

__all__ = ["Kernel", "njit", "prange", "is_kernel", "numba_loaded"]

#: ``range`` until numba is imported; kernels' modules then hold ``numba.prange``.
prange = range

_lock = threading.RLock()


def numba_loaded() -> bool:
    """True once numba has been imported in this process (by maskc or anyone)."""
    return "numba" in sys.modules


class Kernel:
    """A function compiled by numba on its first call (see the module docstring).

    ``py_func`` is the Python function; calls, attributes (``signatures``,
    ``overloads``, ...) and typing inside other kernels go to the numba dispatcher.
    """

    def __init__(self, fn: Callable, options: dict[str, Any]):
        self.py_func = fn
        self.options = dict(options)
        self._dispatcher = None
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    @property
    def dispatcher(self):
        """The numba dispatcher (imports numba and makes it on first use)."""
        d = self._dispatcher
        if d is None:
            with _lock:
                if self._dispatcher is None:
                    import numba

                    space = self.py_func.__globals__
                    if space.get("prange") is range and "prange" in self.py_func.__code__.co_names:
                        space["prange"] = numba.prange  # numba recognises its own prange only
                    self._dispatcher = numba.njit(**self.options)(self.py_func)
                d = self._dispatcher
        return d

    @property
    def _numba_type_(self):
        """How numba types this object inside another kernel: as its dispatcher."""
        return self.dispatcher._numba_type_

    def __call__(self, *args, **kwargs):
        return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name: str):
        # only the dispatcher's public attributes: tools probing for private names (pytest,
        # inspect, copy) must not import numba to learn that they are absent
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        state = "built" if self._dispatcher is not None else "not built yet"
        return f"<maskc kernel {self.__module__}.{self.__qualname__} ({state})>"


def njit(fn: Callable | None = None, **options: Any):
    """``numba.njit`` with the same options, compiled (and numba imported) on the first call.

    Example:
        >>> @njit(cache=False, inline="always")
        ... def twice(x):
        ...     return 2 * x
        >>> twice(4)
        8
    """
    if fn is not None:
        return Kernel(fn, options)
    return lambda f: Kernel(f, options)


def is_kernel(obj: Any) -> bool:
    """True for a :class:`Kernel` or a numba dispatcher (without importing numba).

    Example:
        >>> is_kernel(len)
        False
    """
    if isinstance(obj, Kernel):
        return True
    if not numba_loaded():
        return False
    from numba.extending import is_jitted

    return is_jitted(obj)
