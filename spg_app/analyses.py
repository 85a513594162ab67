"""The dataset-wide computations the pages run (``spg_app.computations``): evaluation rows and
curves and per-image seed statistics of the first N images, with a progress bar, cached in
:func:`spg_app.loaders.result_cache`."""
from __future__ import annotations

import streamlit as st

from spg_app.computations import evaluate_first, seed_statistics_first
from spg_app.loaders import result_cache
from spg_app.state import Context, ModelContext

FAILURE_NOTES = {
    "ok": "class right and IoU ≥ 0.5",
    "wrong-class": "the top-1 class is wrong",
    "part-only": "the box lies inside the object: the classic CAM failure SPG targets",
    "too-large": "the box swallows the object and much of its surroundings",
    "wrong-place": "the box is mostly elsewhere",
}


def progress_callback(bar, text: str):
    def update(done: int, total: int) -> None:
        step = max(1, total // 50)
        if done == total or done % step == 0:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{text}: {done}/{total} images")
    return update


def evaluation(ctx: Context, model: ModelContext, n: int, protocol: str, compute: bool,
               map_stage: str = "attention") -> dict | None:
    """spg_core.evaluate.evaluate on the first ``n`` images at the sidebar's τ, cached per
    (run, dataset, n, protocol, τ, map); computed (with a progress bar) only when ``compute``."""
    tau = round(float(ctx.tau), 2)
    key = ("evaluate", model.key, ctx.data_key, int(n), protocol, tau, map_stage)
    result = result_cache().get(key)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=f"Evaluating {model.label}…")
    try:
        result = evaluate_first(model.localizer.model, ctx.dataset, n, protocol, tau, map_stage,
                                progress_callback(bar, f"Evaluating {model.label}"))
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Evaluation of {model.label} failed: {error}")
        return None
    bar.empty()
    result_cache().put(key, result)
    return result


def guidance_statistics(ctx: Context, model: ModelContext, n: int, stage: str, lows, highs, compute: bool,
                        text: str) -> dict | None:
    """Per-image seed statistics (``sweeps.seed_sweep``) of one stage over the first ``n`` images,
    on the maps Algorithm 1 thresholds in training (GT class, seed-mask resolution)."""
    lows, highs = tuple(round(float(v), 4) for v in lows), tuple(round(float(v), 4) for v in highs)
    key = ("seeds", model.key, ctx.data_key, int(n), stage, lows, highs)
    result = result_cache().get(key)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=text)
    try:
        result = seed_statistics_first(model.localizer.model, model.config, ctx.dataset, n, stage, lows, highs,
                                       progress_callback(bar, text))
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Computing the seeds of {model.label} failed: {error}")
        return None
    bar.empty()
    result_cache().put(key, result)
    return result
