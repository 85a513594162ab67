"""The pictures of the stage strip and of two runs' map differences (drawn by ``spg_core.viz``),
sized and encoded for the page."""
from __future__ import annotations

import base64
import io

import numpy as np

from PIL import Image

from spg_app.thresholds import ThresholdView
from spg_core import viz
from spg_core.boxes import minmax_numpy
from spg_core.localize import StageMaps

STRIP_SIDE = 240  # display width of a strip tile, in CSS pixels
SMALL_SIDE = 256  # pictures up to this size are sent losslessly whatever they show
DIFFERENCE_MAPS = ("attention", "fused")  # maps two runs side by side are differenced on, when both have them


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


def data_url(data: bytes, fmt: str) -> str:
    """An encoded picture as a ``data:`` URL, which ``st.image`` passes to the browser as it is:
    the picture then travels inside the page's message, with no media file for the server to
    keep and no second request for the browser to make (what a first render waits for), and a
    list of pictures may mix formats."""
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode()}"


def png_bytes(image) -> bytes:
    """Lossless PNG (seed masks must stay exactly white/grey/black), fast compression: a slider
    move re-encodes the whole strip."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def strip_names(stage_maps: StageMaps) -> list[tuple[str, str]]:
    """(name, title) of the stage strip in the paper's order (Fig. 2 / Fig. 4): the image, each
    score map the model has and the seed mask Eq. 1 makes of it, then the final localisation map
    with its box."""
    from spg_core.guidance import STAGE_ORDER, STAGE_TITLES, STAGES

    masks = {stage.mask for stage in STAGES if stage.source in stage_maps.maps}
    names = [("image", "Image")]
    names += [(name, STAGE_TITLES[name]) for name in STAGE_ORDER if name in stage_maps.maps or name in masks]
    return names + [("final", "Localisation map + box")]


def map_picture(stage_maps: StageMaps, name: str, alpha: float = 0.5):
    """The image, or one score map over it (``viz.heatmap_overlay``): independent of δ and τ."""
    from spg_core import viz

    return stage_maps.image if name == "image" else viz.heatmap_overlay(stage_maps.image, stage_maps.maps[name], alpha)


def seed_picture(mask: np.ndarray):
    """A seed mask as in Fig. 4 (``viz.mask_image``): fg white, bg black, ignored grey — as a
    one-channel picture (the three greys are exact), a third of the bytes to encode."""
    from spg_core import viz

    return viz.mask_image(mask).convert("L")


def mask_picture(view: ThresholdView, name: str):
    """One stage's seed mask of ``view`` (:func:`seed_picture`)."""
    return seed_picture(view.masks[name])


def final_picture(stage_maps: StageMaps, box, alpha: float = 0.5, gt_boxes=None, box_stage: str = "attention"):
    """The localisation map (``box_stage``'s) with the predicted box (green) and GT (red)."""
    from spg_core import viz

    overlay = viz.heatmap_overlay(stage_maps.image, stage_maps.maps[box_stage], alpha)
    return viz.draw_boxes(overlay, [box], () if gt_boxes is None else gt_boxes)


def difference_picture(first: StageMaps, second: StageMaps, name: str):
    """``first`` − ``second`` of one map of two runs on the same image (``viz.difference_image``):
    red where the first is higher, blue where the second is. Independent of δ and τ."""
    from spg_core import viz

    return viz.difference_image(first.maps[name], second.maps[name])


def map_gaps(first: StageMaps, second: StageMaps) -> dict[str, tuple[float, float]]:
    """Mean and largest |first − second| of each of :data:`DIFFERENCE_MAPS` both runs' maps have."""
    out = {}
    for name in DIFFERENCE_MAPS:
        if name in first.maps and name in second.maps:
            gap = np.abs(first.maps[name] - second.maps[name])
            out[name] = (float(gap.mean()), float(gap.max()))
    return out


def strip_pictures(stage_maps: StageMaps, view: ThresholdView, alpha: float = 0.5, gt_boxes=None,
                   box_stage: str = "attention") -> list:
    """(name, title, picture) of the whole strip (:func:`strip_names`), every picture drawn."""
    out = []
    for name, title in strip_names(stage_maps):
        if name in view.masks:
            picture = mask_picture(view, name)
        elif name == "final":
            picture = final_picture(stage_maps, view.box, alpha, gt_boxes, box_stage)
        else:
            picture = map_picture(stage_maps, name, alpha)
        out.append((name, title, picture))
    return out


def maps_picture(sample, score_map, alpha: float = 0.5) -> Image.Image:
    """A maps folder's map (min-max normalised) over the image when the sample has one, else the
    colourised map alone at the image's size (metadata without images)."""
    normalized = minmax_numpy(score_map)
    if getattr(sample, "image", None) is not None:
        return viz.heatmap_overlay(sample.image, normalized, alpha)
    width, height = (int(v) for v in sample.size)
    return Image.fromarray(viz.colorize(normalized)).resize((width, height), Image.BILINEAR)
