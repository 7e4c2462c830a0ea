"""User rules compiled with numba: ``@mc.predicate`` and the registry the text form reads.

A predicate is ``f(i, j, *args) -> bool`` or, FlexAttention's ``mask_mod`` signature,
``f(b, h, q_idx, kv_idx, *args) -> bool`` (``b`` the batch element, ``h`` the head).
It is compiled in numba's nopython mode **when it is made**, so a function numba cannot
compile is refused right away with a clear error. Arrays the rule reads are explicit
arguments (``args=(ids,)``): they are copied read-only into the pattern and hashed into
its identity, so changed data makes a different pattern and can never return a stale
layout. A function that reads a numpy array from its enclosing scope or a global is
refused, because numba would freeze that array's contents at compile time.

A (b, h, ...) predicate sees the real head (batch element) only inside ``heads([...])``
(``batched([...])``); elsewhere the pattern is one mask for every slice and ``h = b = 0``.

Predicates are registered explicitly by name (the decorator does it) so that the text
``predicate('name')`` parses back; lambdas get a stable generated name
``lambda_<digest>``.

Example:
    >>> import numpy as np, maskc as mc
    >>> @mc.predicate
    ... def same_parity(i, j):
    ...     return (i - j) % 2 == 0
    >>> int((mc.causal() & same_parity).dense(4).sum())
    6
    >>> ids = np.array([0, 0, 1, 1])
    >>> same_doc = mc.predicate(lambda b, h, q, kv, ids: ids[q] == ids[kv], args=(ids,))
    >>> same_doc.arity, same_doc.dense(4)[0].astype(int).tolist()[2]
    (4, [0, 0, 1, 1])
"""

from __future__ import annotations

import hashlib
import inspect
import types
import warnings
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from maskc.patterns.base import Pattern

_REGISTRY: dict[str, "Predicate"] = {}
#: name -> a function that builds and registers the predicate (library rules, built on first use
#: so that ``import maskc`` does not run numba's compiler)
_LAZY: dict[str, Callable[[], "Predicate"]] = {}


def register_lazy(name: str, make: Callable[[], "Predicate"]) -> None:
    """Register ``make`` (which builds and registers predicate ``name``) to run when the name is first parsed."""
    _LAZY[name] = make
_VARIANTS: "weakref.WeakValueDictionary[tuple[str, str], Predicate]" = weakref.WeakValueDictionary()


def _digest_value(v: Any, seen: set, where: str) -> str:
    """A stable description of a value a predicate's code refers to."""
    if isinstance(v, (bool, int, float, complex, str, bytes, type(None))):
        return repr(v)
    if isinstance(v, np.generic):
        return f"{v.dtype}:{v!r}"
    if isinstance(v, np.ndarray) or hasattr(v, "__array__") and hasattr(v, "shape"):
        raise TypeError(
            f"the predicate reads the array {where} from its enclosing scope; numba freezes such arrays when it "
            f"compiles, so later changes would be ignored. Pass it explicitly: mc.predicate(fn, args=(...,)) with "
            f"fn(i, j, ...) taking it as a parameter")
    if isinstance(v, types.ModuleType):
        return f"module:{v.__name__}"
    if isinstance(v, tuple):
        return "(" + ",".join(_digest_value(x, seen, where) for x in v) + ")"
    py = getattr(v, "py_func", v)
    if isinstance(py, types.FunctionType):
        return "fn:" + _code_digest(py, seen)
    return f"{type(v).__module__}.{type(v).__qualname__}@{id(v)}"


def _code_digest(fn: types.FunctionType, seen: set) -> str:
    if id(fn) in seen:
        return "recursive"
    seen = seen | {id(fn)}
    code = fn.__code__
    parts = [repr(code.co_code), repr(code.co_names), str(code.co_argcount)]
    parts += [repr(c) if not isinstance(c, types.CodeType) else repr(c.co_code) for c in code.co_consts]
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        parts.append(f"{name}={_digest_value(cell.cell_contents, seen, repr(name))}")
    for name in code.co_names:
        if name in fn.__globals__:
            parts.append(f"{name}={_digest_value(fn.__globals__[name], seen, repr(name))}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _args_digest(args: tuple[np.ndarray, ...]) -> str:
    h = hashlib.sha256()
    for a in args:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _freeze_args(args: Sequence[Any]) -> tuple[np.ndarray, ...]:
    out = []
    for k, a in enumerate(args):
        if hasattr(a, "detach") and hasattr(a, "cpu"):
            a = a.detach().cpu().numpy()
        a = np.array(a, copy=True)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"predicate args[{k}] must be a numeric or boolean array, got dtype {a.dtype}")
        a.setflags(write=False)
        out.append(a)
    return tuple(out)


class Predicate(Pattern):
    """A user's rule compiled with numba (``@mc.predicate``); see the module docstring.

    Attributes: ``name``, ``py_func`` (the Python function), ``jit`` (its numba
    dispatcher), ``arity`` (2 or 4) and ``args`` (read-only arrays passed after the
    positions).
    """

    __slots__ = ("name", "py_func", "jit", "arity", "args", "digest")
    _AXIS = "G"

    def __init__(self, fn: Callable[..., Any], name: str | None = None, args: Sequence[Any] = ()):
        if not callable(fn):
            raise TypeError(f"predicate needs a function (i, j) -> bool, got {type(fn).__name__}")
        py = getattr(fn, "py_func", fn)
        if not isinstance(py, types.FunctionType):
            raise TypeError(f"predicate needs a Python function (def or lambda), got {type(fn).__name__}")
        frozen = _freeze_args(args)
        arity = _arity(py, len(frozen))
        code = _code_digest(py, set())
        if name is None:
            name = py.__name__ if py.__name__ != "<lambda>" else f"lambda_{code[:10]}"
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise ValueError(f"predicate name must be an ASCII identifier, got {name!r}")
        if hasattr(fn, "py_func"):
            jit = fn
        else:
            import numba  # imported when a predicate is made, not with maskc

            jit = numba.njit(cache=False)(py)
        _compile_now(jit, name, arity, frozen)
        self._init(name=name, py_func=py, jit=jit, arity=arity, args=frozen,
                   digest=code + (":" + _args_digest(frozen) if frozen else ""))
        if frozen:
            _VARIANTS[(name, self._args_tag())] = self

    def __reduce__(self):
        # by name, like a function: the receiving process must have made the same predicate
        return (registered_predicate, (self.name, self._args_tag()))

    def _args_tag(self) -> str:
        return self.digest.rsplit(":", 1)[1][:16] if self.args else ""

    def __call__(self, *pos: int) -> bool:
        return bool(self.py_func(*pos, *self.args))

    def with_args(self, *args: Any) -> "Predicate":
        """The same rule over other data (a new, differently hashed pattern)."""
        return Predicate(self.jit, self.name, args)

    def _key_fields(self):
        return (self.name, self.arity, self.digest)

    def _make_text(self):
        tag = self._args_tag()
        return f"predicate({self.name!r}, args={tag!r})" if tag else f"predicate({self.name!r})"

    def _reads_slice(self):
        return self.arity == 4

    def _eval(self, i, j, s):
        f, args = self.py_func, self.args
        if self.arity == 4:
            b, h = s.batch, s.head
            vec = np.vectorize(lambda a, c: bool(f(b, h, int(a), int(c), *args)), otypes=[bool])
        else:
            vec = np.vectorize(lambda a, c: bool(f(int(a), int(c), *args)), otypes=[bool])
        return vec(i, j)

    def _lower(self, sink):
        sink.leaf_predicate(self)


def _arity(py: types.FunctionType, n_args: int) -> int:
    params = list(inspect.signature(py).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        raise TypeError("a predicate takes plain positional parameters: (i, j) or (b, h, q_idx, kv_idx), "
                        "then one per array in args=")
    n = len(params) - n_args
    if n not in (2, 4):
        raise TypeError(
            f"a predicate takes (i, j) or FlexAttention's (b, h, q_idx, kv_idx), followed by one parameter per "
            f"array in args=; {py.__name__} has {len(params)} parameters and {n_args} args")
    return n


def _compile_now(jit: Any, name: str, arity: int, args: tuple[np.ndarray, ...]) -> None:
    """Compile for int64 positions and the args' types; a clear error if numba cannot."""
    import numba

    sig = (numba.int64,) * arity + tuple(numba.typeof(a) for a in args)
    try:
        jit.compile(sig)
    except Exception as e:  # numba raises many error types; all mean "cannot compile"
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Failed in")]
        why = lines[0] if lines else type(e).__name__
        raise TypeError(
            f"predicate {name!r}: numba cannot compile it in nopython mode ({why[:300]}). A predicate may use "
            "integer arithmetic, comparisons, math functions and numpy arrays passed with args=(...); not "
            "torch tensors, Python objects or captured arrays") from None
    ret = [s.return_type for s in jit.nopython_signatures if tuple(s.args) == sig]
    if ret and not isinstance(ret[0], (numba.types.Boolean, numba.types.Integer)):
        raise TypeError(f"predicate {name!r} must return a bool (or an integer), numba infers {ret[0]}")


def register_predicate(pred: Predicate, replace: bool = True) -> Predicate:
    """Register ``pred`` under its name for the text form; returns it.

    Registering a different rule under a taken name replaces it with a warning (an
    existing pattern object keeps its own rule and compares unequal to the new one).
    """
    old = _REGISTRY.get(pred.name)
    if old is not None and old != pred:
        if not replace:
            raise ValueError(f"a different predicate is already registered as {pred.name!r}")
        warnings.warn(f"predicate {pred.name!r} is redefined; the text predicate({pred.name!r}) now means the new "
                      "rule", stacklevel=3)
    _REGISTRY[pred.name] = pred
    return pred


def registered_predicate(name: str, args: str = "") -> Predicate:
    """The predicate registered under ``name`` (for parsing); ``args`` names a data variant."""
    if not isinstance(name, str) or not isinstance(args, str):
        raise TypeError("predicate(name, args=...) takes strings")
    if args:
        found = _VARIANTS.get((name, args))
        if found is None:
            raise ValueError(f"no predicate {name!r} with args {args!r} exists in this process; its data lives "
                             "only in the pattern object (recreate it with mc.predicate(..., args=...))")
        return found
    if name not in _REGISTRY and name in _LAZY:  # a library predicate, compiled on first use
        _LAZY.pop(name)()
    if name not in _REGISTRY:
        raise ValueError(
            f"no predicate named {name!r} is registered; define it in Python with @maskc.predicate first"
            + (f" (registered: {', '.join(sorted(_REGISTRY)[:20])})" if _REGISTRY else ""))
    return _REGISTRY[name]


def predicate(fn: Callable[..., Any] | None = None, *, name: str | None = None, args: Sequence[Any] = ()):
    """Make a numba-compiled rule a pattern leaf and register it (usable as a decorator).

    ``fn(i, j, *args)`` or ``fn(b, h, q_idx, kv_idx, *args)`` returning a bool; ``args``
    are arrays it reads (copied read-only). ``@mc.predicate``, ``@mc.predicate(name=...)``
    and ``mc.predicate(lambda i, j: ...)`` all work. See the module docstring.

    Example:
        >>> import maskc as mc
        >>> mc.predicate(lambda q_idx, kv_idx: q_idx >= kv_idx).text()
        "predicate('lambda_...')"
    """
    if fn is None:
        return lambda f: register_predicate(Predicate(f, name, args))
    return register_predicate(Predicate(fn, name, args))
