"""maskc's GPU suite in one go: CUDA checks of the kernels, then the benchmarks (under 9 minutes).

1. **Checks** (compiled kernels, float64 reference): maskc's Triton block-sparse kernels
   forward + backward (bf16 / fp16 / fp32, head_dim 64 and 128, blocks 64 and 128, GQA,
   exact empty rows with NaN at unattended keys), FlexAttention forward + backward, the
   planner's DIA and residue kernels; then the repository's CUDA tests if pytest is present.
2. **Benchmarks** (bf16, batch 1, 16 heads, head_dim 64 and 128, 8K..64K): maskc triton vs
   FlexAttention (``torch.compile``d, the same BlockMask) vs dense SDPA (FlashAttention) for
   a causal 1K window, block-level primes + window + global keys, BigBird, a document mask;
   the planner's πAttention union and squares + window at 32K against causal dense SDPA.
   TFLOP/s count computed blocks (forward ``4·H·blocks·Bq·Bk·D``, forward+backward 3.5x);
   dense SDPA counts all pairs. Markdown rows, with device, date and command.

Needs only torch, triton and maskc (installs nothing). Without CUDA it prints the plan and
exits 0. ``--quick`` runs a small subset; ``--budget`` caps the seconds (default 510).

    python benchmarks/gpu_suite.py
    python benchmarks/gpu_suite.py --quick --skip-checks
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_cases as gc  # noqa: E402  (benchmarks/gpu_cases.py)

T0 = time.perf_counter()


def _left(budget: float) -> float:
    return budget - (time.perf_counter() - T0)


def plan_text(args) -> str:
    lines = ["checks: " + ", ".join(name for name, _ in gc.checks())]
    if not args.skip_tests:
        lines.append("tests: pytest " + " ".join(gc.TEST_FILES) + " (TRITON_INTERPRET=0), if pytest is installed")
    for name, lengths, dims, _ in gc.cases(args.quick, args.only):
        lines.append(f"bench: {name}: tokens {', '.join(map(str, lengths))}, head_dim {', '.join(map(str, dims))}")
    return "\n".join(lines)


def run_checks(budget: float) -> int:
    bad = 0
    for name, fn in gc.checks():
        if _left(budget) < 60:
            print(f"- {name}: SKIPPED (time budget)")
            continue
        t = time.perf_counter()
        try:
            msg = fn()
            print(f"- {name}: ok ({msg}; {time.perf_counter() - t:.1f} s)", flush=True)
        except Exception as exc:  # report every failure, keep going
            bad += 1
            print(f"- {name}: FAILED {type(exc).__name__}: {exc}", flush=True)
    return bad


def run_tests(limit: float) -> int:
    try:
        import pytest  # noqa: F401
    except ImportError:
        print("- pytest not installed: the repository's tests are skipped (the checks above ran)")
        return 0
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *gc.TEST_FILES]
    try:
        r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=max(30, limit))
    except subprocess.TimeoutExpired:
        print(f"- pytest: stopped after {limit:.0f} s (time budget)")
        return 0
    tail = [ln for ln in r.stdout.splitlines() if ln.strip()][-3:]
    print("- pytest: " + " / ".join(tail))
    return 0 if r.returncode == 0 else 1


def run_benchmarks(args, budget: float) -> None:
    import torch

    print(gc.HEADER)
    for name, lengths, dims, kind in gc.cases(args.quick, args.only):
        for D in dims:
            for L in lengths:
                if _left(budget) < 20:
                    print(f"<!-- {name} L={L} D={D}: skipped (time budget) -->")
                    continue
                try:
                    for row in gc.bench_case(name, kind, L, D, heads=args.heads, rep=args.rep):
                        print(row, flush=True)
                except torch.OutOfMemoryError:
                    print(f"<!-- {name} L={L} D={D}: out of memory -->")
                except Exception as exc:  # one failing case must not hide the others
                    print(f"<!-- {name} L={L} D={D}: {type(exc).__name__}: {str(exc)[:300]} -->")
                torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="8K and 32K, head_dim 128 only")
    p.add_argument("--only", choices=["sparse", "planner"], help="one benchmark family")
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--rep", type=int, default=40, help="milliseconds of timing per measurement")
    p.add_argument("--budget", type=float, default=510.0, help="seconds for the whole suite")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        why = "no CUDA device" if not torch.cuda.is_available() else "TRITON_INTERPRET is set"
        print(f"gpu_suite.py: {why}; nothing run. On a CUDA machine it would run:\n{plan_text(args)}")
        return 0
    import triton

    cmd = "python benchmarks/gpu_suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cc = "".join(map(str, torch.cuda.get_device_capability()))
    print(f"# maskc GPU suite\n\ndevice: {torch.cuda.get_device_name()} (sm_{cc}), "
          f"torch {torch.__version__}, triton {triton.__version__}, {datetime.date.today().isoformat()}\n"
          f"command: `{cmd.strip()}`\n")
    bad = 0
    if not args.skip_checks:
        print("## Checks\n")
        bad += run_checks(args.budget)
    if not args.skip_tests:
        bad += run_tests(min(150.0, _left(args.budget) - 240))
    print("\n## Benchmarks\n")
    run_benchmarks(args, args.budget)
    print(f"\n(total {time.perf_counter() - T0:.0f} s; {bad} failed check(s))")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
