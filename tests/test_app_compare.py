"""Two runs side by side on the explore page (spg_app.compare), driven headless with AppTest on
the tiny runs of tests/app_runs.py, and its pictures without Streamlit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from test_app import link_values, pipeline, release  # noqa: E402
from spg_core import viz  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180  # generous: the first run of a process imports torch and builds the model
SPG_MAPS = {"attention", "b2", "b1", "fused", "c"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-runs")
    return {"spg": write_tiny_run(root / "tiny-spg", "spg"),
            "plain": write_tiny_run(root / "tiny-plain", "plain", seed=2),  # seed 0 would share spg's backbone
            "spg2": write_tiny_run(root / "tiny-spg-2", "spg", seed=1),
            "four": write_tiny_run(root / "tiny-4-classes", "spg", num_classes=4)}


def start(first: Path, second: Path | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(first)
    if second is not None:
        at.session_state["compare_with"] = "__run_dir__"
        at.session_state["compare_run_dir"] = str(second)
    link_values(at, state)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def pictures(at: AppTest) -> list[tuple[str, str]]:
    """(alt text, media URL) of every picture, in page order (the URL is a hash of its bytes)."""
    return [(img.alt, img.url) for element in at.get("image") for img in element.proto.imgs]


def tiles(at: AppTest, prefix: str) -> list[str]:
    return [alt.removeprefix(prefix) for alt, _ in pictures(at) if alt.startswith(prefix)]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "error", "warning")
                     for e in getattr(at, kind))


def runs_drawn(at: AppTest) -> list[tuple[str, set[str]]]:
    """(label, maps) of each run the pipeline view draws."""
    return [(run["label"], set(run["maps"])) for run in pipeline(at)["data"]["runs"]]


def test_no_second_run_by_default_draws_only_the_control(runs):
    at = start(runs["spg"])
    assert at.selectbox(key="compare_with").value == "__none__"
    assert "Side by side" not in [h.value for h in at.subheader]
    assert not [alt for alt, _ in pictures(at) if alt[:4] == "A − "]
    assert [maps for _, maps in runs_drawn(at)] == [SPG_MAPS]


def test_spg_next_to_plain_both_runs_ious_and_the_attention_difference(runs):
    at = start(runs["spg"], runs["plain"])
    assert "Side by side" in [h.value for h in at.subheader]
    assert [maps for _, maps in runs_drawn(at)] == [SPG_MAPS, {"attention"}]  # one view, both runs
    assert tiles(at, "A − B · ") == ["Attention map (A4)"]  # plain has no fused guidance
    assert "Not in both runs: Fused guidance (B1+B2)/2" in texts(at)
    first, second = metric(at, "IoU · A"), metric(at, "IoU · B")
    assert first != "—" and second != "—"
    assert metric(at, "IoU · A") == metric(at, "IoU of the box with GT")  # A is the page's own run
    table = next(frame.value for frame in at.dataframe if "p(class shown)" in frame.value.columns)
    assert len(table) == 2 and table["IoU"].notna().all()
    # One release moves both runs: the view is given the new values once, for both.
    before = dict(pictures(at))
    release(at, mask_a=(0.3, 0.5))
    assert not at.exception
    assert len(runs_drawn(at)) == 2 and tuple(pipeline(at)["values"]["thresholds"]["mask_a"]) == (0.3, 0.5)
    assert dict(pictures(at))["A − B · Attention map (A4)"] == before["A − B · Attention map (A4)"]  # maps cached


def test_two_spg_runs_also_show_the_fused_difference(runs):
    at = start(runs["spg"], runs["spg2"], tau=0.5)
    assert [maps for _, maps in runs_drawn(at)] == [SPG_MAPS, SPG_MAPS]
    assert tiles(at, "A − B · ") == ["Attention map (A4)", "Fused guidance (B1+B2)/2"]
    assert "τ = 0.50" in texts(at)
    at.selectbox(key="compare_with").set_value("__none__").run()
    assert not at.exception and len(runs_drawn(at)) == 1


def test_class_count_mismatch_is_reported(runs):
    at = start(runs["spg"], runs["four"])
    warning = "\n".join(w.value for w in at.warning)
    assert "Cannot compare" in warning and "4 classes" in warning and "3" in warning
    assert len(runs_drawn(at)) == 1 and not tiles(at, "A − B · ")
    at = start(runs["spg"], runs["spg"].parent / "nowhere")
    assert any("to compare with" in e.value for e in at.error)


def test_difference_image_colours():
    a = np.array([[0.0, 1.0, 0.5, 0.3]], dtype=np.float32)
    b = np.array([[0.0, 0.0, 1.0, 0.3]], dtype=np.float32)
    picture = np.asarray(viz.difference_image(a, b))
    low, centre, high = viz.DIFFERENCE_COLORS
    assert picture.shape == (1, 4, 3) and picture.dtype == np.uint8
    assert tuple(picture[0, 0]) == centre == tuple(picture[0, 3])  # equal: the centre colour
    assert tuple(picture[0, 1]) == high  # A higher by 1: full red
    assert tuple(picture[0, 2]) == tuple(round((c + e) / 2) for c, e in zip(centre, low))  # B higher by 0.5
    assert tuple(np.asarray(viz.difference_image(a, b, limit=0.5))[0, 2]) == low  # full colour at the limit
    assert tuple(np.asarray(viz.difference_image(b, a))[0, 1]) == low  # swapped: blue
    with pytest.raises(ValueError, match="one size"):
        viz.difference_image(a, b[:, :3])
    with pytest.raises(ValueError, match="positive"):
        viz.difference_image(a, b, limit=0)


def test_difference_picture(runs):
    from spg_app.pictures import difference_picture, map_gaps
    from spg_core.localize import Localizer

    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    spg, plain = (Localizer.from_run(runs[name]).predict(image, 0) for name in ("spg", "plain"))
    picture = difference_picture(spg, plain, "attention")
    assert picture.size == image.size and picture.mode == "RGB"
    same = np.asarray(difference_picture(spg, spg, "attention"))
    assert (same == viz.DIFFERENCE_COLORS[1]).all()
    gaps = map_gaps(spg, plain)
    assert list(gaps) == ["attention"]  # plain has no fused guidance
    mean, largest = gaps["attention"]
    assert mean == pytest.approx(np.abs(spg.maps["attention"] - plain.maps["attention"]).mean(), rel=1e-5)
    assert 0 < mean <= largest <= 1 and map_gaps(spg, spg) == {"attention": (0.0, 0.0), "fused": (0.0, 0.0)}
