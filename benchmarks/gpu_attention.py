"""maskc triton vs FlexAttention vs dense SDPA on block-sparse masks (CUDA): a thin wrapper.

The benchmark lives in ``benchmarks/gpu_suite.py`` (cases in ``benchmarks/gpu_cases.py``);
this runs only its block-sparse family, without the checks:

    python benchmarks/gpu_attention.py            # = gpu_suite.py --only sparse --skip-checks --skip-tests
    python benchmarks/gpu_attention.py --quick
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_suite  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(gpu_suite.main(["--only", "sparse", "--skip-checks", "--skip-tests", *sys.argv[1:]]))
