"""Where do the seeds go wrong? Eq. 1 masks of a trained run against the GT object masks.

    python scripts/seed_analysis.py synthetic-spg --split val --limit 300

For each seed mask (Mask-A from the attention map, Mask-B2, Mask-fuse) at the run's preset, over
the validation images (never test): foreground precision (foreground seeds inside the object),
object recall (object pixels that are foreground seeds), object-as-background (object pixels
that Eq. 1 labels *background* — the branch is then taught that this part of the object is not
object) and background precision. Then the same statistics of Mask-A for a grid of δ_l.

On the teaching benchmark (the generator knows which pixels are the class-deciding part and
which the body), two more views: what Mask-A's foreground seeds are made of (part / body /
background), and each stage's mean score at a given distance from the part, on body pixels and
on background pixels. Equal curves mean the map encodes "near the part", not "on the object".

Last, the health of SPG-C (``spg_c``): the scale of A3, what SPG-C reads (mean and largest
activation), the share of SPG-C's hidden ReLUs that fire, and σ(SPG-C) on object and background.
A dead SPG-C (almost no ReLU firing, the same σ on object and background) sends no gradient into
A3: the last step of the method then does nothing (SPG-C reading a BatchNorm of A3, the default
``c_input_norm``, keeps it alive).
"""
import argparse
import json

import numpy as np

from spg_core.data import build_dataset
from spg_core.guidance import BACKGROUND, FOREGROUND, seed_mask
from spg_core.runs import load_run
from spg_core.sweeps import benchmark_regions, guidance_batches, score_by_distance, seed_composition


def statistics(masks: np.ndarray, objects: np.ndarray) -> dict:
    fg, bg = masks == FOREGROUND, masks == BACKGROUND
    total_object = max(int(objects.sum()), 1)
    return {
        "foreground_precision": float((fg & objects).sum() / max(int(fg.sum()), 1)),
        "object_recall": float((fg & objects).sum() / total_object),
        "object_as_background": float((bg & objects).sum() / total_object),
        "background_precision": float((bg & ~objects).sum() / max(int(bg.sum()), 1)),
    }


def spg_c_health(model, dataset, count: int = 64) -> dict | None:
    """A3's scale, the share of SPG-C's hidden ReLUs that fire, and the mean σ(SPG-C) on object and
    background pixels of the first ``count`` images; None for a model without SPG-C."""
    import torch
    import torch.nn.functional as F

    if model.spg_c is None:
        return None
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    samples = [s for s in samples if s is not None]
    images = torch.stack([s["image"] for s in samples])
    with torch.no_grad():
        a3 = model.spg_a3(model.backbone(images).top)
        hidden = model.spg_c[:-1](a3)  # everything before the 1×1 output conv
        score = torch.sigmoid(F.interpolate(model.spg_c[-1](hidden), size=images.shape[-2:], mode="bilinear",
                                            align_corners=False))[:, 0]
    objects = torch.zeros_like(score, dtype=torch.bool)
    for i, sample in enumerate(samples):
        for x0, y0, x1, y1 in np.asarray(sample["boxes"]).astype(int).reshape(-1, 4):
            objects[i, y0:y1 + 1, x0:x1 + 1] = True
    return {"images": len(samples), "a3_mean": float(a3.mean()), "a3_max": float(a3.max()),
            "hidden_relus_firing": float((hidden > 0).float().mean()),
            "sigmoid_on_object_boxes": float(score[objects].mean()),
            "sigmoid_on_background": float(score[~objects].mean())}


def part_distance_profile(maps: dict, masks: dict, config, split: str, count: int, size: int) -> dict:
    """Synthetic runs only: seed composition and score-vs-distance-from-the-part, body vs background."""
    regions = benchmark_regions(config, split, count)
    parts = regions["part"]
    if parts.shape[1:] != (size, size):
        raise ValueError(f"maps are {size}x{size} but the generator draws {parts.shape[1:]}; use mask_size = image_size")
    return {"mask_a_foreground_made_of": seed_composition(masks["mask_a"], regions),
            "mean_score_by_distance_from_part": {name: score_by_distance(score, parts, regions)
                                                 for name, score in maps.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--delta-lows", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the run's own)")
    parser.add_argument("--metadata-root", default=None, help="wsolevaluation metadata folder (default: the run's own)")
    args = parser.parse_args()
    model, config, _ = load_run(args.run)
    options = ({k: v for k, v in config.synthetic.items() if k != "image_size"} if config.format == "synthetic"
               else {"data_root": args.data_root or config.data_root,
                     "metadata_root": args.metadata_root or config.metadata_root})
    dataset = build_dataset(config.format, args.split, image_size=config.image_size, **options)
    # Without GT masks (box metadata) the object is its GT boxes' area: an upper bound of the object.
    object_from = "masks" if dataset.read(0).mask is not None else "boxes"
    maps, masks, objects = {}, {}, []
    for batch in guidance_batches(model, dataset, limit=args.limit, preset=config.preset):
        for name, value in batch["maps"].items():
            maps.setdefault(name, []).append(value.numpy())
        for name, value in batch["masks"].items():
            masks.setdefault(name, []).append(value.numpy())
        objects.append(batch["object_masks"])
    objects = np.concatenate(objects)
    report = {"run": str(args.run), "split": args.split, "images": int(len(objects)), "object_from": object_from,
              "object_fraction_of_image": float(objects.mean()),
              "stages": {name: statistics(np.concatenate(value), objects) for name, value in masks.items()}}
    attention = np.concatenate(maps["attention"])
    high = 0.7
    report["mask_a_delta_low_sweep"] = {
        str(low): statistics(seed_mask(attention, low, high), objects) for low in args.delta_lows if low < high}
    if config.format == "synthetic":
        report.update(part_distance_profile({k: np.concatenate(v) for k, v in maps.items()},
                                            {k: np.concatenate(v) for k, v in masks.items()},
                                            config, args.split, len(objects), objects.shape[-1]))
    report["spg_c_health"] = spg_c_health(model, dataset)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
