"""CPU training step of a 2-block transformer: maskc's SparseSelfAttention vs dense attention.

Model: 2 pre-norm blocks (LayerNorm -> attention -> residual, LayerNorm -> MLP 4E -> residual),
E = 64, H = 4 (head_dim 16), batch 4, float32; one step = forward + backward of
``out.square().mean()`` + SGD update. Attention variants, all with the same projections:

* ``sparse``: ``maskc.nn.SparseSelfAttention(E, H, pattern, backend="torch")``;
* ``mha``: ``torch.nn.MultiheadAttention(E, H, batch_first=True)`` with the pattern's dense
  bool mask as ``attn_mask`` (skipped where its N x N scores do not fit: see ``--mha-max``);
* ``sdpa``: ``F.scaled_dot_product_attention(is_causal=True)`` (full causal, no sparsity:
  the fused dense baseline).

Variants are timed round-robin (one step of each in turn), so machine load changes hit all
of them alike; each figure is the minimum of ``--steps`` warm steps, ratios come from the
same run (minimum over the timed steps). A configuration whose first step takes more than ``--budget`` seconds is not
timed further, and is reported as skipped, with that step's time.

    python benchmarks/train_step_cpu.py                           # N = 1024, 4096, 16384
    python benchmarks/train_step_cpu.py --sizes 1024 --steps 3 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import maskc as mc
from maskc.nn import SparseSelfAttention


def patterns(block: int, N: int, batch: int, seed: int = 0) -> dict[str, mc.Pattern]:
    """The benchmarked patterns at length N; the document mask has fresh random boundaries per sample."""
    bird = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.integers(0, max(N // 256, 1), size=(batch, N)), axis=1)  # ~256-token documents
    return {
        "causal window 128": mc.causal() & mc.window(128),
        "prime_bird (token level)": bird,
        f"prime_bird block-level ({block})": bird.at_block_level(block),
        "causal document mask (per sample)": mc.causal() & mc.document_mask(segment_ids=ids),
    }


def dense_attn_mask(pattern: mc.Pattern, N: int, batch: int, heads: int) -> torch.Tensor:
    """MHA's bool attn_mask (True = masked): [N, N], or [batch * heads, N, N] for a batched pattern."""
    m = pattern.dense(N)
    if m.ndim == 4:
        return ~torch.from_numpy(m).expand(batch, heads, N, N).reshape(batch * heads, N, N)
    return ~torch.from_numpy(m).reshape(N, N)


class _SDPA(nn.Module):
    def __init__(self, E: int, H: int):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(E, 3 * E)
        self.out = nn.Linear(E, E)

    def forward(self, x):
        B, N, E = x.shape
        q, k, v = (t.view(B, N, self.H, E // self.H).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, N, E))


class _MHA(nn.Module):
    def __init__(self, E: int, H: int, mask: torch.Tensor):
        super().__init__()
        self.mha = nn.MultiheadAttention(E, H, batch_first=True)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return self.mha(x, x, x, attn_mask=self.mask, need_weights=False)[0]


class _Sparse(nn.Module):
    def __init__(self, E: int, H: int, pattern: mc.Pattern, block: int):
        super().__init__()
        self.attn = SparseSelfAttention(E, H, pattern, backend="torch", block=block)

    def forward(self, x):
        return self.attn(x)[0]


class Model(nn.Module):
    """2 pre-norm transformer blocks around a given attention factory."""

    def __init__(self, E: int, make_attention):
        super().__init__()
        self.attn = nn.ModuleList(make_attention() for _ in range(2))
        self.norm1 = nn.ModuleList(nn.LayerNorm(E) for _ in range(2))
        self.norm2 = nn.ModuleList(nn.LayerNorm(E) for _ in range(2))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(E, 4 * E), nn.GELU(), nn.Linear(4 * E, E)) for _ in range(2))

    def forward(self, x):
        for a, n1, n2, m in zip(self.attn, self.norm1, self.norm2, self.mlp):
            x = x + a(n1(x))
            x = x + m(n2(x))
        return x


def _stepper(model: nn.Module, x: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def run_size(N: int, args) -> list[str]:
    E, H, B = 64, 4, args.batch
    torch.manual_seed(0)
    x = torch.randn(B, N, E)
    variants: dict[str, callable] = {"sdpa (is_causal, dense)": _stepper(Model(E, lambda: _SDPA(E, H)), x)}
    names = {}
    for pname, pat in patterns(args.block, N, B).items():
        if args.only and not any(o in pname for o in args.only):
            continue
        variants[f"sparse {pname}"] = _stepper(Model(E, lambda p=pat: _Sparse(E, H, p, args.block)), x)
        names[f"sparse {pname}"] = pname
        if N <= args.mha_max:
            mask = dense_attn_mask(pat, N, B, H)
            variants[f"mha {pname}"] = _stepper(Model(E, lambda m=mask: _MHA(E, H, m)), x)
            names[f"mha {pname}"] = pname
    times: dict[str, list[float]] = {k: [] for k in variants}
    skipped: dict[str, float] = {}
    for name, step in variants.items():  # warm-up (compiles layouts, allocator) and the budget check
        t = step()
        if t > args.budget:
            skipped[name] = t
        else:
            step()
    for _ in range(args.steps):
        for name, step in variants.items():
            if name not in skipped:
                times[name].append(step())
    med = {k: min(v) for k, v in times.items() if v}
    rows = []
    sdpa = med.get("sdpa (is_causal, dense)")
    for name in variants:
        if name in skipped:
            rows.append(f"| {N} | {name} | skipped: its first step took {skipped[name]:.1f} s (> --budget "
                        f"{args.budget:.0f} s) | | |")
            continue
        pname = names.get(name)
        mha = med.get(f"mha {pname}") if pname else None
        vs_mha = f"{mha / med[name]:.2f}x" if (mha and name.startswith("sparse")) else ""
        vs_sdpa = f"{sdpa / med[name]:.2f}x" if sdpa and name != "sdpa (is_causal, dense)" else ""
        rows.append(f"| {N} | {name} | {med[name] * 1e3:.0f} | {vs_mha} | {vs_sdpa} |")
    if N > args.mha_max:
        rows.append(f"| {N} | mha (dense bool mask) | not run: {B}x{H}x{N}x{N} float32 scores = "
                    f"{B * H * N * N * 4 / 2**30:.0f} GiB per layer (above --mha-max {args.mha_max}) | | |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed warm steps per variant (the minimum is reported)")
    ap.add_argument("--only", nargs="*", default=None, help="run only the patterns whose name contains one of these")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=30.0, help="skip a variant whose warm step takes longer (s)")
    ap.add_argument("--mha-max", type=int, default=4096, help="largest N for the dense-mask MultiheadAttention")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, E=64, H=4, batch {args.batch}, "
          f"block {args.block}, min of {args.steps} warm steps, variants timed round-robin, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| N | variant | ms / step | speed-up vs MHA (same mask) | speed-up vs SDPA causal |")
    print("|---|---|---|---|---|")
    for N in args.sizes:
        for row in run_size(N, args):
            print(row, flush=True)


if __name__ == "__main__":
    main()
