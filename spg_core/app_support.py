"""Plumbing of the Streamlit view (``app.py``) that is not a stage of the method.

Cache keys, the choice of run and dataset, sample listing, upload checks, a dataset view that
reports progress, and the bytes behind the download buttons. Nothing here computes a map, a
seed, a box or a metric: :func:`threshold_view` only strings together the ``spg_core`` calls a
slider move triggers (``localize.stage_masks``, ``seed_report``, ``localization_box``,
``boxes.iou``), so the app and ``benchmarks/bench_app.py`` time the same code.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spg_core import boxes as box_ops
from spg_core.guidance import GuidancePreset
from spg_core.localize import MASKS, StageMaps, localization_box, seed_report, stage_masks, thresholds_override

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = ("png", "jpg", "jpeg")
# Photos are analysed at most this large: the maps are upsampled from a 12-28 px grid, so 512 px
# shows all they hold, and a slider move on it stays within ~30 ms (benchmarks/bench_app.py
# --photo-side); at 1024 px it takes ~4x longer for no more information.
DISPLAY_MAX_SIDE = 512
DEFAULT_TAU = 0.2  # CAM's box threshold (Zhou et al. 2016), the CLI's `localize --tau` default
_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",)}


class UploadError(ValueError):
    """An uploaded file the app refuses, with a message meant for the user."""


# ----------------------------------------------------------------------------- runs
def run_stamp(folder: str | Path) -> str:
    """Identity of a run's weights: a run replaced under the same name gets a new stamp, so
    nothing cached for the old checkpoint is shown for the new one."""
    stat = (Path(folder) / "checkpoint.pt").stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def run_metrics(folder: str | Path) -> dict | None:
    """metrics.json written next to a run by ``python -m spg_core evaluate --out RUN_DIR``, if any."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_tau(folder: str | Path) -> float:
    """τ chosen on the held-out split by the run's own evaluation, else CAM's 0.2."""
    metrics = run_metrics(folder) or {}
    # Shipped runs keep both protocols ({"paper": {...}, "wsolevaluation": {...}}); the paper
    # protocol's τ is the one chosen on the held-out split. `evaluate --out` writes a flat dict.
    tau = (metrics.get("paper") or {}).get("tau", metrics.get("tau"))
    return float(tau) if isinstance(tau, (int, float)) and 0 <= tau < 1 else DEFAULT_TAU


def variant_label(variant: str) -> str:
    return {"spg": "SPG", "plain": "SPG-plain"}.get(variant, f"SPG ({variant})")


# ----------------------------------------------------------------------------- datasets
_DATA_FLAGS = ("format", "data_root", "metadata_root", "image_size", "synthetic_classes", "synthetic_train",
               "synthetic_val", "synthetic_test", "part_position", "part_look", "clutter", "body_cue", "synthetic_seed")


def data_namespace(**given) -> argparse.Namespace:
    """The ``--format/--data-root/...`` flags of the CLI as a namespace (None = not given), so
    the app builds datasets through the same ``spg_core.cli.data_settings`` as the CLI."""
    unknown = sorted(set(given) - set(_DATA_FLAGS))
    if unknown:
        raise TypeError(f"unknown data flag(s) {unknown}; use {_DATA_FLAGS}")
    values = {flag: None for flag in _DATA_FLAGS}
    values.update({k: (None if v is None or (isinstance(v, str) and not v.strip()) else v) for k, v in given.items()})
    return argparse.Namespace(**values)


def settings_key(settings: dict, split: str) -> str:
    """A stable text key for (dataset settings, split): what the caches are keyed on."""
    return json.dumps({"split": split, **settings}, sort_keys=True, default=str)


def indices_by_class(dataset) -> dict[int, list[int]]:
    """Dataset positions of each class, read from the annotation records (nothing decoded)."""
    out: dict[int, list[int]] = {}
    for position, record in enumerate(dataset.records):
        out.setdefault(int(record.label), []).append(position)
    return out


def positions_by_image_id(dataset) -> dict[str, int]:
    return {str(record.image_id): position for position, record in enumerate(dataset.records)}


class DatasetView(torch.utils.data.Dataset):
    """The first ``limit`` images of a dataset, calling ``on_item(done, total)`` as items are
    read — how the app shows progress of ``spg_core.evaluate.evaluate`` (run with
    ``num_workers=0``, so items are read in the calling thread). Forwards the attributes the
    evaluator reads (split, image_size, records, class names)."""

    def __init__(self, dataset, limit: int | None = None, on_item: Callable[[int, int], None] | None = None):
        self.dataset = dataset
        self.total = len(dataset) if limit is None else max(0, min(int(limit), len(dataset)))
        self.on_item = on_item
        self.done = 0
        self.split = getattr(dataset, "split", "report")
        self.image_size = getattr(dataset, "image_size", None)
        self.class_names = getattr(dataset, "class_names", None)
        self.num_classes = getattr(dataset, "num_classes", None)
        records = getattr(dataset, "records", None)
        self.records = None if records is None else records[: self.total]

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int):
        if not 0 <= index < self.total:
            raise IndexError(f"index {index} out of range for the first {self.total} images")
        item = self.dataset[index]
        self.done += 1
        if self.on_item is not None:
            self.on_item(self.done, self.total)
        return item


class ResultCache:
    """A small thread-safe LRU for long computations (evaluations, sweeps) that report progress
    while they run — which ``st.cache_data`` cannot wrap, since its replay forbids writing to a
    progress bar created outside the cached function."""

    def __init__(self, max_entries: int = 32):
        self.max_entries = int(max_entries)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# ----------------------------------------------------------------------------- uploads
def read_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = DISPLAY_MAX_SIDE):
    """Check and decode an uploaded PNG/JPEG: returns ``(image, scale)`` from
    ``spg_core.data.images.load_image`` (``scale`` < 1 when downscaled to ``max_side``).

    Raises :class:`UploadError` naming the problem and the fix: too large, wrong type (by name
    and by the file's first bytes), or not decodable.
    """
    from spg_core.data.images import BadImageError, load_image

    size = len(data)
    if size > max_bytes:
        raise UploadError(f"{name} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                          "Downscale or re-encode the photo (e.g. JPEG quality 90) and upload it again.")
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes); upload a PNG or JPEG photo.")
    extension = Path(name).suffix.lower().lstrip(".")
    if extension not in UPLOAD_TYPES:
        raise UploadError(f"{name}: .{extension or '(none)'} files are not supported; upload a PNG or JPEG "
                          f"({', '.join('.' + t for t in UPLOAD_TYPES)}).")
    kind = "png" if extension == "png" else "jpeg"
    if not any(data.startswith(signature) for signature in _SIGNATURES[kind]):
        actual = next((k for k, sigs in _SIGNATURES.items() if any(data.startswith(s) for s in sigs)), None)
        hint = f"it holds {actual.upper()} data — rename it" if actual else "it is not an image file"
        raise UploadError(f"{name} is named .{extension} but {hint}; upload a PNG or JPEG photo.")
    handle, path = tempfile.mkstemp(suffix=f".{extension}")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        try:
            image, scale = load_image(path, max_side=max_side)
        except BadImageError as error:
            raise UploadError(f"{name} could not be read as an image: {str(error).replace(path, name)}") from None
    finally:
        os.unlink(path)
    return image, scale


# ----------------------------------------------------------------------------- thresholds
def clean_thresholds(delta_low: float, delta_high: float, step: float = 0.01) -> tuple[float, float, bool]:
    """A range slider may meet itself (δ_l == δ_h), which Eq. 1 forbids: move δ_h up one step
    (or δ_l down at 1.0). Returns (δ_l, δ_h, adjusted)."""
    low, high = round(float(delta_low), 4), round(float(delta_high), 4)
    if low < high:
        return low, high, False
    if low + step <= 1.0:
        return low, round(low + step, 4), True
    return round(high - step, 4), high, True


def custom_preset(base: GuidancePreset, thresholds: dict[str, tuple[float, float]]) -> GuidancePreset:
    """``base`` with each stage's (δ_l, δ_h) replaced by ``thresholds[stage]`` where given."""
    preset = base
    for stage, (low, high) in thresholds.items():
        current = preset.stage(stage)
        if (current.delta_low, current.delta_high) != (low, high):
            preset = thresholds_override(preset, stage, low, high)
    return preset


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


# ----------------------------------------------------------------------------- pictures
STRIP_SIDE = 240  # display width of a strip tile, in CSS pixels
SMALL_SIDE = 256  # pictures up to this size are sent losslessly whatever they show


def display(picture, side: int = STRIP_SIDE, exact: bool = False):
    """A picture sized for the page: large ones shrunk to about twice ``side`` (sharp on
    high-density screens, cheap to encode and send) — by nearest neighbour when ``exact``, so a
    seed mask keeps only its three values; small ones are sent as they are and enlarged by the
    browser without smoothing (the app sets ``image-rendering: pixelated``), which costs nothing
    on the server and keeps every map pixel visible."""
    from PIL import Image

    longest = max(picture.size)
    if longest > 2.5 * side:  # a few percent smaller would cost a resize and gain nothing
        scale = 2 * side / longest
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        return picture.resize(size, Image.NEAREST if exact else Image.BILINEAR)
    return picture


def encode_picture(picture, side: int = STRIP_SIDE, exact: bool = False) -> tuple[bytes, str]:
    """(bytes, "PNG" | "JPEG") of a picture sized by :func:`display`. Seed masks (``exact``)
    and small pictures are PNG, so mask pixels stay exactly white/grey/black; large photo-like
    overlays are JPEG, which encodes them ~10x faster than PNG (what keeps slider moves live
    on uploaded photos)."""
    shown = display(picture, side, exact)
    if exact or max(shown.size) <= SMALL_SIDE:
        return png_bytes(shown), "PNG"
    buffer = io.BytesIO()
    shown.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "JPEG"


def strip_names(stage_maps: StageMaps, view: ThresholdView) -> list[tuple[str, str]]:
    """(name, title) of the stage strip in the paper's order (Fig. 2 / Fig. 4): the image, each
    score map and seed mask the model has, then the final localisation map with its box."""
    from spg_core.localize import STAGE_ORDER, STAGE_TITLES

    names = [("image", "Image")]
    names += [(name, STAGE_TITLES[name]) for name in STAGE_ORDER if name in stage_maps.maps or name in view.masks]
    return names + [("final", "Localisation map + box")]


def map_picture(stage_maps: StageMaps, name: str, alpha: float = 0.5):
    """The image, or one score map over it (``viz.heatmap_overlay``): independent of δ and τ."""
    from spg_core import viz

    return stage_maps.image if name == "image" else viz.heatmap_overlay(stage_maps.image, stage_maps.maps[name], alpha)


def mask_picture(view: ThresholdView, name: str):
    """One seed mask as in Fig. 4 (``viz.mask_image``): fg white, bg black, ignored grey — as
    a one-channel picture (the three greys are exact), a third of the bytes to encode."""
    from spg_core import viz

    return viz.mask_image(view.masks[name]).convert("L")


def final_picture(stage_maps: StageMaps, box, alpha: float = 0.5, gt_boxes=None, box_stage: str = "attention"):
    """The localisation map (``box_stage``'s) with the predicted box (green) and GT (red)."""
    from spg_core import viz

    overlay = viz.heatmap_overlay(stage_maps.image, stage_maps.maps[box_stage], alpha)
    return viz.draw_boxes(overlay, [box], () if gt_boxes is None else gt_boxes)


def strip_pictures(stage_maps: StageMaps, view: ThresholdView, alpha: float = 0.5, gt_boxes=None,
                   box_stage: str = "attention") -> list:
    """(name, title, picture) of the whole strip (:func:`strip_names`), every picture drawn."""
    out = []
    for name, title in strip_names(stage_maps, view):
        if name in view.masks:
            picture = mask_picture(view, name)
        elif name == "final":
            picture = final_picture(stage_maps, view.box, alpha, gt_boxes, box_stage)
        else:
            picture = map_picture(stage_maps, name, alpha)
        out.append((name, title, picture))
    return out


# ----------------------------------------------------------------------------- downloads
def png_bytes(image) -> bytes:
    """Lossless PNG (seed masks must stay exactly white/grey/black), fast compression: a slider
    move re-encodes the whole strip."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def maps_npz(stage_maps: StageMaps, masks: dict) -> bytes:
    """Every score map (float32, [0, 1]) and seed mask (uint8 0/1/255) as one .npz archive."""
    buffer = io.BytesIO()
    arrays = {name: np.asarray(value) for name, value in stage_maps.maps.items()}
    arrays.update({name: np.asarray(value) for name, value in masks.items()})
    arrays["probabilities"] = np.asarray(stage_maps.probabilities, dtype=np.float32)
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def boxes_json(image_id: str, stage_maps: StageMaps, view: ThresholdView, tau: float, preset: GuidancePreset,
               gt_boxes=None, scale: float = 1.0) -> str:
    """The box, the GT boxes, τ, the thresholds and the seed numbers of one image as JSON.
    Boxes are inclusive (x0, y0, x1, y1) in the pixels of the image shown (``scale`` relates them
    to the file's pixels when the photo was downscaled on upload)."""
    payload = {
        "image_id": image_id,
        "image_size": list(stage_maps.image.size),
        "scale_to_file_pixels": scale,
        "class_index": stage_maps.class_index,
        "class_name": stage_maps.class_names[stage_maps.class_index],
        "top5": [{"index": i, "class": n, "probability": p} for i, n, p in stage_maps.top_k(5)],
        "tau": tau,
        "predicted_box": list(view.box),
        "gt_boxes": np.asarray(gt_boxes if gt_boxes is not None else [], dtype=np.float64).reshape(-1, 4).tolist(),
        "iou": view.iou,
        "thresholds": preset.to_dict(),
        "fallback": view.fallback,
        "seeds": {stage: {k: _finite(v) for k, v in stats.items()} for stage, stats in view.report.items()},
    }
    return json.dumps(payload, indent=2)


__all__ = [
    "MAX_UPLOAD_BYTES", "UPLOAD_TYPES", "DISPLAY_MAX_SIDE", "DEFAULT_TAU", "MASKS", "UploadError",
    "run_stamp", "run_metrics", "default_tau", "variant_label", "data_namespace", "settings_key",
    "indices_by_class", "positions_by_image_id", "DatasetView", "ResultCache", "read_upload",
    "clean_thresholds", "custom_preset", "ThresholdView", "threshold_view", "STRIP_SIDE", "display",
    "encode_picture", "strip_names", "map_picture", "mask_picture", "final_picture", "strip_pictures", "png_bytes",
    "maps_npz",
    "boxes_json",
]
