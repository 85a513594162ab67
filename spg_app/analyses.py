"""The dataset-wide computations the pages run (``spg_app.computations``): evaluation rows and
curves and per-image seed statistics of the first N images, with a progress bar, cached in
:func:`spg_app.loaders.result_cache`; a run's precomputed evaluation (``spg_app.precomputed``)
answers for the settings it was computed with, so those pages open with results."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from spg_app import precomputed
from spg_app.computations import evaluate_first, evaluate_maps_first, seed_statistics_first
from spg_app.loaders import load_dataset, result_cache
from spg_app.state import Context, ModelContext
from spg_app.text import message, plain
from spg_core.data.settings import DataSettings

# spg_core.metrics.failure_type; "the object" is the GT mask when the data has one, else the GT box.
FAILURE_NOTES = {
    "ok": "class right and IoU ≥ 0.5 with a GT box",
    "wrong-class": "the top-1 class is wrong (whatever the box)",
    "part-only": "the box sits on the object (≥ 1/5 of it on the object) but covers only a part of it, "
                 "typically the discriminative part: the classic CAM failure SPG targets",
    "too-large": "the box holds at least half of the object and is ≥ 1.5× the object's box: "
                 "it swallows the object and much of its surroundings",
    "wrong-place": "less than 1/5 of the box lies on the object: the box marks something else",
}


def progress_callback(bar, text: str):
    def update(done: int, total: int) -> None:
        step = max(1, total // 50)
        if done == total or done % step == 0:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{text}: {done}/{total} images")
    return update


def evaluation_settings(ctx: Context, n: int, protocol: str, map_stage: str = "attention") -> dict:
    """What an evaluation of the page depends on besides the run (see :func:`evaluation`)."""
    return precomputed.evaluation_settings(ctx.data_key, n, protocol, round(float(ctx.tau), 2), map_stage)


def cached_or_stored(key: tuple, folder, settings: dict):
    """The result cache's entry for ``key``, else the run's precomputed result for ``settings``
    (then cached under ``key``), else None."""
    cache = result_cache()
    result = cache.get(key)
    if result is None and folder is not None:
        result = precomputed.stored_result(folder, settings)
        if result is not None:
            cache.put(key, result)
    return result


def with_image_size(data_key: str, image_size: int) -> str:
    """The same images (``DataSettings.key``) at another network input size."""
    settings, split = DataSettings.from_key(data_key)
    return replace(settings, image_size=int(image_size)).key(split)


def evaluation(ctx: Context, model: ModelContext, n: int, protocol: str, compute: bool,
               map_stage: str = "attention") -> dict | None:
    """spg_core.evaluate.evaluate on the first ``n`` images at the sidebar's τ, cached per
    (run, dataset, n, protocol, τ, map) or read from the run's precomputed evaluation; computed
    (with a progress bar) only when ``compute``."""
    settings = evaluation_settings(ctx, n, protocol, map_stage)
    tau = settings["tau"]
    data_key, dataset = ctx.data_key, ctx.dataset
    if not model.is_maps and ctx.model is not None and ctx.model.is_maps:
        # A run compared with the sidebar's maps folder: the same images at the run's own input size.
        if not ctx.has_images:
            st.warning(plain(f"{model.label} needs the images: give the data root of the images in the sidebar."))
            return None
        data_key = with_image_size(ctx.data_key, model.config.image_size)
        dataset = load_dataset(data_key)
        if dataset.num_classes != model.localizer.model.num_classes:
            st.warning(plain(f"{model.label} has {model.localizer.model.num_classes} classes, these images "
                             f"{dataset.num_classes}: it cannot be scored on them."))
            return None
    key = ("evaluate", model.key, data_key, int(n), protocol, tau, map_stage)
    result = cached_or_stored(key, model.folder, settings)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=plain(f"Evaluating {model.label}…"))
    try:
        if model.is_maps:
            result = evaluate_maps_first(model.maps_dir, dataset, n, protocol, tau)
        else:
            result = evaluate_first(model.localizer.model, dataset, n, protocol, tau, map_stage,
                                    progress_callback(bar, plain(f"Evaluating {model.label}")))
    except (ValueError, KeyError, IndexError, RuntimeError, OSError) as error:
        bar.empty()
        st.error(message(f"Evaluation of {model.label} failed: {error}"))
        return None
    bar.empty()
    result_cache().put(key, result)
    return result


def evaluation_note(ctx: Context, model: ModelContext, n: int, protocol: str, result: dict | None,
                    map_stage: str = "attention") -> str | None:
    """One line on the run's precomputed evaluation for what the page shows (``result``): when it
    was computed, or why it does not answer (:func:`spg_app.precomputed.stored_note`)."""
    return stored_note(model, evaluation_settings(ctx, n, protocol, map_stage), result)


def seeds_note(ctx: Context, model: ModelContext, n: int, stage: str, lows, highs, result: dict | None) -> str | None:
    """As :func:`evaluation_note`, for the seed statistics of :func:`guidance_statistics`."""
    return stored_note(model, precomputed.seed_settings(ctx.data_key, n, stage, lows, highs), result)


def stored_note(model: ModelContext, settings: dict, result: dict | None) -> str | None:
    note = None if model.folder is None else precomputed.stored_note(model.folder, settings, result)
    return None if note is None else f"{model.label}: {note}"


def show_notes(notes: list[str | None]) -> None:
    """Each distinct note as a caption line, in order."""
    for note in dict.fromkeys(n for n in notes if n):
        st.caption(message(note))


def guidance_statistics(ctx: Context, model: ModelContext, n: int, stage: str, lows, highs, compute: bool,
                        text: str) -> dict | None:
    """Per-image seed statistics (``sweeps.seed_sweep``) of one stage over the first ``n`` images,
    on the maps Algorithm 1 thresholds in training (GT class, seed-mask resolution); cached, or
    read from the run's precomputed evaluation, as :func:`evaluation`."""
    settings = precomputed.seed_settings(ctx.data_key, n, stage, lows, highs)
    key = ("seeds", model.key, ctx.data_key, int(n), stage, settings["lows"], settings["highs"])
    result = cached_or_stored(key, model.folder, settings)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=text)
    try:
        result = seed_statistics_first(model.localizer.model, model.config, ctx.dataset, n, stage, lows, highs,
                                       progress_callback(bar, text))
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(message(f"Computing the seeds of {model.label} failed: {error}"))
        return None
    bar.empty()
    result_cache().put(key, result)
    return result
