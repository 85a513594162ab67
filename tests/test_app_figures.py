"""The app's plotly figures (spg_app.figures) built from small plain inputs, without Streamlit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("plotly")
from spg_app import figures  # noqa: E402
from spg_core.guidance import STAGE_TITLES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def curve(values, split="test"):
    return {"taus": [0.0, 0.5, 1.0], "values": list(values), "split": split}


def evaluation(curves: dict, ious) -> dict:
    return {"curves": curves, "rows": [{"iou": iou} for iou in ious]}


def title(text: str) -> str:
    """A title as one line (a chart may wrap it at <br> to fit its width)."""
    return " ".join(text.split("<br>"))


@pytest.mark.slow  # a fresh interpreter importing plotly
def test_figures_need_no_streamlit():
    code = "import sys, spg_app.figures; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_histogram_figure_one_panel_per_stage_map_with_its_thresholds():
    maps = {"attention": np.linspace(0, 1, 100).reshape(10, 10), "b2": np.full((10, 10), 0.25)}
    thresholds = {"mask_a": (0.1, 0.7), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.5)}
    fig = figures.histogram_figure(maps, thresholds)
    assert len(fig.data) == 2  # no fused map given: no Mask-fuse panel
    assert [a.text for a in fig.layout.annotations if a.text in ("attention map", "B2", "fused guidance")] == [
        "attention map", "B2"]
    attention, b2 = fig.data
    assert len(attention.x) == 50 and int(np.sum(attention.y)) == 100
    assert int(np.sum(b2.y)) == 100 and int(np.argmax(b2.y)) == 12  # every value in the 0.24-0.26 bin
    lines = sorted((shape.x0, shape.line.color) for shape in fig.layout.shapes)
    assert lines == [(0.05, "black"), (0.1, "black"), (0.5, "#d62728"), (0.7, "#d62728")]
    assert fig.layout.yaxis.type == "log"


def test_growth_figure_one_trace_per_tracked_mask_present():
    history = [{"step": 0, "foreground": {"mask_a": 0.1, "mask_b2": 0.2}},
               {"step": 5, "foreground": {"mask_a": 0.15, "mask_b2": 0.3, "mask_fuse": 0.4}}]
    fig = figures.growth_figure(history)
    assert [trace.name for trace in fig.data] == [STAGE_TITLES[n] for n in ("mask_a", "mask_b2", "mask_fuse")]
    assert list(fig.data[0].x) == [0, 5]
    assert list(fig.data[1].y) == pytest.approx([20.0, 30.0])
    assert list(fig.data[2].y)[0] is None and fig.data[2].y[1] == pytest.approx(40.0)
    assert title(fig.layout.title.text) == "Seed coverage while the guidance grew"
    assert figures.growth_figure([{"step": 0, "foreground": {}}]).data == ()


def test_accuracy_figure_colours_by_curve_and_dashes_by_model():
    first = evaluation({"gt_known_loc": curve([90, 60, 0]), "top1_loc": curve([80, 50, 0]),
                        "top5_loc": curve([85, 55, 0])}, [0.2])
    second = evaluation({"gt_known_loc": curve([70, 40, 0]), "top1_loc": curve([60, 30, 0])}, [0.4])
    fig = figures.accuracy_figure([("A", first), ("B", second)], ["gt_known_loc", "top1_loc"], 0.3)
    names = [trace.name for trace in fig.data]
    assert names == ["A · GT-known Loc (test)", "A · Top-1 Loc (test)", "B · GT-known Loc (test)",
                     "B · Top-1 Loc (test)"]  # top5_loc not chosen
    assert [trace.line.dash for trace in fig.data] == ["solid", "solid", "dash", "dash"]
    assert fig.data[0].line.color == fig.data[2].line.color == figures.PALETTE[0]
    assert fig.data[1].line.color == figures.PALETTE[1]
    assert list(fig.data[2].y) == [70, 40, 0]
    assert "accuracy vs τ (line style by model: solid: A, dash: B)" in [a.text for a in fig.layout.annotations]
    assert any(shape.x0 == 0.3 for shape in fig.layout.shapes)  # the chosen τ


def test_rename_curves_keeps_only_the_chosen():
    renamed = figures.rename_curves("run", {"top1_loc": 1, "pxap_pr": 2, "top5_loc": 3}, ["top1_loc", "pxap_pr"])
    assert renamed == {"run · Top-1 Loc": 1, "run · pxap_pr": 2}


def test_iou_histogram_one_trace_per_model():
    fig = figures.iou_histogram([("A", evaluation({}, [0.1, 0.6, 0.9])), ("B", evaluation({}, [0.5]))])
    assert [trace.name for trace in fig.data] == ["A", "B"]
    assert list(fig.data[0].x) == [0.1, 0.6, 0.9] and list(fig.data[1].x) == [0.5]
    assert fig.data[0].xbins.size == 0.05 and fig.layout.barmode == "overlay"
    assert fig.layout.title.text == "Per-image IoU at the chosen τ"


def sweep_result():
    lows, highs = (0.0, 0.1), (0.5, 0.6, 0.7)
    grid = np.arange(6, dtype=float).reshape(2, 3) / 10
    summary = {"foreground": grid, "foreground_precision": 1 - grid, "background": grid / 2,
               "background_precision": grid, "fallback": np.array([[np.nan, 0.2, 0.5], [0.0, 0.2, 0.5]])}
    return {"summary": summary, "lows": lows, "highs": highs}


def test_sweep_figure_two_heatmaps_and_the_marks():
    marks = {"paper": (0.1, 0.7), "current": (0.0, 0.5)}
    fig = figures.sweep_figure(sweep_result(), "foreground", marks)
    heatmaps = [trace for trace in fig.data if trace.type == "heatmap"]
    assert len(heatmaps) == 2 and len(fig.data) == 2 + 2 * len(marks)
    precision, coverage = heatmaps
    assert np.allclose(precision.z, (1 - sweep_result()["summary"]["foreground"]) * 100)
    assert np.allclose(coverage.z, sweep_result()["summary"]["foreground"] * 100)
    assert list(coverage.x) == [0.5, 0.6, 0.7] and list(coverage.y) == [0.0, 0.1]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:2] == ["foreground seed precision (%)", "foreground seed coverage (%)"]
    stars = [trace for trace in fig.data if trace.type == "scatter" and trace.name == "your thresholds"]
    assert len(stars) == 2 and stars[0].marker.symbol == "star" and (stars[0].x[0], stars[0].y[0]) == (0.5, 0.0)
    assert sum(trace.showlegend for trace in fig.data if trace.type == "scatter") == len(marks)  # one legend each


def test_fallback_figure_takes_each_columns_first_valid_rate():
    fig = figures.fallback_figure(sweep_result())
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == [0.5, 0.6, 0.7]
    assert list(fig.data[0].y) == pytest.approx([0.0, 20.0, 50.0])
    assert title(fig.layout.title.text) == "fallback fired (% of images)"


def test_loss_figure_one_trace_per_loss_term_present():
    history = [{"epoch": 1, "loss_total": 2.0, "loss_ce": 2.0},
               {"epoch": 2, "loss_total": 1.5, "loss_ce": 1.0, "loss_bce_b2": 0.3, "loss_bce_b1": 0.2}]
    fig = figures.loss_figure(history)
    assert [trace.name for trace in fig.data] == ["total", "CE (classification)", "BCE B2 ← Mask-A", "BCE B1 ← Mask-B2"]
    assert list(fig.data[2].y) == [None, 0.3] and list(fig.data[0].x) == [1, 2]


def test_seed_quality_figure_plots_precision_and_coverage_of_each_stage():
    stats = np.full((3, 3, 4), np.nan)
    stats[:, 0, 0] = [0.5, 0.6, 0.7]  # Mask-A precision
    stats[:, 0, 1] = [0.1, 0.2, 0.4]  # Mask-A coverage
    fig = figures.seed_quality_figure([0, 1, 2], stats, ("mask_a", "mask_b2", "mask_fuse"),
                                      ("foreground_precision", "object_coverage", "background_precision", "foreground"),
                                      current=1)
    assert len(fig.data) == 2  # the other stages are all NaN: no trace
    assert list(fig.data[0].y) == pytest.approx([50, 60, 70]) and list(fig.data[1].y) == pytest.approx([10, 20, 40])
    assert fig.data[0].name == STAGE_TITLES["mask_a"] and fig.layout.shapes[0].x0 == 1


def test_grown_summary_figure_bars_trained_and_grown_of_each_mask():
    rows = [{"mask": mask, "heads": heads, "foreground_precision": p, "object_coverage": c, "foreground": 0.1}
            for mask, heads, p, c in (("mask_a", "trained", 0.5, 0.2), ("mask_a", "grown", 0.5, 0.2),
                                      ("mask_b2", "trained", float("nan"), float("nan")),
                                      ("mask_b2", "grown", 0.75, 0.4))]
    fig = figures.grown_summary_figure(rows)
    assert [trace.name for trace in fig.data] == ["trained run", "grown here"] * 2
    assert list(fig.data[0].x) == ["Mask-A", "Mask-B2"]
    assert list(fig.data[0].y) == [50.0, None] and list(fig.data[3].y) == [20.0, 40.0]
    assert [trace.showlegend for trace in fig.data] == [True, True, False, False]


# ----------------------------------------------------------------------------- layout at the app's widths
# Each chart's column at a 1200-px browser window with the sidebar open, measured in Chromium (at
# 1400 px: 940, 462, 368, 693, 231): the narrowest width the app lays the charts out for.
FULL, HALF, NARROW, THREE_QUARTERS, QUARTER = 740, 362, 288, 543, 175
GLYPH_EM = 0.6  # a generous mean glyph width of plotly's sans-serif font (Open Sans ~0.55 em)
LINE_EM = 1.2


def lines(text):
    return (text or "").split("<br>")


def box(annotation, fig, width):
    """(left, right, height) in px of a paper-anchored, centred annotation in a figure ``width`` wide."""
    margin = fig.layout.margin
    left_margin = 80 if margin.l is None else margin.l
    right_margin = 80 if margin.r is None else margin.r
    size = annotation.font.size or 16  # make_subplots's default
    centre = left_margin + annotation.x * (width - left_margin - right_margin)
    half = max(len(line) for line in lines(annotation.text)) * GLYPH_EM * size / 2
    return centre - half, centre + half, len(lines(annotation.text)) * size * LINE_EM


def subplot_titles(fig):
    return [a for a in fig.layout.annotations if a.xref == "paper" and a.yref == "paper" and a.yanchor == "bottom"]


def seed_stats():
    stats = np.full((3, 3, 4), np.nan)
    stats[:, :, 0] = 0.6
    stats[:, :, 1] = 0.3
    return stats


def charts_with_subplot_titles():
    rows = [{"mask": mask, "heads": heads, "foreground_precision": 0.5, "object_coverage": 0.2, "foreground": 0.1}
            for mask in ("mask_a", "mask_b2", "mask_fuse") for heads in ("trained", "grown")]
    maps = {name: np.linspace(0, 1, 100).reshape(10, 10) for name in ("attention", "b2", "fused")}
    thresholds = {"mask_a": (0.1, 0.7), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.5)}
    boxed = {name: np.linspace(0.1, 0.8, 3) for name in ("attention", "fused")}
    means = {name: np.full((3, 2), 0.5) for name in boxed}
    pr = {"recall": [0.0, 0.5, 1.0], "values": [100, 60, 30], "split": "test"}
    with_pr = evaluation({"gt_known_loc": curve([90, 60, 0]), "pxap_pr": pr}, [0.2])
    return {
        "grown summary (explore, 2 of [3, 2])": (figures.grown_summary_figure(rows), NARROW),
        "seed quality (training, half)": (figures.seed_quality_figure(
            [0, 1, 2], seed_stats(), ("mask_a", "mask_b2", "mask_fuse"),
            ("foreground_precision", "object_coverage", "background_precision", "foreground"), current=1), HALF),
        "map curves (training)": (figures.map_curves_figure([0, 1, 2], boxed, means, current=1), FULL),
        "histograms (explore)": (figures.histogram_figure(maps, thresholds), FULL),
        "sweep (dataset, 3 of [3, 1])": (figures.sweep_figure(sweep_result(), "foreground", {"current": (0.0, 0.5)}),
                                         THREE_QUARTERS),
        "accuracy with PxAP (dataset)": (figures.accuracy_figure(
            [("a long run label (SPG)", with_pr), ("another long label (SPG-plain)", with_pr)],
            ["gt_known_loc", "pxap_pr"], 0.3), FULL),
    }


@pytest.mark.parametrize("name", list(charts_with_subplot_titles()))
def test_subplot_titles_fit_side_by_side_at_the_apps_width(name):
    """Each panel's title stays over its own panel: no two overlap ("fg seeds on the objebject
    covered (%)"), none runs out of the figure (the Training chart's first title was cut off),
    and the top margin holds their lines."""
    fig, width = charts_with_subplot_titles()[name]
    # A vertical legend beside a narrow chart takes the panels' width (and these sums assume it does not).
    assert fig.layout.legend.orientation == "h" or not any(t.showlegend is not False and t.name for t in fig.data)
    titles = sorted(subplot_titles(fig), key=lambda a: a.x)
    assert len(titles) >= 2
    boxes = [box(a, fig, width) for a in titles]
    assert boxes[0][0] >= 0 and boxes[-1][1] <= width, [(a.text, b) for a, b in zip(titles, boxes)]
    for (_, right, _), (left, _, _) in zip(boxes, boxes[1:]):
        assert right + 4 <= left, [(a.text, b) for a, b in zip(titles, boxes)]
    assert max(height for _, _, height in boxes) <= fig.layout.margin.t


@pytest.mark.parametrize("name", ["growth", "loss", "fallback"])
def test_chart_titles_fit_the_chart(name):
    history = [{"epoch": 1, "step": 0, "loss_total": 2.0, "loss_ce": 2.0, "foreground": {"mask_a": 0.1}}]
    fig, width = {"growth": (figures.growth_figure(history), NARROW), "loss": (figures.loss_figure(history), HALF),
                  "fallback": (figures.fallback_figure(sweep_result()), QUARTER)}[name]
    text = fig.layout.title.text
    size = fig.layout.title.font.size or 17
    x = 0.05 if fig.layout.title.x is None else fig.layout.title.x  # plotly_white's, left-anchored
    assert x * width + max(len(line) for line in lines(text)) * GLYPH_EM * size <= width, text
    assert len(lines(text)) * size * LINE_EM < fig.layout.margin.t


def test_narrow_charts_put_their_legend_below():
    stats = seed_stats()
    rows = [{"mask": "mask_a", "heads": heads, "foreground_precision": 0.5, "object_coverage": 0.2}
            for heads in ("trained", "grown")]
    for fig in (figures.growth_figure([{"step": 0, "foreground": {"mask_a": 0.1, "mask_b2": 0.2}}]),
                figures.grown_summary_figure(rows), figures.loss_figure([{"epoch": 1, "loss_total": 1.0}]),
                figures.seed_quality_figure([0, 1, 2], stats, ("mask_a", "mask_b2", "mask_fuse"),
                                            ("foreground_precision", "object_coverage", "b", "f"))):
        assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"
        assert fig.layout.margin.b > 30  # room for the legend under the axis title


def test_histogram_log_axes_label_each_decade_only_and_have_titles():
    maps = {"attention": np.linspace(0, 1, 100).reshape(10, 10), "b2": np.full((10, 10), 0.25)}
    thresholds = {"mask_a": (0.1, 0.7), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.5)}
    fig = figures.histogram_figure(maps, thresholds)
    yaxes, xaxes = list(fig.select_yaxes()), list(fig.select_xaxes())
    assert len(yaxes) == len(xaxes) == 2
    for axis in yaxes:
        # dtick 1 on a log axis: a label at 1, 10, 100 … only; plotly's automatic ticks ("D2") put
        # "2" and "5" between the decades. At least one decade shown, so a label is always there.
        assert axis.type == "log" and axis.dtick == 1
        assert axis.range[1] - axis.range[0] >= 1 and axis.range[0] <= 0  # from one pixel
        assert axis.minor.ticks in (None, "") or axis.minor.showgrid is not True
    assert "pixels" in yaxes[0].title.text and "log" in yaxes[0].title.text
    assert all(axis.title.text == "score" for axis in xaxes)


def accuracy_results():
    same = curve([90, 55, 0])
    close = curve([90.3, 55.2, 0])
    return evaluation({"gt_known_loc": same, "boxacc_v2_iou50": curve([90, 55, 0]), "top1_loc": curve([80, 40, 0]),
                       "boxacc_v2_iou30": close}, [0.2])


def test_accuracy_figure_draws_a_coinciding_curve_visibly_over_the_other():
    """GT-known Loc and MaxBoxAccV2 @ IoU 50 are the same curve under wsolevaluation: drawn in one
    line style, the one drawn last hid the other (it showed in the legend only)."""
    chosen = ["gt_known_loc", "top1_loc", "boxacc_v2_iou30", "boxacc_v2_iou50"]
    fig = figures.accuracy_figure([("A", accuracy_results())], chosen, 0.3)
    by_kind = {next(k for k in ("GT-known", "Top-1", "IoU 30", "IoU 50") if k in t.name.split(" ≡ ")[0]): t
               for t in fig.data}
    gt, top1, v2_30, v2_50 = (by_kind[k] for k in ("GT-known", "Top-1", "IoU 30", "IoU 50"))
    assert gt.line.dash == top1.line.dash == "solid" and not (gt.mode or "lines").count("markers")
    # V2 @ 50 lies exactly on GT-known, V2 @ 30 within 0.3 points of both: each a line style the
    # curves below it do not use, with markers, and its hover and legend name what it lies on.
    assert v2_30.line.dash != gt.line.dash and "markers" in v2_30.mode
    assert v2_50.line.dash not in (gt.line.dash, v2_30.line.dash) and "markers" in v2_50.mode
    assert "A · GT-known Loc (test)" in v2_30.hovertemplate and "within" in v2_30.hovertemplate
    assert "the same values as A · GT-known Loc (test)" in v2_50.hovertemplate
    assert v2_50.name.startswith("A · MaxBoxAccV2 @ IoU 50 (test) ≡ ") and "GT-known Loc" in v2_50.name
    assert v2_50.line.color != gt.line.color  # still coloured by kind
    assert "dotted with markers" in " ".join(title(a.text) for a in fig.layout.annotations)


def test_accuracy_figure_leaves_distinct_curves_alone():
    first = evaluation({"gt_known_loc": curve([90, 60, 0]), "top1_loc": curve([80, 50, 0])}, [0.2])
    fig = figures.accuracy_figure([("A", first)], ["gt_known_loc", "top1_loc"], 0.3)
    assert [t.line.dash for t in fig.data] == ["solid", "solid"]
    assert all("≡" not in t.name for t in fig.data)
    assert figures.mark_coinciding(fig) == []


def test_dataset_metrics_table_views_fit_the_page():
    """The metrics table (fifteen columns, one row per model) was cut off on the right of the
    Dataset page (940 px at a 1400-px window): it shows in views of the same DataFrame that each
    fit, the model column first in each, every column in one of them."""
    pytest.importorskip("streamlit")
    from spg_app.pages.dataset import metrics_table, table_views

    metrics = {"num_images": 1000, "protocol": "wsolevaluation", "tau": 0.08, "gt_known_loc": 61.23,
               "top1_loc": 60.0, "top5_loc": 61.0, "maxboxacc": 70.0, "maxboxacc_v2": 66.6,
               "maxboxacc_v2_per_iou": {"30": 90.0, "50": 70.0, "70": 40.0}, "pxap": 55.5,
               "classification_top1": 99.5, "classification_top5": 100.0}
    table = metrics_table([("synthetic-plain (SPG-plain)", {"metrics": metrics}),
                           ("synthetic-spg (SPG)", {"metrics": metrics})])
    views = table_views(table)
    assert all(view[0] == "model" for view in views)
    shown = [column for view in views for column in view[1:]]
    assert sorted(shown + ["model"]) == sorted(table.columns) and len(set(shown)) == len(shown)

    def width(column):  # Streamlit's grid: 14-px text (~7.2 px a glyph, generous), 17 px of padding
        longest = max(len(str(column)), *(len(f"{v}") for v in table[column]))
        return max(50, longest * 7.2 + 17)

    assert sum(width(c) for c in table.columns) > 938  # all in one grid: cut off
    for view in views:
        assert sum(width(c) for c in view) <= 938, view
