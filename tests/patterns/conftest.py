"""Settings for the pattern tests: import the library once so its constructors are registered."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _library_registered():
    """The text form knows library names only after maskc.patterns.library is imported."""
    import maskc.patterns.library  # noqa: F401

    yield
