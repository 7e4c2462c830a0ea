"""torch on a shared 2-core machine: one intra-op thread is ~10x faster for these tiny sizes."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
