"""What a threshold or τ slider changes, on cached maps.

A δ slider changes one stage's seeds (:func:`stage_seeds`), τ the box (:func:`box_view`);
:func:`threshold_view` is both for every stage. They only string together the ``spg_core`` calls
a slider move triggers (``GuidancePreset.seeds``, ``seed_statistics``, ``localization_box``,
``boxes.iou``), so the app and ``benchmarks/bench_app.py`` time the same code.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

from spg_core import boxes as box_ops
from spg_core.guidance import STAGE_NAMES, GuidancePreset, guided_stage, seed_statistics
from spg_core.localize import StageMaps, localization_box


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


@dataclass
class StageSeeds:
    """What one δ slider changes: its stage's seed mask, whether the fallback fired, and the
    mask's coverage / precision (``seed_statistics``)."""

    mask: np.ndarray
    fallback: bool
    stats: dict


def stage_seeds(stage_maps: StageMaps, preset: GuidancePreset, stage: str, object_region=None) -> StageSeeds:
    """Eq. 1 seeds of one guided stage (``mask_a``, ``mask_b2`` or ``mask_fuse``) on its source
    map at ``preset``'s thresholds, with the per-image fallback, and their statistics against the
    object's region (bool mask) when known."""
    source = guided_stage(stage).source
    if source not in stage_maps.maps:
        raise ValueError(f"{stage!r} thresholds the {source!r} map, which this model does not have; "
                         f"its maps are {sorted(stage_maps.maps)}")
    mask, fired = preset.seeds(stage, stage_maps.maps[source], return_fallback=True)
    return StageSeeds(mask, bool(fired), seed_statistics(mask, object_region))


_NUMBERS: dict[tuple, tuple[bool, dict]] = {}  # content key -> (fallback, stats): shared by every session
_NUMBERS_LOCK = threading.Lock()
NUMBERS_CACHE_SIZE = 4096


def _digest(array) -> str | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return hashlib.sha1(repr((array.dtype.str, array.shape)).encode() + array.tobytes()).hexdigest()


def stage_numbers(stage_maps: StageMaps, preset: GuidancePreset, stage: str, object_region=None) -> tuple[bool, dict]:
    """:func:`stage_seeds`' fallback flag and statistics, remembered by content (the map's and
    the region's bytes, the stage's thresholds and precedence), so a release that moved one
    stage recomputes that stage only. Returns (fallback fired, ``seed_statistics``)."""
    source = guided_stage(stage).source
    if source not in stage_maps.maps:
        stage_seeds(stage_maps, preset, stage, object_region)  # its error names the maps there are
    key = (_digest(stage_maps.maps[source]), _digest(object_region), stage, preset.stage(stage),
           preset.precedence)
    found = _NUMBERS.get(key)
    if found is None:
        seeds = stage_seeds(stage_maps, preset, stage, object_region)
        found = (seeds.fallback, seeds.stats)
        with _NUMBERS_LOCK:
            if len(_NUMBERS) >= NUMBERS_CACHE_SIZE:
                _NUMBERS.pop(next(iter(_NUMBERS)))
            _NUMBERS[key] = found
    return found


def box_view(stage_maps: StageMaps, tau: float, gt_boxes=None,
             box_stage: str = "attention") -> tuple[tuple[int, int, int, int], float | None]:
    """What τ changes: the localisation box at τ (``localization_box``) of the A4 map — or, as
    an extension, of another stage's map (``box_stage``) — and its best IoU with the GT boxes."""
    if box_stage not in stage_maps.maps:
        raise ValueError(f"box_stage={box_stage!r} is not a map of this model; choose one of {sorted(stage_maps.maps)}")
    box = localization_box(stage_maps.maps[box_stage], tau)
    gt = np.asarray(gt_boxes if gt_boxes is not None else [], dtype=np.float64).reshape(-1, 4)
    iou = float(np.max(box_ops.iou(np.asarray(box), gt.astype(np.int64)))) if len(gt) else None
    return box, iou


def threshold_view(stage_maps: StageMaps, preset: GuidancePreset, tau: float, object_region=None,
                   gt_boxes=None, box_stage: str = "attention") -> ThresholdView:
    """Every slider at once on cached maps: the seeds of each guided stage the model has
    (:func:`stage_seeds`) and the box at τ with its IoU (:func:`box_view`)."""
    box, iou = box_view(stage_maps, tau, gt_boxes, box_stage)
    seeds = {stage: stage_seeds(stage_maps, preset, stage, object_region) for stage in STAGE_NAMES
             if guided_stage(stage).source in stage_maps.maps}
    return ThresholdView({stage: s.mask for stage, s in seeds.items()},
                         {stage: s.fallback for stage, s in seeds.items()},
                         {stage: s.stats for stage, s in seeds.items()}, box, iou)
