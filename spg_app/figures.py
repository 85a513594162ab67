"""The app's plotly figures, each a pure function of plain data (arrays, dicts, lists): no
Streamlit here, so they are built and tested without a running app."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from spg_core.report import curves_figure
from spg_core.guidance import STAGE_TITLES, STAGES
from spg_core.single_image import TRACKED_MASKS

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
CURVE_NAMES = {
    "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc",
    "top5_loc": "Top-5 Loc",
    "boxacc_v1_iou30": "MaxBoxAcc @ IoU 30",
    "boxacc_v1_iou50": "MaxBoxAcc @ IoU 50",
    "boxacc_v1_iou70": "MaxBoxAcc @ IoU 70",
    "boxacc_v2_iou30": "MaxBoxAccV2 @ IoU 30",
    "boxacc_v2_iou50": "MaxBoxAccV2 @ IoU 50",
    "boxacc_v2_iou70": "MaxBoxAccV2 @ IoU 70",
    "pxap_pr": "PxAP precision-recall",
}
PRESET_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open")

# The narrowest width (px) each chart is laid out for: its column on a page at a 1200-px browser
# window with the sidebar open (Streamlit's wide layout; at 1400 px the same columns are 940, 462,
# 368, 693 and 231 px). Charts are drawn at their column's width, wider than this on wider windows.
FULL_WIDTH = 740  # the page's main column
HALF_WIDTH = 362  # st.columns(2)
NARROW_WIDTH = 288  # the 2 of st.columns([3, 2])
THREE_QUARTER_WIDTH = 543  # the 3 of st.columns([3, 1])
QUARTER_WIDTH = 175  # the 1 of st.columns([3, 1])
TITLE_SIZE = 12  # px, subplot titles and the legend
FIGURE_TITLE_SIZE = 13  # px
CHAR_EM = 0.6  # a generous mean glyph width of plotly's sans-serif font, in em (Open Sans: ~0.55)
LINE_EM = 1.3  # line height of wrapped text, in em
PLOTLY_MARGIN = 80  # plotly.js's default for a margin the layout leaves unset


def text_lines(text: str | None) -> list[str]:
    """The lines of a plotly text (split at <br>, other tags dropped), as drawn."""
    return [re.sub(r"<[^>]+>", "", line) for line in re.split(r"<br\s*/?>", text or "")]


def text_width(text: str | None, size: float) -> float:
    """Estimated width (px) of plotly text at font ``size``: its longest line at :data:`CHAR_EM`."""
    return max(len(line) for line in text_lines(text)) * CHAR_EM * size


def wrap_text(text: str, pixels: float, size: float) -> str:
    """``text`` wrapped at spaces (lines joined by <br>) to lines of at most ``pixels`` at ``size``."""
    chars = max(6, int(pixels // (CHAR_EM * size)))
    return "<br>".join(textwrap.wrap(text, chars, break_long_words=False) or [text])


def margins(fig) -> dict[str, float]:
    margin = fig.layout.margin
    return {side: PLOTLY_MARGIN if getattr(margin, side) is None else getattr(margin, side) for side in "lrtb"}


def subplot_titles(fig) -> list:
    """The annotations ``make_subplots`` writes above each panel (paper coordinates, no arrow,
    anchored at their bottom on the panel's top edge)."""
    return [a for a in fig.layout.annotations
            if a.xref == "paper" and a.yref == "paper" and a.yanchor == "bottom" and a.showarrow is False]


def panel_width(fig, x: float, width: float) -> float:
    """Width (px) of the panel whose x domain holds ``x`` (paper), the figure ``width`` px wide."""
    edges = margins(fig)
    plot = width - edges["l"] - edges["r"]
    domains = [tuple(axis.domain or (0, 1)) for axis in fig.select_xaxes()] or [(0, 1)]
    low, high = min(domains, key=lambda d: abs((d[0] + d[1]) / 2 - x))
    return (high - low) * plot


def fit_titles(fig, width: float):
    """Fit the subplot titles and the figure's title to a figure ``width`` px wide: each subplot
    title wrapped to its panel's width at :data:`TITLE_SIZE` (centred over the panel, a longer
    line would run over its neighbour's title or out of the figure), the title to the figure's
    width, and the top margin made to hold them. Returns ``fig``."""
    edges = margins(fig)
    rows = 0
    for annotation in subplot_titles(fig):
        annotation.text = wrap_text(" ".join(text_lines(annotation.text)), panel_width(fig, annotation.x, width),
                                    TITLE_SIZE)
        annotation.font.size = TITLE_SIZE
        rows = max(rows, len(text_lines(annotation.text)))
    top = rows * TITLE_SIZE * LINE_EM + 6 if rows else 0
    if fig.layout.title.text:
        # plotly.js centres the title in the top margin (a multi-line title anchored at the top
        # would rise out of the figure): the margin holds its lines and a gap each side; no chart
        # here has both a title and subplot titles.
        x = 0.05 if fig.layout.title.x is None else fig.layout.title.x
        title = wrap_text(" ".join(text_lines(fig.layout.title.text)), width * (1 - x) - 8, FIGURE_TITLE_SIZE)
        lines = len(text_lines(title))
        fig.update_layout(title=dict(text=title, x=x, xanchor="left", xref="container",
                                     font=dict(size=FIGURE_TITLE_SIZE)))
        top += lines * FIGURE_TITLE_SIZE * LINE_EM + 16
    if top:
        fig.update_layout(margin=dict(t=max(edges["t"], round(top))))
    return fig


def legend_below(fig, width: float):
    """A horizontal legend under the plot (a narrow chart's plot would shrink to a sliver beside
    a vertical one), the bottom margin and the height grown by its estimated rows at ``width`` px."""
    names = []
    for trace in fig.data:
        if trace.showlegend is not False and trace.name and trace.name not in names:
            names.append(trace.name)
    edges = margins(fig)
    available = width - 10
    # plotly.js puts the entries in one row when they fit, else in columns as wide as the widest.
    items = [45 + text_width(name, TITLE_SIZE) for name in names] or [0]
    per_row = len(items) if sum(items) <= available else max(1, int(available // max(items)))
    rows = -(-len(items) // per_row)
    legend_height = rows * (TITLE_SIZE * LINE_EM + 8) + 4
    fig.update_layout(
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container",
                    font=dict(size=TITLE_SIZE)),
        margin=dict(b=edges["b"] + legend_height), height=(fig.layout.height or 450) + legend_height)
    return fig


def histogram_figure(maps: dict, thresholds: dict[str, tuple[float, float]]) -> go.Figure:
    """Score histogram (log counts) of each map a guided stage thresholds (``maps``: name -> array
    in [0, 1]), with that stage's δ_l and δ_h (``thresholds``) as vertical lines."""
    sources = [stage for stage in STAGES if stage.source in maps]
    fig = make_subplots(rows=1, cols=len(sources), subplot_titles=[s.source_title for s in sources])
    most = 1
    for column, stage in enumerate(sources, 1):
        values = np.asarray(maps[stage.source]).ravel()
        counts, edges = np.histogram(values, bins=50, range=(0, 1))
        most = max(most, int(counts.max(initial=0)))
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=0.02, marker_color="#888",
                             showlegend=False, hovertemplate="score %{x:.2f}: %{y} pixels<extra></extra>"),
                      row=1, col=column)
        low, high = thresholds[stage.mask]
        fig.add_vline(x=low, line_color="black", annotation_text="δ_l", row=1, col=column)
        fig.add_vline(x=high, line_color="#d62728", annotation_text="δ_h", row=1, col=column)
        fig.update_xaxes(title_text="score", row=1, col=column)
    fig.update_layout(height=280, margin=dict(t=40, b=45, l=65, r=20), template="plotly_white")
    # A label at each power of ten only (plotly's automatic log ticks also write "2" and "5" between
    # the decades, stray numbers on a count axis), over at least one decade so that a label is
    # always there; one range for all panels (the maps have as many pixels each).
    fig.update_yaxes(type="log", dtick=1, range=[-0.1, max(1.0, np.log10(most)) + 0.15])
    fig.update_yaxes(title_text="pixels (log scale)", row=1, col=1)
    return fit_titles(fig, FULL_WIDTH)


def growth_figure(history: list[dict]) -> go.Figure:
    """Foreground share of each seed mask of the plain view while the heads trained."""
    steps = [record["step"] for record in history]
    fig = go.Figure()
    for number, name in enumerate(TRACKED_MASKS):
        values = [100 * record["foreground"][name] if name in record["foreground"] else None for record in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=STAGE_TITLES[name],
                                     line=dict(color=PALETTE[number]),
                                     hovertemplate="step %{x}<br>%{y:.1f}% of the image<extra></extra>"))
    fig.update_layout(height=260, template="plotly_white", margin=dict(t=30, b=30, l=40, r=10),
                      xaxis_title="training step", yaxis_title="foreground seeds (%)", yaxis_range=[0, 100],
                      title=dict(text="Seed coverage while the guidance grew", font=dict(size=13)))
    return legend_below(fit_titles(fig, NARROW_WIDTH), NARROW_WIDTH)


def rename_curves(label: str, curves: dict, chosen: list[str]) -> dict:
    """The ``chosen`` curves of one model, named "<label> · <curve name>" for a shared legend."""
    return {(f"{label} · {CURVE_NAMES.get(name, name)}" if name != "pxap_pr" else f"{label} · pxap_pr"): curve
            for name, curve in curves.items() if name in chosen}


DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# A curve lying on one drawn before it: dotted (the colour below shows between the dots), markers.
OVERLAY_DASHES = ("dot", "dashdot", "longdashdot", "longdash")
OVERLAY_SYMBOLS = ("circle-open", "x-thin-open", "diamond-open", "square-open")
COINCIDE_POINTS = 0.5  # percentage points: two curves closer than this everywhere draw as one line


def coinciding(first, second, tolerance: float = COINCIDE_POINTS) -> bool:
    """Whether two scatter traces on one pair of axes draw the same line: the same x, and y within
    ``tolerance`` wherever both have a value."""
    if (first.xaxis or "x") != (second.xaxis or "x") or (first.yaxis or "y") != (second.yaxis or "y"):
        return False
    x1, x2 = (np.asarray(t.x if t.x is not None else (), dtype=float) for t in (first, second))
    y1, y2 = (np.asarray(t.y if t.y is not None else (), dtype=float) for t in (first, second))
    if x1.shape != x2.shape or y1.shape != y2.shape or not x1.size or not np.allclose(x1, x2, equal_nan=True):
        return False
    both = np.isfinite(y1) & np.isfinite(y2)
    return bool(both.any() and (np.isnan(y1) == np.isnan(y2)).all() and np.abs(y1 - y2)[both].max() <= tolerance)


def mark_coinciding(fig, tolerance: float = COINCIDE_POINTS) -> list[tuple[str, list[str]]]:
    """Never let a curve hide under another: a scatter trace that coincides (:func:`coinciding`)
    with traces drawn before it is drawn over them dotted in a line style none of them uses, with
    markers, and its hover and legend entry name them. Returns ``(name, [names it lies on])``."""
    found = []
    traces = [trace for trace in fig.data if trace.type == "scatter"]
    for index, trace in enumerate(traces):
        below = [earlier for earlier in traces[:index] if coinciding(earlier, trace, tolerance)]
        if not below:
            continue
        used = {earlier.line.dash or "solid" for earlier in below}
        trace.line.dash = next((d for d in OVERLAY_DASHES if d not in used), OVERLAY_DASHES[-1])
        trace.line.width = 3
        trace.mode = "lines+markers"
        trace.marker = dict(symbol=OVERLAY_SYMBOLS[(len(below) - 1) % len(OVERLAY_SYMBOLS)], size=8,
                            maxdisplayed=15, color=trace.line.color, line=dict(width=1.5, color=trace.line.color))
        names = [earlier.name for earlier in below]
        exact = all(coinciding(earlier, trace, 1e-9) for earlier in below)
        note = ("the same values as " if exact else f"within {tolerance:g} points of ") + " and ".join(names)
        trace.hovertemplate = f"{trace.name}<br>τ = %{{x:.3f}}: %{{y:.1f}}%<br>{note}<extra></extra>"
        model = trace.name.split(" · ")[0]
        trace.name = " ≡ ".join([trace.name, *(n.split(" · ", 1)[-1] if n.split(" · ")[0] == model else n
                                               for n in names)])
        found.append((trace.name, names))
    return found


def accuracy_figure(results: list[tuple[str, dict]], chosen: list[str], tau: float) -> go.Figure:
    """Accuracy against τ (``report.curves_figure``) of any number of evaluations ``(label, result)``
    on the same axes: colour by curve kind, line style by model; a curve that lies on another is
    drawn over it dotted with markers (:func:`mark_coinciding`), never hidden."""
    combined = {}
    for label, result in results:
        combined.update(rename_curves(label, result["curves"], chosen))
    fig = curves_figure(combined, tau)
    kinds = [CURVE_NAMES.get(name, name) for name in chosen]
    for trace in fig.data:
        model_index = next((i for i, (label, _) in enumerate(results) if trace.name.startswith(f"{label} · ")), 0)
        kind = next((k for k, name in enumerate(kinds) if f" · {name} (" in trace.name), 0)
        trace.line.color = PALETTE[kind % len(PALETTE)]
        trace.line.dash = DASHES[model_index % len(DASHES)]
    overlays = mark_coinciding(fig)
    fig.update_layout(height=480)
    for annotation in fig.layout.annotations:
        if annotation.text == "accuracy vs τ":
            annotation.text = ("accuracy vs τ (line style by model: " + ", ".join(
                f"{DASHES[i % len(DASHES)]}: {label}" for i, (label, _) in enumerate(results))
                + ("; dotted with markers: lies on the curve named after its ≡" if overlays else "") + ")")
    fig.update_layout(margin=dict(b=60))
    return legend_below(fit_titles(fig, FULL_WIDTH), FULL_WIDTH)


def iou_histogram(results: list[tuple[str, dict]]) -> go.Figure:
    """Per-image IoU (``result["rows"]``) of each evaluation ``(label, result)``, overlaid."""
    fig = go.Figure()
    for index, (label, result) in enumerate(results):
        fig.add_trace(go.Histogram(x=[row["iou"] for row in result["rows"]], name=label, opacity=0.6,
                                   xbins=dict(start=0, end=1.0001, size=0.05), marker_color=PALETTE[index % len(PALETTE)]))
    fig.add_vline(x=0.5, line_dash="dot", annotation_text="IoU 0.5")
    fig.update_layout(barmode="overlay", template="plotly_white", height=360, xaxis_title="IoU of the box at τ",
                      yaxis_title="images", xaxis_range=[0, 1], title="Per-image IoU at the chosen τ",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def sweep_figure(result: dict, kind: str, marks: dict[str, tuple[float, float]]) -> go.Figure:
    """Seed precision and coverage over the (δ_l, δ_h) grid on one colour scale (both in %),
    the presets and the explore page's current thresholds marked."""
    summary = result["summary"]
    lows, highs = list(result["lows"]), list(result["highs"])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(f"{kind} seed precision (%)", f"{kind} seed coverage (%)"))
    panels = ((f"{kind}_precision", 1, "precision"), (kind, 2, "coverage"))
    for name, column, word in panels:
        fig.add_trace(go.Heatmap(z=summary[name] * 100, x=highs, y=lows, coloraxis="coloraxis",
                                 hovertemplate=f"δ_l=%{{y:.2f}} δ_h=%{{x:.2f}}<br>{word} %{{z:.1f}}%<extra></extra>"),
                      row=1, col=column)
        for number, (label, (low, high)) in enumerate(marks.items()):
            current = label == "current"
            fig.add_trace(go.Scatter(
                x=[high], y=[low], mode="markers", name="your thresholds" if current else f"{label} preset",
                legendgroup=label, showlegend=column == 1,
                hovertemplate=f"{label}: δ_l={low:.2f} δ_h={high:.2f}<extra></extra>",
                marker=dict(symbol="star" if current else PRESET_SYMBOLS[number % len(PRESET_SYMBOLS)],
                            size=16 if current else 12, color="#ff7f0e" if current else "white",
                            line=dict(width=2, color="black" if current else "white"))), row=1, col=column)
        fig.update_xaxes(title_text="δ_h", row=1, col=column)
        fig.update_yaxes(title_text="δ_l", row=1, col=column)
    fig.update_layout(height=440, template="plotly_white", margin=dict(t=50, l=50, r=20, b=40),
                      coloraxis=dict(colorscale="Viridis", cmin=0, cmax=100, colorbar=dict(title="%", thickness=12)),
                      legend=dict(orientation="h", y=-0.18, bgcolor="#777", font=dict(color="white")))
    return fit_titles(fig, THREE_QUARTER_WIDTH)


def fallback_figure(result: dict) -> go.Figure:
    """How often the 30-pixel fallback fires: it depends on δ_h only (Eq. 1's upper threshold)."""
    rates = result["summary"]["fallback"]
    highs = list(result["highs"])
    # Every valid cell of a δ_h column has the same rate; take it from the first valid one.
    column_rate = [next((float(v) for v in rates[:, j] if np.isfinite(v)), float("nan")) * 100
                   for j in range(len(highs))]
    fig = go.Figure(go.Scatter(x=highs, y=column_rate, mode="lines+markers",
                               hovertemplate="δ_h=%{x:.2f}<br>fallback on %{y:.1f}% of images<extra></extra>"))
    fig.update_layout(height=440, template="plotly_white", title="fallback fired (% of images)",
                      margin=dict(t=50, l=40, r=10, b=40), xaxis_title="δ_h", yaxis_range=[0, 100])
    return fit_titles(fig, QUARTER_WIDTH)


LOSS_NAMES = {"loss_total": "total", "loss_ce": "CE (classification)", "loss_bce_b2": "BCE B2 ← Mask-A",
              "loss_bce_b1": "BCE B1 ← Mask-B2", "loss_bce_c": "BCE SPG-C ← Mask-fuse"}


def loss_figure(history: list[dict]) -> go.Figure:
    """Every loss term of history.jsonl per epoch (a guided term starts where the guidance did)."""
    epochs = [record["epoch"] for record in history]
    fig = go.Figure()
    for number, (key, title) in enumerate(LOSS_NAMES.items()):
        values = [record.get(key) for record in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=title,
                                     line=dict(color=PALETTE[number])))
    fig.update_layout(height=280, template="plotly_white", margin=dict(t=30, b=30, l=40, r=10),
                      xaxis_title="epoch", yaxis_title="loss (mean over the epoch)",
                      title=dict(text="Loss terms", font=dict(size=13)))
    return legend_below(fit_titles(fig, HALF_WIDTH), HALF_WIDTH)


def seed_quality_figure(epochs, stats, stage_names, stat_names, current: float | None = None) -> go.Figure:
    """Each seed mask's foreground precision and object coverage over training: ``stats`` is
    records × stages × stats (``spg_core.replay.STAT_NAMES``), already averaged over the images;
    ``current`` marks the record shown."""
    panels = ("foreground_precision", "object_coverage")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("foreground seeds on the object (precision %)",
                                                        "object covered by foreground seeds (%)"))
    epochs = list(np.asarray(epochs, dtype=float))
    for column, stat in enumerate(panels, 1):
        s = list(stat_names).index(stat)
        for number, stage in enumerate(stage_names):
            values = 100 * np.asarray(stats)[:, number, s]
            if np.isnan(values).all():
                continue
            fig.add_trace(go.Scatter(x=epochs, y=[None if np.isnan(v) else float(v) for v in values],
                                     mode="lines+markers", name=STAGE_TITLES[stage], legendgroup=stage,
                                     showlegend=column == 1, line=dict(color=PALETTE[number])), row=1, col=column)
        if current is not None:
            fig.add_vline(x=float(current), line_dash="dot", line_color="black", row=1, col=column)
    fig.update_yaxes(range=[0, 100])
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=300, template="plotly_white", margin=dict(t=40, b=30, l=40, r=10))
    return legend_below(fit_titles(fig, HALF_WIDTH), HALF_WIDTH)


def map_curves_figure(epochs, boxed: dict, means: dict, current: float | None = None) -> go.Figure:
    """Each stored map over training (``spg_core.replay.Replay.box_accuracy`` and
    ``object_background_means``): the replay images it boxes, and its mean score on the object
    minus on the background (below zero: the map has turned inside out)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("images boxed (IoU ≥ 0.5, best τ per moment, %)",
                                                        "mean score on object − on background"))
    epochs = list(np.asarray(epochs, dtype=float))
    for number, name in enumerate(boxed):
        values = np.asarray(boxed[name], dtype=float)
        if np.isnan(values).all():
            continue
        gap = means[name][:, 0] - means[name][:, 1]
        for column, series in ((1, 100 * values), (2, gap)):
            fig.add_trace(go.Scatter(x=epochs, y=[float(v) for v in series], mode="lines+markers",
                                     name=STAGE_TITLES[name], legendgroup=name, showlegend=column == 1,
                                     line=dict(color=PALETTE[number])), row=1, col=column)
    if current is not None:
        for column in (1, 2):
            fig.add_vline(x=float(current), line_dash="dot", line_color="black", row=1, col=column)
    fig.add_hline(y=0, line_color="grey", row=1, col=2)
    fig.update_yaxes(range=[0, 100], row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=300, template="plotly_white", margin=dict(t=40, b=30, l=40, r=10))
    return legend_below(fit_titles(fig, FULL_WIDTH), FULL_WIDTH)


def grown_summary_figure(rows: list[dict]) -> go.Figure:
    """Mean foreground precision and object coverage of each seed mask, the trained run's heads
    against heads grown at other thresholds: ``rows`` as ``batch_guidance.BatchGuidance.summary``
    ({"mask", "heads": "trained" | "grown", statistic: value})."""
    panels = (("foreground_precision", "fg seeds on the object (%)"), ("object_coverage", "object covered (%)"))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in panels])
    masks = [stage.mask for stage in STAGES if any(row["mask"] == stage.mask for row in rows)]
    for column, (stat, _) in enumerate(panels, 1):
        for number, (heads, name) in enumerate((("trained", "trained run"), ("grown", "grown here"))):
            by_mask = {row["mask"]: row[stat] for row in rows if row["heads"] == heads}
            values = [by_mask.get(mask, float("nan")) for mask in masks]
            fig.add_trace(go.Bar(x=[STAGE_TITLES[mask].split(" (")[0] for mask in masks],
                                 y=[None if not np.isfinite(v) else 100 * v for v in values], name=name,
                                 legendgroup=heads, showlegend=column == 1, marker_color=PALETTE[number]),
                          row=1, col=column)
    fig.update_yaxes(range=[0, 100])
    fig.update_layout(height=280, barmode="group", template="plotly_white", margin=dict(t=40, b=30, l=40, r=10))
    return legend_below(fit_titles(fig, NARROW_WIDTH), NARROW_WIDTH)


def protocol_figure(results: list[tuple[str, dict]]) -> go.Figure:
    """Accuracy against τ under one switchboard protocol (``spg_core.protocol_options.score_protocol``
    results ``(label, result)``): one colour per IoU threshold, line style per model, the held-out
    split's curve thin and dotted, and a marker where each IoU's τ was chosen."""
    fig = go.Figure()
    for model_index, (label, result) in enumerate(results):
        dash = ("solid", "dash", "dot")[model_index % 3]
        for number, entry in enumerate(result["per_iou"]):
            name = f"iou{round(entry['iou'] * 100):d}"
            color = PALETTE[number % len(PALETTE)]
            curve = result["curves"][name]
            fig.add_trace(go.Scatter(x=list(curve.taus), y=list(curve.values), mode="lines",
                                     line=dict(color=color, dash=dash),
                                     name=f"{label} · IoU {entry['iou']:g} ({curve.split})"))
            held_out = result["threshold_curves"].get(name)
            if held_out is not None:
                fig.add_trace(go.Scatter(x=list(held_out.taus), y=list(held_out.values), mode="lines", opacity=0.5,
                                         line=dict(color=color, dash="dot", width=1),
                                         name=f"{label} · IoU {entry['iou']:g} ({held_out.split}, chooses τ)"))
            fig.add_trace(go.Scatter(x=[entry["tau"]], y=[entry["value"]], mode="markers", showlegend=False,
                                     marker=dict(color=color, size=10, symbol="diamond"),
                                     hovertemplate=f"{label}, IoU {entry['iou']:g}: τ = %{{x:.2f}}, "
                                                   "%{y:.1f}%<extra></extra>"))
    title = results[0][1]["label"].name if results else ""
    fig.update_layout(template="plotly_white", height=420, title=f"accuracy vs τ — {title}",
                      xaxis_title="τ", yaxis_title="images with IoU ≥ threshold (%)", xaxis_range=[0, 1],
                      yaxis_range=[0, 100], legend=dict(orientation="h", y=-0.25))
    return fig
