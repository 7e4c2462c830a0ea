"""Backend registry: availability, auto selection, MASKC_BACKEND, third-party backends,
entry points, delegation to plans, and the visible choice."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest
import torch

import maskc as mc
import maskc.backends as mb
from maskc.backends import registry

LAY = mc.Layout.from_dense(np.tril(np.ones((12, 12), bool)), 16)


def _np(h=1, n=12, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(1, h, n, d)).astype(np.float32)



def test_available_lists_every_builtin_with_a_reason():
    av = mb.available()
    for name in ("reference", "scipy", "jax", "flex", "triton"):
        ok, reason = av[name]
        assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert av["reference"][0] is True
    text = str(av)
    assert "reference" in text and "triton" in text
    assert "grads" in mb.format_available()


def test_unknown_backend_error_lists_known_names():
    with pytest.raises(ValueError) as e:
        mb.attention(_np(), _np(), _np(), LAY, backend="nope")
    for name in ("nope", "reference", "scipy", "jax"):
        assert name in str(e.value)


def test_auto_by_array_type():
    q = _np()
    mb.attention(q, q, q, LAY)
    assert mb.last_choice().name == "scipy"
    jnp = pytest.importorskip("jax.numpy", reason="jax not installed")
    qj = jnp.asarray(q)
    mb.attention(qj, qj, qj, LAY)
    assert mb.last_choice().name == "jax"
    qt = torch.from_numpy(q)
    mb.attention(qt, qt, qt, LAY)
    assert mb.last_choice().name == "torch"  # CPU torch tensors; triton is auto-selected only on CUDA


def test_auto_picks_the_torch_backend_for_cpu_training_never_the_float64_reference(monkeypatch):
    qt = torch.from_numpy(_np()).requires_grad_(True)
    out = mb.attention(qt, qt.detach(), qt.detach(), LAY)
    assert mb.last_choice().name == "torch"
    (g,) = torch.autograd.grad(out.sum(), qt)
    ref = mb.attention(qt, qt.detach(), qt.detach(), LAY, backend="reference")
    (g_ref,) = torch.autograd.grad(ref.sum(), qt)
    assert torch.allclose(g, g_ref, rtol=1e-4, atol=1e-5)
    # without the torch backend, auto refuses rather than training through the dense float64 path
    monkeypatch.setattr(mb.get("torch"), "auto_devices", ())
    with pytest.raises(RuntimeError, match="never chosen automatically for training"):
        mb.attention(qt, qt.detach(), qt.detach(), LAY)


def test_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv("MASKC_BACKEND", "reference")
    q = _np()
    mb.attention(q, q, q, LAY)
    assert mb.last_choice().name == "reference" and "MASKC_BACKEND" in mb.last_choice().reason
    mb.attention(q, q, q, LAY, backend="scipy")  # an explicit name beats the variable
    assert mb.last_choice().name == "scipy"


def test_env_var_unknown_name_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("MASKC_BACKEND", "bogus")
    with pytest.raises(ValueError, match="MASKC_BACKEND"):
        mb.attention(_np(), _np(), _np(), LAY)


def test_explicit_backend_with_wrong_arrays_is_refused():
    with pytest.raises(ValueError, match="takes numpy arrays, got torch"):
        q = torch.from_numpy(_np())
        mb.attention(q, q, q, LAY, backend="scipy")


def test_third_party_backend_priority_and_unregister(scratch):
    calls = []

    def mine(q, k, v, layout, *, scale):
        calls.append(scale)
        return mb.get("reference").impl(q, k, v, layout, scale=scale)

    mb.register("mine", mine, array="numpy", priority=100, description="test")
    scratch.append("mine")
    q = _np()
    out = mb.attention(q, q, q, LAY, scale=0.5)
    assert mb.last_choice().name == "mine" and calls == [0.5]
    np.testing.assert_allclose(out, mb.attention(q, q, q, LAY, backend="reference", scale=0.5))
    mb.unregister("mine")
    mb.attention(q, q, q, LAY)
    assert mb.last_choice().name == "scipy"


def test_supports_and_check_refusals_carry_reasons(scratch):
    mb.register("picky", lambda *a, **k: None, array="numpy", supports=lambda q, layout: (False, "too picky"))
    mb.register("absent", lambda *a, **k: None, array="numpy", check=lambda: (False, "library missing"))
    scratch += ["picky", "absent"]
    q = _np()
    with pytest.raises(ValueError, match="too picky"):
        mb.attention(q, q, q, LAY, backend="picky")
    with pytest.raises(RuntimeError, match="library missing"):
        mb.attention(q, q, q, LAY, backend="absent")
    assert mb.available()["absent"] == (False, "library missing")


def test_backend_returning_wrong_shape_is_reported(scratch):
    mb.register("broken", lambda q, k, v, layout, *, scale: (q[:, :, :1], q[..., 0]), array="numpy")
    scratch.append("broken")
    q = _np()
    with pytest.raises(RuntimeError, match="broken"):
        mb.attention(q, q, q, LAY, backend="broken")


def test_register_validates_its_arguments():
    with pytest.raises(ValueError, match="auto"):
        mb.register("auto", lambda *a: None)
    with pytest.raises(ValueError, match="array"):
        mb.register("x", lambda *a: None, array="cupy")
    with pytest.raises(TypeError, match="callable"):
        mb.register("x", 3)


def test_entry_points_register_and_broken_ones_become_unavailable(scratch):
    def setup():
        return {"impl": mb.get("reference").impl, "array": "numpy"}

    good = types.SimpleNamespace(name="ep_good", value="pkg:setup", load=lambda: setup)
    bad = types.SimpleNamespace(name="ep_bad", value="pkg:missing", load=lambda: (_ for _ in ()).throw(ImportError("no pkg")))
    scratch += ["ep_good", "ep_bad"]
    registry.load_entry_point(good)
    registry.load_entry_point(bad)
    q = _np()
    mb.attention(q, q, q, LAY, backend="ep_good")
    ok, reason = mb.available()["ep_bad"]
    assert not ok and "no pkg" in reason and "pkg:missing" in reason


def test_choice_is_logged_at_debug(caplog):
    q = _np()
    with caplog.at_level(logging.DEBUG, logger="maskc"):
        mb.attention(q, q, q, LAY, backend="reference")
    assert any("reference" in r.getMessage() for r in caplog.records)


def test_plan_like_objects_are_delegated():
    seen = {}

    class FakePlan:
        def __maskc_attention__(self, q, k, v, *, backend, scale, return_lse):
            seen.update(backend=backend, scale=scale, return_lse=return_lse)
            return "delegated"

    q = _np()
    assert mb.attention(q, q, q, FakePlan(), backend="scipy", scale=0.3, return_lse=True) == "delegated"
    assert seen == {"backend": "scipy", "scale": 0.3, "return_lse": True}


@pytest.mark.parametrize("which", ["k", "v"])
def test_auto_skips_backends_without_grads_when_only_k_or_v_requires_grad(which, scratch):
    q, k, v = (torch.from_numpy(_np(seed=s)) for s in range(3))
    (k if which == "k" else v).requires_grad_(True)
    mb.register("nograd", mb.get("torch").impl, array="torch", priority=99, grads=False)
    scratch.append("nograd")
    out = mb.attention(q, k, v, LAY)
    assert mb.last_choice().name == "torch", mb.last_choice()
    assert "nograd: has no gradients on cpu" in mb.last_choice().reason
    out.sum().backward()
    g = (k if which == "k" else v).grad
    assert g is not None and torch.isfinite(g).all()


def test_explicit_backend_without_grads_is_refused_with_the_reason():
    q = torch.from_numpy(_np())
    v = torch.from_numpy(_np()).requires_grad_(True)
    if not mb.available()["flex"][0]:
        pytest.skip(f"flex unavailable: {mb.available()['flex'][1]}")
    with pytest.raises(ValueError, match="'flex'.*no gradients on cpu.*torch.no_grad"):
        mb.attention(q, q, v, LAY, backend="flex")
    with torch.no_grad():  # no graph recorded: flex may run
        mb.attention(q, q, v, LAY, backend="flex")
    assert mb.last_choice().name == "flex"


def test_non_contiguous_views_give_the_same_result_on_every_backend():
    base = np.random.default_rng(7).normal(size=(1, 12, 2, 16)).astype(np.float32)
    view = base.transpose(0, 2, 1, 3)  # [1, 2, 12, 16], not contiguous
    assert not view.flags.c_contiguous
    want = mb.attention(np.ascontiguousarray(view), *(np.ascontiguousarray(view),) * 2, LAY, backend="reference")
    for name in ("reference", "scipy"):
        np.testing.assert_allclose(mb.attention(view, view, view, LAY, backend=name), want, rtol=1e-5, atol=1e-6)
    tview = torch.from_numpy(base).transpose(1, 2)
    assert not tview.is_contiguous()
    for name in ("reference", "flex", "triton"):
        ok, why = mb.available()[name]
        if not ok:
            continue  # reported by test_available_lists_every_builtin_with_a_reason
        got = mb.attention(tview, tview, tview, LAY, backend=name)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5, err_msg=name)
