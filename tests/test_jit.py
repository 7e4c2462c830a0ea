"""maskc.jit: kernels that import numba on their first call and behave as numba dispatchers."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from maskc.jit import Kernel, is_kernel, njit, prange


@njit(cache=False, inline="always")
def _inner(x):
    return x * 3


@njit(cache=False)
def _outer(a):
    total = 0
    for i in range(a.shape[0]):
        total += _inner(a[i])
    return total


@njit(cache=False, parallel=True)
def _parallel(a, out):
    for i in prange(a.shape[0]):
        out[i] = _inner(a[i]) + 1


def test_kernels_call_kernels_inline_and_run_parallel():
    a = np.arange(10, dtype=np.int64)
    assert _outer(a) == 3 * a.sum() == _outer.py_func(a)
    out = np.zeros(10, dtype=np.int64)
    _parallel(a, out)
    assert np.array_equal(out, 3 * a + 1)
    assert len(_outer.signatures) == 1  # attributes go to the numba dispatcher
    assert is_kernel(_outer) and is_kernel(_outer.dispatcher) and not is_kernel(np.sum)
    assert isinstance(_outer, Kernel) and _outer.__name__ == "_outer" and "built" in repr(_outer)


def test_import_maskc_does_not_import_numba():
    code = "import sys, maskc; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_probing_private_names_builds_nothing():
    @njit(cache=False)
    def untouched(x):
        return x

    assert not hasattr(untouched, "_pytestfixturefunction") and not hasattr(untouched, "__missing__")
    assert untouched._dispatcher is None and "not built yet" in repr(untouched)
    assert untouched.py_func(3) == 3
