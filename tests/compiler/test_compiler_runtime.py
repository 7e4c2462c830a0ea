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
    cleared = []  # a fresh stamp means "sources changed": keep the real kernel cache anyway
    monkeypatch.setattr(runtime, "clear_stale_kernels", lambda: cleared.append(1) or 0)
    monkeypatch.setattr(sys.modules["maskc.compiler.warmup"], "clear_stale_kernels", lambda: cleared.append(1) or 0)
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


def test_stale_kernel_caches_are_cleared_when_the_sources_changed(tmp_path, monkeypatch):
    """numba checks a cached kernel against its own file only; a missing build stamp (some
    kernel file changed) clears every cached kernel of the compiler, and nothing else."""
    folder = tmp_path / "__pycache__"
    folder.mkdir()
    stale = [folder / "rowwalk._walk_row-68.py311.nbi", folder / "evalrow.eval_row-128.py311.1.nbc"]
    other = [folder / "layout.cpython-311.pyc", folder / "someone_else.f-1.py311.nbi"]
    for f in stale + other:
        f.write_bytes(b"x")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(runtime, "__file__", str(tmp_path / "runtime.py"))
    monkeypatch.setattr(runtime, "kernels_built", lambda: True)
    assert runtime.clear_stale_kernels() == 0 and all(f.exists() for f in stale)
    monkeypatch.setattr(runtime, "kernels_built", lambda: False)
    assert runtime.clear_stale_kernels() == 2
    assert not any(f.exists() for f in stale) and all(f.exists() for f in other)
