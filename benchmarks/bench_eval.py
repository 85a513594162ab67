"""MaxBoxAccV2 over many maps × a fine τ grid: the exact fast sweep against WE's per-τ loop.

    python benchmarks/bench_eval.py                       # 1000 maps × 1000 τ, naive on 50 maps
    python benchmarks/bench_eval.py --naive-maps 1000     # time the naive loop on every map

Maps are smooth random 224×224 score maps (sums of Gaussian blobs, min-max normalised, like
bicubic-upsampled CAMs); each map's GT box is drawn around its strongest blob. The naive loop
is WE's: one ``cv2.findContours`` per τ (:func:`spg_core.tau_sweep.wsol_best_iou_naive`, all
contours). Both paths feed the same ``BoxAccuracy`` counts. The naive path runs on a subset
and its time is extrapolated linearly to all maps (it is a per-map loop, so that is exact up
to noise; the printout says so); on that subset the per-τ IoUs of both paths must be equal,
bit for bit, and so must the subset's MaxBoxAccV2.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from spg_core import boxes as B
from spg_core import metrics as M
from spg_core import tau_sweep


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
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
