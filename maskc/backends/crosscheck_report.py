"""The result of a cross-check: tolerances, the error measure, one row per backend (or plan part).

Tolerances (relative error ``||x - ref|| / ||ref||`` against the float64 reference, by
dtype): float32 1e-5, bfloat16 1e-2, float16 5e-3, float64 1e-10; a backend may override
them with ``register(..., tolerance={...})`` (triton: float32 1e-3, since ``tl.dot`` may
use tf32). NaN never passes.

Example:
    >>> import numpy as np
    >>> from maskc.backends.crosscheck_report import rel_err
    >>> rel_err(np.array([1.0, 2.0]), np.array([1.0, 2.0])), rel_err(np.array([np.nan]), np.array([1.0]))
    (0.0, nan)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
