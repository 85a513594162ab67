"""The session's one view (spg_app.state.View) and its deep links (spg_app.links), driven with
AppTest: what a control shows is what the app applies, on every page, after an upload, after a
model change, and in the URL."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from spg_app.uploads import MAX_UPLOAD_BYTES  # noqa: E402
from spg_core.replay import Replay, load_replay  # noqa: E402
from spg_core.runs import SHIPPED_DIR, shipped_runs  # noqa: E402
from test_app import APP, TIMEOUT, numbers, pipeline, release, shown, start, texts  # noqa: E402

ROOT = Path(APP).parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("view-runs")
    suggested = write_tiny_run(root / "tiny-suggests", "spg", seed=1)
    (suggested / "metrics.json").write_text(json.dumps({"tau": 0.35}))
    return {"spg": write_tiny_run(root / "tiny-spg", "spg"), "suggests": suggested}


def test_thresholds_and_image_survive_an_upload_and_back(runs):
    at = start(runs["spg"])
    at.number_input(key="explore_index").set_value(5).run()
    release(at, mask_a=(0.3, 0.5))
    at.radio(key="image_source").set_value("upload").run()
    assert not at.exception
    at.radio(key="image_source").set_value("dataset").run()
    assert not at.exception
    assert shown(at, "mask_a") == (0.3, 0.5)
    assert at.number_input(key="explore_index").value == 5
    table = numbers(at)
    assert (table.loc[0, "δ_l"], table.loc[0, "δ_h"]) == (0.3, 0.5)  # what Eq. 1 applies is what is shown
    assert at.selectbox(key="preset").value == "paper"  # the run's preset, not a stale default


def test_thresholds_survive_every_other_page(runs):
    at = start(runs["spg"])
    release(at, mask_a=(0.2, 0.75))
    for page in ("dataset", "triage", "training", "explore"):
        at.session_state["page_request"] = page
        at.run()
        assert not at.exception, (page, [e.message for e in at.exception])
    assert shown(at, "mask_a") == (0.2, 0.75)


def test_tau_follows_the_model_opened(runs):
    at = start(runs["spg"])
    assert pipeline(at)["values"]["tau"] == pytest.approx(0.2)  # no metrics.json: CAM's 0.2
    release(at, tau=0.61)
    assert pipeline(at)["values"]["tau"] == pytest.approx(0.61)
    at.sidebar.text_input(key="run_dir").set_value(str(runs["suggests"])).run()
    assert not at.exception
    assert pipeline(at)["values"]["tau"] == pytest.approx(0.35)  # that run's own τ, not the last one's


def test_a_link_opens_its_view(runs, monkeypatch):
    monkeypatch.setenv("SPG_APP_ROOTS", str(runs["spg"].parent))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(run=str(runs["spg"]), image="4", preset="wsolevaluation", mask_b2="0.20-0.90", tau="0.45")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.number_input(key="explore_index").value == 4
    assert at.selectbox(key="preset").value == "wsolevaluation"
    assert shown(at, "mask_a") == (0.01, 0.7)  # the preset's
    assert shown(at, "mask_b2") == (0.2, 0.9)  # the link's
    assert pipeline(at)["values"]["tau"] == pytest.approx(0.45)
    # ... and the URL follows the view from then on
    release(at, mask_a=(0.3, 0.6))
    assert at.query_params["mask_a"] in ("0.30-0.60", ["0.30-0.60"])
    assert at.query_params["tau"] in ("0.45", ["0.45"])


def test_bad_link_values_are_one_line_each(runs, monkeypatch):
    monkeypatch.setenv("SPG_APP_ROOTS", str(runs["spg"].parent))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(run="/etc", image="-3", preset="nope", mask_a="0.9-0.1", tau="nan", colour="red")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    warnings = [w.value for w in at.warning]
    for name in ("run=", "image=", "preset=", "mask_a=", "tau=", "colour="):
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert all("\n" not in w for w in warnings)


def test_the_upload_limit_said_is_the_limit_applied():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES


@pytest.mark.parametrize("run", [r for r in shipped_runs() if (SHIPPED_DIR / r / "replay.npz").is_file()])
def test_the_training_page_opens_on_every_shipped_run(run):
    at = start(None, page="training", model_choice=run)
    assert not at.exception, [e.message for e in at.exception]
    assert "Moment of training" in [s.label for s in at.select_slider]


def test_a_replay_keeps_the_thresholds_its_seeds_were_drawn_at(tmp_path):
    from spg_core.guidance import PRESETS

    replay = load_replay(SHIPPED_DIR / "synthetic-spg")
    assert replay.seed_preset() == PRESETS["teaching"]
    custom = PRESETS["paper"].replace("mask_a", delta_low=0.07)
    replay.preset, replay.guidance = custom.name, custom.to_dict()
    replay.save(tmp_path / "replay.npz")
    again = Replay.load(tmp_path / "replay.npz")
    assert again.preset == "paper+custom" and again.seed_preset() == custom
    again.guidance = None  # a replay from before the thresholds were stored
    with pytest.raises(ValueError, match="paper\\+custom"):
        again.seed_preset()


def test_an_older_replay_of_a_modified_preset_opens_at_the_run_preset(tmp_path):
    from spg_core.replay import REPLAY_FILE

    run = write_tiny_run(tmp_path / "old", "spg")
    replay = load_replay(SHIPPED_DIR / "synthetic-spg")
    replay.preset, replay.guidance = "paper+custom", None
    replay.save(run / REPLAY_FILE)
    at = start(run, page="training")
    assert not at.exception, [e.message for e in at.exception]
    assert "before replays stored them" in texts(at)


def test_the_sidebar_tau_reaches_the_pipeline_view(runs):
    """τ moved in the sidebar of another page is shown by the pipeline view, and a release of
    thresholds then keeps it."""
    at = start(runs["spg"], page="dataset")
    at.sidebar.slider(key="tau").set_value(0.55).run()
    at.session_state["page_request"] = "explore"
    at.run()
    assert pipeline(at)["values"]["tau"] == pytest.approx(0.55)
    released = {stage: list(pair) for stage, pair in at.session_state["view"].thresholds.items()}
    released["mask_a"] = [0.25, 0.7]
    at.session_state["pipeline"] = {"thresholds": released, "tau": 0.55, "alpha": 0.5, "nonce": 991}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["view"].tau == pytest.approx(0.55)
    assert at.session_state["view"].thresholds["mask_a"] == (0.25, 0.7)
