"""δ sweeps: how clean the Eq. 1 seeds are, over many images, for a grid of (δ_l, δ_h).

Eq. 1 turns a score map into seeds with two thresholds; the paper picks them by hand (§3.2,
§4.1) and the reference codes disagree on Mask-A's δ_l (see ``guidance.PRESETS``). A sweep
answers the question behind the choice: for each (δ_l, δ_h), what fraction of the image
becomes foreground / background / ignored seeds, how many of those seeds are right against the
ground truth (seed precision), and how often the 30-pixel fallback fires.

:func:`seed_sweep` is pure (maps and masks in, numbers out) and calls
:func:`spg_core.guidance.seed_mask`, so a cell of the sweep is exactly what training would
produce at those thresholds, fallback included. :func:`guidance_batches` supplies the maps
Algorithm 1 thresholds during training (GT-class attention, B2, fused guidance at the
seed-mask resolution) from a model and a dataset.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from scipy import ndimage

from spg_core.boxes import resize_boxes
from spg_core.guidance import (
    BACKGROUND,
    FALLBACK_MIN_PIXELS,
    FALLBACK_RATIO,
    FOREGROUND,
    IGNORE,
    STAGES,
    GuidancePreset,
    get_preset,
    seed_mask,
    self_produced_guidance,
)

__all__ = [
    "SWEEP_STATISTICS",
    "object_mask",
    "seed_sweep",
    "summarize_sweep",
    "guidance_batches",
    "seed_composition",
    "score_by_distance",
    "DISTANCE_BINS",
]

# Per image and grid cell; the definitions are guidance.seed_statistics' plus the fallback flag.
SWEEP_STATISTICS = ("foreground", "background", "ignored", "foreground_precision", "background_precision", "fallback")


def object_mask(mask, boxes, shape: tuple[int, int]) -> np.ndarray:
    """The object's ground-truth region as a bool H×W array, the reference for seed precision.

    A GT mask (1 object / 0 background / 255 ignore) gives ``mask == 1`` (ignored pixels count
    as not-object, so a foreground seed there lowers precision). Without a mask the union of
    the GT boxes (inclusive pixel coordinates, truncated to integers) stands in for the object:
    the only region the box annotation vouches for.
    """
    height, width = int(shape[0]), int(shape[1])
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (height, width):
            raise ValueError(f"GT mask has shape {mask.shape} but the score map is {height}x{width}; "
                             "resize the mask (nearest neighbour) to the map first")
        return mask == 1
    region = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes if boxes is not None else [], dtype=np.float64).reshape(-1, 4):
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), width - 1), min(int(y1), height - 1)
        if x1 >= x0 and y1 >= y0:
            region[y0 : y1 + 1, x0 : x1 + 1] = True
    return region


def _check_grid(deltas, name: str) -> np.ndarray:
    values = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError(f"{name} is empty; give at least one threshold in [0, 1]")
    if ((values < 0) | (values > 1)).any():
        raise ValueError(f"{name}={values.tolist()} must lie in [0, 1] (they threshold maps in [0, 1])")
    return values


def _stack_groups(score_maps) -> list[tuple[np.ndarray, torch.Tensor]]:
    """(positions, N_g×H×W float tensor) for each group of maps of one shape (batched seed_mask)."""
    if isinstance(score_maps, (np.ndarray, torch.Tensor)):
        maps = torch.as_tensor(np.asarray(score_maps) if isinstance(score_maps, np.ndarray) else score_maps).float()
        if maps.dim() == 2:
            maps = maps.unsqueeze(0)
        if maps.dim() != 3:
            raise ValueError(f"score maps must be N×H×W (or a list of H×W maps); got shape {tuple(maps.shape)}")
        return [(np.arange(maps.shape[0]), maps)]
    groups: dict[tuple[int, int], list[int]] = {}
    arrays = [torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in score_maps]
    for position, array in enumerate(arrays):
        if array.dim() != 2:
            raise ValueError(f"score map {position} must be 2-D (H×W); got shape {tuple(array.shape)}")
        groups.setdefault(tuple(array.shape), []).append(position)
    return [(np.array(positions), torch.stack([arrays[p] for p in positions])) for positions in groups.values()]


def seed_sweep(score_maps, object_masks, deltas_low: Sequence[float], deltas_high: Sequence[float],
               min_pixels: int = FALLBACK_MIN_PIXELS, fallback_ratio: float = FALLBACK_RATIO,
               precedence: str = "foreground") -> dict[str, np.ndarray]:
    """Seed statistics of every image at every (δ_l, δ_h) of a grid.

    ``score_maps``: N×H×W array/tensor in [0, 1], or a list of H×W maps of any sizes.
    ``object_masks``: the matching bool object regions (:func:`object_mask`), or None for
    coverage only. Returns {statistic: float array (N, len(deltas_low), len(deltas_high))} for
    :data:`SWEEP_STATISTICS` (precisions only with object masks). Fractions are in [0, 1];
    ``fallback`` is 1.0 where fewer than ``min_pixels`` pixels passed δ_h and Eq. 1 used
    ``fallback_ratio · max`` instead. Cells with δ_l >= δ_h (not an Eq. 1 pair) are NaN, and so
    is a precision with no seed of its kind — as in :func:`spg_core.guidance.seed_statistics`.
    ``precedence``: the seed a pixel gets where the fallback falls below δ_l (a preset's
    ``precedence``, ``guidance.PRECEDENCES``).
    """
    lows, highs = _check_grid(deltas_low, "deltas_low"), _check_grid(deltas_high, "deltas_high")
    groups = _stack_groups(score_maps)
    count = sum(len(positions) for positions, _ in groups)
    with_precision = object_masks is not None
    if with_precision and len(object_masks) != count:
        raise ValueError(f"got {count} score maps but {len(object_masks)} object masks; give one mask per map")
    names = SWEEP_STATISTICS if with_precision else ("foreground", "background", "ignored", "fallback")
    out = {name: np.full((count, len(lows), len(highs)), np.nan) for name in names}
    for positions, maps in groups:
        pixels = float(maps.shape[-2] * maps.shape[-1])
        if with_precision:
            objects = torch.stack([torch.as_tensor(np.asarray(object_masks[p], dtype=bool)) for p in positions])
            if objects.shape != maps.shape:
                raise ValueError(f"object masks of shape {tuple(objects.shape[1:])} do not match score maps of "
                                 f"shape {tuple(maps.shape[1:])}")
        for i, low in enumerate(lows):
            for j, high in enumerate(highs):
                if not low < high:
                    continue
                masks, fired = seed_mask(maps, float(low), float(high), min_pixels, fallback_ratio,
                                         return_fallback=True, precedence=precedence)
                foreground, background = masks == FOREGROUND, masks == BACKGROUND
                fg_count = foreground.sum(dim=(-2, -1)).double()
                bg_count = background.sum(dim=(-2, -1)).double()
                out["foreground"][positions, i, j] = (fg_count / pixels).numpy()
                out["background"][positions, i, j] = (bg_count / pixels).numpy()
                out["ignored"][positions, i, j] = ((masks == IGNORE).sum(dim=(-2, -1)).double() / pixels).numpy()
                out["fallback"][positions, i, j] = fired.double().numpy()
                if with_precision:
                    fg_right = (foreground & objects).sum(dim=(-2, -1)).double()
                    bg_right = (background & ~objects).sum(dim=(-2, -1)).double()
                    nan = torch.tensor(float("nan"), dtype=torch.float64)
                    out["foreground_precision"][positions, i, j] = torch.where(
                        fg_count > 0, fg_right / fg_count.clamp(min=1), nan).numpy()
                    out["background_precision"][positions, i, j] = torch.where(
                        bg_count > 0, bg_right / bg_count.clamp(min=1), nan).numpy()
    return out


def summarize_sweep(per_image: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean over images of each statistic, (L, H) per statistic: the average image's coverage and
    precision (images without seeds of a kind do not count toward that precision) and the
    fraction of images on which the fallback fired. ``images_with_foreground`` /
    ``images_with_background`` count the images behind each precision."""
    out = {}
    for name, values in per_image.items():
        with np.errstate(invalid="ignore"):
            defined = ~np.isnan(values)
            counts = defined.sum(axis=0)
            total = np.where(defined, values, 0.0).sum(axis=0)
            out[name] = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
        if name == "foreground_precision":
            out["images_with_foreground"] = counts
        elif name == "background_precision":
            out["images_with_background"] = counts
    return out


def guidance_batches(model, dataset, limit: int | None = None, preset: str | GuidancePreset = "paper",
                     mask_size: int | None = None, batch_size: int = 32, device="cpu",
                     on_batch: Callable[[int, int], None] | None = None) -> Iterator[dict]:
    """The score maps Algorithm 1 thresholds (steps 4-8), for the first ``limit`` images.

    Each test-transformed image goes through ``model`` with its guidance branches on, and
    :func:`spg_core.guidance.self_produced_guidance` produces the GT-class attention map, B2 and
    the fused map at ``mask_size`` (default: the input size), as the trainer would. Yields one
    dict per batch: ``indices`` (dataset positions), ``labels``, ``maps`` {"attention", "b2",
    "fused": B×S×S float tensors, those the model has}, ``masks`` (the preset's Eq. 1 masks) and
    ``object_masks`` (B×S×S bool, :func:`object_mask` of the GT mask or boxes at that size).
    ``on_batch(done, total)`` is called after each batch (progress bars). Unreadable images are
    skipped, as the dataset's ``collate`` does in training.
    """
    from torch.utils.data import DataLoader, Subset

    from spg_core.data import collate

    preset = get_preset(preset) if isinstance(preset, str) else preset
    total = len(dataset) if limit is None else min(int(limit), len(dataset))
    records = getattr(dataset, "records", None)
    position_of = {str(r.image_id): i for i, r in enumerate(records)} if records is not None else None
    loader = DataLoader(Subset(dataset, range(total)), batch_size=batch_size, shuffle=False, collate_fn=collate)
    device = torch.device(device)
    model.eval()
    done, start = 0, 0
    with torch.no_grad():
        for batch in loader:
            kept = len(batch["image_id"])
            size = int(mask_size or (batch["image"].shape[-1] if kept else 0))
            if kept:
                outputs = model(batch["image"].to(device), with_guidance=True)
                guidance = self_produced_guidance(outputs, batch["label"].to(device), preset, mask_size=size)
                input_size = int(batch["image"].shape[-1])
                masks = batch.get("mask") or [None] * kept
                objects = []
                for mask, boxes in zip(masks, batch["boxes"]):
                    mask = None if mask is None else np.asarray(mask)
                    scale = size / input_size
                    if mask is not None and mask.shape != (size, size):
                        mask = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
                    box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                    if scale != 1.0:  # inclusive boxes span [x0, x1 + 1) in continuous coordinates
                        box_array = resize_boxes(box_array, (input_size, input_size), (size, size), rule="span",
                                                 at_least_one_pixel=False)
                    objects.append(object_mask(mask, box_array, (size, size)))
                if position_of is not None:
                    indices = [position_of[str(i)] for i in batch["image_id"]]
                else:
                    indices = list(range(start, start + kept))
                yield {
                    "indices": indices,
                    "image_ids": [str(i) for i in batch["image_id"]],
                    "labels": batch["label"].tolist(),
                    "maps": {stage.source: guidance[stage.source].float().cpu() for stage in STAGES
                             if stage.source in guidance},
                    "masks": {stage.mask: guidance[stage.mask].cpu() for stage in STAGES if stage.mask in guidance},
                    "object_masks": np.stack(objects),
                }
            start += kept + int(batch["num_skipped"])
            done += kept + int(batch["num_skipped"])
            if on_batch is not None:
                on_batch(done, total)


# --------------------------------------------------------------------- what the seeds are made of
DISTANCE_BINS = (0, 4, 8, 12, 16, 24, 32, 48)  # ring edges, pixels from the reference region


def benchmark_regions(config, split: str, count: int) -> dict[str, np.ndarray]:
    """The teaching benchmark's own labels of its first ``count`` images of ``split``, redrawn by
    the generator of a synthetic run's ``config``: N×S×S bool masks "part" (the class-deciding
    part), "body" (the rest of the object) and "background"; together they tile each image."""
    from spg_core.data.synthetic import SyntheticConfig, generate

    if config.format != "synthetic":
        raise ValueError(f"part/body/background regions exist only on the teaching benchmark, not {config.format!r}")
    synthetic = SyntheticConfig(image_size=int(config.image_size),
                                **{k: v for k, v in config.synthetic.items() if k != "image_size"})
    drawn = [generate(synthetic, split, index) for index in range(count)]
    part = np.stack([image.part_mask for image in drawn])
    body = np.stack([image.body_mask & ~image.part_mask for image in drawn])
    return {"part": part, "body": body, "background": ~(part | body)}


def seed_composition(masks: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the foreground seeds (``masks == FOREGROUND``, N×H×W) lying in each region
    (name -> N×H×W bool, e.g. part / body / background of the teaching benchmark)."""
    foreground = np.asarray(masks) == FOREGROUND
    total = max(int(foreground.sum()), 1)
    return {name: float((foreground & np.asarray(region, bool)).sum() / total) for name, region in regions.items()}


def score_by_distance(scores: np.ndarray, reference: np.ndarray, regions: dict[str, np.ndarray],
                      bins: Sequence[float] = DISTANCE_BINS) -> list[dict]:
    """Mean score per region inside ``reference`` (N×H×W bool) and in rings of distance from
    it, (bins[i], bins[i+1]] then beyond the last bin. One row each: {"distance": "lo-hi",
    region: mean, or None where the ring holds no pixel of the region}.

    On the teaching benchmark with reference = the class-deciding part, equal body and
    background columns mean the map says "near the part", not "on the object".
    """
    scores, reference = np.asarray(scores, np.float64), np.asarray(reference, bool)
    if scores.shape != reference.shape:
        raise ValueError(f"scores {scores.shape} and reference {reference.shape} must have the same N×H×W shape")
    distance = np.stack([ndimage.distance_transform_edt(~ref) for ref in reference])
    edges = [float(b) for b in bins] + [np.inf]
    rings = [("0 (inside)", distance == 0)]
    for low, high in zip(edges[:-1], edges[1:]):
        label = f"{low:g}-{high:g}" if np.isfinite(high) else f">{low:g}"
        rings.append((label, (distance > low) & (distance <= high)))
    rows = []
    for label, ring in rings:
        row = {"distance": label}
        for name, region in regions.items():
            pixels = scores[ring & np.asarray(region, bool)]
            row[name] = float(pixels.mean()) if pixels.size else None
        rows.append(row)
    return rows
