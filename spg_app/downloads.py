"""The bytes behind the explore page's download buttons (the overlay PNG is ``pictures.png_bytes``)."""
from __future__ import annotations

import io
import json
import math

import numpy as np

from spg_app.thresholds import ThresholdView
from spg_core.guidance import GuidancePreset
from spg_core.localize import StageMaps


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
