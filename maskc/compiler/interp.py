"""Run the compiler's numba kernels as plain Python for the first small compiles of a process.

numba's first call of cached kernels in a process costs about half a second (its
target registries load, scipy.linalg among them, then each kernel's machine code),
far more than a small compile needs: ``maskc info "causal() & window(64)"`` compiles
32 block rows. :func:`interpreted` returns a copy of a compiler function whose calls
to jitted kernels run their Python source (``py_func``, the same code numba compiles),
recursively, so the whole compile runs without dispatching numba. The copies share the
source, so they compute the same layout (``tests/compiler/test_interp.py`` compares them
with the jitted path); only speed differs: interpreted kernels are ~100x slower.

:func:`choose_interpreted` therefore takes that path only while it pays: on grids of at
most :data:`MAX_TILES` tiles, and until the interpreted compiles of the process have
spent :data:`BUDGET_S` seconds (a loop of compiles then switches to numba, whose one-time
cost is repaid). :func:`use_jit` turns it off (``maskc warmup`` builds the real kernels).
The kernels are :class:`maskc.jit.Kernel` objects (numba is imported on their first
call), so an interpreted compile runs without importing numba at all; only their
``py_func`` is used, and no numba behaviour is changed.

Example:
    >>> import numpy as np
    >>> from maskc.compiler import bits
    >>> h = interpreted(bits.mask_hashes)
    >>> words = np.arange(6, dtype=np.uint64).reshape(3, 2)
    >>> with np.errstate(over="ignore"):  # numba's uint64 arithmetic wraps silently
    ...     same = bool((h(words) == bits.mask_hashes(words)).all())
    >>> same, h is not bits.mask_hashes
    (True, True)
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any, Callable

from maskc.jit import is_kernel

#: Grids with more tiles (query blocks x key blocks) always run the jitted kernels.
MAX_TILES = 4096
#: Interpreted compiles stop once a process has spent this many seconds in them.
BUDGET_S = 0.25
#: An interpreted compile evaluates up to this many representative blocks with numpy
#: (:mod:`maskc.compiler.npbits`, tens of microseconds a block); beyond, the jitted kernel.
MAX_BIT_BLOCKS = 1024

_PACKAGES = ("maskc.compiler", "maskc.ir")
_lock = threading.Lock()
_state: dict[str, Any] = {"jit": False, "spent": 0.0}
_modules: dict[str, types.ModuleType] = {}
_functions: dict[int, Callable] = {}


def use_jit() -> None:
    """From now on every compile of this process runs the jitted kernels."""
    _state["jit"] = True


def choose_interpreted(n_tiles: int) -> bool:
    """True when a compile of ``n_tiles`` tiles should run interpreted (see the module docstring).

    Example:
        >>> choose_interpreted(MAX_TILES + 1)
        False
    """
    return not _state["jit"] and n_tiles <= MAX_TILES and _state["spent"] < BUDGET_S


def record(seconds: float, interpreted_run: bool) -> None:
    """Account a finished compile: interpreted seconds count against :data:`BUDGET_S`; a jitted
    compile has paid numba's one-time cost, so later ones stay jitted."""
    if interpreted_run:
        _state["spent"] += seconds
    else:
        _state["jit"] = True


def jitted(fn: Callable) -> Callable:
    """The numba dispatcher behind an interpreted copy (``fn`` itself otherwise).

    Example:
        >>> from maskc.compiler import bits
        >>> jitted(interpreted(bits.mask_hashes)) is bits.mask_hashes
        True
    """
    return getattr(fn, "__maskc_jitted__", fn)


def is_copy(fn: Callable) -> bool:
    """True for an interpreted copy made by :func:`interpreted`."""
    return hasattr(fn, "__maskc_jitted__")


def _ours(module: str | None) -> bool:
    return bool(module) and module != __name__ and any(module == p or module.startswith(p + ".") for p in _PACKAGES)


def _module(name: str) -> types.ModuleType:
    """The interpreted twin of module ``name``: its namespace with functions and modules replaced."""
    twin = _modules.get(name)
    if twin is not None:
        return twin
    real = sys.modules[name]
    twin = types.ModuleType(name, real.__doc__)
    _modules[name] = twin  # before filling: modules may refer to each other
    space = twin.__dict__
    for key, value in vars(real).items():
        if key in ("__name__", "__doc__"):
            continue
        space[key] = _convert(value)
    return twin


def _convert(value: Any) -> Any:
    if is_kernel(value) and _ours(_home(value.py_func)):
        return _copy(value.py_func, value)
    if isinstance(value, types.FunctionType) and _ours(_home(value)):
        return _copy(value, None)
    if isinstance(value, types.ModuleType) and _ours(value.__name__):
        return _module(value.__name__)
    return value


def _home(fn: Any) -> str | None:
    """The module whose globals ``fn`` runs in (not ``__module__``, which decorators copy)."""
    space = getattr(fn, "__globals__", None)
    return space.get("__name__") if isinstance(space, dict) else None


def _copy(fn: types.FunctionType, dispatcher: Any) -> Callable:
    key = id(dispatcher if dispatcher is not None else fn)
    done = _functions.get(key)
    if done is not None:
        return done
    space = _module(_home(fn)).__dict__
    twin = types.FunctionType(fn.__code__, space, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__kwdefaults__ = fn.__kwdefaults__
    twin.__doc__ = fn.__doc__
    twin.__qualname__ = fn.__qualname__
    twin.__maskc_jitted__ = dispatcher if dispatcher is not None else fn  # type: ignore[attr-defined]
    _functions[key] = twin
    return twin


def interpreted(fn: Callable) -> Callable:
    """A copy of ``fn`` (a function or numba dispatcher of the compiler or the IR) in which
    every call to a jitted kernel of those packages runs as plain Python, recursively."""
    with _lock:
        return _convert(fn)
