"""Page 1, *Explore one image*: every stage of the paper's Fig. 2 for one image, the Eq. 1
thresholds of each stage and the box threshold τ live on sliders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from spg_app.compare import side_by_side
from spg_app.downloads import boxes_json, maps_npz
from spg_app.figures import growth_figure, histogram_figure
from spg_app.growth import grow_guidance
from spg_app.loaders import (dataset_sample, final_tile, growth_tile, load_map, map_tile, predict_maps,
                             predict_upload_maps, short_hash)
from spg_app.picker import pick_dataset_image, pick_upload
from spg_app import live
from spg_app.live import LiveChoices
from spg_app.pictures import (STRIP_SIDE, data_url, encode_picture, final_picture, maps_picture, png_bytes,
                              seed_picture, strip_names)
from spg_app.stages import STAGE_NOTES, map_stage_label
from spg_app.state import Context, ModelContext, Picked
from spg_app.threshold_growth import grow_with_thresholds
from spg_app.thresholds import box_view, clean_thresholds, stage_seeds, threshold_view
from spg_app.widgets import classes_table, need, numbers_table, percent
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


def preset_controls(model: ModelContext) -> str:
    """The preset choice and "Reset all" (both move every stage's sliders): the preset's name."""
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
    return preset_name


def live_choices(preset_name: str, tau: float) -> LiveChoices:
    """The δ values of every stage as the sliders hold them (cleaned for Eq. 1) and τ; kept in the
    session (``current_thresholds``: the other pages start from them)."""
    thresholds = {stage: clean_thresholds(*st.session_state[f"delta_{stage}"])[:2] for stage in STAGE_NAMES}
    st.session_state["current_thresholds"] = thresholds  # the same dict the seed panels update
    return LiveChoices(preset_name, thresholds, tau)


def current_tau(ctx: Context) -> float:
    """τ as the sidebar's slider holds it now: a fragment rerun after a τ move sees the new value,
    ``ctx`` (drawn by the last full run) the old one."""
    ctx.tau = float(st.session_state.get("tau", ctx.tau))
    return ctx.tau


@st.fragment(key=live.SEEDS)
def seed_panel(picked: Picked, maps_key: str, maps, stage: str, region, choices: LiveChoices) -> None:
    """One guided stage: its δ slider, its Eq. 1 seeds and their numbers. A fragment: moving the
    slider reruns this panel alone (:mod:`spg_app.live`)."""
    key = f"delta_{stage}"
    info = guided_stage(stage)
    exists = info.source in maps.maps
    st.slider(f"{info.title}: δ_l, δ_h on the {info.source_title}", 0.0, 1.0, step=0.01, key=key, format="%.2f",
              disabled=not exists, on_change=live.delta_moved,
              help=f"Eq. 1 on the {info.source_title}: below δ_l background, above δ_h foreground, "
                   f"between ignored ({info.role}). All presets: "
                   + "; ".join(f"{name} {p.stage(stage).delta_low:.2f}/{p.stage(stage).delta_high:.2f}"
                               for name, p in PRESETS.items()))
    low, high, adjusted = clean_thresholds(*st.session_state[key])
    choices.thresholds[stage] = (low, high)
    reference = PRESETS[choices.preset_name].stage(stage)
    changed = (low, high) != (reference.delta_low, reference.delta_high)
    st.caption(f"{choices.preset_name} preset: δ_l = {reference.delta_low:.2f}, δ_h = {reference.delta_high:.2f}"
               + (" · **changed**" if changed else "") + ("" if exists else " · no such map in this model"))
    if adjusted:
        st.caption(f":orange[Eq. 1 needs δ_l < δ_h: using δ_l = {low:.2f}, δ_h = {high:.2f}.]")
    st.button("Reset", key=f"reset_{stage}", on_click=apply_preset, args=((stage,),))
    if not exists:
        return
    seeds = stage_seeds(maps, choices.preset(), stage, region)
    stats = seeds.stats
    st.image(data_url(*encode_picture(seed_picture(seeds.mask), exact=True)), alt=STAGE_TITLES[stage], width=STRIP_SIDE,
             caption=f"{STAGE_TITLES[stage]} — fg {percent(stats['foreground'])} · bg {percent(stats['background'])}"
                     + (" · fallback fired" if seeds.fallback else ""))
    # A row per number (three stages side by side), as Markdown: an st.table's DataFrame and
    # Arrow conversion were ~40 % of a δ move's server time (py-spy, benchmarks/bench_load.py).
    numbers = {"δ_l": f"{low:.2f}", "δ_h": f"{high:.2f}",
               "foreground": percent(stats["foreground"]), "background": percent(stats["background"]),
               "ignored": percent(stats["ignored"]),
               "fg precision": percent(stats.get("foreground_precision")),
               "bg precision": percent(stats.get("background_precision")),
               "fallback": "fired" if seeds.fallback else "no"}
    st.markdown(numbers_table(info.title, numbers))


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
        # Markdown, not st.dataframe / st.table: no interactive data-grid code for the browser on a
        # first visit (≈ 1.3 MB of JavaScript) and no DataFrame or Arrow conversion per image change.
        st.markdown(classes_table([(name, p) for _, name, p in base.top_k(5)]))
    if picked.label is not None and ctx.gt_usable:
        verdict = "right" if base.predicted == picked.label else "wrong"
        head[0].caption(f"Top-1 is **{verdict}** (ground truth: {localizer.class_names[picked.label]}).")
    return maps, class_index, box_stage


def stage_strip(ctx: Context, picked: Picked, maps_key: str, maps) -> None:
    """The score maps in the paper's order (Fig. 2): the image, then each map the model has. They
    depend on the image, class and opacity only and are cached; δ and τ change the panels below."""
    st.subheader("Stages")
    names = [(name, title) for name, title in strip_names(maps) if name not in STAGE_NAMES and name != "final"]
    pictures = []
    for name, _ in names:
        pictures.append(data_url(*map_tile(maps_key, picked.image_key, maps.class_index, name, ctx.alpha, maps)))
    titles = [title for _, title in names]
    st.image(pictures, caption=titles, alt=titles, width=STRIP_SIDE)
    notes = [f"**{title}**: {STAGE_NOTES[name]}" for name, title in strip_names(maps) if STAGE_NOTES.get(name)]
    if notes:
        with st.expander("What each stage is", expanded=False):
            st.markdown("\n".join(f"- {note}" for note in notes))


def seeds_section(picked: Picked, maps_key: str, maps, region, choices: LiveChoices) -> None:
    """Eq. 1 on each guided stage, side by side: slider, seeds and their numbers."""
    st.subheader("Seeds (Eq. 1)")
    for column, stage in zip(st.columns(len(STAGE_NAMES)), STAGE_NAMES):
        with column:
            seed_panel(picked, maps_key, maps, stage, region, choices)
    has_gt = picked.label is not None
    reference = ("the GT mask" if picked.mask is not None else "the GT box area (no mask)") if has_gt else None
    st.caption("Coverage: share of the image's pixels in each seed class. "
               + (f"Precision: share of foreground seeds inside the object and of background seeds outside it, "
                  f"against {reference}." if reference else "Precision needs ground truth (a dataset image)."))


def growth_section(maps_key: str, grown) -> None:
    st.subheader("How the guidance grew (beyond the paper)")
    columns = st.columns([3, 2])
    columns[0].image(growth_tile(maps_key, grown), alt="Guidance growth", width="stretch", output_format="PNG",
                     caption="Mask-A (the attention seeds), the fused guidance (B1+B2)/2 at moments of training, "
                             "and the final Mask-fuse (at the preset the heads trained with).")
    columns[1].plotly_chart(growth_figure(grown.history), width="stretch", key="guidance_history")


@st.fragment(key=live.HISTOGRAMS)
def histograms(maps, choices: LiveChoices) -> None:
    if st.toggle("Show where the thresholds cut each map (score histograms)", key="show_histograms"):
        st.plotly_chart(histogram_figure(maps.maps, choices.thresholds), width="stretch", key="histograms")


@st.fragment(key=live.BOX)
def box_panel(ctx: Context, picked: Picked, maps_key: str, maps, box_stage: str, region, gt_key: str, gt_boxes,
              choices: LiveChoices) -> None:
    """The localisation map with its box at τ, the box's numbers and the downloads. A fragment: a
    τ move reruns this panel alone (:mod:`spg_app.live`)."""
    choices.tau = tau = current_tau(ctx)
    box, iou = box_view(maps, tau, gt_boxes, box_stage)
    st.subheader("Box and downloads")
    columns = st.columns([2, 1])
    large, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage, tuple(box),
                            gt_key, maps, gt_boxes, side=384)
    source = "" if box_stage == "attention" else f" (from {STAGE_TITLES[box_stage]})"
    columns[0].image(data_url(large, fmt), width=448, alt="Localisation map + box",
                     caption=f"Localisation map + box{source} at τ = {tau:.2f}"
                             + ("" if iou is None else f" — IoU {iou:.3f}")
                             + ": the predicted box (green) and GT boxes (red); opacity in the sidebar")
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


@st.fragment(key=live.COMPARE)
def compare_section(ctx: Context, picked: Picked, maps_key: str, maps, box_stage: str, region, gt_boxes,
                    gt_key: str, choices: LiveChoices) -> None:
    side_by_side(ctx, picked, maps_key, maps, choices.preset(), current_tau(ctx), box_stage, region, gt_boxes,
                 gt_key)


@st.fragment(key=live.GROW)
def grow_section(ctx: Context, picked: Picked, maps, region, choices: LiveChoices) -> None:
    current_tau(ctx)
    grow_with_thresholds(ctx, picked, maps, choices.preset(), region)


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
    image_view(ctx)


@st.fragment
def image_view(ctx: Context) -> None:
    """The image choice and everything below it: a fragment, so picking another image, class or
    box map reruns this part of the page, not the sidebar (:mod:`spg_app.live`)."""
    model = ctx.model
    st.session_state[live.ON_SCREEN] = False  # until the fragments of δ and τ are drawn again
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
    """Everything δ and τ change, from the preset down: a fragment (a preset change reruns it, not
    the sidebar, the image choice or the model), holding one fragment per δ slider's seeds, one
    for the box at τ and one per view that shows them (:mod:`spg_app.live`). The maps are
    cached; the fragments re-threshold them."""
    model = ctx.model
    if model.uploads_only and not grown:
        st.info("This pretrained classifier has no B1, B2 or SPG-C branches: the strip shows the attention map "
                "and the seeds Eq. 1 makes from it (Mask-A). Grow the guidance above to see the other stages.")
    elif model.variant == "plain" and not grown:
        st.info("SPG-plain has no B1, B2 or SPG-C branches: the strip shows the attention map and the seeds "
                "Eq. 1 would make from it (Mask-A); the other stages exist only in SPG models.")
    choices = live_choices(preset_controls(model), current_tau(ctx))
    st.session_state[live.ON_SCREEN] = True

    has_gt = picked.label is not None
    gt_boxes = picked.boxes if has_gt else None
    region = object_mask(picked.mask, picked.boxes, (picked.image.height, picked.image.width)) if has_gt else None
    gt_key = short_hash(str(np.asarray(picked.boxes).tolist())) if has_gt else ""

    stage_strip(ctx, picked, maps_key, maps)
    seeds_section(picked, maps_key, maps, region, choices)
    histograms(maps, choices)
    box_panel(ctx, picked, maps_key, maps, box_stage, region, gt_key, gt_boxes, choices)
    if grown:
        growth_section(maps_key, maps)
    compare_section(ctx, picked, maps_key, maps, box_stage, region, gt_boxes, gt_key, choices)
    grow_section(ctx, picked, maps, region, choices)
