"""What every page receives and what the session keeps: the context the sidebar builds on each
rerun (:class:`Context`, :class:`ModelContext`), the model choices that are not runs, and the
widget keys kept across page switches."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from spg_app.runs import DEFAULT_TAU
from spg_core.guidance import PRESETS, STAGE_NAMES
from spg_core.localize import Localizer

OTHER_RUN = "__run_dir__"  # model_choice: a run folder typed in the sidebar
IMAGENET = "__imagenet__"  # model_choice: the pretrained ImageNet classifier
MAPS_FOLDER = "__maps__"  # model_choice: a folder of <image_id>.npy maps (any method), no model
PAGE_REQUEST = "page_request"  # a page name set to switch to it on the next run
# Widgets of one page lose their state while another page is shown; re-assigning these keys at
# the top of every run keeps thresholds, the chosen image and the filters across page switches.
PERSISTENT_KEYS = (
    "model_choice", "run_dir", "maps_dir", "maps_label", "maps_metadata_root", "maps_data_root", "compare_more",
    "image_source", "browse_mode", "explore_index", "explore_class", "explore_class_rank", "worst_n", "worst_rank",
    "view_class", "box_stage", "preset", *(f"delta_{stage}" for stage in STAGE_NAMES), "show_histograms",
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


def current_thresholds(preset_name: str | None = None) -> dict[str, tuple[float, float]]:
    """The explore page's (δ_l, δ_h) of each stage, or the run's preset before it was opened."""
    saved = st.session_state.get("current_thresholds")
    if saved:
        return dict(saved)
    preset = PRESETS[preset_name or "paper"]
    return {stage: (preset.stage(stage).delta_low, preset.stage(stage).delta_high) for stage in STAGE_NAMES}


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
