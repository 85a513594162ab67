"""The two dataset-wide computations behind the Dataset and Failure triage pages, without
Streamlit: one evaluation pass over the first N images (``spg_core.evaluate``) and the per-image
seed statistics of one stage (``spg_core.sweeps``). ``spg_app.analyses`` runs them with a
progress bar and caches them; ``spg_app.precomputed`` stores their results next to a run."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spg_app.datasets import DatasetView
from spg_app.paths import inside_roots
from spg_core.data.arrays import read_map
from spg_core.evaluate import evaluate, evaluate_maps
from spg_core.exports import map_path
from spg_core.guidance import PRESETS, guided_stage
from spg_core.sweeps import guidance_batches, seed_sweep, summarize_sweep

CAM_CURVE_INTERVAL = 0.01  # the τ grid of the pages' curves: evaluate()'s default


def evaluate_first(model, dataset, n: int, protocol: str, tau: float, map_stage: str = "attention",
                   on_item: Callable[[int, int], None] | None = None) -> dict:
    """``spg_core.evaluate.evaluate`` of ``model`` on the first ``n`` images of ``dataset`` at
    ``tau``: {"metrics", "rows", "curves", "tau", "n", "protocol"}. ``on_item(done, total)``
    reports progress. Raises what ``evaluate`` raises."""
    view = DatasetView(dataset, n, on_item)
    extra = {} if map_stage == "attention" else {"map_stage": map_stage}
    metrics, rows, curves = evaluate(model, view, device="cpu", protocol=protocol, tau=tau, progress=False,
                                     batch_size=32, cam_curve_interval=CAM_CURVE_INTERVAL, **extra)
    return {"metrics": metrics, "rows": rows, "curves": curves, "tau": tau, "n": int(n), "protocol": protocol}


def read_folder_map(folder, image_id: str) -> np.ndarray:
    """One image's map of a maps folder (``<folder>/<image_id>.npy``, ``spg_core.exports.map_path``),
    read only when the file lies under the app's roots (links followed) and its header passes
    ``spg_core.data.arrays.read_map``.

    Args:
        folder: the maps folder.
        image_id: the image's id in the dataset's annotations.

    Returns:
        The 2-D map as stored.

    Raises:
        FileNotFoundError: no map for that image; PathRefused / MapFileError (ValueError): refused.
    """
    path = map_path(folder, image_id)
    real = inside_roots(path, "map")
    if not real.is_file():
        raise FileNotFoundError(f"no map for image {image_id!r}: expected {path}")
    return read_map(real)


def evaluate_maps_first(folder, dataset, n: int, protocol: str, tau: float) -> dict:
    """What :func:`evaluate_first` returns, for a folder of ``<image_id>.npy`` maps scored against
    the first ``n`` images' annotations by the function ``evaluate-maps`` uses
    (``spg_core.evaluate.evaluate_maps``; no image is read), each map read by
    :func:`read_folder_map`. A maps folder has no classifier: no classification numbers, no
    Top-1/Top-5 Loc. The paper protocol boxes on the original image's pixels, as
    ``evaluate-maps`` does. Raises what they raise (a missing map: FileNotFoundError)."""
    gt, stream = {}, []
    for index in range(min(int(n), len(dataset))):
        sample = dataset.load_sample(index, image=False)  # the annotation: no image is decoded
        if sample is None:
            continue
        gt[sample.image_id] = (sample.boxes, sample.size, sample.mask, sample.label)
        stream.append((sample.image_id, read_folder_map(folder, sample.image_id)))
    metrics, rows, curves = evaluate_maps(stream, gt, protocol, CAM_CURVE_INTERVAL,
                                          split=str(getattr(dataset, "split", None) or "report"), tau=tau)
    return {"metrics": metrics, "rows": rows, "curves": curves, "tau": tau, "n": int(n), "protocol": protocol}


def seed_statistics_first(model, config, dataset, n: int, stage: str, lows, highs,
                          on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Per-image seed statistics (``sweeps.seed_sweep``) of ``stage`` over the first ``n`` images
    at every (δ_l, δ_h) of ``lows`` × ``highs``, on the maps Algorithm 1 thresholds in training
    (GT class, the seed-mask resolution of the run's ``config``): {"indices", "per_image",
    "summary", "lows", "highs", "stage", "mask_size"}. Raises ValueError when the model has no
    map for ``stage`` or no image could be read."""
    lows, highs = tuple(round(float(v), 4) for v in lows), tuple(round(float(v), 4) for v in highs)
    same_input = dataset.image_size == config.image_size
    mask_size = config.resolved_mask_size() if same_input else None
    preset = PRESETS[config.preset]
    source = guided_stage(stage).source
    indices, parts = [], []
    for batch in guidance_batches(model, dataset, limit=n, preset=preset, mask_size=mask_size, on_batch=on_batch):
        if source not in batch["maps"]:
            raise ValueError(f"the model has no {guided_stage(stage).source_title} map: {stage} cannot be swept")
        parts.append(seed_sweep(batch["maps"][source], batch["object_masks"], lows, highs,
                                precedence=preset.precedence))
        indices.extend(batch["indices"])
    if not parts:
        raise ValueError("no readable image among the first images of the dataset")
    per_image = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return seed_result(indices, per_image, lows, highs, stage, mask_size or dataset.image_size)


def seed_result(indices, per_image: dict, lows, highs, stage: str, mask_size: int) -> dict:
    """The seed-statistics result the pages read, its summary over images included."""
    return {"indices": [int(i) for i in indices], "per_image": per_image, "summary": summarize_sweep(per_image),
            "lows": tuple(lows), "highs": tuple(highs), "stage": stage, "mask_size": int(mask_size)}
