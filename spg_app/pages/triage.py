"""Page 3, *Failure triage*: the evaluated images worst IoU first, filtered by failure type
and by whether Mask-A's fallback fired, each one a click away from the explore page."""
from __future__ import annotations

import numpy as np
import streamlit as st

from spg_app.analyses import FAILURE_NOTES, evaluation, evaluation_note, guidance_statistics, seeds_note, show_notes
from spg_app.datasets import positions_by_image_id
from spg_app.loaders import dataset_image_key, dataset_sample, load_map, predict_maps
from spg_app.pictures import encode_picture, maps_picture
from spg_app.state import PAGE_REQUEST, Context, current_thresholds, view
from spg_app.text import message, plain
from spg_app.widgets import count_slider, need
from spg_core import viz
from spg_core.evaluate import resize_box
from spg_core.exports import coco_json_text, rows_csv_text
from spg_core.metrics import FAILURE_TYPES


def open_in_explore(index: int) -> None:
    st.session_state.update(image_source="dataset", browse_mode="index", view_class=-2)
    view().image = int(index)
    st.session_state[PAGE_REQUEST] = "explore"


def maps_tile(ctx: Context, row: dict, index: int, grid: tuple[int, int]) -> None:
    """A maps folder's image: its map (over the image when present, else alone), box and GT boxes."""
    model = ctx.model
    sample = (dataset_sample(ctx.data_key, index, ctx.dataset) if ctx.has_images
              else ctx.dataset.load_sample(index, image=False))
    if sample is None:
        st.warning(f"#{index}: unreadable image")
        return
    try:
        score_map = load_map(model.key, str(model.maps_dir), sample.image_id)
    except (ValueError, OSError) as error:  # a refused or vanished map file: one line, not a traceback
        st.warning(message(f"#{index}: {error}"))
        return
    box = row["pred_box"]
    if tuple(grid) != tuple(sample.size):
        box = resize_box(box, grid, sample.size)
    picture = maps_picture(sample, score_map, ctx.alpha)
    picture = viz.draw_boxes(picture, [box], sample.boxes)
    data, fmt = encode_picture(picture, 224)
    st.image(data, alt=f"triage {index}", width="stretch", output_format=fmt)
    names = ctx.dataset.class_names
    st.caption(f"**#{index}** · IoU {row['iou']:.2f} · *{row['failure']}*  \n"
               f"GT {plain(names[row['label']]) if row.get('label') is not None else '?'} · "
               f"{plain(sample.image_id)}")
    st.button("Open in Explore", key=f"open_{index}", on_click=open_in_explore, args=(index,), width="stretch")


def triage_tile(ctx: Context, row: dict, index: int, fallback: bool | None, grid: tuple[int, int]) -> None:
    model = ctx.model
    if model.is_maps:
        maps_tile(ctx, row, index, grid)
        return
    sample = dataset_sample(ctx.data_key, index, ctx.dataset)
    if sample is None:
        st.warning(f"#{index}: unreadable image")
        return
    key = dataset_image_key(ctx.data_key, index)
    maps = predict_maps(model.key, key, int(row["label"]), model.localizer, sample.image)
    box = row["pred_box"]
    if tuple(grid) != tuple(sample.size):
        box = resize_box(box, grid, sample.size)
    picture = viz.draw_boxes(viz.heatmap_overlay(sample.image, maps.maps["attention"], ctx.alpha), [box], sample.boxes)
    names = model.localizer.class_names
    predicted = names[row["prediction"]] if row.get("prediction") is not None else "?"
    data, fmt = encode_picture(picture, 224)
    st.image(data, alt=f"triage {index}", width="stretch", output_format=fmt)
    st.caption(f"**#{index}** · IoU {row['iou']:.2f} · *{row['failure']}*  \n"
               f"GT {plain(names[row['label']])} · predicted {plain(predicted)}"
               + ("" if fallback is None else f"  \nMask-A fallback: {'fired' if fallback else 'no'}"))
    st.button("Open in Explore", key=f"open_{index}", on_click=open_in_explore, args=(index,), width="stretch")


def export_buttons(ctx: Context, rows: list[dict]) -> None:
    """The evaluated rows in the formats other tools read (spg_core.exports, as the CLI's
    ``--export-coco`` and per_image.csv)."""
    image_ids = [str(record.image_id) for record in ctx.dataset.records]
    columns = st.columns([1, 1, 2], vertical_alignment="center")
    columns[0].download_button("Triage table (CSV)", data=lambda: rows_csv_text(rows), file_name="triage.csv",
                               mime="text/csv", on_click="ignore", key="download_triage_csv", width="stretch")
    if all("grid_size" in row and "image_size" in row and row.get("label") is not None for row in rows):
        columns[1].download_button("Boxes (COCO detections)", data=lambda: coco_json_text(rows, image_ids),
                                   file_name="detections.json", mime="application/json", on_click="ignore",
                                   key="download_triage_coco", width="stretch")
        columns[2].caption("COCO: `image_id` = the image's 1-based place in the split's list, `category_id` = "
                           "its label, `bbox` = [x, y, w, h] in the image's pixels (w = x1 − x0 + 1), score 1.")
    else:
        columns[1].caption("COCO boxes need the image sizes, which this stored evaluation lacks: "
                           "change N to recompute.")


def page(ctx: Context) -> None:
    st.title("Failure triage")
    if not need(ctx, gt=True):
        return
    model = ctx.model
    total = len(ctx.dataset)
    columns = st.columns([2, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images (N)", total, "triage_n")
    if model.is_maps:
        # A maps folder: the rows of evaluate-maps' functions; no SPG seeds, so no Mask-A fallback.
        st.caption(f"Rows of `spg_core.evaluate.evaluate_maps` (paper protocol on the original image's pixels, the "
                   f"maps folder's map, τ = {ctx.tau:.2f}). Mask-A fallback does not apply: a maps folder has no "
                   "SPG seeds.")
        result = evaluation(ctx, model, n, "paper", compute=False)
        if result is None and columns[1].button(f"Analyse {n} images", key="triage_button", type="primary"):
            result = evaluation(ctx, model, n, "paper", compute=True)
        seeds = {"indices": [], "per_image": {"fallback": np.zeros((0, 1, 1), bool)}}
    else:
        thresholds = current_thresholds()["mask_a"]
        st.caption(f"Rows of `spg_core.evaluate` (paper protocol, ground-truth class map, τ = {ctx.tau:.2f}); Mask-A "
                   f"fallback at your explore-page thresholds δ_l = {thresholds[0]:.2f}, δ_h = {thresholds[1]:.2f}.")
        result = evaluation(ctx, model, n, "paper", compute=False)
        seeds = guidance_statistics(ctx, model, n, "mask_a", [thresholds[0]], [thresholds[1]], compute=False, text="")
        if result is None or seeds is None:
            if columns[1].button(f"Analyse {n} images", key="triage_button", type="primary"):
                result = evaluation(ctx, model, n, "paper", compute=True)
                if result is not None:
                    seeds = guidance_statistics(ctx, model, n, "mask_a", [thresholds[0]], [thresholds[1]],
                                                compute=True, text="Computing Mask-A seeds")
        show_notes([evaluation_note(ctx, model, n, "paper", result),
                    seeds_note(ctx, model, n, "mask_a", [thresholds[0]], [thresholds[1]], seeds)])
    if result is None or seeds is None:
        st.info("Triage evaluates N images once (cached) and lists them worst IoU first.")
        return
    positions = positions_by_image_id(ctx.dataset)
    fired = {index: bool(value) for index, value in zip(seeds["indices"], seeds["per_image"]["fallback"][:, 0, 0])}
    entries = sorted(((row, positions[row["image_id"]]) for row in result["rows"]), key=lambda e: e[0]["iou"])
    counts = {kind: sum(row["failure"] == kind for row, _ in entries) for kind in FAILURE_TYPES}
    filters = st.columns([3, 1.3, 1, 1])
    if "triage_failures" not in st.session_state:
        st.session_state["triage_failures"] = [k for k in FAILURE_TYPES if k != "ok"] or list(FAILURE_TYPES)
    kinds = filters[0].multiselect("Failure types", FAILURE_TYPES, key="triage_failures",
                                   format_func=lambda k: f"{k} ({counts[k]})")
    if model.is_maps:
        fallback_filter = "any"
    else:
        fallback_filter = filters[1].radio("Mask-A fallback", ["any", "fired", "not fired"], key="triage_fallback",
                                           horizontal=True)
    st.session_state.setdefault("triage_per_page", 12)
    per_page = filters[2].selectbox("Per page", [8, 12, 24], key="triage_per_page")
    shown = [(row, index) for row, index in entries if row["failure"] in kinds
             and (fallback_filter == "any" or fired.get(index) == (fallback_filter == "fired"))]
    pages = max(1, -(-len(shown) // per_page))
    if st.session_state.get("triage_page", 1) > pages:
        st.session_state["triage_page"] = 1
    page = int(filters[3].number_input(f"Page (of {pages})", 1, pages, key="triage_page"))
    summary = ", ".join(f"{counts[k]} {k}" for k in FAILURE_TYPES if counts[k])
    fallback_note = "" if model.is_maps else f" · Mask-A fallback fired on {sum(fired.values())}"
    st.markdown(f"**{len(shown)}** of {len(entries)} images shown · {summary}{fallback_note}.")
    export_buttons(ctx, result["rows"])
    with st.expander("What the failure types mean"):
        st.markdown("\n".join(f"- **{k}**: {FAILURE_NOTES[k]}" for k in FAILURE_TYPES))
    grid = (int(ctx.dataset.image_size), int(ctx.dataset.image_size))
    chunk = shown[(page - 1) * per_page: page * per_page]
    for start in range(0, len(chunk), 4):
        columns = st.columns(4)
        for column, (row, index) in zip(columns, chunk[start:start + 4]):
            with column:
                triage_tile(ctx, row, index, fired.get(index), tuple(row.get("grid_size") or grid))
