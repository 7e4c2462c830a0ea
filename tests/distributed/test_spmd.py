"""maskc.distributed.spmd_attention: the same plans executed by JAX shard_map on 4 host devices.

The run happens in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4
(the flag must be set before JAX starts and must not leak into other tests). Outputs, lse
and gradients (jax.grad through the ppermute rounds) are compared with the torch float64
reference; the bytes handed to ppermute equal the plan's SPMD schedule, which is at least
the exact need (ppermute moves equal shapes, so pairs are padded to the largest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from dist_cases import named_cases, random_cases, reference, rel_err

pytest.importorskip("jax", reason="jax is not installed: the SPMD path cannot be tested")
pytestmark = pytest.mark.xdist_group("maskc-distributed-jax")

HERE = os.path.dirname(os.path.abspath(__file__))


def run_spmd(cases: list[dict], tmp_path) -> dict:
    np.savez(tmp_path / "cases.npz", **{f"mask{i}": c["mask"] for i, c in enumerate(cases)})
    (tmp_path / "cases.json").write_text(json.dumps([{k: v for k, v in c.items() if k != "mask"} for c in cases]))
    # 4 host devices; the two compile-time flags halve XLA's CPU compile time of these small programs
    flags = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0 " \
            "--xla_llvm_disable_expensive_passes=true"
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in (env.get("PYTHONPATH"),) if p])
    proc = subprocess.run([sys.executable, os.path.join(HERE, "spmd_run.py"), str(tmp_path / "cases.npz"),
                           str(tmp_path / "cases.json"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(tmp_path / "out.npz"))


@pytest.mark.slow
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(random_cases())
def test_spmd_matches_reference(tmp_path_factory, random_case):
    """One subprocess, one JAX compilation per case (about 5 s each on the CI machine)."""
    named = named_cases()
    names = ["window", "documents", "prime_bird", "block_primes", "pi_attention"]
    cases = [named[n] for n in names] + [dict(random_case, dtype="float32")]
    got = run_spmd(cases, tmp_path_factory.mktemp("spmd"))
    for i, c in enumerate(cases):
        ref = reference(c)
        tol = 1e-12 if c["dtype"] == "float64" else 1e-5
        for name in ("out", "lse", "dq", "dk", "dv"):
            err = rel_err(got[f"{name}{i}"], ref[name])
            assert err <= tol, f"case {i}: {name} relative error {err:.2e} > {tol}"
        counted, schedule, exact_max = got[f"counted{i}"].tolist()
        assert counted == schedule >= exact_max
