"""Boxes from localisation maps: IoU, the paper's box rule, and the wsolevaluation contour rule.

Two box rules live here, because the two protocols the project reports differ in exactly this:

* **Paper rule** (SPG §4, after CAM): min-max normalise the map, keep the pixels ``>= tau``,
  take the tight box of the largest 8-connected component (:func:`largest_component_box`).
* **WE rule** (clovaai/wsolevaluation, "WE"): quantise the min-max map to ``uint8(map*255)``,
  keep the pixels ``> int(tau * max)``, run ``cv2.findContours(RETR_TREE)`` and turn each
  contour's ``cv2.boundingRect`` into ``(x, y, min(x+w, W-1), min(y+h, H-1))``
  (:func:`wsol_boxes`). The ``x+w`` end is one pixel past the object, which is why a perfect
  rectangle map scores IoU ~0.98 there; it is reproduced on purpose so numbers compare with WE.

:func:`wsol_sweep` evaluates the WE rule at every τ of a grid and gives results identical to
calling :func:`wsol_boxes` once per τ (:func:`wsol_best_iou_naive`), far faster; see its
docstring for why that is exact.

Box convention everywhere: integer ``(x0, y0, x1, y1)``, 0-based, *inclusive*, so a box's area
is ``(x1 - x0 + 1) * (y1 - y0 + 1)`` (the rule of WE's ``calculate_multiple_iou``).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "iou",
    "minmax_numpy",
    "component_boxes",
    "largest_component_box",
    "largest_component_sweep",
    "quantize_scoremap",
    "wsol_threshold",
    "wsol_boxes",
    "WsolSweep",
    "wsol_sweep",
    "wsol_sweep_many",
    "wsol_best_iou_naive",
]

EMPTY_BOX = (0, 0, 0, 0)  # WE's answer when no pixel survives the threshold
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


# ----------------------------------------------------------------------------- IoU
def _box_array(boxes, name: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(boxes)
    single = array.ndim == 1
    array = np.atleast_2d(array).astype(np.int64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must be 4 numbers (x0, y0, x1, y1) or an N×4 array; got shape {np.shape(boxes)}")
    bad = (array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1])
    if bad.any():
        raise ValueError(f"{name} {array[bad][0].tolist()} has x1 < x0 or y1 < y0; boxes are inclusive "
                         f"(x0, y0, x1, y1) with x1 >= x0 and y1 >= y0 — swap the corners")
    return array, single


def iou(box, boxes) -> np.ndarray | float:
    """Intersection over union with inclusive pixel coordinates (area = (x1-x0+1)(y1-y0+1)).

    ``box`` N×4 (or one box) against ``boxes`` M×4 (or one box) -> N×M (or M, or a float).
    Coordinates are integers; floats are truncated like WE's ``int()``.
    """
    a, a_single = _box_array(box, "box")
    b, b_single = _box_array(boxes, "boxes")
    a, b = a[:, None, :], b[None, :, :]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    out = inter / (area_a + area_b - inter)  # > 0: valid inclusive boxes have area >= 1
    if a_single and b_single:
        return float(out[0, 0])
    if a_single:
        return out[0]
    if b_single:
        return out[:, 0]
    return out


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """iou() without validation, for boxes this module produced itself."""
    a, b = a[:, None, :].astype(np.int64), b[None, :, :].astype(np.int64)
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


# ----------------------------------------------------------------------------- normalisation
def minmax_numpy(score_map) -> np.ndarray:
    """Min-max normalise a 2-D map to [0, 1] in float64.

    A constant map, or one with any NaN/inf, gives zeros (WE's ``normalize_scoremap`` does this
    for NaN and constant maps; inf is treated the same because inf/inf would put NaN back in).
    The arithmetic is WE's: subtract the min, then divide by the max of the result.
    """
    array = np.array(score_map, dtype=np.float64)  # a copy: never modify the caller's map
    if array.ndim != 2:
        raise ValueError(f"score map must be 2-D (H×W); got shape {array.shape}")
    if array.size == 0 or not np.isfinite(array).all() or array.min() == array.max():
        return np.zeros_like(array)
    array -= array.min()
    array /= array.max()
    return array


# ----------------------------------------------------------------------------- paper rule
def _component_boxes_normalized(normalized: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    labels, count = ndimage.label(normalized >= tau, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    boxes = np.array([[s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1] for s in slices], dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")  # ties: the component met first in raster order
    return boxes[order], sizes[order]


def component_boxes(score_map, tau: float) -> np.ndarray:
    """Tight boxes of all 8-connected components of ``minmax(map) >= tau``, largest first.

    Size is the pixel count; equal sizes keep raster order (the component whose first pixel
    comes first). Returns a K×4 int array (K = 0 when nothing survives).
    """
    return _component_boxes_normalized(minmax_numpy(score_map), float(tau))[0]


def largest_component_box(score_map, tau: float) -> np.ndarray:
    """The paper's box (SPG §4): min-max normalise, keep pixels ``>= tau`` (inclusive, so
    ``tau=0`` keeps the whole image), take the tight box of the largest 8-connected component.

    Returns ``(x0, y0, x1, y1)`` inclusive ints; ``(0, 0, 0, 0)`` when no pixel survives.
    A map that is exactly 1 on a rectangle and 0 elsewhere gives that rectangle (IoU 1.0).
    """
    boxes = component_boxes(score_map, tau)
    return boxes[0] if len(boxes) else np.array(EMPTY_BOX, dtype=np.int64)


def largest_component_sweep(score_map, gt_boxes, taus) -> tuple[np.ndarray, np.ndarray]:
    """Paper-rule box at every τ: returns (boxes T×4, best IoU over ``gt_boxes`` per τ).

    τ values that keep exactly the same pixels share one labelling.
    """
    normalized = minmax_numpy(score_map)
    taus = np.asarray(taus, dtype=np.float64)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    values = np.unique(normalized)
    # ">= tau" keeps the same pixels for every tau between two consecutive map values.
    first_kept = np.searchsorted(values, taus, side="left")
    out_boxes = np.zeros((len(taus), 4), dtype=np.int64)
    for position in np.unique(first_kept):
        chosen = first_kept == position
        if position < len(values):
            boxes, _ = _component_boxes_normalized(normalized, values[position])
            out_boxes[chosen] = boxes[0]
    ious = _iou_matrix(out_boxes, gt).max(axis=1) if len(gt) else np.zeros(len(taus))
    return out_boxes, ious


# ----------------------------------------------------------------------------- WE rule, one τ
def quantize_scoremap(score_map) -> np.ndarray:
    """WE's quantisation: ``(map * 255).astype(uint8)`` of a float64 map in [0, 1].

    WE requires float64 maps (its ``check_scoremap_validity``); the product is computed in
    float64 here too, because float32 rounding would move some pixels to another level.
    """
    array = np.asarray(score_map, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"score map must be 2-D (H×W); got shape {array.shape}")
    if array.size:
        low, high = array.min(), array.max()  # NaN and inf show up in the extremes
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("score map contains NaN or inf; normalise it with minmax_numpy "
                             "(which maps such maps to zeros)")
        if low < 0 or high > 1:
            raise ValueError(f"score map must lie in [0, 1] (min {low:.4g}, max {high:.4g}); "
                             "normalise it with minmax_numpy first")
    return (array * 255).astype(np.uint8)


def wsol_threshold(max_value: int, tau: float) -> int:
    """WE's integer threshold ``int(tau * max(uint8 map))``; pixels strictly above it are kept."""
    return int(float(tau) * float(max_value))


def _thresholds(max_value: int, taus: np.ndarray) -> np.ndarray:
    # Vectorised int(tau * max): the same float64 product, truncated toward zero (taus >= 0).
    return (np.asarray(taus, dtype=np.float64) * float(max_value)).astype(np.int64)


def _find_contours(binary: np.ndarray):
    # [-2] is the contour list in OpenCV 3 (image, contours, hierarchy) and >= 4 (contours, hierarchy).
    found = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2], found[-1]


def _wsol_boxes_uint8(quantized: np.ndarray, tau: float, multi_contour: bool) -> np.ndarray:
    height, width = quantized.shape
    threshold = int(tau * np.max(quantized))  # WE: float64 * uint8, truncated
    # THRESH_TOZERO keeps pixels > threshold, as WE; findContours only sees nonzero vs zero.
    _, thresholded = cv2.threshold(quantized, threshold, 255, cv2.THRESH_TOZERO)
    contours, _ = _find_contours(thresholded)
    if len(contours) == 0:
        return np.array([EMPTY_BOX], dtype=np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]  # first of the largest, in OpenCV's order
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.array(boxes, dtype=np.int64)


def wsol_boxes(score_map, tau: float, multi_contour: bool = False) -> np.ndarray:
    """WE's boxes of a min-max map (already resized, e.g. to 224×224) at one τ.

    ``multi_contour=False`` (MaxBoxAcc v1): the box of the contour with the largest
    ``cv2.contourArea`` -> 1×4. ``True`` (MaxBoxAccV2): the boxes of every contour that
    ``RETR_TREE`` returns, hole boundaries included -> K×4. No contour -> ``[[0, 0, 0, 0]]``.
    """
    return _wsol_boxes_uint8(quantize_scoremap(score_map), float(tau), bool(multi_contour))


def wsol_best_iou_naive(score_map, gt_boxes, taus, multi_contour: bool) -> np.ndarray:
    """Reference sweep: one ``cv2.findContours`` per τ, exactly as WE loops.

    Returns the best IoU over (boxes × ``gt_boxes``) at each τ. :func:`wsol_sweep` must agree
    with this to the last bit; the tests and benchmarks/bench_eval.py check that.
    """
    quantized = quantize_scoremap(score_map)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    return np.array([_iou_matrix(_wsol_boxes_uint8(quantized, float(tau), multi_contour), gt).max()
                     for tau in np.asarray(taus, dtype=np.float64)])


# ----------------------------------------------------------------------------- WE rule, all τ
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
        contours, hierarchy = _find_contours(binary)
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
            self._windows = _window_stats(self.quantized)
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
                area2 = np.stack([_area2_from_windows(smallest[y0:y1, x0:x1], second[y0:y1, x0:x1], thresholds)
                                  for x0, y0, x1, y1 in boxes], axis=1)
            else:
                # Overlapping boxes: tell the components apart by labelling the rectangle that
                # holds them all (each lies wholly inside its own box, so stays connected).
                ux0, uy0 = boxes[:, 0].min(), boxes[:, 1].min()
                ux1, uy1 = boxes[:, 2].max(), boxes[:, 3].max()
                labels, _ = ndimage.label(self.quantized[uy0:uy1 + 1, ux0:ux1 + 1] > base, structure=_EIGHT_CONNECTED)
                crops = []
                for (x0, y0, x1, y1), (sx, sy) in zip(boxes, seeds):
                    region = labels[y0 - uy0:y1 - uy0 + 1, x0 - ux0:x1 - ux0 + 1]
                    own = labels[sy - uy0, sx - ux0]
                    crops.append(np.where(region == own, self.quantized[y0:y1 + 1, x0:x1 + 1], 0))
                tight = np.stack([_tight_boxes(crop, box[:2], thresholds) for crop, box in zip(crops, boxes)], axis=1)
                area2 = np.stack([_area2_from_windows(*_window_stats(crop), thresholds) for crop in crops], axis=1)
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

        breaks, pits = _vanishing_levels(self.normalized, self.quantized)
        euler = _euler_numbers(self.quantized)
        if len(pits) <= 16:
            holed = _hole_thresholds(self.quantized, pits)
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


def _vanishing_levels(normalized: np.ndarray, quantized: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds at which a component can vanish, and the "pits" every hole must contain.

    Order pixels by (float value, pixel index). Because ``quantized = uint8(255·value)`` is
    monotone in the value, this order refines the uint8 levels, so every component of
    ``quantized > t`` has a unique top pixel: a strict 8-neighbourhood maximum of the order,
    with level > t. A component vanishes going from t-1 to t only if its top pixel has level t,
    so the levels of those maxima are the only thresholds where the count of components can
    drop. Dually, a hole (a 4-connected background region away from the border) contains a
    strict 4-neighbourhood minimum of the order (float value, distance to the image border,
    pixel index), whose level is <= t: a "pit" (flat indices returned). With the border
    distance as tie-break, flat regions hold no such minimum: only real pits in the map count.
    """
    height, width = quantized.shape
    flat = normalized.ravel()
    offsets8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]

    # Maxima: first the pixels not below any neighbour (a separable 3×3 max of the float map),
    # then the exact (value, index) comparison on those few.
    # float32 keeps every candidate (rounding is monotone, so >= survives) at half the traffic.
    coarse = normalized.astype(np.float32)
    padded = np.full((height + 2, width + 2), -np.inf, dtype=np.float32)
    padded[1:-1, 1:-1] = coarse
    rows = np.maximum(np.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    block_max = np.maximum(np.maximum(rows[:-2], rows[1:-1]), rows[2:])
    candidates = np.flatnonzero((coarse >= block_max) & (quantized > 0))
    y, x = np.divmod(candidates, width)
    value = flat[candidates]
    strict = np.ones(len(candidates), dtype=bool)
    for dy, dx in offsets8:
        ny, nx = y + dy, x + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        other = np.where(inside, ny * width + nx, 0)
        other_value = flat[other]
        higher = (other_value > value) | ((other_value == value) & (other > candidates))
        strict &= ~(inside & higher)
    breaks = np.unique(quantized.ravel()[candidates[strict]])

    pits = np.zeros(0, dtype=np.int64)
    if height > 2 and width > 2:
        inner = coarse[1:-1, 1:-1]
        lowest = np.minimum(np.minimum(coarse[:-2, 1:-1], coarse[2:, 1:-1]),
                            np.minimum(coarse[1:-1, :-2], coarse[1:-1, 2:]))
        borderward, distance = _borderward(height, width)
        # A minimum of the order must be strictly below its border-ward neighbour (equal value
        # would lose the tie on distance) and not above any neighbour; in float32 both become
        # "<=", a superset that the exact float64 test below trims.
        positions = np.flatnonzero(((inner <= lowest) & (inner <= coarse.ravel()[borderward])).ravel())
        if len(positions):
            cy, cx = np.divmod(positions, width - 2)
            cy, cx = cy + 1, cx + 1
            own = cy * width + cx
            strict = np.ones(len(own), dtype=bool)
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                other = (cy + dy) * width + (cx + dx)
                lower = ((flat[other] < flat[own])
                         | ((flat[other] == flat[own])
                            & ((distance[other] < distance[own])
                               | ((distance[other] == distance[own]) & (other < own)))))
                strict &= ~lower
            pits = own[strict]
    return breaks, pits


def _hole_thresholds(quantized: np.ndarray, pits: np.ndarray) -> np.ndarray:
    """(256,) bool: the thresholds t at which ``quantized > t`` has at least one hole.

    A hole at t contains a pit q (level <= t) whose 4-connected background region at t does
    not reach the image border. That region only grows with t, so each pit holes the image
    exactly on [level(q), escape(q)), where escape(q) is the first t at which the region
    reaches the border: found by bisection, each step one ``cv2.floodFill`` from q.
    """
    height, width = quantized.shape
    max_value = int(quantized.max())
    holes = np.zeros(256, dtype=bool)

    def escapes(position: int, t: int) -> bool:
        background = (quantized <= t).view(np.uint8).copy()
        y, x = divmod(int(position), width)
        _, _, _, (rx, ry, rw, rh) = cv2.floodFill(background, None, (x, y), 2, flags=4)
        return rx == 0 or ry == 0 or rx + rw == width or ry + rh == height

    for position in pits:
        level = int(quantized.ravel()[position])
        if level >= max_value or escapes(position, level):
            continue
        low, high = level, max_value  # everything is background at max_value: escaped there
        while high - low > 1:  # invariant: not escaped at low, escaped at high
            middle = (low + high) // 2
            if escapes(position, middle):
                high = middle
            else:
                low = middle
        holes[level:high] = True
    return holes


_BORDERWARD_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _borderward(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For the inner pixels, the flat index of the 4-neighbour one step nearer the image
    border ((H-2)×(W-2)), and every pixel's distance to the border (flat)."""
    cached = _BORDERWARD_CACHE.get((height, width))
    if cached is None:
        y, x = np.mgrid[0:height, 0:width]
        steps = np.stack([y, height - 1 - y, x, width - 1 - x])  # up, down, left, right
        distance = steps.min(axis=0).ravel()
        direction = steps[:, 1:-1, 1:-1].argmin(axis=0)
        move_y = np.array([-1, 1, 0, 0])[direction]
        move_x = np.array([0, 0, -1, 1])[direction]
        borderward = (y[1:-1, 1:-1] + move_y) * width + (x[1:-1, 1:-1] + move_x)
        cached = (borderward, distance)
        if len(_BORDERWARD_CACHE) < 16:
            _BORDERWARD_CACHE[(height, width)] = cached
    return cached


def _euler_numbers(quantized: np.ndarray) -> np.ndarray:
    """Euler number (8-connected components minus 4-connected holes) of ``quantized > t`` for
    every t in 0..255, from 2×2 window counts (Gray's bit-quads: E8 = (Q1 - Q3 - 2·QD) / 4).

    A window whose values sort to s1 <= s2 <= s3 <= s4 holds 3 foreground pixels for t in
    [s1, s2) and 1 for t in [s3, s4); its two largest are a diagonal pair (QD) on
    [max(b, c), min(a, d)) or [max(a, d), min(b, c)) when that interval is not empty. Windows
    hanging over the image edge see background outside, handled apart from the interior.
    """
    q = quantized
    height, width = q.shape
    diff = np.zeros(257, dtype=np.int64)  # diff[v]: change of 4·E8 at threshold v

    def add(values: np.ndarray, weight: int) -> None:
        diff[:] += weight * np.bincount(values.ravel(), minlength=257)[:257]

    if height > 1 and width > 1:
        a, b, c, d = q[:-1, :-1], q[:-1, 1:], q[1:, :-1], q[1:, 1:]
        lo_ab, hi_ab = np.minimum(a, b), np.maximum(a, b)
        lo_cd, hi_cd = np.minimum(c, d), np.maximum(c, d)
        mid_low, mid_high = np.maximum(lo_ab, lo_cd), np.minimum(hi_ab, hi_cd)
        add(np.minimum(lo_ab, lo_cd), -1)  # Q3 starts at s1
        add(np.minimum(mid_low, mid_high), +1)  # ... ends at s2
        add(np.maximum(mid_low, mid_high), +1)  # Q1 starts at s3
        add(np.maximum(hi_ab, hi_cd), -1)  # ... ends at s4
        for low, high in ((np.maximum(b, c), np.minimum(a, d)), (np.maximum(a, d), np.minimum(b, c))):
            keep = high > low
            add(low[keep], -2)
            add(high[keep], +2)
    # Edge windows hold two adjacent real pixels (Q1 on [min, max)); corner windows one (Q1 on [0, v)).
    for line in (q[0], q[-1], q[:, 0], q[:, -1]):
        if len(line) > 1:
            add(np.minimum(line[:-1], line[1:]), +1)
            add(np.maximum(line[:-1], line[1:]), -1)
    corners = np.array([q[0, 0], q[0, -1], q[-1, 0], q[-1, -1]])
    diff[0] += 4
    add(corners, -1)
    return np.cumsum(diff[:256]) // 4


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


def _window_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and second smallest value of every 2×2 window ((H-1)×(W-1) each)."""
    a, b, c, d = values[:-1, :-1], values[:-1, 1:], values[1:, :-1], values[1:, 1:]
    lo_ab, hi_ab = np.minimum(a, b), np.maximum(a, b)
    lo_cd, hi_cd = np.minimum(c, d), np.maximum(c, d)
    return np.minimum(lo_ab, lo_cd), np.minimum(np.maximum(lo_ab, lo_cd), np.minimum(hi_ab, hi_cd))


def _area2_from_windows(smallest: np.ndarray, second: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """2×contourArea of ``{values > t}`` for each threshold, from the window statistics of the
    windows lying wholly inside one component's box (or masked crop).

    Valid when that set is one 8-connected component without holes: its outer contour then
    passes through the centres of its border pixels and encloses exactly the 2×2 windows whose
    four pixels are in (area 1) plus half of those with three (area 1/2), so 2×area =
    #{windows with smallest value > t} + #{windows with second smallest value > t}. Windows
    that cross the box's edge hold at most two of its pixels and never count.
    """
    histogram = np.bincount(smallest.ravel(), minlength=256) + np.bincount(second.ravel(), minlength=256)
    at_least = np.cumsum(histogram[::-1])[::-1]  # at_least[v] = #values >= v
    return np.append(at_least, 0)[np.asarray(thresholds) + 1]  # values > t  <=>  values >= t + 1


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
       levels of their top pixels (``_vanishing_levels``); between two such levels they only
       shrink or split, so the component count C(t) can only grow. Where C is the same at both
       ends of a run of thresholds, every component K at the first one stays exactly one
       component ``K ∩ {> t}`` along the run, and its tight box at every t comes from running
       row/column maxima of K's pixels (K = "pixels inside its box" when the boxes are
       disjoint, else told apart by one labelling). C(t) is read off the Euler number
       (components minus holes, from 2×2 window counts) below the lowest level that can hold a
       hole; above it, runs are bisected with direct counts.
    4. Thresholds with holes (C minus Euler number > 0) take their contours directly (hole
       contours are boxes too, and they change the outer areas); so do thresholds where two
       largest outer contours tie on area, because OpenCV's list order then picks v1. Other
       v1 areas use the 2×2-window formula in ``_area2_from_windows``, which equals
       ``cv2.contourArea`` for a hole-free component.

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
    thresholds = _thresholds(max_value, taus)
    needed, level_index = np.unique(thresholds, return_inverse=True)
    count = len(needed)
    v1_box = np.zeros((count, 4), dtype=np.int64)
    if max_value == 0:  # nothing is ever above the threshold: WE's empty box everywhere
        empty_iou = _iou_matrix(v1_box, gt).max(axis=1)
        return WsolSweep(level_index.ravel().astype(np.int16), empty_iou, v1_box.astype(np.int32), empty_iou.copy(),
                         v1_box.astype(np.int32))
    v1_raw, owner, all_raw = _ContourLevels(normalized, quantized).solve(needed)
    v1_box = _we_boxes(v1_raw, height, width)
    v1_iou = _iou_matrix(v1_box, gt).max(axis=1)
    all_boxes = _we_boxes(all_raw, height, width)
    all_ious = _iou_matrix(all_boxes, gt).max(axis=1)
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
