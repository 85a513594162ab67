"""The dataset-wide computations the pages run: evaluation rows and curves
(``spg_core.evaluate``) and per-image seed statistics (``spg_core.sweeps``) of the first N
images, with a progress bar, cached in :func:`spg_app.loaders.result_cache`."""
from __future__ import annotations

import numpy as np
import streamlit as st

from spg_app.datasets import DatasetView
from spg_app.loaders import result_cache
from spg_app.state import Context, ModelContext
from spg_core.evaluate import evaluate
from spg_core.guidance import PRESETS
from spg_core.guidance import guided_stage
from spg_core.sweeps import guidance_batches, seed_sweep, summarize_sweep

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
    cache = result_cache()
    result = cache.get(key)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=f"Evaluating {model.label}…")
    view = DatasetView(ctx.dataset, n, progress_callback(bar, f"Evaluating {model.label}"))
    try:
        extra = {} if map_stage == "attention" else {"map_stage": map_stage}
        metrics, rows, curves = evaluate(model.localizer.model, view, device="cpu", protocol=protocol, tau=tau,
                                         progress=False, batch_size=32, **extra)
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Evaluation of {model.label} failed: {error}")
        return None
    bar.empty()
    result = {"metrics": metrics, "rows": rows, "curves": curves, "tau": tau, "n": int(n), "protocol": protocol}
    cache.put(key, result)
    return result


def guidance_statistics(ctx: Context, model: ModelContext, n: int, stage: str, lows, highs, compute: bool,
                        text: str) -> dict | None:
    """Per-image seed statistics (``sweeps.seed_sweep``) of one stage over the first ``n`` images,
    on the maps Algorithm 1 thresholds in training (GT class, seed-mask resolution)."""
    lows, highs = tuple(round(float(v), 4) for v in lows), tuple(round(float(v), 4) for v in highs)
    key = ("seeds", model.key, ctx.data_key, int(n), stage, lows, highs)
    cache = result_cache()
    result = cache.get(key)
    if result is not None or not compute:
        return result
    config = model.config
    same_input = ctx.dataset.image_size == config.image_size
    mask_size = config.resolved_mask_size() if same_input else None
    bar = st.progress(0.0, text=text)
    indices, parts = [], []
    try:
        for batch in guidance_batches(model.localizer.model, ctx.dataset, limit=n, preset=PRESETS[config.preset],
                                      mask_size=mask_size, on_batch=progress_callback(bar, text)):
            source = guided_stage(stage).source
            if source not in batch["maps"]:
                bar.empty()
                st.error(f"{model.label} has no {guided_stage(stage).source_title} map: {stage} cannot be swept.")
                return None
            parts.append(seed_sweep(batch["maps"][source], batch["object_masks"], lows, highs,
                                    precedence=PRESETS[config.preset].precedence))
            indices.extend(batch["indices"])
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Computing the seeds failed: {error}")
        return None
    bar.empty()
    if not parts:
        st.error("No readable image among the first images of the dataset.")
        return None
    per_image = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    result = {"indices": indices, "per_image": per_image, "summary": summarize_sweep(per_image),
              "lows": lows, "highs": highs, "stage": stage, "mask_size": mask_size or ctx.dataset.image_size}
    cache.put(key, result)
    return result
