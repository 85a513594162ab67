"""One switchable protocol: the five choices in which box-accuracy protocols differ, named
where a combination is a published one, scored from saved maps with the evaluator's own parts.

:class:`ProtocolOptions` holds the five switches:

``box_rule``
    ``"largest_component"`` — the paper's rule (SPG §4, after CAM): the tight box of the
    largest 8-connected component of ``map >= τ``, on the paper protocol's grid (the network
    input, bilinear; :func:`spg_core.evaluate.prepare_map`). ``"largest_contour"`` — WE's
    MaxBoxAcc rule: the largest contour of ``uint8 map > int(τ·max)`` on WE's bicubic 224×224
    grid, box end at ``x+w``. ``"all_contours"`` — WE's MaxBoxAccV2 rule: every contour's box,
    the best-matching one counts. A rule brings its protocol's grid and threshold comparison.
``matching``
    ``"any"`` — IoU with the best-matching GT box of the image (both protocols); ``"first"`` —
    with the first GT box of the annotation only.
``normalization``
    ``"minmax"`` (both protocols) or ``"max"`` (``map / max``: the map's floor is kept;
    :func:`spg_core.boxes.max_numpy`), after the resize to the scoring grid.
``iou_set``
    ``(0.5,)`` or ``(0.3, 0.5, 0.7)``; the number is the mean over the set, each IoU with its
    own τ (MaxBoxAccV2's rule; with one IoU it is that IoU's accuracy).
``tau``
    ``"val"`` — each IoU's τ is the best τ of a held-out split, read on the reported one (fair);
    ``"oracle"`` — the best τ of the reported split itself. That is WE's definition of
    MaxBoxAcc/V2 (threshold-free by construction); for anything else it is an upper bound, and
    every result says which it is.

:data:`PUBLISHED` names the combinations that reproduce a published protocol (the tests check
each against :mod:`spg_core.evaluate` to the last digit); :func:`protocol_label` names any
combination, "custom" ones by their nearest published protocol and what differs.
:func:`score_protocol` scores a :class:`MapSet` (maps + ground truth of one split, from saved
maps or a model: :func:`collect_maps`) under any combination; per-image IoUs are kept per
(box rule, normalisation, matching), so switching the IoU set or the τ source costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from spg_core import boxes as box_ops
from spg_core import metrics as M
from spg_core import tau_sweep
from spg_core.evaluate import gt_on_grid, prepare_map

__all__ = [
    "BOX_RULES",
    "MATCHINGS",
    "NORMALIZATIONS",
    "IOU_SETS",
    "TAU_SOURCES",
    "ProtocolOptions",
    "Published",
    "PUBLISHED",
    "ProtocolLabel",
    "protocol_label",
    "MapSet",
    "collect_maps",
    "image_ious",
    "score_protocol",
]

BOX_RULES = tau_sweep.BOX_RULES
MATCHINGS = ("any", "first")
NORMALIZATIONS = tuple(box_ops.NORMALIZATIONS)
IOU_SETS = ((0.5,), (0.3, 0.5, 0.7))
TAU_SOURCES = ("val", "oracle")
RULE_PROTOCOL = {"largest_component": "paper", "largest_contour": "wsolevaluation", "all_contours": "wsolevaluation"}


@dataclass(frozen=True)
class ProtocolOptions:
    """The five switches (module docstring); the defaults are the paper protocol."""

    box_rule: str = "largest_component"
    matching: str = "any"
    normalization: str = "minmax"
    iou_set: tuple[float, ...] = (0.5,)
    tau: str = "val"

    def __post_init__(self):
        for name, allowed in (("box_rule", BOX_RULES), ("matching", MATCHINGS),
                              ("normalization", NORMALIZATIONS), ("tau", TAU_SOURCES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is unknown; choose one of {allowed}")
        values = tuple(sorted(float(v) for v in np.atleast_1d(self.iou_set)))
        if not values or not all(0 < v <= 1 for v in values) or len(set(values)) != len(values):
            raise ValueError(f"iou_set={self.iou_set!r} must be distinct IoU thresholds in (0, 1], e.g. (0.5,) "
                             "or (0.3, 0.5, 0.7)")
        object.__setattr__(self, "iou_set", values)

    def changes(self, other: ProtocolOptions) -> list[str]:
        """The names of the switches on which ``other`` differs."""
        return [name for name in SWITCHES if getattr(self, name) != getattr(other, name)]


SWITCHES = ("box_rule", "matching", "normalization", "iou_set", "tau")


@dataclass(frozen=True)
class Published:
    """A published protocol as five switches, and the evaluator's number it reproduces."""

    name: str
    options: ProtocolOptions
    reproduces: str  # the existing evaluator's number it equals


PUBLISHED = {
    "paper": Published("paper/CAM GT-known Loc", ProtocolOptions(),
                       "evaluate(protocol='paper', threshold_dataset=val): gt_known_loc"),
    "maxboxacc": Published("wsolevaluation MaxBoxAcc", ProtocolOptions("largest_contour", tau="oracle"),
                           "evaluate(protocol='wsolevaluation'): maxboxacc"),
    "maxboxacc_v2": Published("wsolevaluation MaxBoxAccV2",
                              ProtocolOptions("all_contours", iou_set=(0.3, 0.5, 0.7), tau="oracle"),
                              "evaluate(protocol='wsolevaluation'): maxboxacc_v2"),
}

# How each switch value reads in a label.
VALUE_WORDS = {
    "box_rule": {"largest_component": "the largest component", "largest_contour": "the largest contour",
                 "all_contours": "all contours"},
    "matching": {"any": "any GT box", "first": "the first GT box only"},
    "normalization": {"minmax": "min-max maps", "max": "max-normalised maps"},
    "tau": {"val": "τ from the held-out split", "oracle": "the oracle τ"},
}


def _words(name: str, value) -> str:
    if name == "iou_set":
        return "IoU " + "/".join(f"{v:g}" for v in value)
    return VALUE_WORDS[name][value]


@dataclass(frozen=True)
class ProtocolLabel:
    """What a combination is: ``name`` (a published protocol's, or "custom"), ``preset`` (the
    :data:`PUBLISHED` key it equals or is nearest to), ``text`` (one line for a page), and
    ``oracle`` (τ chosen on the reported split)."""

    name: str
    preset: str
    text: str
    oracle: bool

    @property
    def published(self) -> bool:
        return self.name != "custom"


def protocol_label(options: ProtocolOptions) -> ProtocolLabel:
    """The published protocol ``options`` reproduces, or "custom" with the nearest one (fewest
    different switches; on a tie the one with the same box rule, which brings the scoring grid,
    then :data:`PUBLISHED` order) and what differs from it."""
    distance = {key: len(options.changes(p.options)) for key, p in PUBLISHED.items()}
    preset = min(PUBLISHED, key=lambda key: (distance[key], PUBLISHED[key].options.box_rule != options.box_rule))
    nearest = PUBLISHED[preset]
    oracle = options.tau == "oracle"
    if distance[preset] == 0:
        if oracle:  # WE's metrics: the best τ on the reported split is their definition
            note = "best τ of the reported split, as wsolevaluation defines the metric (not a held-out τ)"
        else:
            note = "τ from the held-out split"
        return ProtocolLabel(nearest.name, preset, f"{nearest.name} — {note}", oracle)
    differences = ", ".join(_words(name, getattr(options, name)) for name in options.changes(nearest.options))
    text = f"custom — {nearest.name} with {differences}"
    if oracle:
        text += "; τ chosen on the reported split: an upper bound, not a held-out number"
    return ProtocolLabel("custom", preset, text, oracle)


# ----------------------------------------------------------------------------- maps of one split
def image_ious(score_map, boxes, size, taus, box_rule: str, normalization: str = "minmax",
               matching: str = "any", paper_size: int | None = None) -> np.ndarray:
    """(T,) IoU at every τ of one image: its map (any resolution) on the box rule's grid, normalised,
    the rule's box(es) at each τ (:func:`spg_core.tau_sweep.best_iou_sweep`) against its GT boxes
    (N×4, original pixels of an image of ``size`` = (w, h)), all of them or the first."""
    if box_rule not in RULE_PROTOCOL:
        raise ValueError(f"box_rule={box_rule!r} is unknown; choose one of {BOX_RULES}")
    if matching not in MATCHINGS:
        raise ValueError(f"matching={matching!r} is unknown; choose one of {MATCHINGS}")
    protocol = RULE_PROTOCOL[box_rule]
    prepared = prepare_map(protocol, score_map, size, paper_size, normalization)
    gt = gt_on_grid(protocol, boxes, size, paper_size)
    return tau_sweep.best_iou_sweep(prepared, gt[:1] if matching == "first" else gt, taus, box_rule)


@dataclass
class MapSet:
    """One split's GT-class maps (any resolution) with their ground truth: GT boxes (N×4,
    inclusive, original pixels, annotation order), image sizes (w, h) and, when known, labels,
    top-1 predictions and top-5 hits. ``paper_size``: the network input the paper rule scores
    on (None: the original image). Per-image IoUs are cached per (box rule, normalisation,
    matching, τ grid)."""

    split: str
    image_ids: list
    maps: list
    boxes: list
    sizes: list
    labels: list | None = None
    predictions: list | None = None
    top5: list | None = None
    paper_size: int | None = None
    extra: dict = field(default_factory=dict)
    _ious: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_maps(cls, score_maps, gt: dict, split: str = "report", predictions: dict | None = None,
                  paper_size: int | None = None) -> MapSet:
        """From :func:`spg_core.evaluate.evaluate_maps`'s input: ``(image_id, map)`` pairs,
        ``gt[image_id] = (boxes, (w, h)[, mask[, label]])``, ``predictions[image_id] = (top-1, in top 5)``."""
        out = cls(split, [], [], [], [], paper_size=paper_size)
        for image_id, score_map in score_maps:
            if image_id not in gt:
                raise KeyError(f"no ground truth for map {image_id!r}; gt must map every image_id to (boxes, (w, h))")
            entry = gt[image_id]
            prediction, top5 = (predictions or {}).get(image_id, (None, None))
            out.add(image_id, score_map, entry[0], entry[1], label=entry[3] if len(entry) > 3 else None,
                    prediction=prediction, top5=top5)
        return out

    def add(self, image_id, score_map, boxes, size, mask=None, label=None, prediction=None, top5=None) -> None:
        """One image (the signature of :meth:`spg_core.evaluate.SplitEvaluator.add`, so the
        evaluator's model loop fills a map set too; masks are not kept)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            raise ValueError(f"image {image_id!r} has no GT box; box accuracy needs at least one per image")
        self.image_ids.append(str(image_id))
        self.maps.append(np.asarray(score_map))
        self.boxes.append(boxes)
        self.sizes.append((int(size[0]), int(size[1])))
        if label is not None and prediction is not None:
            for name, value in (("labels", int(label)), ("predictions", int(prediction)),
                                ("top5", bool(top5) if top5 is not None else prediction == label)):
                if getattr(self, name) is None:
                    setattr(self, name, [])
                getattr(self, name).append(value)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def classified(self) -> bool:
        """Every image has a label and a top-1 prediction (Top-1/Top-5 Loc can be scored)."""
        return self.predictions is not None and len(self.predictions) == len(self) > 0

    def ious(self, taus, box_rule: str, normalization: str = "minmax", matching: str = "any") -> np.ndarray:
        """(N, T) IoU of every image at every τ (:func:`image_ious`), cached."""
        taus = np.asarray(taus, dtype=np.float64)
        key = (box_rule, normalization, matching, taus.tobytes())
        if key not in self._ious:
            if not len(self):
                raise ValueError(f"split {self.split!r}: no image to score")
            self._ious[key] = np.stack([
                image_ious(m, b, s, taus, box_rule, normalization, matching, self.paper_size)
                for m, b, s in zip(self.maps, self.boxes, self.sizes)])
        return self._ious[key]

    def curves(self, options: ProtocolOptions, taus) -> dict[float, dict[str, M.Curve]]:
        """Per IoU of ``options.iou_set``: accuracy against τ (``"gt_known_loc"``: the GT-class map's
        box right; ``"top1_loc"``/``"top5_loc"`` too when :attr:`classified`), counted by
        :func:`spg_core.metrics.localization_curves`."""
        ious = self.ious(taus, options.box_rule, options.normalization, options.matching)
        count = len(self)
        top1 = np.asarray(self.predictions) == np.asarray(self.labels) if self.classified else np.zeros(count, bool)
        top5 = np.asarray(self.top5, dtype=bool) if self.classified else np.zeros(count, bool)
        out = {}
        for threshold in options.iou_set:
            curves = M.localization_curves(ious, top1, top5, taus, self.split, iou_threshold=threshold)
            out[threshold] = curves if self.classified else {"gt_known_loc": curves["gt_known_loc"]}
        return out


def collect_maps(model, dataset, device="cpu", batch_size: int = 32, map_stage: str = "attention",
                 progress: bool = False, num_workers: int = 0) -> MapSet:
    """Run ``model`` over ``dataset`` once and keep each image's GT-class map (raw, at the map's
    own resolution), GT boxes, size, label and prediction: the input of :func:`score_protocol`.
    The model loop is :func:`spg_core.evaluate.evaluate`'s own, so the maps are the ones it scores;
    the paper rule scores them on the network input, as it does."""
    from spg_core.evaluate import _dataset_split, _input_size, _run_model, check_map_stage

    check_map_stage(model, map_stage)
    maps = MapSet(_dataset_split(dataset, "report"), [], [], [], [], paper_size=_input_size(dataset))
    extra = _run_model(model, dataset, maps, device, batch_size, False, progress, num_workers, None,
                       map_stage=map_stage)
    maps.extra = {**extra, "map_stage": map_stage}
    return maps


# ----------------------------------------------------------------------------- scoring
def _iou_name(threshold: float) -> str:
    return f"iou{round(threshold * 100):d}"


def score_protocol(report: MapSet, options: ProtocolOptions, held_out: MapSet | None = None,
                   cam_curve_interval: float = 0.01) -> dict:
    """Score ``report`` under ``options``: per IoU of the set, the accuracy curve against τ,
    its τ (chosen on ``held_out`` with ``tau="val"``, on ``report`` itself with ``"oracle"``,
    by :func:`spg_core.metrics.select_tau`) and the value there; ``value`` is their mean.

    Returns {"label" (:class:`ProtocolLabel`), "options", "value", "per_iou" (one dict per IoU:
    iou, tau, value, threshold_value, top1_loc/top5_loc when classified), "top1_loc",
    "tau_source", "oracle", "curves" and "threshold_curves" (name -> Curve), "split",
    "threshold_split", "num_images"}; accuracies in percent.
    """
    taus = M.tau_grid(cam_curve_interval)
    oracle = options.tau == "oracle"
    threshold_curves = None
    if not oracle:
        if held_out is None:
            raise ValueError("tau='val' chooses τ on a held-out split: pass held_out (its maps), "
                             "or choose tau='oracle', which is labelled as such")
        shared = set(report.image_ids) & set(held_out.image_ids)
        if shared:
            raise ValueError(f"{len(shared)} image(s) are in both the held-out and the reported split "
                             f"(e.g. {sorted(shared)[0]!r}); choose τ on disjoint images or use tau='oracle'")
        threshold_curves = held_out.curves(options, taus)
    report_curves = report.curves(options, taus)
    per_iou = []
    for threshold in options.iou_set:
        curve = report_curves[threshold]["gt_known_loc"]
        source = curve if oracle else threshold_curves[threshold]["gt_known_loc"]
        chosen = M.select_tau(source, curve, oracle=oracle)
        entry = {"iou": threshold, "tau": chosen["tau"], "value": chosen["value"]}
        if not oracle:
            entry["threshold_value"] = chosen["threshold_value"]
        index = int(np.argmax(source.values))
        for name in ("top1_loc", "top5_loc"):
            if name in report_curves[threshold]:
                entry[name] = float(report_curves[threshold][name].values[index])
        per_iou.append(entry)
    label = protocol_label(options)
    result = {
        "label": label, "options": options, "oracle": oracle, "split": report.split, "num_images": len(report),
        "value": float(np.average([e["value"] for e in per_iou])), "per_iou": per_iou,
        "tau_source": (f"oracle: best τ of the reported split {report.split!r}" if oracle
                       else f"best τ of held-out split {held_out.split!r}, per IoU"),
        "threshold_split": None if oracle else held_out.split,
        "curves": {_iou_name(t): replace(report_curves[t]["gt_known_loc"], name=_iou_name(t))
                   for t in options.iou_set},
        "threshold_curves": {} if oracle else {_iou_name(t): replace(threshold_curves[t]["gt_known_loc"],
                                                                     name=_iou_name(t)) for t in options.iou_set},
    }
    if report.classified:
        result["top1_loc"] = float(np.average([e["top1_loc"] for e in per_iou]))
    return result
