"""The Streamlit app driven headless with streamlit.testing (AppTest): every page, the sliders,
presets, model switch, uploads, and the app's plumbing in spg_app.

Most tests use a tiny untrained run (tests/app_runs.py) so that a script run costs well under
a second; one test opens the app on its real default, the shipped run.
"""
from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import IMAGES, write_tiny_run  # noqa: E402
from spg_app.datasets import DatasetView  # noqa: E402
from spg_app.downloads import boxes_json, maps_npz  # noqa: E402
from spg_app.loaders import ResultCache  # noqa: E402
from spg_app.pictures import encode_picture, mask_picture, png_bytes, strip_pictures  # noqa: E402
from spg_app.thresholds import clean_thresholds, threshold_view  # noqa: E402
from spg_app.uploads import DISPLAY_MAX_SIDE, MAX_UPLOAD_BYTES, UploadError, read_upload  # noqa: E402
from spg_app.widgets import classes_table, numbers_table, read_classes_table, read_numbers_table  # noqa: E402
from spg_core.runs import SHIPPED_DIR, shipped_runs  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180  # generous: the first run of a process imports torch and builds the model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"spg": write_tiny_run(root / "tiny-spg", "spg"), "plain": write_tiny_run(root / "tiny-plain", "plain")}


def link_values(at: AppTest, state: dict) -> None:
    """Values of the session's view, given as a deep link gives them (spg_app.links): taken out of
    ``state``, into the AppTest's URL query."""
    if "explore_index" in state:
        at.query_params["image"] = str(state.pop("explore_index"))
    if "tau" in state:
        at.query_params["tau"] = f"{state.pop('tau'):.2f}"
    for stage, (low, high) in state.pop("current_thresholds", {}).items():
        at.query_params[stage] = f"{low:.2f}-{high:.2f}"


def start(run: Path | None = None, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if run is not None:
        at.session_state["model_choice"] = "__run_dir__"
        at.session_state["run_dir"] = str(run)
    link_values(at, state)
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.session_state["page_request"] = page
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def images(at: AppTest) -> dict[str, str]:
    """alt text -> media URL of every picture (the URL is a hash of the picture's bytes)."""
    out = {}
    for element in at.get("image"):
        for img in element.proto.imgs:
            out[img.alt] = img.url
    return out


def images_captions(at: AppTest) -> dict[str, str]:
    return {img.alt: img.caption for element in at.get("image") for img in element.proto.imgs}


def numbers(at: AppTest):
    """The explore page's seed numbers as one row per stage (each stage's panel has a table of its
    own, ``widgets.numbers_table``: a row per number, the stage's title as the column)."""
    rows = []
    for title, values in filter(None, (read_numbers_table(m.value) for m in at.markdown)):
        rows.append({"stage": title, **values, "δ_l": float(values["δ_l"]), "δ_h": float(values["δ_h"])})
    assert rows, "seed tables missing"
    return pd.DataFrame(rows)


def top_classes(at: AppTest) -> list[tuple[str, str]]:
    """The explore page's top-k classes (``widgets.classes_table``) as (class, probability) rows."""
    tables = [rows for rows in (read_classes_table(m.value) for m in at.markdown) if rows is not None]
    assert len(tables) == 1, "top-k table missing"
    return tables[0]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


_RELEASES = itertools.count(1)


def pipeline(at: AppTest) -> dict:
    """The pipeline view's arguments: what the browser is given to draw (spg_app.pipeline_view)."""
    views = at.get("component_instance")
    assert views, "pipeline view missing"
    return json.loads(views[0].proto.json_args)


def drawn_maps(at: AppTest, run: int = 0) -> set[str]:
    """The maps the pipeline view draws for one of its runs."""
    return set(pipeline(at)["data"]["runs"][run]["maps"])


def shown(at: AppTest, stage: str) -> tuple[float, float]:
    """A stage's (δ_l, δ_h) as the pipeline view is given them."""
    return tuple(pipeline(at)["values"]["thresholds"][stage])


def release(at: AppTest, tau: float | None = None, alpha: float | None = None, **thresholds) -> AppTest:
    """A release in the pipeline view, as the browser sends it: the component's value (the
    session view's values with ``thresholds`` — stage=(δ_l, δ_h) —, τ and α replaced)."""
    current = at.session_state["view"]
    value = {"thresholds": {stage: list(thresholds.get(stage, pair)) for stage, pair in current.thresholds.items()},
             "tau": current.tau if tau is None else tau, "alpha": current.alpha if alpha is None else alpha,
             "nonce": next(_RELEASES)}
    at.session_state["pipeline"] = value
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "warning") for e in getattr(at, kind)]
    parts += [e.value for e in at.sidebar.error] + [e.value for e in at.sidebar.caption]
    return "\n".join(str(p) for p in parts)


# ----------------------------------------------------------------------------- explore page
@pytest.mark.skipif("synthetic-spg" not in shipped_runs(), reason="the shipped synthetic-spg run is not installed")
def test_default_app_opens_on_the_shipped_run_with_every_stage():
    at = start()
    assert at.session_state["model_choice"] == "synthetic-spg"
    assert drawn_maps(at) == {"attention", "b2", "b1", "fused", "c"}  # every stage, in the pipeline view
    assert "Localisation map + box" in images(at)
    table = numbers(at)
    assert len(table) == 3 and table["fg precision"].str.endswith("%").all()
    assert metric(at, "IoU of the box with GT") != "—"
    if "synthetic-plain" not in shipped_runs():
        assert "synthetic-plain" in texts(at)  # its absence is said, not hidden
    # It opens on the test image its metrics.json names: one where the guidance visibly grows.
    showcase = json.loads((SHIPPED_DIR / "synthetic-spg" / "metrics.json").read_text()).get("showcase_index")
    assert showcase is not None and at.session_state["view"].image == showcase


def test_a_release_changes_the_numbers_and_what_the_view_shows(runs):
    at = start(runs["spg"])
    before, data = numbers(at), pipeline(at)
    release(at, mask_a=(0.3, 0.5))
    assert not at.exception
    after = numbers(at)
    assert (after.loc[0, "foreground"], after.loc[0, "background"]) != (before.loc[0, "foreground"],
                                                                      before.loc[0, "background"])
    assert after.loc[0, "δ_l"] == 0.3 and after.loc[0, "δ_h"] == 0.5
    assert pipeline(at)["values"]["thresholds"]["mask_a"] == [0.3, 0.5]
    # The maps the browser thresholds are the same: a release sends values, not pictures.
    assert pipeline(at)["data_key"] == data["data_key"]


def test_tau_release_moves_the_box(runs):
    at = start(runs["spg"])
    box = metric(at, "Predicted box (x0, y0, x1, y1)")
    # τ and the opacity are the pipeline view's controls on this page: the sidebar only names them.
    assert not [s for s in at.sidebar.slider if s.key in ("tau", "alpha")]
    assert "controls of the pipeline view" in texts(at)
    release(at, tau=0.9)
    assert not at.exception
    assert metric(at, "Predicted box (x0, y0, x1, y1)") != box
    assert metric(at, "IoU of the box with GT") != "—"
    assert "at τ = 0.90" in images_captions(at)["Localisation map + box"]
    assert pipeline(at)["values"]["tau"] == 0.9


def test_an_open_histogram_reruns_with_the_delta_slider(runs):
    at = start(runs["spg"], show_histograms=True)
    shapes = lambda: json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"]  # noqa: E731
    assert any(shape["x0"] == 0.1 for shape in shapes())  # Mask-A's δ_l of the paper preset
    release(at, mask_a=(0.3, 0.7))
    assert not at.exception
    assert any(shape["x0"] == 0.3 for shape in shapes())


def test_tau_on_another_page_reruns_that_page(runs):
    at = start(runs["spg"], page="dataset")
    at.sidebar.slider(key="tau").set_value(0.9).run()
    assert not at.exception
    assert at.session_state["explore_on_screen"] is False and at.title[0].value != "Explore one image"


def test_presets_and_reset_buttons(runs):
    at = start(runs["spg"])
    shown = lambda stage: tuple(pipeline(at)["values"]["thresholds"][stage])  # noqa: E731
    assert shown("mask_a") == (0.1, 0.7)  # the run's preset: paper
    at.selectbox(key="preset").set_value("wsolevaluation").run()
    assert shown("mask_a") == (0.01, 0.7)
    release(at, mask_a=(0.2, 0.9), mask_b2=(0.2, 0.9))
    assert shown("mask_a") == (0.2, 0.9) and shown("mask_b2") == (0.2, 0.9)
    at.button(key="reset_all").click().run()
    assert shown("mask_a") == (0.01, 0.7) and shown("mask_b2") == (0.05, 0.5)
    assert not at.exception


def test_equal_thresholds_are_guarded(runs):
    at = start(runs["spg"])
    release(at, mask_a=(0.4, 0.4))  # Eq. 1 needs δ_l < δ_h: the server cleans what it is sent, too
    assert not at.exception
    table = numbers(at)
    assert table.loc[0, "δ_l"] == 0.4 and table.loc[0, "δ_h"] == pytest.approx(0.41)
    assert tuple(pipeline(at)["values"]["thresholds"]["mask_a"]) == (0.4, 0.41)


def test_model_switch_to_plain_and_to_a_bad_folder(runs, tmp_path):
    at = start(runs["spg"])
    assert "b2" in drawn_maps(at)
    at.sidebar.text_input(key="run_dir").set_value(str(runs["plain"])).run()
    assert not at.exception
    assert drawn_maps(at) == {"attention"} and "Localisation map + box" in images(at)
    assert "SPG-plain has no B1, B2 or SPG-C" in texts(at)
    at.sidebar.text_input(key="run_dir").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("no run at" in e.value for e in at.sidebar.error)


def test_class_choice_shows_another_map(runs):
    at = start(runs["spg"])
    attention = pipeline(at)["data"]["runs"][0]["maps"]["attention"]
    predicted = metric(at, "Map shown")
    other = next(i for i in range(3) if at.selectbox(key="view_class").format_func(i) != predicted)
    at.selectbox(key="view_class").set_value(other).run()
    assert not at.exception
    assert pipeline(at)["data"]["runs"][0]["maps"]["attention"] != attention
    assert len(top_classes(at)) == 3  # top-5 of a 3-class model


def test_box_from_a_guidance_map_is_an_extension(runs):
    at = start(runs["spg"])
    assert at.selectbox(key="box_stage").value == "attention"
    final = images(at)["Localisation map + box"]
    at.selectbox(key="box_stage").set_value("fused").run()
    assert not at.exception
    assert images(at)["Localisation map + box"] != final and pipeline(at)["data"]["box_stage"] == "fused"
    assert "(from Fused guidance" in next(img.caption for e in at.get("image") for img in e.proto.imgs
                                          if img.alt == "Localisation map + box")


def _png(width=80, height=60) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_of_a_valid_and_invalid_files(runs):
    at = start(runs["spg"], image_source="upload")
    assert "Upload a photo" in texts(at)
    at.file_uploader(key="upload").set_value(("photo.png", _png(), "image/png")).run()
    assert not at.exception
    assert "attention" in drawn_maps(at)
    assert metric(at, "IoU of the box with GT") == "—"
    at.file_uploader(key="upload").set_value(("notes.txt", b"hello", "text/plain")).run()
    assert not at.exception
    assert any(".txt files are not supported" in e.value for e in at.error)
    at.file_uploader(key="upload").set_value(("broken.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")).run()
    assert not at.exception
    assert any("could not be read as an image" in e.value for e in at.error)
    big = b"\xff\xd8\xff" + bytes(MAX_UPLOAD_BYTES)
    at.file_uploader(key="upload").set_value(("huge.jpg", big, "image/jpeg")).run()
    assert not at.exception
    assert any("the limit is 20 MB" in e.value for e in at.error)


def test_browse_by_class_and_worst_iou_first(runs):
    at = start(runs["spg"], browse_mode="class")
    assert not at.exception
    at.selectbox(key="explore_class").set_value(2).run()
    assert "ground truth: " in texts(at)
    at.selectbox(key="browse_mode").set_value("worst").run()
    at.button(key="rank_button").click().run()
    assert not at.exception
    assert "Evaluator: IoU" in texts(at)
    at.number_input(key="worst_rank").set_value(IMAGES - 1).run()
    assert not at.exception and "attention" in drawn_maps(at)


def test_user_dataset_errors_are_messages(runs, tmp_path):
    at = start(runs["spg"], data_source="custom", data_format="wsol", data_root=str(tmp_path / "missing"))
    assert not at.exception
    assert any("Could not open the dataset" in e.value for e in at.sidebar.error)
    at.sidebar.selectbox(key="data_format").set_value("synthetic").run()
    at.sidebar.number_input(key="data_count").set_value(5).run()
    assert not at.exception
    assert "synthetic · test · 5 images" in texts(at)


# ----------------------------------------------------------------------------- dataset page
def test_dataset_page_curves_histogram_and_sweep(runs):
    at = start(runs["spg"], page="dataset", eval_n=6, sweep_n=4)
    assert "Dataset" in [t.value for t in at.title]
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.get("plotly_chart")) == 1 + 1  # curves, IoU histogram (the sweep is not run yet)
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert table.loc[0, "images"] == 6
    at.button(key="sweep_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.get("plotly_chart")) == 4  # + precision/coverage heatmaps, fallback rate
    assert "Nearest grid cell to your current thresholds" in texts(at)
    at.selectbox(key="eval_map_stage").set_value("fused").run()
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert table.loc[0, "images"] == 6
    at.selectbox(key="eval_protocol").set_value("paper").run()  # not evaluated yet: asks, does not compute
    assert not at.exception
    assert at.button(key="evaluate_button")


def test_dataset_page_compares_two_models(runs, monkeypatch):
    at = start(runs["spg"], page="dataset", eval_n=4)
    options = at.multiselect(key="compare_runs").options
    assert options[0] == "__current__" or options[0].startswith(str(runs["spg"]))
    at.button(key="evaluate_button").click().run()
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    baselines = [name for name in table["model"] if name.startswith("baseline · ")]  # three rows after the models
    assert len(table) - len(baselines) == len(at.multiselect(key="compare_runs").value) and len(baselines) == 3


# ----------------------------------------------------------------------------- triage page
def test_triage_gallery_filters_and_opens_in_explore(runs):
    at = start(runs["spg"], page="triage", triage_n=IMAGES, triage_failures=["ok", "wrong-class", "part-only",
                                                                             "too-large", "wrong-place"])
    at.button(key="triage_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    tiles = [alt for alt in images(at) if alt.startswith("triage ")]
    assert len(tiles) == min(IMAGES, 12)
    downloads = [element.proto.label for element in at.get("download_button")]
    assert "Triage table (CSV)" in downloads and "Boxes (COCO detections)" in downloads
    at.radio(key="triage_fallback").set_value("fired").run()
    fired = [alt for alt in images(at) if alt.startswith("triage ")]
    at.radio(key="triage_fallback").set_value("not fired").run()
    not_fired = [alt for alt in images(at) if alt.startswith("triage ")]
    assert len(fired) + len(not_fired) == len(tiles)
    at.radio(key="triage_fallback").set_value("any").run()
    first = tiles[0].split()[1]
    at.button(key=f"open_{first}").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Explore one image"]
    assert at.number_input(key="explore_index").value == int(first)
    assert f"#{first} ·" in texts(at)


# ----------------------------------------------------------------------------- spg_app plumbing
def test_read_upload_checks_size_type_and_content():
    image, scale = read_upload("a.png", _png(50, 40))
    assert image.size == (50, 40) and scale == 1.0
    image, scale = read_upload("big.png", _png(2400, 1200))
    assert max(image.size) == DISPLAY_MAX_SIDE and scale == pytest.approx(DISPLAY_MAX_SIDE / 2400)
    with pytest.raises(UploadError, match="holds PNG data"):
        read_upload("a.jpg", _png())
    with pytest.raises(UploadError, match="empty"):
        read_upload("a.png", b"")
    with pytest.raises(UploadError, match="limit"):
        read_upload("a.png", _png(), max_bytes=10)


def test_clean_thresholds_and_custom_preset():
    from spg_core.guidance import PRESETS

    assert clean_thresholds(0.1, 0.7) == (0.1, 0.7, False)
    assert clean_thresholds(0.5, 0.5) == (0.5, 0.51, True)
    assert clean_thresholds(1.0, 1.0) == (0.99, 1.0, True)
    preset = PRESETS["paper"].with_thresholds({"mask_a": (0.2, 0.8), "mask_b2": (0.05, 0.5)})
    assert (preset.mask_a.delta_low, preset.mask_a.delta_high) == (0.2, 0.8)
    assert preset.mask_b2 == PRESETS["paper"].mask_b2


def test_threshold_view_and_downloads(runs):
    from spg_core.guidance import PRESETS
    from spg_core.localize import Localizer

    localizer = Localizer.from_run(runs["spg"])
    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    maps = localizer.predict(image)
    gt = np.array([[10, 5, 40, 30]], dtype=np.float32)
    region = np.zeros((48, 64), bool)
    region[5:31, 10:41] = True
    view = threshold_view(maps, PRESETS["paper"], 0.2, region, gt)
    assert set(view.masks) == {"mask_a", "mask_b2", "mask_fuse"}
    assert 0 <= view.iou <= 1 and len(view.box) == 4
    assert "foreground_precision" in view.report["mask_a"]
    tiles = strip_pictures(maps, view, 0.5, gt)
    assert [name for name, _, _ in tiles][0] == "image" and tiles[-1][0] == "final"
    archive = np.load(io.BytesIO(maps_npz(maps, view.masks)))
    assert {"attention", "b2", "b1", "fused", "c", "mask_a", "probabilities"} <= set(archive.files)
    assert archive["mask_a"].shape == (48, 64) and archive["mask_a"].dtype == np.uint8
    payload = json.loads(boxes_json("x", maps, view, 0.2, PRESETS["paper"], gt))
    assert payload["predicted_box"] == list(view.box) and payload["gt_boxes"] == gt.tolist()
    assert png_bytes(tiles[-1][2]).startswith(b"\x89PNG")
    # Seed masks stay exact when shrunk for the page; large overlays go out as JPEG.
    big = Image.fromarray(np.kron(np.asarray(mask_picture(view, "mask_a")), np.ones((20, 20), np.uint8)))
    data, fmt = encode_picture(big, exact=True)
    assert fmt == "PNG" and set(np.unique(np.asarray(Image.open(io.BytesIO(data))))) <= {0, 128, 255}
    assert encode_picture(big.convert("RGB").resize((900, 700)))[1] == "JPEG"


def test_dataset_view_reports_progress_and_forwards_attributes():
    from spg_core.data import build_dataset

    dataset = build_dataset("synthetic", "test", image_size=64, num_classes=2, num_train=0, num_val=0, num_test=5)
    seen = []
    view = DatasetView(dataset, 3, lambda done, total: seen.append((done, total)))
    assert len(view) == 3 and view.split == "test" and view.image_size == 64 and len(view.records) == 3
    view[0], view[2]
    assert seen == [(1, 3), (2, 3)]
    with pytest.raises(IndexError):
        view[3]
    cache = ResultCache(max_entries=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") is None and cache.get("c") == "C"


# ----------------------------------------------------------------------------- ImageNet model, single-image guidance
def test_imagenet_model_on_an_uploaded_photo_and_grown_guidance(runs, monkeypatch):
    skimage_data = pytest.importorskip("skimage.data")
    monkeypatch.setenv("SPG_APP_GUIDANCE_STEPS", "2")  # two steps instead of IMAGE_STEPS
    at = start(runs["spg"], image_source="upload")
    at.sidebar.selectbox(key="model_choice").set_value("__imagenet__").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Uploads only" in "\n".join(e.value for e in at.sidebar.info)
    assert at.radio(key="image_source").disabled
    cat = Image.fromarray(skimage_data.chelsea()).resize((150, 100))
    buffer = io.BytesIO()
    cat.save(buffer, format="PNG")
    at.file_uploader(key="upload").set_value(("chelsea.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception, [e.message for e in at.exception]
    top = top_classes(at)
    assert len(top) == 5 and any("cat" in name for name, _ in top)
    assert drawn_maps(at) == {"attention"}
    at.button(key="grow_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Guidance growth" in images(at)
    assert {"attention", "b2", "b1", "fused"} <= drawn_maps(at)  # the same view, over the grown maps
    assert at.get("plotly_chart")  # the coverage history
    release(at, mask_b2=(0.3, 0.9))  # still live: the grown maps are thresholded at the released values
    assert not at.exception
    assert numbers(at).set_index("stage").loc["Mask-B2", "δ_l"] == 0.3 and "Guidance growth" in images(at)
    at.button(key="grow_clear").click().run()
    assert not at.exception and drawn_maps(at) == {"attention"}
    at = start(model_choice="__imagenet__", page="dataset")  # the other pages need a dataset: said, not raised
    assert "has no dataset here" in texts(at)


# ----------------------------------------------------------------------------- a maps folder as a model
@pytest.fixture(scope="module")
def maps_folder(runs, tmp_path_factory):
    """The tiny run's test maps exported as wsolevaluation score maps, a second folder of other maps
    (its maps squared), and the run's benchmark written as wsol metadata without its images."""
    import shutil

    from spg_core.cli import main
    from spg_core.config import TrainConfig, load_config_file
    from spg_core.data import SyntheticConfig, write_wsol

    root = tmp_path_factory.mktemp("maps")
    assert main(["evaluate", "--run", str(runs["spg"]), "--protocol", "wsolevaluation", "--device", "cpu",
                 "--threshold-split", "", "--out", str(root / "eval"), "--export-maps", str(root / "maps")]) == 0
    for path in (root / "maps").rglob("*.npy"):
        target = root / "squared" / path.relative_to(root / "maps")
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, np.load(path) ** 2)
    config = TrainConfig.from_dict(load_config_file(runs["spg"] / "config.yaml"))
    data = write_wsol(root / "data", SyntheticConfig(image_size=config.image_size, **config.synthetic),
                      splits=("test",), progress=False)
    shutil.copytree(data, root / "with_images")
    shutil.rmtree(data / "images")
    return {"maps": root / "maps", "squared": root / "squared", "data": data, "metadata": data / "metadata",
            "with_images": root / "with_images"}


def start_maps(maps_folder, page: str | None = None, **state) -> AppTest:
    return start(None, page, model_choice="__maps__", maps_dir=str(maps_folder["maps"]), maps_label="exported",
                 maps_metadata_root=str(maps_folder["metadata"]), maps_data_root=str(maps_folder["data"]), **state)


def test_maps_folder_on_the_dataset_page_scores_as_evaluate_maps(maps_folder):
    from spg_core.data.settings import DataSettings
    from spg_core.evaluate import evaluate_map_folder

    at = start_maps(maps_folder, page="dataset", eval_n=IMAGES)
    assert "no images" in texts(at)
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    dataset = DataSettings.from_flags(None, format="wsol", data_root=str(maps_folder["data"]),
                                      metadata_root=str(maps_folder["metadata"])).dataset("test", need_images=False)
    expected = evaluate_map_folder(maps_folder["maps"], dataset)
    row = table.iloc[0]
    assert row["images"] == IMAGES == expected["num_images"]
    for column, name in (("MaxBoxAcc", "maxboxacc"), ("MaxBoxAccV2", "maxboxacc_v2"), ("PxAP", "pxap")):
        assert float(row[column]) == round(expected[name], 1), column
    assert row["Top-1 Loc"] == "—" and row["Top-1 cls"] == "—"
    assert "has no classifier" in texts(at)


def test_maps_folder_triage_lists_worst_iou_first(maps_folder):
    at = start_maps(maps_folder, page="triage", triage_n=IMAGES,
                    triage_failures=["ok", "wrong-class", "part-only", "too-large", "wrong-place"])
    at.button(key="triage_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c.value for c in at.caption if c.value.startswith("**#")]
    assert len(captions) == min(IMAGES, 12)
    ious = [float(c.split("IoU ")[1].split(" ")[0]) for c in captions]
    assert ious == sorted(ious)
    assert "Mask-A fallback does not apply" in texts(at)


def test_maps_folder_explore_shows_its_map_and_box_without_images(maps_folder):
    at = start_maps(maps_folder, explore_index=3)
    assert not at.exception, [e.message for e in at.exception]
    assert "Map and box" in images(at)
    assert metric(at, "IoU of the box with GT") != "—"
    assert "holds one final map per image" in texts(at)
    assert drawn_maps(at) == {"attention"}  # the folder's map in the pipeline view, over a grey image
    before = metric(at, "Predicted box (x0, y0, x1, y1)")
    release(at, tau=0.9)
    assert not at.exception
    assert metric(at, "Predicted box (x0, y0, x1, y1)") != before


def test_a_run_and_two_maps_folders_on_one_chart(runs, maps_folder):
    at = start(runs["spg"], page="dataset", eval_n=IMAGES, eval_curves=["gt_known_loc"],
               compare_runs=["__current__"],
               compare_more=f"exported = {maps_folder['maps']}\nsquared = {maps_folder['squared']}")
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert len(table) == 3 + 3  # and the three baselines' rows
    # The run's own exported maps score as the run does (wsolevaluation's numbers).
    assert float(table.loc[1, "MaxBoxAccV2"]) == float(table.loc[0, "MaxBoxAccV2"])
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len([trace for trace in chart["data"] if "GT-known" in trace.get("name", "")]) == 3


def test_maps_folder_errors_are_one_line(tmp_path):
    at = start(None, model_choice="__maps__", maps_dir=str(tmp_path))
    assert "holds no .npy map" in texts(at)
    at = start(None, model_choice="__maps__", maps_dir="/etc")
    assert "outside the folders" in texts(at)


def test_maps_folder_on_the_training_page_says_why_not(maps_folder):
    at = start_maps(maps_folder, page="training")
    assert "no training to replay" in texts(at)


def test_maps_folder_with_images_compares_with_a_run_on_the_same_images(runs, maps_folder):
    """The sidebar's maps folder over metadata with its images; the run that wrote the maps, typed
    below the list, is scored on those images at its own input size: the same wsolevaluation numbers."""
    at = start(None, page="dataset", model_choice="__maps__", maps_dir=str(maps_folder["maps"]), maps_label="exported",
               maps_metadata_root=str(maps_folder["with_images"] / "metadata"),
               maps_data_root=str(maps_folder["with_images"]), eval_n=IMAGES, compare_more=str(runs["spg"]))
    assert "no images" not in texts(at)
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert len(table) == 2 + 3  # and the three baselines' rows
    assert float(table.loc[0, "MaxBoxAccV2"]) == float(table.loc[1, "MaxBoxAccV2"])
    assert table.loc[0, "Top-1 cls"] == "—" and table.loc[1, "Top-1 cls"] != "—"
    at = start(None, model_choice="__maps__", maps_dir=str(maps_folder["maps"]),
               maps_metadata_root=str(maps_folder["with_images"] / "metadata"),
               maps_data_root=str(maps_folder["with_images"]), explore_index=2)
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs if img.alt == "Map and box"]
    assert captions and "over the image" in captions[0]


def test_numbers_table_reads_back_and_ignores_other_markdown():
    numbers = {"δ_l": "0.25", "δ_h": "0.70", "foreground": "4.4%", "fg precision": "—", "fallback": "no"}
    text = numbers_table("Mask-A (seeds for B2)", numbers)
    assert text.splitlines()[0] == "| seeds | Mask-A (seeds for B2) |"
    assert read_numbers_table(text) == ("Mask-A (seeds for B2)", numbers)
    assert read_numbers_table("**#3 · `a.png`**") is None
    assert read_numbers_table("| class | probability |\n|---|---|\n| a | 1.0% |") is None


def test_classes_table_reads_back_names_with_markdown_characters():
    rows = [("red|blue bird", 0.625), ("*star*_fish", 0.25), ("a\\b", 0.125)]
    text = classes_table(rows)
    assert len(text.splitlines()) == 5
    assert read_classes_table(text) == [("red|blue bird", "62.5%"), ("*star*_fish", "25.0%"), ("a\\b", "12.5%")]
    assert read_classes_table(numbers_table("Mask-A", {"δ_l": "0.25"})) is None


def test_downloads_are_made_from_the_values_on_screen(runs, monkeypatch):
    """The download buttons' data is made when pressed: from the δ values and τ then on screen
    (a release's or the box panel's own rerun keeps them), with seed precision against GT."""
    import streamlit.testing.v1.app_test as app_test

    managers, original = [], app_test.MediaFileManager
    monkeypatch.setattr(app_test, "MediaFileManager", lambda storage: managers.append(original(storage)) or managers[-1])
    at = start(runs["spg"])
    release(at, mask_a=(0.3, 0.6))
    release(at, tau=0.4)
    button = next(e for e in at.get("download_button") if e.proto.id.endswith("-download_boxes"))
    made = managers[-1]._deferred_callables[button.proto.deferred_file_id]["callable"]()
    payload = json.loads(made)
    assert payload["tau"] == 0.4
    assert payload["thresholds"]["mask_a"] == {"delta_low": 0.3, "delta_high": 0.6}
    assert payload["seeds"]["mask_a"]["foreground_precision"] is not None


def test_the_server_runs_each_forward_on_the_threads_it_is_given(monkeypatch):
    import torch

    from spg_app import serve
    from spg_app.loaders import THREADS_VARIABLE, app_threads, use_app_threads

    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert app_threads() == 1  # a class's server: one thread per forward
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert app_threads() == 3
    previous = torch.get_num_threads()
    try:
        monkeypatch.setenv(THREADS_VARIABLE, "2")
        assert use_app_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.delenv(THREADS_VARIABLE)
        assert use_app_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{THREADS_VARIABLE}='{bad}'.*whole number"):
            app_threads()
    from spg_app.loaders import AHEAD_VARIABLE, ahead_count

    monkeypatch.delenv(AHEAD_VARIABLE, raising=False)
    assert ahead_count() == 1000
    monkeypatch.setenv(AHEAD_VARIABLE, "0")
    assert ahead_count() == 0  # none computed ahead
    monkeypatch.setenv(AHEAD_VARIABLE, "many")
    with pytest.raises(ValueError, match=f"{AHEAD_VARIABLE}='many'.*whole number"):
        ahead_count()
    monkeypatch.setenv(AHEAD_VARIABLE, "0")
    # The launcher refuses a bad value before loading anything, in one line.
    monkeypatch.setattr(serve, "preload", lambda: None)
    monkeypatch.setattr(serve, "warm_default_run", lambda: pytest.fail("loaded a model with a bad thread count"))
    with pytest.raises(SystemExit, match=f"spg_app.serve: {THREADS_VARIABLE}='1.5'"):
        serve.main([])
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    monkeypatch.setenv(AHEAD_VARIABLE, "-5")
    with pytest.raises(SystemExit, match=f"spg_app.serve: {AHEAD_VARIABLE}='-5'"):
        serve.main([])
