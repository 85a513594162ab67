"""spg_app.serve, the launcher `make app` runs: the toolkit imported and the default run loaded
before the server starts, into the caches the sessions then use."""
import gc
import sys

import numpy as np
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
    from spg_core.data.settings import DataSettings
    from spg_core.runs import shipped_runs

    if DEFAULT_RUN not in shipped_runs():
        pytest.skip(f"{DEFAULT_RUN} is not shipped in this install")
    loads = []
    real = loaders.load_run
    monkeypatch.setattr(loaders, "load_run", lambda *args: loads.append(args) or real(*args))
    monkeypatch.setattr(loaders, "OUTPUTS_AHEAD", {})
    monkeypatch.setenv(loaders.AHEAD_VARIABLE, "3")
    loaders.load_model.clear()
    serve.warm_default_run()
    assert len(loads) == 1
    model = loaders.open_model(DEFAULT_RUN)  # what the first visitor's sidebar does: found in the cache
    assert len(loads) == 1
    # and the default run's outputs on the first SPG_APP_AHEAD images of its test split, computed ahead
    assert sorted(key for run, key in loaders.OUTPUTS_AHEAD if run == model.key) == sorted(
        loaders.dataset_image_key(DataSettings.from_flags(model.config).key("test"), i) for i in range(3))


def test_the_default_runs_outputs_on_its_split_are_computed_ahead_and_spare_the_forward(monkeypatch):
    from spg_app import loaders
    from spg_app.sidebar import DEFAULT_RUN
    from spg_core.data.settings import DataSettings
    from spg_core.runs import shipped_runs

    if DEFAULT_RUN not in shipped_runs():
        pytest.skip(f"{DEFAULT_RUN} is not shipped in this install")
    model = loaders.open_model(DEFAULT_RUN)
    data_key = DataSettings.from_flags(model.config).key("test")
    dataset = loaders.load_dataset(data_key)
    monkeypatch.setattr(loaders, "OUTPUTS_AHEAD", {})
    assert loaders.fill_outputs_ahead(model, data_key, dataset, limit=5, batch_size=2) == 5
    assert len(loaders.OUTPUTS_AHEAD) == 5
    image_key = loaders.dataset_image_key(data_key, 3)
    image = dataset.load_sample(3).image
    alone = model.localizer.predict(image)
    forwards = []
    forward = model.localizer.model.forward
    monkeypatch.setattr(model.localizer.model, "forward", lambda *a, **k: forwards.append(1) or forward(*a, **k))
    loaders.predict_maps.clear()
    ahead = loaders.predict_maps(model.key, image_key, None, model.localizer, image)
    assert forwards == []  # computed ahead: no forward
    assert ahead.class_index == alone.class_index
    for name in alone.maps:
        np.testing.assert_allclose(ahead.maps[name], alone.maps[name], atol=1e-4)
    loaders.predict_maps(model.key, loaders.dataset_image_key(data_key, 7), None, model.localizer,
                         dataset.load_sample(7).image)
    assert forwards == [1]  # beyond the images computed ahead: one forward


def test_without_a_checkout_it_says_where_app_py_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "APP", tmp_path / "app.py")
    with pytest.raises(SystemExit, match="no app.py at"):
        serve.main([])
