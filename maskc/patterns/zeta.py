"""Ordinates of the nontrivial zeros of the Riemann zeta function.

The k-th nontrivial zero is rho_k = 1/2 + i*gamma_k (k = 1, 2, ...). maskc ships the
first 1,000 ordinates gamma_k as package data (``maskc/data/zeta_zeros.txt``, generated
by ``scripts/make_zeta_table.py`` with ``mpmath.zetazero``). :func:`zeta_zeros` computes
ordinates beyond the table with mpmath, which is slow (about 0.6 s per zero on one core,
growing with k), so it accepts at most ``MAX_ZEROS = 2,000`` in all (about ten minutes
past the table); the ``riemann_zeros`` pattern reads the table only.

Example:
    >>> from maskc.patterns.zeta import zeta_zeros
    >>> [round(float(g), 6) for g in zeta_zeros(3)]
    [14.134725, 21.02204, 25.010858]
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from maskc.limits import check_int

__all__ = ["zeta_zeros", "table_size", "MAX_ZEROS"]

#: Largest K accepted by :func:`zeta_zeros` (beyond the table every zero costs an mpmath call).
MAX_ZEROS = 2_000
_TABLE = "zeta_zeros.txt"


@functools.lru_cache(maxsize=1)
def _table() -> np.ndarray:
    """The packaged ordinates (read once; read-only float64)."""
    try:
        text = resources.files("maskc").joinpath("data", _TABLE).read_text()
    except (FileNotFoundError, OSError, ModuleNotFoundError):  # pragma: no cover - broken install
        vals = np.zeros(0, dtype=np.float64)
    else:
        vals = np.array(
            [float(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")],
            dtype=np.float64,
        )
    vals.setflags(write=False)
    return vals


def table_size() -> int:
    """Number of ordinates in the packaged table (1,000 in a normal install)."""
    return int(_table().size)


@functools.lru_cache(maxsize=64)
def _beyond(start: int, stop: int) -> tuple[float, ...]:
    import mpmath

    with mpmath.workdps(25):
        return tuple(float(mpmath.zetazero(k).imag) for k in range(start, stop + 1))


def zeta_zeros(K: int) -> np.ndarray:
    """The first ``K`` zeta-zero ordinates gamma_1 < gamma_2 < ... as float64 [K].

    Read from the packaged table; ordinates past the table are computed with
    ``mpmath.zetazero`` (and cached for the process).

    Args:
        K: how many ordinates, 0 <= K <= 2,000 (beyond the table: ~0.6 s per zero).

    Example:
        >>> zeta_zeros(0).shape
        (0,)
        >>> bool(abs(zeta_zeros(1)[0] - 14.134725141734693) < 1e-12)
        True
    """
    K = check_int(K, "K", 0, MAX_ZEROS)
    tab = _table()
    if K <= tab.size:
        out = tab[:K].copy()
    else:
        out = np.concatenate([tab, np.array(_beyond(tab.size + 1, K), dtype=np.float64)])
    return out
