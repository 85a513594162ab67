"""Grow the guidance at the slider's thresholds (beyond the paper): the explore page's section
that trains fresh B2 / B1 (and optionally SPG-C) heads, the classifier frozen, on the seeds Eq. 1
makes at the current δ values — on the image shown (``single_image.single_image_guidance``) or on
a batch of the run's validation images (``batch_guidance.batch_guidance``) — and sets what they
learned next to the trained run's own maps and seeds at the same thresholds.

The δ sliders alone re-threshold maps that were learned at the training thresholds; this shows
what a choice of thresholds would *teach* the branches."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from spg_app.figures import grown_summary_figure
from spg_app.growth import BATCH_STEPS, guidance_steps, keep_grown
from spg_app.loaders import load_dataset, map_tile
from spg_app.pictures import encode_picture, mask_picture
from spg_app.state import Context, Picked
from spg_app.thresholds import threshold_view
from spg_app.widgets import percent, scroll_target
from spg_app.text import message, plain
from spg_core.data.settings import DataSettings
from spg_core.guidance import FOREGROUND, STAGE_TITLES, STAGES, GuidancePreset
from spg_core.localize import StageMaps, stage_masks
from spg_core.replay import STAT_NAMES, seed_quality
from spg_core.batch_guidance import batch_guidance, dataset_batch
from spg_core.single_image import single_image_guidance

IMAGE_BUTTON = "Grow the guidance with these thresholds"
BATCH_IMAGES = 32  # default batch: the first 32 images of the run's validation split
IMAGE_KEPT = 3  # grown single-image results kept in the session
# The comparison strip: each map the guided stages draw from, then its seeds; SPG-C when grown.
COMPARED = ("b2", "mask_b2", "b1", "fused", "mask_fuse", "c")
SOURCE_TITLES = {"trained": "Trained run", "grown": "Grown here"}


def threshold_key(preset: GuidancePreset) -> tuple:
    """The (δ_l, δ_h) of every guided stage: what a grown result was grown at."""
    return tuple((preset.stage(stage.mask).delta_low, preset.stage(stage.mask).delta_high) for stage in STAGES)


def thresholds_text(preset: GuidancePreset) -> str:
    return ", ".join(f"{stage.title} {preset.stage(stage.mask).delta_low:.2f}/{preset.stage(stage.mask).delta_high:.2f}"
                     for stage in STAGES)


def quality_rows(trained: StageMaps, grown: StageMaps, preset: GuidancePreset, region) -> list[dict]:
    """Seed precision and coverage of each mask, the trained run's heads then the grown ones, at
    ``preset`` (rows as ``BatchGuidance.summary``'s; NaN without ground truth or such a stage)."""
    rows = []
    for maps, heads in ((trained, "trained"), (grown, "grown")):
        masks = stage_masks(maps.maps, preset)
        for stage in STAGES:
            values = np.full(len(STAT_NAMES), np.nan)
            if stage.mask in masks:
                mask = masks[stage.mask]
                values = (seed_quality(mask, region) if region is not None else
                          np.where(np.array(STAT_NAMES) == "foreground", float((mask == FOREGROUND).mean()), np.nan))
            rows.append({"mask": stage.mask, "heads": heads, **dict(zip(STAT_NAMES, map(float, values)))})
    return rows


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """One line per seed mask: foreground precision, object coverage and foreground share of the
    trained run's heads and of the grown ones, side by side."""
    by = {(row["mask"], row["heads"]): row for row in rows}
    table = []
    for stage in STAGES:
        line = {"seeds": stage.full_title}
        for stat, title in (("foreground_precision", "fg precision"), ("object_coverage", "object covered"),
                            ("foreground", "foreground")):
            for heads in ("trained", "grown"):
                row = by.get((stage.mask, heads))
                line[f"{title} · {heads}"] = percent(None if row is None else row[stat])
        table.append(line)
    return pd.DataFrame(table)


def comparison_strip(ctx: Context, picked: Picked, entries: list[tuple[str, str, StageMaps]], preset,
                     region) -> None:
    """One row per (source, maps key, maps): B2, Mask-B2, B1, fused, Mask-fuse (and SPG-C) at ``preset``."""
    views = [threshold_view(maps, preset, ctx.tau, region) for _, _, maps in entries]
    names = [name for name in COMPARED
             if any(name in maps.maps or name in view.masks for (_, _, maps), view in zip(entries, views))]
    for (source, maps_key, maps), view in zip(entries, views):
        columns = st.columns(len(names))
        for column, name in zip(columns, names):
            title = f"{SOURCE_TITLES[source]}: {STAGE_TITLES[name]}"
            if name in view.masks:
                data, fmt = encode_picture(mask_picture(view, name), exact=True)
                stats = view.report[name]
                caption = (f"{title} — fg {percent(stats['foreground'])}"
                           + (f" · precision {percent(stats.get('foreground_precision'))}" if region is not None
                              else ""))
            elif name in maps.maps:
                data, fmt = map_tile(maps_key, picked.image_key, maps.class_index, name, ctx.alpha, maps)
                caption = title
            else:
                column.caption(f"{SOURCE_TITLES[source]}: no {STAGE_TITLES[name]} in these heads")
                continue
            column.image(data, caption=caption, alt=title, width="stretch", output_format=fmt)


def grow_image(ctx: Context, picked: Picked, maps: StageMaps, preset: GuidancePreset, region, train_c: bool) -> None:
    """The image mode: grow on the image shown, then compare with the trained run's maps."""
    model = ctx.model
    store = st.session_state.setdefault("grown_here", {})
    image = f"{model.key}|{picked.image_key}|{maps.class_index}"
    if st.button(IMAGE_BUTTON, key="grow_here_button", type="primary"):
        bar = st.progress(0.0, text="step 0")
        try:
            result = single_image_guidance(
                model.localizer, picked.image, class_index=maps.class_index, seconds=None,
                steps=guidance_steps(), preset=preset, train_c=train_c,
                progress=lambda fraction, info: bar.progress(fraction, text=f"step {info['step']} of {guidance_steps()}"))
        except (ValueError, TypeError, RuntimeError) as error:
            bar.empty()
            st.error(message(f"Growing the guidance failed: {error}"))
            return
        bar.empty()
        keep_grown(store, image, f"{model.key}|grown-here", result, IMAGE_KEPT)
    entry = store.get(image)
    if entry is None:
        st.caption(f"Trains {guidance_steps()} steps (seeded: the same picture on any machine) on augmented views "
                   f"of this image, for the class "
                   f"shown ({plain(model.localizer.class_names[maps.class_index])}).")
        return
    grown_key, result = entry
    grown_at = result.preset
    note = ("" if threshold_key(grown_at) == threshold_key(preset)
            else " :orange[The sliders have moved since: press the button to grow at the new values.]")
    st.caption(f"Grown: {result.steps} steps in {result.seconds:.1f} s on {result.views} views, at "
               f"{thresholds_text(grown_at)}. Both rows are thresholded at those values.{note}")
    comparison_strip(ctx, picked, [("trained", model.key, maps), ("grown", grown_key, result)], grown_at, region)
    rows = quality_rows(maps, result, grown_at, region)
    st.dataframe(comparison_table(rows), hide_index=True, width="stretch", key="grown_here_table")
    if region is None:
        st.caption("Seed precision needs ground truth: this image has none.")


def validation_split(ctx: Context):
    """(dataset, words, own) of the batch: the run's own validation split (own = True), else the
    images shown in the sidebar."""
    try:
        dataset = load_dataset(DataSettings.from_config(ctx.model.config).key("val"))
        if len(dataset) > 0:
            return dataset, "the run's validation split", True
    except (ValueError, TypeError, FileNotFoundError, OSError):
        pass
    return ctx.dataset, f"{ctx.data_label} (the run has no validation split here)", False


def grow_batch(ctx: Context, preset: GuidancePreset, train_c: bool) -> None:
    """The batch mode: fresh heads grown on the seeds of the first N validation images at once."""
    model = ctx.model
    dataset, words, own = validation_split(ctx)
    if dataset is None or len(dataset) == 0:
        st.info("No validation images to grow on: pick a dataset in the sidebar.")
        return
    columns = st.columns([1, 2], vertical_alignment="bottom")
    st.session_state["grow_batch_n"] = min(st.session_state.get("grow_batch_n", BATCH_IMAGES), len(dataset))
    count = int(columns[0].number_input(f"Images of {words}", 1, len(dataset), key="grow_batch_n"))
    key = (model.key, threshold_key(preset), train_c, count, words)
    if columns[1].button(f"Grow the guidance with these thresholds on {count} images", key="grow_batch_button",
                         type="primary"):
        bar = st.progress(0.0, text="reading the images")
        try:
            batch = dataset_batch(dataset, count, on_item=lambda done, total: bar.progress(
                0.1 * done / max(total, 1), text=f"reading image {done} of {total}"))
            labels = batch.labels if own or ctx.gt_usable else None  # GT classes, as Algorithm 1; else top-1
            result = batch_guidance(model.localizer, batch.images, labels, batch.objects, seconds=None,
                steps=guidance_steps(BATCH_STEPS), preset=preset, train_c=train_c, progress=lambda fraction, info: bar.progress(
                    0.1 + 0.9 * fraction, text=f"step {info['step']} on {len(batch)} images"))
        except (ValueError, TypeError, RuntimeError) as error:
            bar.empty()
            st.error(message(f"Growing the guidance failed: {error}"))
            return
        bar.empty()
        st.session_state["grown_batch"] = (key, result)  # one batch kept: its maps are N full-size sets
    saved = st.session_state.get("grown_batch")
    if saved is None or saved[0][0] != model.key:
        st.caption(f"Trains {guidance_steps(BATCH_STEPS)} steps (seeded) on two views of each image (GT "
                   "classes), then compares the seeds of the grown heads with the trained run's at the same "
                   "thresholds on the same images.")
        return
    result = saved[1]
    note = ("" if saved[0] == key else " :orange[The sliders or the choices have moved since: press the button to "
                                         "grow at the new values.]")
    st.caption(f"Grown on {len(result)} images: {result.steps} steps in {result.seconds:.1f} s, at "
               f"{thresholds_text(result.preset)}. Means over the images with ground truth.{note}")
    rows = result.summary()
    columns = st.columns([3, 2])
    columns[0].dataframe(comparison_table(rows), hide_index=True, width="stretch", key="grown_batch_table")
    columns[1].plotly_chart(grown_summary_figure(rows), width="stretch", key="grown_batch_figure")


def grow_with_thresholds(ctx: Context, picked: Picked, maps: StageMaps, preset: GuidancePreset, region) -> None:
    """The explore page's section for a dataset image (uploads have their own growth above the strip)."""
    if picked.image_key.startswith("upload:") or ctx.model is None or ctx.model.uploads_only:
        return
    scroll_target("grow")
    st.subheader("Grow the guidance with these thresholds (beyond the paper)")
    st.caption(":orange[**Beyond the paper.**] The sliders re-threshold maps that were learned at the training "
               f"thresholds (**{ctx.model.config.preset}**). Here the classifier stays frozen and fresh B2 → B1 "
               "heads train for a fixed number of steps on the seeds Eq. 1 makes at the **current** δ values (Mask-A → B2, "
               "Mask-B2 → B1, Algorithm 1's functions): what those thresholds would teach, next to what the "
               f"trained run learned. Current thresholds: {thresholds_text(preset)}.")
    columns = st.columns([2, 1])
    mode = columns[0].radio("Grow on", ["image", "batch"], key="grow_here_mode", horizontal=True,
                            format_func={"image": "this image", "batch": "a batch of validation images"}.get)
    train_c = columns[1].checkbox("SPG-C too", key="grow_here_c",
                                  help="Also train a fresh SPG-C head on Mask-fuse (it does not change B1/B2).")
    if mode == "image":
        grow_image(ctx, picked, maps, preset, region, train_c)
    else:
        grow_batch(ctx, preset, train_c)
