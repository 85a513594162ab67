"""Two runs side by side on the explore page: the same image, class, τ and δ values through a
second run (e.g. SPG-plain next to SPG), both stage strips aligned stage by stage, both boxes
and IoUs, and the difference of their maps (``viz.difference_image``)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from spg_app.live import NO_RUN
from spg_app.paths import allowed_path
from spg_app.loaders import difference_tile, final_tile, map_tile, open_model, predict_maps, predict_upload_maps
from spg_app.pictures import DIFFERENCE_MAPS, encode_picture, map_gaps, mask_picture, strip_names
from spg_app.sidebar import run_label
from spg_app.state import OTHER_RUN, Context, ModelContext, Picked
from spg_app.thresholds import ThresholdView, threshold_view
from spg_app.widgets import percent
from spg_core.guidance import STAGE_ORDER, STAGE_TITLES
from spg_core.runs import shipped_runs

PER_ROW = 5


def shared_strip(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, title) of every tile either strip (``pictures.strip_names``) has, in the paper's order."""
    titles = dict(first) | dict(second)
    return [(name, titles[name]) for name in ("image", *STAGE_ORDER, "final") if name in titles]


def choose_second_run(ctx: Context) -> ModelContext | None:
    """The "Compare with" control: a shipped run or a RUN_DIR, as the sidebar's model; None by default."""
    options = [NO_RUN, *shipped_runs(), OTHER_RUN]
    if st.session_state.get("compare_with") not in options:
        st.session_state["compare_with"] = NO_RUN
    columns = st.columns([1, 2])
    choice = columns[0].selectbox(
        "Compare with another run", options, key="compare_with",
        format_func=lambda name: "none" if name == NO_RUN else run_label(name),
        help="Shows a second run on the same image, class, τ and δ values next to this one: both strips, "
             "both boxes and IoUs, and the difference of their maps.")
    if choice == NO_RUN:
        return None
    if choice == OTHER_RUN:
        run = columns[1].text_input("RUN_DIR of the second run", key="compare_run_dir", placeholder="runs/my-plain",
                                    help="A folder holding checkpoint.pt, or the checkpoint file itself.").strip()
        if not run:
            columns[1].info("Type the path of the second run's folder.")
            return None
    else:
        run = choice
    try:
        if choice == OTHER_RUN:
            run = str(allowed_path(run))  # typed paths only under SPG_APP_ROOTS
        return open_model(run, run_label(run) if choice != OTHER_RUN else None)
    except Exception as error:  # a typed path can fail in many ways; show why, never a traceback
        st.error(f"Could not load the run {run!r} to compare with: {error}")
        return None


def tile(ctx: Context, picked: Picked, key: str, maps, view: ThresholdView, name: str, box_stage: str,
         gt_key: str, gt_boxes) -> tuple[bytes, str, str]:
    """(bytes, format, caption) of one tile of a run's strip: the same cached pictures as the strip above."""
    if name in view.masks:
        stats = view.report[name]
        data, fmt = encode_picture(mask_picture(view, name), exact=True)
        return data, fmt, (f"fg {percent(stats['foreground'])} · bg {percent(stats['background'])}"
                           + (" · fallback fired" if view.fallback[name] else ""))
    if name == "final":
        data, fmt = final_tile(key, picked.image_key, maps.class_index, ctx.alpha, box_stage, tuple(view.box),
                               gt_key, maps, gt_boxes)
        notes = ([] if box_stage == "attention" else [f"from {STAGE_TITLES[box_stage]}"]) + (
            [] if view.iou is None else [f"IoU {view.iou:.3f}"])
        return data, fmt, " · ".join(notes)
    data, fmt = map_tile(key, picked.image_key, maps.class_index, name, ctx.alpha, maps)
    return data, fmt, ""


def aligned_strips(ctx: Context, picked: Picked, runs: list[tuple], gt_key: str, gt_boxes) -> None:
    """Both strips, stage by stage: a row per run in each block of stages, an empty cell where a
    run has no such stage (SPG-plain has no B2, B1 or SPG-C)."""
    names = shared_strip(*(strip_names(maps) for _, _, _, maps, _, _ in runs))
    for start in range(0, len(names), PER_ROW):
        block = names[start:start + PER_ROW]
        for letter, label, key, maps, view, box_stage in runs:
            columns = st.columns([0.6] + [1] * PER_ROW)
            columns[0].markdown(f"**{letter}**")
            columns[0].caption(label)
            for column, (name, title) in zip(columns[1:], block):
                if name in ("image", "final") or name in maps.maps or name in view.masks:
                    data, fmt, note = tile(ctx, picked, key, maps, view, name, box_stage, gt_key, gt_boxes)
                    column.image(data, caption=f"{title}" + (f" — {note}" if note else ""), alt=f"{letter} · {title}",
                                 width="stretch", output_format=fmt)
                else:
                    column.caption(f"{title}: no such map in this model")


def difference_pictures(picked: Picked, first: tuple, second: tuple) -> None:
    """first − second of each of :data:`DIFFERENCE_MAPS` both runs have, on one diverging scale."""
    (_, _, key_a, maps_a, _, _), (_, _, key_b, maps_b, _, _) = first, second
    gaps = map_gaps(maps_a, maps_b)
    columns = st.columns(PER_ROW)
    for column, (name, (mean, largest)) in zip(columns, gaps.items()):
        data, fmt = difference_tile(key_a, key_b, picked.image_key, maps_a.class_index, name, maps_a, maps_b)
        column.image(data, caption=f"{STAGE_TITLES[name]}: A − B — mean |A − B| {mean:.3f}, max {largest:.3f}",
                     alt=f"A − B · {STAGE_TITLES[name]}", width="stretch", output_format=fmt)
    missing = [STAGE_TITLES[name] for name in DIFFERENCE_MAPS if name not in gaps]
    st.caption("Red: higher in A, blue: higher in B, white: the same (full colour at a difference of 1; both maps "
               "min-max normalised)." + (f" Not in both runs: {', '.join(missing)}." if missing else ""))


def summary_table(runs: list[tuple], probabilities: list) -> pd.DataFrame:
    """Per run: its top-1 class, the shown class's probability, the box, its IoU and each seed mask's precision."""
    stages = [name for name in STAGE_ORDER if any(name in view.report for *_, view, _ in runs)]
    rows = []
    for (letter, label, _, maps, view, box_stage), probs in zip(runs, probabilities):
        rows.append({"run": f"{letter}: {label}", "top-1": maps.class_names[int(probs.argmax())],
                     "p(class shown)": float(probs[maps.class_index]), "box from": STAGE_TITLES[box_stage],
                     "box": str(tuple(view.box)), "IoU": view.iou,
                     **{f"{STAGE_TITLES[name]} fg precision": percent(view.report[name].get("foreground_precision"))
                        if name in view.report else "—" for name in stages}})
    return pd.DataFrame(rows)


def side_by_side(ctx: Context, picked: Picked, maps_key: str, maps, preset, tau: float, box_stage: str,
                 region, gt_boxes, gt_key: str) -> None:
    """The "Compare with" control, and once a second run is picked, both runs side by side at the
    page's image, class, thresholds (``preset``) and ``tau``. Draws only the control when none is."""
    second = choose_second_run(ctx)
    if second is None:
        return
    first = ctx.model
    classes_a, classes_b = first.localizer.model.num_classes, second.localizer.model.num_classes
    if classes_a != classes_b:
        st.warning(f"Cannot compare: {second.label} has {classes_b} classes and {first.label} {classes_a}. "
                   "The two runs' maps of one class (and their ground-truth class maps) only exist for runs "
                   "trained on the same classes; pick such a run.")
        return
    st.subheader("Side by side")
    predict = predict_upload_maps if picked.image_key.startswith("upload:") else predict_maps
    maps_b = predict(second.key, picked.image_key, maps.class_index, second.localizer, picked.image)
    box_b = box_stage if box_stage in maps_b.maps else "attention"
    view = threshold_view(maps, preset, tau, region, gt_boxes, box_stage)
    view_b = threshold_view(maps_b, preset, tau, region, gt_boxes, box_b)
    runs = [("A", first.label, maps_key, maps, view, box_stage), ("B", second.label, second.key, maps_b, view_b, box_b)]
    class_name = first.localizer.class_names[maps.class_index]
    st.caption(f"The maps of **{class_name}** in both runs, at the same τ = {tau:.2f} and δ values"
               + ("" if box_b == box_stage else f"; B has no {STAGE_TITLES[box_stage]}, its box is from the "
                  "attention map") + ".")
    columns = st.columns(3)
    for column, (letter, label, _, _, run_view, _) in zip(columns, runs):
        column.metric(f"IoU · {letter}", "—" if run_view.iou is None else f"{run_view.iou:.3f}",
                      help=f"{label}: best IoU of its box {tuple(run_view.box)} with any GT box.")
    if view.iou is not None and view_b.iou is not None:
        columns[2].metric("IoU · A − B", f"{view.iou - view_b.iou:+.3f}")
    aligned_strips(ctx, picked, runs, gt_key, gt_boxes)
    st.markdown("**Difference of the maps (A − B)**")
    difference_pictures(picked, runs[0], runs[1])
    st.dataframe(summary_table(runs, [maps.probabilities, maps_b.probabilities]), hide_index=True, width="stretch",
                 column_config={"p(class shown)": st.column_config.NumberColumn(format="percent"),
                                "IoU": st.column_config.NumberColumn(format="%.3f")})
