"""Boxes: IoU, resizing, and the boxes a localisation map gives at one τ under the two protocols' rules.

Two box rules live here, because the two protocols the project reports differ in exactly this:

* **Paper rule** (SPG §4, after CAM): min-max normalise the map, keep the pixels ``>= tau``,
  take the tight box of the largest 8-connected component (:func:`largest_component_box`).
* **WE rule** (clovaai/wsolevaluation, "WE"): quantise the min-max map to ``uint8(map*255)``,
  keep the pixels ``> int(tau * max)``, run ``cv2.findContours(RETR_TREE)`` and turn each
  contour's ``cv2.boundingRect`` into ``(x, y, min(x+w, W-1), min(y+h, H-1))``
  (:func:`wsol_boxes`). The ``x+w`` end is one pixel past the object, which is why a perfect
  rectangle map scores IoU ~0.98 there; it is reproduced on purpose so numbers compare with WE.

SPG*'s non-standard top-5 guesses use the paper rule at two thresholds, CAM's loose and tight
boxes (:func:`loose_tight_boxes`).

Both rules at every τ of a grid at once (the exact fast WE sweep included) are in
:mod:`spg_core.tau_sweep`.

Box convention everywhere: integer ``(x0, y0, x1, y1)``, 0-based, *inclusive*, so a box's area
is ``(x1 - x0 + 1) * (y1 - y0 + 1)`` (the rule of WE's ``calculate_multiple_iou``); every area
and IoU in the project comes from :func:`box_areas` and :func:`iou_matrix`.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "iou",
    "iou_matrix",
    "box_areas",
    "intersection_areas",
    "RESIZE_RULES",
    "resize_boxes",
    "minmax_numpy",
    "max_numpy",
    "fill_nonfinite",
    "NORMALIZATIONS",
    "normalize_numpy",
    "component_boxes",
    "normalized_component_boxes",
    "largest_component_box",
    "LOOSE_TIGHT_TAUS",
    "loose_tight_taus",
    "loose_tight_boxes",
    "quantize_scoremap",
    "wsol_threshold",
    "wsol_boxes",
    "wsol_boxes_quantized",
    "uint8_levels",
    "find_contours",
]

EMPTY_BOX = (0, 0, 0, 0)  # WE's answer when no pixel survives the threshold
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
RESIZE_RULES = ("span", "wsolevaluation")


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


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Pixel counts of inclusive integer boxes (``...×4`` -> ``...``): ``(x1-x0+1)(y1-y0+1)``."""
    return (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)


def intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels shared by each box of ``a`` (N×4) and each box of ``b`` (M×4) -> N×M, no validation."""
    a, b = a[:, None, :], b[None, :, :]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    return inter_w * inter_h


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The IoU kernel: N×4 against M×4 inclusive boxes -> N×M float64, without validation (for
    boxes a rule produced itself; :func:`iou` checks its input first). Coordinates are cast to
    int64, so floats are truncated like WE's ``int()``."""
    a, b = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
    inter = intersection_areas(a, b)
    return inter / (box_areas(a)[:, None] + box_areas(b)[None, :] - inter)  # > 0: valid boxes have area >= 1


def iou(box, boxes) -> np.ndarray | float:
    """Intersection over union with inclusive pixel coordinates (area = (x1-x0+1)(y1-y0+1)).

    ``box`` N×4 (or one box) against ``boxes`` M×4 (or one box) -> N×M (or M, or a float).
    Coordinates are integers; floats are truncated like WE's ``int()``.
    """
    a, a_single = _box_array(box, "box")
    b, b_single = _box_array(boxes, "boxes")
    out = iou_matrix(a, b)
    if a_single and b_single:
        return float(out[0, 0])
    if a_single:
        return out[0]
    if b_single:
        return out[:, 0]
    return out


# ----------------------------------------------------------------------------- resizing
def resize_boxes(boxes, size, new_size, rule: str = "span", at_least_one_pixel: bool = True) -> np.ndarray:
    """Inclusive boxes (N×4) of an image of ``size`` (w, h) in the pixels of one of ``new_size`` (w, h).

    ``rule="span"`` (the project's, float): an inclusive box spans ``[x0, x1 + 1)`` in continuous
    coordinates, so with ``s = new / old`` it becomes ``x0' = x0·s``, ``x1' = (x1 + 1)·s - 1``
    (and the same for y), computed in the boxes' float dtype (float64 for integer boxes).
    ``at_least_one_pixel`` keeps ``x1' >= x0'`` and ``y1' >= y0'`` when shrinking.

    ``rule="wsolevaluation"``: WE's ``resize_bbox``, every coordinate (x1 scaled like x0)
    becomes ``int(x · new / old)`` in float64, truncated toward zero -> int64.
    """
    if rule not in RESIZE_RULES:
        raise ValueError(f"rule={rule!r} is unknown; choose one of {RESIZE_RULES}")
    array = np.asarray(boxes)
    if rule == "wsolevaluation" or not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    array = array.reshape(-1, 4)
    width, height = size
    new_width, new_height = new_size
    if rule == "wsolevaluation":
        old = np.array([width, height, width, height], dtype=np.float64)
        new = np.array([new_width, new_height, new_width, new_height], dtype=np.float64)
        scaled = array * new / old
        if not np.isfinite(scaled).all():
            raise ValueError(f"boxes {array.tolist()} scaled from {size} to {new_size} are not finite")
        return scaled.astype(np.int64)  # truncation toward zero, like int()
    scale_x, scale_y = new_width / width, new_height / height
    out = np.empty_like(array)
    out[:, 0] = array[:, 0] * scale_x
    out[:, 1] = array[:, 1] * scale_y
    out[:, 2] = (array[:, 2] + 1) * scale_x - 1
    out[:, 3] = (array[:, 3] + 1) * scale_y - 1
    if at_least_one_pixel:
        out[:, 2] = np.maximum(out[:, 2], out[:, 0])
        out[:, 3] = np.maximum(out[:, 3], out[:, 1])
    return out


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


def max_numpy(score_map) -> np.ndarray:
    """Divide a 2-D map by its maximum, in float64: ``clip(map / max, 0, 1)``.

    Unlike min-max, the map's floor is kept: a map whose minimum is 0.4 of its maximum stays
    at 0.4 there, so every τ up to 0.4 keeps the whole image. Negative values (a CAM can have
    them) become 0. A map without a positive maximum, or with any NaN/inf, gives zeros.
    """
    array = np.array(score_map, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"score map must be 2-D (H×W); got shape {array.shape}")
    if array.size == 0 or not np.isfinite(array).all() or array.max() <= 0:
        return np.zeros_like(array)
    array /= array.max()
    return np.clip(array, 0.0, 1.0, out=array)


def fill_nonfinite(score_map) -> tuple[np.ndarray, int]:
    """A 2-D map with its NaN and ±inf pixels set to the map's finite minimum, and their count.

    The rule of the localiser (:func:`spg_core.localize.localization_box`): a few broken pixels
    never sink at τ > 0 and never zero the rest of the map. A map with no finite pixel becomes
    zeros. :func:`minmax_numpy` keeps WE's rule (any NaN zeroes the map) for the protocols.

    Args:
        score_map: a 2-D array.

    Returns:
        (float64 copy of the map, number of pixels replaced).
    """
    array = np.array(score_map, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"score map must be 2-D (H×W); got shape {array.shape}")
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        array[bad] = array[~bad].min() if count < array.size else 0.0
    return array, count


NORMALIZATIONS = {"minmax": minmax_numpy, "max": max_numpy}


def normalize_numpy(score_map, normalization: str = "minmax") -> np.ndarray:
    """The map normalised to [0, 1] by ``normalization``: "minmax" (:func:`minmax_numpy`, both
    protocols') or "max" (:func:`max_numpy`)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is unknown; choose one of {tuple(NORMALIZATIONS)}")
    return NORMALIZATIONS[normalization](score_map)


# ----------------------------------------------------------------------------- paper rule
def normalized_component_boxes(normalized: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected components of an already normalised map at ``>= tau``, largest first.

    Args:
        normalized: a 2-D map in [0, 1].
        tau: the threshold.

    Returns:
        (K×4 inclusive boxes, K pixel counts), ties in raster order of the first pixel.
    """
    from scipy import ndimage  # here: scoring with the wsolevaluation rule never loads SciPy

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
    return normalized_component_boxes(minmax_numpy(score_map), float(tau))[0]


def largest_component_box(score_map, tau: float) -> np.ndarray:
    """The paper's box (SPG §4): min-max normalise, keep pixels ``>= tau`` (inclusive, so
    ``tau=0`` keeps the whole image), take the tight box of the largest 8-connected component.

    Returns ``(x0, y0, x1, y1)`` inclusive ints; ``(0, 0, 0, 0)`` when no pixel survives.
    A map that is exactly 1 on a rectangle and 0 elsewhere gives that rectangle (IoU 1.0).
    """
    boxes = component_boxes(score_map, tau)
    return boxes[0] if len(boxes) else np.array(EMPTY_BOX, dtype=np.int64)


# ----------------------------------------------------------------------------- CAM's loose and tight boxes
# (τ_loose, τ_tight) of the min-max map. 0.2: CAM's own box ("above 20% of the max value of the
# CAM", Zhou et al. 2016 §3.1); 0.4: about the next level (100 of 255 = 0.39) of the three that
# CAM's released box generator thresholds its heatmaps at (20, 100, 110 of 255). docs/evaluation.md.
LOOSE_TIGHT_TAUS = (0.2, 0.4)


def loose_tight_taus(tau_loose: float, tau_tight: float) -> tuple[float, float]:
    """The pair as floats, checked: ``0 <= tau_loose < tau_tight <= 1``."""
    tau_loose, tau_tight = float(tau_loose), float(tau_tight)
    if not 0 <= tau_loose < tau_tight <= 1:
        raise ValueError(f"need 0 <= tau_loose < tau_tight <= 1; got tau_loose={tau_loose}, tau_tight={tau_tight}")
    return tau_loose, tau_tight


def loose_tight_boxes(score_map, tau_loose: float = LOOSE_TIGHT_TAUS[0],
                      tau_tight: float = LOOSE_TIGHT_TAUS[1]) -> np.ndarray:
    """CAM's two boxes of one class map (Zhou et al. 2016 §3.1, the top-5 heuristic SPG* follows):
    the paper rule's box (:func:`largest_component_box`) at the lower threshold ``tau_loose``
    (the loose box) and at the higher ``tau_tight`` (the tight box), as a 2×4 array, loose first.
    """
    tau_loose, tau_tight = loose_tight_taus(tau_loose, tau_tight)
    return np.stack([largest_component_box(score_map, tau) for tau in (tau_loose, tau_tight)])


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


def uint8_levels(max_value: int, taus: np.ndarray) -> np.ndarray:
    """WE's threshold ``int(tau * max)`` of a quantised map for every τ at once.

    Args:
        max_value: the quantised map's maximum (0-255).
        taus: the τ grid (≥ 0).

    Returns:
        int64 levels: the same float64 product as WE's, truncated toward zero.
    """
    return (np.asarray(taus, dtype=np.float64) * float(max_value)).astype(np.int64)


def find_contours(binary: np.ndarray):
    """OpenCV's contour tree of a uint8 image (nonzero = inside), as WE calls it.

    Args:
        binary: a uint8 H×W image.

    Returns:
        (contours, hierarchy), whichever OpenCV version (3 returns the image first).
    """
    found = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2], found[-1]


def wsol_boxes_quantized(quantized: np.ndarray, tau: float, multi_contour: bool) -> np.ndarray:
    """WE's boxes of a map already quantised to uint8 (:func:`quantize_scoremap`) at one τ.

    Args:
        quantized: uint8 H×W.
        tau: the threshold, applied as WE does (``> int(tau * max)``).
        multi_contour: every contour's box (WE's ``--multi_contour_eval``), else the largest's.

    Returns:
        K×4 inclusive boxes; ``EMPTY_BOX`` alone when nothing survives.
    """
    height, width = quantized.shape
    threshold = int(tau * np.max(quantized))  # WE: float64 * uint8, truncated
    # THRESH_TOZERO keeps pixels > threshold, as WE; findContours only sees nonzero vs zero.
    _, thresholded = cv2.threshold(quantized, threshold, 255, cv2.THRESH_TOZERO)
    contours, _ = find_contours(thresholded)
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
    return wsol_boxes_quantized(quantize_scoremap(score_map), float(tau), bool(multi_contour))
