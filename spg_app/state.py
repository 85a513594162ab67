"""What every page receives and what the session keeps: the context the sidebar builds on each
rerun (:class:`Context`, :class:`ModelContext`), the model choices that are not runs, the
session's one :class:`View` (thresholds, τ, opacity, image: what every page, widget and the URL
read), and the widget keys kept across page switches."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from spg_app.runs import DEFAULT_TAU
from spg_core.guidance import PRESETS, STAGE_NAMES, GuidancePreset
from spg_core.localize import Localizer

OTHER_RUN = "__run_dir__"  # model_choice: a run folder typed in the sidebar
IMAGENET = "__imagenet__"  # model_choice: the pretrained ImageNet classifier
MAPS_FOLDER = "__maps__"  # model_choice: a folder of <image_id>.npy maps (any method), no model
PAGE_REQUEST = "page_request"  # a page name set to switch to it on the next run
# Widgets of one page lose their state while another page is shown; re-assigning these keys at
# the top of every run keeps thresholds, the chosen image and the filters across page switches.
PERSISTENT_KEYS = (
    "model_choice", "run_dir", "maps_dir", "maps_label", "maps_metadata_root", "maps_data_root", "compare_more",
    "image_source", "browse_mode", "explore_class", "explore_class_rank", "worst_n", "worst_rank",
    "view_class", "box_stage", "show_histograms",
    "compare_runs", "compare_with", "compare_run_dir", "eval_n", "eval_protocol", "eval_map_stage", "eval_curves",
    "sweep_stage", "sweep_n", "sweep_step", "sweep_kind",
    "protocol_box_rule", "protocol_matching", "protocol_normalization", "protocol_iou_set", "protocol_tau",
    "triage_n", "triage_failures", "triage_fallback", "triage_page", "triage_per_page",
)


def keep_widget_state() -> None:
    """Re-assign :data:`PERSISTENT_KEYS` so a page's widgets keep their values while another page is shown."""
    for key in PERSISTENT_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


@dataclass
class ModelContext:
    localizer: Localizer
    config: object
    info: dict
    key: str
    label: str
    folder: Path
    uploads_only: bool = False  # a classifier without a dataset here (the ImageNet model)
    is_maps = False

    @property
    def variant(self) -> str:
        return getattr(self.localizer.model, "variant", "spg")


@dataclass
class MapsContext:
    """A folder of ``<image_id>.npy`` maps (wsolevaluation's layout, any method) used like a
    model: its per-image map is the file's (the GT class's map only), scored by the functions
    ``evaluate-maps`` uses. No classifier, no SPG branches, no run folder."""

    maps_dir: Path
    key: str
    label: str
    folder: None = None  # no run folder: no metrics.json, no precomputed evaluation, no replay
    localizer: None = None
    config: None = None
    uploads_only: bool = False
    is_maps = True
    variant = "maps"

    @property
    def info(self) -> dict:
        return {}


@dataclass
class Context:
    model: ModelContext | MapsContext | None = None
    dataset: object = None
    data_key: str = ""
    data_label: str = ""
    gt_usable: bool = False
    has_images: bool = True  # False: annotations only (a maps folder's image-less metadata)
    tau: float = DEFAULT_TAU
    alpha: float = 0.5
    page: str = ""  # the page that runs (its URL path; the explore page is the root, "")


VIEW = "view"  # session state: the one View


def preset_thresholds(name: str) -> dict[str, tuple[float, float]]:
    """(δ_l, δ_h) of every guided stage in the named preset."""
    preset = PRESETS[name]
    return {stage: (preset.stage(stage).delta_low, preset.stage(stage).delta_high) for stage in STAGE_NAMES}


@dataclass
class View:
    """What the user looks at, kept once per session: every widget that shows a value is drawn
    from here and writes back here, every page reads it, and the URL is written from it
    (:mod:`spg_app.links`), so a control, the tables and a link can never disagree.

    ``owner`` is the model whose own preset and τ filled it: opening another model refills it
    from that model (its τ chosen on its held-out split); values a deep link gave (``pinned``:
    "preset", "thresholds", "tau") then override the first model's own."""

    preset: str = "paper"
    thresholds: dict = field(default_factory=lambda: preset_thresholds("paper"))
    tau: float = DEFAULT_TAU
    alpha: float = 0.5
    image: int | None = None  # dataset image index on the explore page
    owner: str | None = None
    pinned: dict = field(default_factory=dict)

    def use_preset(self, name: str) -> None:
        """Every stage's thresholds back to the named preset's."""
        self.preset = name
        self.thresholds.clear()  # in place: the views drawn from this dict keep reading it
        self.thresholds.update(preset_thresholds(name))

    def guidance(self) -> GuidancePreset:
        """The preset with this view's thresholds: what draws every seed mask shown."""
        return PRESETS[self.preset].with_thresholds(self.thresholds)

    def adopt(self, owner: str, preset_name: str, tau: float) -> bool:
        """Fill the view from a newly opened model's own preset and τ (once per model);
        returns True when it changed the values."""
        if owner == self.owner:
            return False
        self.owner = owner
        pinned, self.pinned = self.pinned, {}
        self.use_preset(pinned.get("preset", preset_name if preset_name in PRESETS else "paper"))
        self.thresholds.update(pinned.get("thresholds", {}))
        self.tau = float(pinned.get("tau", tau))
        return True


def view() -> View:
    """The session's :class:`View` (created on first use)."""
    if VIEW not in st.session_state:
        st.session_state[VIEW] = View()
    return st.session_state[VIEW]


def bind(widget_key: str, value) -> None:
    """Give a widget the view's value before it is drawn (a widget's own state is dropped while
    another page is shown, and may lag a value changed elsewhere). The widget's ``on_change``
    must write its new value into the view: callbacks run before the script, this after."""
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value


def current_thresholds() -> dict[str, tuple[float, float]]:
    """Every guided stage's (δ_l, δ_h) as the session's view holds them."""
    return dict(view().thresholds)


@dataclass
class Picked:
    """The image a page shows: an upload or a dataset sample, with its annotations if any."""

    image_key: str
    image: Image.Image
    title: str
    label: int | None = None
    boxes: np.ndarray | None = None
    mask: np.ndarray | None = None
    scale: float = 1.0
    image_id: str = "upload"
