"""A run's precomputed evaluation (spg_app/precomputed.py, RUN_DIR/evaluation.json.gz): the
Dataset and Failure triage pages open with its results, nothing pressed; a file for another
checkpoint or other settings is not used and says so; its results are those the pages compute."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import IMAGES, write_tiny_run  # noqa: E402
from test_app import link_values  # noqa: E402
from spg_app.computations import evaluate_first, seed_statistics_first  # noqa: E402
from spg_app.precomputed import EVALUATION_FILE, read_stored, write_evaluation  # noqa: E402
from spg_core.metrics import FAILURE_TYPES  # noqa: E402
from spg_core.report import json_ready  # noqa: E402
from spg_core.runs import load_run, shipped_runs  # noqa: E402
from spg_core.data.settings import DataSettings  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A tiny run whose folder carries its evaluation.json.gz, written at the tests' one torch
    thread (another thread count may round PxAP differently in the last digits)."""
    run = write_tiny_run(tmp_path_factory.mktemp("precomputed") / "tiny-spg", "spg")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_evaluation(run, log=lambda line: None)
    finally:
        torch.set_num_threads(previous)
    return run


def copy_run(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def start(run: Path, page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(run)
    link_values(at, state)
    for key, value in state.items():
        at.session_state[key] = value
    at.session_state["page_request"] = page
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def captions(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.caption)


def has_button(at: AppTest, key: str) -> bool:
    return any(button.key == key for button in at.button)


def tiles(at: AppTest) -> list[str]:
    return [img.alt for element in at.get("image") for img in element.proto.imgs if img.alt.startswith("triage ")]


def test_dataset_page_opens_with_the_stored_results(stored_run):
    at = start(stored_run, "dataset")
    assert not has_button(at, "evaluate_button")  # nothing to press: the results are there
    assert len(at.get("plotly_chart")) == 2  # accuracy curves, IoU histogram
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert table.loc[0, "images"] == IMAGES and table.loc[0, "protocol"] == "wsolevaluation"
    assert "Precomputed on " in captions(at) and f"{IMAGES} images" in captions(at)
    # Another N is not stored: the button computes it, the note names what is stored.
    at.slider(key="eval_n").set_value(6).run()
    assert has_button(at, "evaluate_button")
    assert f"for {IMAGES} images, not these settings" in captions(at)
    at.button(key="evaluate_button").click().run()
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert table.loc[0, "images"] == 6
    assert "Precomputed on " not in captions(at)


def test_triage_page_opens_with_the_stored_results(stored_run):
    at = start(stored_run, "triage", triage_failures=list(FAILURE_TYPES))
    assert not has_button(at, "triage_button")
    assert len(tiles(at)) == min(IMAGES, 12)
    notes = captions(at)
    assert "paper protocol" in notes and "Mask-A seeds" in notes and "Precomputed on " in notes
    # Other Mask-A thresholds than the stored ones: the evaluation is stored, the seeds are not.
    at = start(stored_run, "triage", triage_failures=list(FAILURE_TYPES),
               current_thresholds={"mask_a": (0.2, 0.6)})
    assert has_button(at, "triage_button") and not tiles(at)
    assert "δ_l = 0.1 · δ_h = 0.7, not these settings" in captions(at)


def test_another_tau_is_not_answered_by_the_file(stored_run):
    at = start(stored_run, "dataset", tau=0.5)
    assert has_button(at, "evaluate_button") and not at.get("plotly_chart")
    assert "τ = 0.20" in captions(at) and "not these settings" in captions(at)


def test_a_file_of_another_checkpoint_is_ignored_as_stale(stored_run, tmp_path):
    run = copy_run(stored_run, tmp_path / "retrained")
    write_tiny_run(run, "spg", seed=1)  # same folder, new weights: the stored results are not theirs
    for page, button in (("dataset", "evaluate_button"), ("triage", "triage_button")):
        at = start(run, page)
        assert has_button(at, button), page
        assert "computed with another checkpoint.pt: ignored as stale" in captions(at), page
        assert "Precomputed on " not in captions(at), page


def test_an_unreadable_file_is_ignored(stored_run, tmp_path):
    run = copy_run(stored_run, tmp_path / "broken")
    (run / EVALUATION_FILE).write_bytes(gzip.compress(b"{not json"))
    at = start(run, "dataset")
    assert has_button(at, "evaluate_button")
    assert f"{EVALUATION_FILE} cannot be read" in captions(at)


def test_stored_results_equal_a_fresh_computation(stored_run):
    stored = read_stored(stored_run)
    model, config, _ = load_run(stored_run)
    data = DataSettings.from_flags(config)
    dataset = data.dataset("test")
    kinds = []
    for settings, result in stored["entries"].values():
        assert settings["data"] == data.key("test") and settings["n"] == IMAGES
        kinds.append(settings.get("protocol", settings["kind"]))
        if settings["kind"] == "evaluate":
            fresh = evaluate_first(model, dataset, settings["n"], settings["protocol"], settings["tau"],
                                   settings["map_stage"])
            assert result["rows"] == fresh["rows"]
            assert json_ready(result["metrics"]) == json_ready(fresh["metrics"])
            assert result["curves"].keys() == fresh["curves"].keys()
            for name, curve in fresh["curves"].items():
                assert curve.to_dict() == result["curves"][name].to_dict(), name
        else:
            fresh = seed_statistics_first(model, config, dataset, settings["n"], settings["stage"],
                                          settings["lows"], settings["highs"])
            assert result["indices"] == fresh["indices"] and result["mask_size"] == fresh["mask_size"]
            for name, values in fresh["per_image"].items():
                np.testing.assert_array_equal(result["per_image"][name], values)
            for name, values in fresh["summary"].items():
                np.testing.assert_array_equal(result["summary"][name], values)
    assert set(kinds) == {"paper", "seeds", "wsolevaluation"}


@pytest.mark.skipif(not {"synthetic-spg", "synthetic-plain"} <= set(shipped_runs()),
                    reason="the shipped synthetic-spg / synthetic-plain runs are not installed")
def test_the_shipped_runs_open_the_pages_with_results():
    """The app's own default (synthetic-spg, compared with synthetic-plain on the Dataset page):
    the sidebar's defaults are the stored settings, so both pages show results at once."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page_request"] = "dataset"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not has_button(at, "evaluate_button")
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert len(table) == 2 + 3 and (table["images"] == 200).all()  # two runs, three baselines
    assert captions(at).count("Precomputed on ") == 2
    at.session_state["page_request"] = "triage"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not has_button(at, "triage_button") and tiles(at)
    # the stored rows carry the image sizes COCO boxes need: both downloads are offered at once
    downloads = [element.proto.label for element in at.get("download_button")]
    assert "Triage table (CSV)" in downloads and "Boxes (COCO detections)" in downloads
