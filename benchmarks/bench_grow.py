"""Growing the guidance at chosen thresholds on a batch of validation images
(``spg_core.batch_guidance.batch_guidance``, the explore page's batch mode): how long it takes.

    python benchmarks/bench_grow.py                           # shipped synthetic-spg run, 32 images
    python benchmarks/bench_grow.py --run RUN_DIR --images 32 --steps 60 --threads 2

For each torch thread count (``--threads``, default 1 and 2), on the run's own validation split:
reading the images, then ``batch_guidance`` with the app's time budget (``--seconds``, default
``BATCH_SECONDS``: the steps it gets done) and with a fixed number of steps (``--steps``: the
seconds per step). Prints the summary (mean seed precision / coverage, grown vs trained heads)
of the budgeted run. Target: reading + growing 32 images at 96 px ≤ 30 s on a 2-core CPU. The
load average is printed too: the step count of a budgeted run falls on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from spg_core.data.settings import DataSettings
from spg_core.localize import Localizer
from spg_core.runs import SHIPPED_DIR, load_run
from spg_core.batch_guidance import BATCH_SECONDS, batch_guidance, dataset_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(SHIPPED_DIR / "synthetic-spg"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=BATCH_SECONDS)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    model, config, info = load_run(args.run, "cpu")
    localizer = Localizer(model, config.image_size, info["class_names"], "cpu", config.preset)
    dataset = DataSettings.from_config(config).dataset("val")
    for threads in args.threads:
        torch.set_num_threads(threads)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        started = time.perf_counter()
        batch = dataset_batch(dataset, args.images)
        read = time.perf_counter() - started
        print(f"{args.run}: {len(batch)} validation images at {config.image_size} px, {threads} thread(s), "
              f"load average {load:.1f}")
        print(f"  read the images:        {read:6.2f} s")
        result = batch_guidance(localizer, batch.images, batch.labels, batch.objects, seconds=args.seconds)
        print(f"  grow, {args.seconds:g} s budget:     {result.seconds:6.2f} s, {result.steps} steps"
              f"  -> read + grow {read + result.seconds:.2f} s (target <= 30 s)")
        fixed = batch_guidance(localizer, batch.images, batch.labels, batch.objects, seconds=None, steps=args.steps)
        print(f"  grow, {args.steps} steps:         {fixed.seconds:6.2f} s, {1000 * fixed.seconds / args.steps:.0f} ms "
              "per step (frozen pass and final maps included)")
        print("  mask       heads    fg precision  object coverage  foreground  (budgeted run)")
        for row in result.summary():
            print(f"  {row['mask']:<10} {row['heads']:<8} {row['foreground_precision']:12.3f}"
                  f"  {row['object_coverage']:15.3f}  {row['foreground']:10.3f}")


if __name__ == "__main__":
    main()
