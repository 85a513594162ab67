"""The app's Training page over a run's replay, driven headless with AppTest."""
import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from spg_app.pages import training  # noqa: E402
from spg_core.replay import load_replay  # noqa: E402
from spg_core.train import train  # noqa: E402
from test_app import APP, TIMEOUT, texts  # noqa: E402
from test_train import small_config  # noqa: E402

pytestmark = pytest.mark.slow  # trains a small run for its replay


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    config = small_config(root, guidance_warmup=1, epochs=2, max_steps_per_epoch=4, replay_images=3)
    train(config, progress=False)
    return root / "run"


def open_training(run, **state):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(run)
    at.session_state["page_request"] = "training"
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_training_page_replays_the_stage_strip(replay_run):
    replay = load_replay(replay_run)
    at = open_training(replay_run)
    assert at.select_slider(key="replay_record").value == len(replay) - 1
    assert "end of epoch 2" in texts(at)
    # image, 5 maps, 3 masks, the final map: the whole strip of an SPG run
    assert len([img for element in at.get("image") for img in element.proto.imgs]) == 10
    at.select_slider(key="replay_record").set_value(0).run()
    assert not at.exception
    assert "before training" in texts(at)
    at.select_slider(key="replay_record").set_value(2).run()
    assert "epoch 1.25 (inside)" in texts(at)
    at.selectbox(key="replay_image").set_value(1).run()
    assert not at.exception and "#1 ·" in at.selectbox(key="replay_image").format_func(1)


def test_play_runs_through_every_record(replay_run, monkeypatch):
    monkeypatch.setattr(training, "PLAY_SECONDS", 0.0)
    last = len(load_replay(replay_run)) - 1
    at = open_training(replay_run)
    at.select_slider(key="replay_record").set_value(0).run()
    at.button(key="replay_play").click().run()
    assert not at.exception
    assert "end of epoch 2" in texts(at)  # it ends on the last record
    # the slider and the chart's marker followed the strip to the end, and Play is offered again
    assert at.select_slider(key="replay_record").value == last
    marked = {shape["x0"] for chart in at.get("plotly_chart")
              for shape in json.loads(chart.proto.spec)["layout"].get("shapes", [])}
    assert marked == {float(load_replay(replay_run).epochs[last])}
    assert at.button(key="replay_play").label == "▶ Play"


def test_a_run_without_replay_says_how_to_get_one(tmp_path):
    at = open_training(write_tiny_run(tmp_path / "tiny", "spg"))
    assert "trained without a replay" in texts(at)


def test_the_map_curves_show_every_map_of_the_run_over_training(replay_run):
    import json

    def curve_figures(at):
        figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
        return [f for f in figures if "images boxed" in json.dumps(f.get("layout", {}))]

    replay = load_replay(replay_run)
    at = open_training(replay_run)
    assert curve_figures(at) == []  # off until asked for: it boxes every map at every τ
    at.toggle(key="replay_curves").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    curves = curve_figures(at)
    assert len(curves) == 1
    traces = curves[0]["data"]
    # every map of the SPG run, in both panels, one point per record
    assert len(traces) == 2 * len(replay.map_names)
    assert all(len(trace["x"]) == len(replay) for trace in traces)
    boxed = replay.box_accuracy()["attention"]
    assert traces[0]["y"] == pytest.approx(list(100 * boxed))


def test_a_run_whose_guidance_collapsed_says_so(tmp_path):
    import torch

    run = write_tiny_run(tmp_path / "tiny", "spg")
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    found = {"epoch": 3, "step": 20, "accuracy_before": 91.0, "accuracy_after": 12.0, "ce_before": 0.3,
             "ce_after": 9.6}
    state["history"] = [{"epoch": 1, "guidance": False}, {"epoch": 3, "guidance": True, "collapse": found}]
    torch.save(state, run / "checkpoint.pt")
    at = open_training(run)
    warning = " ".join(w.value for w in at.warning)
    assert "collapsed when the guidance switched on" in warning and "12.0%" in warning and "91.0%" in warning
    healthy = open_training(write_tiny_run(tmp_path / "healthy", "spg"))
    assert not [w for w in healthy.warning if "collapsed" in w.value]
