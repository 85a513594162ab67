"""What reruns when a value moves on the explore page.

δ, τ and the map opacity move in the pipeline view in the browser, with no rerun while a thumb
moves. A release reruns only the parts that show what moved (the seed numbers and histograms for
δ, the box panel for τ and the opacity, the grown heads and second run while open:
:func:`after_release`), not the view, which already shows them. On the other pages τ and the
opacity are sidebar sliders.
:class:`LiveChoices` holds the values on screen for what reads them later (the downloads, when
pressed).
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.errors import StreamlitAPIException

from spg_core.guidance import PRESETS, GuidancePreset

THRESHOLDED = "explore_thresholded"  # everything δ and τ change: the pipeline view and what follows it
BOX = "explore_box"                # the localisation map, its box, the numbers and the downloads
GROW = "explore_grow"              # "Grow the guidance with these thresholds"
HISTOGRAMS = "explore_histograms"  # the score histograms
NUMBERS = "explore_numbers"        # the seed numbers table
COMPARE = "explore_compare"        # the second run's numbers and differences
ON_SCREEN = "explore_on_screen"    # session state: True while the explore page's fragments are drawn
NO_RUN = "__none__"                # compare_with: no second run


@dataclass
class LiveChoices:
    """The explore page's δ values (per stage; the session view's dict) and τ as they are on screen."""

    preset_name: str
    thresholds: dict
    tau: float

    def preset(self) -> GuidancePreset:
        return PRESETS[self.preset_name].with_thresholds(self.thresholds)


def rerun(views: list[str]) -> None:
    """Rerun only ``views`` (a widget callback's keyed rerun). A view no longer on screen (the
    page changed meanwhile) makes Streamlit refuse: then the whole app reruns, as by default."""
    try:
        st.rerun(views)
    except StreamlitAPIException:
        pass


def after_release(moved: set[str]) -> list[str]:
    """The parts of the explore page a release of the pipeline view reruns: those that show
    what moved (``moved``: "thresholds", "tau", "alpha") and are open."""
    state = st.session_state
    views = []
    if "thresholds" in moved:
        views.append(NUMBERS)
        if state.get("show_histograms"):
            views.append(HISTOGRAMS)
    if moved & {"tau", "alpha"}:
        views.append(BOX)
    if state.get("grown_here") or state.get("grown_batch"):
        views.append(GROW)
    if state.get("compare_with", NO_RUN) != NO_RUN:
        views.append(COMPARE)
    return views
