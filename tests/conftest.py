import os

import pytest
import torch

# Two cores shared with the rest of the suite: keep each test's threads bounded.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
