"""The teaching benchmark: a generated dataset on which a CAM classifier fails the way SPG says
it does (paper §1, Fig. 1) — it classifies well but localises only the most discriminative part.

Every image holds one object:

- a large **body** (rotated ellipse, its long axis 40-65 % of the image side) whose look is the same family
  for every class: earthy brown/tan, mottled texture, shading towards the rim;
- a small **part** (a disc, 10-15 % of the object area) attached at the body's edge like a
  bird's head. Its look alone decides the class: a saturated hue and a pattern per class
  (8 hues × {solid, stripes, checker, dots} -> up to 32 classes). Nothing else in the image is
  saturated, so the part is the one discriminative region;
- a textured background (low-saturation colour, blotches, a grating) with clutter: random
  shapes, **body-like fragments** (body texture, no part) and **part-like fragments** (the
  part's shape and patterns in grey tones, no class hue). None of them depends on the class,
  so the label is decidable from the attached part only.

Ground truth: class, whole-object box (body + part) and whole-object mask; the box is the tight
box of the mask. Generation is deterministic per (seed, split, index), vectorised numpy, about
a millisecond per 96 px image, so datasets regenerate on the fly (nothing is cached on disk;
an in-memory LRU keeps recently used images). :func:`write_wsol` writes the benchmark in the
wsolevaluation layout for tools that want files.
"""
from __future__ import annotations

import argparse
import colorsys
import json
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from spg_core.data.dataset import SPLITS, Record, Sample, WSOLDataset, register_format
from spg_core.data.transforms import mask_box

PART_HUES = (0, 55, 95, 150, 190, 225, 270, 315)  # degrees; the body family sits at 20-42°
PART_PATTERNS = ("solid", "stripes", "checker", "dots")
MAX_CLASSES = len(PART_HUES) * len(PART_PATTERNS)
PART_POSITIONS = ("random", "top", "side", "end", "inside")
# What the class-deciding part looks like: "own" = its own saturated class colour and pattern
# (SPG's premise fails: nothing but position links the body to the part); "mark" = the body's
# colour and texture, carrying a small class-coloured mark (an eye-ring on a head of the body's
# colour: the premise holds, the part looks like the rest of the object).
PART_LOOKS = ("own", "mark")
MARK_RATIO = 0.5  # mark radius / part radius in the "mark" look (a quarter of its area)

# Named benchmark variants: generator options that decide whether SPG's premise (pixels of one
# object look alike, so guidance grown from the discriminative part spreads over the object) holds.
BENCHMARK_VARIANTS = {
    "premise-fails": {"part_look": "own", "part_position": "random"},   # the default images
    "part-inside": {"part_look": "own", "part_position": "inside"},     # a class-coloured disc inside the body
    "premise-holds": {"part_look": "mark", "part_position": "random"},  # a body-coloured head with a class mark
}
HUE_NAMES = ("red", "yellow", "lime", "green", "cyan", "blue", "violet", "magenta")
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_LABEL_STREAM = 1_000_003  # keeps label permutations and image streams independent


@dataclass
class SyntheticConfig:
    """Generator options (the CLI flags in brackets).

    image_size [--image-size]: side in pixels, 64-224. num_classes [--synthetic-classes]: 2-32.
    num_train/num_val/num_test [--synthetic-train/-val/-test]: images per split.
    part_position [--part-position]: where the part attaches — "random" (anywhere on the rim),
    "top" (topmost rim point), "side" (leftmost or rightmost), "end" (an end of the long axis,
    the bird-head layout), "inside" (a disc wholly inside the body, off its centre).
    part_look [--part-look]: "own" (default: the part in its own class colour and pattern) or
    "mark" (the part in the body's colour and texture with a small class-coloured mark, radius
    half the part's). clutter [--clutter]: 0 (plain textured background) to 1 (busy).
    body_cue [--body-cue]: 0 (default: the body carries no class information) to 1 (the body's
    hue is set by the class within the earthy 20-42° family); in between the body's hue mixes a
    random draw with the class hue, a weak, less discriminative cue like a bird's plumage next to
    its head. Clutter fragments never carry it. seed [--synthetic-seed].
    """

    image_size: int = 96
    num_classes: int = 8
    num_train: int = 4000
    num_val: int = 500
    num_test: int = 1000
    part_position: str = "random"
    part_look: str = "own"
    clutter: float = 0.5
    body_cue: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.image_size, (int, np.integer)) or not 64 <= self.image_size <= 224:
            raise ValueError(f"synthetic image_size={self.image_size!r} must be an integer in 64..224 (default 96)")
        if not isinstance(self.num_classes, (int, np.integer)) or not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"synthetic num_classes={self.num_classes!r} must be an integer in 2..{MAX_CLASSES}")
        for split in SPLITS:
            count = self.count(split)
            if not isinstance(count, (int, np.integer)) or count < 0:
                raise ValueError(f"synthetic num_{split}={count!r} must be a non-negative integer")
        if self.part_position not in PART_POSITIONS:
            raise ValueError(f"part_position={self.part_position!r} must be one of {PART_POSITIONS}")
        if self.part_look not in PART_LOOKS:
            raise ValueError(f"part_look={self.part_look!r} must be one of {PART_LOOKS} "
                             f"(own = class-coloured part, mark = body-coloured part with a class-coloured mark)")
        if not 0.0 <= float(self.clutter) <= 1.0:
            raise ValueError(f"clutter={self.clutter!r} must lie in [0, 1]")
        if not 0.0 <= float(self.body_cue) <= 1.0:
            raise ValueError(f"body_cue={self.body_cue!r} must lie in [0, 1] (0 = class-agnostic body, the default)")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"synthetic seed={self.seed!r} must be a non-negative integer")

    def count(self, split: str) -> int:
        return getattr(self, f"num_{split}")

    def options(self) -> dict:
        """The fields as ``build_dataset("synthetic", ..., **options)`` keywords (image_size is
        build_dataset's own argument)."""
        return {k: v for k, v in asdict(self).items() if k != "image_size"}


def class_names(num_classes: int) -> list[str]:
    """Human-readable names saying what decides each class: "<hue> <pattern> part"."""
    return [
        f"{HUE_NAMES[k % len(PART_HUES)]} {PART_PATTERNS[k // len(PART_HUES)]} part" for k in range(num_classes)
    ]


# ----------------------------------------------------------------------------- drawing helpers
def _rgb(hue_degrees: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_degrees % 360) / 360.0, saturation, value), np.float32)


def _window(cx: float, cy: float, radius: float, size: int):
    x0, x1 = max(0, int(math.floor(cx - radius))), min(size - 1, int(math.ceil(cx + radius)))
    y0, y1 = max(0, int(math.floor(cy - radius))), min(size - 1, int(math.ceil(cy + radius)))
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1, y1


_COORDS = np.arange(256, dtype=np.float32)  # pixel-centre coordinates, sliced per window


def _grid(window):
    """(xs 1×w, ys h×1) pixel coordinates of a window, as broadcastable float32 arrays."""
    x0, y0, x1, y1 = window
    return _COORDS[x0 : x1 + 1][None, :], _COORDS[y0 : y1 + 1][:, None]


def _ellipse_form(cx, cy, a, b, theta, window):
    """Quadratic form (u/a)² + (v/b)² of a rotated ellipse over a window (<= 1 inside), with
    (u, v) the offsets in the ellipse's own axes; expanded in dx, dy so that only three
    full-window operations are needed."""
    xs, ys = _grid(window)
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    c, s = math.cos(theta), math.sin(theta)
    ia, ib = 1.0 / (a * a), 1.0 / (b * b)
    xx, xy, yy = c * c * ia + s * s * ib, 2 * c * s * (ia - ib), s * s * ia + c * c * ib
    return (dx * dx * np.float32(xx) + (dy * dy) * np.float32(yy)) + (dx * np.float32(xy)) * dy


def _rectangle(cx, cy, a, b, theta, window):
    """Bool mask of a rotated rectangle of half-sides (a, b) over a window."""
    xs, ys = _grid(window)
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    return (np.abs(dx * c + dy * s) <= a) & (np.abs(dy * c - dx * s) <= b)


@lru_cache(maxsize=1024)
def _upsampler(length: int, grid: int) -> np.ndarray:
    """length×grid matrix interpolating grid knots to pixels with smoothstep weights
    (C¹-smooth, no overshoot); two matrix products upsample a coarse grid (much faster than
    cv2.resize at these sizes)."""
    position = (np.arange(length) + 0.5) / length * (grid - 1)
    left = np.minimum(np.floor(position).astype(int), grid - 2)
    t = position - left
    t = t * t * (3 - 2 * t)
    matrix = np.zeros((length, grid), np.float32)
    matrix[np.arange(length), left] = 1 - t
    matrix[np.arange(length), left + 1] = t
    return matrix


def _smooth_noise(rng, height: int, width: int, grid: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in about [-1, 1] (H×W×channels): a coarse random grid, upsampled."""
    coarse = rng.uniform(-1, 1, size=(channels, grid, grid)).astype(np.float32)
    fine = _upsampler(height, grid) @ coarse @ _upsampler(width, grid).T  # channels×H×W
    return fine.transpose(1, 2, 0)


def _pattern(kind: str, u, v, period: float) -> np.ndarray:
    """Two-tone pattern (bool: True = second colour) in a part's own frame."""
    if kind == "solid":
        return np.zeros(np.broadcast(u, v).shape, bool)
    if kind == "stripes":
        return (np.floor(u / period) % 2 == 1) & np.ones_like(v, bool)
    if kind == "checker":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    if kind == "dots":
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return du**2 + dv**2 < (0.36 * period) ** 2
    raise ValueError(f"unknown part pattern {kind!r}; choose one of {PART_PATTERNS}")


def _fill(image, window, inside, values) -> None:
    """image[window][inside] = values. (A full-shape ``where`` is several times faster than
    boolean indexing or a broadcast ``where`` on these small windows.)"""
    x0, y0, x1, y1 = window
    np.copyto(image[y0 : y1 + 1, x0 : x1 + 1], values, where=np.repeat(inside[..., None], 3, axis=2))


BODY_HUES = (20.0, 42.0)  # the earthy family every body is drawn from


def _body_colour(rng, cue: float = 0.0, label: int = 0) -> np.ndarray:
    """A body colour. ``cue`` > 0 pulls the hue towards the class's own point of the family
    (the same random draws either way, so cue 0 reproduces the class-agnostic images)."""
    low, high = BODY_HUES
    hue = rng.uniform(low, high)
    if cue > 0:
        class_hue = low + (high - low) * (label % len(PART_HUES)) / (len(PART_HUES) - 1)
        hue = (1.0 - cue) * hue + cue * class_hue
    return _rgb(hue, rng.uniform(0.35, 0.55), rng.uniform(0.45, 0.75))


def _paint_body(image, rng, cx, cy, a, b, theta, base, window):
    """Body look (class-agnostic): base colour × mottled texture × rim shading. Returns the
    painted bool mask within ``window``."""
    form = _ellipse_form(cx, cy, a, b, theta, window)
    inside = form <= 1.0
    x0, y0, x1, y1 = window
    texture = _smooth_noise(rng, y1 - y0 + 1, x1 - x0 + 1, grid=5)
    shade = (np.float32(1.0) - np.float32(0.3) * np.minimum(form, np.float32(1.0)))[..., None] * (
        np.float32(1.0) + np.float32(0.18) * texture
    )
    _fill(image, window, inside, shade * base)
    return inside


def _paint_part(image, rng, cx, cy, radius, kind, colour_a, colour_b, window):
    """A patterned disc; returns its bool mask within ``window``."""
    x0, y0, x1, y1 = window
    xs, ys = _grid(window)
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    inside = dx**2 + dy**2 <= np.float32(radius**2)
    phi = rng.uniform(0, math.pi)
    c, s = math.cos(phi), math.sin(phi)
    u, v = dx * c + dy * s + rng.uniform(0, 10), -dx * s + dy * c + rng.uniform(0, 10)
    second = _pattern(kind, u, v, period=max(2.5, 0.75 * radius))
    colours = np.where(second[..., None], colour_b, colour_a)
    _fill(image, window, inside, colours)
    return inside


# ----------------------------------------------------------------------------- geometry
@dataclass
class _Geometry:
    cx: float
    cy: float
    a: float
    b: float
    theta: float
    part_x: float  # relative to the body centre
    part_y: float
    part_radius: float


def _sample_geometry(rng, config: SyntheticConfig) -> _Geometry:
    size = config.image_size
    a = size * rng.uniform(0.2, 0.32)
    b = a / rng.uniform(1.3, 2.0)
    theta = rng.uniform(0, math.pi)
    c, s = math.cos(theta), math.sin(theta)
    position = config.part_position
    if position == "inside":
        return _inside_geometry(rng, config, a, b, theta)
    if position == "random":
        t = rng.uniform(0, 2 * math.pi)
    elif position == "end":
        t = 0.0 if rng.random() < 0.5 else math.pi
    else:
        # Rim point extreme in image y (top) or x (side): maximise the rotated coordinate.
        if position == "top":
            t = math.atan2(-b * c, -a * s)  # minimises y = a cos t · s + b sin t · c
        else:
            t = math.atan2(-b * s, a * c) if rng.random() < 0.5 else math.atan2(b * s, -a * c)
    rx, ry = a * math.cos(t), b * math.sin(t)  # rim point, body frame
    nx, ny = math.cos(t) / a, math.sin(t) / b  # outward normal, body frame
    norm = math.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    # Part disc size from the target part fraction f of the object area: with about 60 % of
    # the disc outside the body, disc = f·body / (1 - 0.6 f).
    fraction = rng.uniform(0.10, 0.15)
    disc_area = fraction * math.pi * a * b / (1 - 0.6 * fraction)
    radius = math.sqrt(disc_area / math.pi)
    px, py = rx + 0.45 * radius * nx, ry + 0.45 * radius * ny
    part_x, part_y = px * c - py * s, px * s + py * c  # to image frame (still centred on body)
    half_w = math.sqrt((a * c) ** 2 + (b * s) ** 2)
    half_h = math.sqrt((a * s) ** 2 + (b * c) ** 2)
    left = min(-half_w, part_x - radius)
    right = max(half_w, part_x + radius)
    top = min(-half_h, part_y - radius)
    bottom = max(half_h, part_y + radius)
    margin = 2.0
    cx = rng.uniform(margin - left, size - 1 - margin - right)
    cy = rng.uniform(margin - top, size - 1 - margin - bottom)
    return _Geometry(cx, cy, a, b, theta, part_x, part_y, radius)


def _inside_geometry(rng, config: SyntheticConfig, a: float, b: float, theta: float) -> _Geometry:
    """A part disc (10-15 % of the body's area) wholly inside the body, its centre at a random
    point of the ellipse shrunk by the disc's radius, at least half-way out from the centre."""
    size = config.image_size
    radius = math.sqrt(rng.uniform(0.10, 0.15) * a * b)
    t, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 1.0)
    px, py = r * (a - radius) * math.cos(t), r * (b - radius) * math.sin(t)
    c, s = math.cos(theta), math.sin(theta)
    half_w = math.sqrt((a * c) ** 2 + (b * s) ** 2)
    half_h = math.sqrt((a * s) ** 2 + (b * c) ** 2)
    margin = 2.0
    cx = rng.uniform(margin + half_w, size - 1 - margin - half_w)
    cy = rng.uniform(margin + half_h, size - 1 - margin - half_h)
    return _Geometry(cx, cy, a, b, theta, px * c - py * s, px * s + py * c, radius)


def _object_windows(geometry: _Geometry, size: int):
    """[(window, bool mask within it)] for the body and the part of a geometry."""
    g = geometry
    window = _window(g.cx, g.cy, g.a + 1, size)
    body = _ellipse_form(g.cx, g.cy, g.a, g.b, g.theta, window) <= 1.0
    pcx, pcy = g.cx + g.part_x, g.cy + g.part_y
    part_window = _window(pcx, pcy, g.part_radius + 1, size)
    xs, ys = _grid(part_window)
    part = (xs - np.float32(pcx)) ** 2 + (ys - np.float32(pcy)) ** 2 <= np.float32(g.part_radius**2)
    return [(window, body), (part_window, part)]


def _object_masks(geometry: _Geometry, size: int):
    """(body, part) bool masks, full image size, for a geometry."""
    masks = []
    for (x0, y0, x1, y1), inside in _object_windows(geometry, size):
        full = np.zeros((size, size), bool)
        full[y0 : y1 + 1, x0 : x1 + 1] = inside
        masks.append(full)
    return tuple(masks)


# ----------------------------------------------------------------------------- the generator
@dataclass
class SyntheticImage:
    """One generated image. ``mask`` = body ∪ part (uint8 0/1), ``box`` its tight inclusive box
    (1×4); ``body_mask``/``part_mask`` (bool) show which pixels decide the class: the part, or
    in the "mark" look the mark alone (``body_mask`` is then the whole object)."""

    image: np.ndarray  # uint8 H×W×3
    mask: np.ndarray
    box: np.ndarray
    label: int
    body_mask: np.ndarray
    part_mask: np.ndarray


def labels_of(config: SyntheticConfig, split: str, count: int | None = None) -> np.ndarray:
    """Labels of the first ``count`` images of ``split``. Balanced: every consecutive block of
    num_classes images is a seeded permutation of the classes, so class counts differ by at most
    one and the order carries no signal."""
    count = config.count(split) if count is None else count
    blocks = -(-count // config.num_classes)
    permutations = [
        np.random.default_rng([config.seed, _SPLIT_CODES[split], block, _LABEL_STREAM]).permutation(config.num_classes)
        for block in range(blocks)
    ]
    return np.concatenate(permutations or [np.zeros(0, int)])[:count]


def label_of(config: SyntheticConfig, split: str, index: int) -> int:
    block, offset = divmod(index, config.num_classes)
    rng = np.random.default_rng([config.seed, _SPLIT_CODES[split], block, _LABEL_STREAM])
    return int(rng.permutation(config.num_classes)[offset])


def _image_rng(config: SyntheticConfig, split: str, index: int):
    return np.random.default_rng([config.seed, _SPLIT_CODES[split], index])


def object_geometry_box(config: SyntheticConfig, split: str, index: int) -> np.ndarray:
    """The GT box of image ``index`` without painting it (used to build records quickly)."""
    geometry = _sample_geometry(_image_rng(config, split, index), config)
    boxes = []
    for (x0, y0, _, _), inside in _object_windows(geometry, config.image_size):
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        boxes.append([x0 + cols[0], y0 + rows[0], x0 + cols[-1], y0 + rows[-1]])
    # The tight box of a union is the union of the tight boxes.
    (a0, b0, a1, b1), (c0, d0, c1, d1) = boxes
    return np.array([[min(a0, c0), min(b0, d0), max(a1, c1), max(b1, d1)]], np.float32)


def generate(config: SyntheticConfig, split: str, index: int) -> SyntheticImage:
    """Image ``index`` of ``split``: identical bytes for identical (config, split, index)."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    size, clutter = config.image_size, float(config.clutter)
    label = label_of(config, split, index)
    rng = _image_rng(config, split, index)
    geometry = _sample_geometry(rng, config)  # first draws: object_geometry_box repeats them
    body_mask, part_mask = _object_masks(geometry, size)
    object_mask = body_mask | part_mask

    # Background: low-saturation colour, blotches and a grating (texture grows with clutter).
    base = _rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.8))
    blotches = _smooth_noise(rng, size, size, grid=int(rng.integers(3, 8)), channels=3)
    # Mostly brightness, a little tint: the background must stay far less saturated than parts.
    blotches = 0.7 * blotches[..., :1] + 0.3 * blotches
    image = base[None, None, :] + np.float32(0.06 + 0.14 * clutter) * blotches
    angle, period = rng.uniform(0, math.pi), rng.uniform(4, 16)
    # sin(kx·x + ky·y + φ) = sin(kx·x)cos(ky·y + φ) + cos(kx·x)sin(ky·y + φ): two outer products.
    kx, ky = math.cos(angle) * 2 * math.pi / period, math.sin(angle) * 2 * math.pi / period
    xs, ys = _COORDS[:size], _COORDS[:size] * np.float32(ky) + np.float32(rng.uniform(0, 2 * math.pi))
    grating = np.outer(np.cos(ys), np.sin(xs * np.float32(kx))) + np.outer(np.sin(ys), np.cos(xs * np.float32(kx)))
    image += np.float32(0.08 * clutter * rng.random()) * grating[..., None]

    # Clutter behind the object; none of it depends on the label.
    typical_a = 0.26 * size
    shapes = rng.random((int(rng.poisson(12 * clutter)), 9))  # one draw for all shape parameters
    for hue, saturation, value, x, y, extent, aspect, angle, kind in shapes:
        cx, cy = x * size, y * size
        a = size * (0.03 + 0.09 * extent)
        b = a * (0.25 + 0.75 * aspect)
        window = _window(cx, cy, a + 1, size)
        if window is None:
            continue
        if kind < 0.5:
            shape = _ellipse_form(cx, cy, a, b, angle * math.pi, window) <= 1.0
        else:
            shape = _rectangle(cx, cy, a, b, angle * math.pi, window)
        colour = _rgb(360 * hue, 0.3 * saturation, 0.15 + 0.75 * value)
        _fill(image, window, shape, colour)
    obj_x0, obj_y0, obj_x1, obj_y1 = mask_box(object_mask.astype(np.uint8))[0]
    for kind in ["body"] * int(rng.poisson(1.5 * clutter)) + ["part"] * int(rng.poisson(2.5 * clutter)):
        if kind == "body":
            a = typical_a * rng.uniform(0.3, 0.6)
            b = a / rng.uniform(1.0, 2.0)
        else:
            a = b = geometry.part_radius * rng.uniform(0.8, 1.25)
        for _attempt in range(4):  # keep fragments off the object so the GT stays unambiguous
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            if cx + a < obj_x0 - 2 or cx - a > obj_x1 + 2 or cy + a < obj_y0 - 2 or cy - a > obj_y1 + 2:
                break
        else:
            continue
        window = _window(cx, cy, a + 1, size)
        if window is None:
            continue
        if kind == "body":
            _paint_body(image, rng, cx, cy, a, b, rng.uniform(0, math.pi), _body_colour(rng), window)
        else:
            grey_a = _rgb(rng.uniform(0, 360), rng.uniform(0, 0.15), rng.uniform(0.5, 1.0))
            grey_b = _rgb(rng.uniform(0, 360), rng.uniform(0, 0.15), rng.uniform(0.0, 0.4))
            _paint_part(image, rng, cx, cy, a, PART_PATTERNS[int(rng.integers(len(PART_PATTERNS)))], grey_a, grey_b, window)

    # The object: the body (class-agnostic unless body_cue > 0), then the class-deciding part on top.
    g = geometry
    window = _window(g.cx, g.cy, g.a + 1, size)
    body_colour = _body_colour(rng, float(config.body_cue), label)
    _paint_body(image, rng, g.cx, g.cy, g.a, g.b, g.theta, body_colour, window)
    hue = PART_HUES[label % len(PART_HUES)] + rng.uniform(-5, 5)
    kind = PART_PATTERNS[label // len(PART_HUES)]
    colour_a = _rgb(hue, rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0))
    colour_b = _rgb(hue, rng.uniform(0.8, 1.0), rng.uniform(0.3, 0.45))
    pcx, pcy = g.cx + g.part_x, g.cy + g.part_y
    part_window = _window(pcx, pcy, g.part_radius + 1, size)
    if config.part_look == "mark":
        # The part in the body's own look (same colour, same texture), a small class mark on it.
        _paint_body(image, rng, pcx, pcy, g.part_radius, g.part_radius, 0.0, body_colour, part_window)
        mark_radius = MARK_RATIO * g.part_radius
        angle, offset = rng.uniform(0, 2 * math.pi), rng.uniform(0, g.part_radius - mark_radius - 0.5)
        mcx, mcy = pcx + offset * math.cos(angle), pcy + offset * math.sin(angle)
        inside = _paint_part(image, rng, mcx, mcy, mark_radius, kind, colour_a, colour_b,
                             _window(mcx, mcy, mark_radius + 1, size))
        x0, y0, x1, y1 = _window(mcx, mcy, mark_radius + 1, size)
        body_mask = object_mask.copy()
        part_mask = np.zeros_like(object_mask)
        part_mask[y0 : y1 + 1, x0 : x1 + 1] = inside
    else:
        _paint_part(image, rng, pcx, pcy, g.part_radius, kind, colour_a, colour_b, part_window)

    image += (rng.random((size, size, 1), dtype=np.float32) - np.float32(0.5)) * np.float32(0.07)  # grain
    pixels = np.clip(image * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)
    mask = object_mask.astype(np.uint8)
    return SyntheticImage(pixels, mask, mask_box(mask), label, body_mask, part_mask)


# ----------------------------------------------------------------------------- dataset
class SyntheticDataset(WSOLDataset):
    """The benchmark as a dataset: images are generated on access (LRU-cached in memory)."""

    def __init__(self, config: SyntheticConfig, split: str, image_size: int, train: bool, cache_size: int = 256):
        count = config.count(split)
        if count == 0:
            raise ValueError(f"synthetic split {split!r} has num_{split}=0 images; set --synthetic-{split} above 0")
        labels = labels_of(config, split, count)
        records = [
            Record(
                image_id=f"{split}/{index:05d}.png",
                label=int(labels[index]),
                boxes=object_geometry_box(config, split, index),
                size=(config.image_size, config.image_size),
                source=f"synthetic seed={config.seed} {split}[{index}]",
            )
            for index in range(count)
        ]
        super().__init__(records, class_names(config.num_classes), image_size, train, format="synthetic", split=split)
        self.config = config
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[int, Sample] = OrderedDict()

    def read(self, index: int) -> Sample:
        index = index + len(self.records) if index < 0 else index
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} synthetic images")
        generated = generate(self.config, self.split, index)
        record = self.records[index]
        size = (self.config.image_size, self.config.image_size)
        sample = Sample(Image.fromarray(generated.image, "RGB"), generated.label, generated.box, generated.mask, record.image_id, size)
        if self.cache_size > 0:
            self._cache[index] = sample
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return sample

    def read_annotation(self, index: int) -> Sample:
        """The generated sample, image included: the mask is drawn with the image."""
        return self.read(index)


_CONFIG_FIELDS = tuple(f.name for f in fields(SyntheticConfig))


@register_format("synthetic")
def build_synthetic(
    split,
    data_root,
    metadata_root,
    image_size,
    train,
    config: SyntheticConfig | None = None,
    num_classes: int | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
    counts=None,
    part_position: str | None = None,
    part_look: str | None = None,
    clutter: float | None = None,
    body_cue: float | None = None,
    seed: int | None = None,
    cache_size: int = 256,
) -> SyntheticDataset:
    """``build_dataset("synthetic", split, image_size=S, **SyntheticConfig(...).options())``.

    Without ``config`` the generator draws at ``image_size``; with one, at ``config.image_size``
    (and the transform resizes to ``image_size``). ``counts`` = {"train": n, ...} or a
    (train, val, test) triple is an alternative to num_train/num_val/num_test. ``data_root``
    and ``metadata_root`` are not used (nothing is written to disk).
    """
    overrides = dict(num_classes=num_classes, num_train=num_train, num_val=num_val, num_test=num_test,
                     part_position=part_position, part_look=part_look, clutter=clutter, body_cue=body_cue, seed=seed)
    if counts is not None:
        values = counts if isinstance(counts, dict) else dict(zip(SPLITS, counts))
        unknown = sorted(set(values) - set(SPLITS))
        if unknown:
            raise ValueError(f"counts has unknown split(s) {unknown}; use keys {SPLITS}")
        overrides.update({f"num_{k}": int(v) for k, v in values.items()})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config is None:
        config = SyntheticConfig(image_size=int(image_size), **overrides)
    else:
        config = replace(config, **overrides)
    return SyntheticDataset(config, split, image_size, train, cache_size=cache_size)


# ----------------------------------------------------------------------------- files and flags
def write_wsol(root: str | Path, config: SyntheticConfig | None = None, splits=SPLITS, progress: bool = True) -> Path:
    """Write the benchmark in the wsolevaluation layout (mask form, as for OpenImages)::

        root/images/<split>/<index>.png
        root/masks/<split>/<index>_mask.png     object = 255
        root/masks/<split>/<index>_ignore.png   all 0 (the benchmark has no ignore region)
        root/metadata/<split>/{image_ids,class_labels,image_sizes,localization}.txt
        root/metadata/class_names.txt, root/metadata/synthetic_config.json

    ``build_dataset("wsol", split, data_root=root)`` reads it back identically (same ids,
    pixels, labels, boxes — derived from the masks — and masks).
    """
    from tqdm import tqdm

    config = config or SyntheticConfig()
    root = Path(root)
    metadata = root / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    (metadata / "class_names.txt").write_text("\n".join(class_names(config.num_classes)) + "\n")
    (metadata / "synthetic_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    for split in splits:
        count = config.count(split)
        for folder in (root / "images" / split, root / "masks" / split, metadata / split):
            folder.mkdir(parents=True, exist_ok=True)
        ids, labels, sizes, localization = [], [], [], []
        for index in tqdm(range(count), desc=f"writing {split}", disable=not progress, leave=False):
            generated = generate(config, split, index)
            image_id = f"{split}/{index:05d}.png"
            mask_name, ignore_name = f"{split}/{index:05d}_mask.png", f"{split}/{index:05d}_ignore.png"
            Image.fromarray(generated.image, "RGB").save(root / "images" / image_id)
            Image.fromarray(generated.mask * 255).save(root / "masks" / mask_name)
            Image.fromarray(np.zeros_like(generated.mask)).save(root / "masks" / ignore_name)
            ids.append(image_id)
            labels.append(f"{image_id},{generated.label}")
            sizes.append(f"{image_id},{config.image_size},{config.image_size}")
            localization.append(f"{image_id},{mask_name},{ignore_name}")
        for name, lines in (("image_ids", ids), ("class_labels", labels), ("image_sizes", sizes), ("localization", localization)):
            (metadata / split / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    return root


# Generator flags (add_synthetic_arguments) → SyntheticConfig field names.
SYNTHETIC_FLAGS = {"synthetic_classes": "num_classes", "synthetic_train": "num_train", "synthetic_val": "num_val",
                   "synthetic_test": "num_test", "part_position": "part_position", "part_look": "part_look",
                   "clutter": "clutter", "body_cue": "body_cue", "synthetic_seed": "seed"}


def add_synthetic_arguments(parser: argparse.ArgumentParser) -> None:
    """Generator flags shared by every subcommand (the image size comes from --image-size)."""
    defaults = SyntheticConfig()
    group = parser.add_argument_group("synthetic benchmark (--format synthetic)")
    group.add_argument("--synthetic-classes", type=int, default=defaults.num_classes, help=f"classes, 2..{MAX_CLASSES}")
    group.add_argument("--synthetic-train", type=int, default=defaults.num_train, help="training images")
    group.add_argument("--synthetic-val", type=int, default=defaults.num_val, help="validation images (threshold choice)")
    group.add_argument("--synthetic-test", type=int, default=defaults.num_test, help="test images")
    group.add_argument("--part-position", choices=PART_POSITIONS, default=defaults.part_position,
                       help="where the class-deciding part sits: on the body's rim, or inside it")
    group.add_argument("--part-look", choices=PART_LOOKS, default=defaults.part_look,
                       help="own: the part in its own class colour (SPG's premise fails); mark: the part in "
                            "the body's look with a small class-coloured mark (the premise holds)")
    group.add_argument("--clutter", type=float, default=defaults.clutter, help="background clutter, 0..1")
    group.add_argument("--body-cue", type=float, default=defaults.body_cue,
                       help="class information in the body's hue, 0 (none, default) .. 1")
    group.add_argument("--synthetic-seed", type=int, default=defaults.seed, help="generator seed")


def synthetic_config_from_args(args: argparse.Namespace, image_size: int | None = None) -> SyntheticConfig:
    """SyntheticConfig from parsed flags; flags absent from ``args`` or set to None keep their
    defaults (so a parser may default them to None to detect "not given")."""
    options = SyntheticConfig().options()
    options.update({option: getattr(args, flag) for flag, option in SYNTHETIC_FLAGS.items()
                    if getattr(args, flag, None) is not None})
    size = image_size if image_size is not None else getattr(args, "image_size", None)
    return SyntheticConfig(image_size=int(size) if size is not None else SyntheticConfig().image_size, **options)
