"""The sidebar, shared by every page: the model, the data and the box/display settings, drawn
into the :class:`spg_app.state.Context` the page then receives."""
from __future__ import annotations

import streamlit as st

from spg_app import live, tour
from spg_app.paths import allowed_path
from spg_app.loaders import load_dataset, open_imagenet, open_maps, open_model, run_variant
from spg_app.runs import DEFAULT_TAU, default_tau, run_metrics, run_stamp, variant_label
from spg_app.state import IMAGENET, MAPS_FOLDER, OTHER_RUN, Context, MapsContext, ModelContext, bind, view
from spg_app.text import message, plain
from spg_core.data import SPLITS
from spg_core.data.synthetic import PART_LOOKS, PART_POSITIONS
from spg_core.runs import resolve_run, shipped_runs
from spg_core.data.settings import FORMATS, DataSettings

IMAGENET_LABEL = "ImageNet EfficientNet-Lite0 (pretrained, 1000 classes, offline)"
DEFAULT_RUN = "synthetic-spg"  # the run the sidebar opens on, on its own test split


def run_label(name: str) -> str:
    if name == OTHER_RUN:
        return "Another run folder (RUN_DIR)…"
    if name == IMAGENET:
        return IMAGENET_LABEL
    if name == MAPS_FOLDER:
        return "A maps folder (any method)…"
    try:
        variant = run_variant(name, run_stamp(resolve_run(name)))
    except (FileNotFoundError, OSError):
        variant = None
    return f"{name} ({variant_label(variant)})" if variant else name


def sidebar_model() -> ModelContext | None:
    bar = st.sidebar
    bar.header("Model")
    runs = shipped_runs()
    options = [*runs, IMAGENET, OTHER_RUN, MAPS_FOLDER]
    if st.session_state.get("model_choice") not in options:
        st.session_state["model_choice"] = DEFAULT_RUN if DEFAULT_RUN in runs else options[0]
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
            bar.error(message(f"Could not load the ImageNet model: {error}"))
            return None
        bar.caption("EfficientNet-Lite0 classifier pretrained on ImageNet-1k (weights shipped with its package, "
                    "nothing downloaded) · 1000 classes · 224 px input · no SPG heads (they can be grown on a photo).")
        bar.info("Uploads only: this model has no dataset here. Upload a photo on the Explore page.")
        return model
    if choice == MAPS_FOLDER:
        return sidebar_maps()
    if choice == OTHER_RUN:
        run = bar.text_input("RUN_DIR", key="run_dir", placeholder="runs/my-spg",
                             help="A folder holding checkpoint.pt, or the checkpoint file itself.").strip()
        if not run:
            bar.info("Type the path of a run folder.")
            return None
    else:
        run = choice
    try:
        if choice == OTHER_RUN:
            run = str(allowed_path(run))
        model = open_model(run, run_label(run) if choice != OTHER_RUN else None)
    except Exception as error:  # a typed path can fail in many ways; show why, never a traceback
        bar.error(message(f"Could not load the run {run!r}: {error}"))
        return None
    config = model.config
    bar.caption(plain(f"{config.backbone} backbone · {variant_label(config.variant)} · "
                      f"{model.localizer.model.num_classes} classes · {config.image_size} px input · "
                      f"epoch {model.info['epoch']} · trained with the {config.preset} preset"))
    return model


def sidebar_maps() -> MapsContext | None:
    """A folder of ``<image_id>.npy`` maps (wsolevaluation's layout), from any method."""
    bar = st.sidebar
    folder = bar.text_input("Maps folder", key="maps_dir", placeholder="maps/my-method",
                            help="`<image_id>.npy` per image (wsolevaluation's layout, e.g. what "
                                 "`evaluate --export-maps` or wsolevaluation's inference.py writes).").strip()
    label = bar.text_input("Method name", key="maps_label", placeholder="e.g. CAM, ADL, my method")
    if not folder:
        bar.info("Type the path of a folder of `<image_id>.npy` maps.")
        return None
    try:
        model = open_maps(allowed_path(folder), label)
    except (ValueError, OSError) as error:
        bar.error(message(f"Could not open the maps folder {folder!r}: {error}"))
        return None
    bar.caption("A maps folder has no classifier: classification and Top-1 Loc are not available; GT-known Loc, "
                "MaxBoxAcc/V2 and PxAP are, scored as `evaluate-maps` scores them.")
    return model


def sidebar_maps_data(ctx: Context) -> None:
    """The wsolevaluation metadata a maps folder is scored against; the images are optional."""
    bar = st.sidebar
    bar.header("Data")
    bar.caption("Format: wsol (wsolevaluation's metadata).")
    metadata = bar.text_input("Metadata root (--metadata-root)", key="maps_metadata_root",
                              help="The folder holding <split>/image_ids.txt, class_labels.txt, localization.txt "
                                   "(image_sizes.txt when the images are absent).").strip()
    data_root = bar.text_input("Data root (--data-root, optional: images, masks)", key="maps_data_root").strip()
    st.session_state.setdefault("data_split", "test")
    split = bar.selectbox("Split", SPLITS, key="data_split")
    if not metadata:
        bar.info("Type the metadata root of the images the maps are of.")
        return
    try:
        flags = {"format": "wsol", "metadata_root": str(allowed_path(metadata)),
                 "data_root": str(allowed_path(data_root)) if data_root else None}
        settings = DataSettings.from_flags(None, **flags)
        key = settings.key(split)
        dataset = load_dataset(key, need_images=False)
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        bar.error(message(f"Could not open the metadata: {error}"))
        return
    if len(dataset) == 0:
        bar.error(f"The {split} split is empty; pick another split.")
        return
    first = dataset.records[0].path
    ctx.has_images = first is not None and first.is_file()
    ctx.dataset, ctx.data_key, ctx.gt_usable = dataset, key, True
    ctx.data_label = f"wsol · {split} · {len(dataset)} images" + ("" if ctx.has_images else " · no images")
    bar.caption(ctx.data_label)


def sidebar_data(model: ModelContext, ctx: Context) -> None:
    if model.is_maps:
        sidebar_maps_data(ctx)
        return
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
            settings = DataSettings.from_flags(config)
            # A shipped run names a test image on which its guidance visibly grows: open there.
            showcase = (run_metrics(model.folder) or {}).get("showcase_index") if model.folder else None
            if showcase is not None and view().image is None:
                view().image = int(showcase)
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
            for flag in ("data_root", "metadata_root"):
                if flags.get(flag, "").strip():
                    flags[flag] = str(allowed_path(flags[flag]))
            settings = DataSettings.from_flags(config, **flags)
        key = settings.key(split)
        dataset = load_dataset(key)
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        bar.error(message(f"Could not open the dataset: {error}"))
        return
    if len(dataset) == 0:
        bar.error(f"The {split} split is empty; pick another split.")
        return
    ctx.dataset, ctx.data_key = dataset, key
    ctx.data_label = f"{settings.format} · {split} · {len(dataset)} images"
    bar.caption(ctx.data_label)
    skipped = getattr(dataset, "skipped_annotations", None) or {}  # detection formats: one class per image
    if any(skipped.values()):
        bar.caption(f"Skipped: {skipped['several_classes']} image(s) with several classes, {skipped['no_object']} "
                    f"without objects, {skipped['unreadable']} unreadable (WSOL needs one class per image).")
    ctx.gt_usable = dataset.num_classes == model.localizer.model.num_classes
    if not ctx.gt_usable:
        bar.warning(f"The dataset has {dataset.num_classes} classes but the model {model.localizer.model.num_classes}: "
                    "ground-truth class maps and the evaluation pages need the model's own classes.")


EXPLORE_PAGE = ""  # the explore page's URL path: the app's default page, served at the root


def suggested_tau(model: ModelContext | MapsContext | None) -> float:
    """τ chosen on the held-out split by the run's metrics.json, else CAM's default."""
    return default_tau(model.folder) if model is not None and model.folder is not None else DEFAULT_TAU


def adopt_model(model: ModelContext | MapsContext | None) -> None:
    """A newly opened model brings its own thresholds (its training preset) and τ into the view."""
    if model is None:
        return
    preset = model.config.preset if model.config is not None else "paper"
    if view().adopt(model.key, preset, suggested_tau(model)):
        st.session_state.pop("worst_ranking", None)


def tau_changed() -> None:
    view().tau = float(st.session_state["tau"])


def alpha_changed() -> None:
    view().alpha = float(st.session_state["alpha"])


def sidebar_display(model: ModelContext | None, ctx: Context) -> None:
    """τ and the map opacity. On the explore page they are the pipeline view's own controls (one
    place per value: a release there reruns only what shows them), so the sidebar names them."""
    bar = st.sidebar
    bar.header("Box and display")
    current = view()
    st.session_state[live.ON_SCREEN] = False  # until the explore page draws its fragments (spg_app.live)
    suggestion = None
    if model is not None and model.folder is not None:
        note = ("τ chosen on the held-out split by the run's metrics.json" if run_metrics(model.folder)
                else f"default {DEFAULT_TAU} (CAM's)")
        suggestion = f"Suggested: {suggested_tau(model):.2f} — {note}"
    if ctx.page == EXPLORE_PAGE:
        ctx.tau, ctx.alpha = float(current.tau), float(current.alpha)
        bar.caption("Box threshold τ and map opacity: on this page they are controls of the pipeline view."
                    + (f" {suggestion}." if suggestion else ""))
        return
    bind("tau", current.tau)
    ctx.tau = bar.slider("Box threshold τ", 0.0, 0.99, step=0.01, key="tau", format="%.2f", on_change=tau_changed,
                         help="The localisation map is min-max normalised and kept where ≥ τ; the box is the "
                              "tight box of the largest connected component (paper §4, after CAM).")
    current.tau = float(ctx.tau)
    if suggestion:
        bar.caption(suggestion)
    bind("alpha", current.alpha)
    ctx.alpha = bar.slider("Map opacity", 0.0, 1.0, step=0.05, key="alpha", on_change=alpha_changed)
    current.alpha = float(ctx.alpha)


def draw(ctx: Context) -> None:
    """Draw the sidebar into ``ctx``: the tour, the model, then (unless it is for uploads only) the data, then τ
    and opacity."""
    tour.draw(tuple(shipped_runs()))
    ctx.model = sidebar_model()
    adopt_model(ctx.model)
    if ctx.model is not None and not ctx.model.uploads_only:
        sidebar_data(ctx.model, ctx)
    sidebar_display(ctx.model, ctx)
