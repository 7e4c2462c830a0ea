"""Seeded importer calls for fuzzing: the exports of a few layouts fed back to every importer
(``from_scipy``, ``from_flex_block_mask``, ``from_flashinfer_bsr``, ``from_flashinfer_variable``,
``from_magi``, ``from_flashmask``, ``from_deepspeed``, ``from_xformers``,
``from_block_sparse_attn``, ``from_splash_info``, ``from_dense``) with one or two arguments
replaced by hostile values. A call must return a valid layout or raise a documented error.

Example:
    >>> import random
    >>> calls = base_calls()
    >>> sorted({name for name, _, _ in calls})[:3]
    ['from_block_sparse_attn', 'from_deepspeed', 'from_dense']
    >>> name, fn, kw = mutated_call(calls, random.Random(0))
    >>> callable(fn) and isinstance(kw, dict)
    True
"""

from __future__ import annotations

import random
import types
import warnings
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

import maskc as mc
import maskc.export as ex
from maskc.ir.layout import Layout

HOSTILE: list[Any] = [-1, 0, 1, 2**31, 2**31 - 1, 2**63 - 1, -(2**62), 1.5, float("nan"), "3", None, True, (),
                      [[1, 2], [3]], (5,), {"a": 1}, (0, 16), (16, 0), (-1, 16), (2**20, 2**20), (37, 45, 1),
                      np.zeros((0,)), np.array([2**40]), object()]


def _flex_namespace(lay: Layout) -> types.SimpleNamespace:
    """The fields of ``to_flex_block_mask(lay)`` in a plain object whose attributes can be replaced."""
    bm = ex.to_flex_block_mask(lay)
    keys = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "BLOCK_SIZE", "mask_mod",
            "seq_lengths")
    return types.SimpleNamespace(**{k: getattr(bm, k) for k in keys})


def base_calls() -> list[tuple[str, Callable[..., Layout], dict[str, Any]]]:
    """(name, importer, kwargs) whose unmutated call rebuilds a known layout."""
    rng = np.random.default_rng(1)
    lay = Layout.from_dense(rng.random((2, 37, 45)) < 0.3, 16)
    one = Layout.from_dense(np.tril(np.ones((40, 40), bool)) & (rng.random((40, 40)) < 0.8), 8)
    big = Layout.from_dense(np.tril(np.ones((256, 256), bool)), 128)
    sq = mc.compile(mc.causal() & mc.window(5), q_len=24, block=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fi, fv = ex.to_flashinfer_bsr(one), ex.to_flashinfer_variable(lay)
        bsa, ds = ex.to_block_sparse_attn(big, heads=2), ex.to_deepspeed(one)
    fm, mg = ex.to_flashmask(sq), ex.to_magi(sq)
    return [
        ("from_scipy", ex.from_scipy, {"matrix": ex.to_scipy(lay, head=None), "block": 16, "shape": (37, 45)}),
        ("from_scipy", ex.from_scipy, {"matrix": sp.csr_matrix(one.to_dense()[0]), "block": 8}),
        ("from_flex_block_mask", lambda bm, **k: ex.from_flex_block_mask(bm, **k), {"bm": _flex_namespace(one)}),
        ("from_flex_block_mask", lambda bm, **k: ex.from_flex_block_mask(bm, **k),
         {"bm": _flex_namespace(lay), "q_len": 37, "kv_len": 45}),
        ("from_flashinfer_bsr", ex.from_flashinfer_bsr, dict(fi)),
        ("from_flashinfer_variable", ex.from_flashinfer_variable, dict(fv)),
        ("from_block_sparse_attn", ex.from_block_sparse_attn,
         {"base_blockmask": bsa["base_blockmask"], "head_mask_type": bsa["head_mask_type"], "q_len": 256}),
        ("from_deepspeed", ex.from_deepspeed, {"layout_tensor": ds, "block": 8, "q_len": 40, "kv_len": 40}),
        ("from_xformers", ex.from_xformers, {"layout_tensor": ds, "block": 8}),
        ("from_splash_info", lambda **k: ex.from_splash_info(k), ex.to_splash_info(lay)),
        ("from_flashmask", ex.from_flashmask, {"startend_row_indices": fm["startend_row_indices"],
                                               "causal": fm["causal"], "block": 8}),
        ("from_magi", ex.from_magi, {k: mg[k] for k in ("q_ranges", "k_ranges", "attn_type_map", "total_seqlen_q",
                                                         "total_seqlen_k")}),
        ("from_dense", ex.from_dense, {"mask": lay.to_dense(), "block": 16}),
    ]


def _mutate_array(a: Any, rng: random.Random) -> Any:
    import torch  # lazy: only flex fields are tensors

    is_t = isinstance(a, torch.Tensor)
    x = a.numpy().copy() if is_t else np.array(a, copy=True)
    if x.ndim == 0:
        return rng.choice(HOSTILE)
    op = rng.randrange(7)
    if op == 0 and x.size:
        x.reshape(-1)[rng.randrange(x.size)] = rng.choice([-1, 2**31 - 1, 7, 0, 1])
    elif op == 1:
        x = x[None]
    elif op == 2:
        x = x.reshape(-1)
    elif op == 3:
        x = x.astype(np.float32) + 0.5
    elif op == 4:
        x = x[..., :-1] if x.shape[-1] > 1 else x[:0]
    elif op == 5:
        x = np.repeat(x, 2, axis=-1)
    else:
        x = np.ascontiguousarray(np.swapaxes(x, 0, -1)) if x.ndim > 1 else -x
    return torch.from_numpy(np.ascontiguousarray(x)) if is_t and x.dtype != np.uint64 else x


def mutate(value: Any, rng: random.Random) -> Any:
    """A hostile replacement for one argument value."""
    if isinstance(value, types.SimpleNamespace):
        ns = types.SimpleNamespace(**vars(value))
        key = rng.choice(sorted(vars(ns)))
        setattr(ns, key, mutate(getattr(ns, key), rng))
        return ns
    if isinstance(value, list) and value and sp.issparse(value[0]) and rng.random() < 0.5:
        out = list(value)
        out[rng.randrange(len(out))] = rng.choice([sp.csr_matrix((3, 4)), np.eye(3), out[0].T])
        return out
    if sp.issparse(value) and rng.random() < 0.5:
        return rng.choice([value.T, value[:-1], sp.coo_matrix(value.shape), value.astype(np.float32) * 0.5])
    if hasattr(value, "shape") and not sp.issparse(value) and getattr(value, "size", 0) and rng.random() < 0.7:
        return _mutate_array(value, rng)
    return rng.choice(HOSTILE)


def mutated_call(calls: list, rng: random.Random) -> tuple[str, Callable[..., Layout], dict[str, Any]]:
    """One base call with one or two arguments (or BlockMask fields) replaced."""
    name, fn, kw = calls[rng.randrange(len(calls))]
    kw = dict(kw)
    for key in rng.sample(sorted(kw), k=min(len(kw), rng.randint(1, 2))):
        kw[key] = mutate(kw[key], rng)
    return name, fn, kw


def check_call(fn: Callable[..., Layout], kw: dict[str, Any]) -> str:
    """Call the importer; what it returns must validate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lay = fn(**kw)
    assert isinstance(lay, Layout), type(lay)
    lay.validate()
    return "ok"
