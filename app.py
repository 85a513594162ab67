"""SPG Explorer: a Streamlit view over spg_core (start it with `make app`).

Three pages:

* **Explore one image** — every stage of the paper's Fig. 2 for one image, the Eq. 1 thresholds
  of each stage and the box threshold τ live on sliders;
* **Dataset** — accuracy against τ for one or two runs on the same axes, the IoU histogram,
  and a sweep of (δ_l, δ_h) showing which thresholds give clean seeds;
* **Failure triage** — the evaluated images worst IoU first, filtered by failure type and by
  whether Mask-A's fallback fired, each one a click away from the explore page.

The app adds layout, caching and interaction only. Maps come from ``Localizer.predict``, seeds
from ``localize.stage_masks``, boxes from ``localize.localization_box``, numbers from
``guidance.seed_statistics`` / ``spg_core.evaluate`` / ``spg_core.sweeps``, pictures from
``spg_core.viz``. Model weights and datasets are cached with ``st.cache_resource``, per-image
maps with ``st.cache_data``: a slider move only re-thresholds cached maps.

Beyond the paper, the sidebar also offers the pretrained ImageNet EfficientNet-Lite0 (1000
classes, offline) for uploaded photos, and the explore page can grow SPG-B on one uploaded
photo (``spg_core.single_image.single_image_guidance``) and show how the guidance spread.
"""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="SPG Explorer", page_icon=":material/image_search:", layout="wide")
# Maps are 12-28 px grids upsampled to the image: the browser enlarges pictures without
# smoothing, so a seed mask shows its real pixels (and the server never encodes big copies).
st.html("<style>[data-testid='stImage'] img {image-rendering: pixelated;}</style>")

with st.spinner("Loading the toolkit (first start only)…"):
    import hashlib
    import json
    import os
    from dataclasses import dataclass
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go
    from PIL import Image
    from plotly.subplots import make_subplots

    from spg_core import app_support as support
    from spg_core import viz
    from spg_core.cli import FORMATS, data_settings, dataset_from_settings
    from spg_core.config import load_config_file
    from spg_core.data import SPLITS
    from spg_core.data.synthetic import PART_LOOKS, PART_POSITIONS
    from spg_core.evaluate import PROTOCOLS, curves_figure, evaluate, resize_box
    from spg_core.guidance import MAP_STAGES, PRESETS
    from spg_core.localize import MASKS, STAGE_TITLES, Localizer
    from spg_core.metrics import FAILURE_TYPES
    from spg_core.runs import load_run, resolve_run, shipped_runs
    from spg_core.single_image import TRACKED_MASKS, growth_strip, single_image_guidance
    from spg_core.sweeps import guidance_batches, object_mask, seed_sweep, summarize_sweep

OTHER_RUN = "__run_dir__"
IMAGENET = "__imagenet__"
IMAGENET_LABEL = "ImageNet EfficientNet-Lite0 (pretrained, 1000 classes, offline)"
GUIDANCE_BUTTON = "Grow the guidance on this photo (single-image SPG, ~5 s)"
GUIDANCE_SECONDS = 5.0  # time budget of single-image guidance; SPG_APP_GUIDANCE_SECONDS overrides it
GUIDANCE_KEPT = 3  # grown results kept in the session (each holds full-size maps of one photo)
STAGES = tuple(MASKS)  # mask_a, mask_b2, mask_fuse: the three Eq. 1 stages
STAGE_SOURCES = {"mask_a": "attention map", "mask_b2": "B2", "mask_fuse": "fused guidance"}
STAGE_ROLES = {"mask_a": "seeds for B2", "mask_b2": "seeds for B1", "mask_fuse": "seeds for SPG-C"}
STAGE_NOTES = {
    "image": "The input, at its own resolution.",
    "attention": "A4 map of the chosen class, min-max normalised: the classifier's evidence.",
    "mask_a": "Eq. 1 on the attention map: white > δ_h (object), black < δ_l (background), grey ignored.",
    "b2": "B2 learned from Mask-A: spreads from confident seeds to similar pixels.",
    "mask_b2": "Eq. 1 on B2: the seeds that supervise B1.",
    "b1": "B1 (shares the top block with B2) learned from Mask-B2.",
    "fused": "(B1 + B2) / 2: the self-produced guidance.",
    "mask_fuse": "Eq. 1 on the fused map: pixel supervision for SPG-C.",
    "c": "SPG-C, the auxiliary branch that pushes the classifier's maps to cover the object.",
    "final": "Test time uses only the A4 map (§3.4): box = largest component at τ. Green: predicted, red: GT.",
}
CURVE_NAMES = {
    "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc",
    "top5_loc": "Top-5 Loc",
    "boxacc_v1_iou30": "MaxBoxAcc @ IoU 30",
    "boxacc_v1_iou50": "MaxBoxAcc @ IoU 50",
    "boxacc_v1_iou70": "MaxBoxAcc @ IoU 70",
    "boxacc_v2_iou30": "MaxBoxAccV2 @ IoU 30",
    "boxacc_v2_iou50": "MaxBoxAccV2 @ IoU 50",
    "boxacc_v2_iou70": "MaxBoxAccV2 @ IoU 70",
    "pxap_pr": "PxAP precision-recall",
}
DEFAULT_CURVES = ("gt_known_loc", "top1_loc", "boxacc_v2_iou30", "boxacc_v2_iou50", "boxacc_v2_iou70")
FAILURE_NOTES = {
    "ok": "class right and IoU ≥ 0.5",
    "wrong-class": "the top-1 class is wrong",
    "part-only": "the box lies inside the object: the classic CAM failure SPG targets",
    "too-large": "the box swallows the object and much of its surroundings",
    "wrong-place": "the box is mostly elsewhere",
}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
# Widgets of one page lose their state while another page is shown; re-assigning these keys at
# the top of every run keeps thresholds, the chosen image and the filters across page switches.
PERSISTENT_KEYS = (
    "model_choice", "run_dir", "image_source", "browse_mode", "explore_index", "explore_class", "explore_class_rank", "worst_n", "worst_rank",
    "view_class", "box_stage", "preset", *(f"delta_{stage}" for stage in STAGES), "show_histograms",
    "compare_runs", "eval_n", "eval_protocol", "eval_map_stage", "eval_curves",
    "sweep_stage", "sweep_n", "sweep_step", "sweep_kind",
    "triage_n", "triage_failures", "triage_fallback", "triage_page", "triage_per_page",
)


# ----------------------------------------------------------------------------- cached resources
@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def load_model(folder: str, stamp: str):
    """(Localizer, TrainConfig, info) of a run; ``stamp`` changes when the checkpoint does."""
    model, config, info = load_run(folder, "cpu")
    localizer = Localizer(model, config.image_size, info["class_names"], "cpu", config.preset)
    return localizer, config, info


@st.cache_resource(show_spinner="Preparing the dataset…", max_entries=8)
def load_dataset(key: str):
    spec = json.loads(key)
    split = spec.pop("split")
    return dataset_from_settings(spec, split)


@st.cache_resource(show_spinner="Loading the ImageNet EfficientNet-Lite0…")
def load_imagenet():
    """(Localizer, weights path) of the pretrained 1000-class classifier (no SPG heads)."""
    # Imported here: timm is only needed once someone picks the ImageNet model.
    from spg_core.models.efficientnet import imagenet_class_names, imagenet_model, packaged_weights_path

    localizer = Localizer(imagenet_model(), 224, imagenet_class_names())
    return localizer, packaged_weights_path()


@st.cache_resource
def result_cache() -> support.ResultCache:
    return support.ResultCache(max_entries=48)


@st.cache_data(max_entries=128, show_spinner=False)
def dataset_sample(data_key: str, index: int, _dataset):
    return _dataset.load_sample(index)


@st.cache_data(max_entries=128, show_spinner="Running the model…")
def predict_maps(run_key: str, image_key: str, class_index: int | None, _localizer, _image):
    """Every stage map of one image for one class: computed once, re-thresholded on every move."""
    return _localizer.predict(_image, class_index)


@st.cache_data(max_entries=6, show_spinner="Running the model…")
def predict_upload_maps(run_key: str, image_key: str, class_index: int | None, _localizer, _image):
    """As predict_maps, for uploaded photos (larger maps, so kept for a few photos only)."""
    return _localizer.predict(_image, class_index)


@st.cache_data(max_entries=256, show_spinner=False)
def map_tile(run_key: str, image_key: str, class_index: int, name: str, alpha: float, _maps) -> tuple[bytes, str]:
    """Encoded picture of the image or one score map over it: changes with image, class, opacity."""
    return support.encode_picture(support.map_picture(_maps, name, alpha))


@st.cache_data(max_entries=64, show_spinner=False)
def final_tile(run_key: str, image_key: str, class_index: int, alpha: float, box_stage: str, box: tuple,
               gt_key: str, _maps, _gt_boxes, side: int = support.STRIP_SIDE) -> tuple[bytes, str]:
    """Encoded localisation map with its boxes: changes with τ only through the box."""
    return support.encode_picture(support.final_picture(_maps, box, alpha, _gt_boxes, box_stage), side)


@st.cache_data(max_entries=GUIDANCE_KEPT, show_spinner=False)
def growth_tile(grown_key: str, _result) -> bytes:
    """PNG of ``single_image.growth_strip`` of one grown result (``grown_key`` names it)."""
    return support.png_bytes(growth_strip(_result))


@st.cache_data(max_entries=8, show_spinner=False)
def decode_upload(file_id: str, name: str, _data: bytes):
    return support.read_upload(name, _data)


@st.cache_data(max_entries=32, show_spinner=False)
def run_variant(name: str, stamp: str) -> str | None:
    try:
        return load_config_file(resolve_run(name) / "config.yaml").get("variant")
    except (FileNotFoundError, ValueError, OSError):
        return None


# ----------------------------------------------------------------------------- context
@dataclass
class ModelContext:
    localizer: Localizer
    config: object
    info: dict
    key: str
    label: str
    folder: Path
    uploads_only: bool = False  # a classifier without a dataset here (the ImageNet model)

    @property
    def variant(self) -> str:
        return getattr(self.localizer.model, "variant", "spg")


@dataclass
class Context:
    model: ModelContext | None = None
    dataset: object = None
    data_key: str = ""
    data_label: str = ""
    gt_usable: bool = False
    tau: float = support.DEFAULT_TAU
    alpha: float = 0.5


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def open_model(run: str, label: str | None = None) -> ModelContext:
    folder = resolve_run(run)
    localizer, config, info = load_model(str(folder), support.run_stamp(folder))
    variant = support.variant_label(config.variant)
    return ModelContext(localizer, config, info, f"{folder}@{support.run_stamp(folder)}",
                        label or f"{run} ({variant})", folder)


def open_imagenet() -> ModelContext:
    localizer, weights = load_imagenet()
    config = SimpleNamespace(backbone="efficientnet_lite0", variant="plain", preset=localizer.preset.name,
                             image_size=localizer.image_size)
    return ModelContext(localizer, config, {}, f"imagenet@{weights}", "ImageNet EfficientNet-Lite0", weights,
                        uploads_only=True)


def run_label(name: str) -> str:
    if name == OTHER_RUN:
        return "Another run folder (RUN_DIR)…"
    if name == IMAGENET:
        return IMAGENET_LABEL
    try:
        variant = run_variant(name, support.run_stamp(resolve_run(name)))
    except (FileNotFoundError, OSError):
        variant = None
    return f"{name} ({support.variant_label(variant)})" if variant else name


def sidebar_model() -> ModelContext | None:
    bar = st.sidebar
    bar.header("Model")
    runs = shipped_runs()
    options = [*runs, IMAGENET, OTHER_RUN]
    if st.session_state.get("model_choice") not in options:
        st.session_state["model_choice"] = "synthetic-spg" if "synthetic-spg" in runs else options[0]
    choice = bar.selectbox("Trained run", options, key="model_choice", format_func=run_label,
                           help="Runs shipped with the package, or any folder written by "
                                "`python -m spg_core train --out RUN_DIR`.")
    missing = [name for name in ("synthetic-spg", "synthetic-plain") if name not in runs]
    if missing:
        bar.caption(f"Not shipped in this install: {', '.join(f'`{m}`' for m in missing)}. "
                    f"Shipped: {', '.join(f'`{r}`' for r in runs) or 'none'}.")
    if choice == IMAGENET:
        try:
            model = open_imagenet()
        except Exception as error:  # e.g. the weights package is not installed: say so, no traceback
            bar.error(f"Could not load the ImageNet model: {error}")
            return None
        bar.caption("EfficientNet-Lite0 classifier pretrained on ImageNet-1k (weights shipped with its package, "
                    "nothing downloaded) · 1000 classes · 224 px input · no SPG heads (they can be grown on a photo).")
        bar.info("Uploads only: this model has no dataset here. Upload a photo on the Explore page.")
        return model
    if choice == OTHER_RUN:
        run = bar.text_input("RUN_DIR", key="run_dir", placeholder="runs/my-spg",
                             help="A folder holding checkpoint.pt, or the checkpoint file itself.").strip()
        if not run:
            bar.info("Type the path of a run folder.")
            return None
    else:
        run = choice
    try:
        model = open_model(run, run_label(run) if choice != OTHER_RUN else None)
    except Exception as error:  # a typed path can fail in many ways; show why, never a traceback
        bar.error(f"Could not load the run {run!r}: {error}")
        return None
    config = model.config
    bar.caption(f"{config.backbone} backbone · {support.variant_label(config.variant)} · "
                f"{model.localizer.model.num_classes} classes · {config.image_size} px input · "
                f"epoch {model.info['epoch']} · trained with the `{config.preset}` preset")
    return model


def sidebar_data(model: ModelContext, ctx: Context) -> None:
    bar = st.sidebar
    bar.header("Data")
    source = bar.radio("Images from", ["benchmark", "custom"], key="data_source",
                       format_func=lambda s: "The run's own test split" if s == "benchmark" else "Another dataset…",
                       help="The run's own data is the generated teaching benchmark for the shipped runs "
                            "(made on the fly, nothing on disk).")
    config = model.config
    try:
        if source == "benchmark":
            split = "test"
            settings = data_settings(support.data_namespace(), fallback=config)
            # A shipped run names a test image on which its guidance visibly grows: open there.
            showcase = (support.run_metrics(model.folder) or {}).get("showcase_index") if model.folder else None
            if showcase is not None:
                st.session_state.setdefault("explore_index", int(showcase))
        else:
            fmt = bar.selectbox("Format (--format)", FORMATS, key="data_format")
            flags = {"format": fmt}
            if fmt != "synthetic":
                flags["data_root"] = bar.text_input("Data root (--data-root)", key="data_root")
                flags["metadata_root"] = bar.text_input("Metadata root (--metadata-root, optional)",
                                                        key="metadata_root")
            st.session_state.setdefault("data_split", "test")
            split = bar.selectbox("Split", SPLITS, key="data_split")
            size = bar.number_input("Input size (--image-size; 0 = the run's)", 0, 1024, 0, step=8,
                                    key="data_image_size")
            flags["image_size"] = int(size) or None
            if fmt == "synthetic":
                own = config.synthetic if config.format == "synthetic" else {}
                flags["part_position"] = bar.selectbox(
                    "Part position", PART_POSITIONS, key="data_part_position",
                    index=PART_POSITIONS.index(own.get("part_position", PART_POSITIONS[0])))
                flags["part_look"] = bar.selectbox(
                    "Part look (own colour: SPG's premise fails; body colour + mark: it holds)", PART_LOOKS,
                    key="data_part_look", index=PART_LOOKS.index(own.get("part_look", PART_LOOKS[0])))
                flags["clutter"] = bar.slider("Clutter", 0.0, 1.0, 0.5, 0.05, key="data_clutter")
                flags["body_cue"] = bar.slider("Body cue (class information in the body)", 0.0, 1.0,
                                               float(config.synthetic.get("body_cue", 0.0)) if config.format == "synthetic"
                                               else 0.0, 0.05, key="data_body_cue")
                flags["synthetic_seed"] = int(bar.number_input("Generator seed", 0, 10**6, 0, key="data_seed"))
                count = int(bar.number_input("Images in the split", 1, 5000, 200, key="data_count"))
                flags[{"train": "synthetic_train", "val": "synthetic_val", "test": "synthetic_test"}[split]] = count
            elif not flags.get("data_root", "").strip():
                bar.info(f"Type the data root of your {fmt} dataset.")
                return
            settings = data_settings(support.data_namespace(**flags), fallback=config)
        key = support.settings_key(settings, split)
        dataset = load_dataset(key)
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        bar.error(f"Could not open the dataset: {error}")
        return
    if len(dataset) == 0:
        bar.error(f"The {split} split is empty; pick another split.")
        return
    ctx.dataset, ctx.data_key = dataset, key
    ctx.data_label = f"{settings['format']} · {split} · {len(dataset)} images"
    bar.caption(ctx.data_label)
    ctx.gt_usable = dataset.num_classes == model.localizer.model.num_classes
    if not ctx.gt_usable:
        bar.warning(f"The dataset has {dataset.num_classes} classes but the model {model.localizer.model.num_classes}: "
                    "ground-truth class maps and the evaluation pages need the model's own classes.")


def sidebar_display(model: ModelContext | None, ctx: Context) -> None:
    bar = st.sidebar
    bar.header("Box and display")
    if "tau" not in st.session_state:
        st.session_state["tau"] = support.default_tau(model.folder) if model else support.DEFAULT_TAU
    ctx.tau = bar.slider("Box threshold τ", 0.0, 0.99, step=0.01, key="tau", format="%.2f",
                         help="The localisation map is min-max normalised and kept where ≥ τ; the box is the "
                              "tight box of the largest connected component (paper §4, after CAM).")
    if model is not None:
        note = ("τ chosen on the held-out split by the run's metrics.json" if support.run_metrics(model.folder)
                else f"default {support.DEFAULT_TAU} (CAM's)")
        bar.caption(f"Suggested: {support.default_tau(model.folder):.2f} — {note}")
    if "alpha" not in st.session_state:
        st.session_state["alpha"] = 0.5
    ctx.alpha = bar.slider("Map opacity", 0.0, 1.0, step=0.05, key="alpha")


# ----------------------------------------------------------------------------- shared helpers
def progress_callback(bar, text: str):
    def update(done: int, total: int) -> None:
        step = max(1, total // 50)
        if done == total or done % step == 0:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{text}: {done}/{total} images")
    return update


def count_slider(label: str, total: int, key: str, default: int = 200, help: str | None = None) -> int:
    """How many images of the dataset to use (its first N); small by default, cached per N."""
    if total <= 1:
        st.caption(f"{label}: {total} (the dataset's only image)")
        return total
    st.session_state[key] = min(st.session_state.get(key, default), total)
    return int(st.slider(label, 1, total, key=key, help=help))


def evaluation(ctx: Context, model: ModelContext, n: int, protocol: str, compute: bool,
               map_stage: str = "attention") -> dict | None:
    """spg_core.evaluate.evaluate on the first ``n`` images at the sidebar's τ, cached per
    (run, dataset, n, protocol, τ, map); computed (with a progress bar) only when ``compute``."""
    tau = round(float(ctx.tau), 2)
    key = ("evaluate", model.key, ctx.data_key, int(n), protocol, tau, map_stage)
    cache = result_cache()
    result = cache.get(key)
    if result is not None or not compute:
        return result
    bar = st.progress(0.0, text=f"Evaluating {model.label}…")
    view = support.DatasetView(ctx.dataset, n, progress_callback(bar, f"Evaluating {model.label}"))
    try:
        extra = {} if map_stage == "attention" else {"map_stage": map_stage}
        metrics, rows, curves = evaluate(model.localizer.model, view, device="cpu", protocol=protocol, tau=tau,
                                         progress=False, batch_size=32, **extra)
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Evaluation of {model.label} failed: {error}")
        return None
    bar.empty()
    result = {"metrics": metrics, "rows": rows, "curves": curves, "tau": tau, "n": int(n), "protocol": protocol}
    cache.put(key, result)
    return result


def guidance_statistics(ctx: Context, model: ModelContext, n: int, stage: str, lows, highs, compute: bool,
                        text: str) -> dict | None:
    """Per-image seed statistics (``sweeps.seed_sweep``) of one stage over the first ``n`` images,
    on the maps Algorithm 1 thresholds in training (GT class, seed-mask resolution)."""
    lows, highs = tuple(round(float(v), 4) for v in lows), tuple(round(float(v), 4) for v in highs)
    key = ("seeds", model.key, ctx.data_key, int(n), stage, lows, highs)
    cache = result_cache()
    result = cache.get(key)
    if result is not None or not compute:
        return result
    config = model.config
    same_input = ctx.dataset.image_size == config.image_size
    mask_size = config.resolved_mask_size() if same_input else None
    bar = st.progress(0.0, text=text)
    indices, parts = [], []
    try:
        for batch in guidance_batches(model.localizer.model, ctx.dataset, limit=n, preset=PRESETS[config.preset],
                                      mask_size=mask_size, on_batch=progress_callback(bar, text)):
            source = MASKS[stage]
            if source not in batch["maps"]:
                bar.empty()
                st.error(f"{model.label} has no {STAGE_SOURCES[stage]} map: {stage} cannot be swept.")
                return None
            parts.append(seed_sweep(batch["maps"][source], batch["object_masks"], lows, highs))
            indices.extend(batch["indices"])
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        bar.empty()
        st.error(f"Computing the seeds failed: {error}")
        return None
    bar.empty()
    if not parts:
        st.error("No readable image among the first images of the dataset.")
        return None
    per_image = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    result = {"indices": indices, "per_image": per_image, "summary": summarize_sweep(per_image),
              "lows": lows, "highs": highs, "stage": stage, "mask_size": mask_size or ctx.dataset.image_size}
    cache.put(key, result)
    return result


def current_thresholds(preset_name: str | None = None) -> dict[str, tuple[float, float]]:
    """The explore page's (δ_l, δ_h) of each stage, or the run's preset before it was opened."""
    saved = st.session_state.get("current_thresholds")
    if saved:
        return dict(saved)
    preset = PRESETS[preset_name or "paper"]
    return {stage: (preset.stage(stage).delta_low, preset.stage(stage).delta_high) for stage in STAGES}


def percent(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def need(ctx: Context, dataset: bool = True, gt: bool = False) -> bool:
    if ctx.model is None:
        st.info("Pick a trained run in the sidebar.")
        return False
    if dataset and ctx.dataset is None:
        if ctx.model.uploads_only:
            st.info(f"{ctx.model.label} has no dataset here: it is for uploaded photos on the Explore page. "
                    "Pick a trained run in the sidebar for this page.")
            return False
        st.info("Pick a dataset in the sidebar.")
        return False
    if gt and not ctx.gt_usable:
        st.warning("This page scores ground-truth class maps: the dataset's classes must be the model's.")
        return False
    return True


# ----------------------------------------------------------------------------- page 1: explore
@dataclass
class Picked:
    image_key: str
    image: Image.Image
    title: str
    label: int | None = None
    boxes: np.ndarray | None = None
    mask: np.ndarray | None = None
    scale: float = 1.0
    image_id: str = "upload"


def remember_upload() -> None:
    uploaded = st.session_state.get("upload")
    st.session_state["last_upload"] = (
        None if uploaded is None else (uploaded.file_id, uploaded.name, uploaded.getvalue()))


def pick_upload() -> Picked | None:
    # No `type=` filter: Streamlit would raise on other files; read_upload names the problem instead.
    st.file_uploader(f"Upload a photo (PNG or JPEG, up to {support.MAX_UPLOAD_BYTES // 2**20} MB)",
                     key="upload", on_change=remember_upload)
    uploaded = st.session_state.get("upload")
    stored = st.session_state.get("last_upload")
    if uploaded is not None and (stored is None or stored[0] != uploaded.file_id):
        stored = (uploaded.file_id, uploaded.name, uploaded.getvalue())
        st.session_state["last_upload"] = stored
    if stored is None:
        st.info("Upload a photo to see every stage on it. Photos have no ground truth: IoU and seed precision "
                "need a dataset image.")
        return None
    file_id, name, data = stored
    try:
        image, scale = decode_upload(file_id, name, data)
    except support.UploadError as error:
        st.error(str(error))
        return None
    note = f" (downscaled ×{scale:.2f} from the file)" if scale < 1 else ""
    return Picked(f"upload:{file_id}", image, f"{name} · {image.width}×{image.height}{note}", scale=scale,
                  image_id=Path(name).stem)


def worst_ranking(ctx: Context) -> list[tuple[int, float, str]] | None:
    model = ctx.model
    total = len(ctx.dataset)
    columns = st.columns([2, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images to rank", total, "worst_n",
                         help="Per-image IoU of the ground-truth class map's box at τ (paper protocol).")
    result = evaluation(ctx, model, n, "paper", compute=False)
    if result is None:
        if columns[1].button("Rank by IoU", key="rank_button", type="primary"):
            result = evaluation(ctx, model, n, "paper", compute=True)
    if result is not None:
        positions = support.positions_by_image_id(ctx.dataset)
        order = sorted(((positions[r["image_id"]], r["iou"], r["failure"]) for r in result["rows"]),
                       key=lambda item: item[1])
        st.session_state["worst_ranking"] = {"key": (model.key, ctx.data_key), "tau": result["tau"], "order": order}
    saved = st.session_state.get("worst_ranking")
    if not saved or saved["key"] != (model.key, ctx.data_key):
        st.caption("Ranking needs one pass of the model over the images (cached afterwards).")
        return None
    if abs(saved["tau"] - ctx.tau) > 1e-9:
        st.caption(f"Ranked at τ = {saved['tau']:.2f}; press *Rank by IoU* to rank at τ = {ctx.tau:.2f}.")
    return saved["order"]


def pick_index(ctx: Context, mode: str) -> int | None:
    dataset = ctx.dataset
    total = len(dataset)
    if mode == "index":
        if st.session_state.get("explore_index", 0) >= total:
            st.session_state["explore_index"] = 0
        return int(st.number_input(f"Image index (0–{total - 1})", 0, total - 1, key="explore_index"))
    if mode == "class":
        groups = support.indices_by_class(dataset)
        classes = sorted(groups)
        if st.session_state.get("explore_class") not in classes:
            st.session_state["explore_class"] = classes[0]
        columns = st.columns(2)
        chosen = columns[0].selectbox("Class", classes, key="explore_class",
                                      format_func=lambda c: f"{dataset.class_names[c]} ({len(groups[c])} images)")
        members = groups[chosen]
        if st.session_state.get("explore_class_rank", 0) >= len(members):
            st.session_state["explore_class_rank"] = 0
        rank = int(columns[1].number_input(f"Image of this class (0–{len(members) - 1})", 0, len(members) - 1,
                                           key="explore_class_rank"))
        return members[rank]
    order = worst_ranking(ctx)
    if not order:
        return None
    if st.session_state.get("worst_rank", 0) >= len(order):
        st.session_state["worst_rank"] = 0
    rank = int(st.number_input(f"Rank (0 = worst IoU, {len(order) - 1} = best)", 0, len(order) - 1,
                               key="worst_rank"))
    index, iou, failure = order[rank]
    st.caption(f"Evaluator: IoU {iou:.3f}, failure type *{failure}* — {FAILURE_NOTES.get(failure, '')}.")
    return index


def pick_dataset_image(ctx: Context, mode_slot, input_slot) -> Picked | None:
    dataset = ctx.dataset
    mode = mode_slot.selectbox("Browse", ["index", "class", "worst"], key="browse_mode",
                               format_func={"index": "by index", "class": "by class",
                                            "worst": "worst IoU first"}.get)
    with input_slot:
        index = pick_index(ctx, mode)
    if index is None:
        return None
    sample = dataset_sample(ctx.data_key, index, dataset)
    if sample is None:
        st.error(f"Image {index} of the dataset cannot be decoded (see the server log); pick another one.")
        return None
    name = dataset.class_names[sample.label] if 0 <= sample.label < len(dataset.class_names) else str(sample.label)
    title = f"#{index} · {sample.image_id} · ground truth: {name} · {sample.size[0]}×{sample.size[1]}"
    return Picked(f"{short_hash(ctx.data_key)}#{index}", sample.image, title, int(sample.label),
                  np.asarray(sample.boxes), sample.mask, 1.0, str(sample.image_id))


def apply_preset(stages=STAGES) -> None:
    preset = PRESETS[st.session_state.get("preset", "paper")]
    for stage in stages:
        thresholds = preset.stage(stage)
        st.session_state[f"delta_{stage}"] = (thresholds.delta_low, thresholds.delta_high)


def threshold_controls(model: ModelContext, available: set[str]) -> tuple[object, dict]:
    if st.session_state.get("preset") not in PRESETS:
        st.session_state["preset"] = model.config.preset if model.config.preset in PRESETS else "paper"
    if any(f"delta_{stage}" not in st.session_state for stage in STAGES):
        apply_preset([s for s in STAGES if f"delta_{s}" not in st.session_state])
    top = st.columns([2, 1, 3])
    preset_name = top[0].selectbox("Threshold preset", list(PRESETS), key="preset", on_change=apply_preset,
                                   help="Named (δ_l, δ_h) sets of guidance.PRESETS; choosing one resets the sliders.")
    top[1].button("Reset all", key="reset_all", on_click=apply_preset, help="Back to the preset's values.",
                  width="stretch")
    trained = ("Grown guidance trains with" if model.uploads_only else "This run was trained with")
    top[2].caption(f"**{preset_name}** — {PRESETS[preset_name].description}. "
                   f"{trained} **{model.config.preset}**.")
    preset = PRESETS[preset_name]
    columns = st.columns(len(STAGES))
    thresholds = {}
    for column, stage in zip(columns, STAGES):
        key = f"delta_{stage}"
        exists = MASKS[stage] in available
        column.slider(f"{STAGE_TITLES[stage].split(' (')[0]}: δ_l, δ_h on the {STAGE_SOURCES[stage]}", 0.0, 1.0,
                      step=0.01, key=key, format="%.2f", disabled=not exists,
                      help=f"Eq. 1 on the {STAGE_SOURCES[stage]}: below δ_l background, above δ_h foreground, "
                           f"between ignored ({STAGE_ROLES[stage]}). All presets: "
                           + "; ".join(f"{name} {p.stage(stage).delta_low:.2f}/{p.stage(stage).delta_high:.2f}"
                                       for name, p in PRESETS.items()))
        low, high, adjusted = support.clean_thresholds(*st.session_state[key])
        thresholds[stage] = (low, high)
        reference = preset.stage(stage)
        changed = (low, high) != (reference.delta_low, reference.delta_high)
        column.caption(f"{preset_name} preset: δ_l = {reference.delta_low:.2f}, δ_h = {reference.delta_high:.2f}"
                       + (" · **changed**" if changed else "") + ("" if exists else " · no such map in this model"))
        if adjusted:
            column.caption(f":orange[Eq. 1 needs δ_l < δ_h: using δ_l = {low:.2f}, δ_h = {high:.2f}.]")
        column.button("Reset", key=f"reset_{stage}", on_click=apply_preset, args=((stage,),))
    st.session_state["current_thresholds"] = thresholds
    return support.custom_preset(preset, thresholds), thresholds


def class_choice(ctx: Context, picked: Picked, predicted: int) -> int:
    names = ctx.model.localizer.class_names
    gt_known = picked.label is not None and ctx.gt_usable
    options = [-1, -2, *range(len(names))] if gt_known else [-1, *range(len(names))]
    if st.session_state.get("view_class") not in options:
        st.session_state["view_class"] = -1

    def label(option: int) -> str:
        if option == -1:
            return f"predicted: {names[predicted]}"
        if option == -2:
            return f"ground truth: {names[picked.label]}"
        return names[option]

    option = st.selectbox("Class whose map to view", options, key="view_class", format_func=label)
    return predicted if option == -1 else (picked.label if option == -2 else int(option))


def box_stage_choice(maps) -> str:
    options = [stage for stage in MAP_STAGES if stage in maps.maps]
    if st.session_state.get("box_stage") not in options:
        st.session_state["box_stage"] = "attention"
    return st.selectbox("Box from", options, key="box_stage", format_func=map_stage_label,
                        help="The paper boxes the A4 attention map (§3.4). The class-agnostic guidance maps are "
                             "offered as an extension, to see how much of the object each stage covers.")


def map_stage_label(stage: str) -> str:
    return "attention map (paper)" if stage == "attention" else f"{STAGE_TITLES[stage]} (extension)"


def histogram_figure(maps, thresholds: dict) -> go.Figure:
    sources = [stage for stage in STAGES if MASKS[stage] in maps.maps]
    fig = make_subplots(rows=1, cols=len(sources), subplot_titles=[STAGE_SOURCES[s] for s in sources])
    for column, stage in enumerate(sources, 1):
        values = maps.maps[MASKS[stage]].ravel()
        counts, edges = np.histogram(values, bins=50, range=(0, 1))
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=0.02, marker_color="#888",
                             showlegend=False), row=1, col=column)
        low, high = thresholds[stage]
        fig.add_vline(x=low, line_color="black", annotation_text="δ_l", row=1, col=column)
        fig.add_vline(x=high, line_color="#d62728", annotation_text="δ_h", row=1, col=column)
    fig.update_layout(height=260, margin=dict(t=40, b=20, l=20, r=20), template="plotly_white")
    fig.update_yaxes(type="log")
    return fig


def guidance_seconds() -> float:
    """Time budget of single-image guidance (SPG_APP_GUIDANCE_SECONDS overrides GUIDANCE_SECONDS)."""
    value = os.environ.get("SPG_APP_GUIDANCE_SECONDS", "").strip()
    try:
        return float(value) if value and float(value) > 0 else GUIDANCE_SECONDS
    except ValueError:
        return GUIDANCE_SECONDS


def grow_guidance(model: ModelContext, picked: Picked, class_index: int):
    """The single-image guidance controls (an exploration beyond the paper): returns
    (key, result) of this photo, model and class once grown, else None. Results live in
    st.session_state (the last GUIDANCE_KEPT ones); ``key`` is new at every growth."""
    st.subheader("Grow the guidance on this photo")
    st.caption(":orange[**Beyond the paper.**] SPG learns B2, B1 and the fused guidance over a whole training "
               "set. Here the classifier stays frozen and fresh B2 → B1 heads are trained for a few seconds on "
               "augmented views of this one photo, supervised by its own seeds (Mask-A → B2, Mask-B2 → B1, "
               "Algorithm 1's functions): the seeds of the attention map spread over more of the object. "
               f"For the class shown ({model.localizer.class_names[class_index]}); nothing here is a paper result.")
    store = st.session_state.setdefault("grown_guidance", {})
    photo = f"{model.key}|{picked.image_key}|{class_index}"
    columns = st.columns([2, 1, 2], vertical_alignment="center")
    if columns[0].button(GUIDANCE_BUTTON, key="grow_button", type="primary", width="stretch"):
        bar = st.progress(0.0, text="step 0")
        try:
            result = single_image_guidance(
                model.localizer, picked.image, class_index=class_index, seconds=guidance_seconds(),
                progress=lambda fraction, info: bar.progress(fraction, text=f"step {info['step']}"))
        except (ValueError, TypeError, RuntimeError) as error:
            bar.empty()
            st.error(f"Growing the guidance failed: {error}")
            return None
        bar.empty()
        number = st.session_state.get("grown_count", 0) + 1
        st.session_state["grown_count"] = number
        store.pop(photo, None)
        store[photo] = (f"{model.key}|grown-{number}", result)
        while len(store) > GUIDANCE_KEPT:
            store.pop(next(iter(store)))
    entry = store.get(photo)
    if entry is not None:
        if columns[1].button("Show the model's own maps", key="grow_clear", width="stretch"):
            store.pop(photo, None)
            return None
        result = entry[1]
        columns[2].caption(f"Grown: {result.steps} steps in {result.seconds:.1f} s on {result.views} views. "
                           "The strip below shows the grown maps; the sliders re-threshold them.")
    return entry


def growth_figure(history: list[dict]) -> go.Figure:
    """Foreground share of each seed mask of the plain view while the heads trained."""
    steps = [record["step"] for record in history]
    fig = go.Figure()
    for number, name in enumerate(TRACKED_MASKS):
        values = [100 * record["foreground"][name] if name in record["foreground"] else None for record in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=STAGE_TITLES[name],
                                     line=dict(color=PALETTE[number]),
                                     hovertemplate="step %{x}<br>%{y:.1f}% of the image<extra></extra>"))
    fig.update_layout(height=260, template="plotly_white", margin=dict(t=30, b=30, l=40, r=10),
                      xaxis_title="training step", yaxis_title="foreground seeds (%)", yaxis_range=[0, 100],
                      title=dict(text="Seed coverage while the guidance grew", font=dict(size=13)))
    return fig


def page_explore() -> None:
    ctx = CONTEXT
    st.title("Explore one image")
    if not need(ctx, dataset=False):
        return
    model = ctx.model
    with st.expander("How SPG turns a classifier's attention into a box", expanded=False):
        st.markdown(
            "A classifier trained with image labels only lights up the most discriminative part of the object "
            "(the **attention map**). SPG thresholds it with Eq. 1 into **seeds** — confident foreground "
            "(white, above δ_h), confident background (black, below δ_l), the rest ignored (grey). "
            "Branch **B2** learns a mask from Mask-A, **B1** from B2's seeds (Mask-B2), and their average, "
            "the **fused guidance**, is thresholded again into Mask-fuse, which supervises **SPG-C**. That "
            "pixel-level supervision teaches the classifier's maps to cover the whole object. At test time "
            "only the classifier runs: the box is the largest connected region of its map above τ.\n\n"
            "Move the sliders: the maps stay, only the seeds, the box and the numbers change.")
    picker = st.columns([1, 1, 2.4])
    if model.uploads_only:
        st.session_state["image_source"] = "upload"
    source = picker[0].radio("Image", ["dataset", "upload"], key="image_source", disabled=model.uploads_only,
                             format_func={"dataset": "from the dataset", "upload": "upload a photo"}.get)
    if model.uploads_only:
        picker[1].caption(f"{model.label}: uploaded photos only (no dataset with this model).")
    if source == "dataset":
        if ctx.dataset is None:
            st.info("Pick a dataset in the sidebar, or upload a photo.")
            return
        picked = pick_dataset_image(ctx, picker[1], picker[2])
    else:
        with picker[2]:
            picked = pick_upload()
    if picked is None:
        return
    st.markdown(f"**{picked.title}**")

    localizer = model.localizer
    predict = predict_upload_maps if picked.image_key.startswith("upload:") else predict_maps
    base = predict(model.key, picked.image_key, None, localizer, picked.image)
    head = st.columns([1, 2])
    with head[0]:
        class_index = class_choice(ctx, picked, base.predicted)
        box_stage = box_stage_choice(base)
    maps = base if class_index == base.predicted else predict(model.key, picked.image_key, class_index,
                                                               localizer, picked.image)
    with head[1]:
        top = pd.DataFrame([{"class": name, "probability": p} for _, name, p in base.top_k(5)])
        st.dataframe(top, hide_index=True, width="stretch", height=213,
                     column_config={"probability": st.column_config.ProgressColumn(
                         "probability", min_value=0.0, max_value=1.0, format="percent")})
    if picked.label is not None and ctx.gt_usable:
        verdict = "right" if base.predicted == picked.label else "wrong"
        head[0].caption(f"Top-1 is **{verdict}** (ground truth: {localizer.class_names[picked.label]}).")

    # Beyond the paper: SPG-B grown on this uploaded photo replaces the maps of the strip (same code path).
    grown = grow_guidance(model, picked, maps.class_index) if picked.image_key.startswith("upload:") else None
    maps_key = model.key
    if grown is not None:
        maps_key, maps = grown
        if box_stage not in maps.maps:  # e.g. SPG-C of a trained run: the grown heads have none
            box_stage = "attention"

    available = set(maps.maps)
    if model.uploads_only and grown is None:
        st.info("This pretrained classifier has no B1, B2 or SPG-C branches: the strip shows the attention map "
                "and the seeds Eq. 1 makes from it (Mask-A). Grow the guidance above to see the other stages.")
    elif model.variant == "plain" and grown is None:
        st.info("SPG-plain has no B1, B2 or SPG-C branches: the strip shows the attention map and the seeds "
                "Eq. 1 would make from it (Mask-A); the other stages exist only in SPG models.")
    preset, thresholds = threshold_controls(model, available)

    has_gt = picked.label is not None
    region = object_mask(picked.mask, picked.boxes, (picked.image.height, picked.image.width)) if has_gt else None
    view = support.threshold_view(maps, preset, ctx.tau, region, picked.boxes if has_gt else None, box_stage)

    # The stage strip, in the paper's order (Fig. 2 / Fig. 4). Score-map pictures depend on the
    # image, class and opacity only, the final one also on its box: both are cached, so a δ move
    # redraws just the three seed masks.
    gt_key = short_hash(str(np.asarray(picked.boxes).tolist())) if has_gt else ""
    st.subheader("Stages")
    per_row = 5
    names = support.strip_names(maps, view)
    for start in range(0, len(names), per_row):
        columns = st.columns(per_row)
        for column, (name, title) in zip(columns, names[start:start + per_row]):
            caption = title
            if name in view.masks:
                stats = view.report[name]
                caption += (f" — fg {percent(stats['foreground'])} · bg {percent(stats['background'])}"
                            + (" · fallback fired" if view.fallback[name] else ""))
                data, fmt = support.encode_picture(support.mask_picture(view, name), exact=True)
            elif name == "final":
                caption += "" if box_stage == "attention" else f" (from {STAGE_TITLES[box_stage]})"
                caption += "" if view.iou is None else f" — IoU {view.iou:.3f}"
                data, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage,
                                       tuple(view.box), gt_key, maps, picked.boxes if has_gt else None)
            else:
                data, fmt = map_tile(maps_key, picked.image_key, maps.class_index, name, ctx.alpha, maps)
            column.image(data, caption=caption, alt=title, width="stretch", output_format=fmt)
            column.caption(STAGE_NOTES.get(name, ""))

    if grown is not None:
        st.subheader("How the guidance grew (beyond the paper)")
        columns = st.columns([3, 2])
        columns[0].image(growth_tile(maps_key, maps), alt="Guidance growth", width="stretch", output_format="PNG",
                         caption="Mask-A (the attention seeds), the fused guidance (B1+B2)/2 at moments of training, "
                                 "and the final Mask-fuse (at the preset the heads trained with).")
        columns[1].plotly_chart(growth_figure(maps.history), width="stretch", key="guidance_history")

    st.subheader("Numbers")
    cols = st.columns(4)
    cols[0].metric("IoU of the box with GT", "—" if view.iou is None else f"{view.iou:.3f}",
                   help="Best IoU of the predicted box with any GT box (inclusive pixels, the +1 rule).")
    cols[1].metric("Predicted box (x0, y0, x1, y1)", str(tuple(view.box)))
    cols[2].metric("Mask-A fallback", "fired" if view.fallback.get("mask_a") else "not fired",
                   help="Fewer than 30 pixels above δ_h: Eq. 1 then uses 0.7 × max instead (reference codes).")
    cols[3].metric("Map shown", localizer.class_names[class_index])
    reference = ("the GT mask" if picked.mask is not None else "the GT box area (no mask)") if has_gt else None
    table = pd.DataFrame([{
        "stage": STAGE_TITLES[name],
        "δ_l": thresholds[name][0], "δ_h": thresholds[name][1],
        "foreground": percent(stats["foreground"]), "background": percent(stats["background"]),
        "ignored": percent(stats["ignored"]),
        "fg precision": percent(stats.get("foreground_precision")),
        "bg precision": percent(stats.get("background_precision")),
        "fallback": "fired" if view.fallback[name] else "no",
    } for name, stats in view.report.items()])
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("Coverage: share of the image's pixels in each seed class. "
               + (f"Precision: share of foreground seeds inside the object and of background seeds outside it, "
                  f"against {reference}." if reference else "Precision needs ground truth (a dataset image)."))
    if st.toggle("Show where the thresholds cut each map (score histograms)", key="show_histograms"):
        st.plotly_chart(histogram_figure(maps, thresholds), width="stretch", key="histograms")

    st.subheader("Overlay and downloads")
    columns = st.columns([2, 1])
    large, fmt = final_tile(maps_key, picked.image_key, maps.class_index, ctx.alpha, box_stage, tuple(view.box),
                            gt_key, maps, picked.boxes if has_gt else None, side=384)
    columns[0].image(large, width=448, caption="Localisation map (opacity in the sidebar) with the predicted box "
                     "(green) and GT boxes (red)", alt="Localisation overlay", output_format=fmt)
    stem = Path(str(picked.image_id)).stem or "image"
    with columns[1]:
        st.download_button("Overlay (PNG)",
                           data=lambda: support.png_bytes(support.final_picture(maps, view.box, ctx.alpha,
                                                                                picked.boxes if has_gt else None,
                                                                                box_stage)),
                           file_name=f"{stem}_overlay.png",
                           mime="image/png", on_click="ignore", key="download_overlay", width="stretch")
        st.download_button("Maps and seeds (.npz)", data=lambda: support.maps_npz(maps, view.masks),
                           file_name=f"{stem}_maps.npz", mime="application/octet-stream", on_click="ignore",
                           key="download_maps", width="stretch")
        st.download_button("Boxes and numbers (JSON)",
                           data=lambda: support.boxes_json(picked.image_id, maps, view, ctx.tau, preset,
                                                           picked.boxes if has_gt else None, picked.scale),
                           file_name=f"{stem}_boxes.json", mime="application/json", on_click="ignore",
                           key="download_boxes", width="stretch")
        st.caption("Boxes are inclusive (x0, y0, x1, y1) pixels of the image shown; the .npz holds every score "
                   "map (float32 in [0, 1]) and seed mask (0 bg / 1 fg / 255 ignored).")


# ----------------------------------------------------------------------------- page 2: dataset
def compare_models(ctx: Context) -> list[ModelContext]:
    runs = shipped_runs()
    current = ctx.model
    current_name = st.session_state.get("model_choice")
    options = list(runs)
    if current_name == OTHER_RUN:
        options = ["__current__", *options]
    if "compare_runs" not in st.session_state:
        first = "__current__" if current_name == OTHER_RUN else current_name
        partner = {"synthetic-spg": "synthetic-plain", "synthetic-plain": "synthetic-spg"}.get(first)
        st.session_state["compare_runs"] = [first] + ([partner] if partner in runs else [])
    st.session_state["compare_runs"] = [r for r in st.session_state["compare_runs"] if r in options] or [options[0]]
    chosen = st.multiselect("Models (one or two, on the same axes)", options, key="compare_runs", max_selections=2,
                            format_func=lambda r: current.label if r == "__current__" else run_label(r))
    if "synthetic-plain" not in runs:
        st.caption("`synthetic-plain` (the SPG-plain baseline) is not shipped in this install; "
                   "compare with any run by choosing it in the sidebar.")
    models = []
    for name in chosen:
        try:
            models.append(current if name == "__current__" else open_model(name, run_label(name)))
        except Exception as error:  # a replaced or broken run folder: say which and why
            st.error(f"Could not load {name!r}: {error}")
    return models


def rename_curves(label: str, curves: dict, chosen: list[str]) -> dict:
    return {(f"{label} · {CURVE_NAMES.get(name, name)}" if name != "pxap_pr" else f"{label} · pxap_pr"): curve
            for name, curve in curves.items() if name in chosen}


def accuracy_figure(results: list[tuple[str, dict]], chosen: list[str], tau: float) -> go.Figure:
    combined = {}
    for label, result in results:
        combined.update(rename_curves(label, result["curves"], chosen))
    fig = curves_figure(combined, tau)
    kinds = [CURVE_NAMES.get(name, name) for name in chosen]
    for trace in fig.data:
        model_index = next((i for i, (label, _) in enumerate(results) if trace.name.startswith(f"{label} · ")), 0)
        kind = next((k for k, name in enumerate(kinds) if f" · {name} (" in trace.name), 0)
        trace.line.color = PALETTE[kind % len(PALETTE)]
        trace.line.dash = ("solid", "dash", "dot")[model_index % 3]
    fig.update_layout(height=480)
    for annotation in fig.layout.annotations:
        if annotation.text == "accuracy vs τ":
            annotation.text = "accuracy vs τ (solid: first model, dashed: second)"
    return fig


def iou_histogram(results: list[tuple[str, dict]]) -> go.Figure:
    fig = go.Figure()
    for index, (label, result) in enumerate(results):
        fig.add_trace(go.Histogram(x=[row["iou"] for row in result["rows"]], name=label, opacity=0.6,
                                   xbins=dict(start=0, end=1.0001, size=0.05), marker_color=PALETTE[index]))
    fig.add_vline(x=0.5, line_dash="dot", annotation_text="IoU 0.5")
    fig.update_layout(barmode="overlay", template="plotly_white", height=360, xaxis_title="IoU of the box at τ",
                      yaxis_title="images", xaxis_range=[0, 1], title="Per-image IoU at the chosen τ",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def metrics_table(results: list[tuple[str, dict]]) -> pd.DataFrame:
    rows = []
    for label, result in results:
        m = result["metrics"]
        per_iou = m.get("maxboxacc_v2_per_iou", {})
        rows.append({
            "model": label, "images": m.get("num_images"), "protocol": m.get("protocol"), "τ": m.get("tau"),
            "GT-known Loc": m.get("gt_known_loc"), "Top-1 Loc": m.get("top1_loc"), "Top-5 Loc": m.get("top5_loc"),
            "MaxBoxAcc": m.get("maxboxacc"), "MaxBoxAccV2": m.get("maxboxacc_v2"),
            **{f"V2 @ IoU {k}": v for k, v in per_iou.items()},
            "PxAP": m.get("pxap"), "Top-1 cls": m.get("classification_top1"), "Top-5 cls": m.get("classification_top5"),
        })
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c not in ("model", "images", "protocol", "τ")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce").round(1)
    return table


def accuracy_tab(ctx: Context) -> None:
    models = compare_models(ctx)
    if not models:
        return
    total = len(ctx.dataset)
    columns = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images (N)", total, "eval_n")
    if st.session_state.get("eval_protocol") not in PROTOCOLS:
        st.session_state["eval_protocol"] = "wsolevaluation"
    protocol = columns[1].selectbox("Protocol", PROTOCOLS, key="eval_protocol",
                                    help="paper: largest component on the input grid (SPG §4). wsolevaluation: "
                                         "contour boxes at 224 px, MaxBoxAcc/V2 and PxAP (Choe et al. 2020).")
    stages = [s for s in MAP_STAGES if s == "attention" or all(m.variant != "plain" for m in models)]
    if st.session_state.get("eval_map_stage") not in stages:
        st.session_state["eval_map_stage"] = "attention"
    map_stage = columns[2].selectbox("Boxes from", stages, key="eval_map_stage", format_func=map_stage_label,
                                     help="The paper scores the attention map. Guidance maps need SPG heads "
                                          "(not offered when SPG-plain is compared).")
    results = [(m.label, evaluation(ctx, m, n, protocol, compute=False, map_stage=map_stage)) for m in models]
    missing = [m for m, (_, r) in zip(models, results) if r is None]
    if missing:
        if columns[3].button(f"Evaluate {n} images", key="evaluate_button", type="primary"):
            results = [(m.label, evaluation(ctx, m, n, protocol, compute=True, map_stage=map_stage))
                       for m in models]
    results = [(label, r) for label, r in results if r is not None]
    if not results:
        st.info("Evaluation runs the model over the first N images once per (model, N, protocol, τ) and is "
                "cached; it never blocks the explore page.")
        return
    available = [name for name in CURVE_NAMES if any(name in r["curves"] for _, r in results)]
    if "eval_curves" not in st.session_state:
        st.session_state["eval_curves"] = [c for c in DEFAULT_CURVES if c in available] or available[:1]
    st.session_state["eval_curves"] = [c for c in st.session_state["eval_curves"] if c in available] or available[:1]
    chosen = st.multiselect("Curves", available, key="eval_curves", format_func=lambda c: CURVE_NAMES.get(c, c))
    if protocol == "paper":
        st.caption("MaxBoxAccV2 needs the wsolevaluation protocol (its contour boxes).")
    st.plotly_chart(accuracy_figure(results, chosen, ctx.tau), width="stretch", key="accuracy_curves")
    st.dataframe(metrics_table(results), hide_index=True, width="stretch")
    st.caption(f"Loc metrics at the sidebar's τ = {ctx.tau:.2f} (chosen by you, on this split: an oracle if tuned "
               "here). MaxBoxAcc/V2 and PxAP take the best τ by definition. Percentages.")
    st.plotly_chart(iou_histogram(results), width="stretch", key="iou_histogram")
    for model in models:
        saved = support.run_metrics(model.folder)
        if saved:
            with st.expander(f"{model.label}: metrics.json written with the run"):
                st.json(saved)


PRESET_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open")


def sweep_figure(result: dict, kind: str, marks: dict[str, tuple[float, float]]) -> go.Figure:
    """Seed precision and coverage over the (δ_l, δ_h) grid on one colour scale (both in %),
    the presets and the explore page's current thresholds marked."""
    summary = result["summary"]
    lows, highs = list(result["lows"]), list(result["highs"])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(f"{kind} seed precision (%)", f"{kind} seed coverage (%)"))
    panels = ((f"{kind}_precision", 1, "precision"), (kind, 2, "coverage"))
    for name, column, word in panels:
        fig.add_trace(go.Heatmap(z=summary[name] * 100, x=highs, y=lows, coloraxis="coloraxis",
                                 hovertemplate=f"δ_l=%{{y:.2f}} δ_h=%{{x:.2f}}<br>{word} %{{z:.1f}}%<extra></extra>"),
                      row=1, col=column)
        for number, (label, (low, high)) in enumerate(marks.items()):
            current = label == "current"
            fig.add_trace(go.Scatter(
                x=[high], y=[low], mode="markers", name="your thresholds" if current else f"{label} preset",
                legendgroup=label, showlegend=column == 1,
                hovertemplate=f"{label}: δ_l={low:.2f} δ_h={high:.2f}<extra></extra>",
                marker=dict(symbol="star" if current else PRESET_SYMBOLS[number % len(PRESET_SYMBOLS)],
                            size=16 if current else 12, color="#ff7f0e" if current else "white",
                            line=dict(width=2, color="black" if current else "white"))), row=1, col=column)
        fig.update_xaxes(title_text="δ_h", row=1, col=column)
        fig.update_yaxes(title_text="δ_l", row=1, col=column)
    fig.update_layout(height=440, template="plotly_white", margin=dict(t=50, l=50, r=20, b=40),
                      coloraxis=dict(colorscale="Viridis", cmin=0, cmax=100, colorbar=dict(title="%", thickness=12)),
                      legend=dict(orientation="h", y=-0.18, bgcolor="#777", font=dict(color="white")))
    return fig


def fallback_figure(result: dict) -> go.Figure:
    """How often the 30-pixel fallback fires: it depends on δ_h only (Eq. 1's upper threshold)."""
    rates = result["summary"]["fallback"]
    highs = list(result["highs"])
    # Every valid cell of a δ_h column has the same rate; take it from the first valid one.
    column_rate = [next((float(v) for v in rates[:, j] if np.isfinite(v)), float("nan")) * 100
                   for j in range(len(highs))]
    fig = go.Figure(go.Scatter(x=highs, y=column_rate, mode="lines+markers",
                               hovertemplate="δ_h=%{x:.2f}<br>fallback on %{y:.1f}% of images<extra></extra>"))
    fig.update_layout(height=440, template="plotly_white", title="fallback fired (% of images)",
                      margin=dict(t=50, l=40, r=10, b=40), xaxis_title="δ_h", yaxis_range=[0, 100])
    return fig


def sweep_tab(ctx: Context) -> None:
    model = ctx.model
    st.markdown("For every (δ_l, δ_h) of a grid: how much of the image Eq. 1 turns into seeds (**coverage**) and "
                "how many of those seeds are right against the ground truth (**precision**). Clean seeds are what "
                "the next stage learns from. Maps are those training thresholds: the ground-truth class, at the "
                "seed-mask resolution, fallback included.")
    stages = [s for s in STAGES if model.variant != "plain" or s == "mask_a"]
    if st.session_state.get("sweep_stage") not in stages:
        st.session_state["sweep_stage"] = stages[0]
    total = len(ctx.dataset)
    columns = st.columns([1.4, 2, 1, 1], vertical_alignment="bottom")
    stage = columns[0].selectbox("Stage", stages, key="sweep_stage",
                                 format_func=lambda s: f"{STAGE_TITLES[s].split(' (')[0]} ({STAGE_SOURCES[s]})")
    with columns[1]:
        n = count_slider("Images (N)", total, "sweep_n", default=100)
    step = columns[2].selectbox("Grid step", [0.1, 0.05], key="sweep_step", format_func=lambda v: f"{v:.2f}")
    lows = np.round(np.arange(0.0, 0.5 + 1e-9, step), 4)
    highs = np.round(np.arange(0.3, 0.95 + 1e-9, step), 4)
    result = guidance_statistics(ctx, model, n, stage, lows, highs, compute=False, text="")
    if result is None:
        if columns[3].button("Run sweep", key="sweep_button", type="primary"):
            result = guidance_statistics(ctx, model, n, stage, lows, highs, compute=True,
                                         text=f"Computing {STAGE_SOURCES[stage]} maps")
    if result is None:
        st.info(f"The sweep runs the model once over N images ({len(lows)} × {len(highs)} threshold pairs), "
                "then is cached.")
        return
    kind = st.radio("Seeds", ["foreground", "background"], horizontal=True, key="sweep_kind")
    marks = {name: (p.stage(stage).delta_low, p.stage(stage).delta_high) for name, p in PRESETS.items()}
    marks["current"] = current_thresholds(model.config.preset)[stage]
    charts = st.columns([3, 1])
    charts[0].plotly_chart(sweep_figure(result, kind, marks), width="stretch", key="sweep_heatmap")
    charts[1].plotly_chart(fallback_figure(result), width="stretch", key="sweep_fallback")
    summary = result["summary"]
    cell = (int(np.argmin(np.abs(np.array(result["lows"]) - marks["current"][0]))),
            int(np.argmin(np.abs(np.array(result["highs"]) - marks["current"][1]))))
    st.caption(
        f"{len(result['indices'])} images at {result['mask_size']} px. Nearest grid cell to your current thresholds "
        f"(δ_l = {result['lows'][cell[0]]:.2f}, δ_h = {result['highs'][cell[1]]:.2f}): "
        f"fg precision {percent(summary['foreground_precision'][cell])}, "
        f"fg coverage {percent(summary['foreground'][cell])}, "
        f"bg precision {percent(summary['background_precision'][cell])}, "
        f"bg coverage {percent(summary['background'][cell])}, "
        f"fallback on {percent(summary['fallback'][cell])} of images. Precision averages over images that have seeds "
        "of that kind; white symbols mark the presets, the orange star your explore-page thresholds.")


def page_dataset() -> None:
    ctx = CONTEXT
    st.title("Dataset")
    if not need(ctx, gt=True):
        return
    st.caption(f"{ctx.data_label} · τ = {ctx.tau:.2f} (sidebar)")
    accuracy, sweep = st.tabs(["Accuracy vs τ", "δ sweep"])
    with accuracy:
        accuracy_tab(ctx)
    with sweep:
        sweep_tab(ctx)


# ----------------------------------------------------------------------------- page 3: triage
def open_in_explore(index: int) -> None:
    st.session_state.update(image_source="dataset", browse_mode="index", explore_index=int(index), view_class=-2)
    st.session_state["page_request"] = "explore"


def triage_tile(ctx: Context, row: dict, index: int, fallback: bool | None, grid: tuple[int, int]) -> None:
    model = ctx.model
    sample = dataset_sample(ctx.data_key, index, ctx.dataset)
    if sample is None:
        st.warning(f"#{index}: unreadable image")
        return
    image_key = f"{short_hash(ctx.data_key)}#{index}"
    maps = predict_maps(model.key, image_key, int(row["label"]), model.localizer, sample.image)
    box = row["pred_box"]
    if tuple(grid) != tuple(sample.size):
        box = resize_box(box, grid, sample.size)
    picture = viz.draw_boxes(viz.heatmap_overlay(sample.image, maps.maps["attention"], ctx.alpha), [box], sample.boxes)
    names = model.localizer.class_names
    predicted = names[row["prediction"]] if row.get("prediction") is not None else "?"
    data, fmt = support.encode_picture(picture, 224)
    st.image(data, alt=f"triage {index}", width="stretch", output_format=fmt)
    st.caption(f"**#{index}** · IoU {row['iou']:.2f} · *{row['failure']}*  \n"
               f"GT {names[row['label']]} · predicted {predicted}"
               + ("" if fallback is None else f"  \nMask-A fallback: {'fired' if fallback else 'no'}"))
    st.button("Open in Explore", key=f"open_{index}", on_click=open_in_explore, args=(index,), width="stretch")


def page_triage() -> None:
    ctx = CONTEXT
    st.title("Failure triage")
    if not need(ctx, gt=True):
        return
    model = ctx.model
    total = len(ctx.dataset)
    thresholds = current_thresholds(model.config.preset)["mask_a"]
    columns = st.columns([2, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images (N)", total, "triage_n")
    st.caption(f"Rows of `spg_core.evaluate` (paper protocol, ground-truth class map, τ = {ctx.tau:.2f}); Mask-A "
               f"fallback at your explore-page thresholds δ_l = {thresholds[0]:.2f}, δ_h = {thresholds[1]:.2f}.")
    result = evaluation(ctx, model, n, "paper", compute=False)
    seeds = guidance_statistics(ctx, model, n, "mask_a", [thresholds[0]], [thresholds[1]], compute=False, text="")
    if result is None or seeds is None:
        if columns[1].button(f"Analyse {n} images", key="triage_button", type="primary"):
            result = evaluation(ctx, model, n, "paper", compute=True)
            if result is not None:
                seeds = guidance_statistics(ctx, model, n, "mask_a", [thresholds[0]], [thresholds[1]], compute=True,
                                            text="Computing Mask-A seeds")
    if result is None or seeds is None:
        st.info("Triage evaluates N images once (cached) and lists them worst IoU first.")
        return
    positions = support.positions_by_image_id(ctx.dataset)
    fired = {index: bool(value) for index, value in zip(seeds["indices"], seeds["per_image"]["fallback"][:, 0, 0])}
    entries = sorted(((row, positions[row["image_id"]]) for row in result["rows"]), key=lambda e: e[0]["iou"])
    counts = {kind: sum(row["failure"] == kind for row, _ in entries) for kind in FAILURE_TYPES}
    filters = st.columns([3, 1.3, 1, 1])
    if "triage_failures" not in st.session_state:
        st.session_state["triage_failures"] = [k for k in FAILURE_TYPES if k != "ok"] or list(FAILURE_TYPES)
    kinds = filters[0].multiselect("Failure types", FAILURE_TYPES, key="triage_failures",
                                   format_func=lambda k: f"{k} ({counts[k]})")
    fallback_filter = filters[1].radio("Mask-A fallback", ["any", "fired", "not fired"], key="triage_fallback",
                                       horizontal=True)
    st.session_state.setdefault("triage_per_page", 12)
    per_page = filters[2].selectbox("Per page", [8, 12, 24], key="triage_per_page")
    shown = [(row, index) for row, index in entries if row["failure"] in kinds
             and (fallback_filter == "any" or fired.get(index) == (fallback_filter == "fired"))]
    pages = max(1, -(-len(shown) // per_page))
    if st.session_state.get("triage_page", 1) > pages:
        st.session_state["triage_page"] = 1
    page = int(filters[3].number_input(f"Page (of {pages})", 1, pages, key="triage_page"))
    summary = ", ".join(f"{counts[k]} {k}" for k in FAILURE_TYPES if counts[k])
    st.markdown(f"**{len(shown)}** of {len(entries)} images shown · {summary} · Mask-A fallback fired on "
                f"{sum(fired.values())}.")
    with st.expander("What the failure types mean"):
        st.markdown("\n".join(f"- **{k}**: {FAILURE_NOTES[k]}" for k in FAILURE_TYPES))
    grid = (int(ctx.dataset.image_size), int(ctx.dataset.image_size))
    chunk = shown[(page - 1) * per_page: page * per_page]
    for start in range(0, len(chunk), 4):
        columns = st.columns(4)
        for column, (row, index) in zip(columns, chunk[start:start + 4]):
            with column:
                triage_tile(ctx, row, index, fired.get(index), grid)


# ----------------------------------------------------------------------------- navigation
for _key in PERSISTENT_KEYS:
    if _key in st.session_state:
        st.session_state[_key] = st.session_state[_key]

PAGES = {
    "explore": st.Page(page_explore, title="Explore one image", icon=":material/image_search:", url_path="explore",
                       default=True),
    "dataset": st.Page(page_dataset, title="Dataset", icon=":material/monitoring:", url_path="dataset"),
    "triage": st.Page(page_triage, title="Failure triage", icon=":material/troubleshoot:", url_path="triage"),
}
navigation = st.navigation(list(PAGES.values()))
_request = st.session_state.pop("page_request", None)
if _request in PAGES:
    st.switch_page(PAGES[_request])

# The sidebar (model, data, τ, opacity) is shared by every page: it is drawn before the page runs.
CONTEXT = Context()
CONTEXT.model = sidebar_model()
if CONTEXT.model is not None and not CONTEXT.model.uploads_only:
    sidebar_data(CONTEXT.model, CONTEXT)
sidebar_display(CONTEXT.model, CONTEXT)
navigation.run()
