"""Page 2, *Dataset*: accuracy against τ for runs and maps folders on the same axes, the IoU
histogram, and a sweep of (δ_l, δ_h) showing which thresholds give clean seeds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from spg_app.analyses import evaluation, evaluation_note, guidance_statistics, show_notes
from spg_app.baseline_view import add_baseline_lines, baseline_entries, page_baselines
from spg_app.figures import CURVE_NAMES, accuracy_figure, fallback_figure, iou_histogram, sweep_figure
from spg_app.loaders import open_maps, open_model
from spg_app.paths import allowed_path
from spg_app.protocol_panel import protocol_panel
from spg_app.runs import paired_run, run_metrics
from spg_app.sidebar import run_label
from spg_app.stages import map_stage_label
from spg_app.state import MAPS_FOLDER, OTHER_RUN, Context, current_thresholds
from spg_app.text import message, plain
from spg_app.widgets import count_slider, need, percent
from spg_core.evaluate import PROTOCOLS
from spg_core.guidance import MAP_STAGES, PRESETS, STAGE_NAMES, guided_stage
from spg_core.runs import shipped_runs

DEFAULT_CURVES = ("gt_known_loc", "top1_loc", "boxacc_v2_iou30", "boxacc_v2_iou50", "boxacc_v2_iou70")


def compare_models(ctx: Context) -> list:
    """The entries on the chart: shipped runs, the sidebar's own run or maps folder, and any run or
    maps folders typed below (as many as wanted)."""
    runs = shipped_runs()
    current = ctx.model
    current_name = st.session_state.get("model_choice")
    typed_current = current_name in (OTHER_RUN, MAPS_FOLDER)
    options = list(runs)
    if typed_current:
        options = ["__current__", *options]
    if "compare_runs" not in st.session_state:
        first = "__current__" if typed_current else current_name
        partner = paired_run(first)
        st.session_state["compare_runs"] = [first] + ([partner] if partner in runs else [])
    st.session_state["compare_runs"] = [r for r in st.session_state["compare_runs"] if r in options] or [options[0]]
    chosen = st.multiselect("Models (on the same axes)", options, key="compare_runs",
                            format_func=lambda r: current.label if r == "__current__" else run_label(r))
    more = st.text_area("More entries: run folders or maps folders, one per line (`name = folder` names a "
                        "maps folder's method)", key="compare_more", height=68,
                        help="A folder with checkpoint.pt is a trained run; a folder of <image_id>.npy maps is "
                             "scored against the sidebar's images as `evaluate-maps` scores it.")
    if "synthetic-plain" not in runs:
        st.caption("`synthetic-plain` (the SPG-plain baseline) is not shipped in this install; "
                   "compare with any run by choosing it in the sidebar.")
    models = []
    for name in chosen:
        try:
            models.append(current if name == "__current__" else open_model(name, run_label(name)))
        except Exception as error:  # a replaced or broken run folder: say which and why
            st.error(message(f"Could not load {name!r}: {error}"))
    for line in (more or "").splitlines():
        name, _, folder = line.rpartition("=") if "=" in line else ("", "", line)
        if not folder.strip():
            continue
        try:
            models.append(open_entry(folder.strip(), name.strip()))
        except Exception as error:  # a typed path can fail in many ways: one line, never a traceback
            st.error(message(f"Could not open {folder.strip()!r}: {error}"))
    return models


def open_entry(text: str, name: str = ""):
    """A typed comparison entry: a run folder (checkpoint.pt) or a maps folder."""
    path = allowed_path(text)
    if path.is_file() or (path / "checkpoint.pt").is_file():
        return open_model(str(path), name or None)
    return open_maps(path, name)


def metrics_table(results: list[tuple[str, dict]]) -> pd.DataFrame:
    rows = []
    for label, result in results:
        m = result["metrics"]
        per_iou = m.get("maxboxacc_v2_per_iou", {})
        rows.append({
            "model": label, "images": m.get("num_images"), "protocol": m.get("protocol"), "τ": m.get("tau"),
            "GT-known Loc": m.get("gt_known_loc"), "Top-1 Loc": m.get("top1_loc"), "Top-5 Loc": m.get("top5_loc"),
            "MaxBoxAcc": m.get("maxboxacc"), "MaxBoxAccV2": m.get("maxboxacc_v2"),
            **{f"V2 @ IoU {k}": v for k, v in per_iou.items()},
            "PxAP": m.get("pxap"), "Top-1 cls": m.get("classification_top1"), "Top-5 cls": m.get("classification_top5"),
        })
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c not in ("model", "images", "protocol", "τ")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce").round(1)
    # A maps folder has no classifier (no Top-1 Loc, no classification), a protocol no V2: "—", not NaN.
    for column in numeric:  # as text where a value is missing (one type per column for the grid)
        if table[column].isna().any():
            table[column] = [f"{v:.1f}" if pd.notna(v) else "—" for v in table[column]]
    if table["τ"].isna().any():  # a fixed-box baseline has no τ
        table["τ"] = [f"{float(v):.2f}" if pd.notna(v) else "—" for v in table["τ"]]
    return table


# The metrics table's columns in two views of the same DataFrame (one row per model): all fifteen
# side by side are ~1300 px wide and the grid cut the last five off in the page's 940 px at a 1400-px
# window. The first view: the box at the sidebar's τ and the class (Top-k Loc needs both); the
# second: the measures that take the best τ, and PxAP. The model column is pinned: on a window
# narrower than ~1250 px the first view scrolls under it.
AT_TAU_COLUMNS = ("model", "images", "protocol", "τ", "GT-known Loc", "Top-1 Loc", "Top-5 Loc", "Top-1 cls",
                  "Top-5 cls")


def table_views(table: pd.DataFrame) -> list[list[str]]:
    """The columns of each view of :func:`metrics_table`'s ``table``: every column in one view,
    "model" first in each."""
    first = [column for column in AT_TAU_COLUMNS if column in table.columns]
    return [first, ["model", *(column for column in table.columns if column not in first)]]


def accuracy_tab(ctx: Context) -> None:
    models = compare_models(ctx)
    if not models:
        return
    total = len(ctx.dataset)
    columns = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images (N)", total, "eval_n")
    if st.session_state.get("eval_protocol") not in PROTOCOLS:
        st.session_state["eval_protocol"] = "wsolevaluation"
    protocol = columns[1].selectbox("Protocol", PROTOCOLS, key="eval_protocol",
                                    help="paper: largest component on the input grid (SPG §4). wsolevaluation: "
                                         "contour boxes at 224 px, MaxBoxAcc/V2 and PxAP (Choe et al. 2020).")
    stages = [s for s in MAP_STAGES if s == "attention" or all(m.variant not in ("plain", "maps") for m in models)]
    if st.session_state.get("eval_map_stage") not in stages:
        st.session_state["eval_map_stage"] = "attention"
    map_stage = columns[2].selectbox("Boxes from", stages, key="eval_map_stage", format_func=map_stage_label,
                                     help="The paper scores the attention map. Guidance maps need SPG heads "
                                          "(not offered when SPG-plain is compared).")
    runs_only = [m for m in models if not m.is_maps]
    if ctx.model.is_maps or len(runs_only) < len(models):
        st.caption("A maps folder holds one map per image of this split only: the protocol switchboard (which "
                   "re-scores a model's maps of this split and of val) is for trained runs.")
    if runs_only and not ctx.model.is_maps:
        protocol_panel(ctx, runs_only, n, map_stage)
    results = [(m.label, evaluation(ctx, m, n, protocol, compute=False, map_stage=map_stage)) for m in models]
    missing = [m for m, (_, r) in zip(models, results) if r is None]
    if missing:
        if columns[3].button(f"Evaluate {n} images", key="evaluate_button", type="primary"):
            results = [(m.label, evaluation(ctx, m, n, protocol, compute=True, map_stage=map_stage))
                       for m in models]
    show_notes([evaluation_note(ctx, m, n, protocol, r, map_stage) for m, (_, r) in zip(models, results)])
    results = [(label, r) for label, r in results if r is not None]
    if not results:
        st.info("Evaluation runs the model over the first N images once per (model, N, protocol, τ) and is "
                "cached; it never blocks the explore page.")
        return
    available = [name for name in CURVE_NAMES if any(name in r["curves"] for _, r in results)]
    if "eval_curves" not in st.session_state:
        st.session_state["eval_curves"] = [c for c in DEFAULT_CURVES if c in available] or available[:1]
    st.session_state["eval_curves"] = [c for c in st.session_state["eval_curves"] if c in available] or available[:1]
    chosen = st.multiselect("Curves", available, key="eval_curves", format_func=lambda c: CURVE_NAMES.get(c, c))
    if protocol == "paper":
        st.caption("MaxBoxAccV2 needs the wsolevaluation protocol (its contour boxes).")
    # The trivial baselines on the same images: a run's paper grid is its input, a maps folder's the image.
    paper_size = None if all(m.is_maps for m in models) else getattr(ctx.dataset, "image_size", None)
    baselines = page_baselines(ctx, n, protocol, paper_size)
    st.plotly_chart(add_baseline_lines(accuracy_figure(results, chosen, ctx.tau), baselines, chosen),
                    width="stretch", key="accuracy_curves")
    table = metrics_table(results + baseline_entries(baselines, protocol))
    for view, columns in enumerate(table_views(table)):  # one DataFrame, shown in views that fit the page
        st.dataframe(table, hide_index=True, width="stretch", column_order=columns, key=f"metrics_table_{view}",
                     column_config={"model": st.column_config.TextColumn(pinned=True)})
    st.caption(f"Loc metrics at the sidebar's τ = {ctx.tau:.2f} (chosen by you, on this split: an oracle if tuned "
               "here). MaxBoxAcc/V2 and PxAP take the best τ by definition. Percentages.")
    if baselines:
        st.caption(f"Baselines (grey lines, rows \"baseline · …\"): the whole image, a centred box and a centred "
                   f"Gaussian map scored like a model's map, on the same {baselines['num_images']} images; the box's "
                   "fraction and the Gaussian's τ are the best on these images (an oracle). A model that does not "
                   "beat them localises no better than ignoring the image.")
    st.plotly_chart(iou_histogram(results), width="stretch", key="iou_histogram")
    if any(m.is_maps for m in models):
        st.caption("A maps folder has no classifier: its Top-1/Top-5 Loc and classification are —; its map is "
                   "the ground-truth class's, so GT-known Loc, MaxBoxAcc/V2 and PxAP are scored as `evaluate-maps` "
                   "scores them.")
    for model in models:
        saved = run_metrics(model.folder) if model.folder is not None else None
        if saved:
            with st.expander(plain(f"{model.label}: metrics.json written with the run")):
                st.json(saved)


def sweep_tab(ctx: Context) -> None:
    model = ctx.model
    if model.is_maps:
        st.info("The δ sweep thresholds a model's SPG maps in training; a maps folder holds final maps only.")
        return
    st.markdown("For every (δ_l, δ_h) of a grid: how much of the image Eq. 1 turns into seeds (**coverage**) and "
                "how many of those seeds are right against the ground truth (**precision**). Clean seeds are what "
                "the next stage learns from. Maps are those training thresholds: the ground-truth class, at the "
                "seed-mask resolution, fallback included.")
    stages = [s for s in STAGE_NAMES if model.variant != "plain" or s == "mask_a"]
    if st.session_state.get("sweep_stage") not in stages:
        st.session_state["sweep_stage"] = stages[0]
    total = len(ctx.dataset)
    columns = st.columns([1.4, 2, 1, 1], vertical_alignment="bottom")
    stage = columns[0].selectbox("Stage", stages, key="sweep_stage",
                                 format_func=lambda s: f"{guided_stage(s).title} ({guided_stage(s).source_title})")
    with columns[1]:
        n = count_slider("Images (N)", total, "sweep_n", default=100)
    step = columns[2].selectbox("Grid step", [0.1, 0.05], key="sweep_step", format_func=lambda v: f"{v:.2f}")
    lows = np.round(np.arange(0.0, 0.5 + 1e-9, step), 4)
    highs = np.round(np.arange(0.3, 0.95 + 1e-9, step), 4)
    result = guidance_statistics(ctx, model, n, stage, lows, highs, compute=False, text="")
    if result is None:
        if columns[3].button("Run sweep", key="sweep_button", type="primary"):
            result = guidance_statistics(ctx, model, n, stage, lows, highs, compute=True,
                                         text=f"Computing {guided_stage(stage).source_title} maps")
    if result is None:
        st.info(f"The sweep runs the model once over N images ({len(lows)} × {len(highs)} threshold pairs), "
                "then is cached.")
        return
    kind = st.radio("Seeds", ["foreground", "background"], horizontal=True, key="sweep_kind")
    marks = {name: (p.stage(stage).delta_low, p.stage(stage).delta_high) for name, p in PRESETS.items()}
    marks["current"] = current_thresholds()[stage]
    charts = st.columns([3, 1])
    charts[0].plotly_chart(sweep_figure(result, kind, marks), width="stretch", key="sweep_heatmap")
    charts[1].plotly_chart(fallback_figure(result), width="stretch", key="sweep_fallback")
    summary = result["summary"]
    cell = (int(np.argmin(np.abs(np.array(result["lows"]) - marks["current"][0]))),
            int(np.argmin(np.abs(np.array(result["highs"]) - marks["current"][1]))))
    st.caption(
        f"{len(result['indices'])} images at {result['mask_size']} px. Nearest grid cell to your current thresholds "
        f"(δ_l = {result['lows'][cell[0]]:.2f}, δ_h = {result['highs'][cell[1]]:.2f}): "
        f"fg precision {percent(summary['foreground_precision'][cell])}, "
        f"fg coverage {percent(summary['foreground'][cell])}, "
        f"bg precision {percent(summary['background_precision'][cell])}, "
        f"bg coverage {percent(summary['background'][cell])}, "
        f"fallback on {percent(summary['fallback'][cell])} of images. Precision averages over images that have seeds "
        "of that kind; white symbols mark the presets, the orange star your explore-page thresholds.")


def page(ctx: Context) -> None:
    st.title("Dataset")
    if not need(ctx, gt=True):
        return
    st.caption(f"{ctx.data_label} · τ = {ctx.tau:.2f} (sidebar)")
    accuracy, sweep = st.tabs(["Accuracy vs τ", "δ sweep"])
    with accuracy:
        accuracy_tab(ctx)
    with sweep:
        sweep_tab(ctx)
