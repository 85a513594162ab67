"""Server-side cost of one slider move in the app: re-threshold cached maps, nothing else.

    python benchmarks/bench_app.py                         # shipped synthetic-spg, image 0 of its test split
    python benchmarks/bench_app.py --run RUN_DIR --repeats 500
    python benchmarks/bench_app.py --photo-side 1024       # an uploaded photo's size instead
    python benchmarks/bench_app.py --compare none          # without a second run (default: synthetic-plain)

What the explore page recomputes (the model is not run: maps are cached per image):

* a δ move — its stage's seed panel only (``spg_app.live``): ``spg_app.thresholds.stage_seeds``
  (Eq. 1 seeds of that stage with the fallback flag, coverage and precision against the GT mask),
  then that seed-mask picture drawn and encoded (``viz.mask_image``; score-map pictures are cached);
* a τ move — the box panel only: ``thresholds.box_view`` (the box at τ and its IoU), then the final
  localisation picture with its new box;
* a full redraw (new image, class or opacity) — ``threshold_view`` and every tile, for reference;
* the same δ and τ moves with a second run side by side (``--compare``, ``spg_app.compare``): a δ
  move then reruns the three seed panels and the comparison (both runs' ``threshold_view``, the
  aligned strips' seed masks, ``pictures.map_gaps``), a τ move the box panel and the comparison;
  the difference pictures are cached (they depend on neither δ nor τ).

Each repeat moves Mask-A's δ_l and τ to new values so no step is a no-op. Prints the median and
95th percentile of each and the ratio of the slider moves to the 30 ms budget.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from spg_app.pictures import encode_picture, final_picture, map_gaps, mask_picture, seed_picture, strip_pictures
from spg_app.thresholds import box_view, stage_seeds, threshold_view
from spg_core.data.settings import DataSettings
from spg_core.guidance import get_preset
from spg_core.localize import Localizer
from spg_core.runs import load_run
from spg_core.sweeps import object_mask

BUDGET_MS = 30.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="synthetic-spg", help="RUN_DIR or shipped run name")
    parser.add_argument("--index", type=int, default=0, help="image of the run's test split")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--compare", default="synthetic-plain",
                        help="second run shown side by side (RUN_DIR or shipped run name), or 'none'")
    parser.add_argument("--photo-side", type=int, default=None,
                        help="time a photo of this size (the dataset image resized) instead")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    model, config, info = load_run(args.run, "cpu")
    localizer = Localizer(model, config.image_size, info["class_names"], "cpu", config.preset)
    second = None
    if args.compare != "none":
        other, other_config, other_info = load_run(args.compare, "cpu")
        second = Localizer(other, other_config.image_size, other_info["class_names"], "cpu", other_config.preset)
    dataset = DataSettings.from_flags(config).dataset("test")
    sample = dataset.load_sample(args.index)
    image, boxes, mask = sample.image, sample.boxes, sample.mask
    if args.photo_side:
        factor = args.photo_side / max(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)))
        boxes = np.concatenate([boxes[:, :2] * factor, (boxes[:, 2:] + 1) * factor - 1], 1)
        mask = None
    stage_maps = localizer.predict(image)  # cached in the app: not part of a slider move
    other_maps = None if second is None else second.predict(image, stage_maps.class_index)  # the same class
    region = object_mask(mask, boxes, (image.height, image.width))
    preset = get_preset(config.preset)

    rng = np.random.default_rng(0)
    delta, tau_move, full, delta_two, tau_two = [], [], [], [], []
    for _ in range(args.repeats + 5):
        low = float(rng.uniform(0.0, 0.3))
        moved = preset.with_thresholds({"mask_a": (round(low, 2), 0.7)})
        tau = float(rng.uniform(0.1, 0.6))
        t0 = time.perf_counter()
        seeds = stage_seeds(stage_maps, moved, "mask_a", region)
        encode_picture(seed_picture(seeds.mask), exact=True)
        t1 = time.perf_counter()
        box, _ = box_view(stage_maps, tau, boxes)
        encode_picture(final_picture(stage_maps, box, 0.5, boxes))
        t2 = time.perf_counter()
        view = threshold_view(stage_maps, moved, tau, region, boxes)
        for name, _, picture in strip_pictures(stage_maps, view, 0.5, boxes):
            encode_picture(picture, exact=name in view.masks)
        t3 = time.perf_counter()
        delta.append(t1 - t0)
        tau_move.append(t2 - t1)
        full.append(t3 - t2)
        if other_maps is not None:
            t4 = time.perf_counter()
            for name in view.masks:  # the three seed panels
                encode_picture(seed_picture(stage_seeds(stage_maps, moved, name, region).mask), exact=True)
            t5 = time.perf_counter()
            shown = [threshold_view(stage_maps, moved, tau, region, boxes),
                     threshold_view(other_maps, moved, tau, region, boxes)]
            map_gaps(stage_maps, other_maps)
            t6 = time.perf_counter()
            for one in shown:  # the aligned strips: both runs' seed masks
                for name in one.masks:
                    encode_picture(mask_picture(one, name), exact=True)
            t7 = time.perf_counter()
            encode_picture(final_picture(other_maps, shown[1].box, 0.5, boxes))
            t8 = time.perf_counter()
            delta_two.append((t5 - t4) + (t7 - t5))
            tau_two.append((t2 - t1) + (t6 - t5) + (t8 - t7))
    delta, tau_move, full, delta_two, tau_two = (np.array(v[5:]) * 1000
                                                 for v in (delta, tau_move, full, delta_two, tau_two))  # drop warm-up

    def line(name: str, values: np.ndarray) -> str:
        return f"  {name:<52} median {np.median(values):7.2f} ms   p95 {np.percentile(values, 95):7.2f} ms"

    print(f"slider move on cached maps: run {args.run}, image {image.width}x{image.height}, "
          f"{len(stage_maps.maps)} maps, {args.repeats} moves, 1 thread")
    print(line("δ move: one stage's seeds + stats + its mask picture", delta))
    print(line("τ move: box + IoU + final picture", tau_move))
    print(line("full redraw (new image / opacity): every tile", full))
    worst = max(np.median(delta), np.median(tau_move))
    print(f"  slowest slider move / {BUDGET_MS:.0f} ms budget: {worst / BUDGET_MS:.2f}x "
          f"({'within' if worst <= BUDGET_MS else 'OVER'} budget)")
    if other_maps is not None:
        print(f"side by side with {args.compare} ({len(other_maps.maps)} maps), the same moves:")
        print(line("δ move, two runs: 3 seed panels + both runs' strips", delta_two))
        print(line("τ move, two runs: box panel + both runs' seeds, box", tau_two))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
