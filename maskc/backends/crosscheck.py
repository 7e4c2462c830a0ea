"""Numerical cross-check of every backend against the float64 reference.

:func:`crosscheck` draws fresh random normal inputs (never zeros), rounds them to the
dtype under test, and runs every available backend (or those named) forward and, where
the backend has gradients, backward with a random upstream gradient. Each result is
compared with the float64 reference on the *same rounded inputs* (torch float64 autograd
through :mod:`maskc.backends.reference` for the gradients), by relative Frobenius error
``||x - ref|| / ||ref||`` (for dq and dk the denominator is at least ``||dv_ref||``,
see :func:`rel_err`). NaN never passes. A backend that cannot run is listed as
skipped with the reason; nothing is skipped silently.

Tolerances (relative error vs float64, DESIGN.md): float32 1e-5 (triton 1e-3: ``tl.dot``
may use tf32), bfloat16 1e-2, float16 5e-3, float64 1e-10. A backend may override them
with ``register(..., tolerance={...})``.

Example:
    >>> import maskc as mc
    >>> rep = mc.backends.crosscheck(mc.causal() & mc.window(8), backends=["reference", "scipy"],
    ...                              q_len=48, block=16)
    >>> rep.passed, [r.status for r in rep.rows]
    (True, ['pass', 'pass'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from maskc.backends.registry import Backend, get, names

#: Default relative-error tolerances against the float64 reference, by dtype.
TOLERANCES: dict[str, float] = {"float32": 1e-5, "bfloat16": 1e-2, "float16": 5e-3, "float64": 1e-10}

_ALIASES = {
    "fp32": "float32", "f32": "float32", "float": "float32",
    "bf16": "bfloat16", "fp16": "float16", "f16": "float16", "half": "float16",
    "fp64": "float64", "f64": "float64", "double": "float64",
}


def normalize_dtype(dtype: Any) -> str:
    """'float32', 'bfloat16', 'float16' or 'float64' from a name, alias, numpy or torch dtype."""
    name = str(dtype).replace("torch.", "")
    name = _ALIASES.get(name, name)
    if name not in TOLERANCES:
        raise ValueError(f"dtype must be one of {', '.join(TOLERANCES)} (or fp32/bf16/fp16/fp64), got {dtype!r}")
    return name


def rel_err(x: np.ndarray, ref: np.ndarray, floor: float = 0.0) -> float:
    """``||x - ref|| / max(||ref||, floor)`` in float64 (absolute when both are 0); NaN if x has NaN.

    ``floor`` is a norm of the natural size of the quantity: crosscheck passes
    ``||dv_ref||`` for dq and dk, which are exactly 0 when every row has one key (softmax
    is then constant), so rounding noise is not divided by zero.

    Positions where ref is -inf (lse of rows without keys) must be -inf in x too (else
    the error is inf) and are left out of the norms.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape:
        return math.inf
    if np.isnan(x).any():
        return math.nan
    ninf = np.isneginf(ref)
    if not np.array_equal(ninf, np.isneginf(x)):
        return math.inf
    x, ref = x[~ninf], ref[~ninf]
    if not np.isfinite(x).all():
        return math.inf
    den = max(float(np.linalg.norm(ref)), float(floor))
    num = float(np.linalg.norm(x - ref))
    return num / den if den > 0 else num


@dataclass
class CrosscheckRow:
    """One backend's result. Errors are None where not measured (no grads, skipped)."""

    backend: str
    dtype: str
    status: str  #: "pass", "fail", "error" or "skipped"
    tol: float | None = None
    out: float | None = None
    lse: float | None = None
    dq: float | None = None
    dk: float | None = None
    dv: float | None = None
    array: str = ""
    device: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True unless the backend ran and failed (or raised)."""
        return self.status in ("pass", "skipped")

    def errors(self) -> dict[str, float]:
        """The measured relative errors by name."""
        return {n: getattr(self, n) for n in ("out", "lse", "dq", "dk", "dv") if getattr(self, n) is not None}


@dataclass
class CrosscheckReport:
    """The result of :func:`crosscheck`: one :class:`CrosscheckRow` per backend.

    ``passed`` is True when at least one backend ran and none failed; ``auto`` records
    which backend ``backend="auto"`` picks for these inputs per array library.
    """

    rows: list[CrosscheckRow]
    layout: str
    shapes: str
    dtype: str
    seed: int
    grads: bool
    auto: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No failure and at least one backend compared."""
        return all(r.ok for r in self.rows) and any(r.status == "pass" for r in self.rows)

    @property
    def failed(self) -> list[CrosscheckRow]:
        """Rows that failed or raised."""
        return [r for r in self.rows if not r.ok]

    @property
    def skipped(self) -> list[CrosscheckRow]:
        """Rows that did not run, each with its reason."""
        return [r for r in self.rows if r.status == "skipped"]

    def row(self, backend: str) -> CrosscheckRow:
        """The row of one backend (KeyError if it was not checked)."""
        for r in self.rows:
            if r.backend == backend:
                return r
        raise KeyError(f"backend {backend!r} is not in this report; checked: {', '.join(r.backend for r in self.rows)}")

    _COLS = ("backend", "dtype", "array", "out", "lse", "dq", "dk", "dv", "tol", "result")

    def _cells(self, r: CrosscheckRow) -> list[str]:
        def f(x):
            return "-" if x is None else ("nan" if isinstance(x, float) and math.isnan(x) else f"{x:.1e}")

        result = r.status.upper() if r.status != "skipped" else "skipped"
        return [r.backend, r.dtype, f"{r.array}:{r.device}" if r.array else "-", f(r.out), f(r.lse),
                f(r.dq), f(r.dk), f(r.dv), f(r.tol), result]

    def _footer(self) -> list[str]:
        lines = [f"  {r.backend}: {r.status}: {r.reason}" for r in self.rows if r.reason]
        auto = ", ".join(f"{lib} -> {b}" for lib, b in self.auto.items())
        verdict = "PASSED" if self.passed else ("FAILED" if self.failed else "NOTHING RAN")
        return lines + ([f"auto selection: {auto}"] if auto else []) + [
            f"{verdict}: {sum(r.status == 'pass' for r in self.rows)} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped"
        ]

    def _header(self) -> str:
        return (f"crosscheck {self.layout}\n  inputs {self.shapes}, dtype {self.dtype}, seed {self.seed}, "
                f"grads {'on' if self.grads else 'off'}; relative error vs float64 reference")

    def table(self) -> str:
        """The report as plain text (header, one line per backend, reasons, verdict)."""
        cells = [list(self._COLS)] + [self._cells(r) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(self._COLS))]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([self._header(), *lines, *self._footer()])

    def rich_table(self):
        """The same table as a ``rich.table.Table`` (for terminals)."""
        from rich.table import Table

        t = Table(title=self._header(), caption="\n".join(self._footer()))
        for c in self._COLS:
            t.add_column(c, justify="left" if c in ("backend", "dtype", "array", "result") else "right")
        style = {"pass": "green", "fail": "red", "error": "red", "skipped": "yellow"}
        for r in self.rows:
            t.add_row(*self._cells(r), style=style.get(r.status))
        return t

    def __str__(self) -> str:
        return self.table()


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
    from maskc.backends.checks import array_lib

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
    from maskc.ir.layout import Layout
    from maskc.patterns.core import Pattern

    if isinstance(layout_or_pattern, Layout):
        lay = layout_or_pattern
        if q_len is not None and q_len != lay.q_len:
            raise ValueError(f"q_len={q_len} does not match the layout's q_len={lay.q_len}; leave q_len unset")
        if kv_len is not None and kv_len != lay.kv_len:
            raise ValueError(f"kv_len={kv_len} does not match the layout's kv_len={lay.kv_len}; leave kv_len unset")
        return lay
    if isinstance(layout_or_pattern, Pattern):
        import maskc

        q = 128 if q_len is None else int(q_len)
        n_heads = layout_or_pattern.n_heads
        return maskc.compile(layout_or_pattern, q_len=q, kv_len=kv_len, block=block, heads=n_heads)
    raise TypeError(
        f"crosscheck takes a maskc.Layout or a maskc.Pattern, got {type(layout_or_pattern).__name__}"
    )


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
        layout_or_pattern: a Layout, or a Pattern compiled with ``q_len`` (default 128),
            ``kv_len`` (default q_len) and ``block`` (default 32).
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

    from maskc.backends import attention
    from maskc.backends.checks import validate_inputs, validate_scale
    from maskc.backends.reference import attention_reference

    dt = normalize_dtype(dtype)
    lay = _build_layout(layout_or_pattern, q_len, kv_len, block)
    if isinstance(backends, str):
        backends = [b.strip() for b in backends.split(",") if b.strip()]
    todo = list(names()) if backends is None else list(backends)
    for b in todo:
        get(b)  # unknown names fail here, listing the known ones
    H = int(heads) if heads is not None else (lay.heads if lay.heads > 1 else 2)
    Hkv = H if kv_heads is None else int(kv_heads)
    B, D = int(batch), int(head_dim)
    for what, n in (("batch", B), ("heads", H), ("kv_heads", Hkv), ("head_dim", D)):
        if n < 1:
            raise ValueError(f"crosscheck: {what} must be at least 1, got {n}")
    # refuse sizes the float64 truth cannot hold before drawing any input
    from maskc.backends.reference import check_size

    check_size(lay, B)
    gen = torch.Generator().manual_seed(int(seed))
    tdt = _torch_dtype(dt)

    def draw(*shape):  # random normal, rounded to the dtype under test, kept in float64
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(tdt).to(torch.float64)

    q64, k64, v64 = draw(B, H, lay.q_len, D), draw(B, Hkv, lay.kv_len, D), draw(B, Hkv, lay.kv_len, D)
    g64 = draw(B, H, lay.q_len, D)
    validate_inputs(q64, k64, v64, lay)  # wrong sizes fail here, before any backend
    s = validate_scale(scale, D)

    qr, kr, vr = (x.clone().requires_grad_(True) for x in (q64, k64, v64))
    ref_out, ref_lse = attention_reference(qr, kr, vr, lay, scale=s, keep_float64=True)
    (ref_out * g64).sum().backward()
    ref = {"out": ref_out.detach().numpy(), "lse": ref_lse.detach().numpy(),
           "dq": qr.grad.numpy(), "dk": kr.grad.numpy(), "dv": vr.grad.numpy()}

    rows: list[CrosscheckRow] = []
    for name in todo:
        rows.append(_check_one(get(name), lay, dt, (q64, k64, v64, g64), ref, s, grads, device, attention))

    auto = _auto_choices(lay, dt, (q64, k64, v64))
    shapes = f"q [{B}, {H}, {lay.q_len}, {D}], k/v [{B}, {Hkv}, {lay.kv_len}, {D}]"
    return CrosscheckReport(rows, repr(lay), shapes, dt, int(seed), bool(grads), auto)


def _auto_choices(lay, dt: str, inputs) -> dict[str, str]:
    """What backend="auto" picks for these inputs as torch (cpu), numpy and jax arrays."""
    from maskc.backends import select
    from maskc.backends.checks import validate_inputs

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


def _check_one(rec: Backend, lay, dt, inputs, ref, scale, grads, device, attention) -> CrosscheckRow:
    row = CrosscheckRow(rec.name, dt, "skipped")
    ok, reason = rec.status()
    if not ok:
        row.reason = f"unavailable: {reason}"
        return row
    if rec.dtypes is not None and dt not in rec.dtypes:
        row.reason = f"does not support {dt} (supports {', '.join(rec.dtypes)})"
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
        from maskc.backends.checks import validate_inputs

        if do_grads and lib == "torch":
            for x in (q, k, v):  # before validation: selection looks at requires_grad
                x.requires_grad_(True)
        info = validate_inputs(q, k, v, lay)
        ok, why = rec.accepts(info, q, lay, auto=False)
        if not ok:
            row.reason = f"cannot run this case: {why}"
            return row
        row.tol = rec.tolerance.get(dt, TOLERANCES[dt])
        got: dict[str, np.ndarray] = {}
        if lib == "torch" and do_grads:
            out, lse = attention(q, k, v, lay, backend=rec.name, scale=scale, return_lse=True)
            g = g64.to(device=dev, dtype=out.dtype)
            (out * g).sum().backward()
            for n, x in (("dq", q), ("dk", k), ("dv", v)):
                if x.grad is None:
                    raise RuntimeError(f"{n} is None after backward: the backend is not differentiable")
                got[n] = _to_numpy64(x.grad)
        elif lib == "jax" and do_grads:
            import jax

            def f(q, k, v):
                return attention(q, k, v, lay, backend=rec.name, scale=scale, return_lse=True)

            (out, lse), vjp = jax.vjp(f, q, k, v)
            g = _as_lib(g64, "jax", dt, dev)
            dq, dk, dv = vjp((g.astype(out.dtype), jax.numpy.zeros_like(lse)))
            got.update(dq=_to_numpy64(dq), dk=_to_numpy64(dk), dv=_to_numpy64(dv))
        else:
            out, lse = attention(q, k, v, lay, backend=rec.name, scale=scale, return_lse=True)
        got["out"], got["lse"] = _to_numpy64(out), _to_numpy64(lse)
    except Exception as e:  # noqa: BLE001 - a crashing backend is a failed row, with the reason
        row.tol = rec.tolerance.get(dt, TOLERANCES[dt])
        row.status = "error"
        row.reason = f"{type(e).__name__}: {e}"
        return row
    dv_norm = float(np.linalg.norm(ref["dv"]))
    for n, x in got.items():
        setattr(row, n, rel_err(x, ref[n], floor=dv_norm if n in ("dq", "dk") else 0.0))
    bad = [f"{n} {e:.2e}" for n, e in row.errors().items() if not (e <= row.tol)]  # NaN fails
    row.status = "fail" if bad else "pass"
    notes = []
    if bad:
        notes.append(f"above tolerance {row.tol:.0e}: {', '.join(bad)}")
    if grads and not do_grads:
        why = "numpy arrays have no autodiff" if lib == "numpy" else f"no gradients on {dev_type}"
        notes.append(f"forward only ({why})")
    row.reason = "; ".join(notes)
    return row
