"""Pictures shared by the CLI, the app and the notebooks: heat-map overlays, seed masks, boxes."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from spg_core.guidance import BACKGROUND, FOREGROUND

PRED_COLOR = (0, 200, 0)  # predicted box: green
GT_COLOR = (230, 0, 0)  # ground truth: red
IGNORE_GREY = 128


def colorize(score_map: np.ndarray) -> np.ndarray:
    """[0, 1] map → H×W×3 uint8 RGB (jet, as in the paper's figures)."""
    values = np.clip(np.nan_to_num(np.asarray(score_map, dtype=np.float32)), 0, 1)
    bgr = cv2.applyColorMap((values * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def heatmap_overlay(image: Image.Image, score_map: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """Blend the colourised map over the image; ``alpha`` is the map's opacity."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    heat = colorize(score_map).astype(np.float32)
    if heat.shape[:2] != base.shape[:2]:
        heat = cv2.resize(heat, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(((1 - alpha) * base + alpha * heat).clip(0, 255).astype(np.uint8))


def mask_image(mask: np.ndarray) -> Image.Image:
    """Seed mask as in the paper's Fig. 4: foreground white, background black, ignored grey."""
    mask = np.asarray(mask)
    out = np.full(mask.shape, IGNORE_GREY, dtype=np.uint8)
    out[mask == FOREGROUND] = 255
    out[mask == BACKGROUND] = 0
    return Image.fromarray(out).convert("RGB")


def draw_boxes(image: Image.Image, pred_boxes=(), gt_boxes=(), width: int | None = None) -> Image.Image:
    """Copy of ``image`` with GT boxes in red and predicted boxes in green (inclusive pixel coords)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = width or max(1, round(max(out.size) / 150))
    for boxes, color in ((gt_boxes, GT_COLOR), (pred_boxes, PRED_COLOR)):
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            draw.rectangle([float(v) for v in box], outline=color, width=width)
    return out


def stage_picture(stage_name: str, stage_maps, masks: dict, alpha: float = 0.5) -> Image.Image:
    """The picture of one stage of the strip: masks as seeds, score maps as overlays."""
    if stage_name in masks:
        return mask_image(masks[stage_name])
    return heatmap_overlay(stage_maps.image, stage_maps.maps[stage_name], alpha)
