"""An evaluation's outputs: metrics.json, per_image.csv and curves.html, and the figure of every
accuracy against τ that curves.html, the app and the course draw."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from spg_core.exports import ROW_COLUMNS, write_rows_csv

__all__ = ["curves_figure", "json_ready", "ROW_COLUMNS", "write_outputs"]


def curves_figure(curves: dict, tau: float | None = None):
    """Plotly figure: accuracy (%) against τ for every curve (held-out split dashed), the chosen
    τ as a vertical line; the PxAP precision-recall curve, if any, in a second panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    has_pr = any(name.endswith("pxap_pr") for name in curves)
    fig = make_subplots(rows=1, cols=2 if has_pr else 1,
                        subplot_titles=("accuracy vs τ", "PxAP precision-recall") if has_pr else ("accuracy vs τ",))
    for name, curve in curves.items():
        values = curve.to_dict() if hasattr(curve, "to_dict") else dict(curve)
        held_out = name.startswith("threshold/")
        label = f"{name} ({values.get('split')})"
        # Arrays, not lists: plotly checks an array at once, a list value by value (1000 τ × 9 curves).
        x = np.asarray(values["recall"] if name.endswith("pxap_pr") else values["taus"], dtype=np.float64)
        y = np.asarray(values["values"], dtype=np.float64)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, line={"dash": "dash" if held_out else "solid"}),
                      row=1, col=2 if name.endswith("pxap_pr") else 1)
    if tau is not None:
        fig.add_vline(x=float(tau), line_dash="dot", line_color="black", annotation_text=f"τ = {tau:.3f}",
                      row=1, col=1)
    fig.update_xaxes(title_text="τ (threshold on the min-max map)", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], row=1, col=1)
    if has_pr:
        fig.update_xaxes(title_text="recall", range=[0, 1], row=1, col=2)
        fig.update_yaxes(title_text="precision (%)", range=[0, 100], row=1, col=2)
    fig.update_layout(template="plotly_white", legend={"orientation": "h", "y": -0.2}, height=520)
    return fig


def json_ready(value):
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    return value


def write_outputs(out_dir, metrics: dict, rows: list[dict], curves: dict) -> dict[str, Path]:
    """Write metrics.json, per_image.csv (:func:`spg_core.exports.write_rows_csv`) and curves.html
    (plotly.js embedded: works offline)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "rows": out / "per_image.csv", "curves": out / "curves.html"}
    paths["metrics"].write_text(json.dumps(json_ready(metrics), indent=2) + "\n", encoding="utf-8")
    write_rows_csv(rows, paths["rows"])
    tau = metrics.get("tau", metrics.get("rows_tau"))
    curves_figure(curves, tau).write_html(paths["curves"], include_plotlyjs=True, full_html=True)
    return paths
