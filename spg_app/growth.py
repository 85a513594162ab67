"""Growing the guidance on one uploaded photo (``spg_core.single_image``, beyond the paper):
the explore page's controls and the grown results kept in the session."""
from __future__ import annotations

import os
import streamlit as st

from spg_app.state import ModelContext, Picked
from spg_app.text import message
from spg_core.single_image import single_image_guidance

# Growth runs a fixed number of optimisation steps (seeded), never a time budget: the same click
# gives the same picture on any machine, busy or idle. SPG_APP_GUIDANCE_STEPS overrides both counts.
IMAGE_STEPS = 120  # single-image growth (a photo, or the dataset image shown): ~4 s on one idle core
BATCH_STEPS = 120  # a batch of validation images: ~15 s for 32 images at 96 px on one core
GUIDANCE_BUTTON = f"Grow the guidance on this photo (single-image SPG, {IMAGE_STEPS} steps)"
GUIDANCE_KEPT = 3  # grown results kept in the session (each holds full-size maps of one photo)


def keep_grown(store: dict, image: str, prefix: str, result, kept: int) -> None:
    """Keep a grown result for ``image`` under a fresh cache key (``prefix``-N), the newest
    ``kept`` results only (each holds full-size maps)."""
    number = st.session_state.get("grown_count", 0) + 1
    st.session_state["grown_count"] = number
    store.pop(image, None)
    store[image] = (f"{prefix}-{number}", result)
    while len(store) > kept:
        store.pop(next(iter(store)))


def guidance_steps(default: int = IMAGE_STEPS) -> int:
    """Optimisation steps of a growth: ``default`` (IMAGE_STEPS or BATCH_STEPS), unless
    SPG_APP_GUIDANCE_STEPS gives a positive whole number (it sets every growth's count)."""
    value = os.environ.get("SPG_APP_GUIDANCE_STEPS", "").strip()
    try:
        return int(value) if value and int(value) > 0 else default
    except ValueError:
        return default


def grow_guidance(model: ModelContext, picked: Picked, class_index: int):
    """The single-image guidance controls (an exploration beyond the paper): returns
    (key, result) of this photo, model and class once grown, else None. Results live in
    st.session_state (the last GUIDANCE_KEPT ones); ``key`` is new at every growth."""
    st.subheader("Grow the guidance on this photo")
    st.caption(":orange[**Beyond the paper.**] SPG learns B2, B1 and the fused guidance over a whole training "
               "set. Here the classifier stays frozen and fresh B2 → B1 heads are trained for a fixed number of steps on "
               "augmented views of this one photo, supervised by its own seeds (Mask-A → B2, Mask-B2 → B1, "
               "Algorithm 1's functions): the seeds of the attention map spread over more of the object. "
               f"For the class shown ({model.localizer.class_names[class_index]}); nothing here is a paper result.")
    store = st.session_state.setdefault("grown_guidance", {})
    photo = f"{model.key}|{picked.image_key}|{class_index}"
    columns = st.columns([2, 1, 2], vertical_alignment="center")
    if columns[0].button(GUIDANCE_BUTTON, key="grow_button", type="primary", width="stretch"):
        bar = st.progress(0.0, text="step 0")
        try:
            result = single_image_guidance(
                model.localizer, picked.image, class_index=class_index, seconds=None, steps=guidance_steps(),
                progress=lambda fraction, info: bar.progress(fraction, text=f"step {info['step']} of {guidance_steps()}"))
        except (ValueError, TypeError, RuntimeError) as error:
            bar.empty()
            st.error(message(f"Growing the guidance failed: {error}"))
            return None
        bar.empty()
        keep_grown(store, photo, f"{model.key}|grown", result, GUIDANCE_KEPT)
    entry = store.get(photo)
    if entry is not None:
        if columns[1].button("Show the model's own maps", key="grow_clear", width="stretch"):
            store.pop(photo, None)
            return None
        result = entry[1]
        columns[2].caption(f"Grown: {result.steps} steps in {result.seconds:.1f} s on {result.views} views. "
                           "The strip below shows the grown maps; the sliders re-threshold them.")
    return entry
