"""How the kernels run: small compiles on one thread, thread counts left as they were,
and the one-time kernel build announced (first compile) or done ahead (warmup)."""

import io
import subprocess
import sys

import numba
import numpy as np
import pytest

import maskc as mc
from maskc.compiler import runtime, warmup


def test_small_work_runs_on_one_thread():
    assert runtime.threads_for(100) == 1
    assert runtime.threads_for(runtime.PARALLEL_MIN_NS) == numba.config.NUMBA_NUM_THREADS


def test_compile_leaves_numba_and_torch_thread_counts_alone():
    torch = pytest.importorskip("torch", reason="torch is optional; this checks the OpenMP interplay with it")
    before_torch, before_numba = torch.get_num_threads(), numba.get_num_threads()
    try:
        torch.set_num_threads(1)
        mc.compile(mc.causal() & mc.offsets("primes"), 1 << 17, block=128, cache=False)  # large enough to go parallel
        assert torch.get_num_threads() == 1
        assert numba.get_num_threads() == before_numba
    finally:
        torch.set_num_threads(before_torch)


@pytest.fixture
def fresh_stamp(tmp_path, monkeypatch):
    stamp = tmp_path / "maskc-kernels-test.built"
    monkeypatch.setattr(runtime, "_stamp", lambda: stamp)
    monkeypatch.setitem(runtime._state, "checked", False)
    return stamp


def test_first_compile_on_a_machine_says_so_once(fresh_stamp, capsys):
    mc.compile(mc.window(7), 300, block=32, cache=False)
    first = capsys.readouterr().err
    assert "building the compiler's numba kernels" in first and "maskc warmup" in first
    assert fresh_stamp.exists()
    mc.compile(mc.window(8), 300, block=32, cache=False)
    assert capsys.readouterr().err == ""


def test_warmup_reports_each_step_and_marks_the_build(fresh_stamp):
    out = io.StringIO()
    seconds = warmup(out=out)
    text = out.getvalue()
    assert seconds >= 0 and "[1/4]" in text and "[4/4] predicates" in text and "ready in" in text
    assert runtime.kernels_built()
    assert not runtime.announce_first_build()


def test_import_maskc_loads_neither_compiler_nor_backends():
    code = ("import sys, maskc; "
            "print(sorted(m for m in ('maskc.compiler', 'maskc.backends', 'torch', 'scipy.sparse') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("pattern", [
    mc.prime_bird(),
    mc.window(40, 40) & mc.sums(range(0, 4000, 37)),  # UNKNOWN blocks that turn out EMPTY: dropped
    mc.document_mask([500, 900, 648]) & (mc.window(100) | mc.stride(64)),
])
def test_parallel_kernels_give_the_serial_layout(monkeypatch, pattern):
    """Every kernel that goes parallel on large compiles (fill, bits, resolve and drop) gives
    the arrays the one-thread kernels give."""
    serial = mc.compile(pattern, 2048, block=16, cache=False)
    monkeypatch.setattr(runtime, "PARALLEL_MIN_NS", 0)
    parallel = mc.compile(pattern, 2048, block=16, cache=False)
    for f in ("row_ptr", "col_idx", "kind", "partial_id", "masks"):
        assert np.array_equal(getattr(parallel, f), getattr(serial, f)), f
    assert serial.nnz_blocks > 0
