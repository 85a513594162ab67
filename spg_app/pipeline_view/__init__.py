"""The whole SPG pipeline of one image in one panel, thresholded in the browser.

A Streamlit custom component (plain HTML/CSS/JS in ``frontend/``, no build step, no network):
Python sends the image and its float32 maps once; the browser applies δ_l/δ_h (Eq. 1, with the
fallback and the preset's precedence), τ (min-max, ``>= τ``, largest 8-connected component) and
the map opacity on every animation frame while a thumb moves, with no server round trip, and
sends the values to Python once, on release. ``frontend/spg_compute.js`` holds the rules; it
agrees bit for bit with ``spg_core`` (``tests/test_pipeline_view_parity.py``).

    from spg_app.pipeline_view import PipelineRun, pipeline_view

    run = PipelineRun("synthetic-spg", image, maps, precedence=preset.precedence,
                      gt_boxes=boxes, object_region=region, gt_mask=mask == 1)
    released = pipeline_view([run], {"mask_a": (0.05, 0.7), "mask_b2": (0.05, 0.5),
                                     "mask_fuse": (0.1, 0.7)}, tau=0.5, alpha=0.5)
    if released is not None and released["nonce"] != seen_nonce:  # a new release
        thresholds, tau, alpha = released["thresholds"], released["tau"], released["alpha"]

How the pieces fit: docs/pipeline_view.md.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spg_core.guidance import PRECEDENCES, STAGE_NAMES, check_precedence
from spg_core.stages import MAP_TITLES, SCORE_MAPS, STAGES

FRONTEND = Path(__file__).resolve().parent / "frontend"
PAYLOAD_VERSION = 1
MAX_SIDE = 1024  # a map larger than this would make a multi-megabyte message per rerun
_component = None
_PAYLOAD_CACHE: dict[str, dict] = {}  # run digest -> its encoded payload, shared by every session
_PAYLOAD_LOCK = threading.Lock()
PAYLOAD_CACHE_SIZE = 64  # payloads of 128-224 px images are 0.2-1.5 MB: a class on a few dozen images


@dataclass
class PipelineRun:
    """One model's view of one image.

    ``maps``: map name (``spg_core.stages.SCORE_MAPS``: attention, b2, b1, fused, c) → float32
    H×W in [0, 1] at the image's resolution (``StageMaps.maps``); any subset: an SPG-plain or the
    ImageNet model has only ``attention``. ``precedence``: the preset's (PRECEDENCES).
    ``gt_boxes``: K×4 inclusive (x0, y0, x1, y1) or None. ``object_region``: bool H×W, the
    reference of seed precision (``spg_core.sweeps.object_mask``: the GT mask, else the GT boxes'
    area) or None. ``gt_mask``: bool H×W whose contour is drawn, or None."""

    label: str
    image: object  # PIL.Image.Image
    maps: dict
    precedence: str = "foreground"
    gt_boxes: object = None
    object_region: object = None
    gt_mask: object = None


# ----------------------------------------------------------------------------- encoding
def encode_map(score_map) -> str:
    """A map as base64 of its float32 little-endian bytes, row by row (what the browser's
    Float32Array reads back exactly)."""
    array = np.ascontiguousarray(np.asarray(score_map, dtype="<f4"))
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_map(text: str, shape: tuple[int, int]) -> np.ndarray:
    """:func:`encode_map` undone (for tests)."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape).astype(np.float32)


def encode_bits(mask) -> str:
    """A bool H×W as base64 of its bits packed 8 to a byte, most significant first (numpy's packbits)."""
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes()).decode("ascii")


def decode_bits(text: str, shape: tuple[int, int]) -> np.ndarray:
    """:func:`encode_bits` undone (for tests)."""
    count = int(np.prod(shape))
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:count].reshape(shape).astype(bool)


def _image_digest(image) -> tuple[str, object]:
    rgb = image.convert("RGB")
    return hashlib.sha1(rgb.tobytes() + repr(rgb.size).encode()).hexdigest(), rgb


def encode_image(image) -> str:
    """The image as a PNG data URL (lossless: it is drawn under the maps at its own size)."""
    rgb = image.convert("RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=1)
def colour_lut() -> tuple[int, ...]:
    """The 256 RGB colours of ``spg_core.viz.colorize`` (the app's one colour scale), flat:
    colorize's own output at a value inside each of its 256 uint8 levels."""
    from spg_core.viz import colorize

    levels = ((np.arange(256) + 0.5) / 255).astype(np.float32)[None]  # uint8(v * 255) == k, 1 clips to 255
    return tuple(colorize(levels)[0].astype(int).ravel().tolist())


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, int]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but the image is {shape[0]}x{shape[1]} (H×W); "
                         "give maps and masks at the image's own resolution")


def run_payload(run: PipelineRun) -> tuple[dict, str]:
    """What the browser gets of one run, validated: the image, each map as float32, the GT
    boxes, the object region and the GT mask as packed bits; and a digest of it all. Encoded
    once per content: a rerun, or another session on the same image, passes the same maps again."""
    check_precedence(run.precedence)
    width, height = run.image.size
    shape = (height, width)
    if max(shape) > MAX_SIDE:
        raise ValueError(f"the image is {width}x{height}; the pipeline view takes images up to {MAX_SIDE} px a side "
                         "(downscale it first, as the app does with uploads)")
    unknown = sorted(set(run.maps) - set(SCORE_MAPS))
    if unknown:
        raise ValueError(f"unknown map(s) {unknown}; the maps are named {SCORE_MAPS}")
    maps = {}
    for name in SCORE_MAPS:
        if name in run.maps:
            array = np.ascontiguousarray(np.asarray(run.maps[name], dtype="<f4"))
            _check_shape(f"map {name!r}", array, shape)
            maps[name] = array
    masks = {}
    for field in ("object_region", "gt_mask"):
        value = getattr(run, field)
        if value is not None:
            array = np.asarray(value).astype(bool)
            _check_shape(field, array, shape)
            masks[field] = array
    boxes = (np.asarray(run.gt_boxes, dtype=np.float64).reshape(-1, 4).astype(np.int64).tolist()
             if run.gt_boxes is not None else None)
    image_digest, rgb = _image_digest(run.image)
    digest = hashlib.sha1(repr((PAYLOAD_VERSION, str(run.label), run.precedence, shape, image_digest, boxes,
                                sorted(maps), sorted(masks))).encode())
    for array in (*maps.values(), *masks.values()):
        digest.update(array.tobytes())
    key = digest.hexdigest()
    payload = _PAYLOAD_CACHE.get(key)
    if payload is None:
        payload = {"label": str(run.label), "width": width, "height": height, "image": encode_image(rgb),
                   "maps": {name: encode_map(array) for name, array in maps.items()}, "precedence": run.precedence,
                   "gt_boxes": boxes, "object_region": None, "gt_mask": None}
        payload.update({field: encode_bits(array) for field, array in masks.items()})
        with _PAYLOAD_LOCK:  # sessions run in threads of one process
            while len(_PAYLOAD_CACHE) >= PAYLOAD_CACHE_SIZE:
                _PAYLOAD_CACHE.pop(next(iter(_PAYLOAD_CACHE)))
            _PAYLOAD_CACHE[key] = payload
    return payload, key


def clean_values(thresholds: dict, tau: float, alpha: float) -> tuple[dict, float, float]:
    """The thresholds of every guided stage as floats (δ_l, δ_h), τ and α, checked."""
    missing = [stage for stage in STAGE_NAMES if stage not in thresholds]
    unknown = sorted(set(thresholds) - set(STAGE_NAMES))
    if missing or unknown:
        raise ValueError(f"thresholds need exactly the stages {STAGE_NAMES}; missing {missing}, unknown {unknown}")
    values = {}
    for stage in STAGE_NAMES:
        low, high = (float(v) for v in thresholds[stage])
        if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
            raise ValueError(f"{stage} thresholds ({low}, {high}) must lie in [0, 1]")
        values[stage] = [low, high]
    tau, alpha = float(tau), float(alpha)
    if not (0.0 <= tau <= 1.0 and 0.0 <= alpha <= 1.0):
        raise ValueError(f"tau={tau} and alpha={alpha} must lie in [0, 1]")
    return values, tau, alpha


def stage_table() -> list[dict]:
    """The guided stages as the browser draws them (``spg_core.stages.STAGES``)."""
    return [{"mask": s.mask, "source": s.source, "branch": s.branch, "title": s.title,
             "source_title": s.source_title, "branch_title": MAP_TITLES[s.branch]} for s in STAGES]


def build_args(runs: list[PipelineRun], thresholds: dict, tau: float, alpha: float,
               box_stage: str = "attention") -> dict:
    """The component's arguments (JSON): the data (with a digest, so the browser decodes a
    run's maps only when they change) and the values to show."""
    if not runs:
        raise ValueError("pipeline_view needs at least one PipelineRun")
    if box_stage not in SCORE_MAPS:
        raise ValueError(f"box_stage={box_stage!r} is not a map; choose one of {SCORE_MAPS}")
    values, tau, alpha = clean_values(thresholds, tau, alpha)
    payloads = [run_payload(run) for run in runs]
    data = {"version": PAYLOAD_VERSION, "runs": [payload for payload, _ in payloads], "box_stage": box_stage,
            "lut": colour_lut(), "stages": stage_table(), "map_titles": dict(MAP_TITLES),
            "precedences": list(PRECEDENCES)}
    data_key = hashlib.sha1(repr((box_stage, [key for _, key in payloads])).encode()).hexdigest()[:16]
    return {"data": data, "data_key": data_key, "values": {"thresholds": values, "tau": tau, "alpha": alpha}}


# ----------------------------------------------------------------------------- the value sent back
def read_value(value) -> dict | None:
    """The component's value as Python gets it (JSON: lists) → ``{"thresholds": {stage: (δ_l,
    δ_h)}, "tau": τ, "alpha": α, "nonce": n}`` with tuples of floats; None before any release or
    when the value is not one the component sends."""
    if not isinstance(value, dict):
        return None
    try:
        thresholds = {stage: (float(value["thresholds"][stage][0]), float(value["thresholds"][stage][1]))
                      for stage in STAGE_NAMES}
        return {"thresholds": thresholds, "tau": float(value["tau"]), "alpha": float(value["alpha"]),
                "nonce": int(value["nonce"])}
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _declare():
    global _component
    if _component is None:
        import streamlit.components.v1 as components

        _component = components.declare_component("pipeline_view", path=str(FRONTEND))
    return _component


def pipeline_view(runs: list[PipelineRun], thresholds: dict[str, tuple[float, float]], tau: float, alpha: float,
                  *, box_stage: str = "attention", key: str = "pipeline", on_change=None) -> dict | None:
    """Draw the pipeline of ``runs`` (one, or several side by side: one drag moves them all) at
    ``thresholds`` ({"mask_a" | "mask_b2" | "mask_fuse": (δ_l, δ_h)}), box threshold ``tau`` and
    map opacity ``alpha``; the box comes from the ``box_stage`` map.

    Returns the values the user released last, ``{"thresholds": {stage: (δ_l, δ_h)}, "tau": τ,
    "alpha": α, "nonce": n}`` (thresholds already through ``clean_thresholds``), or None before
    the first release. The value stays the same on later reruns: apply it when its ``nonce``
    (new at each release) differs from the one applied last. Values passed in that differ from
    those of the previous call (a preset reset, a deep link) are shown. ``on_change``: a callback
    run on each release before the script reruns (it may choose which parts rerun)."""
    args = build_args(runs, thresholds, tau, alpha, box_stage)
    raw = _declare()(**args, key=key, default=None, on_change=on_change)
    return read_value(raw)
