"""spg_app.serve, the launcher `make app` runs: the toolkit imported and the default run loaded
before the server starts, into the caches the sessions then use."""
import gc
import sys

import pytest

pytest.importorskip("streamlit")

from spg_app import serve  # noqa: E402


def test_preload_imports_the_pages_and_freezes_them_out_of_the_collector():
    serve.preload()
    for name in serve.PRELOAD:
        assert name in sys.modules
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def test_the_default_run_is_loaded_once_for_every_session(monkeypatch):
    from spg_app import loaders
    from spg_app.sidebar import DEFAULT_RUN
    from spg_core.runs import shipped_runs

    if DEFAULT_RUN not in shipped_runs():
        pytest.skip(f"{DEFAULT_RUN} is not shipped in this install")
    loads = []
    real = loaders.load_run
    monkeypatch.setattr(loaders, "load_run", lambda *args: loads.append(args) or real(*args))
    loaders.load_model.clear()
    serve.warm_default_run()
    assert len(loads) == 1
    loaders.open_model(DEFAULT_RUN)  # what the first visitor's sidebar does: found in the cache
    assert len(loads) == 1


def test_without_a_checkout_it_says_where_app_py_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "APP", tmp_path / "app.py")
    with pytest.raises(SystemExit, match="no app.py at"):
        serve.main([])
