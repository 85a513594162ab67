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
    assert fig.layout.title.text == "Seed coverage while the guidance grew"
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
    assert fig.layout.title.text == "fallback fired (% of images)"


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
