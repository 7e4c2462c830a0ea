"""Small compiles run numba's kernels as plain Python: the same layout, without dispatching numba."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import maskc as mc
from maskc.compiler import interp
from maskc.compiler.budget import Budget
from maskc.compiler.build import CompileStats
from maskc.compiler.compile import _compile_slices
from maskc.compiler.grid import make_grid
from maskc.ir import kernels as K

sys.path.insert(0, str(Path(__file__).parent))
from test_compile_property import BLOCKS, patterns  # noqa: E402  (tests/compiler/test_compile_property.py)

FIELDS = ("row_ptr", "col_idx", "kind", "partial_id", "masks")


def _both(p, q, k, block, q_offset=0):
    bq, bk = (block, block) if isinstance(block, int) else block
    grid = make_grid(q, k, q_offset, bq, bk)
    out = []
    for plain in (True, False):
        with np.errstate(over="ignore"):
            out.append(_compile_slices(p, grid, Budget(1 << 30), CompileStats(), p.n_batch, p.n_heads, plain))
    return out


@settings(max_examples=30, deadline=None)
@given(p=patterns(5), q=st.integers(1, 400), k=st.integers(1, 400), block=BLOCKS)
def test_interpreted_compile_gives_the_identical_arrays(p, q, k, block):
    plain, jit = _both(p, q, k, block)
    for f in FIELDS:  # identical arrays, masks in the same order: not only an equal layout
        assert np.array_equal(getattr(plain, f), getattr(jit, f)), f"{p.text()} q={q} k={k} block={block}: {f}"


@settings(max_examples=10, deadline=None)
@given(ps=st.lists(patterns(3), min_size=2, max_size=3), q=st.integers(1, 200), off=st.integers(0, 50))
def test_interpreted_per_head_and_offset(ps, q, off):
    plain, jit = _both(mc.heads(ps), q, q + off, 32, q_offset=off)
    assert all(np.array_equal(getattr(plain, f), getattr(jit, f)) for f in FIELDS)


def test_large_bit_stages_call_the_jitted_kernel(monkeypatch):
    monkeypatch.setattr(interp, "MAX_BIT_BLOCKS", 0)  # read by build._bits at call time
    p = mc.causal() & (mc.window(5) | mc.offsets("primes"))
    plain, jit = _both(p, 300, 300, 32)
    assert all(np.array_equal(getattr(plain, f), getattr(jit, f)) for f in FIELDS)


def test_choice_follows_size_budget_and_use_jit(monkeypatch):
    monkeypatch.setattr(interp, "_state", {"jit": False, "spent": 0.0})
    assert interp.choose_interpreted(interp.MAX_TILES)
    assert not interp.choose_interpreted(interp.MAX_TILES + 1)
    interp.record(interp.BUDGET_S, True)  # interpreted compiles spent the budget
    assert not interp.choose_interpreted(1)
    monkeypatch.setattr(interp, "_state", {"jit": False, "spent": 0.0})
    interp.record(0.001, False)  # a jitted compile paid numba's start-up: stay jitted
    assert not interp.choose_interpreted(1)
    monkeypatch.setattr(interp, "_state", {"jit": False, "spent": 0.0})
    interp.use_jit()
    assert not interp.choose_interpreted(1)


def test_small_compile_in_a_fresh_process_never_imports_numba():
    code = textwrap.dedent("""
        import sys
        import maskc as mc
        from maskc.jit import Kernel
        imported = "numba" in sys.modules
        lay = mc.compile(mc.parse("causal() & window(64)"), 4096)
        lay.validate()
        print(lay.nnz_blocks, lay.n_partial, lay.n_unique_masks, round(lay.density, 6))
        built = [f"{m}.{k}" for m, mod in list(sys.modules.items()) if m.startswith("maskc")
                 for k, v in vars(mod).items() if isinstance(v, Kernel) and v._dispatcher is not None]
        print("dispatched:", built, "numba imported:", imported, "numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    lay = mc.compile(mc.causal() & mc.window(64), 4096)
    assert first.split() == [str(lay.nnz_blocks), str(lay.n_partial), str(lay.n_unique_masks),
                             str(round(lay.density, 6))]
    assert second == "dispatched: [] numba imported: False False"  # neither by import maskc nor by the compile


@pytest.mark.parametrize("seed", range(20))
def test_check_bsr_plain_equals_jitted(seed):
    rng = np.random.default_rng(seed)
    S, R, nnzb, n_kb = rng.integers(1, 4), rng.integers(1, 6), rng.integers(0, 12), rng.integers(1, 6)
    row_ptr = np.sort(rng.integers(0, nnzb + 1, (S, R + 1)), axis=1)
    if seed % 3:  # make it valid-looking: contiguous slices ending at nnzb
        row_ptr = np.sort(rng.integers(0, nnzb + 1, S * R + 1)).reshape(-1)
        row_ptr[0], row_ptr[-1] = 0, nnzb
        row_ptr = np.stack([row_ptr[s * R:s * R + R + 1] for s in range(S)])
    if seed % 5 == 0:
        row_ptr = row_ptr + rng.integers(-1, 2, row_ptr.shape)
    col_idx = rng.integers(-1, n_kb + 1, nnzb).astype(np.int32)
    assert K.check_bsr(row_ptr, col_idx, n_kb) == K._check_bsr(row_ptr, col_idx, np.int64(n_kb))


def test_block_rows_lists_each_blocks_row():
    row_ptr = np.array([[0, 2, 2, 5], [5, 5, 6, 6]])
    assert K.block_rows(row_ptr, 6).tolist() == [0, 0, 2, 2, 2, 1]
    assert K.block_rows(row_ptr, 6).dtype == np.int32


def test_warmup_runs_the_jitted_kernels():
    code = textwrap.dedent("""
        from maskc.compiler import warmup
        from maskc.compiler import rowwalk
        warmup(out=None)
        print(len(rowwalk.walk_rows.signatures))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) >= 1  # warmup compiled (or loaded) the row walk
