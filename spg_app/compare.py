"""Two runs side by side on the explore page: the same image, class, τ and δ values through a
second run (e.g. SPG-plain next to SPG). The pipeline view draws both runs (one drag moves
both); below it, both IoUs, the difference of their maps (``viz.difference_image``) and a
summary row per run."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from spg_app.live import NO_RUN
from spg_app.paths import allowed_path
from spg_app.loaders import difference_tile, open_model, predict_maps, predict_upload_maps
from spg_app.pictures import DIFFERENCE_MAPS, map_gaps
from spg_app.sidebar import run_label
from spg_app.state import OTHER_RUN, Context, ModelContext, Picked
from spg_app.thresholds import threshold_view
from spg_app.text import message, plain
from spg_app.widgets import percent, scroll_target
from spg_core.guidance import STAGE_ORDER, STAGE_TITLES
from spg_core.runs import shipped_runs

PER_ROW = 5


def choose_second_run(ctx: Context, slot) -> ModelContext | None:
    """The "Compare with" control, drawn in ``slot``: a shipped run or a RUN_DIR, as the sidebar's
    model; None by default, or when it cannot be compared (said in one line)."""
    options = [NO_RUN, *shipped_runs(), OTHER_RUN]
    if st.session_state.get("compare_with") not in options:
        st.session_state["compare_with"] = NO_RUN
    columns = [slot, slot]
    choice = columns[0].selectbox(
        "Compare with another run", options, key="compare_with",
        format_func=lambda name: "none" if name == NO_RUN else run_label(name),
        help="Shows a second run on the same image, class, τ and δ values in the same view (one drag moves "
             "both), then both IoUs and the difference of their maps.")
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
        second = open_model(run, run_label(run) if choice != OTHER_RUN else None)
    except Exception as error:  # a typed path can fail in many ways; show why, never a traceback
        st.error(message(f"Could not load the run {run!r} to compare with: {error}"))
        return None
    classes_a, classes_b = ctx.model.localizer.model.num_classes, second.localizer.model.num_classes
    if classes_a != classes_b:
        st.warning(f"Cannot compare: {plain(second.label)} has {classes_b} classes and {plain(ctx.model.label)} {classes_a}. "
                   "The two runs' maps of one class (and their ground-truth class maps) only exist for runs "
                   "trained on the same classes; pick such a run.")
        return None
    return second


def second_maps(second: ModelContext, picked: Picked, maps):
    """The second run's maps of the image and class shown."""
    predict = predict_upload_maps if picked.image_key.startswith("upload:") else predict_maps
    return predict(second.key, picked.image_key, maps.class_index, second.localizer, picked.image)


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


def side_by_side(ctx: Context, picked: Picked, maps_key: str, maps, second: ModelContext, maps_b, preset,
                 tau: float, box_stage: str, region, gt_boxes) -> None:
    """What the pipeline view (which draws both runs) does not: both IoUs, the difference of the
    two runs' maps and a summary row per run, at the page's image, class, thresholds and τ."""
    scroll_target("compare")
    st.subheader("Side by side")
    first = ctx.model
    box_b = box_stage if box_stage in maps_b.maps else "attention"
    view = threshold_view(maps, preset, tau, region, gt_boxes, box_stage)
    view_b = threshold_view(maps_b, preset, tau, region, gt_boxes, box_b)
    runs = [("A", first.label, maps_key, maps, view, box_stage), ("B", second.label, second.key, maps_b, view_b, box_b)]
    class_name = first.localizer.class_names[maps.class_index]
    st.caption(f"The maps of **{plain(class_name)}** in both runs, at the same τ = {tau:.2f} and δ values"
               + ("" if box_b == box_stage else f"; B has no {STAGE_TITLES[box_stage]}, its box is from the "
                  "attention map") + ".")
    columns = st.columns(3)
    for column, (letter, label, _, _, run_view, _) in zip(columns, runs):
        column.metric(f"IoU · {letter}", "—" if run_view.iou is None else f"{run_view.iou:.3f}",
                      help=f"{plain(label)}: best IoU of its box {tuple(run_view.box)} with any GT box.")
    if view.iou is not None and view_b.iou is not None:
        columns[2].metric("IoU · A − B", f"{view.iou - view_b.iou:+.3f}")
    st.markdown("**Difference of the maps (A − B)**")
    difference_pictures(picked, runs[0], runs[1])
    st.dataframe(summary_table(runs, [maps.probabilities, maps_b.probabilities]), hide_index=True, width="stretch",
                 column_config={"p(class shown)": st.column_config.NumberColumn(format="percent"),
                                "IoU": st.column_config.NumberColumn(format="%.3f")})
