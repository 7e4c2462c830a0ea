"""benchmarks/gpu_suite.py without CUDA: exits 0 after printing what it would run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the suite would really run")
@pytest.mark.parametrize("script", ["gpu_suite.py", "gpu_attention.py", "planner_gpu.py"])
def test_gpu_suite_without_cuda_prints_its_plan_and_exits_0(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "nothing run" in r.stdout
    if script != "gpu_attention.py":
        assert "πAttention union: tokens 32768" in r.stdout and "squares + window" in r.stdout
    if script != "planner_gpu.py":
        for case in ("causal window 1K", "block primes + window + globals", "BigBird", "document mask"):
            assert f"{case}: tokens 8192, 16384, 32768, 65536, head_dim 64, 128" in r.stdout


def test_benchmark_patterns_compile_and_are_sparse():
    """Every benchmark mask compiles at 8K (block 128); the block-sparse ones skip most blocks.

    (The planner's cases touch every causal block: that is why the planner lowers them to
    DIA / residue kernels instead.)
    """
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_cases
    import maskc as mc

    for name, _, _, kind in gpu_cases.cases():
        lay = mc.compile(gpu_cases.pattern(name, 8192), q_len=8192, block=128)
        assert 0 < lay.block_density < (0.5 if kind == "sparse" else 0.6), name
    assert sum(gpu_cases._doc_lengths(65536)) == 65536


@pytest.mark.slow
def test_gpu_suite_code_runs_on_cpu_at_tiny_sizes(monkeypatch):
    """Every check and both benchmark kinds of the suite, on CPU through the interpreter (tiny sizes)."""
    pytest.importorskip("triton", reason="triton not installed: the suite's kernels cannot run")
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        pytest.skip("needs TRITON_INTERPRET=1 to run the kernels on CPU")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_cases

    monkeypatch.setattr(gpu_cases, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_cases, "SMOKE", True)
    for name, check in gpu_cases.checks():
        msg = check()
        assert "rel err" in msg or msg.startswith("skipped"), (name, msg)
    for name, kind in (("document mask", "sparse"), ("squares + window", "planner")):
        rows = gpu_cases.bench_case(name, kind, 256, 32, heads=1, rep=1)
        assert len(rows) == 3 and all(r.startswith(f"| {name} | 256 | 32 |") for r in rows)
