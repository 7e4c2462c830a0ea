"""Run distributed-attention cases with maskc.distributed.spmd_attention on 4 host devices.

Usage: python spmd_run.py CASES.npz CASES.json OUT.npz  (run by test_spmd.py in a subprocess,
with XLA_FLAGS=--xla_force_host_platform_device_count=4 so the flag stays out of other tests).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import maskc.distributed as md  # noqa: E402
from dist_cases import inputs, layout_of  # noqa: E402
from maskc.distributed.spmd import reset_spmd_counters, spmd_counters, spmd_schedule  # noqa: E402


def main(cases_npz: str, cases_json: str, out_npz: str) -> None:
    arrays = np.load(cases_npz, allow_pickle=False)
    metas = json.load(open(cases_json))
    mesh = jax.make_mesh((4,), ("sp",))
    results = {}
    for i, meta in enumerate(metas):
        c = dict(meta, mask=arrays[f"mask{i}"])
        dt = jnp.float64 if c["dtype"] == "float64" else jnp.float32
        dp = md.plan(layout_of(c), 4, head_dim=c["D"], dtype=c["dtype"], batch=c["B"], kv_heads=c["Hkv"])
        x = {k: jnp.asarray(v, dt) for k, v in inputs(c).items()}

        def loss(q, k, v):
            out, lse = md.spmd_attention(q, k, v, dp, mesh, return_lse=True)
            fin = jnp.where(jnp.isfinite(lse), lse, 0.0)
            return (out * x["dout"]).sum() + (fin * x["dlse"]).sum(), (out, lse)

        t0 = time.perf_counter()
        with jax.set_mesh(mesh):
            reset_spmd_counters()  # one execution: the forward inside value_and_grad
            (_, (out, lse)), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(x["q"], x["k"], x["v"])
            counted = spmd_counters()
        print(f"case {i}: {time.perf_counter() - t0:.2f} s", file=sys.stderr)
        for name, val in zip(("out", "lse", "dq", "dk", "dv"), (out, lse) + tuple(grads)):
            results[f"{name}{i}"] = np.asarray(val, np.float64)
        results[f"counted{i}"] = np.array([counted["bytes_received"], spmd_schedule(dp)["bytes_received"],
                                           max(dp.report()["bytes_received"])])
    np.savez(out_npz, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
