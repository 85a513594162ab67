"""What reruns when a slider moves on the explore page.

The page draws each stage's δ slider with its seeds in a fragment of its own (a δ move reruns
only that stage's seeds) and the box in another (a τ move reruns only the box): a class moving
sliders on one server then costs the server a few elements per move, not the whole page
(``benchmarks/bench_load.py``). Views that also show the δ values or τ — the second run of
"Compare with", grown heads, the score histograms — are fragments too, named here, and rerun
with the slider only while they are open. :class:`LiveChoices` holds the values on screen for
what reads them later (the downloads, when pressed).
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.errors import StreamlitAPIException

from spg_core.guidance import PRESETS, GuidancePreset

SEEDS = "explore_seeds"            # the three stages' seed panels (one key, three call sites)
BOX = "explore_box"                # the localisation map, its box, the numbers and the downloads
COMPARE = "explore_compare"        # "Compare with another run"
GROW = "explore_grow"              # "Grow the guidance with these thresholds"
HISTOGRAMS = "explore_histograms"  # the score histograms
ON_SCREEN = "explore_on_screen"    # session state: True while the explore page's fragments are drawn
NO_RUN = "__none__"                # compare_with: no second run


@dataclass
class LiveChoices:
    """The explore page's δ values (per stage) and τ as they are on screen: each fragment that
    draws a slider writes its value here when it runs."""

    preset_name: str
    thresholds: dict
    tau: float

    def preset(self) -> GuidancePreset:
        return PRESETS[self.preset_name].with_thresholds(self.thresholds)


def open_views(delta: bool) -> list[str]:
    """The views open now that show the δ values (``delta``) or τ besides the slider's own."""
    state = st.session_state
    views = []
    if state.get("compare_with", NO_RUN) != NO_RUN:
        views.append(COMPARE)
    if state.get("grown_here") or state.get("grown_batch"):
        views.append(GROW)
    if delta and state.get("show_histograms"):
        views.append(HISTOGRAMS)
    return views


def rerun(views: list[str]) -> None:
    """Rerun only ``views`` (a widget callback's keyed rerun). A view no longer on screen (the
    page changed meanwhile) makes Streamlit refuse: then the whole app reruns, as by default."""
    try:
        st.rerun(views)
    except StreamlitAPIException:
        pass


def delta_moved() -> None:
    """``on_change`` of a δ slider. By default only its seed panel reruns; with an open view that
    shows the δ values too, the seed panels and those views."""
    views = open_views(delta=True)
    if views and st.session_state.get(ON_SCREEN):
        rerun([SEEDS, *views])


def tau_moved() -> None:
    """``on_change`` of the sidebar's τ: on the explore page only the box (and any open view
    that shows τ) reruns; elsewhere the whole app."""
    if st.session_state.get(ON_SCREEN):
        rerun([BOX, *open_views(delta=False)])
