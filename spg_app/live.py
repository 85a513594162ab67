"""What reruns when a value moves on the explore page.

δ and τ move in the pipeline view in the browser, with no rerun while a thumb moves. A release
that moved thresholds only reruns the parts that show them (the seed numbers, and the histograms,
grown heads and second run while open: :func:`after_thresholds`), not the view, which already
shows them; a release that moved τ or the opacity reruns the page's thresholded part and the
sidebar. The sidebar's τ slider reruns the page's thresholded part (the view shows τ too).
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


def after_thresholds() -> list[str]:
    """The parts of the explore page a release of thresholds reruns: those that show them and are open."""
    state = st.session_state
    views = [NUMBERS]
    if state.get("show_histograms"):
        views.append(HISTOGRAMS)
    if state.get("grown_here") or state.get("grown_batch"):
        views.append(GROW)
    if state.get("compare_with", NO_RUN) != NO_RUN:
        views.append(COMPARE)
    return views


def tau_moved() -> None:
    """``on_change`` of the sidebar's τ: on the explore page its thresholded part reruns (the
    pipeline view, the box and what shows τ), not the image choice; elsewhere the whole app."""
    if st.session_state.get(ON_SCREEN):
        rerun([THRESHOLDED])
