"""The kernel-build report: maskc's Triton kernels compiled for sm_90a and sm_80 on this CPU.

``test_launched_configurations_build_clean`` compiles every configuration the launchers
pick for the usual shapes (the report's "ci" scope: fp16 / bf16 / fp32, head_dim 64 and
128, layout blocks 64 and 128, forward, dQ, dK/dV and their exact redo, the delta kernel,
the DIA kernels), in 2 worker processes, with builds cached on disk. It fails on a
compile error, any spill, shared memory over the per-block limit, or a 16-bit tile
matmul of 64+ rows not on wgmma on sm_90a. ``python -m maskc.backends.kernel_report
--all`` covers every head dim, block pair and autotune entry (see docs/kernels.md).
"""

from __future__ import annotations

import pytest

pytest.importorskip("triton", reason="triton not installed: nothing to build")

from maskc.backends import kernel_builds as kb  # noqa: E402
from maskc.backends import kernel_report as kr  # noqa: E402

LOG = """ptxas info    : Compiling entry function '_fwd_kernel' for 'sm_90a'
ptxas info    : Function properties for _fwd_kernel
    1520 bytes stack frame, 2468 bytes spill stores, 2088 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 1520 bytes cumulative stack size
"""


def test_ptxas_log_and_ptx_are_read():
    assert kr._parse_ptxas(LOG) == dict(regs=255, spill_stores=2468, spill_loads=2088, stack=1520)
    clean = kr._parse_ptxas("ptxas info    : Used 96 registers, used 1 barriers")
    assert clean["regs"] == 96 and clean["spill_stores"] == 0
    ptx = ("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {...};\n"
           "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {...};\n"
           "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {...};\n")
    assert kr._count_mma(ptx) == dict(wgmma=1, mma16=1, tf32=1)


def test_rules():
    spec = kb.Spec("fwd", "bfloat16", 128, (128, 64), 8, 3, ((128, 128),))
    ok = kr.Result(regs=200, spill_stores=0, spill_loads=0, smem=100_000, wgmma=24)
    assert kr.problems(spec, 90, ok) == []
    assert "spills" in kr.problems(spec, 90, kr.Result(**{**ok.__dict__, "spill_stores": 4}))[0]
    assert "shared memory" in kr.problems(spec, 80, kr.Result(**{**ok.__dict__, "smem": 170_000, "mma16": 9}))[0]
    assert "wgmma" in kr.problems(spec, 90, kr.Result(**{**ok.__dict__, "wgmma": 0, "mma16": 8}))[0]
    small = kb.Spec("fwd", "bfloat16", 128, (32, 32), 1, 3, ((32, 32),))  # 32-row tiles: mma is right
    assert kr.problems(small, 90, kr.Result(**{**ok.__dict__, "wgmma": 0, "mma16": 8})) == []
    assert kr.problems(spec, 90, kr.Result(error="boom"))[0].startswith("compile error")


def test_scopes_cover_every_kernel_dtype_and_arch():
    ci = kb.specs("ci")
    kinds = {(s.kernel, s.exact, s.dtype, a) for s, a in ci}
    for kernel in ("fwd", "dq", "dkdv"):
        for exact in (False, True):
            for dt in kb.DTYPES:
                assert (kernel, exact, dt, 90) in kinds and (kernel, exact, dt, 80) in kinds
    assert {s.kernel for s, _ in ci} >= {"delta", "dia_fwd", "dia_dq", "dia_dkdv"}
    blocks = {b for s, _ in kb.specs("all") if s.kernel == "fwd" for b in s.blocks}
    assert len(blocks) == 25  # every pair of block sizes in 16..256


@pytest.mark.slow
def test_launched_configurations_build_clean():
    specs = kb.specs("ci")
    results = kr.run(specs, jobs=2)
    bad = [kr.row(s, a, r) for (s, a), r in zip(specs, results) if kr.problems(s, a, r)]
    assert not bad, "builds breaking the rules:\n" + kr.HEADER + "\n" + "\n".join(bad)
