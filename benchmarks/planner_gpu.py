"""The planner on CUDA (πAttention union, squares + window at 32K vs causal dense SDPA): a thin wrapper.

The benchmark lives in ``benchmarks/gpu_suite.py`` (cases in ``benchmarks/gpu_cases.py``);
this runs only its planner family, without the checks:

    python benchmarks/planner_gpu.py              # = gpu_suite.py --only planner --skip-checks --skip-tests
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_suite  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(gpu_suite.main(["--only", "planner", "--skip-checks", "--skip-tests", *sys.argv[1:]]))
