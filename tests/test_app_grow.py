"""The explore page's "grow the guidance with these thresholds" section, driven headless with
AppTest on tiny untrained runs (tests/app_runs.py): fresh heads grown at the sliders' δ values on
a dataset image and on a batch of the run's validation images, shown next to the trained run's.
SPG_APP_GUIDANCE_STEPS keeps each growth to two steps."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
pytestmark = pytest.mark.slow  # each test trains fresh heads for seconds

from app_runs import write_tiny_run  # noqa: E402
from test_app import drawn_maps, images, release, start, texts  # noqa: E402

COMPARED = ("B2", "Mask-B2 (seeds for B1)", "B1", "Fused guidance (B1+B2)/2", "Mask-fuse (seeds for SPG-C)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("grow-runs")
    return {"spg": write_tiny_run(root / "tiny-spg", "spg", num_val=6),
            "plain": write_tiny_run(root / "tiny-plain", "plain")}


@pytest.fixture(autouse=True)
def short_budget(monkeypatch):
    monkeypatch.setenv("SPG_APP_GUIDANCE_STEPS", "2")


def tables(at, column: str):
    return [frame.value for frame in at.dataframe if column in frame.value.columns]


def test_grow_on_a_dataset_image_at_the_slider_thresholds(runs):
    at = start(runs["spg"])
    assert "Grow the guidance with these thresholds (beyond the paper)" in [h.value for h in at.subheader]
    assert not any(alt.startswith("Grown here") for alt in images(at))  # nothing grown until asked
    release(at, mask_a=(0.2, 0.8))
    at.button(key="grow_here_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    pictures = images(at)
    for title in COMPARED:
        assert f"Grown here: {title}" in pictures and f"Trained run: {title}" in pictures, title
    assert "Grown here: SPG-C" not in pictures and "Trained run: SPG-C" in pictures
    # The heads were grown at the sliders' values, and both rows are thresholded there.
    result = next(iter(at.session_state["grown_here"].values()))[1]
    assert result.steps == 2  # SPG_APP_GUIDANCE_STEPS: a fixed count of steps, whatever the machine's load
    assert (result.preset.stage("mask_a").delta_low, result.preset.stage("mask_a").delta_high) == (0.2, 0.8)
    assert "Mask-A 0.20/0.80" in texts(at)
    table = tables(at, "fg precision · grown")[0]
    assert list(table["seeds"]) == ["Mask-A (seeds for B2)", "Mask-B2 (seeds for B1)", "Mask-fuse (seeds for SPG-C)"]
    for column in ("fg precision · trained", "fg precision · grown", "object covered · trained",
                   "object covered · grown"):
        assert table[column].str.endswith("%").all(), column
    assert table.loc[0, "fg precision · trained"] == table.loc[0, "fg precision · grown"]  # one classifier
    # The pipeline view still shows the trained run's maps; a later release is flagged.
    assert drawn_maps(at) == {"attention", "b2", "b1", "fused", "c"}
    release(at, mask_a=(0.3, 0.8))
    assert not at.exception and "The sliders have moved since" in texts(at)
    at.checkbox(key="grow_here_c").check().run()
    at.button(key="grow_here_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Grown here: SPG-C" in images(at) and "The sliders have moved since" not in texts(at)


def test_grow_on_a_batch_of_validation_images(runs):
    at = start(runs["spg"])
    at.radio(key="grow_here_mode").set_value("batch").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.get("plotly_chart")
    count = at.number_input(key="grow_batch_n")
    assert count.value == 6 and "the run's validation split" in count.label  # min(32, its 6 images)
    count.set_value(4).run()
    at.button(key="grow_batch_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    key, result = at.session_state["grown_batch"]
    assert len(result) == 4 and result.steps == 2 and set(result.grown) >= {"b2", "b1", "fused"}  # a fixed count
    assert "Grown on 4 images" in texts(at)
    table = tables(at, "fg precision · grown")[0]
    assert len(table) == 3 and table["fg precision · trained"].str.endswith("%").all()
    assert table["object covered · grown"].str.endswith("%").all()
    assert len(at.get("plotly_chart")) == 1  # the summary figure (the page's histograms are off)
    release(at, mask_b2=(0.2, 0.9))
    assert not at.exception and "press the button to grow at the new values" in texts(at)


def test_a_plain_run_grows_heads_it_does_not_have(runs):
    at = start(runs["plain"])
    at.button(key="grow_here_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    pictures = images(at)
    assert "Grown here: B2" in pictures and "Trained run: B2" not in pictures
    assert "Trained run: no B2 in these heads" in texts(at)
    # No validation split in this run: the batch uses the images shown, and says so.
    at.radio(key="grow_here_mode").set_value("batch").run()
    assert not at.exception and "no validation split" in at.number_input(key="grow_batch_n").label
