"""Training replay: what recording costs a run, and what a replay-slider move costs the server.

    python benchmarks/bench_replay.py                      # tiny backbone, 96 px, 16 replay images
    python benchmarks/bench_replay.py --backbone lite0_cut --weights imagenet --steps 20

1. Recording: the same run trained with the replay on (``--images``) and off; prints both times
   and the ratio, and the time of one record against one training step (the replay records
   about 1 + epochs + 3 times; target: ≤ 3 % of training time).
2. A slider move on the Training page: the record's maps → Eq. 1 seeds, box, IoU
   (``threshold_view``) → the strip's pictures → their encoded bytes, what the page redraws;
   median and p95 over every (record, image) (target: ≤ 50 ms).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from spg_app.pages.training import object_box, replay_stage_maps
from spg_app.pictures import STRIP_SIDE, encode_picture, strip_pictures
from spg_app.thresholds import threshold_view
from spg_core.config import TrainConfig
from spg_core.guidance import get_preset
from spg_core.data.settings import DataSettings
from spg_core.replay import ReplayRecorder, load_replay
from spg_core.runs import load_run
from spg_core.train import train


def run(config: TrainConfig) -> float:
    started = time.perf_counter()
    train(config, progress=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=16, help="replay images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe-epochs", type=int, default=8, help="epochs of the run the cost is projected to")
    parser.add_argument("--recipe-steps", type=int, default=93, help="steps per epoch of that run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        def config(name: str, images: int) -> TrainConfig:
            return TrainConfig(format="synthetic", image_size=args.image_size, backbone=args.backbone,
                               weights=args.weights, epochs=args.epochs, batch_size=args.batch_size,
                               max_steps_per_epoch=args.steps, guidance_warmup=1, device="cpu", amp="off",
                               threads=args.threads, replay_images=images, out=str(Path(tmp) / name),
                               synthetic={"num_train": args.batch_size * args.steps, "num_val": args.images,
                                          "num_test": 8})

        run(config("warm-up", 0))  # first imports and allocations
        off = run(config("off", 0))
        on = run(config("on", args.images))
        replay = load_replay(Path(tmp) / "on")
        steps = args.epochs * args.steps
        print(f"training {args.backbone} {args.image_size} px, {args.epochs} epochs × {args.steps} steps of "
              f"{args.batch_size}: replay off {off:.1f} s, on {on:.1f} s ({len(replay)} records of {args.images} "
              f"images): ratio {on / off:.3f} (+{100 * (on / off - 1):.1f} %, target ≤ 3 %)")
        # One record timed on its own (the difference above is within the machine's noise).
        model, run_config, _ = load_run(Path(tmp) / "on")
        val = DataSettings.from_config(run_config).dataset("val")
        recorder = ReplayRecorder(val, args.images, get_preset(run_config.preset), Path(tmp) / "timing")
        (Path(tmp) / "timing").mkdir()
        record_times = []
        for _ in range(5):
            started = time.perf_counter()
            recorder.record(model, 0.0, 0)
            record_times.append(time.perf_counter() - started)
        record = statistics.median(record_times)
        share = len(replay) * record / max(off - len(replay) * record, 1e-9)
        print(f"  one step {off / steps * 1000:.0f} ms, one record {record * 1000:.0f} ms: {len(replay)} records cost "
              f"{100 * share:.1f} % of this short run")
        e, n = args.recipe_epochs, args.recipe_steps
        print(f"  a run of {e} epochs × {n} steps (the teaching recipe: 3000 images, batch 32) records {e + 4} times: "
              f"{100 * (e + 4) * record / (e * n * off / steps):.2f} % of its training time (target ≤ 3 %)")

        preset = get_preset(replay.preset)
        names = [str(k) for k in range(int(replay.labels.max()) + 1)]
        times = []
        for record in range(len(replay)):
            for image in range(len(replay.image_ids)):
                started = time.perf_counter()
                maps = replay_stage_maps(replay, record, image, names)
                gt = object_box(replay.objects[image])
                view = threshold_view(maps, preset, 0.2, object_region=replay.objects[image], gt_boxes=gt)
                for _, _, picture in strip_pictures(maps, view, 0.5, gt):
                    encode_picture(picture, STRIP_SIDE)
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        print(f"replay slider move (maps → seeds, box → {len(strip_pictures(maps, view))} encoded pictures): "
              f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over {len(times)} moves (target ≤ 50 ms)")


if __name__ == "__main__":
    main()
