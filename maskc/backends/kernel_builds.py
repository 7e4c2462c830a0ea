"""What :mod:`maskc.backends.kernel_report` compiles: every launch configuration of maskc's kernels.

A :class:`Spec` is one compiled variant: kernel, dtype, head dim, tile, warps, stages
(and the layout blocks it serves). Lengths, head counts, GQA group, batch and layout
slices are runtime integers the kernels never specialise on, so one build covers them
all. :func:`launch_args` produces the exact arguments the launcher passes, with meta
tensors (no memory) laid out like ``[B, L, H, D]`` activations viewed as ``[B, H, L, D]``.

Example:
    >>> s = [s for s, arch in specs("ci") if arch == 90 and s.kernel == "fwd"][0]
    >>> s.dtype, s.head_dim, s.tile, s.blocks
    ('bfloat16', 64, (64, 64), ((64, 64),))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from maskc.backends import triton_configs as tc
from maskc.backends.triton_backend import block_d

DTYPES: tuple[str, ...] = ("bfloat16", "float16", "float32")
MATMUL_KERNELS: tuple[str, ...] = ("fwd", "dq", "dkdv")
SCOPES = {
    # the configurations the launchers pick for the usual shapes (CI)
    "ci": dict(head_dims=(64, 128), blocks=((64, 64), (128, 128)), autotune=False, dia_dims=(64, 128)),
    # every head dim class, every block pair, every autotune candidate
    "all": dict(head_dims=(16, 24, 32, 48, 64, 80, 96, 128),
                blocks=tuple((q, k) for q in (16, 32, 64, 128, 256) for k in (16, 32, 64, 128, 256)),
                autotune=True, dia_dims=(16, 32, 64, 128, 256)),
}
_L = 8192  # representative sequence length (runtime, unspecialised)


@dataclass(frozen=True)
class Spec:
    """One compiled variant of one kernel."""

    kernel: str
    dtype: str
    head_dim: int
    tile: tuple[int, int]  #: (BLOCK_M, BLOCK_N); DIA kernels: (BLOCK_M, 0)
    num_warps: int
    num_stages: int
    blocks: tuple[tuple[int, int], ...] = ()  #: layout blocks launched with this variant
    exact: bool = False  #: the rare exact redo of rows whose result was not finite
    maxnreg: int | None = None  #: ptxas register cap passed at launch (None: ptxas decides)

    @property
    def mma_rows(self) -> int:
        """Rows of the kernel's tile matmuls (wgmma needs 64)."""
        return self.tile[1] if self.kernel == "dkdv" else self.tile[0]

    def identity(self) -> tuple:
        return (self.kernel, self.dtype, block_d(self.head_dim), self.head_dim == block_d(self.head_dim),
                self.tile, self.num_warps, self.num_stages, self.exact, self.maxnreg)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        return cls(**{**d, "tile": tuple(d["tile"]), "blocks": tuple(tuple(b) for b in d["blocks"])})


def specs(scope: str = "ci") -> list[tuple[Spec, int]]:
    """Every distinct ``(Spec, cc)`` of ``scope`` for cc 90 (sm_90a) and 80 (sm_80)."""
    from maskc.backends.dia_triton import dia_config  # imports torch and triton

    sc = SCOPES[scope]
    found: dict[tuple, tuple[Spec, int]] = {}

    def add(spec: Spec, cc: int) -> None:
        key = (spec.identity(), cc)
        if key in found:
            old = found[key][0]
            blocks = old.blocks + tuple(b for b in spec.blocks if b not in old.blocks)
            found[key] = (Spec(**{**old.to_dict(), "blocks": blocks}), cc)
        else:
            found[key] = (spec, cc)

    for cc in (90, 80):
        for dt in DTYPES:
            for d in sc["head_dims"]:
                bd = block_d(d)
                for kernel in MATMUL_KERNELS:
                    for bq, bk in sc["blocks"]:
                        cands = tc.space if sc["autotune"] else lambda *a: [tc.pick(*a)]
                        for c in cands(kernel, cc, dt, bd, bq, bk):
                            for ex, cx in ((False, c), (True, tc.exact(kernel, c))):
                                add(Spec(kernel, dt, d, (cx.block_m, cx.block_n), cx.num_warps, cx.num_stages,
                                         ((bq, bk),), ex, cx.maxnreg), cc)
                add(Spec("delta", dt, d, (64, 0), 4, 1), cc)
            for d in sc["dia_dims"]:
                for n in ((64,) if scope == "ci" else (16, 32, 64)):
                    bm, warps = dia_config(n, d)
                    for kernel in ("dia_fwd", "dia_dq", "dia_dkdv"):
                        add(Spec(kernel, dt, d, (bm, 0), warps, 1), cc)
    return list(found.values())


def launch_args(spec: Spec):
    """``(kernel function, args, kwargs)`` of ``spec``'s launch, built from meta tensors."""
    import torch

    from maskc.backends import dia_triton
    from maskc.backends import triton_backend as tb

    dt = getattr(torch, spec.dtype)
    B, Hq, Hkv, D = 1, 16, 4, spec.head_dim

    def act(h: int, dtype=dt):  # a [B, L, H, D] projection viewed as [B, H, L, D]
        return torch.empty(B, _L, h, D, dtype=dtype, device="meta").transpose(1, 2)

    kw = dict(num_warps=spec.num_warps, num_stages=spec.num_stages, maxnreg=spec.maxnreg)
    if spec.kernel.startswith("dia_"):
        t = dict(q=act(Hq), k=act(Hkv), v=act(Hkv), o=act(Hq), do=act(Hq), dq=act(Hq))
        t["lse"] = t["delta"] = torch.empty(B, Hq, _L, device="meta")
        t["dk"] = t["dv"] = torch.empty(B, Hq, _L, D, device="meta")
        offs = torch.empty(8, dtype=torch.int32, device="meta")
        fn, _, args, consts, warps = dia_triton.launch(spec.kernel[4:], t, offs, 0.1)
        return fn, args, {**consts, "BLOCK_M": spec.tile[0], **kw}
    lse = torch.empty(B, Hq, _L, device="meta")
    if spec.kernel == "delta":
        fn, _, args, consts, _ = tb.delta_launch(act(Hq), act(Hq), lse, lse, torch.empty_like(lse))
        return fn, args, {**consts, "BLOCK_M": spec.tile[0], **kw}
    bq, bk = spec.blocks[0]
    i32 = torch.empty(64, dtype=torch.int32, device="meta")
    arrays = {k: i32 for k in ("row_ptr", "row_mid", "col_idx", "part_id", "col_ptr", "col_mid", "row_idx",
                               "c_part_id", "masks")}
    arrays["mask_w"] = -(-bk // 32)
    geo = dict(BQ=bq, BK=bk, n_qb=_L // bq, n_kb=_L // bk, slice_b=0, slice_h=1)
    t = dict(q=act(Hq), k=act(Hkv), v=act(Hkv), out=act(Hq), do=act(Hq), lse=lse, delta=lse,
             dq=act(Hq), dk=act(Hkv), dv=act(Hkv), flags=torch.empty(B, Hq, _L, dtype=torch.int8, device="meta"),
             kv_flags=torch.empty(B, Hkv, _L, dtype=torch.int8, device="meta"))
    cfg = tc.TileConfig(spec.tile[0], spec.tile[1], spec.num_warps, spec.num_stages, spec.maxnreg)
    fn, _, args, consts = tb.launches(spec.kernel, t, arrays, geo, 0.1, cfg, spec.exact)
    return fn, args, {**consts, **kw}
