"""How the compiler runs its numba kernels: threads, and the one-time kernel build.

* Small compiles run the kernels on one thread: a parallel launch costs milliseconds
  (more when torch shares the OpenMP runtime), more than it saves below
  :data:`PARALLEL_MIN_NS` nanoseconds of estimated work.
* numba's OpenMP threading layer shares libgomp with torch, and a parallel launch sets
  the OpenMP thread count: :func:`kernel_threads` restores torch's intra-op thread count
  afterwards, so compiling never changes ``torch.get_num_threads()``.
* numba compiles the kernels the first time they run on a machine (about a minute on
  two cores, then cached on disk). ``maskc warmup`` does it ahead of time with progress;
  otherwise the first compile prints one line saying so (:func:`announce_first_build`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path

#: Below this much estimated work (nanoseconds on one thread) a kernel runs on one thread.
PARALLEL_MIN_NS = 20_000_000
#: Estimated nanoseconds per unit of each kernel's work, on one thread.
NS_PER_BLOCK_WRITTEN = 5
NS_PER_ROW_WALKED = 200
NS_PER_BIT = 2

_KERNEL_MODULES = ("codes", "grid", "axis", "tables", "prep", "runs", "coarse", "leafruns", "evalrow", "keys", "rowwalk", "bits")
_state = {"checked": False}


def threads_for(ns: float) -> int:
    """Threads for a kernel call of ``ns`` estimated nanoseconds: 1 when small, all of numba's otherwise.

    Example:
        >>> threads_for(1000)
        1
    """
    if ns < PARALLEL_MIN_NS:
        return 1
    import numba  # a compile this large runs numba's kernels anyway

    return int(numba.config.NUMBA_NUM_THREADS)


@contextlib.contextmanager
def kernel_threads(n: int):
    """Run numba's parallel kernels on ``n`` threads; restore numba's and torch's counts after."""
    import numba

    torch = sys.modules.get("torch")
    torch_n = torch.get_num_threads() if torch is not None else None
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), int(numba.config.NUMBA_NUM_THREADS))))
    try:
        yield
    finally:
        numba.set_num_threads(before)
        if torch_n is not None and torch.get_num_threads() != torch_n:
            torch.set_num_threads(torch_n)


def _stamp() -> Path:
    """The file that records a finished kernel build for these sources and this numba."""
    import numba  # asked only before a jitted compile, which imports numba anyway

    here = Path(__file__).resolve().parent
    h = hashlib.sha256(numba.__version__.encode())
    for name in _KERNEL_MODULES:
        h.update((here / f"{name}.py").read_bytes())
    cache = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(cache) if cache else here / "__pycache__"
    return folder / f"maskc-kernels-{h.hexdigest()[:16]}.built"


def kernels_built() -> bool:
    """True when the numba kernels of this installation were built (``maskc warmup`` or a compile)."""
    try:
        return _stamp().exists()
    except OSError:
        return False


def mark_built() -> None:
    """Record that the kernels are built (silently skipped where the folder is read-only)."""
    _state["checked"] = True
    try:
        path = _stamp()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass


def expect_build() -> None:
    """The caller reports the build itself (``maskc warmup``): no first-compile notice."""
    _state["checked"] = True


def clear_stale_kernels() -> int:
    """Delete numba's cached machine code of the compiler's kernels if their sources changed
    since the last build; returns the files removed.

    numba checks a cached kernel against its own source file only, but a kernel carries the
    code of the kernels it calls from other files: after an edit of ``evalrow.py`` the row
    walk of ``rowwalk.py`` would go on running the old ``eval_row`` from its cache. The
    build stamp hashes every kernel file, so a missing stamp means some changed; then all
    are rebuilt. (With ``NUMBA_CACHE_DIR`` set, numba's cache lives elsewhere and is left
    alone.)
    """
    if kernels_built() or os.environ.get("NUMBA_CACHE_DIR"):
        return 0
    removed = 0
    for f in (Path(__file__).resolve().parent / "__pycache__").glob("*.nb[ic]"):
        if f.name.split(".", 1)[0] in _KERNEL_MODULES:
            try:
                f.unlink()
                removed += 1
            except OSError:  # read-only installation, or removed by another process meanwhile
                pass
    return removed


def announce_first_build() -> bool:
    """Print one line to stderr before the first compile on a machine; True if it did."""
    if _state["checked"]:
        return False
    _state["checked"] = True
    if kernels_built():
        return False
    clear_stale_kernels()
    print("maskc: building the compiler's numba kernels for this machine (once, about a minute; "
          "`maskc warmup` does it ahead of time) ...", file=sys.stderr, flush=True)
    return True
