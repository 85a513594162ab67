"""Page 1, *Explore one image*: every stage of the paper's Fig. 2 for one image in the pipeline
view (:mod:`spg_app.pipeline_view`), whose Eq. 1 thresholds and box threshold τ are applied in
the browser while a thumb moves; below it, what a release changes (numbers, histograms, the box
panel and downloads, the comparison, the growth)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import streamlit as st
from PIL import Image

from spg_app.compare import choose_second_run, second_maps, side_by_side
from spg_app.downloads import boxes_json, maps_npz
from spg_app.figures import growth_figure, histogram_figure
from spg_app.growth import grow_guidance
from spg_app.loaders import (dataset_sample, final_tile, growth_tile, load_map, predict_maps,
                             predict_upload_maps, short_hash)
from spg_app.picker import image_index_input, pick_dataset_image, pick_upload
from spg_app.pipeline_view import MAX_SIDE as PIPELINE_MAX_SIDE
from spg_app.pipeline_view import PipelineRun, pipeline_view, read_value
from spg_app import links, live
from spg_app.live import LiveChoices
from spg_app.pictures import data_url, encode_picture, final_picture, maps_picture, png_bytes
from spg_app.stages import map_stage_label
from spg_app.text import message, plain
from spg_app.state import Context, ModelContext, Picked, bind, preset_thresholds, view
from spg_app.threshold_growth import grow_with_thresholds
from spg_app.thresholds import box_view, clean_thresholds, stage_numbers, threshold_view
from spg_app.widgets import classes_table, need, numbers_table, percent, scroll_target
from spg_core import viz
from spg_core.boxes import iou as box_iou
from spg_core.boxes import largest_component_box
from spg_core.evaluate import prepare_map
from spg_core.exports import wsol_map_npy
from spg_core.guidance import MAP_STAGES, PRESETS, STAGE_NAMES, STAGE_TITLES, guided_stage
from spg_core.sweeps import object_mask


PIPELINE_KEY = "pipeline"  # the pipeline view's widget key
RELEASE_SEEN = "pipeline_release_seen"  # session state: the nonce of the last release applied
SHOWN = "pipeline_shown"  # session state: the values the pipeline view shows (given, or released since)


def apply_preset(stages=STAGE_NAMES) -> None:
    """The chosen preset's thresholds for ``stages`` (the preset box's and the Reset buttons' callback)."""
    current = view()
    name = st.session_state.get("preset", current.preset)
    current.preset = name if name in PRESETS else current.preset
    defaults = preset_thresholds(current.preset)
    for stage in stages:
        current.thresholds[stage] = defaults[stage]
    links.write_url()


def preset_controls(model: ModelContext, slots) -> str:
    """The preset choice and "Reset all" (both move every stage's thresholds), in two ``slots``:
    the preset's name."""
    current = view()
    bind("preset", current.preset)
    trained = ("Grown guidance trains with" if model.uploads_only else "This run was trained with")
    preset_name = slots[0].selectbox(
        "Threshold preset", list(PRESETS), key="preset", on_change=apply_preset,
        help=f"Named (δ_l, δ_h) sets of guidance.PRESETS; choosing one resets the thresholds. "
             f"{trained} **{model.config.preset}**. "
             + " ".join(f"**{name}**: {preset.description}." for name, preset in PRESETS.items()))
    slots[1].button("Reset all", key="reset_all", on_click=apply_preset, help="Back to the preset's values.",
                    width="stretch")
    return preset_name


def live_choices(preset_name: str, tau: float) -> LiveChoices:
    """The session view's δ values of every stage (the dict the controls write to) and τ."""
    return LiveChoices(preset_name, view().thresholds, tau)


def current_tau(ctx: Context) -> float:
    """τ as the session's view holds it now: a fragment rerun after a τ move sees the new value,
    ``ctx`` (drawn by the last full run) the old one."""
    ctx.tau = float(view().tau)
    return ctx.tau


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


def choose_image(ctx: Context, row) -> Picked | None:
    """The image source radio, then a dataset image or an uploaded photo, in the first three
    columns of the header ``row``."""
    model = ctx.model
    if model.uploads_only:
        st.session_state["image_source"] = "upload"
    source = row[0].radio("Image", ["dataset", "upload"], key="image_source", disabled=model.uploads_only,
                          format_func={"dataset": "from the dataset", "upload": "upload a photo"}.get)
    if model.uploads_only:
        row[0].caption(f"{model.label}: uploaded photos only.")
    if source == "dataset":
        if ctx.dataset is None:
            st.info("Pick a dataset in the sidebar, or upload a photo.")
            return None
        return pick_dataset_image(ctx, row[1], row[2])
    with row[2]:
        return pick_upload()


def class_and_maps(ctx: Context, picked: Picked, slots):
    """The class and box-map choices (in ``slots``: two columns of the header row): (maps of the
    chosen class, class, box stage, the maps of the predicted class)."""
    model = ctx.model
    localizer = model.localizer
    predict = predict_upload_maps if picked.image_key.startswith("upload:") else predict_maps
    base = predict(model.key, picked.image_key, None, localizer, picked.image)
    with slots[0]:
        class_index = class_choice(ctx, picked, base.predicted)
    with slots[1]:
        box_stage = box_stage_choice(base)
    maps = base if class_index == base.predicted else predict(model.key, picked.image_key, class_index,
                                                               localizer, picked.image)
    return maps, class_index, box_stage, base


def classes_section(ctx: Context, picked: Picked, base) -> None:
    """The top-5 classes and whether top-1 is right, below the pipeline view."""
    # Markdown, not st.dataframe / st.table: no interactive data-grid code for the browser on a
    # first visit (≈ 1.3 MB of JavaScript) and no DataFrame or Arrow conversion per image change.
    st.markdown(classes_table([(name, p) for _, name, p in base.top_k(5)]))
    if picked.label is not None and ctx.gt_usable:
        verdict = "right" if base.predicted == picked.label else "wrong"
        st.caption(f"Top-1 is **{verdict}** (ground truth: {plain(ctx.model.localizer.class_names[picked.label])}).")


def growth_section(maps_key: str, grown) -> None:
    st.subheader("How the guidance grew (beyond the paper)")
    columns = st.columns([3, 2])
    columns[0].image(growth_tile(maps_key, grown), alt="Guidance growth", width="stretch", output_format="PNG",
                     caption="Mask-A (the attention seeds), the fused guidance (B1+B2)/2 at moments of training, "
                             "and the final Mask-fuse (at the preset the heads trained with).")
    columns[1].plotly_chart(growth_figure(grown.history), width="stretch", key="guidance_history")


@st.fragment(key=live.HISTOGRAMS)
def histograms(maps, choices: LiveChoices) -> None:
    scroll_target("histograms")
    if st.toggle("Show where the thresholds cut each map (score histograms)", key="show_histograms"):
        st.plotly_chart(histogram_figure(maps.maps, choices.thresholds), width="stretch", key="histograms")


@st.fragment(key=live.BOX)
def box_panel(ctx: Context, picked: Picked, maps_key: str, maps, box_stage: str, region, gt_key: str, gt_boxes,
              choices: LiveChoices) -> None:
    """The localisation map with its box at τ, the box's numbers and the downloads. A fragment: a
    τ move reruns this panel alone (:mod:`spg_app.live`)."""
    choices.tau = tau = current_tau(ctx)
    ctx.alpha = float(view().alpha)  # a release that moved the opacity reruns this panel alone
    box, iou = box_view(maps, tau, gt_boxes, box_stage)
    st.subheader("Box and downloads")
    columns = st.columns([2, 1])
    large, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage, tuple(box),
                            gt_key, maps, gt_boxes, side=384)
    source = "" if box_stage == "attention" else f" (from {STAGE_TITLES[box_stage]})"
    columns[0].image(data_url(large, fmt), width=448, alt="Localisation map + box",
                     caption=f"Localisation map + box{source} at τ = {tau:.2f}"
                             + ("" if iou is None else f" — IoU {iou:.3f}")
                             + ": the predicted box (green) and GT boxes (red); opacity in the pipeline view")
    with columns[1]:
        st.metric("IoU of the box with GT", "—" if iou is None else f"{iou:.3f}",
                  help="Best IoU of the predicted box with any GT box (inclusive pixels, the +1 rule).")
        st.metric("Predicted box (x0, y0, x1, y1)", str(tuple(box)))
        st.metric("Map shown", ctx.model.localizer.class_names[maps.class_index])
        downloads(ctx, picked, maps, box_stage, region, gt_boxes, choices)


def downloads(ctx: Context, picked: Picked, maps, box_stage: str, region, gt_boxes, choices: LiveChoices) -> None:
    """Made when pressed, from the values on screen then (``choices``, which the panels keep)."""
    def view():
        return threshold_view(maps, choices.preset(), choices.tau, region, gt_boxes, box_stage)

    stem = Path(str(picked.image_id)).stem or "image"
    st.download_button("Overlay (PNG)",
                       data=lambda: png_bytes(final_picture(maps, view().box, ctx.alpha, gt_boxes, box_stage)),
                       file_name=f"{stem}_overlay.png",
                       mime="image/png", on_click="ignore", key="download_overlay", width="stretch")
    st.download_button("Maps and seeds (.npz)", data=lambda: maps_npz(maps, view().masks),
                       file_name=f"{stem}_maps.npz", mime="application/octet-stream", on_click="ignore",
                       key="download_maps", width="stretch")
    st.download_button("Boxes and numbers (JSON)",
                       data=lambda: boxes_json(picked.image_id, maps, view(), choices.tau, choices.preset(), gt_boxes,
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


@st.fragment(key=live.GROW)
def grow_section(ctx: Context, picked: Picked, maps, region, choices: LiveChoices) -> None:
    current_tau(ctx)
    grow_with_thresholds(ctx, picked, maps, choices.preset(), region)


def maps_page(ctx: Context) -> None:
    """A maps folder's image: its map (over the image when the data root has it, else alone) in
    the pipeline view as the map the box comes from, with the seeds Eq. 1 would draw from it; the
    box at τ (the paper's rule, on the original image's pixels as ``evaluate-maps``) and the GT
    boxes. No model runs, so no B2, B1, fused map or SPG-C."""
    model = ctx.model
    st.caption("A maps folder holds one final map per image, no SPG branches: the view shows it in the attention "
               "map's place, the seeds Eq. 1 would draw from it (Mask-A) and its box.")
    apply_release()  # a release of the view (below) is a full run here: its τ boxes the map first
    current_tau(ctx)
    ctx.alpha = float(view().alpha)
    index = image_index_input(len(ctx.dataset))
    sample = (dataset_sample(ctx.data_key, index, ctx.dataset) if ctx.has_images
              else ctx.dataset.load_sample(index, image=False))
    if sample is None:
        st.warning(f"Image #{index} cannot be read.")
        return
    try:
        score_map = load_map(model.key, str(model.maps_dir), sample.image_id)
    except (OSError, ValueError) as error:
        st.error(message(f"No readable map for {sample.image_id!r} in {model.maps_dir}: {error}"))
        return
    normalized = prepare_map("paper", score_map, sample.size)
    box = largest_component_box(normalized, ctx.tau)
    gt = np.asarray(sample.boxes).reshape(-1, 4)
    iou = float(np.max(box_iou(box, gt))) if len(gt) else None
    names = ctx.dataset.class_names
    st.markdown(f"**#{index} · {plain(sample.image_id)} · {plain(names[sample.label])}**")
    if max(sample.size) <= PIPELINE_MAX_SIDE:
        width, height = sample.size
        image = sample.image if sample.image is not None else Image.new("RGB", (width, height), (128, 128, 128))
        picked = Picked(f"maps:{index}", image, str(sample.image_id), int(sample.label), gt, sample.mask)
        region = object_mask(sample.mask, gt, (height, width))
        maps = SimpleNamespace(maps={"attention": normalized.astype(np.float32)})
        pipeline_section(ctx, picked, maps, "attention", region)
    else:  # too large for the view: τ on a slider of its own
        bind("maps_tau", view().tau)
        ctx.tau = st.slider("Box threshold τ", 0.0, 0.99, step=0.01, key="maps_tau", format="%.2f",
                            on_change=lambda: setattr(view(), "tau", float(st.session_state["maps_tau"])))
        box = largest_component_box(normalized, ctx.tau)
        iou = float(np.max(box_iou(box, gt))) if len(gt) else None
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
    image_view(ctx)
    explain_spg()


@st.fragment
def image_view(ctx: Context) -> None:
    """The image choice and everything below it: a fragment, so picking another image, class or
    box map reruns this part of the page, not the sidebar (:mod:`spg_app.live`)."""
    model = ctx.model
    st.session_state[live.ON_SCREEN] = False  # until the fragments of δ and τ are drawn again
    row = st.columns([1.1, 1, 1.3, 1.6, 1.4], vertical_alignment="bottom")
    picked = choose_image(ctx, row)
    if picked is None:
        return
    maps, _, box_stage, base = class_and_maps(ctx, picked, row[3:])

    # Beyond the paper: SPG-B grown on this uploaded photo replaces the maps of the strip (same code path).
    grown = grow_guidance(model, picked, maps.class_index) if picked.image_key.startswith("upload:") else None
    maps_key = model.key
    if grown is not None:
        maps_key, maps = grown
        if box_stage not in maps.maps:  # e.g. SPG-C of a trained run: the grown heads have none
            box_stage = "attention"

    thresholded_sections(ctx, picked, maps_key, maps, box_stage, grown is not None)
    classes_section(ctx, picked, base)


@st.fragment(key=live.THRESHOLDED)
def thresholded_sections(ctx: Context, picked: Picked, maps_key: str, maps, box_stage: str, grown: bool) -> None:
    """Everything δ and τ change, from the preset down: a fragment (a preset change or a release in
    the pipeline view reruns it, not the sidebar, the image choice or the model). The pipeline
    view applies δ and τ in the browser while a thumb moves; a release lands in the session's
    view, and the numbers, histograms, box panel and downloads below follow it."""
    model = ctx.model
    top = st.columns([1.3, 0.7, 1.6, 2.4], vertical_alignment="bottom")
    preset_name = preset_controls(model, top[:2])
    with top[2]:
        second = choose_second_run(ctx, st.container())
    top[3].caption(f"**{plain(picked.title)}**")
    choices = live_choices(preset_name, current_tau(ctx))
    st.session_state[live.ON_SCREEN] = True

    has_gt = picked.label is not None
    gt_boxes = picked.boxes if has_gt else None
    region = object_mask(picked.mask, picked.boxes, (picked.image.height, picked.image.width)) if has_gt else None
    gt_key = short_hash(str(np.asarray(picked.boxes).tolist())) if has_gt else ""
    maps_b = second_maps(second, picked, maps) if second is not None else None

    if pipeline_section(ctx, picked, maps, box_stage, region, second, maps_b):
        choices = live_choices(preset_name, current_tau(ctx))
    if model.uploads_only and not grown:
        st.caption("This pretrained classifier has no B1, B2 or SPG-C branches: the view shows the attention map "
                   "and the seeds Eq. 1 makes from it (Mask-A). Grow the guidance above to see the other stages.")
    elif model.variant == "plain" and not grown:
        st.caption("SPG-plain has no B1, B2 or SPG-C branches: the view shows the attention map and the seeds "
                   "Eq. 1 would make from it (Mask-A); the other stages exist only in SPG models.")
    seed_numbers(maps, region, choices, picked)
    histograms(maps, choices)
    box_panel(ctx, picked, maps_key, maps, box_stage, region, gt_key, gt_boxes, choices)
    if grown:
        growth_section(maps_key, maps)
    if second is not None:
        compare_section(ctx, picked, maps_key, maps, second, maps_b, box_stage, region, gt_boxes, choices)
    grow_section(ctx, picked, maps, region, choices)


@st.fragment(key=live.COMPARE)
def compare_section(ctx: Context, picked: Picked, maps_key: str, maps, second, maps_b, box_stage: str, region,
                    gt_boxes, choices: LiveChoices) -> None:
    side_by_side(ctx, picked, maps_key, maps, second, maps_b, choices.preset(), current_tau(ctx), box_stage, region,
                 gt_boxes)


def view_values() -> dict:
    """The session view's values as the pipeline view takes and sends them."""
    current = view()
    return {"thresholds": {stage: tuple(pair) for stage, pair in current.thresholds.items()}, "tau": current.tau,
            "alpha": current.alpha}


def pipeline_section(ctx: Context, picked: Picked, maps, box_stage: str, region, second=None, maps_b=None) -> bool:
    """The pipeline view (:mod:`spg_app.pipeline_view`) of the run, and of the second run when one
    is compared, at the session view's values. Returns True when a release changed them."""
    # A release its callback could not apply (the page was not on screen) is applied first, then drawn.
    moved = apply_release()
    current = view()
    ctx.tau, ctx.alpha = float(current.tau), float(current.alpha)
    mask = None if picked.mask is None else np.asarray(picked.mask) == 1
    boxes = picked.boxes if region is not None else None
    precedence = current.guidance().precedence
    runs = [PipelineRun(ctx.model.label, picked.image, maps.maps, precedence, boxes, region, mask)]
    if second is not None:
        runs.append(PipelineRun(second.label, picked.image, maps_b.maps, precedence, boxes, region, mask))
    values = st.session_state[SHOWN] = view_values()
    pipeline_view(runs, values["thresholds"], values["tau"], values["alpha"], box_stage=box_stage, key=PIPELINE_KEY,
                  on_change=pipeline_released)
    return bool(moved)


def release_values(released: dict) -> dict:
    """A release's values cleaned as any input: clipped to [0, 1] (τ to 0.99), δ_l < δ_h (Eq. 1)."""
    tau, alpha = (round(min(max(float(value), 0.0), top), 4) for value, top in ((released["tau"], 0.99),
                                                                                (released["alpha"], 1.0)))
    thresholds = {stage: clean_thresholds(min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0))[:2]
                  for stage, (low, high) in released["thresholds"].items()}
    return {"thresholds": thresholds, "tau": tau, "alpha": alpha}


def release_changes(released: dict | None) -> dict:
    """What a release of the pipeline view changes in the session's view (once per release: its
    nonce): the values the user moved there — those that differ from what the view showed before
    (:data:`SHOWN`) —; a value changed elsewhere since (the sidebar's τ) is kept.
    {"thresholds": {stage: pair}, "tau": τ, "alpha": α}, the moved only."""
    if released is None or released["nonce"] == st.session_state.get(RELEASE_SEEN):
        return {}
    current = view()
    before = st.session_state.get(SHOWN) or {"thresholds": {}, "tau": None, "alpha": None}
    values = release_values(released)
    changes: dict = {"thresholds": {stage: pair for stage, pair in values["thresholds"].items()
                                    if pair != before["thresholds"].get(stage)}}
    if values["tau"] != before["tau"] and values["tau"] != current.tau:
        changes["tau"] = values["tau"]
    if values["alpha"] != before["alpha"] and values["alpha"] != current.alpha:
        changes["alpha"] = values["alpha"]
    return changes


def apply_release(changes: dict | None = None) -> set[str]:
    """The pipeline view's last release into the session's view (:func:`release_changes`), and the
    URL; returns the names of what moved ("thresholds", "tau", "alpha")."""
    released = read_value(st.session_state.get(PIPELINE_KEY))
    if changes is None:
        changes = release_changes(released)
    if released is None or released["nonce"] == st.session_state.get(RELEASE_SEEN):
        return set()
    st.session_state[RELEASE_SEEN] = released["nonce"]
    st.session_state[SHOWN] = release_values(released)  # the view shows what it released
    current = view()
    current.thresholds.update(changes.get("thresholds", {}))
    current.tau = changes.get("tau", current.tau)
    current.alpha = changes.get("alpha", current.alpha)
    links.write_url()
    return {name for name, value in changes.items() if name != "thresholds" or value}


def pipeline_released() -> None:
    """``on_change`` of the pipeline view: the release goes into the session's view, and only
    the parts that show what moved rerun (:func:`spg_app.live.after_release`); the view already
    shows its own values, so it is not redrawn."""
    changes = release_changes(read_value(st.session_state.get(PIPELINE_KEY)))
    if not st.session_state.get(live.ON_SCREEN):
        return
    moved = apply_release(changes)
    live.rerun(live.after_release(moved))


@st.fragment(key=live.NUMBERS)
def seed_numbers(maps, region, choices: LiveChoices, picked: Picked) -> None:
    """Each guided stage's numbers at the view's thresholds, one table (what the view draws). A
    fragment: a release that moved thresholds reruns it alone (:mod:`spg_app.live`)."""
    rows = {}
    preset = choices.preset()
    for stage in STAGE_NAMES:
        if guided_stage(stage).source not in maps.maps:
            continue
        fallback, stats = stage_numbers(maps, preset, stage, region)
        low, high = choices.thresholds[stage]
        rows[guided_stage(stage).title] = {
            "δ_l": f"{low:.2f}", "δ_h": f"{high:.2f}", "foreground": percent(stats["foreground"]),
            "background": percent(stats["background"]), "ignored": percent(stats["ignored"]),
            "fg precision": percent(stats.get("foreground_precision")),
            "bg precision": percent(stats.get("background_precision")),
            "fallback": "fired" if fallback else "no"}
    with st.expander("Seed numbers (Eq. 1) at the released thresholds", expanded=False):
        for title, numbers in rows.items():
            st.markdown(numbers_table(title, numbers))
        has_gt = picked.label is not None
        reference = ("the GT mask" if picked.mask is not None else "the GT box area (no mask)") if has_gt else None
        st.caption("Coverage: share of the image's pixels in each seed class. "
                   + (f"Precision: share of foreground seeds inside the object and of background seeds outside it, "
                      f"against {reference}." if reference else "Precision needs ground truth (a dataset image)."))
