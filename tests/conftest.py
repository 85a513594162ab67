import pytest
import torch

# One thread per test: on a small shared CPU, oversubscribed torch threads are many times slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
