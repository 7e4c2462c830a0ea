"""Build report of maskc's Triton kernels for real GPU targets, on any machine (no GPU needed).

Every kernel is compiled the way its launcher launches it (same arguments, same
specialisation, same constexprs, warps and stages) with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", cc, 32))`` for sm_90a (Hopper) and sm_80 (Ampere). Triton's own
ptxas build of the cubin reports registers, spill bytes and stack; Triton's metadata the
shared memory; the PTX whether the tile matmuls became ``wgmma`` (Hopper) or ``mma``.

    python -m maskc.backends.kernel_report            # the launched configurations (CI)
    python -m maskc.backends.kernel_report --all      # + every head dim, block pair, autotune entry
    python -m maskc.backends.kernel_report --markdown # the table for docs/kernels.md

Builds are cached on disk (``$MASKC_KERNEL_CACHE``, default ``~/.cache/maskc/kernels``)
keyed by the kernel's source (Triton's cache key, its callees included), the compile
inputs and the Triton version, and run in ``--jobs`` worker processes (default 2) that
start without ``TRITON_INTERPRET``. The process exits 1 when a build fails a rule
(:func:`problems`): a compile error, any spill, shared memory over the device's per-block
limit, or (sm_90a, fp16 / bf16, tiles of at least 64 rows) a 16-bit tile matmul not
lowered to wgmma.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

from maskc.backends import kernel_builds as kb
from maskc.backends import triton_configs as tc

ARCHES: dict[int, str] = {90: "sm_90a", 80: "sm_80"}
#: Largest dynamic shared memory per block (bytes): H100/H200 227 KiB, A100 163 KiB.
SMEM_LIMIT: dict[int, int] = {90: 227 * 1024, 80: 163 * 1024}


@dataclass(frozen=True)
class Result:
    """What one build reported (``error`` set when it did not compile)."""

    regs: int = -1
    spill_stores: int = -1
    spill_loads: int = -1
    stack: int = -1
    smem: int = -1
    num_warps: int = 0
    num_stages: int = 0
    wgmma: int = 0  #: 16-bit wgmma instructions in the PTX
    mma16: int = 0  #: 16-bit mma.sync instructions
    tf32: int = 0  #: tf32 matmul instructions (wgmma or mma)
    seconds: float = 0.0
    error: str = ""


def cache_dir() -> Path:
    return Path(os.environ.get("MASKC_KERNEL_CACHE", Path.home() / ".cache" / "maskc" / "kernels"))


def _parse_ptxas(log: str) -> dict:
    regs = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    stack = re.search(r"(\d+) bytes stack frame", log)
    return dict(regs=int(regs.group(1)) if regs else -1,
                spill_stores=int(spill.group(1)) if spill else 0, spill_loads=int(spill.group(2)) if spill else 0,
                stack=int(stack.group(1)) if stack else 0)


def _count_mma(ptx: str) -> dict:
    wg = re.findall(r"wgmma\.mma_async\S*", ptx)
    mma = re.findall(r"\bmma\.sync\S*", ptx)
    is16 = lambda ins: ".f16" in ins.replace(".f16x2", "") or ".bf16" in ins  # noqa: E731
    return dict(wgmma=sum(1 for i in wg if is16(i)), mma16=sum(1 for i in mma if is16(i)),
                tf32=sum(1 for i in wg + mma if ".tf32" in i))


def _compile_key(spec: kb.Spec, arch: int) -> tuple:
    """(kernel function, signature, constexprs, attrs, options) exactly as the launcher's binder makes them."""
    return compile_inputs(*kb.launch_args(spec), arch)


def compile_inputs(fn, args, kwargs, arch: int) -> tuple:
    """Triton's compile inputs of launching ``fn[grid](*args, **kwargs)`` on a device of capability ``arch``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, opts = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, opts)
    return fn, signature, constexprs, attrs, options


def build_key(spec: kb.Spec, arch: int) -> str:
    """The on-disk cache key of one build (kernel source and callees, compile inputs, Triton version)."""
    import triton

    fn, signature, constexprs, attrs, options = _compile_key(spec, arch)
    text = repr((fn.cache_key, sorted(signature.items()), sorted(constexprs.items()), sorted(attrs.items()),
                 sorted(options.__dict__.items()), arch, triton.__version__))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build(spec: kb.Spec, arch: int) -> Result:
    """Compile one launch for ``arch`` (call in a process without TRITON_INTERPRET)."""
    return build_launch(lambda: _compile_key(spec, arch), arch)


def build_launch(inputs, arch: int) -> Result:
    """Compile what ``inputs()`` (see :func:`compile_inputs`) describes for ``arch`` and report it."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    t0 = time.perf_counter()
    try:
        fn, signature, constexprs, attrs, options = inputs()
        knobs.nvidia.dump_ptxas_log = True
        knobs.compilation.always_compile = True
        buf = io.StringIO()
        with redirect_stdout(buf):
            k = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", arch, 32),
                               options=options.__dict__)
        return Result(**_parse_ptxas(buf.getvalue()), smem=int(k.metadata.shared), num_warps=k.metadata.num_warps,
                      num_stages=k.metadata.num_stages, **_count_mma(k.asm["ptx"]),
                      seconds=time.perf_counter() - t0)
    except Exception as exc:  # a failed build is a finding of the report, not a crash of it
        msg = " ".join(str(exc).split())
        return Result(error=f"{type(exc).__name__}: {msg[-300:]}", seconds=time.perf_counter() - t0)


def cached_build(spec: kb.Spec, arch: int, use_cache: bool = True) -> Result:
    """:func:`build`, through the on-disk cache (call in a process without TRITON_INTERPRET)."""
    f = cache_dir() / f"{build_key(spec, arch)}.json"
    if use_cache and f.is_file():
        return Result(**json.loads(f.read_text()))
    res = build(spec, arch)
    if not res.error:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(res)))
        tmp.replace(f)
    return res


def _worker(use_cache: bool) -> int:
    """``--worker``: read ``[[spec, arch], ...]`` JSON from stdin, print one result per line."""
    for spec_d, arch in json.loads(sys.stdin.read()):
        res = cached_build(kb.Spec.from_dict(spec_d), arch, use_cache)
        print(json.dumps(asdict(res)), flush=True)
    return 0


def run(specs: list[tuple[kb.Spec, int]], jobs: int = 2, use_cache: bool = True) -> list[Result]:
    """Results of ``(spec, arch)`` builds, from ``jobs`` fresh worker processes (no TRITON_INTERPRET there)."""
    results: list[Result | None] = [None] * len(specs)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    cmd = [sys.executable, "-m", "maskc.backends.kernel_report", "--worker"] + ([] if use_cache else ["--no-cache"])
    procs = []
    for j in range(max(1, jobs)):
        chunk = list(range(len(specs)))[j::max(1, jobs)]
        if chunk:
            p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            p.stdin.write(json.dumps([[specs[i][0].to_dict(), specs[i][1]] for i in chunk]))
            p.stdin.close()
            procs.append((p, chunk))

    def collect(p, chunk):
        for n, line in enumerate(p.stdout):
            results[chunk[n]] = Result(**json.loads(line))
        p.wait()

    threads = [threading.Thread(target=collect, args=pc) for pc in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p, chunk in procs:
        for i in chunk:
            if results[i] is None:
                results[i] = Result(error=f"worker exited with status {p.returncode} before this build")
    return results  # type: ignore[return-value]


def problems(spec: kb.Spec, arch: int, res: Result) -> list[str]:
    """The rules a build breaks (empty when it is fine)."""
    if res.error:
        return [f"compile error: {res.error}"]
    out = []
    if res.spill_stores or res.spill_loads:
        out.append(f"spills {res.spill_stores} B stores / {res.spill_loads} B loads")
    if res.smem > SMEM_LIMIT[arch]:
        out.append(f"shared memory {res.smem} B > {SMEM_LIMIT[arch]} B")
    if arch == 90 and spec.dtype != "float32" and spec.mma_rows >= 64 and spec.kernel in kb.MATMUL_KERNELS:
        if res.mma16 or not res.wgmma:
            out.append(f"16-bit matmuls not on wgmma ({res.wgmma} wgmma, {res.mma16} mma.sync)")
    return out


HEADER = ("| kernel | arch | dtype | head_dim | layout blocks | tile | warps | stages | regs | spill B | "
          "smem KiB | wgmma/mma | status |\n|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---|---|")


def row(spec: kb.Spec, arch: int, res: Result) -> str:
    bad = problems(spec, arch, res)
    mm = "-" if spec.kernel not in kb.MATMUL_KERNELS else (
        f"{res.wgmma} wgmma" if arch == 90 and res.wgmma and not res.mma16 else f"{res.mma16 + res.wgmma} mma")
    if res.tf32 and spec.kernel in kb.MATMUL_KERNELS:
        mm += f" (+{res.tf32} tf32)" if spec.dtype != "float32" else f" tf32 {res.tf32}"
    tile = f"{spec.tile[0]}x{spec.tile[1]}" if spec.tile[1] else f"{spec.tile[0]}"
    blocks = ", ".join(f"{q}x{k}" for q, k in spec.blocks) or "-"
    name = spec.kernel + (" exact" if spec.exact else "") + (f" (maxnreg {spec.maxnreg})" if spec.maxnreg else "")
    return (f"| {name} | {ARCHES[arch]} | {spec.dtype} | {spec.head_dim} | {blocks} | {tile} | "
            f"{res.num_warps or spec.num_warps} | {res.num_stages or spec.num_stages} | {res.regs} | "
            f"{res.spill_stores} | {res.smem / 1024:.1f} | {mm} | {'; '.join(bad) or 'ok'} |")


def config_table() -> str:
    """The default tile table as markdown (``BLOCK_M x BLOCK_N / warps / stages``, then the exact redo's)."""
    out = ["| arch | dtype | BLOCK_D | fwd | dq | dkdv |", "|---|---|---:|---|---|---|"]
    for cc in (90, 80):
        for dt in ("bfloat16", "float32"):
            for bd in tc.BLOCK_DS:
                cells = []
                for kernel in tc.KERNELS:
                    c = tc.pick(kernel, cc, dt, bd, 256, 256)
                    x = tc.exact(kernel, c)
                    cells.append(f"{c.block_m}x{c.block_n} / {c.num_warps} / {c.num_stages} "
                                 f"(exact {x.block_m}x{x.block_n} / {x.num_warps})")
                name = "fp16, bf16" if dt == "bfloat16" else "fp32"
                out.append(f"| {ARCHES[cc]} | {name} | {bd} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Compile maskc's Triton kernels for sm_90a / sm_80 and report.")
    p.add_argument("--all", action="store_true", help="every head dim, block pair and autotune entry")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--markdown", action="store_true", help="print only the markdown table")
    p.add_argument("--configs", action="store_true", help="print the default tile table and exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(not args.no_cache)
    if args.configs:
        print(config_table())
        return 0
    specs = kb.specs("all" if args.all else "ci")
    t0 = time.perf_counter()
    results = run(specs, jobs=args.jobs, use_cache=not args.no_cache)
    n_bad = sum(1 for (s, a), r in zip(specs, results) if problems(s, a, r))
    import triton

    if not args.markdown:
        print(f"maskc kernel build report: {len(specs)} builds ({'all' if args.all else 'ci'} scope), "
              f"triton {triton.__version__}, {time.perf_counter() - t0:.0f} s\n")
    print(HEADER)
    for (s, a), r in zip(specs, results):
        print(row(s, a, r))
    print(f"\n{len(specs) - n_bad} of {len(specs)} builds pass (no spill, shared memory within the limit, "
          "wgmma for 16-bit tiles on sm_90a).")
    return 1 if n_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
