"""One opaque custom op for attention that dynamo cannot trace: ``maskc::registered_attention``.

Some maskc entry points do numpy work that depends on tensor *values* per call (a
decode step's keys depend on the position; a :class:`~maskc.planner.Plan` runs numpy
index arithmetic and several backends). Under ``torch.compile(fullgraph=True)`` such a
call becomes one node of the graph: the caller registers an eager *runner*
``fn(q, k, v, extra, ints) -> (out, lse)`` under a hashable key (:func:`register_runner`
returns a string token, the same for equal keys, so the graph stays the same), and
:func:`registered_attention` calls the op with that token. The fake (meta)
implementation gives ``out [B, H, T, Dv]`` (like q, with v's head dim) and
``lse [B, H, T]`` (float32; float64 for float64 inputs); nothing data-dependent
leaves the op, so no shape ever depends on the keys a row reads.

Backward: ``maskc::registered_attention_backward`` reruns the runner under autograd and
returns its gradients (twice the forward's work, no saved intermediates). A runner
whose result carries no autograd graph (a backend without autograd) is refused there,
naming the fix.

Runners are kept for the life of the process (each distinct key also costs dynamo a
compile, so their number stays small).

Example:
    >>> import torch
    >>> from maskc.backends.opaque_op import register_runner, registered_attention
    >>> def softmax_attention(q, k, v, extra, ints):
    ...     s = q @ k.transpose(-1, -2)
    ...     return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)
    >>> token = register_runner(("doc-example",), softmax_attention)
    >>> q = torch.randn(1, 1, 3, 4, requires_grad=True)
    >>> out, lse = registered_attention(q, q, q, None, [], token)
    >>> out.sum().backward(); q.grad.shape
    torch.Size([1, 1, 3, 4])
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable, Optional

import torch

Tensor = torch.Tensor
Runner = Callable[[Tensor, Tensor, Tensor, Optional[Tensor], list], tuple[Tensor, Tensor]]

_RUNNERS: dict[str, Runner] = {}
_TOKENS: dict[Hashable, str] = {}
_LOCK = threading.Lock()


def register_runner(key: Hashable, make: Runner | Callable[[], Runner], factory: bool = False) -> str:
    """The token of the runner registered under ``key`` (registering ``make`` the first time).

    With ``factory=True`` ``make()`` builds the runner (only when the key is new).
    Equal keys give the same token, so a graph traced with it is reused.

    Example:
        >>> register_runner(("doc", 1), lambda q, k, v, e, i: (q, q[..., 0])) == register_runner(("doc", 1), None)
        True
    """
    with _LOCK:
        token = _TOKENS.get(key)
        if token is None:
            token = f"runner{len(_TOKENS)}"
            _RUNNERS[token] = make() if factory else make  # type: ignore[misc,operator]
            _TOKENS[key] = token
        return token


def _runner(token: str) -> Runner:
    fn = _RUNNERS.get(token)
    if fn is None:
        raise RuntimeError(f"no maskc runner {token!r} in this process: the compiled graph was made elsewhere; "
                           "call torch._dynamo.reset() and compile again")
    return fn


def _lse_dtype(q: Tensor) -> torch.dtype:
    return torch.float64 if q.dtype == torch.float64 else torch.float32


def _fresh(t: Tensor, inputs: tuple[Tensor | None, ...]) -> Tensor:
    """``t`` contiguous and sharing no storage with an input (a custom op may not return an alias)."""
    t = t.contiguous()
    ptr = t.untyped_storage().data_ptr()
    if any(x is not None and x.untyped_storage().data_ptr() == ptr for x in inputs):
        t = t.clone()
    return t


@torch.library.custom_op("maskc::registered_attention", mutates_args=())
def _forward_op(q: Tensor, k: Tensor, v: Tensor, extra: Optional[Tensor], ints: list[int],
                runner: str) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        out, lse = _runner(runner)(q, k, v, extra, list(ints))
    return _fresh(out, (q, k, v, extra)), _fresh(lse, (q, k, v, extra))


@_forward_op.register_fake
def _forward_fake(q, k, v, extra, ints, runner):
    return q.new_empty(tuple(q.shape[:3]) + (v.shape[-1],)), q.new_empty(q.shape[:3], dtype=_lse_dtype(q))


def _autograd_dispatch() -> Any:
    """Re-enable autograd dispatch inside an op's implementation (torch runs it below autograd), so the
    runner's recompute records a graph (ops through ``torch.autograd.Function`` record one anyway)."""
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.AutogradFunctionality)
    for k in (torch._C.DispatchKey.AutogradOther, torch._C.DispatchKey.AutogradNestedTensor):
        keys = keys | torch._C.DispatchKeySet(k)
    return torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(),
                                           torch._C._dispatch_tls_local_exclude_set() - keys)


@torch.library.custom_op("maskc::registered_attention_backward", mutates_args=())
def _backward_op(dout: Tensor, dlse: Tensor, q: Tensor, k: Tensor, v: Tensor, extra: Optional[Tensor],
                 ints: list[int], runner: str) -> tuple[Tensor, Tensor, Tensor]:
    with torch.enable_grad(), _autograd_dispatch():
        leaves = tuple(t.detach().requires_grad_(True) for t in (q, k, v))
        out, lse = _runner(runner)(*leaves, extra, list(ints))
        if not (out.requires_grad or lse.requires_grad):
            raise RuntimeError("the backend this compiled call ran on has no autograd: pass backend='torch' "
                               "(or 'auto' on CPU) for training, or run the call eagerly")
        grads = torch.autograd.grad((out, lse), leaves, (dout, dlse.to(lse.dtype)), allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g.contiguous() for g, x in zip(grads, leaves))  # type: ignore


@_backward_op.register_fake
def _backward_fake(dout, dlse, q, k, v, extra, ints, runner):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, extra, ints, runner = inputs
    ctx.save_for_backward(q, k, v, extra)
    ctx.ints, ctx.runner = ints, runner


def _backward(ctx, dout, dlse):
    q, k, v, extra = ctx.saved_tensors
    dout = q.new_zeros(tuple(q.shape[:3]) + (v.shape[-1],)) if dout is None else dout
    dlse = q.new_zeros(q.shape[:3], dtype=_lse_dtype(q)) if dlse is None else dlse
    dq, dk, dv = _backward_op(dout, dlse, q, k, v, extra, ctx.ints, ctx.runner)
    return dq, dk, dv, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def registered_attention(q: Tensor, k: Tensor, v: Tensor, extra: Tensor | None, ints: list[int],
                         runner: str) -> tuple[Tensor, Tensor]:
    """``(out, lse)`` of the runner ``runner`` (a :func:`register_runner` token) through the custom op.

    ``extra`` (a tensor or None) and ``ints`` are passed to the runner as they are
    (tensor data and ints may change per call without a recompile).

    Example:
        >>> import torch
        >>> t = register_runner(("doc", 2), lambda q, k, v, e, i: (v * i[0], q.sum(-1)))
        >>> registered_attention(torch.ones(1, 1, 2, 3), torch.ones(1, 1, 2, 3), torch.ones(1, 1, 2, 3), None, [2],
        ...                      t)[0].sum().item()
        12.0
    """
    return _forward_op(q, k, v, extra, ints, runner)
