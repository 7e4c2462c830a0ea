"""Input validation shared by every backend: shapes, dtypes, devices, array library, layout sizes.

:func:`validate_inputs` runs once in :func:`maskc.backends.attention`, before any backend
sees the arrays, so backends may assume well-formed inputs. Errors say which argument is
wrong, what was expected, and how to fix it.

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.backends.checks import validate_inputs
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((8, 8), bool)), block=4)
    >>> q = np.ones((1, 2, 8, 16), np.float32)
    >>> validate_inputs(q, q, q, lay).group
    1
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskc.backends.formats import layout_format
from maskc.errors import MaskcError
from maskc.patterns.core import Pattern

#: Array libraries maskc backends understand.
ARRAY_LIBS: tuple[str, ...] = ("numpy", "torch", "jax")
#: Floating dtypes maskc backends take (float128 and friends are refused, not truncated).
FLOAT_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")


def array_lib(x: Any) -> str | None:
    """'numpy', 'torch' or 'jax' for an array of that library, else None.

    Never imports torch or jax: an object can only be one of their arrays if the
    library is already imported.

    Example:
        >>> array_lib(np.zeros(3)), array_lib([0.0])
        ('numpy', None)
    """
    if isinstance(x, np.ndarray):
        return "numpy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        return "jax"
    return None


def dtype_name(x: Any) -> str:
    """Short dtype name of an array: 'float32', 'bfloat16', 'float16', ...

    Example:
        >>> dtype_name(np.zeros(2, np.float16))
        'float16'
    """
    lib = array_lib(x)
    if lib == "torch":
        return str(x.dtype).replace("torch.", "")
    return str(np.dtype(x.dtype)) if lib == "numpy" else str(x.dtype)


def is_floating(x: Any) -> bool:
    """True when the array holds real floating-point numbers (numpy bfloat16 included).

    Example:
        >>> is_floating(np.zeros(2)), is_floating(np.zeros(2, np.int32))
        (True, False)
    """
    lib = array_lib(x)
    if lib == "torch":
        return bool(x.is_floating_point())
    if lib == "numpy":  # ml_dtypes' bfloat16 is not a numpy floating subtype
        return bool(np.issubdtype(x.dtype, np.floating)) or x.dtype.name == "bfloat16"
    if lib == "jax":
        import jax.numpy as jnp

        return bool(jnp.issubdtype(x.dtype, jnp.floating))
    return False


def device_of(x: Any) -> str:
    """A device string: 'cpu', 'cuda:0', ... (numpy arrays are always 'cpu').

    Example:
        >>> device_of(np.zeros(2))
        'cpu'
    """
    lib = array_lib(x)
    if lib == "torch":
        return str(x.device)
    if lib == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):  # inside jit / grad: placement is decided by jax
            return jax.default_backend()
        devs = sorted(f"{d.platform}:{d.id}" for d in x.devices())
        return ",".join(devs)
    return "cpu"


def device_type(device: str) -> str:
    """'cpu', 'cuda', 'gpu', 'tpu', ...: the device string without its index.

    Example:
        >>> device_type("cuda:1"), device_type("gpu:0,gpu:1")
        ('cuda', 'gpu')
    """
    return device.split(":")[0].split(",")[0]


@dataclass(frozen=True)
class InputInfo:
    """What :func:`validate_inputs` learned about a valid call."""

    lib: str  #: 'numpy', 'torch' or 'jax'
    dtype: str  #: dtype name shared by q, k, v
    device: str  #: device string shared by q, k, v
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    #: torch autograd will record this call (grad mode on and q, k or v requires grad)
    needs_grad: bool = False

    @property
    def group(self) -> int:
        """Query heads per key/value head (GQA group size; 1 without GQA)."""
        return self.q_heads // self.kv_heads

    @property
    def device_type(self) -> str:
        """'cpu', 'cuda', ... without the index."""
        return device_type(self.device)


def _describe(x: Any) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def validate_arrays(q: Any, k: Any, v: Any) -> InputInfo:
    """Check q, k, v on their own (no layout): library, rank, sizes, dtype, device.

    Raises TypeError for a wrong type / dtype and ValueError for wrong shapes or devices.

    Example:
        >>> q = np.zeros((1, 4, 8, 16), np.float32)
        >>> kv = np.zeros((1, 2, 10, 16), np.float32)
        >>> info = validate_arrays(q, kv, kv)
        >>> info.group, info.kv_len, info.needs_grad
        (2, 10, False)
    """
    libs = {}
    for name, x in (("q", q), ("k", k), ("v", v)):
        lib = array_lib(x)
        if lib is None:
            raise TypeError(
                f"{name} must be a numpy array, torch tensor or jax array of shape "
                f"[batch, heads, seq, head_dim], got {_describe(x)}"
            )
        libs[name] = lib
    if len(set(libs.values())) != 1:
        got = ", ".join(f"{n}: {l}" for n, l in libs.items())
        raise TypeError(
            f"q, k and v must come from the same array library, got {got}; "
            "convert them (e.g. torch.from_numpy / np.asarray / jnp.asarray) before calling"
        )
    lib = libs["q"]
    for name, x in (("q", q), ("k", k), ("v", v)):
        if len(x.shape) != 4:
            raise ValueError(
                f"{name} must have 4 dimensions [batch, heads, seq, head_dim], got shape {tuple(x.shape)}"
            )
        if not is_floating(x):
            raise TypeError(
                f"{name} must have a floating dtype (float16, bfloat16, float32, float64), "
                f"got {dtype_name(x)}; cast it first, e.g. {name}.float()"
                if lib == "torch"
                else f"{name} must have a floating dtype (float16, bfloat16, float32, float64), got {dtype_name(x)}"
            )
    dt = dtype_name(q)
    if dt not in FLOAT_DTYPES:
        raise TypeError(
            f"q has dtype {dt}; maskc backends take {', '.join(FLOAT_DTYPES)}: cast q, k and v to one of them"
        )
    for name, x in (("k", k), ("v", v)):
        if dtype_name(x) != dt:
            raise TypeError(f"{name} has dtype {dtype_name(x)} but q has {dt}; q, k and v must share one dtype")
    dev = device_of(q)
    devs = {"q": dev, "k": device_of(k), "v": device_of(v)}
    if lib == "jax" and any(":" not in d for d in devs.values()):
        # a jax tracer only knows its platform: compare platforms
        devs = {n: device_type(d) for n, d in devs.items()}
        dev = devs["q"]
    for name, x in (("k", k), ("v", v)):
        if devs[name] != dev:
            raise ValueError(
                f"{name} is on device {devs[name]} but q is on {dev}; move q, k and v to one device"
            )
    B, Hq, Lq, D = (int(s) for s in q.shape)
    Bk, Hkv, Lk, Dk = (int(s) for s in k.shape)
    if tuple(int(s) for s in v.shape) != (Bk, Hkv, Lk, Dk):
        raise ValueError(
            f"v must have the same shape as k [batch, kv_heads, kv_len, head_dim] = {(Bk, Hkv, Lk, Dk)}, "
            f"got {tuple(v.shape)}"
        )
    if Bk != B:
        raise ValueError(f"k and v have batch size {Bk} but q has {B}; they must agree")
    if Dk != D:
        raise ValueError(f"k and v have head_dim {Dk} but q has {D}; q, k and v must share head_dim")
    for what, n in (("batch", B), ("heads of q", Hq), ("heads of k/v", Hkv), ("q_len", Lq), ("kv_len", Lk), ("head_dim", D)):
        if n < 1:
            raise ValueError(f"{what} must be at least 1, got {n} (q {tuple(q.shape)}, k {tuple(k.shape)})")
    if Hq % Hkv != 0:
        raise ValueError(
            f"q has {Hq} heads and k/v have {Hkv}; the number of q heads must be a multiple of the "
            "k/v heads (grouped-query attention)"
        )
    needs_grad = False
    if lib == "torch":
        import torch

        needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    return InputInfo(lib, dt, dev, B, Hq, Hkv, Lq, Lk, D, needs_grad)


def _transposed_hint(info: InputInfo, layout: Any) -> str:
    """A sentence when q / k / v look like ``[batch, seq, heads, head_dim]`` for this layout ("" otherwise)."""
    if info.q_heads == layout.q_len and info.kv_heads == layout.kv_len and info.q_len != layout.q_len:
        return (f"; q {info.q_heads} x {info.q_len} looks transposed: q, k, v must be [batch, heads, seq, head_dim] "
                f"and these look like [batch, seq, heads, head_dim] (seq {info.q_heads}, heads {info.q_len}); "
                "pass q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)")
    return ""


def validate_layout(layout: Any, info: InputInfo) -> None:
    """Check that ``layout`` is a maskc layout (block or diagonal) whose sizes match the arrays.

    Example:
        >>> import maskc as mc
        >>> q = np.zeros((1, 1, 8, 4), np.float32)
        >>> validate_layout(mc.Layout.from_dense(np.ones((6, 8), bool), 4), validate_arrays(q, q, q))
        Traceback (most recent call last):
        ...
        ValueError: layout.q_len is 6 but q has 8 query positions (q.shape[2]); compile the layout for this length
    """
    if layout_format(layout) is None:
        if isinstance(layout, Pattern):
            raise TypeError(
                f"layout must be a compiled maskc.Layout, got the pattern {layout.text()!r}; "
                f"compile it first: mc.compile(pattern, q_len={info.q_len}, kv_len={info.kv_len}, block=...)"
            )
        raise TypeError(
            f"layout must be a maskc.Layout (mc.compile / mc.Layout.from_dense), a DiagonalLayout, or an object "
            f"with __maskc_attention__ (mc.plan), got {_describe(layout)}"
        )
    hint = _transposed_hint(info, layout)
    if layout.q_len != info.q_len:
        raise ValueError(
            f"layout.q_len is {layout.q_len} but q has {info.q_len} query positions (q.shape[2]); "
            "compile the layout for this length" + hint
        )
    if layout.kv_len != info.kv_len:
        raise ValueError(
            f"layout.kv_len is {layout.kv_len} but k/v have {info.kv_len} key positions (k.shape[2]); "
            "compile the layout for this length" + hint
        )
    if layout.heads not in (1, info.q_heads):
        raise ValueError(
            f"layout has {layout.heads} heads but q has {info.q_heads}; a layout needs 1 head "
            f"(broadcast) or exactly one per q head ({info.q_heads})"
        )
    if layout.batch not in (1, info.batch):
        raise ValueError(
            f"layout has batch {layout.batch} but q has batch {info.batch}; a layout needs batch 1 "
            f"(broadcast) or exactly the inputs' batch ({info.batch})"
        )


def validate_inputs(q: Any, k: Any, v: Any, layout: Any) -> InputInfo:
    """Validate arrays and layout together; returns the :class:`InputInfo` (see the module example)."""
    info = validate_arrays(q, k, v)
    validate_layout(layout, info)
    return info


def check_direct_call(backend: str, q: Any, k: Any, layout: Any) -> None:
    """Shape checks for backends called directly (not through ``attention()``).

    Raises :class:`~maskc.errors.MaskcError` naming ``backend`` when the layout's heads or
    lengths do not fit q, k, or the q heads are not a multiple of the k heads.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((2, 8, 8), bool), block=4)
        >>> check_direct_call("mine", np.ones((1, 3, 8, 4)), np.ones((1, 1, 8, 4)), lay)
        Traceback (most recent call last):
        ...
        maskc.errors.MaskcError: mine backend: layout has 2 heads, expected 1 or 3 (q heads)
    """
    Hq, Hkv = int(q.shape[1]), int(k.shape[1])
    if layout.batch not in (1, int(q.shape[0])):
        raise MaskcError(f"{backend} backend: layout has batch {layout.batch}, expected 1 or {int(q.shape[0])} (q batch)")
    if layout.heads not in (1, Hq):
        raise MaskcError(f"{backend} backend: layout has {layout.heads} heads, expected 1 or {Hq} (q heads)")
    if Hq % Hkv:
        raise MaskcError(f"{backend} backend: q heads ({Hq}) must be a multiple of kv heads ({Hkv})")
    if (int(q.shape[2]), int(k.shape[2])) != (layout.q_len, layout.kv_len):
        raise MaskcError(
            f"{backend} backend: sequence lengths (q {q.shape[2]}, kv {k.shape[2]}) differ from the layout's "
            f"(q_len {layout.q_len}, kv_len {layout.kv_len})"
        )


def validate_scale(scale: Any, head_dim: int) -> float:
    """``scale`` or 1/sqrt(head_dim); must be a finite real number.

    Example:
        >>> validate_scale(None, 16), validate_scale(2, 16)
        (0.25, 2.0)
    """
    if scale is None:
        return 1.0 / float(np.sqrt(head_dim))
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a float or None (1/sqrt(head_dim)), got {_describe(scale)}")
    s = float(scale)
    if not np.isfinite(s):
        raise ValueError(f"scale must be finite, got {s}")
    return s
