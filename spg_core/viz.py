"""Pictures shared by the CLI, the app and the notebooks: heat-map overlays, seed masks, boxes,
the difference of two maps, and a plotly grid to show several pictures side by side."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from spg_core.guidance import BACKGROUND, FOREGROUND

PRED_COLOR = (0, 200, 0)  # predicted box: green
GT_COLOR = (230, 0, 0)  # ground truth: red
IGNORE_GREY = 128
# Diverging colours of a difference A − B (ColorBrewer RdBu): B higher, equal, A higher.
DIFFERENCE_COLORS = ((33, 102, 172), (247, 247, 247), (178, 24, 43))


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


def difference_image(map_a: np.ndarray, map_b: np.ndarray, limit: float = 1.0) -> Image.Image:
    """A − B of two [0, 1] maps of the same size, in diverging colours (:data:`DIFFERENCE_COLORS`):
    red where A is higher, blue where B is, near-white where they agree; full colour at a
    difference of ``limit`` or more."""
    a, b = (np.clip(np.nan_to_num(np.asarray(m, dtype=np.float32)), 0, 1) for m in (map_a, map_b))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"difference_image needs two 2-D maps of one size, got {a.shape} and {b.shape}")
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    difference = a - b
    weight = np.clip(np.abs(difference) / limit, 0, 1)[..., None]
    low, centre, high = (np.array(c, dtype=np.float32) for c in DIFFERENCE_COLORS)
    end = np.where((difference >= 0)[..., None], high, low)
    return Image.fromarray((centre + weight * (end - centre)).round().astype(np.uint8))


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


def picture_grid(pictures, titles=None, cols: int | None = None, height: int | None = None):
    """Same-sized pictures (PIL images or H×W×3 uint8 arrays) side by side in one plotly figure.

    ``titles`` (one per picture) are written above the pictures; ``cols`` pictures per row (all of
    them in one row by default); ``height`` in pixels (200 per row plus a margin by default). The
    pictures are embedded as JPEG, which keeps the figure small. Returns the
    ``plotly.graph_objects.Figure``; call ``.show()`` on it to display it.
    """
    import plotly.express as px  # plotly is needed for this figure only

    if len(pictures) == 0:
        raise ValueError("picture_grid needs at least one picture")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"{len(titles)} titles for {len(pictures)} pictures")
    cols = int(cols or len(pictures))
    stack = np.stack([np.asarray(p.convert("RGB") if hasattr(p, "convert") else p, dtype=np.uint8)
                      for p in pictures])
    fig = px.imshow(stack, facet_col=0, facet_col_wrap=cols, binary_string=True, binary_format="jpg",
                    facet_col_spacing=0.01, facet_row_spacing=0.07)
    for annotation in fig.layout.annotations:  # "facet_col=3" -> the picture's own title
        annotation.text = "" if titles is None else str(titles[int(annotation.text.split("=")[-1])])
        annotation.font.size = 11
    rows = -(-len(pictures) // cols)
    fig.update_layout(height=height or 50 + 200 * rows, margin=dict(l=0, r=0, t=30, b=0))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
