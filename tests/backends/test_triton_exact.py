"""Exact empty rows and non-finite values on the triton backend, forward and backward.

A row with no allowed key is exactly 0 (lse -inf), and a value at a key a row may not
attend never reaches that row, whatever it is: NaN and infinities at unattended keys
(in q, k, v or dO) must give the same result as finite values there. The kernels run a
plain pass and redo, exactly, only the rows whose result came out non-finite; these tests
drive both. The expected values come from the float64 reference on *cleaned* inputs (the
unattended positions zeroed), since 0 * inf = NaN in any dense reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc

triton = pytest.importorskip("triton", reason="triton not installed: the triton backend cannot run")

from _triton_cases import DEV  # noqa: E402  (tests/backends/_triton_cases.py)
from maskc.backends import triton_backend as tb  # noqa: E402
from maskc.backends.triton_configs import TileConfig  # noqa: E402

_ok, _why = tb.is_available()
pytestmark = [pytest.mark.skipif(not _ok, reason=f"triton backend unavailable: {_why}"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]  # numpy, interpreter

LQ, LK, D = 40, 45, 16
DEAD_KEYS = [3, 21, 29]  # attended by no query
EMPTY_ROWS = [20, 33]


def _mask(seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).random((1, LQ, LK)) < 0.4
    m[:, :16, 32:] = True  # FULL blocks in the ragged last key block
    m[:, :, DEAD_KEYS] = False
    m[:, EMPTY_ROWS, :] = False
    return m


def _poison(x: torch.Tensor, idx, values=(float("nan"), float("inf"), -float("inf"))) -> torch.Tensor:
    x = x.clone()
    for n, i in enumerate(idx):
        x[:, :, i, :] = values[n % len(values)]
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("tiles", [None, {"fwd": TileConfig(16, 16, 4, 1), "dq": TileConfig(16, 16, 4, 1),
                                          "dkdv": TileConfig(16, 16, 4, 1)}], ids=["table", "16x16"])
def test_non_finite_values_at_unattended_positions_never_reach_a_row(bk, dtype, tiles):
    m = _mask(1)
    lay = mc.Layout.from_dense(m, (16, 32) if tiles is None else 16)
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, n, D, generator=g).to(dtype) for n in (LQ, LK, LK))
    dout = torch.randn(1, 2, LQ, D, generator=g).to(dtype)
    dlse = torch.randn(1, 2, LQ, generator=g)
    # poisoned copies: NaN/inf in v and k at dead keys, in q and dO at empty rows
    pq, pk, pv = _poison(q, EMPTY_ROWS), _poison(k, DEAD_KEYS), _poison(v, DEAD_KEYS)
    pdo = _poison(dout, EMPTY_ROWS)
    cq, ck, cv = (x.double().clone() for x in (q, k, v))
    cq[:, :, EMPTY_ROWS] = 0
    ck[:, :, DEAD_KEYS] = 0
    cv[:, :, DEAD_KEYS] = 0
    cdo = dout.double().clone()
    cdo[:, :, EMPTY_ROWS] = 0
    leaves = [x.to(DEV).requires_grad_() for x in (pq, pk, pv)]
    refs = [x.requires_grad_() for x in (cq, ck, cv)]
    out, lse = tb.attention_triton(*leaves, lay, scale=0.3, tiles=tiles)
    rout, rlse = bk.ref(*refs, lay, 0.3)
    tol = bk.tol(dtype, "triton")
    assert torch.isfinite(out).all() and not torch.isnan(lse).any()
    assert torch.all(out[:, :, EMPTY_ROWS].cpu() == 0) and torch.all(lse[:, :, EMPTY_ROWS].cpu() == -float("inf"))
    assert bk.rel_err(out.cpu(), rout) < tol and bk.rel_err(lse.cpu(), rlse) < tol

    fin = torch.isfinite(lse).cpu()
    ((out.cpu().double() * pdo.double()).sum() + (torch.where(fin, lse.cpu(), 0).double() * dlse).sum()).backward()
    ((rout * cdo).sum() + (torch.where(fin, rlse, 0) * dlse).sum()).backward()
    for name, a, r in zip(("dq", "dk", "dv"), leaves, refs):
        grad = a.grad.cpu()
        assert torch.isfinite(grad).all(), f"{name} holds NaN/inf"
        assert bk.rel_err(grad, r.grad) < tol, name
    assert torch.all(leaves[0].grad[:, :, EMPTY_ROWS] == 0)
    assert torch.all(leaves[1].grad[:, :, DEAD_KEYS] == 0) and torch.all(leaves[2].grad[:, :, DEAD_KEYS] == 0)


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan")], ids=["inf", "-inf", "nan"])
def test_non_finite_value_reaches_exactly_the_rows_that_attend_it(bk, value):
    """v[j, 0] non-finite at a key j attended by some rows of its block only: those rows get it in column 0."""
    m = _mask(3)
    j = 10
    m[:, :, j] = False
    attends = [0, 1, 6, 17, 38]
    m[:, attends, j] = True
    lay = mc.Layout.from_dense(m, 16)
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 1, n, D, generator=g) for n in (LQ, LK, LK))
    pv = v.clone()
    pv[0, 0, j, 0] = value
    out, lse = tb.attention_triton(q.to(DEV), k.to(DEV), pv.to(DEV), lay, scale=0.3)
    cv = v.double().clone()
    cv[0, 0, j, 0] = 0
    rout, rlse = bk.ref(q.double(), k.double(), cv, lay, 0.3)
    expect = rout.clone()
    expect[0, 0, attends, 0] = value
    out = out.cpu().double()
    bad = ~torch.isfinite(expect)
    assert torch.equal(bad, ~torch.isfinite(out)), "non-finite exactly where a row attends the value"
    assert torch.equal(torch.isnan(out[bad]), torch.isnan(expect[bad]))
    assert torch.equal(out[bad & ~torch.isnan(expect)], expect[bad & ~torch.isnan(expect)])
    assert bk.rel_err(out[~bad], expect[~bad]) < 1e-3 and bk.rel_err(lse.cpu(), rlse) < 1e-4
