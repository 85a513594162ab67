"""The app's tour in the sidebar: every step opens its page with the settings that show it."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")

from app_runs import write_tiny_run  # noqa: E402
from spg_app.tour import TOUR  # noqa: E402
from test_app import start  # noqa: E402

TITLES = {"explore": "Explore one image", "dataset": "Dataset", "triage": "Failure triage", "training": "Training"}


def test_the_tour_covers_every_page_and_the_three_teaching_features():
    assert {step.page for step in TOUR} == set(TITLES)
    text = " ".join(step.text for step in TOUR)
    for feature in ("replay", "Grow the guidance with these thresholds", "Compare with another run"):
        assert feature in text


@pytest.fixture(scope="module")
def tiny_spg(tmp_path_factory):
    return write_tiny_run(tmp_path_factory.mktemp("tour") / "tiny-spg", "spg")


def test_each_step_opens_its_page_with_its_settings(tiny_spg):
    at = start(tiny_spg, page="dataset")
    assert at.sidebar.button(key="tour_back").disabled
    for index, step in enumerate(TOUR):
        assert f"**{index + 1}. {step.title}**" in [m.value for m in at.sidebar.markdown]
        at.sidebar.button(key="tour_show").click().run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.title[0].value == TITLES[step.page], step.title
        for key, value in step.settings.items():
            if key != "compare_with":  # only when that run is shipped (checked below)
                assert at.session_state[key] == value
        if index < len(TOUR) - 1:
            at.sidebar.button(key="tour_next").click().run()
    assert at.sidebar.button(key="tour_next").disabled
    at.sidebar.button(key="tour_back").click().run()
    assert f"**{len(TOUR) - 1}. {TOUR[-2].title}**" in [m.value for m in at.sidebar.markdown]


def test_a_step_naming_a_run_that_is_not_shipped_leaves_the_comparison_alone(monkeypatch):
    import spg_app.tour as tour

    step = next(s for s in TOUR if "compare_with" in s.settings)
    state = {}
    monkeypatch.setattr(tour.st, "session_state", state)
    tour.show(step, available_runs=())
    assert "compare_with" not in state and state["page_request"] == step.page
    tour.show(step, available_runs=(step.settings["compare_with"],))
    assert state["compare_with"] == step.settings["compare_with"]
