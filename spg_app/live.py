"""What reruns when a value moves on the explore page.

δ and τ move in the pipeline view in the browser, with no rerun while a thumb moves; a release
reruns the page's thresholded part once (``spg_app.pages.explore.thresholded_sections``). The
sidebar's τ slider reruns only the box panel (a fragment) and the views that show τ besides it
and are open — the grown heads; with a second run compared, the whole page (its view shows τ).
:class:`LiveChoices` holds the values on screen for what reads them later (the downloads, when
pressed).
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.errors import StreamlitAPIException

from spg_core.guidance import PRESETS, GuidancePreset

BOX = "explore_box"                # the localisation map, its box, the numbers and the downloads
GROW = "explore_grow"              # "Grow the guidance with these thresholds"
HISTOGRAMS = "explore_histograms"  # the score histograms
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


def tau_moved() -> None:
    """``on_change`` of the sidebar's τ: on the explore page the box (and open grown heads) rerun
    alone, unless a second run is compared; elsewhere the whole app."""
    state = st.session_state
    if state.get(ON_SCREEN) and state.get("compare_with", NO_RUN) == NO_RUN:
        rerun([BOX, *([GROW] if state.get("grown_here") or state.get("grown_batch") else [])])
