"""Run-time backend selection and the visible choice.

``backend="auto"``: the environment variable ``MASKC_BACKEND`` wins if set; otherwise
the highest-priority registered backend that accepts the inputs (array library, layout
format, device, dtype, gradients, dropout, ``supports``) and whose ``check()`` passes.
The built-in priorities give: triton for CUDA torch tensors, the torch backend for CPU
torch tensors (training included), jax for jax arrays, scipy for numpy arrays, the DIA
kernels for diagonal layouts; the float64 reference is the fallback of last resort.

Every call records what it used in :func:`last_choice` (per thread); a planner run
records one choice naming the backends of its parts.

Example:
    >>> import numpy as np, maskc as mc, maskc.backends as mb
    >>> q = np.ones((1, 1, 4, 8), np.float32)
    >>> lay = mc.Layout.from_dense(np.ones((4, 4), bool), 4)
    >>> mb.select(mb.validate_inputs(q, q, q, lay), q, "auto", lay).name
    'scipy'
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from maskc.backends.checks import InputInfo
from maskc.backends.registry import ENV_VAR, Backend, get, names
from maskc.errors import TooLargeError

log = logging.getLogger("maskc")
_last = threading.local()


@dataclass(frozen=True)
class Choice:
    """The backend a call to :func:`maskc.backends.attention` used and why.

    For a planner run, ``name`` joins the backends of the parts (``"torch+dia"``) and
    ``parts`` lists ``(part name, backend)`` pairs (empty for a plain call).
    """

    name: str
    reason: str
    parts: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def last_choice() -> Choice | None:
    """The backend chosen by the most recent ``attention`` call in this thread (None before any).

    Example:
        >>> import numpy as np, maskc as mc, maskc.backends as mb
        >>> q = np.ones((1, 1, 4, 8), np.float32)
        >>> _ = mb.attention(q, q, q, mc.Layout.from_dense(np.ones((4, 4), bool), 4), backend="reference")
        >>> mb.last_choice()
        Choice(name='reference', reason='explicit')
    """
    return getattr(_last, "choice", None)


def record_choice(name: str, reason: str, parts: tuple[tuple[str, str], ...] = ()) -> Choice:
    """Record (and return) the choice of a call that ran outside :func:`select` (e.g. a plan).

    Example:
        >>> import maskc.backends as mb
        >>> mb.record_choice("torch+dia", "plan", (("band", "torch"), ("offsets", "dia"))).parts[1]
        ('offsets', 'dia')
    """
    _last.choice = Choice(name, reason, tuple(parts))
    log.debug("maskc.attention: backend %r (%s)", name, reason)
    return _last.choice


def select(info: InputInfo, q: Any, backend: str = "auto", layout: Any = None, *, dropout: bool = False) -> Backend:
    """Resolve ``backend`` (a name or "auto") for validated inputs; records :func:`last_choice`.

    ``dropout=True`` restricts the choice to backends that implement dropout. An explicit
    name that cannot run the inputs raises ValueError with the reason (TooLargeError
    when the refusal is about size), RuntimeError when it is unavailable here.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a backend name or 'auto', got {type(backend).__name__}")
    source = "explicit"
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            backend, source = env, f"{ENV_VAR}={env}"
    if backend != "auto":
        try:
            rec = get(backend)
        except ValueError as e:
            if source != "explicit":
                raise ValueError(f"{e}; it was named by the environment variable {source}") from None
            raise
        ok, reason = rec.status()
        if not ok:
            raise RuntimeError(f"backend {backend!r} ({source}) is not available here: {reason}")
        ok, reason, error = rec.judge(info, q, layout, auto=False, dropout=dropout)
        if not ok:
            if error is TooLargeError:
                raise TooLargeError(f"backend {backend!r} ({source}) refuses these sizes: {reason}")
            raise error(f"backend {backend!r} ({source}) cannot run these inputs: it {reason}")
        record_choice(rec.name, source)
        return rec
    refused = []
    for n in names():
        rec = get(n)
        ok, reason = rec.accepts(info, q, layout, auto=True, dropout=dropout)
        if ok:
            ok, reason = rec.status()
        if ok:
            record_choice(rec.name, f"auto: {info.lib} on {info.device}" + (f"; skipped {'; '.join(refused)}" if refused else ""))
            return rec
        if info.lib in rec.arrays:
            refused.append(f"{n}: {reason}")
    raise RuntimeError(
        f"no available backend takes {info.lib} arrays of dtype {info.dtype} on {info.device}"
        + (" with dropout" if dropout else "") + ": "
        + ("; ".join(refused) or "none registered")
        + "; see maskc.backends.available()"
    )
