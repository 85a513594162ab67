"""Page 1, *Explore one image*: every stage of the paper's Fig. 2 for one image, the Eq. 1
thresholds of each stage and the box threshold τ live on sliders."""
from __future__ import annotations

import base64

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from spg_app.compare import side_by_side
from spg_app.downloads import boxes_json, maps_npz
from spg_app.figures import growth_figure, histogram_figure
from spg_app.growth import grow_guidance
from spg_app.loaders import (dataset_sample, final_tile, growth_tile, load_map, map_tile, predict_maps,
                             predict_upload_maps, short_hash)
from spg_app.picker import pick_dataset_image, pick_upload
from spg_app.pictures import STRIP_SIDE, encode_picture, final_picture, maps_picture, mask_picture, png_bytes, strip_names
from spg_app.stages import STAGE_NOTES, map_stage_label
from spg_app.state import Context, ModelContext, Picked
from spg_app.threshold_growth import grow_with_thresholds
from spg_app.thresholds import clean_thresholds, threshold_view
from spg_app.widgets import need, percent
from spg_core import viz
from spg_core.boxes import iou as box_iou
from spg_core.boxes import largest_component_box
from spg_core.evaluate import prepare_map
from spg_core.exports import wsol_map_npy
from spg_core.guidance import MAP_STAGES, PRESETS, STAGE_NAMES, STAGE_TITLES, guided_stage
from spg_core.sweeps import object_mask


def apply_preset(stages=STAGE_NAMES) -> None:
    preset = PRESETS[st.session_state.get("preset", "paper")]
    for stage in stages:
        thresholds = preset.stage(stage)
        st.session_state[f"delta_{stage}"] = (thresholds.delta_low, thresholds.delta_high)


def threshold_controls(model: ModelContext, available: set[str]) -> tuple[object, dict]:
    if st.session_state.get("preset") not in PRESETS:
        st.session_state["preset"] = model.config.preset if model.config.preset in PRESETS else "paper"
    if any(f"delta_{stage}" not in st.session_state for stage in STAGE_NAMES):
        apply_preset([s for s in STAGE_NAMES if f"delta_{s}" not in st.session_state])
    top = st.columns([2, 1, 3])
    preset_name = top[0].selectbox("Threshold preset", list(PRESETS), key="preset", on_change=apply_preset,
                                   help="Named (δ_l, δ_h) sets of guidance.PRESETS; choosing one resets the sliders.")
    top[1].button("Reset all", key="reset_all", on_click=apply_preset, help="Back to the preset's values.",
                  width="stretch")
    trained = ("Grown guidance trains with" if model.uploads_only else "This run was trained with")
    top[2].caption(f"**{preset_name}** — {PRESETS[preset_name].description}. "
                   f"{trained} **{model.config.preset}**.")
    preset = PRESETS[preset_name]
    columns = st.columns(len(STAGE_NAMES))
    thresholds = {}
    for column, stage in zip(columns, STAGE_NAMES):
        key = f"delta_{stage}"
        exists = guided_stage(stage).source in available
        column.slider(f"{guided_stage(stage).title}: δ_l, δ_h on the {guided_stage(stage).source_title}", 0.0, 1.0,
                      step=0.01, key=key, format="%.2f", disabled=not exists,
                      help=f"Eq. 1 on the {guided_stage(stage).source_title}: below δ_l background, above δ_h foreground, "
                           f"between ignored ({guided_stage(stage).role}). All presets: "
                           + "; ".join(f"{name} {p.stage(stage).delta_low:.2f}/{p.stage(stage).delta_high:.2f}"
                                       for name, p in PRESETS.items()))
        low, high, adjusted = clean_thresholds(*st.session_state[key])
        thresholds[stage] = (low, high)
        reference = preset.stage(stage)
        changed = (low, high) != (reference.delta_low, reference.delta_high)
        column.caption(f"{preset_name} preset: δ_l = {reference.delta_low:.2f}, δ_h = {reference.delta_high:.2f}"
                       + (" · **changed**" if changed else "") + ("" if exists else " · no such map in this model"))
        if adjusted:
            column.caption(f":orange[Eq. 1 needs δ_l < δ_h: using δ_l = {low:.2f}, δ_h = {high:.2f}.]")
        column.button("Reset", key=f"reset_{stage}", on_click=apply_preset, args=((stage,),))
    st.session_state["current_thresholds"] = thresholds
    return preset.with_thresholds(thresholds), thresholds


def class_choice(ctx: Context, picked: Picked, predicted: int) -> int:
    names = ctx.model.localizer.class_names
    gt_known = picked.label is not None and ctx.gt_usable
    options = [-1, -2, *range(len(names))] if gt_known else [-1, *range(len(names))]
    if st.session_state.get("view_class") not in options:
        st.session_state["view_class"] = -1

    def label(option: int) -> str:
        if option == -1:
            return f"predicted: {names[predicted]}"
        if option == -2:
            return f"ground truth: {names[picked.label]}"
        return names[option]

    option = st.selectbox("Class whose map to view", options, key="view_class", format_func=label)
    return predicted if option == -1 else (picked.label if option == -2 else int(option))


def box_stage_choice(maps) -> str:
    options = [stage for stage in MAP_STAGES if stage in maps.maps]
    if st.session_state.get("box_stage") not in options:
        st.session_state["box_stage"] = "attention"
    return st.selectbox("Box from", options, key="box_stage", format_func=map_stage_label,
                        help="The paper boxes the A4 attention map (§3.4). The class-agnostic guidance maps are "
                             "offered as an extension, to see how much of the object each stage covers.")


def explain_spg() -> None:
    with st.expander("How SPG turns a classifier's attention into a box", expanded=False):
        st.markdown(
            "A classifier trained with image labels only lights up the most discriminative part of the object "
            "(the **attention map**). SPG thresholds it with Eq. 1 into **seeds** — confident foreground "
            "(white, above δ_h), confident background (black, below δ_l), the rest ignored (grey). "
            "Branch **B2** learns a mask from Mask-A, **B1** from B2's seeds (Mask-B2), and their average, "
            "the **fused guidance**, is thresholded again into Mask-fuse, which supervises **SPG-C**. That "
            "pixel-level supervision teaches the classifier's maps to cover the whole object. At test time "
            "only the classifier runs: the box is the largest connected region of its map above τ.\n\n"
            "Move the sliders: the maps stay, only the seeds, the box and the numbers change.")


def choose_image(ctx: Context) -> Picked | None:
    """The image source radio, then a dataset image or an uploaded photo."""
    model = ctx.model
    picker = st.columns([1, 1, 2.4])
    if model.uploads_only:
        st.session_state["image_source"] = "upload"
    source = picker[0].radio("Image", ["dataset", "upload"], key="image_source", disabled=model.uploads_only,
                             format_func={"dataset": "from the dataset", "upload": "upload a photo"}.get)
    if model.uploads_only:
        picker[1].caption(f"{model.label}: uploaded photos only (no dataset with this model).")
    if source == "dataset":
        if ctx.dataset is None:
            st.info("Pick a dataset in the sidebar, or upload a photo.")
            return None
        return pick_dataset_image(ctx, picker[1], picker[2])
    with picker[2]:
        return pick_upload()


def class_and_maps(ctx: Context, picked: Picked):
    """The class and box-map choices next to the top-5 table: (maps of the chosen class, class, box stage)."""
    model = ctx.model
    localizer = model.localizer
    predict = predict_upload_maps if picked.image_key.startswith("upload:") else predict_maps
    base = predict(model.key, picked.image_key, None, localizer, picked.image)
    head = st.columns([1, 2])
    with head[0]:
        class_index = class_choice(ctx, picked, base.predicted)
        box_stage = box_stage_choice(base)
    maps = base if class_index == base.predicted else predict(model.key, picked.image_key, class_index,
                                                               localizer, picked.image)
    with head[1]:
        # st.table, not st.dataframe: the first page then needs no interactive data-grid code in the
        # browser (≈ 1.3 MB of JavaScript), which is most of what a first visit waits for.
        top = pd.DataFrame([{"class": name, "probability": f"{p:.1%}"} for _, name, p in base.top_k(5)])
        st.table(top, hide_index=True)
    if picked.label is not None and ctx.gt_usable:
        verdict = "right" if base.predicted == picked.label else "wrong"
        head[0].caption(f"Top-1 is **{verdict}** (ground truth: {localizer.class_names[picked.label]}).")
    return maps, class_index, box_stage


def stage_strip(ctx: Context, picked: Picked, maps_key: str, maps, view, box_stage: str, gt_key: str,
                gt_boxes) -> None:
    """The stage strip, in the paper's order (Fig. 2 / Fig. 4). Score-map pictures depend on the
    image, class and opacity only, the final one also on its box: both are cached, so a δ move
    redraws just the three seed masks."""
    st.subheader("Stages")
    names = strip_names(maps, view)
    pictures, captions, titles = [], [], []
    for name, title in names:
        caption = title
        if name in view.masks:
            stats = view.report[name]
            caption += (f" — fg {percent(stats['foreground'])} · bg {percent(stats['background'])}"
                        + (" · fallback fired" if view.fallback[name] else ""))
            data, fmt = encode_picture(mask_picture(view, name), exact=True)
        elif name == "final":
            caption += "" if box_stage == "attention" else f" (from {STAGE_TITLES[box_stage]})"
            caption += "" if view.iou is None else f" — IoU {view.iou:.3f}"
            data, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage,
                                   tuple(view.box), gt_key, maps, gt_boxes)
        else:
            data, fmt = map_tile(maps_key, picked.image_key, maps.class_index, name, ctx.alpha, maps)
        # A list takes one output format: JPEG tiles (large uploaded photos) travel as data URLs,
        # which Streamlit passes through as they are, so nothing is re-encoded on a move.
        pictures.append(data if fmt == "PNG" else f"data:image/jpeg;base64,{base64.b64encode(data).decode()}")
        captions.append(caption)
        titles.append(title)
    # One element for the whole strip (the browser lays the tiles out in rows): a slider move then
    # re-sends one picture list instead of ~30 columns, pictures and captions, which is most of a
    # move's server time when a class shares one server (benchmarks/bench_load.py). The format is
    # per list: PNG, since the seed masks must stay exact.
    st.image(pictures, caption=captions, alt=titles, width=STRIP_SIDE, output_format="PNG")
    notes = [f"**{title}**: {STAGE_NOTES[name]}" for name, title in names if STAGE_NOTES.get(name)]
    if notes:
        with st.expander("What each stage is", expanded=False):
            st.markdown("\n".join(f"- {note}" for note in notes))


def growth_section(maps_key: str, grown) -> None:
    st.subheader("How the guidance grew (beyond the paper)")
    columns = st.columns([3, 2])
    columns[0].image(growth_tile(maps_key, grown), alt="Guidance growth", width="stretch", output_format="PNG",
                     caption="Mask-A (the attention seeds), the fused guidance (B1+B2)/2 at moments of training, "
                             "and the final Mask-fuse (at the preset the heads trained with).")
    columns[1].plotly_chart(growth_figure(grown.history), width="stretch", key="guidance_history")


def numbers_section(picked: Picked, maps, view, thresholds: dict, class_name: str) -> None:
    """The box metrics, the per-stage seed table and, on request, the score histograms."""
    st.subheader("Numbers")
    cols = st.columns(4)
    cols[0].metric("IoU of the box with GT", "—" if view.iou is None else f"{view.iou:.3f}",
                   help="Best IoU of the predicted box with any GT box (inclusive pixels, the +1 rule).")
    cols[1].metric("Predicted box (x0, y0, x1, y1)", str(tuple(view.box)))
    cols[2].metric("Mask-A fallback", "fired" if view.fallback.get("mask_a") else "not fired",
                   help="Fewer than 30 pixels above δ_h: Eq. 1 then uses 0.7 × max instead (reference codes).")
    cols[3].metric("Map shown", class_name)
    has_gt = picked.label is not None
    reference = ("the GT mask" if picked.mask is not None else "the GT box area (no mask)") if has_gt else None
    table = pd.DataFrame([{
        "stage": STAGE_TITLES[name],
        "δ_l": thresholds[name][0], "δ_h": thresholds[name][1],
        "foreground": percent(stats["foreground"]), "background": percent(stats["background"]),
        "ignored": percent(stats["ignored"]),
        "fg precision": percent(stats.get("foreground_precision")),
        "bg precision": percent(stats.get("background_precision")),
        "fallback": "fired" if view.fallback[name] else "no",
    } for name, stats in view.report.items()])
    st.table(table, hide_index=True)
    st.caption("Coverage: share of the image's pixels in each seed class. "
               + (f"Precision: share of foreground seeds inside the object and of background seeds outside it, "
                  f"against {reference}." if reference else "Precision needs ground truth (a dataset image)."))
    if st.toggle("Show where the thresholds cut each map (score histograms)", key="show_histograms"):
        st.plotly_chart(histogram_figure(maps.maps, thresholds), width="stretch", key="histograms")


def downloads_section(ctx: Context, picked: Picked, maps_key: str, maps, view, box_stage: str, preset,
                      gt_key: str, gt_boxes) -> None:
    st.subheader("Overlay and downloads")
    columns = st.columns([2, 1])
    large, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage, tuple(view.box),
                            gt_key, maps, gt_boxes, side=384)
    columns[0].image(large, width=448, caption="Localisation map (opacity in the sidebar) with the predicted box "
                     "(green) and GT boxes (red)", alt="Localisation overlay", output_format=fmt)
    stem = Path(str(picked.image_id)).stem or "image"
    with columns[1]:
        st.download_button("Overlay (PNG)",
                           data=lambda: png_bytes(final_picture(maps, view.box, ctx.alpha, gt_boxes, box_stage)),
                           file_name=f"{stem}_overlay.png",
                           mime="image/png", on_click="ignore", key="download_overlay", width="stretch")
        st.download_button("Maps and seeds (.npz)", data=lambda: maps_npz(maps, view.masks),
                           file_name=f"{stem}_maps.npz", mime="application/octet-stream", on_click="ignore",
                           key="download_maps", width="stretch")
        st.download_button("Boxes and numbers (JSON)",
                           data=lambda: boxes_json(picked.image_id, maps, view, ctx.tau, preset, gt_boxes,
                                                   picked.scale),
                           file_name=f"{stem}_boxes.json", mime="application/json", on_click="ignore",
                           key="download_boxes", width="stretch")
        source = box_stage if box_stage in maps.maps else "attention"
        st.download_button("Map (.npy, wsolevaluation)", data=lambda: wsol_map_npy(maps.maps[source]),
                           file_name=f"{Path(str(picked.image_id)).name or 'image'}.npy",
                           mime="application/octet-stream", on_click="ignore", key="download_wsol_map",
                           width="stretch")
        st.caption("Boxes are inclusive (x0, y0, x1, y1) pixels of the image shown; the .npz holds every score "
                   "map (float32 in [0, 1]) and seed mask (0 bg / 1 fg / 255 ignored); the .npy is the map the box "
                   "comes from as wsolevaluation saves maps (float64 224×224, bicubic, min-max), named "
                   "`<image_id>.npy` for a maps folder.")


def maps_page(ctx: Context) -> None:
    """A maps folder's image: its map (over the image when the data root has it, else alone), the
    box at the sidebar's τ (the paper's rule, on the original image's pixels as ``evaluate-maps``)
    and the GT boxes. No model runs, so no stage strip."""
    model = ctx.model
    st.info("The δ/seed strip does not apply to a maps folder: it holds one final map per image, no SPG branches.")
    total = len(ctx.dataset)
    if st.session_state.get("explore_index", 0) >= total:
        st.session_state["explore_index"] = 0
    index = int(st.number_input(f"Image index (0–{total - 1})", 0, total - 1, key="explore_index"))
    sample = (dataset_sample(ctx.data_key, index, ctx.dataset) if ctx.has_images
              else ctx.dataset.load_sample(index, image=False))
    if sample is None:
        st.warning(f"Image #{index} cannot be read.")
        return
    try:
        score_map = load_map(model.key, str(model.maps_dir), sample.image_id)
    except (OSError, ValueError) as error:
        st.error(f"No readable map for {sample.image_id!r} in {model.maps_dir}: {error}")
        return
    normalized = prepare_map("paper", score_map, sample.size)
    box = largest_component_box(normalized, ctx.tau)
    gt = np.asarray(sample.boxes).reshape(-1, 4)
    iou = float(np.max(box_iou(box, gt))) if len(gt) else None
    names = ctx.dataset.class_names
    st.markdown(f"**#{index} · `{sample.image_id}` · {names[sample.label]}**")
    picture = viz.draw_boxes(maps_picture(sample, normalized, ctx.alpha), [box], gt)
    data, fmt = encode_picture(picture, 448)
    columns = st.columns([2, 1])
    columns[0].image(data, alt="Map and box", width=448, output_format=fmt,
                     caption="The maps folder's map" + (" over the image" if sample.image is not None
                                                         else " (no image in the data root)")
                     + f", its box at τ = {ctx.tau:.2f} (green) and the GT boxes (red)")
    with columns[1]:
        st.metric("IoU of the box with GT", "—" if iou is None else f"{iou:.3f}",
                  help="Best IoU of the predicted box with any GT box (inclusive pixels, the +1 rule).")
        st.metric("Predicted box (x0, y0, x1, y1)", str(tuple(int(v) for v in box)))
        st.metric("Map shown", f"ground truth: {names[sample.label]}")
        st.caption(f"Map file {score_map.shape[1]}×{score_map.shape[0]}, resized bilinearly to the image's "
                   f"{sample.size[0]}×{sample.size[1]} and min-max normalised (the paper protocol of "
                   "`evaluate-maps`). A maps folder has no classifier: no predicted class.")


def page(ctx: Context) -> None:
    st.title("Explore one image")
    if not need(ctx, dataset=False):
        return
    model = ctx.model
    if model.is_maps:
        if ctx.dataset is None:
            st.info("Give the maps folder's metadata in the sidebar.")
            return
        maps_page(ctx)
        return
    explain_spg()
    picked = choose_image(ctx)
    if picked is None:
        return
    st.markdown(f"**{picked.title}**")
    maps, _, box_stage = class_and_maps(ctx, picked)

    # Beyond the paper: SPG-B grown on this uploaded photo replaces the maps of the strip (same code path).
    grown = grow_guidance(model, picked, maps.class_index) if picked.image_key.startswith("upload:") else None
    maps_key = model.key
    if grown is not None:
        maps_key, maps = grown
        if box_stage not in maps.maps:  # e.g. SPG-C of a trained run: the grown heads have none
            box_stage = "attention"

    thresholded_sections(ctx, picked, maps_key, maps, box_stage, grown is not None)


@st.fragment
def thresholded_sections(ctx: Context, picked: Picked, maps_key: str, maps, box_stage: str, grown: bool) -> None:
    """Everything the δ sliders change, from the sliders down: a fragment, so that moving a slider
    reruns only this part (not the sidebar, the image choice or the model), which keeps a slider
    move cheap for a whole class on one server (benchmarks/bench_load.py). The maps are cached;
    this re-thresholds them."""
    model = ctx.model
    available = set(maps.maps)
    if model.uploads_only and not grown:
        st.info("This pretrained classifier has no B1, B2 or SPG-C branches: the strip shows the attention map "
                "and the seeds Eq. 1 makes from it (Mask-A). Grow the guidance above to see the other stages.")
    elif model.variant == "plain" and not grown:
        st.info("SPG-plain has no B1, B2 or SPG-C branches: the strip shows the attention map and the seeds "
                "Eq. 1 would make from it (Mask-A); the other stages exist only in SPG models.")
    preset, thresholds = threshold_controls(model, available)

    has_gt = picked.label is not None
    gt_boxes = picked.boxes if has_gt else None
    region = object_mask(picked.mask, picked.boxes, (picked.image.height, picked.image.width)) if has_gt else None
    view = threshold_view(maps, preset, ctx.tau, region, gt_boxes, box_stage)
    gt_key = short_hash(str(np.asarray(picked.boxes).tolist())) if has_gt else ""

    stage_strip(ctx, picked, maps_key, maps, view, box_stage, gt_key, gt_boxes)
    if grown:
        growth_section(maps_key, maps)
    side_by_side(ctx, picked, maps_key, maps, view, preset, box_stage, region, gt_boxes, gt_key)
    numbers_section(picked, maps, view, thresholds, model.localizer.class_names[maps.class_index])
    downloads_section(ctx, picked, maps_key, maps, view, box_stage, preset, gt_key, gt_boxes)
    grow_with_thresholds(ctx, picked, maps, preset, region)
