"""The packaged zeta-zero table and maskc.patterns.zeta.zeta_zeros."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from maskc.patterns import zeta


def _table_text() -> str:
    return resources.files("maskc").joinpath("data", "zeta_zeros.txt").read_text()


def test_table_is_plain_text_with_1000_increasing_ordinates():
    vals = [float(x) for x in _table_text().splitlines() if x.strip() and not x.startswith("#")]
    assert len(vals) == 1000 == zeta.table_size()
    arr = np.array(vals)
    assert (np.diff(arr) > 0).all()
    # Riemann-von Mangoldt: N(T) = T/2π log(T/2πe) + 7/8 + O(log T) zeros up to height T
    T = arr[-1]
    n_est = T / (2 * np.pi) * np.log(T / (2 * np.pi * np.e)) + 7 / 8
    assert abs(n_est - 1000) < 3
    assert 1419 < T < 1420  # gamma_1000 = 1419.4224...


def test_first_20_match_mpmath():
    import mpmath

    got = zeta.zeta_zeros(20)
    assert got.dtype == np.float64 and got.shape == (20,)
    with mpmath.workdps(25):
        ref = np.array([float(mpmath.zetazero(k).imag) for k in range(1, 21)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert abs(got[0] - 14.134725141734693790) < 1e-13


def test_fallback_beyond_the_table(monkeypatch):
    # pretend the table holds 3 zeros: the next two come from mpmath and continue it
    full = zeta.zeta_zeros(5)
    short = full[:3].copy()
    short.setflags(write=False)
    monkeypatch.setattr(zeta, "_table", lambda: short)
    np.testing.assert_allclose(zeta.zeta_zeros(5), full, rtol=0, atol=1e-12)


def test_returns_a_copy_and_validates_k():
    a = zeta.zeta_zeros(4)
    a[0] = 0.0
    assert zeta.zeta_zeros(4)[0] > 14
    assert zeta.zeta_zeros(0).shape == (0,)
    with pytest.raises(ValueError, match=r"K must be >= 0"):
        zeta.zeta_zeros(-1)
    with pytest.raises(ValueError, match=r"K must be at most 2,000"):
        zeta.zeta_zeros(100_000)
    with pytest.raises(TypeError, match="K must be an integer"):
        zeta.zeta_zeros(2.0)
