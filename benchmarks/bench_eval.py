"""MaxBoxAccV2 over many maps × a fine τ grid: the exact fast sweep against WE's per-τ loop.

    python benchmarks/bench_eval.py                       # 1000 maps × 1000 τ, naive on 50 maps
    python benchmarks/bench_eval.py --naive-maps 1000     # time the naive loop on every map
    python benchmarks/bench_eval.py --process             # also the whole evaluate-maps process

Maps are smooth random 224×224 score maps (sums of Gaussian blobs, min-max normalised, like
bicubic-upsampled CAMs); each map's GT box is drawn around its strongest blob. The naive loop
is WE's: one ``cv2.findContours`` per τ (:func:`spg_core.tau_sweep.wsol_best_iou_naive`, all
contours). Both paths feed the same ``BoxAccuracy`` counts. The naive path runs on a subset
and its time is extrapolated linearly to all maps (it is a per-map loop, so that is exact up
to noise; the printout says so); on that subset the per-τ IoUs of both paths must be equal,
bit for bit, and so must the subset's MaxBoxAccV2.

``--process`` times what a user runs: the maps are written as ``<maps>/test/<i>.png.npy`` with
box-form wsolevaluation metadata and no image, and ``python -m spg_core evaluate-maps ...
--cam-curve-interval <step>`` runs as a subprocess (interpreter start-up, imports, reading the
metadata and the maps, the sweeps, metrics.json / per_image.csv / curves.html, all timed). Its
MaxBoxAccV2 must equal the in-process one (and, with ``--naive-maps`` = ``--maps``, the naive
loop's), and the maps must be ones evaluate-maps scores unchanged (already 224×224 min-max).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import spg_core
from spg_core import boxes as B
from spg_core import metrics as M
from spg_core import tau_sweep
from spg_core.evaluate import prepare_wsol_map
from spg_core.exports import map_path


def smooth_maps(count: int, size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sums of 1-7 Gaussian blobs (σ 5-60 px, amplitude 0.2-1) and a GT box per map."""
    rng = np.random.default_rng(seed)
    grid = np.arange(size, dtype=np.float64)
    maps, gts = [], []
    for _ in range(count):
        blobs = int(rng.integers(1, 8))
        centres = rng.uniform(0, size, (blobs, 2))
        sigmas = rng.uniform(5, 60, blobs)
        amplitudes = rng.uniform(0.2, 1.0, blobs)
        score = np.zeros((size, size))
        for (cx, cy), sigma, amplitude in zip(centres, sigmas, amplitudes):
            # Separable Gaussian: an outer product is much cheaper than a 2-D exp.
            score += amplitude * np.outer(np.exp(-(grid - cy) ** 2 / (2 * sigma ** 2)),
                                          np.exp(-(grid - cx) ** 2 / (2 * sigma ** 2)))
        maps.append(B.minmax_numpy(score))
        strongest = int(np.argmax(amplitudes))
        (cx, cy), sigma = centres[strongest], sigmas[strongest]
        half_w, half_h = 2 * sigma * rng.uniform(0.7, 1.3, 2)
        box = np.clip([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 0, size - 1).astype(int)
        gts.append(box[None])
    return maps, gts


def write_wsol_maps(folder: Path, maps, gts) -> tuple[Path, Path]:
    """The maps as ``<folder>/maps/test/<i>.png.npy`` and box-form wsolevaluation metadata for
    them in ``<folder>/metadata/test`` (one class, the maps' size as the image size, no image
    file). Returns (maps folder, metadata folder)."""
    ids = [f"test/{index:05d}.png" for index in range(len(maps))]
    for image_id, score_map in zip(ids, maps):
        path = map_path(folder / "maps", image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, score_map)
    metadata = folder / "metadata" / "test"
    metadata.mkdir(parents=True, exist_ok=True)
    height, width = maps[0].shape
    files = {"image_ids": ids, "class_labels": [f"{i},0" for i in ids],
             "image_sizes": [f"{i},{width},{height}" for i in ids],
             "localization": [f"{i}," + ",".join(str(int(v)) for v in gt[0]) for i, gt in zip(ids, gts)]}
    for name, lines in files.items():
        (metadata / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    return folder / "maps", metadata.parent


def time_evaluate_maps(folder: Path, maps, gts, cam_curve_interval: float) -> tuple[float, dict]:
    """Seconds of the whole ``python -m spg_core evaluate-maps`` process on the maps, and its metrics."""
    maps_dir, metadata = write_wsol_maps(folder, maps, gts)
    command = [sys.executable, "-m", "spg_core", "evaluate-maps", "--maps", str(maps_dir), "--format", "wsol",
               "--metadata-root", str(metadata), "--split", "test", "--cam-curve-interval", str(cam_curve_interval),
               "--out", str(folder / "out")]
    # The child imports the same spg_core as this script (a checkout on PYTHONPATH or the installed one).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(spg_core.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds, json.loads((folder / "out" / "metrics.json").read_text())


def maxboxacc_v2(iou_rows, taus) -> dict:
    accuracy = M.BoxAccuracy(taus)
    for row in iou_rows:
        accuracy.add(row, row)
    return accuracy.metrics()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cam-curve-interval", type=float, default=0.001)
    parser.add_argument("--naive-maps", type=int, default=50, help="maps timed with the naive loop (extrapolated)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes for the fast path (the naive loop is WE's single loop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--process", action="store_true",
                        help="also time the whole python -m spg_core evaluate-maps process on the maps written to disk")
    parser.add_argument("--keep", default=None, help="with --process: write the maps and metadata here (kept)")
    args = parser.parse_args()

    taus = M.tau_grid(args.cam_curve_interval)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.maps} maps of {args.size}x{args.size}, {len(taus)} τ values (cam_curve_interval "
          f"{args.cam_curve_interval}), fast path on {args.workers} process(es), CPU count {os.cpu_count()}, "
          f"load average {load:.1f} (other jobs on the cores slow the parallel run most)")
    start = time.perf_counter()
    maps, gts = smooth_maps(args.maps, args.size, args.seed)
    print(f"generated maps in {time.perf_counter() - start:.1f} s (not timed below)")

    start = time.perf_counter()
    fast = tau_sweep.wsol_sweep_many(maps, gts, taus, workers=args.workers)
    fast_metrics = maxboxacc_v2([result.iou_v2 for result in fast], taus)
    fast_seconds = time.perf_counter() - start

    subset = min(args.naive_maps, args.maps)
    start = time.perf_counter()
    naive_rows = [tau_sweep.wsol_best_iou_naive(maps[i], gts[i], taus, multi_contour=True) for i in range(subset)]
    naive_subset_metrics = maxboxacc_v2(naive_rows, taus)
    naive_seconds_subset = time.perf_counter() - start
    naive_seconds = naive_seconds_subset * args.maps / subset

    start = time.perf_counter()
    fast_single = [tau_sweep.wsol_sweep(maps[i], gts[i], taus) for i in range(subset)]
    fast_single_seconds = time.perf_counter() - start

    identical = all(np.array_equal(fast[i].iou_v2, naive_rows[i]) for i in range(subset))
    identical &= all(np.array_equal(fast_single[i].iou_v2, naive_rows[i]) for i in range(subset))
    fast_subset_metrics = maxboxacc_v2([fast[i].iou_v2 for i in range(subset)], taus)
    identical &= fast_subset_metrics == naive_subset_metrics

    label = "measured" if subset == args.maps else f"extrapolated from {subset} maps ({naive_seconds_subset:.1f} s)"
    fast_label = "measured on all maps" if subset == args.maps else f"extrapolated from the same {subset} maps"
    print(f"MaxBoxAccV2 on all maps (fast): {fast_metrics['maxboxacc_v2']:.4f}  "
          f"per IoU {fast_metrics['maxboxacc_v2_per_iou']}")
    print(f"MaxBoxAccV2 on the {subset}-map subset: fast {fast_subset_metrics['maxboxacc_v2']:.6f}, "
          f"naive {naive_subset_metrics['maxboxacc_v2']:.6f}")
    print(f"identical per-τ IoUs and metrics on the subset: {identical}")
    print(f"naive loop  : {naive_seconds:8.2f} s for {args.maps} maps ({label}), "
          f"{1000 * naive_seconds_subset / subset:.1f} ms/map")
    print(f"fast, 1 proc: {fast_single_seconds * args.maps / subset:8.2f} s for {args.maps} maps "
          f"({fast_label}), {1000 * fast_single_seconds / subset:.2f} ms/map  "
          f"-> {naive_seconds_subset / fast_single_seconds:.1f}x")
    print(f"fast, {args.workers} proc: {fast_seconds:8.2f} s for {args.maps} maps (measured, incl. process start "
          f"and the MaxBoxAccV2 counts)  -> {naive_seconds / fast_seconds:.1f}x")
    if args.process:
        identical &= all(np.array_equal(prepare_wsol_map(maps[i]), maps[i]) for i in range(subset))
        with tempfile.TemporaryDirectory(prefix="bench_eval_") as scratch:
            folder = Path(args.keep) if args.keep else Path(scratch)
            process_seconds, process_metrics = time_evaluate_maps(folder, maps, gts, args.cam_curve_interval)
        same = (process_metrics["maxboxacc_v2"] == fast_metrics["maxboxacc_v2"]
                and process_metrics["maxboxacc_v2_per_iou"] == fast_metrics["maxboxacc_v2_per_iou"])
        compared = "the fast sweep's in this process"
        if subset == args.maps:
            naive_all = maxboxacc_v2(naive_rows, taus)
            same &= process_metrics["maxboxacc_v2"] == naive_all["maxboxacc_v2"]
            compared += " and the naive loop's"
        identical &= same
        print(f"MaxBoxAccV2 of the evaluate-maps process: {process_metrics['maxboxacc_v2']:.6f}, identical to "
              f"{compared}: {same}")
        print(f"evaluate-maps process: {process_seconds:8.2f} s for {args.maps} maps (measured: python start-up, "
              f"imports, metadata, reading the maps, sweeps, output files)  -> "
              f"{naive_seconds / process_seconds:.1f}x the naive loop ({naive_seconds:.2f} s, {label})")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
