"""Localisation and classification metrics: the paper's Loc metrics, WE's MaxBoxAcc / PxAP.

Everything here is plain numpy on per-image results (IoUs, correctness flags, score
histograms); no model, no file. Percentages are floats in [0, 100].

* Paper metrics at one τ (SPG §4): **GT-known Loc** (the GT-class map's box has IoU >= 0.5
  with *any* GT box), **Top-1 Loc** (top-1 class correct AND GT-known correct: the top-1 map is
  then the GT-class map), **Top-5 Loc** (GT class in the top 5 AND GT-known correct).
* WE metrics (clovaai/wsolevaluation): **MaxBoxAcc** (largest contour, IoU 0.5, the best
  dataset-level τ), **MaxBoxAccV2** (all contours, mean over IoU 0.3/0.5/0.7 of each one's best
  τ), **PxAP** (area under the pixel precision-recall curve from score histograms). The max
  over τ is part of these metrics' definition (they are threshold-free by construction).
* τ for threshold-dependent metrics is chosen on a *held-out* split with :func:`select_tau`,
  which refuses to choose on the reported split unless told the result is an oracle.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "IOU_THRESHOLDS",
    "FAILURE_TYPES",
    "tau_grid",
    "topk_correct",
    "classification_accuracy",
    "Curve",
    "select_tau",
    "localization_curves",
    "BoxAccuracy",
    "PxAP",
    "spg_star_top5_correct",
    "failure_type",
    "object_overlap",
]

IOU_THRESHOLDS = (30, 50, 70)  # percent, as WE's iou_threshold_list
FAILURE_TYPES = ("ok", "wrong-class", "part-only", "too-large", "wrong-place")


def tau_grid(cam_curve_interval: float = 0.01) -> np.ndarray:
    """WE's τ grid ``np.arange(0, 1, cam_curve_interval)`` (0.01 in its CLI, 0.001 in training)."""
    step = float(cam_curve_interval)
    if not 0 < step < 1:
        raise ValueError(f"cam_curve_interval={cam_curve_interval} must lie in (0, 1), e.g. 0.01 or 0.001")
    return np.arange(0, 1, step)


# ----------------------------------------------------------------------------- classification
def _numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def topk_correct(scores, labels, k: int) -> np.ndarray:
    """(N,) bool: the label is among the k highest scores (logits or softmax; k is capped at C).

    Ties are broken toward the lower class index, like ``torch.topk`` on CPU in practice; a
    label tied with the k-th score but of higher index counts as wrong.
    """
    scores, labels = _numpy(scores), _numpy(labels).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be N×C and labels N; got {scores.shape} and {labels.shape}")
    k = min(int(k), scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


def classification_accuracy(scores, labels, ks=(1, 5)) -> dict[str, float]:
    """{"top1": %, "top5": %} from N×C scores (average the 10-crop softmax before calling)."""
    labels = _numpy(labels)
    if len(labels) == 0:
        raise ValueError("no images to score: the label list is empty")
    return {f"top{k}": float(topk_correct(scores, labels, k).mean() * 100.0) for k in ks}


# ----------------------------------------------------------------------------- curves and τ choice
@dataclass
class Curve:
    """An accuracy-vs-τ curve measured on one split; ``values`` in percent, one per τ."""

    name: str
    split: str
    taus: np.ndarray
    values: np.ndarray
    iou_threshold: float | None = None
    extra: dict = field(default_factory=dict)

    def best(self) -> tuple[float, float]:
        """(τ, value) at the first maximum (WE takes ``max()`` of the same array)."""
        index = int(np.argmax(self.values))
        return float(self.taus[index]), float(self.values[index])

    def at(self, tau: float) -> float:
        """The value at the grid point nearest to ``tau``."""
        return float(self.values[int(np.argmin(np.abs(self.taus - tau)))])

    def to_dict(self) -> dict:
        return {"name": self.name, "split": self.split, "iou_threshold": self.iou_threshold,
                "taus": [float(t) for t in self.taus], "values": [float(v) for v in self.values], **self.extra}


def select_tau(threshold_curve: Curve, report_curve: Curve, oracle: bool = False) -> dict:
    """Choose τ where ``threshold_curve`` is best and read ``report_curve`` there.

    The two curves must come from different splits: choosing τ on the split you report
    inflates the result (Choe et al., CVPR 2020, the paper behind WE). ``oracle=True``
    allows the same split and labels the result as an oracle, e.g. for an upper bound.
    Returns {"tau", "value" (report split), "threshold_value", "threshold_split", "oracle"}.
    """
    same_split = threshold_curve.split == report_curve.split or threshold_curve is report_curve
    if same_split and not oracle:
        raise ValueError(
            f"τ would be chosen on the reported split {report_curve.split!r}: pass a held-out split's curve "
            "(e.g. val) as threshold_curve, or oracle=True to report an oracle upper bound")
    if not np.allclose(threshold_curve.taus, report_curve.taus):
        raise ValueError("the two curves use different τ grids; evaluate both with the same cam_curve_interval")
    tau, threshold_value = threshold_curve.best()
    index = int(np.argmax(threshold_curve.values))
    return {"tau": tau, "value": float(report_curve.values[index]), "threshold_value": threshold_value,
            "threshold_split": threshold_curve.split, "oracle": bool(same_split)}


def localization_curves(best_iou, top1_correct, top5_correct, taus, split: str,
                        iou_threshold: float = 0.5) -> dict[str, Curve]:
    """Paper metrics at every τ from (N, T) IoUs of the GT-class map's box with its best GT box.

    GT-known: IoU >= 0.5. Top-1 Loc: top-1 correct and GT-known (a correct top-1 class *is* the
    GT class, so its map is the GT-class map). Top-5 Loc: GT class in the top 5 and GT-known.
    """
    best_iou = np.asarray(best_iou, dtype=np.float64)
    if best_iou.ndim != 2 or best_iou.shape[1] != len(taus):
        raise ValueError(f"best_iou must be N×T with T={len(taus)} τ values; got {best_iou.shape}")
    hit = best_iou >= iou_threshold
    top1 = np.asarray(top1_correct, dtype=bool)[:, None]
    top5 = np.asarray(top5_correct, dtype=bool)[:, None]
    count = float(len(best_iou))
    taus = np.asarray(taus, dtype=np.float64)
    return {
        "gt_known_loc": Curve("gt_known_loc", split, taus, hit.sum(axis=0) * 100.0 / count, iou_threshold),
        "top1_loc": Curve("top1_loc", split, taus, (hit & top1).sum(axis=0) * 100.0 / count, iou_threshold),
        "top5_loc": Curve("top5_loc", split, taus, (hit & top5).sum(axis=0) * 100.0 / count, iou_threshold),
    }


# ----------------------------------------------------------------------------- WE box accuracy
class BoxAccuracy:
    """WE's ``BoxEvaluator`` counts: per IoU threshold, how many images are correct at each τ.

    ``add`` takes the best IoU at every τ for the largest contour (v1) and over all contours
    (v2); counts and the final ``count * 100 / n`` are the same arithmetic as WE, so the
    numbers match to the last digit.
    """

    def __init__(self, taus, iou_thresholds=IOU_THRESHOLDS):
        self.taus = np.asarray(taus, dtype=np.float64)
        self.iou_thresholds = tuple(int(t) for t in iou_thresholds)
        self.correct = {mode: {t: np.zeros(len(self.taus)) for t in self.iou_thresholds} for mode in ("v1", "v2")}
        self.count = 0

    def add(self, iou_v1, iou_v2) -> None:
        for mode, ious in (("v1", iou_v1), ("v2", iou_v2)):
            ious = np.asarray(ious)
            for threshold in self.iou_thresholds:
                self.correct[mode][threshold][np.where(ious >= threshold / 100)[0]] += 1
        self.count += 1

    def accuracy(self, mode: str, threshold: int) -> np.ndarray:
        if self.count == 0:
            raise ValueError("no images were added")
        return self.correct[mode][threshold] * 100.0 / float(self.count)

    def curves(self, split: str) -> dict[str, Curve]:
        out = {}
        for mode in ("v1", "v2"):
            for threshold in self.iou_thresholds:
                name = f"boxacc_{mode}_iou{threshold}"
                out[name] = Curve(name, split, self.taus, self.accuracy(mode, threshold), threshold / 100)
        return out

    def metrics(self) -> dict:
        """maxboxacc (v1, IoU 0.5), maxboxacc_v2 (mean over IoUs of each best), per-IoU values."""
        per_iou = {str(t): float(self.accuracy("v2", t).max()) for t in self.iou_thresholds}
        out = {"maxboxacc_v2": float(np.average([self.accuracy("v2", t).max() for t in self.iou_thresholds])),
               "maxboxacc_v2_per_iou": per_iou}
        if 50 in self.iou_thresholds:
            out["maxboxacc"] = float(self.accuracy("v1", 50).max())
        return out


# ----------------------------------------------------------------------------- PxAP
class PxAP:
    """WE's ``MaskEvaluator``: pixel precision-recall from score histograms, ignore excluded.

    Bins are ``[τ_0, τ_1), ..., [τ_last, 1), [1, 2), [2, 3)`` for the τ grid (so a score of
    exactly 1 has its own bin); a threshold keeps the scores at or above its bin edge. AP is
    WE's ``sum(precision[1:] * diff(recall))`` over thresholds with any positive prediction.
    """

    def __init__(self, taus):
        self.taus = np.asarray(taus, dtype=np.float64)
        self.edges = np.append(self.taus, [1.0, 2.0, 3.0])
        self.positive = np.zeros(len(self.taus) + 2)
        self.negative = np.zeros(len(self.taus) + 2)

    def add(self, score_map, mask) -> None:
        """``mask``: 1 = object, 0 = background, 255 = ignore (same shape as the map)."""
        score_map, mask = np.asarray(score_map), np.asarray(mask)
        if score_map.shape != mask.shape:
            raise ValueError(f"map {score_map.shape} and mask {mask.shape} must have the same shape; "
                             "resize the mask with nearest-neighbour interpolation first")
        self.positive += np.histogram(score_map[mask == 1], bins=self.edges)[0]
        self.negative += np.histogram(score_map[mask == 0], bins=self.edges)[0]

    def _pr(self):
        tp = self.positive[::-1].cumsum()
        fn = self.positive.sum() - tp
        fp = self.negative[::-1].cumsum()
        if ((tp + fn) <= 0).all():
            raise ValueError("PxAP is undefined: no mask has an object pixel (value 1)")
        if ((tp + fp) <= 0).all():
            raise ValueError("PxAP is undefined: no pixel was scored")
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / (tp + fp)
            recall = tp / (tp + fn)
        return precision, recall, (tp + fp) != 0

    def compute(self) -> float:
        precision, recall, nonzero = self._pr()
        return float((precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100)

    def curve(self, split: str) -> Curve:
        """Precision (%) against recall, thresholds from high to low (``extra`` holds recall)."""
        precision, recall, nonzero = self._pr()
        thresholds = self.edges[:-1][::-1]
        return Curve("pxap_pr", split, thresholds[nonzero], precision[nonzero] * 100.0,
                     extra={"recall": [float(r) for r in recall[nonzero]]})


# ----------------------------------------------------------------------------- SPG* (non-standard)
def spg_star_top5_correct(ranked_classes, class_boxes, label: int, gt_boxes, iou_threshold: float = 0.5) -> bool:
    """NON-STANDARD "SPG*" top-5 localisation (SPG Tables 1-2), CAM's heuristic (Zhou et al. 2016
    §3.1): five (class, box) guesses drawn from the top classes — a loose and a tight box from
    each of the 1st and 2nd predicted classes, the loose box from the 3rd — correct when one
    guess has the GT class and IoU >= 0.5 with a GT box.

    ``class_boxes[c]`` lists that class map's boxes loose first, as
    :func:`spg_core.boxes.loose_tight_boxes` gives them (the 1st and 2nd classes offer both,
    the 3rd its first). Not comparable with standard Top-5 Loc, which allows one box per class.
    """
    quota = (2, 2, 1)
    gt = np.atleast_2d(np.asarray(gt_boxes))
    for rank, count in enumerate(quota):
        if rank >= len(ranked_classes):
            break
        cls = int(ranked_classes[rank])
        if cls != int(label):
            continue
        boxes = np.asarray(class_boxes.get(cls, []))[:count]
        if len(boxes) and (_iou(boxes, gt) >= iou_threshold).any():
            return True
    return False


def _iou(a, b) -> np.ndarray:
    from spg_core.boxes import iou

    return np.atleast_2d(iou(np.atleast_2d(a), np.atleast_2d(b)))


# ----------------------------------------------------------------------------- failure analysis
# The fractions that sort a failed box (docs/evaluation.md "Failure types").
FAILURE_ON_OBJECT = 0.2  # below: the box lies elsewhere (less than a fifth of it on the object)
FAILURE_HOLDS = 0.5      # a box holding at least half of the object ...
FAILURE_SIZE = 1.5       # ... and at least 1.5x the area of the object's box is too large


def object_overlap(boxes, mask, gt_boxes) -> np.ndarray:
    """What of the object each box holds, for :func:`failure_type`: per inclusive box (N×4 on
    the mask's grid) the pixel counts [object in the box, labelled in the box, object in the box
    ∩ its best GT box, object in that GT box] (N×4 int64), from summed-area tables. The best GT
    box is the one of highest IoU (the instance the box is compared with).

    ``mask``: H×W, 1 (or True) = object, 0 = background, any other value (255) = ignore,
    counted neither as object nor as background. Boxes are clipped to the mask.
    """
    from spg_core.boxes import iou_matrix

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D; got shape {mask.shape}")
    boxes = np.atleast_2d(np.asarray(boxes, dtype=np.int64)).reshape(-1, 4)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64)).reshape(-1, 4)
    best = gt[np.argmax(iou_matrix(boxes, gt), axis=1)]
    inter = np.concatenate([np.maximum(boxes[:, :2], best[:, :2]), np.minimum(boxes[:, 2:], best[:, 2:])], axis=1)
    height, width = mask.shape
    tables = []
    for plane in (mask == 1, (mask == 0) | (mask == 1)):
        table = np.zeros((height + 1, width + 1), np.int64)
        table[1:, 1:] = plane.astype(np.int64).cumsum(0).cumsum(1)
        tables.append(table)

    def count(table, b):
        empty = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        x0, x1 = np.clip(b[:, 0], 0, width), np.clip(b[:, 2] + 1, 0, width)
        y0, y1 = np.clip(b[:, 1], 0, height), np.clip(b[:, 3] + 1, 0, height)
        return np.where(empty, 0, table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0])

    objects, labelled = tables
    return np.stack([count(objects, boxes), count(labelled, boxes), count(objects, inter), count(objects, best)], axis=1)


def _box_region(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The GT boxes' union as a 1/0 mask on a canvas holding every box (no mask given)."""
    every = np.vstack([gt, pred[None]])
    canvas = np.zeros((int(every[:, 3].max()) + 1, int(every[:, 2].max()) + 1), np.uint8)
    for x0, y0, x1, y1 in gt:
        canvas[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = 1
    return canvas


def failure_type(pred_box, gt_boxes, class_correct: bool, mask=None, overlap=None, iou_threshold: float = 0.5,
                 on_object: float = FAILURE_ON_OBJECT, holds: float = FAILURE_HOLDS,
                 size: float = FAILURE_SIZE) -> str:
    """What went wrong with one image, as a person sees its box on the object, checked in order:

    ``wrong-class``: the top-1 class is wrong (whatever the box).
    ``ok``: IoU >= ``iou_threshold`` (0.5) with some GT box (the Loc criterion).
    ``too-large``: the box holds at least ``holds`` (half) of the object's pixels and its area
    is at least ``size`` (1.5) times that of the object's box: the box swallows the object and
    much of its surroundings.
    ``wrong-place``: less than ``on_object`` (a fifth) of the box's pixels lie on the object:
    the box marks something else.
    ``part-only``: the rest — at least a fifth of the box lies on the object, yet the box does
    not match it: it covers a part of the object (the classic CAM failure SPG targets), or is
    shifted off it towards one end.

    The object's pixels are the GT mask's when there is one (``mask`` on the boxes' grid: 1 =
    object, 0 = background, 255 = ignored, counted as neither), else the GT boxes' region.
    "The object" of ``holds``/``size`` is the instance the box is compared with: its best-IoU
    GT box and the object pixels in it; "on the object" counts any instance. ``overlap``, the
    counts :func:`object_overlap` gives for ``pred_box``, replaces ``mask`` when already counted.
    A fifth, not a majority, for "on the object": about half of a box around a part on the
    object's rim (a bird's head) hangs over the background, and a person still sees it on the
    part. Areas use inclusive pixel counts, like IoU.
    """
    from spg_core.boxes import box_areas

    if not class_correct:
        return "wrong-class"
    pred = np.asarray(pred_box, dtype=np.int64).reshape(4)
    gt = np.atleast_2d(np.asarray(gt_boxes, dtype=np.int64))
    ious = _iou(pred, gt)[0]
    if ious.max() >= iou_threshold:
        return "ok"
    if overlap is None and mask is not None:
        overlap = object_overlap(pred[None], mask, gt)[0]
    if overlap is None or overlap[3] <= 0:  # no mask, or none of it in the GT box: the boxes' region
        overlap = object_overlap(pred[None], _box_region(gt, pred), gt)[0]
    in_box, labelled, held, instance = (int(v) for v in overlap)
    if held >= holds * instance and box_areas(pred) >= size * box_areas(gt[int(np.argmax(ious))]):
        return "too-large"
    if in_box < on_object * max(labelled, 1):
        return "wrong-place"
    return "part-only"
