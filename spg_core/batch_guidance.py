"""Guidance grown on a batch of images at chosen thresholds: the single-image machinery
(``spg_core.single_image``: the classifier frozen, fresh SPG-B and optionally SPG-C heads trained
for a few seconds) over several images at once. **An exploration beyond the paper.**

``batch_guidance``: fresh heads trained on the seeds of,
say, 32 validation images at the thresholds given, and their seeds' precision and coverage
against the ground truth next to those of the trained run's own heads at the same thresholds —
what training would teach at those thresholds, in seconds:

    batch = batch_guidance(localizer, images, labels, objects, seconds=20.0,
                           preset=preset.with_thresholds({"mask_a": (0.2, 0.8)}))
    batch.grown, batch.trained  # N×S×S maps of the grown and of the trained heads
    batch.summary()             # mean seed precision / coverage of each mask, grown vs trained
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from spg_core.guidance import (
    FOREGROUND,
    STAGES,
    GuidancePreset,
    get_preset,
    stage_maps,
)
from spg_core.single_image import (
    TRACKED_MASKS,
    ProgressCallback,
    as_localizer,
    check_budget,
    frozen_views,
    GrowthRecorder,
    train_heads,
    guided_model,
)


# batch_guidance's default time budget: 32 images at 96 px (tiny backbone) then take ~20 s on a
# 2-core CPU with reading them included (benchmarks/bench_grow.py).
BATCH_SECONDS = 20.0


@dataclass
class BatchGuidance:
    """Fresh heads grown on the seeds of several images at once, and their seeds next to those of
    the model's own (trained) heads at the same thresholds.

    class_indices: each image's class (its attention map seeds the guidance).
    grown / trained: {map name: N×S×S float32 in [0, 1]} at the network's input size S, of each
        image's plain view: the grown heads' maps and the given model's own. The attention map
        is the frozen classifier's, the same in both; a model without B branches (SPG-plain)
        has only that one.
    objects: N×S×S bool ground-truth regions at S (None when none was given).
    quality: {"grown" | "trained": N×3×4 float32}: for each image, ``STAGE_NAMES`` ×
        ``replay.STAT_NAMES`` (foreground precision, object coverage, background precision,
        foreground share) of its Eq. 1 seeds at ``preset``; NaN where undefined, where the image
        has no ground truth, or for a stage the heads lack.
    history: as SingleImageGuidance.history, the foreground shares averaged over the images.
    """

    class_indices: list[int]
    grown: dict[str, np.ndarray]
    trained: dict[str, np.ndarray]
    objects: np.ndarray | None
    quality: dict[str, np.ndarray]
    preset: GuidancePreset
    history: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    views: int = 0

    def __len__(self) -> int:
        return len(self.class_indices)

    def masks(self, heads: str = "grown") -> dict[str, np.ndarray]:
        """N×S×S uint8 Eq. 1 seeds of every stage the ``heads`` ("grown" | "trained") have, at ``preset``."""
        return _batch_masks(self.grown if heads == "grown" else self.trained, self.preset)

    def summary(self) -> list[dict]:
        """One row per seed mask and heads ("trained", then "grown"): the mean over the images of
        each ``replay.STAT_NAMES`` statistic (NaN-skipping; NaN when no image defines it) and
        ``images``, how many images have a defined foreground precision."""
        from spg_core.replay import STAT_NAMES

        rows = []
        for s, name in enumerate(TRACKED_MASKS):
            for heads in ("trained", "grown"):
                values = self.quality[heads][:, s]
                row = {"mask": name, "heads": heads}
                for k, stat in enumerate(STAT_NAMES):
                    column = values[:, k]
                    row[stat] = float(column[np.isfinite(column)].mean()) if np.isfinite(column).any() else float("nan")
                row["images"] = int(np.isfinite(values[:, 0]).sum())
                rows.append(row)
        return rows


def _batch_masks(maps: dict[str, torch.Tensor | np.ndarray], preset: GuidancePreset) -> dict[str, np.ndarray]:
    out = {}
    for stage in STAGES:
        if stage.source in maps:
            out[stage.mask] = np.asarray(preset.seeds(stage.mask, np.asarray(maps[stage.source])))
    return out


def _seed_quality(maps: dict[str, np.ndarray], objects: list[np.ndarray | None], preset: GuidancePreset) -> np.ndarray:
    from spg_core.replay import STAT_NAMES, seed_quality

    quality = np.full((len(objects), len(STAGES), len(STAT_NAMES)), np.nan, np.float32)
    masks = _batch_masks(maps, preset)
    for s, stage in enumerate(STAGES):
        if stage.mask not in masks:
            continue
        for k, obj in enumerate(objects):
            mask = masks[stage.mask][k]
            if obj is None:
                quality[k, s, STAT_NAMES.index("foreground")] = float((mask == FOREGROUND).mean())
            else:
                quality[k, s] = seed_quality(mask, obj)
    return quality


def _object_at(region, size: int) -> np.ndarray | None:
    """A bool ground-truth region resized (nearest) to the network's square input."""
    if region is None:
        return None
    region = np.asarray(region).astype(bool)
    if region.shape == (size, size):
        return region
    resized = Image.fromarray(region.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(resized) > 127


def batch_guidance(
    localizer_or_model,
    images: list[Image.Image],
    class_indices: list[int | None] | None = None,
    objects: list[np.ndarray | None] | None = None,
    seconds: float | None = BATCH_SECONDS,
    steps: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    preset: str | GuidancePreset | None = None,
    image_size: int | None = None,
    class_names=None,
    train_c: bool = False,
    width: int | None = None,
    views: int = 2,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    record_every: int = 10,
    seed: int = 0,
) -> BatchGuidance:
    """Train fresh SPG-B (and optionally SPG-C) heads on the seeds of several images at once,
    the classifier frozen: what training would teach the heads at ``preset``'s thresholds,
    for a few seconds instead of epochs (an exploration beyond the paper). The same machinery
    as :func:`single_image_guidance` (``guided_model``, ``augmented_views``, then
    ``self_produced_guidance`` + ``spg_loss`` each step), over mini-batches drawn from the
    ``views`` views of every image.

    images: PIL images (any size; each is resized to the network's input, as the localiser does).
    class_indices: the class whose attention map seeds each image (None or a None entry: top-1);
        pass the ground-truth labels for what Algorithm 1 does in training.
    objects: each image's ground-truth region, bool at the image's own size
        (``sweeps.object_mask`` of its mask or boxes), or None: the seeds' precision and coverage.
    seconds / steps / progress / seed: as in :func:`single_image_guidance` (the budget includes
        the frozen pass over the views and the final maps).
    width: channels of the new heads (default: the backbone's own head config, as in training).
    Returns a :class:`BatchGuidance`; the caller's model is never modified.
    """
    check_budget(seconds, steps, views, batch_size)
    if not images:
        raise ValueError("images is empty; give at least one image")
    count = len(images)
    class_indices = [None] * count if class_indices is None else list(class_indices)
    objects = [None] * count if objects is None else list(objects)
    if len(class_indices) != count or len(objects) != count:
        raise ValueError(f"{count} images but {len(class_indices)} class indices and {len(objects)} objects")
    started = time.perf_counter()
    localizer = as_localizer(localizer_or_model, image_size, class_names, preset)
    preset = get_preset(preset) if isinstance(preset, str) else (preset or localizer.preset)
    size = localizer.image_size
    generator = torch.Generator().manual_seed(seed)
    frozen = frozen_views(localizer, [image.convert("RGB") for image in images], views, generator, class_indices)
    reserve = 2 * (time.perf_counter() - started) / views  # the final pass: two heads on the plain views
    plain = torch.arange(count, device=frozen.labels.device) * views

    guided = guided_model(localizer.model, train_c=train_c, width=width, seed=seed)
    recorder = GrowthRecorder(preset, size, plain=plain)
    step = train_heads(guided, frozen, preset, size, recorder, generator, started, reserve,
                        seconds=seconds, steps=steps, progress=progress, batch_size=batch_size,
                        learning_rate=learning_rate, record_every=record_every)

    labels = frozen.labels[plain]
    with torch.no_grad():
        grown, trained = ({name: value.cpu().numpy().astype(np.float32)
                           for name, value in stage_maps(frozen.outputs(model, plain), labels, (size, size)).items()}
                          for model in (guided, localizer.model))
    regions = [_object_at(region, size) for region in objects]
    quality = {"grown": _seed_quality(grown, regions, preset), "trained": _seed_quality(trained, regions, preset)}
    stacked = None if all(r is None for r in regions) else np.stack(
        [np.zeros((size, size), bool) if r is None else r for r in regions])
    return BatchGuidance([int(c) for c in labels.tolist()], grown, trained, stacked, quality, preset,
                         history=recorder.history, steps=step, seconds=time.perf_counter() - started, views=views)


@dataclass
class ImageBatch:
    """Images of a dataset with what :func:`batch_guidance` compares against: original pixels,
    ground-truth labels, object regions (bool, ``sweeps.object_mask`` of the mask, else the
    boxes) and image ids."""

    images: list[Image.Image]
    labels: list[int]
    objects: list[np.ndarray]
    image_ids: list[str]

    def __len__(self) -> int:
        return len(self.images)


def dataset_batch(dataset, count: int, on_item: Callable[[int, int], None] | None = None) -> ImageBatch:
    """The first ``count`` readable images of a WSOL dataset (``load_sample``: unreadable ones are
    skipped, as in training); ``on_item(done, total)`` after each (progress bars)."""
    from spg_core.sweeps import object_mask

    batch = ImageBatch([], [], [], [])
    total = min(int(count), len(dataset))
    for index in range(len(dataset)):
        if len(batch) == total:
            break
        sample = dataset.load_sample(index)
        if sample is not None:
            batch.images.append(sample.image)
            batch.labels.append(int(sample.label))
            batch.objects.append(object_mask(sample.mask, sample.boxes, (sample.image.height, sample.image.width)))
            batch.image_ids.append(str(sample.image_id))
        if on_item is not None:
            on_item(len(batch), total)
    return batch


__all__ = ["BatchGuidance", "batch_guidance", "BATCH_SECONDS", "ImageBatch", "dataset_batch"]
