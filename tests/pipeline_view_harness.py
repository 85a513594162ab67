"""A tiny Streamlit page around the pipeline view (spg_app.pipeline_view) alone, for its browser
test (tests/test_pipeline_view_parity.py) and its drag benchmark (benchmarks/bench_drag.py):

    streamlit run tests/pipeline_view_harness.py        # then open ...?run=synthetic-spg&image=3&size=224

Query parameters: ``run`` (a shipped run or RUN_DIR; several, comma-separated, are drawn side by
side), ``image`` (index in the first run's own test split, default 0), ``size`` (the image
resized to size×size before the model runs, so the maps are that size; default: as stored),
``preset`` (default: the first run's). It keeps the released values in one session-state object,
as the app does, and prints them, the number of script runs and of releases applied.
"""
from __future__ import annotations

import json

import numpy as np
import streamlit as st
from PIL import Image

from spg_app.pipeline_view import PipelineRun, pipeline_view
from spg_core.boxes import resize_boxes
from spg_core.config import TrainConfig, load_config_file
from spg_core.data.settings import DataSettings
from spg_core.guidance import STAGE_NAMES, get_preset
from spg_core.localize import Localizer
from spg_core.runs import resolve_run
from spg_core.sweeps import object_mask

st.set_page_config(page_title="pipeline view harness", layout="wide")


@st.cache_resource
def localizer(run: str) -> Localizer:
    import torch

    torch.set_num_threads(1)
    return Localizer.from_run(run)


@st.cache_resource
def test_split(run: str):
    config = TrainConfig.from_dict(load_config_file(resolve_run(run) / "config.yaml"))
    return DataSettings.from_flags(config).dataset("test"), config.preset


@st.cache_data
def sample(run: str, index: int, size: int | None):
    """The image, its GT boxes and GT mask (1 = object), resized to size×size when asked."""
    data = test_split(run)[0].load_sample(index)
    image, boxes, mask = data.image.convert("RGB"), np.asarray(data.boxes, dtype=np.float64), data.mask
    if size:
        old = image.size
        image = image.resize((size, size), Image.BILINEAR)
        boxes = np.round(resize_boxes(boxes, old, (size, size)))
        if mask is not None:
            mask = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8)).resize((size, size), Image.NEAREST))
    return image, boxes, mask


@st.cache_data
def maps_of(run: str, image_run: str, index: int, size: int | None) -> dict:
    image = sample(image_run, index, size)[0]
    return localizer(run).predict(image).maps


params = st.query_params
st.sidebar.markdown("**Pipeline view harness**\n\nThe sidebar is here so the view gets the width it has in the app "
                    "(1400 px wide window: about 1000 px).")
names = [name.strip() for name in params.get("run", "synthetic-spg").split(",") if name.strip()]
index = int(params.get("image", 0))
size = int(params["size"]) if params.get("size") else None
preset = get_preset(params.get("preset", test_split(names[0])[1]))

image, boxes, mask = sample(names[0], index, size)
region = object_mask(mask, boxes, (image.height, image.width))
runs = [PipelineRun(name, image, maps_of(name, names[0], index, size),
                    precedence=get_preset(test_split(name)[1]).precedence if len(names) > 1 else preset.precedence,
                    gt_boxes=boxes, object_region=region, gt_mask=None if mask is None else mask == 1)
        for name in names]

state = st.session_state
if "view" not in state:  # the session's one state object of thresholds, τ and opacity
    state.view = {"thresholds": {s: (preset.stage(s).delta_low, preset.stage(s).delta_high) for s in STAGE_NAMES},
                    "tau": float(params.get("tau", 0.5)), "alpha": 0.5}
    state.nonce, state.script_runs, state.applied = None, 0, 0
state.script_runs += 1
if st.button("Reset to the preset"):
    state.view = {**state.view,
                    "thresholds": {s: (preset.stage(s).delta_low, preset.stage(s).delta_high) for s in STAGE_NAMES}}

released = pipeline_view(runs, state.view["thresholds"], state.view["tau"], state.view["alpha"], key="pipeline")
if released is not None and released["nonce"] != state.nonce:
    state.nonce, state.applied = released["nonce"], state.applied + 1
    state.view = {key: released[key] for key in ("thresholds", "tau", "alpha")}
st.text(f"released {json.dumps(state.view, sort_keys=True)}")
st.text(f"script runs {state.script_runs} · releases applied {state.applied}")
