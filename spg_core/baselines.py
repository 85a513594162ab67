"""Trivial baselines scored beside every evaluation: what localising without looking gives.

On real photos objects are often large and centred, so a box that ignores the image can beat a
CAM's box. Three baselines are scored on the same images, grid and ground truth as the model:

``full_box``
    The whole image as the box, on the protocol's scoring grid.
``center_box``
    A centred box covering the fraction ``f`` of each side, ``f`` one of :data:`CENTER_FRACTIONS`
    (0.50 … 1.00). ``f`` is chosen as τ is: where the held-out split's GT-known Loc is best
    (ties, common with so coarse a score, go to the higher mean IoU); without a held-out split,
    on the reported split, labelled an oracle.
``center_gaussian``
    A centred Gaussian map (σ = :data:`GAUSSIAN_SIGMA` of each side, drawn at the protocol's
    scoring grid, so no resize blurs it) scored as any map by
    :class:`spg_core.evaluate.SplitEvaluator`: the protocol's normalisation, box rule,
    MaxBoxAccV2 and PxAP. Its τ is chosen as the model's is (held-out split, else an oracle on
    the reported split). σ changes only which τ gives which box: the τ-free metrics
    (MaxBoxAccV2, PxAP) do not depend on it. The paper rule's per-τ boxes of the Gaussian are
    computed once per grid by :func:`single_component_boxes` (its superlevel sets are each one
    connected set, so the largest component is all of it), which equals the generic labelling of
    :func:`spg_core.tau_sweep.largest_component_boxes` at a fraction of the cost on images of many sizes.

Each baseline reports ``gt_known_loc`` (IoU ≥ 0.5 with the best-matching GT box),
``maxboxacc_v2`` (mean over the IoU thresholds of the accuracy; for a fixed box the accuracy of
that box, for the Gaussian the best over τ at each threshold, by the protocol's own box rule:
all contours for wsolevaluation, the largest component for the paper) with
``maxboxacc_v2_per_iou``, and ``pxap`` where masks exist (the Gaussian only: a box has no
pixel scores).
"""
from __future__ import annotations

import numpy as np

from spg_core import boxes as box_ops

__all__ = [
    "BASELINES",
    "CENTER_FRACTIONS",
    "GAUSSIAN_SIGMA",
    "Baselines",
    "center_box",
    "gaussian_map",
    "single_component_boxes",
    "annotation_baselines",
]

BASELINES = ("full_box", "center_box", "center_gaussian")
CENTER_FRACTIONS = tuple(round(0.5 + 0.05 * k, 2) for k in range(11))  # 0.50, 0.55, ..., 1.00
GAUSSIAN_SIGMA = 0.25  # of each image side
_CACHED_GRIDS = 16  # grids whose prepared Gaussian is kept (one for a fixed scoring grid)


def center_box(grid: tuple[int, int], fraction: float) -> np.ndarray:
    """The centred box covering ``fraction`` of each side of a ``grid`` = (w, h) image.

    Args:
        grid: (w, h) in pixels.
        fraction: in (0, 1]; 1 is the whole image.

    Returns:
        (x0, y0, x1, y1) int64, 0-based inclusive, symmetric about the centre.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"centre-box fraction {fraction} must lie in (0, 1]")
    width, height = int(grid[0]), int(grid[1])
    margin_x = min(int(np.floor((1 - fraction) * width / 2 + 0.5)), (width - 1) // 2)
    margin_y = min(int(np.floor((1 - fraction) * height / 2 + 0.5)), (height - 1) // 2)
    return np.array([margin_x, margin_y, width - 1 - margin_x, height - 1 - margin_y], dtype=np.int64)


def gaussian_map(grid: tuple[int, int], sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """A centred Gaussian score map over the whole image: the product of one profile per axis.

    Args:
        grid: (w, h) cells, the scoring grid it is drawn at.
        sigma: the standard deviation as a fraction of each side.

    Returns:
        h×w float64, largest at the centre.
    """
    def along(count: int) -> np.ndarray:
        centres = (np.arange(count, dtype=np.float64) + 0.5) / count - 0.5
        return np.exp(-centres**2 / (2 * sigma**2))

    return np.outer(along(int(grid[1])), along(int(grid[0])))


def single_component_boxes(normalized, taus) -> np.ndarray:
    """The tight box of the pixels ``>= τ`` at every τ, ``(0, 0, 0, 0)`` where none is kept.

    For a map whose every superlevel set is one 8-connected set this is the paper rule's box
    (:func:`spg_core.tau_sweep.largest_component_boxes`): so for a normalised :func:`gaussian_map`,
    a monotone function of a product of two one-peaked profiles, where each row's kept pixels are
    an interval through the peak column and the kept rows are contiguous.

    Args:
        normalized: a 2-D map in [0, 1].
        taus: the τ grid.

    Returns:
        T×4 int64 inclusive boxes.
    """
    normalized = np.asarray(normalized, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)[:, None]
    kept_cols, kept_rows = normalized.max(axis=0)[None, :] >= taus, normalized.max(axis=1)[None, :] >= taus
    width, height = normalized.shape[1], normalized.shape[0]
    boxes = np.stack([kept_cols.argmax(axis=1), kept_rows.argmax(axis=1),
                      width - 1 - kept_cols[:, ::-1].argmax(axis=1), height - 1 - kept_rows[:, ::-1].argmax(axis=1)],
                     axis=1).astype(np.int64)
    boxes[~kept_cols.any(axis=1)] = 0
    return boxes


def _accuracy(ious: np.ndarray, threshold: int) -> np.ndarray:
    """Percent of images whose IoU reaches ``threshold`` percent (WE's ``iou >= t / 100``)."""
    return (ious >= threshold / 100).mean(axis=0) * 100.0


class Baselines:
    """The three baselines of one split, accumulated image by image as the model's scores are.

    Args:
        protocol: "paper" or "wsolevaluation" (the model's).
        cam_curve_interval: the τ grid step (the model's).
        split: the split's name, for τ choice and messages.
        paper_size: the paper protocol's square grid (the network input), or None for the image.
        iou_thresholds: whole percents of MaxBoxAccV2 (the model's; default 30, 50, 70).
    """

    def __init__(self, protocol: str, cam_curve_interval: float = 0.01, split: str = "report",
                 paper_size: int | None = None, iou_thresholds=None):
        from spg_core.evaluate import SplitEvaluator, check_iou_thresholds

        self.iou_thresholds = check_iou_thresholds(iou_thresholds)
        self.split = split
        # The thresholds are always given so the paper protocol counts its rule's box accuracy too.
        self.gaussian = SplitEvaluator(protocol, cam_curve_interval, split=split, paper_size=paper_size,
                                       iou_thresholds=self.iou_thresholds)
        self.center_ious: list[np.ndarray] = []  # per image: best IoU of each centred box (F,)
        self._prepared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return len(self.center_ious)

    def _gaussian_on(self, size) -> tuple[np.ndarray, np.ndarray | None]:
        """The Gaussian prepared on the grid of an image of ``size``, and (paper rule) its per-τ boxes:
        the same for every image of a grid, so computed once per grid."""
        grid = self.gaussian.grid(size)
        if grid not in self._prepared:
            if len(self._prepared) >= _CACHED_GRIDS:
                self._prepared.clear()
            prepared = self.gaussian.prepare(gaussian_map(grid), size)
            level_boxes = None
            if self.gaussian.protocol == "paper":  # what largest_component_sweep computes, for this map at once
                level_boxes = single_component_boxes(box_ops.minmax_numpy(prepared), self.gaussian.taus)
            self._prepared[grid] = (prepared, level_boxes)
        return self._prepared[grid]

    def add(self, image_id: str, boxes, size, mask=None) -> None:
        """One image, as :meth:`spg_core.evaluate.SplitEvaluator.add` receives it.

        Args:
            image_id: the image's id.
            boxes: GT boxes N×4 in the pixels of an image of ``size``.
            size: (w, h) of that image.
            mask: optional 1/0/255 mask of that image or of the scoring grid (PxAP).
        """
        gt = self.gaussian.gt_boxes(boxes, size)
        grid = self.gaussian.grid(size)
        candidates = np.stack([center_box(grid, fraction) for fraction in CENTER_FRACTIONS])
        self.center_ious.append(box_ops.iou_matrix(candidates, gt).max(axis=1))
        prepared, level_boxes = self._gaussian_on(size)
        self.gaussian.add(image_id, None, boxes, size, mask=mask, prepared=prepared, level_boxes=level_boxes)

    def center_gt_known(self) -> np.ndarray:
        """GT-known Loc (%) of each centred box of :data:`CENTER_FRACTIONS` on this split."""
        return _accuracy(np.stack(self.center_ious), 50)

    def best_fraction(self) -> int:
        """The index in :data:`CENTER_FRACTIONS` of the best GT-known Loc here, ties to the higher mean IoU."""
        ious = np.stack(self.center_ious)
        return max(range(len(CENTER_FRACTIONS)), key=lambda k: (self.center_gt_known()[k], ious[:, k].mean()))

    def _box_scores(self, index: int) -> dict:
        ious = np.stack(self.center_ious)[:, index]
        per_iou = {str(t): float(_accuracy(ious, t)) for t in self.iou_thresholds}
        return {"gt_known_loc": float(_accuracy(ious, 50)), "maxboxacc_v2": float(np.mean(list(per_iou.values()))),
                "maxboxacc_v2_per_iou": per_iou}

    def summary(self, held_out: Baselines | None = None) -> dict:
        """The three baselines' scores, their free parameter chosen on ``held_out`` when given.

        Args:
            held_out: the held-out split's baselines (the split τ is chosen on), or None to choose
                on this split (an oracle, said so in ``*_source``).

        Returns:
            ``{"full_box": ..., "center_box": ..., "center_gaussian": ...}``, each with
            gt_known_loc, maxboxacc_v2 and maxboxacc_v2_per_iou in percent; center_box adds
            ``fraction`` and ``fraction_source``, center_gaussian ``tau``, ``tau_source``,
            ``sigma`` and ``pxap`` where masks exist.
        """
        from spg_core.evaluate import _finish

        if not self.center_ious:
            raise ValueError(f"split {self.split!r}: no image was scored for the baselines")
        if held_out is not None and len(held_out) == 0:
            held_out = None
        fractions = list(CENTER_FRACTIONS)
        if held_out is not None:
            chosen = held_out.best_fraction()
            source = f"best GT-known Loc of held-out split {held_out.split!r}"
        else:
            chosen = self.best_fraction()
            source = f"oracle: best GT-known Loc of the reported split {self.split!r} (no held-out split)"
        center = {**self._box_scores(chosen), "fraction": fractions[chosen], "fraction_source": source}
        if held_out is not None:
            center["fraction_threshold_split_gt_known_loc"] = float(held_out.center_gt_known()[chosen])

        threshold_curves = held_out.gaussian.curves() if held_out is not None else None
        scored, _, _ = _finish(self.gaussian, None if threshold_curves else "oracle", threshold_curves)
        if self.gaussian.protocol == "wsolevaluation":
            v2, per_iou = scored["maxboxacc_v2"], scored["maxboxacc_v2_per_iou"]
        else:
            v2, per_iou = scored["box_accuracy"]["mean"], scored["box_accuracy"]["per_iou"]
        gaussian = {"gt_known_loc": scored["gt_known_loc"], "maxboxacc_v2": v2, "maxboxacc_v2_per_iou": per_iou,
                    "tau": scored["tau"], "tau_source": scored["tau_source"], "sigma": GAUSSIAN_SIGMA}
        if "pxap" in scored:
            gaussian["pxap"] = scored["pxap"]
        return {"full_box": self._box_scores(fractions.index(1.0)), "center_box": center, "center_gaussian": gaussian}


def annotation_baselines(dataset, count: int | None = None, protocol: str = "wsolevaluation",
                         cam_curve_interval: float = 0.01, paper_size: int | None = None,
                         threshold_dataset=None) -> dict:
    """The baselines of a dataset's first ``count`` images from their annotations alone (no image
    decoded, no model): what the app shows beside its evaluations.

    Args:
        dataset: a :class:`spg_core.data.WSOLDataset` (``load_sample(i, image=False)``).
        count: how many of its first images (None: all).
        protocol: "paper" or "wsolevaluation".
        cam_curve_interval: the τ grid step.
        paper_size: the paper protocol's square grid, or None for the image's pixels.
        threshold_dataset: a held-out dataset to choose the fraction and τ on (all its images), or
            None to choose on ``dataset`` (an oracle, said so).

    Returns:
        :meth:`Baselines.summary` plus ``num_images``.
    """
    def scored(data, limit, split):
        baselines = Baselines(protocol, cam_curve_interval, split=split, paper_size=paper_size)
        total = len(data) if limit is None else min(int(limit), len(data))
        for index in range(total):
            sample = data.load_sample(index, image=False)
            if sample is not None and len(sample.boxes):
                baselines.add(sample.image_id, sample.boxes, sample.size, sample.mask)
        return baselines

    report = scored(dataset, count, str(getattr(dataset, "split", None) or "report"))
    held_out = None
    if threshold_dataset is not None:
        held_out = scored(threshold_dataset, None, str(getattr(threshold_dataset, "split", None) or "threshold"))
    return {**report.summary(held_out), "num_images": len(report)}
