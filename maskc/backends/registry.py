"""The backend registry: what each backend takes, and whether it can run here.

A backend is a function ``impl(q, k, v, layout, *, scale) -> (out, lse)`` that receives
inputs already validated by :func:`maskc.backends.attention`, plus a description of what
it accepts (array library, devices, gradients, sparsity formats, dropout) and a
``check() -> (ok, reason)`` that says whether it can run here. Backends that implement
dropout on the attention probabilities (``dropout=True``) are also called with
``dropout_p=`` and ``dropout_seed=`` keywords when a caller asks for dropout.

Selection (``backend="auto"``, :mod:`maskc.backends.selection`): the environment variable
``MASKC_BACKEND`` wins if set; otherwise the highest-``priority`` backend that takes the
inputs' array library and the layout's format, whose ``auto_devices`` include their
device, whose ``check()`` passes and whose ``supports(q, layout)`` is true.

Third-party backends: an entry point in group ``maskc.backends`` naming a function that
takes no argument and calls :func:`register` (or returns ``dict`` keyword arguments for
it, the entry point's name becoming the backend's name).

Example:
    >>> import maskc.backends as mb
    >>> def mine(q, k, v, layout, *, scale):
    ...     return mb.get("reference").impl(q, k, v, layout, scale=scale)
    >>> _ = mb.register("mine", mine, array="numpy")
    >>> mb.available()["mine"]
    (True, 'ok')
    >>> mb.unregister("mine")
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from maskc.backends.checks import ARRAY_LIBS, InputInfo, device_type
from maskc.backends.formats import FORMATS, layout_format
from maskc.errors import TooLargeError

log = logging.getLogger("maskc")

#: Environment variable naming the backend used when ``backend="auto"``.
ENV_VAR = "MASKC_BACKEND"
#: Entry-point group scanned for third-party backends.
ENTRY_POINT_GROUP = "maskc.backends"

Impl = Callable[..., tuple[Any, Any]]
Check = Callable[[], tuple[bool, str]]


@dataclass
class Backend:
    """A registered backend. See :func:`register` for the meaning of the fields."""

    name: str
    impl: Impl
    arrays: tuple[str, ...]
    supports: Callable[[Any], bool] | None = None
    check: Check | None = None
    grads: bool | tuple[str, ...] = False
    devices: tuple[str, ...] = ("cpu",)
    auto_devices: tuple[str, ...] = ("cpu",)
    priority: int = 0
    dtypes: tuple[str, ...] | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    description: str = ""
    formats: tuple[str, ...] = ("blocks",)
    dropout: bool = False
    auto_training: bool = True

    def status(self) -> tuple[bool, str]:
        """``(ok, reason)`` from ``check()``; an exception in check counts as unavailable."""
        if self.check is None:
            return True, "ok"
        try:
            ok, reason = self.check()
        except Exception as e:  # a broken check must not break available()
            return False, f"check() raised {type(e).__name__}: {e}"
        return bool(ok), str(reason) if reason else ("ok" if ok else "unavailable")

    def accepts(self, info: InputInfo, q: Any, layout: Any = None, *, auto: bool,
                dropout: bool = False) -> tuple[bool, str]:
        """Whether this backend can take these inputs; ``(ok, reason)``."""
        ok, reason, _ = self.judge(info, q, layout, auto=auto, dropout=dropout)
        return ok, reason

    def judge(self, info: InputInfo, q: Any, layout: Any = None, *, auto: bool,
              dropout: bool = False) -> tuple[bool, str, type[Exception]]:
        """``(ok, reason, error type)``: the type an explicit request raises when refused
        (:class:`~maskc.errors.TooLargeError` for a size refusal, else ValueError)."""
        if info.lib not in self.arrays:
            return False, f"takes {'/'.join(self.arrays)} arrays, got {info.lib}", ValueError
        fmt = layout_format(layout) if layout is not None else None
        if fmt is not None and fmt not in self.formats:
            return False, f"takes {'/'.join(self.formats)} layouts, got a {fmt} layout", ValueError
        devs = self.auto_devices if auto else self.devices
        dt = info.device_type
        if dt not in devs and not (dt == "gpu" and "cuda" in devs):
            return False, f"runs on {'/'.join(devs)}, got device {info.device}", ValueError
        if self.dtypes is not None and info.dtype not in self.dtypes:
            return False, f"supports dtypes {', '.join(self.dtypes)}, got {info.dtype}", ValueError
        if info.needs_grad and not self.grads_on(dt):
            return False, (
                f"has no gradients on {dt}, and q, k or v requires grad; use a backend with gradients "
                "there (see maskc.backends.available()) or run under torch.no_grad()"
            ), ValueError
        if auto and info.needs_grad and not self.auto_training:
            return False, ("is never chosen automatically for training (dense float64); name it explicitly "
                           "(backend=...) to train through it"), ValueError
        if dropout and not self.dropout:
            return False, ("does not implement dropout on attention probabilities; use backend='torch' "
                           "(or 'auto'), or dropout_p=0"), ValueError
        if self.supports is not None:
            try:
                res = self.supports(q, layout) if _takes_layout(self.supports) else self.supports(q)
            except TooLargeError as e:
                return False, str(e), TooLargeError
            except Exception as e:
                return False, f"supports() raised {type(e).__name__}: {e}", ValueError
            ok, reason = res if isinstance(res, tuple) else (bool(res), "")
            if not ok:
                return False, reason or "supports() refused these inputs", ValueError
        return True, "ok", ValueError

    def grads_on(self, device_type: str) -> bool:
        """Whether the backend is differentiable on this device type."""
        g = self.grads
        return bool(g) if isinstance(g, bool) else device_type in g


def _takes_layout(fn: Callable) -> bool:
    """True when ``fn`` accepts a second positional argument (the layout)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(pos) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


_REGISTRY: dict[str, Backend] = {}
_LOCK = threading.RLock()
_entry_points_loaded = False


def register(
    name: str,
    impl: Impl,
    *,
    array: str | Iterable[str] = "torch",
    supports: Callable[[Any], bool] | None = None,
    check: Check | None = None,
    grads: bool | Iterable[str] = False,
    devices: Iterable[str] = ("cpu",),
    auto_devices: Iterable[str] | None = None,
    priority: int = 0,
    dtypes: Iterable[str] | None = None,
    tolerance: dict[str, float] | None = None,
    description: str = "",
    replace: bool = True,
    formats: str | Iterable[str] = ("blocks",),
    dropout: bool = False,
    auto_training: bool = True,
) -> Backend:
    """Register (or replace) a backend and return its :class:`Backend` record.

    Args:
        name: the name users pass as ``backend=``.
        impl: ``impl(q, k, v, layout, *, scale) -> (out, lse)`` on validated inputs; out
            like q, lse ``[B, Hq, Lq]`` natural log, ``-inf`` (and out 0) on rows without keys.
        array: the array library (or libraries) impl takes: "torch", "numpy", "jax".
        supports: optional ``fn(q) -> bool`` or ``fn(q, layout) -> bool | (bool, reason)``
            refusing particular inputs (block size, head_dim, gradients on a device, ...);
            it may raise :class:`~maskc.errors.TooLargeError` for a size refusal, which an
            explicit request then raises as such.
        check: optional ``fn() -> (ok, reason)``: can the backend run on this machine?
        grads: whether impl is differentiable by its array library's autodiff: a bool, or
            the device types where it is (e.g. ``("cuda",)``).
        devices: device types it can run on ("cpu", "cuda", ...).
        auto_devices: device types where ``backend="auto"`` may pick it (default: devices).
        priority: higher wins in ``backend="auto"`` among backends that accept the inputs.
        dtypes: dtype names it supports (default: any floating dtype).
        tolerance: per-dtype relative-error tolerances overriding the defaults in crosscheck.
        description: one line shown by ``maskc backends``.
        formats: the sparsity formats impl executes: "blocks" (:class:`maskc.Layout`),
            "diagonal" (:class:`~maskc.backends.formats.DiagonalLayout`).
        dropout: impl takes ``dropout_p`` / ``dropout_seed`` keywords and drops attention
            probabilities (torch training).
        auto_training: ``backend="auto"`` may pick it when autograd records the call
            (False for the dense float64 reference).

    Example:
        >>> import maskc.backends as mb
        >>> rec = mb.register("ref2", mb.get("reference").impl, array=("numpy", "torch"))
        >>> rec.arrays
        ('numpy', 'torch')
        >>> mb.unregister("ref2")
    """
    if not isinstance(name, str) or not name or name == "auto" or "," in name:
        raise ValueError(f"backend name must be a non-empty string other than 'auto' without commas, got {name!r}")
    if not callable(impl):
        raise TypeError(f"impl for backend {name!r} must be callable, got {type(impl).__name__}")
    arrays = (array,) if isinstance(array, str) else tuple(array)
    bad = [a for a in arrays if a not in ARRAY_LIBS]
    if not arrays or bad:
        raise ValueError(f"array must be one or more of {ARRAY_LIBS}, got {array!r}")
    devs = tuple(devices)
    fmts = (formats,) if isinstance(formats, str) else tuple(formats)
    if not fmts or any(f not in FORMATS for f in fmts):
        raise ValueError(f"formats must be one or more of {FORMATS}, got {formats!r}")
    with _LOCK:
        if name in _REGISTRY and not replace:
            raise ValueError(f"backend {name!r} is already registered; pass replace=True to override it")
        rec = Backend(
            name=name,
            impl=impl,
            arrays=arrays,
            supports=supports,
            check=check,
            grads=grads if isinstance(grads, bool) else tuple(grads),
            devices=devs,
            auto_devices=devs if auto_devices is None else tuple(auto_devices),
            priority=int(priority),
            dtypes=None if dtypes is None else tuple(dtypes),
            tolerance=dict(tolerance or {}),
            description=description,
            formats=fmts,
            dropout=bool(dropout),
            auto_training=bool(auto_training),
        )
        _REGISTRY[name] = rec
    return rec


def unregister(name: str) -> None:
    """Remove a backend (no error if it is not registered).

    Example:
        >>> import maskc.backends as mb
        >>> mb.unregister("never-registered")
    """
    with _LOCK:
        _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        from importlib.metadata import entry_points

        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception as e:  # pragma: no cover - broken metadata
        log.warning("maskc: could not read entry points %r: %s", ENTRY_POINT_GROUP, e)
        return
    for ep in eps:
        load_entry_point(ep)


def load_entry_point(ep: Any) -> None:
    """Load one entry point of group ``maskc.backends`` (see the module docstring).

    A failing entry point registers an unavailable placeholder under its name, whose
    reason says what went wrong, instead of raising.
    """
    try:
        fn = ep.load()
        result = fn() if callable(fn) else fn
        if isinstance(result, dict):
            kwargs = dict(result)
            register(kwargs.pop("name", ep.name), kwargs.pop("impl"), **kwargs)
        elif ep.name not in _REGISTRY and not isinstance(result, Backend):
            raise ValueError(f"entry point {ep.value!r} registered no backend named {ep.name!r}")
    except Exception as e:
        msg = f"entry point {getattr(ep, 'value', ep)!r} failed: {type(e).__name__}: {e}"
        log.warning("maskc: %s", msg)

        def _broken(*a, **kw):
            raise RuntimeError(msg)

        register(ep.name, _broken, array=ARRAY_LIBS, check=lambda: (False, msg), priority=-100)


def names() -> list[str]:
    """Registered backend names, highest priority first.

    Example:
        >>> import maskc.backends as mb
        >>> mb.names()[-1]
        'reference'
    """
    _load_entry_points()
    with _LOCK:
        return [b.name for b in sorted(_REGISTRY.values(), key=lambda b: -b.priority)]


def get(name: str) -> Backend:
    """The registered backend ``name``; ValueError listing the known names otherwise.

    Example:
        >>> import maskc.backends as mb
        >>> mb.get("scipy").arrays
        ('numpy',)
    """
    _load_entry_points()
    with _LOCK:
        rec = _REGISTRY.get(name)
    if rec is None:
        raise ValueError(f"unknown backend {name!r}; registered backends: {', '.join(names())} (or 'auto')")
    return rec


class Availability(dict):
    """``dict[name, (ok, reason)]`` that prints as a table."""

    def __str__(self) -> str:
        width = max((len(n) for n in self), default=4)
        lines = [f"{'backend':<{width}}  status  reason"]
        for n, (ok, reason) in self.items():
            lines.append(f"{n:<{width}}  {'ok    ' if ok else 'absent'}  {reason}")
        return "\n".join(lines)


def available() -> Availability:
    """Every registered backend and whether it can run here: ``{name: (ok, reason)}``.

    Example:
        >>> import maskc.backends as mb
        >>> mb.available()["reference"]
        (True, 'ok')
    """
    return Availability((n, get(n).status()) for n in names())


def format_available(details: bool = True) -> str:
    """A text table of :func:`available` with each backend's arrays, devices and grads.

    Example:
        >>> import maskc.backends as mb
        >>> mb.format_available().split()[:3]
        ['backend', 'status', 'arrays']
    """
    rows = []
    for n in names():
        b = get(n)
        ok, reason = b.status()
        rows.append(
            (n, "ok" if ok else "unavailable", "/".join(b.arrays), "/".join(b.devices),
             ("yes" if b.grads else "no") if isinstance(b.grads, bool) else "/".join(b.grads), reason)
        )
    head = ("backend", "status", "arrays", "devices", "grads", "reason")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    lines = [fmt.format(*head)] + [fmt.format(*r) for r in rows]
    return "\n".join(lines if details else [f"{r[0]}: {r[1]} ({r[5]})" for r in rows])
