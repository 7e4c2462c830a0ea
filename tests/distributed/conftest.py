"""Session-wide gloo clusters (2 and 4 spawned ranks), started on first use."""

from __future__ import annotations

import pytest

from dist_cluster import Cluster


@pytest.fixture(scope="session")
def cluster2():
    c = Cluster(2)
    yield c
    c.close()


@pytest.fixture(scope="session")
def cluster4():
    c = Cluster(4)
    yield c
    c.close()
