"""The app's tour: a few steps in the sidebar, each naming a page and what to do there, with a
"Show me" button that opens the page with the settings that make the step visible."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from spg_app.state import PAGE_REQUEST
from spg_app.widgets import SCROLL_TO

STEP_KEY = "tour_step"


@dataclass(frozen=True)
class TourStep:
    title: str
    page: str  # a page name of app.PAGES
    text: str  # what to look at, and what to move
    settings: dict = field(default_factory=dict)  # widget values "Show me" sets (session-state keys)
    section: str | None = None  # the section "Show me" scrolls to (widgets.scroll_target), if not the top


TOUR = (
    TourStep("The stages of one image", "explore",
             "The pipeline view is the paper's Fig. 2 for one image: the attention map A4 → Mask-A → B2 → "
             "Mask-B2 → B1 → fused → Mask-fuse → SPG-C → box, arrows saying which mask supervises which branch. "
             "Drag Mask-A's δ_h and watch its seeds and their numbers follow the thumb; drag τ and the box "
             "follows (it comes from the map chosen in *Box from*). Release, and the rest of the page follows."),
    TourStep("Where the thresholds cut", "explore",
             "Each map's score histogram with its δ_l / δ_h marked: how much of the image each threshold calls "
             "foreground, background or ignored.", {"show_histograms": True}, "histograms"),
    TourStep("What these thresholds would teach", "explore",
             "Further down, *Grow the guidance with these thresholds*: the classifier stays frozen and fresh "
             "B2 → B1 heads train for a fixed number of steps on the seeds at the current δ values, on this image or on a "
             "batch of validation images, next to what the trained run learned, with each seed mask's "
             "precision and coverage.", {"grow_here_mode": "image"}, "grow"),
    TourStep("Two runs side by side", "explore",
             "*Compare with another run* shows a second run (here SPG-plain) on the same image, class, τ and δ "
             "values: both runs in one pipeline view (one drag moves both), both boxes and IoUs, and the "
             "difference of their maps.",
             {"compare_with": "synthetic-plain"}, "compare"),
    TourStep("Watch SPG learn", "training",
             "The training replay: the stage strip of fixed validation images at every epoch (and inside the "
             "first guided one). Move the slider or press Play; below, the loss terms and each seed mask's "
             "precision and coverage over training."),
    TourStep("The whole dataset", "dataset",
             "Localisation accuracy against τ for one or two runs on the same axes, the IoU histogram, and a "
             "sweep of (δ_l, δ_h) that shows which thresholds give clean seeds."),
    TourStep("Why an image fails", "triage",
             "The evaluated images worst IoU first, filtered by failure type and by whether Mask-A's fallback "
             "fired; each one opens on the explore page."),
)


def step_index() -> int:
    return min(max(int(st.session_state.get(STEP_KEY, 0)), 0), len(TOUR) - 1)


def move(offset: int) -> None:
    st.session_state[STEP_KEY] = min(max(step_index() + offset, 0), len(TOUR) - 1)


def show(step: TourStep, available_runs: tuple[str, ...]) -> None:
    """Open the step's page with its settings; a run it names that is not shipped is left alone."""
    for key, value in step.settings.items():
        if key == "compare_with" and value not in available_runs:
            continue
        st.session_state[key] = value
    if step.section:
        st.session_state[SCROLL_TO] = step.section
    st.session_state[PAGE_REQUEST] = step.page


def draw(available_runs: tuple[str, ...]) -> None:
    index = step_index()
    step = TOUR[index]
    with st.sidebar.expander(f"Tour of the app ({len(TOUR)} steps)", icon=":material/tour:"):
        st.markdown(f"**{index + 1}. {step.title}**")
        st.caption(step.text)
        back, show_me, forward = st.columns([1, 2, 1])
        back.button("◀", key="tour_back", on_click=move, args=(-1,), disabled=index == 0, help="Previous step")
        show_me.button("Show me", key="tour_show", on_click=show, args=(step, available_runs), type="primary")
        forward.button("▶", key="tour_next", on_click=move, args=(1,), disabled=index == len(TOUR) - 1,
                       help="Next step")
