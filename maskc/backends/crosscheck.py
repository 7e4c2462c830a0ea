"""Numerical cross-check of every backend against the float64 reference.

:func:`crosscheck` draws fresh random normal inputs (never zeros), rounds them to the
dtype under test, and runs every available backend (or those named) forward and, where
the backend has gradients, backward with a random upstream gradient. Each result is
compared with the float64 reference on the *same rounded inputs* (torch float64 autograd
through :mod:`maskc.backends.reference` for the gradients), by relative Frobenius error
``||x - ref|| / ||ref||`` (for dq and dk the denominator is at least ``||dv_ref||``,
see :func:`rel_err`). NaN never passes. A backend that cannot run is listed as
skipped with the reason; nothing is skipped silently.

Tolerances (relative error vs float64): float32 1e-5 (triton 1e-3: ``tl.dot`` may use
tf32), bfloat16 1e-2, float16 5e-3, float64 1e-10. A backend may override them with
``register(..., tolerance={...})``.

A plan (``mc.plan``) is checked part by part: each part's own run against the float64
reference over exactly its pairs, then the merged result against the whole pattern.

Example:
    >>> import maskc as mc
    >>> rep = mc.backends.crosscheck(mc.causal() & mc.window(8), backends=["reference", "scipy"],
    ...                              q_len=48, block=16)
    >>> rep.passed, [r.status for r in rep.rows]
    (True, ['pass', 'pass'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from maskc.backends.api import attention
from maskc.backends.checks import array_lib, validate_inputs, validate_scale
from maskc.backends.crosscheck_report import TOLERANCES, CrosscheckReport, CrosscheckRow, normalize_dtype, rel_err
from maskc.backends.formats import layout_format
from maskc.backends.reference import attention_reference, check_size
from maskc.backends.registry import Backend, get, names
from maskc.backends.selection import select
from maskc.compiler import compile as compile_pattern
from maskc.patterns.core import Pattern

__all__ = ["crosscheck", "CheckItem", "CrosscheckReport", "CrosscheckRow", "TOLERANCES", "normalize_dtype", "rel_err"]


# ------------------------------------------------------------------ running
def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
            "float64": torch.float64}[name]


def _pick_array(rec: Backend, dtype: str) -> tuple[str | None, str]:
    """The array library to feed a backend (torch preferred), or None and why not."""
    for lib in ("torch", "jax", "numpy"):
        if lib not in rec.arrays:
            continue
        if lib == "numpy" and dtype == "bfloat16":
            continue
        if lib == "jax" and dtype == "float64":
            import jax

            if not jax.config.jax_enable_x64:
                continue
        return lib, ""
    if "numpy" in rec.arrays and dtype == "bfloat16":
        return None, "numpy has no bfloat16"
    if "jax" in rec.arrays and dtype == "float64":
        return None, "jax float64 needs jax.config.update('jax_enable_x64', True)"
    return None, f"takes {'/'.join(rec.arrays)} arrays"


def _pick_device(rec: Backend, lib: str, device: str | None) -> tuple[str | None, str]:
    if lib == "numpy":
        return ("cpu", "") if "cpu" in rec.devices else (None, f"runs on {'/'.join(rec.devices)} only")
    if lib == "jax":
        import jax

        plat = jax.default_backend()
        ok = plat in rec.devices or (plat == "gpu" and "cuda" in rec.devices)
        return (plat, "") if ok else (None, f"runs on {'/'.join(rec.devices)}, jax default backend is {plat}")
    import torch

    if device is not None:
        dt = device.split(":")[0]
        return (device, "") if dt in rec.devices else (None, f"runs on {'/'.join(rec.devices)}, asked for {device}")
    if "cuda" in rec.devices and torch.cuda.is_available():
        return "cuda", ""
    if "cpu" in rec.devices:
        return "cpu", ""
    return None, f"runs on {'/'.join(rec.devices)} only and no CUDA device is available"


def _to_numpy64(x) -> np.ndarray:
    if array_lib(x) == "torch":
        return x.detach().to("cpu", dtype=_torch_dtype("float64")).numpy()
    return np.asarray(x).astype(np.float64)


def _as_lib(x64, lib: str, dtype: str, device: str):
    """Convert a torch float64 CPU tensor (already representable in dtype) to lib/dtype/device."""
    if lib == "torch":
        return x64.to(device=device, dtype=_torch_dtype(dtype))
    if lib == "numpy":
        return x64.numpy().astype(dtype)
    import jax.numpy as jnp

    src = x64.numpy() if dtype == "float64" else x64.numpy().astype(np.float32)
    return jnp.asarray(src, dtype=getattr(jnp, dtype))


def _build_layout(layout_or_pattern, q_len, kv_len, block):
    if layout_format(layout_or_pattern) is not None:
        lay = layout_or_pattern
        if q_len is not None and q_len != lay.q_len:
            raise ValueError(f"q_len={q_len} does not match the layout's q_len={lay.q_len}; leave q_len unset")
        if kv_len is not None and kv_len != lay.kv_len:
            raise ValueError(f"kv_len={kv_len} does not match the layout's kv_len={lay.kv_len}; leave kv_len unset")
        return lay
    if isinstance(layout_or_pattern, Pattern):
        q = 128 if q_len is None else int(q_len)
        return compile_pattern(layout_or_pattern, q_len=q, kv_len=kv_len, block=block, heads=layout_or_pattern.n_heads)
    raise TypeError(
        f"crosscheck takes a maskc.Layout, a DiagonalLayout, a Pattern or a Plan, got {type(layout_or_pattern).__name__}"
    )


@dataclass(frozen=True)
class CheckItem:
    """One thing a plan asks :func:`crosscheck` to compare: ``run(q, k, v, scale) -> (out, lse)``
    against the float64 reference over ``layout`` (on query head ``head`` only, when set)."""

    name: str
    run: Callable[..., tuple[Any, Any]]
    layout: Any
    head: int | None = None


class _Inputs:
    """Fresh random inputs rounded to the dtype under test (kept in float64), and the float64 truth."""

    def __init__(self, gen, tdt, B, H, Hkv, q_len, kv_len, D):
        import torch

        def draw(*shape):
            return torch.randn(*shape, generator=gen, dtype=torch.float64).to(tdt).to(torch.float64)

        self.q, self.k, self.v, self.g = (draw(B, H, q_len, D), draw(B, Hkv, kv_len, D), draw(B, Hkv, kv_len, D),
                                          draw(B, H, q_len, D))

    def head(self, h: int | None):
        """(q, k, v, g) of query head h (its K/V head under GQA), or all of them."""
        if h is None:
            return self.q, self.k, self.v, self.g
        hk = h // (self.q.shape[1] // self.k.shape[1])
        return self.q[:, h:h + 1], self.k[:, hk:hk + 1], self.v[:, hk:hk + 1], self.g[:, h:h + 1]


def _truth(q64, k64, v64, g64, layout, scale) -> dict[str, np.ndarray]:
    qr, kr, vr = (x.clone().requires_grad_(True) for x in (q64, k64, v64))
    ref_out, ref_lse = attention_reference(qr, kr, vr, layout, scale=scale, keep_float64=True)
    (ref_out * g64).sum().backward()
    return {"out": ref_out.detach().numpy(), "lse": ref_lse.detach().numpy(),
            "dq": qr.grad.numpy(), "dk": kr.grad.numpy(), "dv": vr.grad.numpy()}


def _judge(row: CrosscheckRow, got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> CrosscheckRow:
    dv_norm = float(np.linalg.norm(ref["dv"]))
    for n, x in got.items():
        setattr(row, n, rel_err(x, ref[n], floor=dv_norm if n in ("dq", "dk") else 0.0))
    bad = [f"{n} {e:.2e}" for n, e in row.errors().items() if not (e <= row.tol)]  # NaN fails
    row.status = "fail" if bad else "pass"
    if bad:
        row.reason = f"above tolerance {row.tol:.0e}: {', '.join(bad)}"
    return row


def _torch_run(fn, inputs, dt, dev, grads):
    """Run ``fn(q, k, v) -> (out, lse)`` on torch copies of the float64 inputs; errors measured after."""
    q64, k64, v64, g64 = inputs
    q, k, v = (_as_lib(x, "torch", dt, dev) for x in (q64, k64, v64))
    if grads:
        for x in (q, k, v):  # before the call: selection looks at requires_grad
            x.requires_grad_(True)
    out, lse = fn(q, k, v)
    got: dict[str, np.ndarray] = {}
    if grads:
        (out * g64.to(device=dev, dtype=out.dtype)).sum().backward()
        for n, x in (("dq", q), ("dk", k), ("dv", v)):
            if x.grad is None:
                raise RuntimeError(f"{n} is None after backward: the result is not differentiable")
            got[n] = _to_numpy64(x.grad)
    got["out"], got["lse"] = _to_numpy64(out), _to_numpy64(lse)
    return got


def crosscheck(
    layout_or_pattern,
    backends: Sequence[str] | str | None = None,
    dtype: str = "float32",
    seed: int = 0,
    grads: bool = True,
    batch: int = 1,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int = 32,
    q_len: int | None = None,
    kv_len: int | None = None,
    block: int | tuple[int, int] = 32,
    device: str | None = None,
    scale: float | None = None,
) -> CrosscheckReport:
    """Run every (or the named) backend on fresh random inputs against the float64 reference.

    Args:
        layout_or_pattern: a Layout, a DiagonalLayout, a Pattern compiled with ``q_len``
            (default 128), ``kv_len`` (default q_len) and ``block`` (default 32), or a
            Plan (``mc.plan``): then every part and the merged result are checked, each
            against the float64 reference over its own exact pairs (``backends``: at most
            one name, the backend of the plan's block-sparse parts).
        backends: names (list or comma-separated string); default every registered one.
        dtype: "float32", "bfloat16", "float16" or "float64" (aliases fp32, bf16, ...).
        seed: seeds the inputs and the upstream gradient.
        grads: also compare dq, dk, dv for backends with gradients.
        batch, heads, kv_heads, head_dim: input sizes; heads defaults to the layout's
            heads (2 for a broadcast layout), kv_heads to heads (set it lower for GQA).
        device: torch device for torch backends (default: cuda when the backend runs
            there and it exists, else cpu).
        scale: score scale (default 1/sqrt(head_dim)).

    Returns:
        A :class:`CrosscheckReport`; ``report.passed`` is the verdict.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((40, 40), bool)), block=16)
        >>> rep = mc.backends.crosscheck(lay, backends="jax", heads=4, kv_heads=2)
        >>> rep.row("jax").status, rep.row("jax").dq < 1e-5
        ('pass', True)
    """
    import torch

    dt = normalize_dtype(dtype)
    if isinstance(backends, str):
        backends = [b.strip() for b in backends.split(",") if b.strip()]
    is_plan = layout_format(layout_or_pattern) is None and callable(getattr(layout_or_pattern, "__maskc_crosscheck__", None))
    if is_plan:
        lay = layout_or_pattern
        if backends is not None and len(backends) > 1:
            raise ValueError(f"crosscheck of a plan takes at most one backend (for its block-sparse parts), got {backends}")
        plan_heads = None if getattr(lay, "shared", True) else len(lay.heads)
    else:
        lay = _build_layout(layout_or_pattern, q_len, kv_len, block)
        plan_heads = None
    todo = list(names()) if backends is None else list(backends)
    for b in todo:
        get(b)  # unknown names fail here, listing the known ones
    stored = plan_heads or (lay.heads if not is_plan else 1)
    H = int(heads) if heads is not None else (stored if stored > 1 else 2)
    Hkv = H if kv_heads is None else int(kv_heads)
    B, D = int(batch), int(head_dim)
    for what, n in (("batch", B), ("heads", H), ("kv_heads", Hkv), ("head_dim", D)):
        if n < 1:
            raise ValueError(f"crosscheck: {what} must be at least 1, got {n}")
    # refuse sizes the float64 truth cannot hold before drawing any input
    check_size(lay, B, H, Hkv, D, grad=bool(grads))
    gen = torch.Generator().manual_seed(int(seed))
    inp = _Inputs(gen, _torch_dtype(dt), B, H, Hkv, lay.q_len, lay.kv_len, D)
    if not is_plan:
        validate_inputs(inp.q, inp.k, inp.v, lay)  # wrong sizes fail here, before any backend
    s = validate_scale(scale, D)
    shapes = f"q [{B}, {H}, {lay.q_len}, {D}], k/v [{B}, {Hkv}, {lay.kv_len}, {D}]"
    if is_plan:
        rows = _check_plan(lay, todo[0] if backends else "auto", dt, inp, s, grads, device)
        return CrosscheckReport(rows, repr(lay), shapes, dt, int(seed), bool(grads), {})
    ref = _truth(inp.q, inp.k, inp.v, inp.g, lay, s)
    rows = [_check_one(get(name), lay, dt, inp.head(None), ref, s, grads, device) for name in todo]
    auto = _auto_choices(lay, dt, (inp.q, inp.k, inp.v))
    return CrosscheckReport(rows, repr(lay), shapes, dt, int(seed), bool(grads), auto)


def _check_plan(plan, backend: str, dt: str, inp: _Inputs, scale: float, grads: bool, device) -> list[CrosscheckRow]:
    """One row per part (and the merged result): the part's own run against float64 over its exact pairs."""
    dev = device or "cpu"
    tol = TOLERANCES[dt] if backend == "auto" else get(backend).tolerance.get(dt, TOLERANCES[dt])
    rows = []
    for item in plan.__maskc_crosscheck__(backend=backend):
        row = CrosscheckRow(item.name, dt, "skipped", tol=tol, array="torch", device=dev)
        inputs = inp.head(item.head)
        try:
            ref = _truth(*inputs, item.layout, scale)
            got = _torch_run(lambda q, k, v: item.run(q, k, v, scale), inputs, dt, dev, bool(grads))
        except Exception as e:  # noqa: BLE001 - a crashing part is a failed row, with the reason
            row.status, row.reason = "error", f"{type(e).__name__}: {e}"
        else:
            _judge(row, got, ref)
        rows.append(row)
    return rows


def _auto_choices(lay, dt: str, inputs) -> dict[str, str]:
    """What backend="auto" picks for these inputs as torch (cpu), numpy and jax arrays."""
    auto: dict[str, str] = {}
    for lib in ("torch", "numpy", "jax"):
        if lib == "numpy" and dt == "bfloat16":
            continue
        if lib == "jax":
            try:
                import jax  # noqa: F401
            except ImportError:
                continue
            if dt == "float64" and not jax.config.jax_enable_x64:
                continue
        try:
            arrs = tuple(_as_lib(x, lib, dt, "cpu") for x in inputs)
            auto[lib] = select(validate_inputs(*arrs, lay), arrs[0], "auto", lay).name
        except Exception as e:  # noqa: BLE001 - reported, never fatal
            auto[lib] = f"none ({type(e).__name__}: {e})"
    return auto


def _check_one(rec: Backend, lay, dt, inputs, ref, scale, grads, device) -> CrosscheckRow:
    row = CrosscheckRow(rec.name, dt, "skipped")
    ok, reason = rec.status()
    if not ok:
        row.reason = f"unavailable: {reason}"
        return row
    if rec.dtypes is not None and dt not in rec.dtypes:
        row.reason = f"does not support {dt} (supports {', '.join(rec.dtypes)})"
        return row
    fmt = layout_format(lay)
    if fmt not in rec.formats:
        row.reason = f"takes {'/'.join(rec.formats)} layouts, not {fmt}"
        return row
    lib, why = _pick_array(rec, dt)
    if lib is None:
        row.reason = why
        return row
    dev, why = _pick_device(rec, lib, device)
    if dev is None:
        row.reason = why
        return row
    row.array, row.device = lib, dev
    q64, k64, v64, g64 = inputs
    dev_type = dev.split(":")[0]
    do_grads = bool(grads) and rec.grads_on(dev_type) and lib in ("torch", "jax")
    try:
        q, k, v = (_as_lib(x, lib, dt, dev) for x in (q64, k64, v64))
        if do_grads and lib == "torch":
            for x in (q, k, v):  # before validation: selection looks at requires_grad
                x.requires_grad_(True)
        info = validate_inputs(q, k, v, lay)
        ok, why = rec.accepts(info, q, lay, auto=False)
        if not ok:
            row.reason = f"cannot run this case: {why}"
            return row
        row.tol = rec.tolerance.get(dt, TOLERANCES[dt])

        def run(q, k, v):
            return attention(q, k, v, lay, backend=rec.name, scale=scale, return_lse=True)

        if lib == "torch":
            got = _torch_run(run, inputs, dt, dev, do_grads)
        elif lib == "jax" and do_grads:
            import jax

            (out, lse), vjp = jax.vjp(run, q, k, v)
            g = _as_lib(g64, "jax", dt, dev)
            dq, dk, dv = vjp((g.astype(out.dtype), jax.numpy.zeros_like(lse)))
            got = dict(dq=_to_numpy64(dq), dk=_to_numpy64(dk), dv=_to_numpy64(dv), out=_to_numpy64(out),
                       lse=_to_numpy64(lse))
        else:
            out, lse = run(q, k, v)
            got = {"out": _to_numpy64(out), "lse": _to_numpy64(lse)}
    except Exception as e:  # noqa: BLE001 - a crashing backend is a failed row, with the reason
        row.tol = rec.tolerance.get(dt, TOLERANCES[dt])
        row.status = "error"
        row.reason = f"{type(e).__name__}: {e}"
        return row
    _judge(row, got, ref)
    if grads and not do_grads:
        why = "numpy arrays have no autodiff" if lib == "numpy" else f"no gradients on {dev_type}"
        row.reason = "; ".join(x for x in (row.reason, f"forward only ({why})") if x)
    return row
