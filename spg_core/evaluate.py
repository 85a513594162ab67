"""Evaluation: score maps, or a model on a dataset -> metrics, per-image rows, τ curves, files.

Two protocols, named presets rather than options scattered over flags:

``"paper"`` (SPG §4)
    The GT-class map (A4 output) is upsampled bilinearly (``cv2.INTER_LINEAR``) to the scoring
    grid, min-max normalised, thresholded at ``>= τ``; the box is the largest 8-connected
    component's tight box (:func:`spg_core.boxes.largest_component_box`). The scoring grid is
    the network input S×S in :func:`evaluate` (GT boxes scaled to it with WE's ``int()``
    truncation, like the authors' code which measures at the input resolution) and the
    original image in :func:`evaluate_maps` unless ``paper_size`` is given.
``"wsolevaluation"`` (clovaai/wsolevaluation, "WE")
    The GT-class map is resized to 224×224 bicubically (``cv2.INTER_CUBIC``, float64 as WE),
    min-max normalised (constant or NaN -> zeros), GT boxes rescaled to 224 with ``int()``
    truncation of ``x * 224 / w``, masks with ``cv2.INTER_NEAREST``; boxes by WE's contour rule
    (:func:`spg_core.tau_sweep.wsol_sweep`). Reports MaxBoxAcc, MaxBoxAccV2 and PxAP exactly as WE.

τ for the threshold-dependent metrics (GT-known / Top-1 / Top-5 Loc, and the per-image rows)
comes from, in order: an explicit ``tau``; the best τ of a held-out split's GT-known curve
(``threshold_dataset`` / ``threshold_curves``); ``tau="oracle"``, which chooses on the
reported split and says so in the metrics. Choosing on the reported split any other way
raises. MaxBoxAcc/V2 and PxAP need no τ: the best τ is part of their definition.
"""
from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Iterable

import cv2
import numpy as np

from spg_core import boxes as box_ops
from spg_core import metrics as M
from spg_core import tau_sweep
from spg_core.report import json_ready, write_outputs
from spg_core.stages import MAP_STAGES

log = logging.getLogger("spg_core.evaluate")

__all__ = [
    "PROTOCOLS",
    "WSOL_SIZE",
    "BOX_RULES",
    "RULE_PROTOCOL",
    "check_box_rule",
    "check_iou_thresholds",
    "resize_box",
    "prepare_wsol_map",
    "scoring_grid",
    "prepare_map",
    "gt_on_grid",
    "SplitEvaluator",
    "evaluate_maps",
    "score_maps_split",
    "evaluate",
    "evaluate_run",
    "evaluate_map_folder",
    "map_folder_inputs",
]

PROTOCOLS = ("paper", "wsolevaluation")
WSOL_SIZE = 224  # WE's _RESIZE_LENGTH
# Box rules a split can be scored with (``box_rule``): the paper's largest component, WE's largest
# contour (its --multi_contour_eval false) or best of all contours (true); each is its protocol's.
BOX_RULES = tau_sweep.BOX_RULES
RULE_PROTOCOL = {"largest_component": "paper", "largest_contour": "wsolevaluation", "all_contours": "wsolevaluation"}


# ----------------------------------------------------------------------------- shared preprocessing
def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is unknown; choose one of {PROTOCOLS}")
    return protocol


def check_box_rule(protocol: str, box_rule: str | None) -> str | None:
    """The box rule in its underscore spelling, checked against ``protocol``.

    Args:
        protocol: one of ``PROTOCOLS``.
        box_rule: one of ``BOX_RULES`` (hyphens allowed, as on the command line), or None for the
            protocol's own rules.

    Returns:
        The rule, or None when none was given.
    """
    if box_rule is None:
        return None
    rule = str(box_rule).replace("-", "_")
    if rule not in BOX_RULES:
        names = ", ".join(name.replace("_", "-") for name in BOX_RULES)
        raise ValueError(f"box rule {box_rule!r} is unknown; choose one of {names}")
    if RULE_PROTOCOL[rule] != _check_protocol(protocol):
        raise ValueError(f"box rule {rule.replace('_', '-')} belongs to the {RULE_PROTOCOL[rule]} protocol, not "
                         f"{protocol}; pass --protocol {RULE_PROTOCOL[rule]} (or leave --protocol out)")
    return rule


def check_iou_thresholds(thresholds) -> tuple[int, ...]:
    """IoU thresholds in whole percent (WE's ``--iou_threshold_list``), checked.

    Args:
        thresholds: integers in 1..100 without repeats, or None for WE's default (30, 50, 70).

    Returns:
        The thresholds as a tuple, in the order given.
    """
    if thresholds is None:
        return tuple(M.IOU_THRESHOLDS)
    values = tuple(thresholds)
    good = all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 1 <= t <= 100 for t in values)
    if not values or not good or len(set(values)) != len(values):
        raise ValueError(f"IoU thresholds {list(values)} must be whole percents in 1..100 without repeats, "
                         f"e.g. --iou-thresholds 30 50 70")
    return tuple(int(t) for t in values)


def resize_box(box, image_size, new_size) -> tuple[int, int, int, int]:
    """WE's ``resize_bbox``: scale an inclusive box from ``image_size`` (w, h) to ``new_size``
    (w, h), each coordinate truncated with ``int()`` (:func:`spg_core.boxes.resize_boxes`)."""
    return tuple(int(v) for v in box_ops.resize_boxes([box], image_size, new_size, rule="wsolevaluation")[0])


def prepare_wsol_map(score_map, normalization: str = "minmax") -> np.ndarray:
    """WE's map preparation: float64, bicubic resize to 224×224, min-max (constant/NaN -> 0).
    ``normalization="max"`` divides by the maximum instead (:func:`spg_core.boxes.max_numpy`)."""
    array = np.asarray(score_map, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"score map must be 2-D; got shape {array.shape}")
    if not np.isfinite(array).all():
        return np.zeros((WSOL_SIZE, WSOL_SIZE))
    resized = cv2.resize(array, (WSOL_SIZE, WSOL_SIZE), interpolation=cv2.INTER_CUBIC)
    return box_ops.normalize_numpy(resized, normalization)


def _prepare_paper_map(score_map, grid: tuple[int, int], normalization: str = "minmax") -> np.ndarray:
    # The localiser's rule: NaN/inf pixels count as the map's finite minimum, not as an empty map.
    array, _ = box_ops.fill_nonfinite(score_map)
    if array.shape != (grid[1], grid[0]):
        array = cv2.resize(array, grid, interpolation=cv2.INTER_LINEAR)
    return box_ops.normalize_numpy(array, normalization)


def scoring_grid(protocol: str, size, paper_size: int | None = None) -> tuple[int, int]:
    """The (w, h) grid a protocol scores an image of ``size`` = (w, h) on: 224×224 for WE; the
    network input ``paper_size``² for the paper protocol when given, else the image itself."""
    if _check_protocol(protocol) == "wsolevaluation":
        return WSOL_SIZE, WSOL_SIZE
    if paper_size is not None:
        return int(paper_size), int(paper_size)
    return int(size[0]), int(size[1])


def prepare_map(protocol: str, score_map, size, paper_size: int | None = None,
                normalization: str = "minmax") -> np.ndarray:
    """A map (any resolution) of an image of ``size`` normalised on the protocol's scoring grid:
    WE's bicubic resize to 224 (:func:`prepare_wsol_map`) or the paper's bilinear one."""
    if _check_protocol(protocol) == "wsolevaluation":
        return prepare_wsol_map(score_map, normalization)
    return _prepare_paper_map(score_map, scoring_grid(protocol, size, paper_size), normalization)


def gt_on_grid(protocol: str, boxes, size, paper_size: int | None = None, image_id=None) -> np.ndarray:
    """GT boxes (N×4, original pixels of an image of ``size``) on the protocol's scoring grid,
    each coordinate ``int()``-truncated as WE's ``resize_bbox``. ``image_id`` names the image in
    the error when it has no box."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        which = "an image" if image_id is None else f"image {str(image_id)!r}"
        raise ValueError(f"{which} has no GT box; localisation metrics need at least one per image "
                         "(give it a box in the metadata, or leave it out of the split)")
    grid = scoring_grid(protocol, size, paper_size)
    if grid == tuple(int(v) for v in size):
        return boxes.astype(np.int64)  # int() truncation of original-pixel boxes
    return np.array([resize_box(b, size, grid) for b in boxes], dtype=np.int64)


def _resize_mask(mask, grid: tuple[int, int]) -> np.ndarray:
    """A 1/0/255 mask on the scoring grid (w, h): ``cv2.INTER_NEAREST``, the resize of WE's
    ``load_mask_image``, which picks other source pixels than PIL's nearest. Both protocols, and
    both :func:`evaluate` and :func:`evaluate_maps`, resize masks here, from the original image's
    pixels, once."""
    mask = np.asarray(mask, dtype=np.uint8)
    if mask.shape != (grid[1], grid[0]):
        mask = cv2.resize(mask, grid, interpolation=cv2.INTER_NEAREST)
    return mask


# ----------------------------------------------------------------------------- one split's accumulator
class SplitEvaluator:
    """Collects one split's per-image results; :meth:`curves`/:meth:`rows` read them out.

    Curves are counted as images arrive (as WE's evaluators do); per image only the box at
    every τ is kept (for the rows), never the map, so any τ can be applied after the whole
    split has been seen.
    """

    def __init__(self, protocol: str, cam_curve_interval: float = 0.01, split: str = "report",
                 paper_size: int | None = None, iou_thresholds=None, box_rule: str | None = None,
                 baselines: bool = False):
        self.protocol = _check_protocol(protocol)
        self.cam_curve_interval = float(cam_curve_interval)
        self.taus = M.tau_grid(cam_curve_interval)
        self.split = split
        self.paper_size = paper_size
        # Options of the box-accuracy score (evaluate-maps --iou-thresholds / --box-rule); None = as before.
        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.box_rule = check_box_rule(protocol, box_rule)
        self.report_box_options = iou_thresholds is not None or box_rule is not None
        # The box of the Loc metrics and the rows: the given rule, else the protocol's (WE: the largest contour).
        self.loc_rule = self.box_rule or ("largest_contour" if protocol == "wsolevaluation" else "largest_component")
        # MaxBoxAcc is at IoU 50 whatever the set, so 50 is always counted.
        counted = self.iou_thresholds if 50 in self.iou_thresholds else (*self.iou_thresholds, 50)
        self.box_accuracy = M.BoxAccuracy(self.taus, counted) if protocol == "wsolevaluation" else None
        # The paper rule's counts per IoU, kept only when the options ask for its box accuracy.
        self.rule_accuracy = (M.BoxAccuracy(self.taus, self.iou_thresholds)
                              if protocol == "paper" and self.report_box_options else None)
        self.pxap = M.PxAP(self.taus)
        self.has_mask = False
        self.nonfinite: dict[str, int] = {}  # image id -> NaN/inf pixels of its map (said in the metrics)
        self.images: list[dict] = []
        count = len(self.taus)
        self.hits = {"gt_known_loc": np.zeros(count), "top1_loc": np.zeros(count), "top5_loc": np.zeros(count)}
        self.all_classified = True
        # The trivial baselines on the same images (spg_core.baselines), when asked for.
        self.baselines = None
        if baselines:
            from spg_core.baselines import Baselines

            self.baselines = Baselines(protocol, cam_curve_interval, split, paper_size, self.iou_thresholds)

    @property
    def box_grid(self) -> str:
        if self.protocol == "wsolevaluation":
            return f"{WSOL_SIZE}x{WSOL_SIZE} (WE)"
        if self.paper_size is not None:
            return f"{self.paper_size}x{self.paper_size} network input"
        return "original image pixels"

    # -- grids
    def grid(self, size) -> tuple[int, int]:
        return scoring_grid(self.protocol, size, self.paper_size)

    def prepare(self, score_map, size, image_id=None) -> np.ndarray:
        """The normalised map on this protocol's scoring grid; NaN/inf pixels of ``image_id``'s
        map are counted for the metrics."""
        values = np.asarray(score_map)
        broken = int(values.size - np.isfinite(values).sum())
        if broken:
            self.nonfinite[str(image_id)] = broken
        return prepare_map(self.protocol, score_map, size, self.paper_size)

    def gt_boxes(self, boxes, size, image_id=None) -> np.ndarray:
        return gt_on_grid(self.protocol, boxes, size, self.paper_size, image_id)

    # -- accumulation
    def add(self, image_id: str, score_map, boxes, size, mask=None, label=None, prediction=None,
            top5: bool | None = None, sweep=None, prepared=None, level_boxes=None) -> None:
        """One image: its GT-class map (any resolution), GT boxes in the pixels of an image of
        ``size`` = (w, h), optional mask (1/0/255) of that image or of the scoring grid, and
        optional classification results. ``sweep``/``prepared`` let a caller that already ran
        :func:`spg_core.tau_sweep.wsol_sweep` (e.g. in parallel) pass its result; ``level_boxes``
        the paper rule's per-τ boxes of ``prepared`` (:func:`spg_core.tau_sweep.largest_component_boxes`
        of a map shared by many images, computed once)."""
        gt = self.gt_boxes(boxes, size, image_id)
        normalized = prepared if prepared is not None else self.prepare(score_map, size, image_id)
        if self.protocol == "wsolevaluation":
            result = sweep if sweep is not None else tau_sweep.wsol_sweep(normalized, gt, self.taus)
            self.box_accuracy.add(result.iou_v1, result.iou_v2)
            # The Loc metrics use the largest contour's box (v1), the box WE's MaxBoxAcc scores, or with
            # box rule all_contours the best-matching contour's box (v2), the one MaxBoxAccV2 counts.
            best_of_all = self.loc_rule == "all_contours"
            ious = result.iou_v2 if best_of_all else result.iou_v1
            level_box = result.v2_box if best_of_all else result.v1_box
            level_index, per_level_box = result.level_index.astype(np.uint8), level_box.astype(np.int32)
        else:
            if level_boxes is None:
                per_level_box, ious = tau_sweep.largest_component_sweep(normalized, gt, self.taus)
            else:  # what largest_component_sweep returns, its boxes computed before
                per_level_box, ious = level_boxes, box_ops.iou_matrix(level_boxes, gt).max(axis=1)
            level_index, per_level_box = None, per_level_box.astype(np.int32)
            if self.rule_accuracy is not None:
                self.rule_accuracy.add(ious, ious)
        hit = ious >= 0.5
        self.hits["gt_known_loc"] += hit
        classified = label is not None and prediction is not None
        self.all_classified &= classified
        if classified:
            self.hits["top1_loc"] += hit & (prediction == label)
            self.hits["top5_loc"] += hit & (bool(top5) if top5 is not None else prediction == label)
        overlap = None
        if mask is not None:
            grid_mask = _resize_mask(mask, (normalized.shape[1], normalized.shape[0]))
            self.pxap.add(normalized, grid_mask)
            self.has_mask = True
            if (grid_mask == 1).any():  # the failure type's object pixels in every level's box (a few ints)
                overlap = M.object_overlap(per_level_box, grid_mask, gt).astype(np.int32)
        self.images.append({"image_id": str(image_id), "label": label, "prediction": prediction, "gt": gt,
                            "level_index": level_index, "box": per_level_box, "size": (int(size[0]), int(size[1])),
                            "overlap": overlap})
        if self.baselines is not None:
            self.baselines.add(image_id, boxes, size, mask)

    def __len__(self) -> int:
        return len(self.images)

    # -- results
    def curves(self) -> dict[str, M.Curve]:
        if not self.images:
            raise ValueError(f"split {self.split!r}: no image was evaluated")
        names = ("gt_known_loc", "top1_loc", "top5_loc") if self.all_classified else ("gt_known_loc",)
        curves = {name: M.Curve(name, self.split, self.taus, self.hits[name] * 100.0 / float(len(self.images)), 0.5)
                  for name in names}
        if self.box_accuracy is not None:
            curves.update(self.box_accuracy.curves(self.split))
        if self.has_mask:
            curves["pxap_pr"] = self.pxap.curve(self.split)
        return curves

    def tau_free_metrics(self) -> dict:
        out: dict = {}
        if self.box_accuracy is not None:
            out.update(self.box_accuracy.metrics())
            if self.box_accuracy.iou_thresholds != self.iou_thresholds:  # 50 was counted for MaxBoxAcc only
                best = [self.box_accuracy.accuracy("v2", t).max() for t in self.iou_thresholds]
                out["maxboxacc_v2"] = float(np.average(best))
                out["maxboxacc_v2_per_iou"] = {str(t): float(v) for t, v in zip(self.iou_thresholds, best)}
        if self.report_box_options:
            out["box_accuracy"] = self.box_accuracy_summary()
        if self.has_mask:
            out["pxap"] = self.pxap.compute()
        if self.nonfinite:
            # WE zeroes such a map (kept for comparable numbers); the paper protocol fills its minimum.
            out["maps_with_nonfinite_pixels"] = {
                "count": len(self.nonfinite), "pixels": int(sum(self.nonfinite.values())),
                "first": sorted(self.nonfinite)[:5],
                "rule": "map scored as zeros" if self.protocol == "wsolevaluation" else "pixels set to the map's minimum"}
            log.warning("%d map(s) hold NaN or inf pixels (first: %s): %s", len(self.nonfinite),
                        ", ".join(sorted(self.nonfinite)[:3]), out["maps_with_nonfinite_pixels"]["rule"])
        return out

    def box_accuracy_summary(self) -> dict:
        """The box accuracy under this split's options, WE's "localization" number.

        Returns:
            ``box_rule`` (the given one, else WE's default all-contours or the paper's largest
            component), ``iou_thresholds``, ``per_iou`` (best accuracy over τ at each IoU, each with
            its own τ), ``mean`` (their mean: WE's --multi_iou_eval true; false reports
            ``per_iou["50"]``) and ``wsolevaluation_flags`` (the flags of WE's evaluation.py that
            print the same number; None for the paper's rule).
        """
        rule = self.box_rule or ("all_contours" if self.protocol == "wsolevaluation" else "largest_component")
        if self.protocol == "wsolevaluation":
            counts, mode = self.box_accuracy, "v2" if rule == "all_contours" else "v1"
        else:
            counts, mode = self.rule_accuracy, "v1"
        best = [counts.accuracy(mode, t).max() for t in self.iou_thresholds]
        flags = None
        if rule != "largest_component":
            flags = (f"--multi_contour_eval {str(rule == 'all_contours').lower()} --iou_threshold_list "
                     f"{' '.join(map(str, self.iou_thresholds))} --multi_iou_eval true")
        return {"box_rule": rule.replace("_", "-"), "iou_thresholds": list(self.iou_thresholds),
                "per_iou": {str(t): float(v) for t, v in zip(self.iou_thresholds, best)},
                "mean": float(np.average(best)), "wsolevaluation_flags": flags}

    def rows(self, tau_index: int) -> list[dict]:
        """Per image at τ: the protocol's box, its best-matching GT box, IoU and failure type.
        The box is the GT-class map's (GT-known); ``prediction`` says what the classifier chose.
        Boxes are on the scoring grid ``grid_size`` = (w, h) of an image of ``image_size``."""
        rows = []
        for r in self.images:
            level = tau_index if r["level_index"] is None else r["level_index"][tau_index]
            pred = np.asarray(r["box"][level], dtype=np.int64)
            ious = box_ops.iou(pred, r["gt"])
            best = int(np.argmax(ious))
            class_correct = r["prediction"] is None or r["prediction"] == r["label"]
            rows.append({
                "image_id": r["image_id"],
                "label": None if r["label"] is None else int(r["label"]),
                "prediction": None if r["prediction"] is None else int(r["prediction"]),
                "iou": float(ious[best]), "pred_box": pred.tolist(), "gt_box": r["gt"][best].tolist(),
                "failure": M.failure_type(pred, r["gt"], class_correct,
                                          overlap=None if r["overlap"] is None else r["overlap"][level]),
                "image_size": list(r["size"]), "grid_size": list(self.grid(r["size"])),
            })
        return rows


def _choose_tau(report: SplitEvaluator, report_curves: dict, tau, threshold_curves: dict | None) -> dict | None:
    """τ and where it came from, or None when nothing may choose it."""
    taus = report.taus
    if isinstance(tau, str):
        if tau != "oracle":
            raise ValueError(f"tau={tau!r}: give a number in [0, 1), 'oracle', or None")
        chosen = M.select_tau(report_curves["gt_known_loc"], report_curves["gt_known_loc"], oracle=True)
        return {"tau": chosen["tau"],
                "tau_source": f"oracle: best GT-known Loc τ of the reported split {report.split!r}"}
    if tau is not None:
        tau = float(tau)
        if not 0 <= tau < 1:
            raise ValueError(f"tau={tau} must lie in [0, 1)")
        return {"tau": float(taus[int(np.argmin(np.abs(taus - tau)))]), "tau_source": "given"}
    if threshold_curves is not None:
        chosen = M.select_tau(threshold_curves["gt_known_loc"], report_curves["gt_known_loc"])
        return {"tau": chosen["tau"],
                "tau_source": f"best GT-known Loc τ of held-out split {chosen['threshold_split']!r}",
                "tau_threshold_split_gt_known_loc": chosen["threshold_value"]}
    return None


TAU_WINDOW = 0.02


def tau_window(curve, index: int, half_width: float = TAU_WINDOW) -> dict:
    """How much a thresholded accuracy moves within ±``half_width`` of the τ at ``index``: the
    lowest and highest value of ``curve`` there. A wide range marks a knife-edge number — a map
    with a flat floor whose box is object-sized at one exact level only — that a slightly
    different τ (or protocol) would not reproduce. τ = 0 (the whole image) is left out unless
    it is the chosen τ itself."""
    taus, values = np.asarray(curve.taus, dtype=float), np.asarray(curve.values, dtype=float)
    inside = (np.abs(taus - taus[index]) <= half_width + 1e-9) & ((taus > 0) | (np.arange(len(taus)) == index))
    return {"tau_low": float(taus[inside].min()), "tau_high": float(taus[inside].max()),
            "min": float(values[inside].min()), "max": float(values[inside].max())}


def _finish(report: SplitEvaluator, tau, threshold_curves: dict | None, extra: dict | None = None):
    curves = report.curves()
    metrics: dict = {"protocol": report.protocol, "split": report.split, "num_images": len(report),
                     "cam_curve_interval": report.cam_curve_interval, "box_grid": report.box_grid}
    metrics.update(report.tau_free_metrics())
    choice = _choose_tau(report, curves, tau, threshold_curves)
    if choice is None:
        if report.protocol == "paper":
            raise ValueError("the paper protocol needs a τ: pass tau=<number>, a held-out split "
                             "(threshold_dataset / threshold_curves), or tau='oracle' to choose on this split")
        # WE's metrics need no τ; the rows are shown at MaxBoxAcc's own operating point (of the rule's box).
        best_of_all = report.loc_rule == "all_contours"
        index = int(np.argmax(curves["boxacc_v2_iou50" if best_of_all else "boxacc_v1_iou50"].values))
        metrics["rows_tau"] = float(report.taus[index])
        curve_name = "all-contours box accuracy at IoU 0.5" if best_of_all else "MaxBoxAcc"
        metrics["rows_tau_source"] = f"best τ of this split's {curve_name} curve (display only; no Loc metric uses it)"
    else:
        metrics.update(choice)
        index = int(np.argmin(np.abs(report.taus - choice["tau"])))
        for name in ("gt_known_loc", "top1_loc", "top5_loc"):
            if name in curves:
                metrics[name] = float(curves[name].values[index])
        if "gt_known_loc" in curves:
            metrics["gt_known_loc_tau_window"] = tau_window(curves["gt_known_loc"], index)
    if extra:
        metrics.update(extra)
    if threshold_curves:
        for name, curve in threshold_curves.items():
            curves[f"threshold/{name}"] = curve
    return metrics, report.rows(index), curves


# ----------------------------------------------------------------------------- maps without a model
def evaluate_maps(score_maps: Iterable, gt: dict, protocol: str = "wsolevaluation", cam_curve_interval: float = 0.01,
                  *, split: str = "report", tau=None, threshold_curves: dict | None = None,
                  predictions: dict | None = None, paper_size: int | None = None, workers: int | None = 1,
                  progress: bool = False, iou_thresholds=None, box_rule: str | None = None,
                  baselines: bool = False, threshold_baselines=None):
    """Score saved maps against ground truth, no model needed.

    ``score_maps``: iterable of ``(image_id, 2-D float map)`` (any resolution, e.g. the CAM
    itself or a 224 map). ``gt[image_id] = (boxes N×4 inclusive in original pixels, (w, h),
    optional mask H×W 1/0/255 in original pixels)``; a 4-tuple may add the class label.
    ``predictions[image_id] = (top-1 class, GT class in top 5: bool)`` enables Top-1/Top-5 Loc
    and the ``wrong-class`` failure type. τ: see the module docstring; ``threshold_curves`` is
    the curves dict of a held-out split scored the same way (:func:`score_maps_split`). ``workers``
    > 1 runs the WE sweeps in that many processes. ``iou_thresholds`` (whole percents, WE's
    ``--iou_threshold_list``; default 30, 50, 70) and ``box_rule`` (one of ``BOX_RULES``: the box of
    the Loc metrics and rows, WE's ``--multi_contour_eval``) add ``box_accuracy`` to the metrics
    (:meth:`SplitEvaluator.box_accuracy_summary`); left out, every number is as without them.
    ``baselines`` adds the trivial baselines' scores (:mod:`spg_core.baselines`) as
    ``metrics["baselines"]``, their fraction and τ chosen on ``threshold_baselines`` (the held-out
    split's ``score_maps_split(..., baselines=True).baselines``) when given.

    Returns ``(metrics, rows, curves)``: metrics in percent, one row per image (image_id,
    label, prediction, iou at τ, pred_box, gt_box best matching, failure), name -> Curve.
    """
    report = score_maps_split(score_maps, gt, protocol, cam_curve_interval, split=split, predictions=predictions,
                              paper_size=paper_size, workers=workers, progress=progress,
                              iou_thresholds=iou_thresholds, box_rule=box_rule, baselines=baselines)
    metrics, rows, curves = _finish(report, tau, threshold_curves)
    if baselines:
        metrics["baselines"] = report.baselines.summary(threshold_baselines)
    return metrics, rows, curves


def score_maps_split(score_maps: Iterable, gt: dict, protocol: str = "wsolevaluation",
                     cam_curve_interval: float = 0.01, *, split: str = "report", predictions: dict | None = None,
                     paper_size: int | None = None, workers: int | None = 1, progress: bool = False,
                     iou_thresholds=None, box_rule: str | None = None, baselines: bool = False) -> SplitEvaluator:
    """The accumulation half of :func:`evaluate_maps`; ``.curves()`` of the result are what a
    held-out split contributes to choosing τ (and ``.baselines``, with ``baselines``, to choosing
    the baselines' fraction and τ)."""
    from tqdm import tqdm

    report = SplitEvaluator(protocol, cam_curve_interval, split=split, paper_size=paper_size,
                            iou_thresholds=iou_thresholds, box_rule=box_rule, baselines=baselines)
    taus = report.taus
    pending: list[tuple] = []

    def flush() -> None:
        if not pending:
            return
        if report.protocol == "wsolevaluation" and (workers or 1) > 1 and len(pending) > 1:
            sweeps = tau_sweep.wsol_sweep_many([p[1] for p in pending], [p[2] for p in pending], taus, workers=workers)
        else:
            sweeps = [None] * len(pending)
        for (image_id, prepared, _, entry), sweep in zip(pending, sweeps):
            mask = entry[2] if len(entry) > 2 else None
            label = entry[3] if len(entry) > 3 else None
            prediction, top5 = (predictions or {}).get(image_id, (None, None))
            report.add(image_id, None, entry[0], entry[1], mask=mask, label=label, prediction=prediction, top5=top5,
                       sweep=sweep, prepared=prepared)
        pending.clear()

    for image_id, score_map in tqdm(score_maps, desc=f"evaluate {split}", unit="map", disable=not progress):
        if image_id not in gt:
            raise KeyError(f"no ground truth for map {image_id!r}; "
                           "gt must map every image_id to (boxes, (w, h)[, mask])")
        entry = gt[image_id]
        prepared = report.prepare(score_map, entry[1], image_id)
        pending.append((image_id, prepared, report.gt_boxes(entry[0], entry[1], image_id), entry))
        if len(pending) >= 256:
            flush()
    flush()
    return report


# ----------------------------------------------------------------------------- a model on a dataset
def _input_size(dataset) -> int:
    size = getattr(dataset, "image_size", None)
    if size:
        return int(size)
    for index in range(min(len(dataset), 16)):
        item = dataset[index]
        if item is not None:
            return int(item["image"].shape[-1])
    raise ValueError("could not read any image of the dataset to learn its input size")


def _image_ids(dataset) -> set[str] | None:
    records = getattr(dataset, "records", None)
    if records is None:
        return None
    return {str(record.image_id) for record in records}


def _check_disjoint(threshold_dataset, dataset) -> None:
    held_out, reported = _image_ids(threshold_dataset), _image_ids(dataset)
    if held_out is not None and reported is not None and held_out & reported:
        example = sorted(held_out & reported)[0]
        raise ValueError(f"{len(held_out & reported)} image(s) are in both the held-out and the reported split "
                         f"(e.g. {example!r}); choose τ on disjoint images or pass tau='oracle'")


def _dataset_split(dataset, fallback: str) -> str:
    split = getattr(dataset, "split", None) or fallback
    return str(split)


def _masks(batch: dict, count: int) -> list:
    """Each image's mask for PxAP: in the original image's pixels ("orig_mask", what
    :class:`spg_core.data.WSOLDataset` gives) so that :func:`_resize_mask` is the one resize to
    the scoring grid, as in WE; else the mask a dataset gives at the network input ("mask")."""
    originals = batch.get("orig_mask") or [None] * count
    inputs = batch.get("mask") or [None] * count
    return [original if original is not None else mask for original, mask in zip(originals, inputs)]


def _with_ten_crop(dataset):
    """``dataset`` with the ten test views in its items (:meth:`WSOLDataset.with_ten_crop`,
    through a ``Subset`` too); any other dataset is returned as it is and must give "ten_crop"
    itself."""
    from torch.utils.data import Subset

    if isinstance(dataset, Subset):
        view = copy.copy(dataset)
        view.dataset = _with_ten_crop(dataset.dataset)
        return view
    return dataset.with_ten_crop() if hasattr(dataset, "with_ten_crop") else dataset


def _run_model(model, dataset, evaluator: SplitEvaluator, device, batch_size: int, ten_crop: bool,
               progress: bool, num_workers: int, star_taus: tuple | None, collect_ids: set | None = None,
               map_stage: str = "attention", map_sink=None) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from spg_core.data import collate
    from spg_core.guidance import stage_score_map
    from spg_core.localize import ten_crop_probabilities

    model.eval()
    device = torch.device(device)
    if ten_crop:
        dataset = _with_ten_crop(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    top1_hits, top5_hits, skipped, star = [], [], 0, []
    bar = tqdm(total=len(dataset), desc=f"evaluate {evaluator.split}", unit="img", disable=not progress)
    with torch.no_grad():
        for batch in loader:
            skipped += int(batch["num_skipped"])
            bar.update(int(batch["num_skipped"]))
            if batch["image"].numel() == 0:
                continue
            images = batch["image"].to(device)
            labels = batch["label"].to(device)
            out = model(images, with_guidance=map_stage != "attention")
            if ten_crop:
                if "ten_crop" not in batch:
                    raise ValueError("ten_crop: the dataset's items carry no 'ten_crop' views "
                                     "(WSOLDataset.with_ten_crop() adds them)")
                probs = ten_crop_probabilities(model, batch["ten_crop"].to(device))
            else:
                probs = torch.softmax(out["logits"], dim=1)
            probs = probs.float().cpu().numpy()
            labels_np = labels.cpu().numpy()
            hit1 = M.topk_correct(probs, labels_np, 1)
            hit5 = M.topk_correct(probs, labels_np, 5)
            top1_hits.extend(hit1.tolist())
            top5_hits.extend(hit5.tolist())
            maps = out["class_maps"]
            gt_maps = stage_score_map(out, labels, map_stage).float().cpu().numpy()
            masks = _masks(batch, len(labels))
            ranked = np.argsort(-probs, axis=1, kind="stable")[:, :3]
            for i, image_id in enumerate(batch["image_id"]):
                if collect_ids is not None:
                    collect_ids.add(str(image_id))
                size = tuple(int(v) for v in batch["orig_size"][i])
                mask = masks[i]
                if mask is not None:
                    mask = np.asarray(mask.cpu().numpy() if hasattr(mask, "cpu") else mask, dtype=np.uint8)
                prediction = int(np.argmax(probs[i]))
                if map_sink is not None:
                    map_sink(image_id, gt_maps[i])
                evaluator.add(image_id, gt_maps[i], batch["orig_boxes"][i].cpu().numpy(), size, mask=mask,
                              label=int(labels_np[i]), prediction=prediction, top5=bool(hit5[i]))
                if star_taus is not None:
                    class_boxes = {int(cls): box_ops.loose_tight_boxes(
                        evaluator.prepare(maps[i, int(cls)].float().cpu().numpy(), size), *star_taus)
                        for cls in ranked[i]}
                    star.append(M.spg_star_top5_correct(ranked[i], class_boxes, int(labels_np[i]),
                                                        evaluator.images[-1]["gt"]))
            bar.update(len(labels))
    bar.close()
    if not top1_hits:
        raise ValueError(f"split {evaluator.split!r}: every image was skipped, nothing to evaluate")
    out = {"classification_top1": float(np.mean(top1_hits) * 100.0),
           "classification_top5": float(np.mean(top5_hits) * 100.0), "num_skipped": skipped}
    if star:
        loose, tight = star_taus
        out["spg_star_top5_loc"] = float(np.mean(star) * 100.0)
        out["spg_star_taus"] = {"loose": float(loose), "tight": float(tight)}
        out["spg_star_note"] = (f"NON-STANDARD: SPG* top-5 boxes, CAM's rule (loose box at τ {loose:g} and tight box "
                                f"at τ {tight:g} of the 1st and 2nd classes, the loose box of the 3rd) — not "
                                "comparable with Top-5 Loc")
    return out


def check_map_stage(model, map_stage: str) -> None:
    """Refuse a map stage that is unknown or that ``model`` cannot produce."""
    if map_stage not in MAP_STAGES:
        raise ValueError(f"map_stage={map_stage!r}; choose one of {MAP_STAGES}")
    if map_stage != "attention" and getattr(model, "variant", "spg") == "plain":
        raise ValueError(f"map_stage={map_stage!r} needs the SPG heads, but this model is SPG-plain")


def evaluate(model, dataset, device="cpu", protocol: str = "paper", threshold_dataset=None, tau=None,
             ten_crop: bool = False, batch_size: int = 32, progress: bool = True, *,
             cam_curve_interval: float = 0.01, spg_star: bool = False,
             spg_star_taus: tuple[float, float] = box_ops.LOOSE_TIGHT_TAUS, num_workers: int = 0,
             map_stage: str = "attention", map_sink=None, baselines: bool = False):
    """Run ``model`` (eval mode; ``model(x)`` returns "logits" B×C and "class_maps" B×C×h×w)
    over ``dataset`` (items as ``spg_core.data.WSOLDataset``) and score it.

    τ: ``tau`` (a number, or "oracle") or the best GT-known τ of ``threshold_dataset``, which
    must not share images with ``dataset``. Boxes come from the GT-class map; Top-1 Loc needs
    the top-1 class's map only when that class is right, and then it is the GT-class map, so
    no other map is used (except by SPG*). Classification uses the 10-crop softmax average
    when ``ten_crop``: the views cut from each image resized to S·256/224, as the single-image
    path (:func:`spg_core.localize.ten_crop_probabilities`); localisation always uses the single
    full view. ``spg_star`` adds the non-standard SPG* top-5 number (paper protocol): CAM's loose
    and tight boxes at ``spg_star_taus`` = (τ_loose, τ_tight) (:func:`spg_core.boxes.loose_tight_boxes`).
    ``map_stage`` scores another stage's map instead of the GT-class attention map: "fused",
    "c", "b1" or "b2" (class-agnostic; an extension — the paper localises from A4 only).
    ``map_sink(image_id, score_map)`` is called with every map of ``dataset`` that is scored
    (e.g. a :class:`spg_core.exports.MapWriter`). ``baselines`` adds the trivial baselines'
    scores on the same images (:mod:`spg_core.baselines`) as ``metrics["baselines"]``.

    Returns ``(metrics, rows, curves)`` like :func:`evaluate_maps`, plus classification_top1/5
    and num_skipped in the metrics.
    """
    _check_protocol(protocol)
    check_map_stage(model, map_stage)
    if map_stage != "attention":
        spg_star = False  # SPG* draws boxes from several classes' maps
    paper_size = _input_size(dataset) if protocol == "paper" else None

    threshold_curves = None
    report_split = _dataset_split(dataset, "report")
    threshold_ids: set[str] = set()
    held_out = None
    if threshold_dataset is not None and tau is None:
        threshold_split = _dataset_split(threshold_dataset, "threshold")
        if threshold_dataset is dataset or threshold_split == report_split:
            raise ValueError(f"threshold_dataset is the reported split {report_split!r}: "
                             "τ must be chosen on a held-out "
                             "split (e.g. val), or pass tau='oracle' to label the result as an oracle")
        _check_disjoint(threshold_dataset, dataset)
        held_out = SplitEvaluator(protocol, cam_curve_interval, split=threshold_split, paper_size=paper_size,
                                  baselines=baselines)
        _run_model(model, threshold_dataset, held_out, device, batch_size, ten_crop, progress, num_workers,
                   None, threshold_ids, map_stage)
        threshold_curves = held_out.curves()

    star_taus = None
    if spg_star:
        if protocol != "paper":
            warnings.warn("spg_star is a paper-protocol number; ignored with protocol='wsolevaluation'", stacklevel=2)
        else:
            star_taus = box_ops.loose_tight_taus(*spg_star_taus)

    report = SplitEvaluator(protocol, cam_curve_interval, split=report_split, paper_size=paper_size,
                            baselines=baselines)
    report_ids: set[str] = set()
    extra = _run_model(model, dataset, report, device, batch_size, ten_crop, progress, num_workers, star_taus,
                       report_ids, map_stage, map_sink)
    overlap = threshold_ids & report_ids
    if overlap:
        raise ValueError(f"{len(overlap)} image(s) are in both the held-out and the reported split (e.g. "
                         f"{sorted(overlap)[0]!r}); choose τ on disjoint images or pass tau='oracle'")
    metrics, rows, curves = _finish(report, tau, threshold_curves, extra)
    metrics["num_skipped"] = extra["num_skipped"]
    metrics["ten_crop"] = bool(ten_crop)
    metrics["map_stage"] = map_stage
    if baselines:
        metrics["baselines"] = report.baselines.summary(None if held_out is None else held_out.baselines)
    return metrics, rows, curves


# ----------------------------------------------------------------------------- command-line entry points
def evaluate_run(run, data: dict | None = None, split: str = "test", threshold_split: str | None = "val", tau=None,
                 protocol: str = "paper", cam_curve_interval: float = 0.01, ten_crop: bool = False,
                 spg_star: bool = False, spg_star_taus: tuple[float, float] = box_ops.LOOSE_TIGHT_TAUS,
                 batch_size: int = 64, device="auto", limit: int | None = None,
                 out=None, map_stage: str = "attention", export_coco=None, export_maps=None) -> dict:
    """``python -m spg_core evaluate``: load a run, build its splits, evaluate, write files.

    ``data``: data flags (``spg_core.data.settings.DATA_FLAGS``) over the run's own data; None =
    the run's own data. With ``tau`` given no held-out split is scored. ``export_coco``: a file
    for the reported split's boxes as COCO detections; ``export_maps``: a folder for its maps in
    wsolevaluation's layout, which ``evaluate-maps`` scores to the same wsolevaluation numbers
    (:mod:`spg_core.exports`).
    """
    from spg_core import exports

    import torch

    from spg_core.data.settings import DataSettings
    from spg_core.runs import load_run

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, config, _ = load_run(run, device=device)
    settings = DataSettings.from_flags(config, **(data or {}))

    def build(name: str):
        dataset = settings.dataset(name)
        if limit is not None and limit < len(dataset):
            from torch.utils.data import Subset

            subset = Subset(dataset, range(int(limit)))
            subset.split = getattr(dataset, "split", name)
            return subset
        return dataset

    if threshold_split is not None and threshold_split == split and tau is None:
        raise ValueError(f"--threshold-split {threshold_split!r} is the reported split: choose τ on a held-out split "
                         "(e.g. val) or give --tau")
    report = build(split)
    held_out = build(threshold_split) if (tau is None and threshold_split) else None
    map_sink = exports.MapWriter(export_maps) if export_maps is not None else None
    metrics, rows, curves = evaluate(model, report, device=device, protocol=protocol, threshold_dataset=held_out,
                                     tau=tau, ten_crop=ten_crop, batch_size=batch_size, progress=True,
                                     cam_curve_interval=cam_curve_interval, spg_star=spg_star,
                                     spg_star_taus=spg_star_taus, map_stage=map_stage, map_sink=map_sink,
                                     baselines=True)
    metrics["run"] = str(run)
    if out is not None:
        write_outputs(out, metrics, rows, curves)
    if export_coco is not None:
        # A --limit Subset keeps the first images, so positions in it are positions in the split.
        records = getattr(report, "dataset", report).records
        exports.write_coco_detections(rows, [record.image_id for record in records], export_coco)
    return json_ready(metrics)


def _maps_from_folder(folder, dataset, limit: int | None = None):
    from spg_core.data.arrays import read_map
    from spg_core.exports import map_path

    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    for index in range(count):
        sample = dataset.load_sample(index, image=False)  # the annotation: no image is decoded
        if sample is None:
            continue
        path = map_path(folder, sample.image_id)
        if not path.is_file():
            raise FileNotFoundError(f"no map for image {sample.image_id!r}: expected {path}")
        yield sample, read_map(path)


def map_folder_inputs(folder, dataset, limit: int | None = None) -> tuple[dict, list]:
    """``(gt, stream)`` for :func:`evaluate_maps` / :func:`score_maps_split` from a folder of
    ``<image_id>.npy`` maps and a dataset's annotations (its first ``limit`` images; no image is
    read): what ``evaluate-maps`` scores, and the app's maps-folder model."""
    gt, stream = {}, []
    for sample, score_map in _maps_from_folder(folder, dataset, limit):
        gt[sample.image_id] = (sample.boxes, sample.size, sample.mask, sample.label)
        stream.append((sample.image_id, score_map))
    return gt, stream


def evaluate_map_folder(maps, dataset, protocol: str = "wsolevaluation", cam_curve_interval: float = 0.01, out=None,
                        threshold_maps=None, threshold_dataset=None, tau=None, export_coco=None,
                        iou_thresholds=None, box_rule: str | None = None) -> dict:
    """``python -m spg_core evaluate-maps``: score ``<maps>/<image_id>.npy`` against a dataset's
    annotations (no model, no image read). A held-out split's maps + dataset choose τ for the
    Loc metrics. ``export_coco``: a file for the boxes as COCO detections. ``iou_thresholds`` /
    ``box_rule``: as :func:`evaluate_maps` (``--iou-thresholds``, ``--box-rule``)."""
    collect = map_folder_inputs
    workers = min(4, os.cpu_count() or 1)
    threshold_curves = None
    if (threshold_maps is None) != (threshold_dataset is None):
        raise ValueError("give both threshold_maps and threshold_dataset (the held-out split's maps and annotations)")
    held_out = None
    if threshold_maps is not None:
        gt, stream = collect(threshold_maps, threshold_dataset)
        held_out = score_maps_split(stream, gt, protocol, cam_curve_interval,
                                    split=_dataset_split(threshold_dataset, "threshold"),
                                    workers=workers, progress=True, iou_thresholds=iou_thresholds,
                                    box_rule=box_rule, baselines=True)
        threshold_curves = held_out.curves()
    gt, stream = collect(maps, dataset)
    metrics, rows, curves = evaluate_maps(stream, gt, protocol, cam_curve_interval,
                                          split=_dataset_split(dataset, "report"), tau=tau,
                                          threshold_curves=threshold_curves, workers=workers, progress=True,
                                          iou_thresholds=iou_thresholds, box_rule=box_rule, baselines=True,
                                          threshold_baselines=None if held_out is None else held_out.baselines)
    if out is not None:
        write_outputs(out, metrics, rows, curves)
    if export_coco is not None:
        from spg_core.exports import write_coco_detections

        write_coco_detections(rows, [record.image_id for record in dataset.records], export_coco)
    return json_ready(metrics)


def own_benchmark_metrics(run, map_stage: str = "attention", synthetic_overrides: dict | None = None,
                          device="cpu", progress: bool = False) -> dict:
    """A synthetic-benchmark run scored on its own generator's test split, both protocols:
    ``{"paper": ... (τ chosen on val), "wsolevaluation": ...}``. ``synthetic_overrides`` changes
    generator settings (e.g. an unseen part position or clutter level). What the shipped runs'
    metrics.json, the results table and its reproduction test all call."""
    from spg_core.data.settings import DataSettings
    from spg_core.runs import load_run

    model, config, _ = load_run(run, device=device)
    if config.format != "synthetic":
        raise ValueError(f"run {run} was trained on format {config.format!r}; use evaluate_run with its data")
    settings = DataSettings.from_config(config).with_synthetic(**(synthetic_overrides or {}))
    val, test = (settings.dataset(split) for split in ("val", "test"))
    paper, _, _ = evaluate(model, test, device=device, protocol="paper", threshold_dataset=val, progress=progress,
                           map_stage=map_stage, baselines=True)
    fair, _, _ = evaluate(model, test, device=device, protocol="wsolevaluation", progress=progress,
                          map_stage=map_stage, baselines=True)
    return json_ready({"paper": paper, "wsolevaluation": fair, "map_stage": map_stage,
                        "synthetic": settings.synthetic})
