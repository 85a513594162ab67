"""The Dataset page's protocol switchboard: the five switches of
:mod:`spg_core.protocol_options`, the published protocol the combination reproduces, and each
shown run's number and curves under it.

The maps are collected once per (run, data, N, map stage) — the first N images of the shown
split and of the run's held-out val split — and kept in :func:`spg_app.loaders.result_cache`;
a switch then only re-scores them (the per-image IoUs of each box rule, normalisation and
matching are cached in the :class:`~spg_core.protocol_options.MapSet`)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from spg_app.analyses import progress_callback
from spg_app.datasets import DatasetView
from spg_app.figures import protocol_figure
from spg_app.loaders import load_dataset, result_cache
from spg_app.state import Context, ModelContext
from spg_app.text import message, plain
from spg_core.data.settings import DataSettings
from spg_core.protocol_options import (
    BOX_RULES,
    IOU_SETS,
    MATCHINGS,
    NORMALIZATIONS,
    PUBLISHED,
    TAU_SOURCES,
    ProtocolOptions,
    collect_maps,
    protocol_label,
    score_protocol,
)

IOU_SET_KEYS = {"/".join(f"{v:g}" for v in values): values for values in IOU_SETS}
SWITCHES = {  # option name -> (widget key, title, values, their names)
    "box_rule": ("protocol_box_rule", "Box rule", BOX_RULES,
                 {"largest_component": "largest component", "largest_contour": "largest contour",
                  "all_contours": "all contours"}),
    "matching": ("protocol_matching", "GT matching", MATCHINGS, {"any": "any box", "first": "first box"}),
    "normalization": ("protocol_normalization", "Map normalisation", NORMALIZATIONS,
                      {"minmax": "min-max", "max": "max"}),
    "iou_set": ("protocol_iou_set", "IoU set", tuple(IOU_SET_KEYS), {k: k for k in IOU_SET_KEYS}),
    "tau": ("protocol_tau", "τ", TAU_SOURCES, {"val": "from val", "oracle": "oracle"}),
}
HELP = ("largest component: the paper's box (CAM's rule, on the network input). largest / all contours: "
        "wsolevaluation's boxes at 224 px (MaxBoxAcc / MaxBoxAccV2). τ from val: each IoU's best τ on the held-out "
        "split, read on this one; oracle: the best τ of this split itself.")


def held_out_dataset(ctx: Context):
    """The val split of the shown data (same settings), or None: the shown split is val, or the
    data has no (readable, non-empty) val split."""
    settings, split = DataSettings.from_key(ctx.data_key)
    if split == "val":
        return None
    try:
        dataset = load_dataset(settings.key("val"))
    except (ValueError, TypeError, FileNotFoundError, OSError):
        return None
    return dataset if len(dataset) else None


def protocol_maps(ctx: Context, model: ModelContext, n: int, map_stage: str, compute: bool) -> dict | None:
    """{"report": MapSet of the first ``n`` shown images, "held_out": MapSet of the first ``n``
    val images or None}, cached per (run, data, n, map stage); collected (one model pass each,
    with a progress bar) only when ``compute``."""
    key = ("protocol_maps", model.key, ctx.data_key, int(n), map_stage)
    cache = result_cache()
    result = cache.get(key)
    if result is not None or not compute:
        return result
    held_out = held_out_dataset(ctx)
    result = {}
    bar = st.progress(0.0, text=f"Collecting the maps of {model.label}…")
    try:
        for name, dataset in (("report", ctx.dataset), ("held_out", held_out)):
            if dataset is None:
                result[name] = None
                continue
            text = plain(f"{model.label}: maps of the {getattr(dataset, 'split', name)} split")
            view = DatasetView(dataset, n, progress_callback(bar, text))
            result[name] = collect_maps(model.localizer.model, view, map_stage=map_stage)
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(message(f"Collecting the maps of {model.label} failed: {error}"))
        return None
    bar.empty()
    cache.put(key, result)
    return result


def apply_preset(name: str) -> None:
    """Set the five switches to a published protocol (a button's on_click)."""
    options = PUBLISHED[name].options
    for option, (key, *_rest) in SWITCHES.items():
        value = getattr(options, option)
        st.session_state[key] = "/".join(f"{v:g}" for v in value) if option == "iou_set" else value


def switches(oracle_only: bool) -> ProtocolOptions:
    """The preset buttons and the five switches, compact; returns the chosen options."""
    for key, _, values, _ in SWITCHES.values():
        if st.session_state.get(key) not in values:
            st.session_state[key] = values[0]
    if oracle_only:
        st.session_state["protocol_tau"] = "oracle"
    buttons = st.columns(len(PUBLISHED) + 1, vertical_alignment="center")
    buttons[0].caption("Set to:")
    for column, (name, published) in zip(buttons[1:], PUBLISHED.items()):
        column.button(published.name, key=f"protocol_preset_{name}", on_click=apply_preset, args=(name,),
                      width="stretch")
    columns = st.columns([1.6, 1, 1, 1.2, 1])
    chosen = {}
    for column, (option, (key, title, values, names)) in zip(columns, SWITCHES.items()):
        offered = ("oracle",) if option == "tau" and oracle_only else values
        chosen[option] = column.radio(title, offered, key=key, format_func=names.get,
                                      help=HELP if option == "box_rule" else None)
    chosen["iou_set"] = IOU_SET_KEYS[chosen["iou_set"]]
    return ProtocolOptions(**chosen)


def results_table(results: list[tuple[str, dict]]) -> pd.DataFrame:
    rows = []
    for label, result in results:
        row = {"model": label, "images": result["num_images"], "protocol": result["label"].name,
               "value (%)": result["value"]}
        for entry in result["per_iou"]:
            pct = f"{entry['iou'] * 100:g}"
            row[f"IoU {pct} (%)"] = entry["value"]
            row[f"τ @ IoU {pct}"] = entry["tau"]
            if "threshold_value" in entry:
                row[f"val @ IoU {pct} (%)"] = entry["threshold_value"]
        if "top1_loc" in result:
            row["Top-1 Loc (%)"] = result["top1_loc"]
        row["τ from"] = result["tau_source"]
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c.endswith("(%)")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce").round(1)
    return table


def protocol_panel(ctx: Context, models: list[ModelContext], n: int, map_stage: str) -> None:
    """The switchboard in an expander: switches, the combination's label, and per model the
    number, its τ and the curves (first ``n`` images, ``map_stage``'s map)."""
    with st.expander("Protocol: box rule · GT matching · normalisation · IoU set · τ", expanded=False):
        held_out = held_out_dataset(ctx)
        options = switches(oracle_only=held_out is None)
        label = protocol_label(options)
        st.markdown(f"**{label.name}** — {label.text.split(' — ', 1)[-1]}", help=PUBLISHED[label.preset].reproduces
                    if label.published else None)
        if held_out is None:
            st.caption("No held-out val split for these data: only the oracle τ can be chosen.")
        maps = [protocol_maps(ctx, m, n, map_stage, compute=False) for m in models]
        if any(m is None for m in maps):
            if not st.button(f"Collect the maps of {n} images", key="protocol_button"):
                st.caption("One model pass over the first N images of this split and of val, then any switch "
                           "only re-scores the cached maps.")
                return
            maps = [protocol_maps(ctx, m, n, map_stage, compute=True) for m in models]
        results = []
        with st.spinner("Scoring the maps…"):
            for model, collected in zip(models, maps):
                if collected is None:
                    continue
                try:
                    results.append((model.label, score_protocol(collected["report"], options, collected["held_out"])))
                except ValueError as error:
                    st.error(message(f"{model.label}: {error}"))
        if not results:
            return
        if label.oracle and not label.published:
            st.warning("τ is chosen on the split it is reported on: an upper bound, not a fair number.")
        st.dataframe(results_table(results), hide_index=True, width="stretch", key="protocol_table")
        st.plotly_chart(protocol_figure(results), width="stretch", key="protocol_curves")
