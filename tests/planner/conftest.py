"""Planner test helpers: a registry scratch fixture for backends a test registers."""

from __future__ import annotations

import pytest

import maskc.backends as mb


@pytest.fixture
def scratch_backend():
    """``add(name, impl)`` registers a torch backend for the test; it is unregistered afterwards."""
    added: list[str] = []

    def add(name, impl):
        mb.register(name, impl, array="torch", grads=True, devices=("cpu",), auto_devices=())
        added.append(name)

    yield add
    for n in added:
        mb.unregister(n)
