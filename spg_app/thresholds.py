"""What a threshold or τ slider changes, on cached maps.

:func:`threshold_view` only strings together the ``spg_core`` calls a slider move triggers
(``localize.stage_masks``, ``seed_report``, ``localization_box``, ``boxes.iou``), so the app and
``benchmarks/bench_app.py`` time the same code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spg_core import boxes as box_ops
from spg_core.guidance import GuidancePreset
from spg_core.localize import StageMaps, localization_box, seed_report, stage_masks


def clean_thresholds(delta_low: float, delta_high: float, step: float = 0.01) -> tuple[float, float, bool]:
    """A range slider may meet itself (δ_l == δ_h), which Eq. 1 forbids: move δ_h up one step
    (or δ_l down at 1.0). Returns (δ_l, δ_h, adjusted)."""
    low, high = round(float(delta_low), 4), round(float(delta_high), 4)
    if low < high:
        return low, high, False
    if low + step <= 1.0:
        return low, round(low + step, 4), True
    return round(high - step, 4), high, True


@dataclass
class ThresholdView:
    """Everything a threshold or τ slider changes: the seeds of each stage, their fallback
    flags and statistics, the box and its IoU with the GT boxes."""

    masks: dict
    fallback: dict
    report: dict
    box: tuple[int, int, int, int]
    iou: float | None


def threshold_view(stage_maps: StageMaps, preset: GuidancePreset, tau: float, object_region=None,
                   gt_boxes=None, box_stage: str = "attention") -> ThresholdView:
    """One slider move on cached maps: Eq. 1 seeds of every guided stage (``stage_masks``),
    coverage/precision (``seed_report``), the localisation box at τ (``localization_box``) of
    the A4 map — or, as an extension, of another stage's map (``box_stage``) — and its best IoU
    with the GT boxes (``boxes.iou``)."""
    if box_stage not in stage_maps.maps:
        raise ValueError(f"box_stage={box_stage!r} is not a map of this model; choose one of {sorted(stage_maps.maps)}")
    computed = stage_masks(stage_maps.maps, preset)
    masks = {name: value for name, value in computed.items() if not name.endswith("_fallback")}
    fallback = {name: bool(computed[f"{name}_fallback"]) for name in masks}
    report = seed_report(masks, object_region)
    box = localization_box(stage_maps.maps[box_stage], tau)
    iou = None
    gt = np.asarray(gt_boxes if gt_boxes is not None else [], dtype=np.float64).reshape(-1, 4)
    if len(gt):
        iou = float(np.max(box_ops.iou(np.asarray(box), gt.astype(np.int64))))
    return ThresholdView(masks, fallback, report, box, iou)
