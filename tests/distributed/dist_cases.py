"""Layouts, inputs and the float64 reference shared by the distributed tests.

Cases travel to worker processes as plain numpy masks (``[batch, heads, N, N]`` bool) plus
a block size, and every process rebuilds the same Layout and the same random inputs from
a seed, so nothing but arrays crosses a process boundary.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from hypothesis import strategies as st

import maskc as mc
from maskc.backends import attention as maskc_attention


def _mask4(layout: mc.Layout) -> np.ndarray:
    d = layout.to_dense()
    return d[None] if d.ndim == 3 else d


def _documents(n: int, batch: int, seed: int, lo: int, hi: int) -> np.ndarray:
    """Causal packed-document masks, different boundaries per sample: bool [batch, 1, n, n]."""
    rng = np.random.default_rng(seed)
    out = np.zeros((batch, 1, n, n), bool)
    i = np.arange(n)
    for b in range(batch):
        cuts = np.cumsum(rng.integers(lo, hi + 1, size=n))
        seg = np.searchsorted(cuts[cuts < n], i, side="right")
        out[b, 0] = (seg[:, None] == seg[None, :]) & (i[None, :] <= i[:, None])
    return out


@functools.lru_cache(maxsize=1)
def named_cases() -> dict[str, dict]:
    """The issue's pattern families at test sizes: ``{name: case}`` (see :func:`case`; do not mutate)."""
    pb = mc.causal() & (mc.block_level(mc.window(0) | mc.offsets("primes"), 8) | mc.global_tokens(2))
    pi = mc.heads([mc.pi_ring(r=6), mc.pi_step(period=16)])
    return {
        "window": case(_mask4(mc.compile(mc.causal() & mc.window(13), q_len=200, block=16)), 16),
        "documents": case(_documents(160, 2, seed=3, lo=20, hi=50), 16, B=2),
        "prime_bird": case(_mask4(mc.compile(mc.prime_bird(window=3, global_tokens=2), q_len=128, block=8)), 8),
        "block_primes": case(_mask4(mc.compile(pb, q_len=256, block=8)), 8),
        "pi_attention": case(_mask4(mc.compile(pi, q_len=192, block=16)), 16, Hq=2, Hkv=1),
        "bigbird": case(_mask4(mc.compile(mc.bigbird(window=3, global_tokens=16, random_blocks=2, block=16),
                                          q_len=256, block=16)), 16),
    }


def case(mask: np.ndarray, block: int, B: int = 1, Hq: int | None = None, Hkv: int | None = None, D: int = 8,
         dtype: str = "float64", seed: int = 0) -> dict:
    """One test case: a 4-D mask, block size and tensor sizes."""
    Hq = Hq or max(mask.shape[1], 1)
    return {"mask": mask, "block": block, "B": B, "Hq": Hq, "Hkv": Hkv or Hq, "D": D, "dtype": dtype, "seed": seed}


def layout_of(c: dict) -> mc.Layout:
    m = c["mask"]
    if m.shape[0] == 1:
        return mc.Layout.from_dense(m[0], block=c["block"])
    return mc.Layout.from_dense(m, block=c["block"])


def inputs(c: dict) -> dict[str, np.ndarray]:
    """q, k, v and the output / lse cotangents of a case, float64 numpy, from its seed."""
    rng = np.random.default_rng(c["seed"])
    N = c["mask"].shape[-1]
    B, Hq, Hkv, D = c["B"], c["Hq"], c["Hkv"], c["D"]
    return {"q": rng.normal(size=(B, Hq, N, D)), "k": rng.normal(size=(B, Hkv, N, D)),
            "v": rng.normal(size=(B, Hkv, N, D)), "dout": rng.normal(size=(B, Hq, N, D)),
            "dlse": rng.normal(size=(B, Hq, N))}


def loss(out: torch.Tensor, lse: torch.Tensor, dout: torch.Tensor, dlse: torch.Tensor) -> torch.Tensor:
    """A scalar that reads out and lse (empty rows' -inf lse contribute nothing)."""
    finite = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return (out * dout).sum() + (finite * dlse.to(lse.dtype)).sum()


def reference(c: dict) -> dict[str, np.ndarray]:
    """out, lse and the gradients of :func:`loss` from maskc's float64 reference backend."""
    x = {k: torch.from_numpy(v) for k, v in inputs(c).items()}
    q, k, v = (x[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    m = c["mask"]
    outs, lses = [], []
    for b in range(c["B"]):  # one sample at a time: one layout per sample's mask
        lay = mc.Layout.from_dense(m[b if m.shape[0] > 1 else 0], block=c["block"])
        o, l = maskc_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], lay, backend="reference", return_lse=True)
        outs.append(o)
        lses.append(l)
    out, lse = torch.cat(outs), torch.cat(lses)
    loss(out, lse, x["dout"], x["dlse"]).backward()
    return {"out": out.detach().numpy(), "lse": lse.detach().numpy(), "dq": q.grad.numpy(),
            "dk": k.grad.numpy(), "dv": v.grad.numpy()}


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """||got - ref|| / ||ref|| over finite reference entries; inf if got has a NaN or disagrees on -inf."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if np.isnan(got).any() or not np.array_equal(np.isneginf(got), np.isneginf(ref)):
        return float("inf")
    fin = np.isfinite(ref)
    den = np.linalg.norm(ref[fin])
    return float(np.linalg.norm(got[fin] - ref[fin]) / den) if den else float(np.linalg.norm(got[fin]))


@st.composite
def random_cases(draw, min_blocks: int = 4):
    """Random masks with a random batch axis, heads (with GQA) and ragged tails."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    block = draw(st.sampled_from([4, 8]))
    N = draw(st.integers(min_blocks * block - block + 1, 10 * block))
    lb = draw(st.sampled_from([1, 2]))
    hl, hq, hkv = draw(st.sampled_from([(1, 1, 1), (1, 2, 1), (2, 2, 2), (2, 2, 1)]))
    density = draw(st.sampled_from([0.02, 0.15, 0.5]))
    mask = rng.random((lb, hl, N, N)) < density
    if draw(st.booleans()):
        mask &= np.tril(np.ones((N, N), bool))
    mask[..., rng.integers(0, N, size=2), :] = False  # some empty rows
    B = lb if lb > 1 else draw(st.sampled_from([1, 2]))
    return case(mask, block, B=B, Hq=hq, Hkv=hkv, seed=seed % 1000)
