import pytest
import torch

# One thread per test: on a small shared CPU, oversubscribed torch threads are many times slower
# (a full-size forward pass took 63.6 s with two threads vs 3.6 s with one on a busy 2-core box).


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # also undoes a test's own train(threads=...)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _app_may_read_test_folders(monkeypatch, tmp_path_factory):
    """The app reads typed paths only under SPG_APP_ROOTS (spg_app/paths.py): let it read the
    tests' temporary folders and the checkout."""
    import os

    monkeypatch.setenv("SPG_APP_ROOTS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), os.getcwd()]))
