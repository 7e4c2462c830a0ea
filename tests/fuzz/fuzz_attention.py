"""Seeded attention cases for fuzzing: a random layout (a random DSL pattern compiled, or a
random dense mask), random inputs (batch, grouped heads, lengths, dtype, scale; NaN or inf
written at keys no row attends, and rows that attend nothing) run on every block-layout CPU
backend and compared with an independent float64 softmax over ``pattern.dense`` (or the
mask), plus malformed inputs that must be refused with a documented error.

Example:
    >>> import random
    >>> from collections import Counter
    >>> seen = Counter()
    >>> check_attention(random.Random(3), seen, backends=("reference", "scipy"))
    'compared'
    >>> seen["reference"] + seen["scipy"]
    2
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np

import maskc as mc
import maskc.backends as mb

#: (backend, array library) pairs of the block-layout backends that run on a CPU.
CPU_BACKENDS: tuple[str, ...] = ("reference", "reference-torch", "scipy", "torch", "flex", "jax", "triton")
TOLERANCE = {"float32": 1e-5, "float64": 1e-9}
#: Lengths and head sizes come from short lists so jit-compiling backends (jax, flex) reuse kernels.
LENGTHS = (1, 5, 16, 24, 33, 48)
HEAD_DIMS = (1, 4, 16)
TRITON_TOLERANCE = 1e-3  # Triton's dot runs at tf32 precision
#: Share of cases each slow backend runs (flex and jax compile per layout on a CPU, ~2-3 s a case;
#: Triton runs in its CPU interpreter); the others run every case.
SHARE = {"flex": 0.1, "jax": 0.1, "triton": 0.3}
PATTERNS = ["causal()", "window(3, 1)", "causal() & window(5)", "offsets('primes') | window(0)", "stride(3)",
            "document_mask([3, 7, 11])", "segments([4, 9]) - window(0)", "global_tokens(2) | causal() & stride(4)",
            "heads([causal(), window(2), full()])", "rows([0, 5, 9]) | cols('squares')", "sums('paley_residues')",
            "block_level(causal(), 8) & window(12)", "~causal()", "prime_bird(1, 1)", "full() - window(40, 40)"]


def softmax64(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    """Masked softmax attention in float64, computed independently of maskc (grouped heads repeated)."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, 1), np.repeat(v, group, 1)
    s = np.where(mask, np.einsum("bhid,bhjd->bhij", q, k) * scale, -np.inf)
    mx = s.max(-1, keepdims=True, initial=-np.inf)
    p = np.exp(s - np.where(np.isfinite(mx), mx, 0))
    z = p.sum(-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p / np.where(z > 0, z, 1), np.where(p.sum(-2)[..., None] > 0, v, 0))


def _as(x: np.ndarray, backend: str) -> Any:
    if backend in ("reference", "scipy"):
        return x
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x)
    import torch

    return torch.from_numpy(x)


def _np(x: Any) -> np.ndarray:
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


def random_case(rng: random.Random) -> tuple[Any, np.ndarray, int, int]:
    """(layout, mask [B or 1, H or 1, q, kv], batch, heads) for one case."""
    q_len, kv_len = rng.choice(LENGTHS), rng.choice(LENGTHS)
    block = rng.choice([1, 4, 8, 16, 16, 32, (8, 16), (16, 4)])
    B, H = rng.choice([1, 1, 2]), rng.choice([1, 2, 3, 4])
    if rng.random() < 0.6:
        p = mc.parse(rng.choice(PATTERNS))
        H = p.n_heads or H
        off = rng.randint(0, 16) if rng.random() < 0.3 else 0
        lay = mc.compile(p, q_len=q_len, kv_len=kv_len + off, q_offset=off, block=block)
        mask = p.dense(q_len, kv_len + off, q_offset=off)[None]
    else:
        g = np.random.default_rng(rng.randrange(2**32))
        shape = (rng.choice([1, B]), rng.choice([1, H]), q_len, kv_len)
        mask = g.random(shape) < rng.choice([0.05, 0.3, 0.8])
        lay = mc.Layout.from_dense(mask if shape[0] > 1 else mask[0], block)
    return lay, mask, (lay.batch if lay.batch > 1 else B), H


def check_attention(rng: random.Random, seen: Counter, backends: tuple[str, ...] = CPU_BACKENDS) -> str:
    """One valid case on every backend in ``backends`` (each compared with float64)."""
    lay, mask, B, H = random_case(rng)
    kv_heads = rng.choice([h for h in (1, H) if H % h == 0])
    D = rng.choice(HEAD_DIMS)
    g = np.random.default_rng(rng.randrange(2**32))
    q = g.normal(size=(B, H, lay.q_len, D))
    k, v = (g.normal(size=(B, kv_heads, lay.kv_len, D)) for _ in range(2))
    unattended = ~mask.any(axis=(0, 1, 2))
    if unattended.any() and rng.random() < 0.7:  # poison keys no row may attend
        k[..., unattended, :] = rng.choice([np.nan, np.inf, 1e30])
        v[..., unattended, :] = rng.choice([np.nan, -np.inf, 1e300])
    scale = rng.choice([None, 0.1, 1.0, 3.0])
    s = 1 / np.sqrt(D) if scale is None else scale
    want = softmax64(q, k, v, mask, s)
    empty = ~mask.any(-1)
    dtype = rng.choice(["float32", "float64"])
    for name in backends:
        backend = name.split("-")[0]
        if rng.random() >= SHARE.get(name, 1.0):
            continue
        if name == "triton" and (dtype != "float32" or D < 16 or lay.block_q < 16 or lay.block_k < 16):
            continue  # Triton takes float32 with power-of-two blocks and head_dim of at least 16
        ok, why = mb.available()[backend]
        assert ok, f"{backend} unavailable: {why}"
        arr = _as if name != "reference-torch" else (lambda x, _b: _as(x, "torch"))
        args = [arr(np.ascontiguousarray(x.astype(dtype)), backend) for x in (q, k, v)]
        out, lse = mb.attention(*args, lay, backend=backend, scale=scale, return_lse=True)
        got, lse = _np(out).astype(np.float64), _np(lse)
        used = str(args[0].dtype).split(".")[-1]  # jax without x64 holds float64 input as float32
        tol = TRITON_TOLERANCE if name == "triton" else TOLERANCE[used]
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
        assert np.isfinite(got).all(), f"{name} {dtype}: non-finite output ({lay!r})"
        assert err < tol, f"{name} {used}: relative error {err:.2e} >= {tol} ({lay!r}, D={D})"
        e = np.broadcast_to(empty, got.shape[:3])
        assert (got[e] == 0).all() and np.isneginf(lse[e]).all(), f"{name}: empty rows not exactly 0 / -inf"
        seen[name] += 1
        seen[f"{name} {used}"] += 1
    return "compared"


def bad_input_case(rng: random.Random) -> None:
    """A malformed call (wrong rank, length, dtype mix, head count, scale, layout): must raise."""
    lay = mc.compile(mc.causal(), q_len=16, block=8)
    g = np.random.default_rng(rng.randrange(2**32))
    q, k, v = (g.normal(size=(1, 2, 16, 8)).astype(np.float32) for _ in range(3))
    op = rng.randrange(8)
    if op == 0:
        q = q[0]
    elif op == 1:
        k = k[:, :, :9]
    elif op == 2:
        v = v.astype(np.float64)  # (jax without x64 would hold it as float32: not a mix there)
    elif op == 3:
        k, v = k[:, :1].repeat(3, 1), v[:, :1].repeat(3, 1)
    elif op == 4:
        q = np.swapaxes(q, 2, 3).copy()
    elif op == 5:
        lay = rng.choice(["causal()", None, np.ones((16, 16), bool), 3])
    elif op == 6:
        v = v.astype(np.int32)
    kwargs = {"scale": rng.choice([float("nan"), float("inf"), "x"])} if op == 7 else {}
    name = rng.choice(["reference", "scipy", "torch", "flex", "jax", "auto"] if op != 2 else ["reference", "torch"])
    args = [_as(x, "torch" if name in ("torch", "flex") else name) for x in (q, k, v)]
    mb.attention(*args, lay, backend=name, **kwargs)
    raise AssertionError(f"malformed input op={op} on {name} was accepted")
