"""The trivial baselines on the Dataset page: the whole image, a centred box and a centred
Gaussian map (:mod:`spg_core.baselines`), scored on the same first N images and protocol as the
models, from the annotations alone (no model, no image decoded; cached per dataset, N, protocol).
Table rows and horizontal lines on the accuracy chart, so a model is seen beside doing nothing."""
from __future__ import annotations

import streamlit as st

from spg_app.computations import CAM_CURVE_INTERVAL
from spg_app.loaders import result_cache
from spg_app.text import message
from spg_core.baselines import annotation_baselines

LABELS = {"full_box": "baseline · whole image", "center_box": "baseline · centred box",
          "center_gaussian": "baseline · centred Gaussian"}
LINE_COLOURS = {"full_box": "#7f7f7f", "center_box": "#4d4d4d", "center_gaussian": "#a6a6a6"}
LINE_PLACES = {"full_box": "bottom left", "center_box": "top left", "center_gaussian": "top right"}


def page_baselines(ctx, n: int, protocol: str, paper_size: int | None) -> dict | None:
    """The baselines of the sidebar's first ``n`` images (cached), or None with a caption saying why.

    Args:
        ctx: the page context (its dataset and data key).
        n: how many first images, as the models' evaluations.
        protocol: "paper" or "wsolevaluation".
        paper_size: the paper protocol's square grid (a run's input size), None for the image's pixels.

    Returns:
        :func:`spg_core.baselines.annotation_baselines`' result, or None.
    """
    key = ("baselines", ctx.data_key, int(n), protocol, paper_size)
    cache = result_cache()
    result = cache.get(key)
    if result is not None:
        return result
    try:
        result = annotation_baselines(ctx.dataset, n, protocol, CAM_CURVE_INTERVAL, paper_size=paper_size)
    except (ValueError, KeyError, IndexError, OSError) as error:  # e.g. an image without a GT box
        st.caption(message(f"Baselines not computed: {error}"))
        return None
    cache.put(key, result)
    return result


def center_label(baselines: dict) -> str:
    """The centred box's label with its fraction: "baseline · centred box (80 %)"."""
    return f"{LABELS['center_box']} ({baselines['center_box']['fraction'] * 100:.0f} %)"


def baseline_entries(baselines: dict | None, protocol: str) -> list[tuple[str, dict]]:
    """The baselines as ``(label, {"metrics": ...})`` rows for the page's metrics table.

    Args:
        baselines: :func:`page_baselines`' result, or None (no rows).
        protocol: the page's protocol; MaxBoxAccV2 is shown with wsolevaluation only, as for models.

    Returns:
        One entry per baseline, its metrics named as a model's.
    """
    if not baselines:
        return []
    entries = []
    for name in ("full_box", "center_box", "center_gaussian"):
        scores = baselines[name]
        metrics = {"num_images": baselines["num_images"], "protocol": protocol, "tau": scores.get("tau"),
                   "gt_known_loc": scores["gt_known_loc"], "pxap": scores.get("pxap")}
        if protocol == "wsolevaluation":
            metrics["maxboxacc_v2"] = scores["maxboxacc_v2"]
            metrics["maxboxacc_v2_per_iou"] = scores["maxboxacc_v2_per_iou"]
        entries.append((center_label(baselines) if name == "center_box" else LABELS[name], {"metrics": metrics}))
    return entries


def add_baseline_lines(fig, baselines: dict | None, chosen: list[str]):
    """Horizontal dotted lines at each baseline's GT-known Loc on the accuracy panel, when the
    GT-known Loc curve is shown. Returns ``fig``."""
    if not baselines or "gt_known_loc" not in chosen:
        return fig
    for name in ("full_box", "center_box", "center_gaussian"):
        label = center_label(baselines) if name == "center_box" else LABELS[name]
        value = baselines[name]["gt_known_loc"]
        fig.add_hline(y=value, line_dash="dot", line_width=1.5, line_color=LINE_COLOURS[name], row=1, col=1,
                      exclude_empty_subplots=False,
                      annotation_text=f"{label.split(' · ', 1)[1]}: GT-known {value:.1f}",
                      annotation_position=LINE_PLACES[name], annotation_font_color=LINE_COLOURS[name])
    return fig
