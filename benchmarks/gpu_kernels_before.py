"""Build report of the Triton kernels as they were at a past commit (the 'before' of docs/kernels.md).

Compiles the forward, dQ and dK/dV kernels of ``maskc/backends/triton_kernels.py`` at
``--rev`` (default 1a19ca3, before the restructuring) the way that commit's launcher
launched them (kernel tile = layout block, 4 warps for blocks up to 64 else 8, default
stages; contiguous ``[B, H, L, D]`` tensors, one kv head per query head), for bf16,
head_dim 64 and 128, blocks 64 and 128, sm_90a and sm_80: the 24 builds of issue 12.
No GPU needed; run it without TRITON_INTERPRET.

    python benchmarks/gpu_kernels_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _old_module(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:maskc/backends/triton_kernels.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), f"triton_kernels_{rev}.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(f"triton_kernels_{rev}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _launch(tk, kernel: str, D: int, block: int):
    import torch

    L, H = 8192, 16
    x = torch.empty(1, H, L, D, dtype=torch.bfloat16, device="meta")
    f32 = torch.empty(1, H, L, device="meta")
    i32 = torch.empty(64, dtype=torch.int32, device="meta")
    u8 = torch.empty(64, dtype=torch.uint8, device="meta")
    n_b = L // block
    consts = dict(BLOCK_Q=block, BLOCK_K=block, BLOCK_D=D, MASK_W=block // 8, UPCAST=False,
                  num_warps=4 if block <= 64 else 8)
    ints = (H, 1, 1, n_b, L, L, D)
    if kernel == "fwd":
        return tk._fwd_kernel, (x, x, x, x, f32, i32, i32, i32, i32, u8, 0.1, *ints), consts
    if kernel == "dq":
        return tk._bwd_dq_kernel, (x, x, x, x, f32, f32, x, i32, i32, i32, i32, u8, 0.1, 0.1, *ints), consts
    return tk._bwd_dkdv_kernel, (x, x, x, x, f32, f32, x, x, i32, i32, i32, i32, i32, u8, 0.1, 0.1, *ints), consts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rev", default="1a19ca3")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("gpu_kernels_before.py: unset TRITON_INTERPRET (it compiles for real GPU targets)")
    from maskc.backends import kernel_report as kr

    tk = _old_module(args.rev)
    print(f"kernels of {args.rev}, bf16, contiguous [B, H, L, D], tile = layout block\n")
    print("| kernel | arch | head_dim | block | warps | stages | regs | spill stores B | spill loads B | smem KiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    clean = 0
    for arch in (90, 80):
        for D in (64, 128):
            for block in (64, 128):
                for kernel in ("fwd", "dq", "dkdv"):
                    launch = _launch(tk, kernel, D, block)
                    r = kr.build_launch(lambda launch=launch: kr.compile_inputs(*launch, arch), arch)
                    clean += not (r.spill_stores or r.spill_loads or r.error)
                    print(f"| {kernel} | {kr.ARCHES[arch]} | {D} | {block} | {r.num_warps} | {r.num_stages} | "
                          f"{r.regs} | {r.spill_stores} | {r.spill_loads} | {r.smem / 1024:.1f} |"
                          + (f" {r.error[-200:]}" if r.error else ""), flush=True)
    print(f"\n{clean} of 24 builds without spills.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
