"""Boxes and IoUs of one localisation map at every τ of a grid, for both protocols' box rules.

* :func:`largest_component_sweep`: the paper rule (:func:`spg_core.boxes.largest_component_box`)
  at every τ, one labelling per distinct set of kept pixels.
* :func:`wsol_sweep`: the WE rule (:func:`spg_core.boxes.wsol_boxes`) at every τ, both the
  largest contour (MaxBoxAcc) and the best of all contours (MaxBoxAccV2). Its results are
  identical to calling :func:`spg_core.boxes.wsol_boxes` once per τ
  (:func:`wsol_best_iou_naive`, WE's own loop), far faster; its docstring says why that is
  exact. :func:`wsol_sweep_many` spreads many maps over processes.
* :func:`best_iou_sweep`: the IoU at every τ under any of the three rules (:data:`BOX_RULES`),
  on a map normalised in any way (:mod:`spg_core.protocol_options`).

The facts about the threshold sets that the shortcut relies on (where components vanish, where
holes are, Euler numbers, hole-free contour areas) are in :mod:`spg_core.level_sets`.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from spg_core.boxes import (
    normalized_component_boxes,
    find_contours,
    uint8_levels,
    wsol_boxes_quantized,
    iou_matrix,
    minmax_numpy,
    quantize_scoremap,
)
from spg_core.level_sets import area2_from_windows, euler_numbers, hole_thresholds, vanishing_levels, window_stats

__all__ = [
    "largest_component_sweep",
    "largest_component_boxes",
    "BOX_RULES",
    "best_iou_sweep",
    "WsolSweep",
    "wsol_sweep",
    "wsol_sweep_many",
    "wsol_best_iou_naive",
]


# ----------------------------------------------------------------------------- paper rule, all τ
def largest_component_sweep(score_map, gt_boxes, taus) -> tuple[np.ndarray, np.ndarray]:
    """Paper-rule box at every τ: returns (boxes T×4, best IoU over ``gt_boxes`` per τ).

    τ values that keep exactly the same pixels share one labelling.
    """
    out_boxes = largest_component_boxes(minmax_numpy(score_map), taus)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    ious = iou_matrix(out_boxes, gt).max(axis=1) if len(gt) else np.zeros(len(out_boxes))
    return out_boxes, ious


def largest_component_boxes(normalized, taus) -> np.ndarray:
    """The paper rule's box (T×4) at every τ of an already normalised map in [0, 1] (min-max, or
    any other normalisation: it is not redone here); ``(0, 0, 0, 0)`` where no pixel is kept."""
    normalized = np.asarray(normalized, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    values = np.unique(normalized)
    # ">= tau" keeps the same pixels for every tau between two consecutive map values.
    first_kept = np.searchsorted(values, taus, side="left")
    out_boxes = np.zeros((len(taus), 4), dtype=np.int64)
    for position in np.unique(first_kept):
        chosen = first_kept == position
        if position < len(values):
            boxes, _ = normalized_component_boxes(normalized, values[position])
            out_boxes[chosen] = boxes[0]
    return out_boxes


# The box rules, by what they keep at one τ: the paper's largest 8-connected component of
# ``map >= τ``; WE's largest contour (MaxBoxAcc) or best of all contours (MaxBoxAccV2) of
# ``uint8 map > int(τ·max)``.
BOX_RULES = ("largest_component", "largest_contour", "all_contours")


def best_iou_sweep(normalized, gt_boxes, taus, box_rule: str) -> np.ndarray:
    """(T,) IoU of a box rule's answer with its best-matching box of ``gt_boxes`` at every τ, on
    a normalised map (the rule's own grid: the paper's, or WE's 224). "all_contours" takes the
    best over every contour box too, as MaxBoxAccV2."""
    if box_rule not in BOX_RULES:
        raise ValueError(f"box_rule={box_rule!r} is unknown; choose one of {BOX_RULES}")
    if box_rule == "largest_component":
        gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
        return iou_matrix(largest_component_boxes(normalized, taus), gt).max(axis=1)
    sweep = wsol_sweep(normalized, gt_boxes, taus)
    return sweep.iou_v1 if box_rule == "largest_contour" else sweep.iou_v2


# ----------------------------------------------------------------------------- WE rule, all τ
def wsol_best_iou_naive(score_map, gt_boxes, taus, multi_contour: bool) -> np.ndarray:
    """Reference sweep: one ``cv2.findContours`` per τ, exactly as WE loops.

    Returns the best IoU over (boxes × ``gt_boxes``) at each τ. :func:`wsol_sweep` must agree
    with this to the last bit; the tests and benchmarks/bench_eval.py check that.
    """
    quantized = quantize_scoremap(score_map)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    return np.array([iou_matrix(wsol_boxes_quantized(quantized, float(tau), multi_contour), gt).max()
                     for tau in np.asarray(taus, dtype=np.float64)])


@dataclass(frozen=True)
class WsolSweep:
    """WE-rule results of one map at every τ of a grid, stored once per distinct threshold.

    ``level_index[i]`` is the row of the per-threshold arrays that τ_i uses. ``v1_*``: the
    largest contour's box (MaxBoxAcc); ``v2_*``: the contour box that matches a GT box best
    (MaxBoxAccV2, best over all contours). IoUs are the best over the GT boxes.
    """

    level_index: np.ndarray  # (T,) int16
    v1_iou: np.ndarray  # (L,) float64
    v1_box: np.ndarray  # (L, 4) int32, WE convention (x, y, min(x+w, W-1), min(y+h, H-1))
    v2_iou: np.ndarray  # (L,) float64
    v2_box: np.ndarray  # (L, 4) int32

    @property
    def iou_v1(self) -> np.ndarray:
        """(T,) best IoU of the largest-contour box at each τ."""
        return self.v1_iou[self.level_index]

    @property
    def iou_v2(self) -> np.ndarray:
        """(T,) best IoU over all contour boxes at each τ."""
        return self.v2_iou[self.level_index]

    def box_v1(self, tau_index: int) -> np.ndarray:
        return self.v1_box[self.level_index[tau_index]]

    def box_v2(self, tau_index: int) -> np.ndarray:
        return self.v2_box[self.level_index[tau_index]]


class _ContourLevels:
    """Contour boxes of ``quantized > t`` for many thresholds t of one map, computed exactly.

    Direct evaluation (``direct``) runs ``cv2.findContours`` on the crop of the foreground's
    bounding box: every contour lies inside it, the background around it is connected to the
    image border (so holes stay holes), and raster order inside the crop is raster order in the
    image, so the contour list is WE's, shifted. ``solve`` adds the shortcut described in
    :func:`wsol_sweep`.
    """

    def __init__(self, normalized: np.ndarray, quantized: np.ndarray):
        self.normalized = normalized
        self.quantized = quantized
        self.height, self.width = quantized.shape
        self.cache: dict[int, tuple] = {}
        # Foreground bounding box of every threshold from running maxima of rows/columns.
        levels = np.arange(256)
        row_max, col_max = quantized.max(axis=1), quantized.max(axis=0)
        self.top = np.searchsorted(np.maximum.accumulate(row_max), levels, side="right")
        self.bottom = self.height - np.searchsorted(np.maximum.accumulate(row_max[::-1]), levels, side="right")
        self.left = np.searchsorted(np.maximum.accumulate(col_max), levels, side="right")
        self.right = self.width - np.searchsorted(np.maximum.accumulate(col_max[::-1]), levels, side="right")
        self._windows: tuple[np.ndarray, np.ndarray] | None = None

    # -- exact contours at one threshold
    def direct(self, t: int) -> tuple:
        """(raw boxes K×4 tight inclusive, 2×contourArea K, outer K bool, v1 index, first points
        K×2 (x, y)) at threshold t."""
        hit = self.cache.get(t)
        if hit is not None:
            return hit
        y0, y1, x0, x1 = self.top[t], self.bottom[t], self.left[t], self.right[t]
        binary = (self.quantized[y0:y1, x0:x1] > t).view(np.uint8)
        contours, hierarchy = find_contours(binary)
        count = len(contours)
        parents = hierarchy[0, :, 3]
        if count <= 16:
            # Few contours (the usual case): OpenCV's own functions are cheaper than array work.
            raw = np.empty((count, 4), dtype=np.int64)
            area2 = np.empty(count, dtype=np.int64)
            seeds = np.empty((count, 2), dtype=np.int64)
            outer = np.empty(count, dtype=bool)
            for i, contour in enumerate(contours):
                x, y, w, h = cv2.boundingRect(contour)
                raw[i] = (x + x0, y + y0, x + w - 1 + x0, y + h - 1 + y0)
                area2[i] = int(round(2 * cv2.contourArea(contour)))  # half-integers: exact
                seeds[i] = contour[0, 0, 0] + x0, contour[0, 0, 1] + y0
                depth, node = 0, parents[i]
                while node >= 0:
                    depth, node = depth + 1, parents[node]
                outer[i] = depth % 2 == 0  # even depth in the contour tree: outer border, odd: hole
            result = (raw, area2, outer, int(np.argmax(area2)), seeds)
            self.cache[t] = result
            return result
        lengths = np.fromiter((len(c) for c in contours), dtype=np.int64, count=count)
        points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
        starts = np.zeros(count, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        xs, ys = points[:, 0], points[:, 1]
        raw = np.stack([np.minimum.reduceat(xs, starts) + x0, np.minimum.reduceat(ys, starts) + y0,
                        np.maximum.reduceat(xs, starts) + x0, np.maximum.reduceat(ys, starts) + y0], axis=1)
        # Shoelace on integer vertices is exact, so it equals cv2.contourArea bit for bit.
        following = np.arange(1, len(points) + 1)
        following[starts + lengths - 1] = starts
        area2 = np.abs(np.add.reduceat(xs * ys[following] - xs[following] * ys, starts))
        depth = np.zeros(count, dtype=np.int64)
        node = parents.copy()
        while (node >= 0).any():  # depth in the contour tree: even = outer border, odd = hole
            alive = node >= 0
            depth[alive] += 1
            node[alive] = parents[node[alive]]
        seeds = points[starts] + (x0, y0)  # a pixel of each contour (of its component, if outer)
        result = (raw, area2, depth % 2 == 0, int(np.argmax(area2)), seeds)  # argmax: first of the largest
        self.cache[t] = result
        return result

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        if self._windows is None:
            self._windows = window_stats(self.quantized)
        return self._windows

    # -- the shortcut
    def solve(self, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each needed threshold (sorted, unique): v1 raw box (L×4), and all contours' raw
        boxes as (owner row n, boxes n×4)."""
        count = len(needed)
        v1 = np.zeros((count, 4), dtype=np.int64)
        owners: list[np.ndarray] = []
        chunks: list[np.ndarray] = []

        def emit_direct(row: int) -> None:
            raw, _, _, best, _ = self.direct(int(needed[row]))
            v1[row] = raw[best]
            owners.append(np.full(len(raw), row))
            chunks.append(raw)

        def certified(first: int, last: int) -> None:
            """Rows first..last have the same components (no split, no vanishing)."""
            emit_direct(first)
            if last == first:
                return
            base = int(needed[first])
            raw, _, outer, _, seeds = self.direct(base)
            boxes, seeds = raw[outer], seeds[outer]
            rows = np.arange(first + 1, last + 1)
            thresholds = needed[rows]
            count_here = len(boxes)
            if count_here == 1:
                # One component: its box is the bounding box of all pixels > t, known already.
                tight = np.stack([self.left[thresholds], self.top[thresholds],
                                  self.right[thresholds] - 1, self.bottom[thresholds] - 1], axis=1)[:, None, :]
                area2 = None
            elif _pairwise_disjoint(boxes):
                # Each component is "pixels > base inside its box": no other one reaches in.
                tight = np.stack([_tight_boxes(self.quantized[y0:y1 + 1, x0:x1 + 1], (x0, y0), thresholds)
                                  for x0, y0, x1, y1 in boxes], axis=1)
                smallest, second = self.windows()
                area2 = np.stack([area2_from_windows(smallest[y0:y1, x0:x1], second[y0:y1, x0:x1], thresholds)
                                  for x0, y0, x1, y1 in boxes], axis=1)
            else:
                # Overlapping boxes: tell the components apart by labelling the rectangle that
                # holds them all (each lies wholly inside its own box, so stays connected). Any
                # 8-connected labelling gives the same partition; OpenCV's needs no SciPy import.
                ux0, uy0 = boxes[:, 0].min(), boxes[:, 1].min()
                ux1, uy1 = boxes[:, 2].max(), boxes[:, 3].max()
                inside = (self.quantized[uy0:uy1 + 1, ux0:ux1 + 1] > base).view(np.uint8)
                _, labels = cv2.connectedComponents(inside, connectivity=8)
                crops = []
                for (x0, y0, x1, y1), (sx, sy) in zip(boxes, seeds):
                    region = labels[y0 - uy0:y1 - uy0 + 1, x0 - ux0:x1 - ux0 + 1]
                    own = labels[sy - uy0, sx - ux0]
                    crops.append(np.where(region == own, self.quantized[y0:y1 + 1, x0:x1 + 1], 0))
                tight = np.stack([_tight_boxes(crop, box[:2], thresholds) for crop, box in zip(crops, boxes)], axis=1)
                area2 = np.stack([area2_from_windows(*window_stats(crop), thresholds) for crop in crops], axis=1)
            fallback = holed[thresholds] | ((count_here - euler[thresholds]) != 0)  # holes
            winner = np.zeros(len(rows), dtype=np.int64)
            if area2 is not None:
                largest = area2.max(axis=1)
                fallback |= (area2 == largest[:, None]).sum(axis=1) > 1  # a tie: OpenCV's order decides
                winner = area2.argmax(axis=1)
            good = np.flatnonzero(~fallback)
            v1[rows[good]] = tight[good, winner[good]]
            owners.append(np.repeat(rows[good], count_here))
            chunks.append(tight[good].reshape(-1, 4))
            for row in rows[fallback]:
                emit_direct(int(row))

        breaks, pits = vanishing_levels(self.normalized, self.quantized)
        euler = euler_numbers(self.quantized)
        if len(pits) <= 16:
            holed = hole_thresholds(self.quantized, pits)
        else:  # many pits (noise-like map): treat every threshold from the lowest one up as holed
            holed = np.arange(256) >= int(self.quantized.ravel()[pits].min())
        # Inside a segment no component vanishes, so the component count C(t) only grows with t.
        # Where there is no hole, C(t) is the Euler number itself, so consecutive hole-free
        # thresholds with equal Euler numbers have identical components (thresholds with holes
        # in between included: C cannot dip and come back). Thresholds with holes are evaluated
        # directly.
        segment = np.searchsorted(breaks, needed, side="right")
        known = ~holed[needed]
        run_key = np.where(known, segment * 1024 + euler[np.minimum(needed, 255)], -1)
        if len(np.unique(run_key[known])) > max(16, count // 4):
            for row in range(count):  # too many events (noise-like map): plain per-threshold contours
                emit_direct(row)
            return v1, np.concatenate(owners), np.concatenate(chunks)
        rows_known = np.flatnonzero(known)
        covered = np.zeros(count, dtype=bool)
        for run in np.split(rows_known, np.flatnonzero(np.diff(run_key[rows_known])) + 1):
            if len(run):
                certified(int(run[0]), int(run[-1]))  # the holed thresholds inside go direct
                covered[run[0]:run[-1] + 1] = True
        for row in np.flatnonzero(~covered):
            emit_direct(int(row))
        return v1, np.concatenate(owners), np.concatenate(chunks)


def _pairwise_disjoint(boxes: np.ndarray) -> bool:
    if len(boxes) < 2:
        return True
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    overlap = ((np.maximum(x0[:, None], x0[None]) <= np.minimum(x1[:, None], x1[None]))
               & (np.maximum(y0[:, None], y0[None]) <= np.minimum(y1[:, None], y1[None])))
    np.fill_diagonal(overlap, False)
    return not overlap.any()


def _tight_boxes(crop: np.ndarray, origin, thresholds: np.ndarray) -> np.ndarray:
    """Tight box of ``{crop > t}`` for each threshold, in image coordinates (``origin`` = the
    crop's (x0, y0))."""
    x0, y0 = int(origin[0]), int(origin[1])
    col_max, row_max = crop.max(axis=0), crop.max(axis=1)
    left = np.searchsorted(np.maximum.accumulate(col_max), thresholds, side="right")
    right = len(col_max) - 1 - np.searchsorted(np.maximum.accumulate(col_max[::-1]), thresholds, side="right")
    top = np.searchsorted(np.maximum.accumulate(row_max), thresholds, side="right")
    bottom = len(row_max) - 1 - np.searchsorted(np.maximum.accumulate(row_max[::-1]), thresholds, side="right")
    return np.stack([left + x0, top + y0, right + x0, bottom + y0], axis=1)


def _we_boxes(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Tight inclusive boxes -> WE's ``(x, y, min(x+w, W-1), min(y+h, H-1))``."""
    out = np.array(raw, dtype=np.int64, copy=True).reshape(-1, 4)
    out[:, 2] = np.minimum(out[:, 2] + 1, width - 1)
    out[:, 3] = np.minimum(out[:, 3] + 1, height - 1)
    return out


def wsol_sweep(score_map, gt_boxes, taus) -> WsolSweep:
    """WE-rule boxes and IoUs at every τ, identical to :func:`wsol_best_iou_naive`, much faster.

    ``score_map``: float map in [0, 1] (WE: bicubic-resized to 224 and min-max normalised);
    ``gt_boxes``: N×4 inclusive boxes in the same pixel grid; ``taus``: e.g.
    ``np.arange(0, 1, cam_curve_interval)``.

    Why it is exact:

    1. τ only acts through ``t = int(τ·max)`` and the pixels ``> t``: at most 255 distinct
       thresholds exist however fine the τ grid, each evaluated once and broadcast.
    2. Any threshold can be evaluated *directly*: ``cv2.findContours`` on the crop around the
       foreground gives WE's contour list, shifted (see ``_ContourLevels``).
    3. Most thresholds are derived instead. Components of ``{> t}`` can only vanish at the
       levels of their top pixels (:func:`spg_core.level_sets.vanishing_levels`); between two
       such levels they only shrink or split, so the component count C(t) can only grow. Where C is the same at both
       ends of a run of thresholds, every component K at the first one stays exactly one
       component ``K ∩ {> t}`` along the run, and its tight box at every t comes from running
       row/column maxima of K's pixels (K = "pixels inside its box" when the boxes are
       disjoint, else told apart by one labelling). C(t) is read off the Euler number
       (components minus holes, from 2×2 window counts) below the lowest level that can hold a
       hole; above it, runs are bisected with direct counts.
    4. Thresholds with holes (C minus Euler number > 0) take their contours directly (hole
       contours are boxes too, and they change the outer areas); so do thresholds where two
       largest outer contours tie on area, because OpenCV's list order then picks v1. Other
       v1 areas use the 2×2-window formula of :func:`spg_core.level_sets.area2_from_windows`,
       which equals ``cv2.contourArea`` for a hole-free component.

    Each map is independent; :func:`wsol_sweep_many` spreads maps over processes.
    """
    normalized = np.asarray(score_map, dtype=np.float64)
    quantized = quantize_scoremap(normalized)
    height, width = quantized.shape
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    if gt.shape[1:] != (4,) or len(gt) == 0:
        raise ValueError(f"gt_boxes must be an N×4 array with N >= 1 (inclusive x0, y0, x1, y1); got shape {gt.shape}")
    taus = np.asarray(taus, dtype=np.float64).ravel()
    if len(taus) == 0 or taus.min() < 0 or taus.max() >= 1:
        raise ValueError("taus must be a non-empty grid in [0, 1), e.g. np.arange(0, 1, 0.01)")
    max_value = int(quantized.max())
    thresholds = uint8_levels(max_value, taus)
    needed, level_index = np.unique(thresholds, return_inverse=True)
    count = len(needed)
    v1_box = np.zeros((count, 4), dtype=np.int64)
    if max_value == 0:  # nothing is ever above the threshold: WE's empty box everywhere
        empty_iou = iou_matrix(v1_box, gt).max(axis=1)
        return WsolSweep(level_index.ravel().astype(np.int16), empty_iou, v1_box.astype(np.int32), empty_iou.copy(),
                         v1_box.astype(np.int32))
    v1_raw, owner, all_raw = _ContourLevels(normalized, quantized).solve(needed)
    v1_box = _we_boxes(v1_raw, height, width)
    v1_iou = iou_matrix(v1_box, gt).max(axis=1)
    all_boxes = _we_boxes(all_raw, height, width)
    all_ious = iou_matrix(all_boxes, gt).max(axis=1)
    v2_iou = np.full(count, -np.inf)
    np.maximum.at(v2_iou, owner, all_ious)
    # The best-matching box of each threshold (any one reaching the maximum).
    hits = np.flatnonzero(all_ious == v2_iou[owner])
    v2_box = np.zeros((count, 4), dtype=np.int64)
    v2_box[owner[hits]] = all_boxes[hits]
    # Compact dtypes: results travel between processes in wsol_sweep_many.
    return WsolSweep(level_index.ravel().astype(np.int16), v1_iou, v1_box.astype(np.int32), v2_iou,
                     v2_box.astype(np.int32))


_SHARED_JOBS: tuple | None = None  # (maps, gt boxes, taus) inherited by forked workers


def _sweep_range(bounds: tuple[int, int]) -> list[WsolSweep]:
    maps, gts, taus = _SHARED_JOBS
    return [wsol_sweep(maps[i], gts[i], taus) for i in range(*bounds)]


def _sweep_jobs(jobs: list) -> list[WsolSweep]:
    return [wsol_sweep(*job) for job in jobs]


def wsol_sweep_many(score_maps: Iterable, gt_boxes: Sequence, taus, workers: int | None = None,
                    chunksize: int = 16) -> list[WsolSweep]:
    """:func:`wsol_sweep` over many maps, in ``workers`` processes (default: the CPU count, at
    most 8; 1 = in this process). Order is preserved. Where ``fork`` exists the workers inherit
    the maps instead of receiving pickled copies."""
    global _SHARED_JOBS
    import multiprocessing

    maps, gts = list(score_maps), list(gt_boxes)
    if len(maps) != len(gts):
        raise ValueError(f"{len(maps)} maps but {len(gts)} GT box sets; give one set per map")
    taus = np.asarray(taus, dtype=np.float64)
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    if workers <= 1 or len(maps) < 2 * chunksize:
        return [wsol_sweep(m, g, taus) for m, g in zip(maps, gts)]
    ranges = [(start, min(start + chunksize, len(maps))) for start in range(0, len(maps), chunksize)]
    if "fork" in multiprocessing.get_all_start_methods():
        _SHARED_JOBS = (maps, gts, taus)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_sweep_range, ranges))
        finally:
            _SHARED_JOBS = None
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_sweep_jobs, [[(maps[i], gts[i], taus) for i in range(*r)] for r in ranges]))
    return [result for part in parts for result in part]
