"""The cached resources of the app: models, datasets, samples, per-image maps and encoded
pictures (``st.cache_resource`` / ``st.cache_data``), and the result cache of long computations.

A slider move only re-thresholds cached maps; the keys below say what each entry depends on.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import threading
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import streamlit as st
import torch

from spg_app import pictures
from spg_app.computations import read_folder_map
from spg_app.growth import GUIDANCE_KEPT
from spg_app.paths import inside_roots
from spg_app.precomputed import EVALUATION_FILE
from spg_app.runs import run_stamp, variant_label
from spg_app.state import MapsContext, ModelContext
from spg_app.uploads import read_upload
from spg_core.config import load_config_file
from spg_core.localize import Localizer
from spg_core.replay import load_replay
from spg_core.runs import load_run, resolve_run
from spg_core.single_image import growth_strip
from spg_core.data.dataset import files_checked
from spg_core.data.settings import DataSettings


class ResultCache:
    """A small thread-safe LRU for long computations (evaluations, sweeps) that report progress
    while they run — which ``st.cache_data`` cannot wrap, since its replay forbids writing to a
    progress bar created outside the cached function."""

    def __init__(self, max_entries: int = 32):
        self.max_entries = int(max_entries)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def picture_cache(max_entries: int):
    """A process-wide LRU of encoded pictures (a :class:`ResultCache`), keyed like
    ``st.cache_data`` by the arguments whose names do not start with ``_``, but without its
    per-call cost: st.cache_data inspects the function's signature and copies the value on every
    hit, about 1 ms per picture, and a slider move reads every tile of the strip. The pictures are
    bytes nobody mutates, so one copy serves every session."""

    def decorate(function):
        names = list(inspect.signature(function).parameters)
        keyed = tuple(i for i, name in enumerate(names) if not name.startswith("_"))
        cache = ResultCache(max_entries)

        @functools.wraps(function)
        def cached(*args, **kwargs):
            key = (tuple(args[i] for i in keyed if i < len(args)),
                   tuple(sorted((k, v) for k, v in kwargs.items() if not k.startswith("_"))))
            value = cache.get(key)
            if value is None:
                value = function(*args, **kwargs)
                cache.put(key, value)
            return value

        cached.clear = cache.clear
        return cached

    return decorate


THREADS_VARIABLE = "SPG_APP_THREADS"


def app_threads() -> int:
    """Threads torch may use for one forward in the app's server: ``SPG_APP_THREADS``, default 1.

    One image at 96 px takes ~8 ms on one thread. With torch's default of one thread per core,
    every forward also waits for a second thread that the other sessions' scripts keep busy: on
    this 2-core machine, beside two other busy processes, one forward took 350 ms on two threads
    against 8 ms on one. On one thread a forward (which releases the interpreter lock) leaves the
    other cores to the other students' moves. Raise it for a server that one person uses, where
    the Dataset page's evaluations and the photo growth then run faster."""
    return environment_count(THREADS_VARIABLE, 1, 1, f"{THREADS_VARIABLE}=1 (the default, for a class) or "
                             f"{THREADS_VARIABLE}={os.cpu_count()} (every core, for one user)")


def environment_count(variable: str, default: int, minimum: int, example: str) -> int:
    """A whole number ≥ ``minimum`` from the environment variable ``variable`` (``default`` when
    unset); ValueError naming the value and an ``example`` of a good one otherwise."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise ValueError(f"{variable}={value!r} must be a whole number ≥ {minimum}, e.g. {example}")
    return int(value)


AHEAD_VARIABLE = "SPG_APP_AHEAD"


def ahead_count() -> int:
    """How many images of the default split the server computes the default run's outputs for at
    start (``fill_outputs_ahead``): ``SPG_APP_AHEAD``, default 1000 (the shipped runs' whole test
    split, ~3 s at start, ~6 MB); 0 computes none."""
    return environment_count(AHEAD_VARIABLE, 1000, 0, f"{AHEAD_VARIABLE}=1000 (the default) or "
                             f"{AHEAD_VARIABLE}=0 (none: a faster start, a forward on every image change)")


def use_app_threads() -> int:
    """Set torch's thread count for the whole server process to :func:`app_threads`; returns it."""
    threads = app_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def load_model(folder: str, stamp: str):
    """(Localizer, TrainConfig, info) of a run; ``stamp`` changes when the checkpoint does."""
    use_app_threads()  # process-wide, before the first forward of any session
    model, config, info = load_run(folder, "cpu")
    localizer = Localizer(model, config.image_size, info["class_names"], "cpu", config.preset)
    return localizer, config, info


@st.cache_resource(show_spinner="Loading the training replay…", max_entries=6)
def load_run_replay(folder: str, stamp: str):
    """The run's training replay (``spg_core.replay``), or None; ``stamp``: the run's."""
    return load_replay(folder)


@st.cache_data(show_spinner="Boxing every recorded map…", max_entries=6)
def replay_map_curves(folder: str, stamp: str):
    """(box accuracy, object/background means) of every map of the run's replay, per record
    (``Replay.box_accuracy``, ``Replay.object_background_means``); ``stamp``: the run's."""
    replay = load_run_replay(folder, stamp)
    return replay.box_accuracy(), replay.object_background_means()


@st.cache_resource(show_spinner="Preparing the dataset…", max_entries=8)
def load_dataset(key: str, need_images: bool = True):
    """The dataset of a ``DataSettings.key``; ``need_images=False``: its annotations only (the
    images may be absent), what a maps folder is scored against."""
    settings, split = DataSettings.from_key(key)
    with files_checked(lambda path: inside_roots(path, "dataset file")):  # no file outside the roots
        return settings.dataset(split, need_images=need_images)


@st.cache_resource(show_spinner="Loading the ImageNet EfficientNet-Lite0…")
def load_imagenet():
    """(Localizer, weights path) of the pretrained 1000-class classifier (no SPG heads)."""
    # Imported here: timm is only needed once someone picks the ImageNet model.
    from spg_core.models.efficientnet import imagenet_class_names, imagenet_model, packaged_weights_path

    use_app_threads()
    localizer = Localizer(imagenet_model(), 224, imagenet_class_names())
    return localizer, packaged_weights_path()


@st.cache_resource
def result_cache() -> ResultCache:
    return ResultCache(max_entries=48)


@st.cache_data(max_entries=128, show_spinner=False)
def dataset_sample(data_key: str, index: int, _dataset):
    return _dataset.load_sample(index)


# The model's outputs on every image of one split, computed ahead in batches: (run key, image key)
# → outputs (``Localizer.forward_many``). Filled once, at server start, for the run the sidebar
# opens on and its test split (``spg_app.serve``), then only read: an image change there runs no
# forward, which is the largest share of its time when a class works at once.
OUTPUTS_AHEAD: dict[tuple[str, str], dict] = {}


def fill_outputs_ahead(model: ModelContext, data_key: str, dataset, limit: int | None = None,
                       batch_size: int = 64) -> int:
    """Compute the outputs of ``model`` on the first ``limit`` images (default all) of ``dataset``
    (the one of ``data_key``) into OUTPUTS_AHEAD, in batches; returns how many it holds for them."""
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    for start in range(0, count, batch_size):
        indices = range(start, min(start + batch_size, count))
        outputs = model.localizer.forward_many([dataset.load_sample(i).image for i in indices], batch_size)
        for index, output in zip(indices, outputs):
            OUTPUTS_AHEAD[model.key, dataset_image_key(data_key, index)] = output
    return count


# No spinner: a spinner starts a thread on every call, hit or miss, and under a class's load that
# start waits for the interpreter lock (py-spy, benchmarks/bench_load.py); the page's own
# "running" indicator shows a slow model.
@st.cache_data(max_entries=128, show_spinner=False)
def predict_maps(run_key: str, image_key: str, class_index: int | None, _localizer, _image):
    """Every stage map of one image for one class: computed once, re-thresholded on every move
    (from the outputs computed ahead when the image has them, so no forward runs)."""
    return _localizer.predict(_image, class_index, outputs=OUTPUTS_AHEAD.get((run_key, image_key)))


@st.cache_data(max_entries=6, show_spinner="Running the model…")
def predict_upload_maps(run_key: str, image_key: str, class_index: int | None, _localizer, _image):
    """As predict_maps, for uploaded photos (larger maps, so kept for a few photos only)."""
    return _localizer.predict(_image, class_index)


@picture_cache(max_entries=256)
def map_tile(run_key: str, image_key: str, class_index: int, name: str, alpha: float, _maps) -> tuple[bytes, str]:
    """Encoded picture of the image or one score map over it: changes with image, class, opacity."""
    return pictures.encode_picture(pictures.map_picture(_maps, name, alpha))


@picture_cache(max_entries=64)
def final_tile(run_key: str, image_key: str, class_index: int, alpha: float, box_stage: str, box: tuple,
               gt_key: str, _maps, _gt_boxes, side: int = pictures.STRIP_SIDE) -> tuple[bytes, str]:
    """Encoded localisation map with its boxes: changes with τ only through the box."""
    return pictures.encode_picture(pictures.final_picture(_maps, box, alpha, _gt_boxes, box_stage), side)


@picture_cache(max_entries=64)
def difference_tile(first_key: str, second_key: str, image_key: str, class_index: int, name: str, _first,
                    _second) -> tuple[bytes, str]:
    """Encoded first − second picture of one map of two runs (``pictures.difference_picture``):
    changes with the runs, image and class only."""
    return pictures.encode_picture(pictures.difference_picture(_first, _second, name))


@st.cache_data(max_entries=GUIDANCE_KEPT, show_spinner=False)
def growth_tile(grown_key: str, _result) -> bytes:
    """PNG of ``single_image.growth_strip`` of one grown result (``grown_key`` names it)."""
    return pictures.png_bytes(growth_strip(_result))


@st.cache_data(max_entries=8, show_spinner=False)
def decode_upload(file_id: str, name: str, _data: bytes):
    return read_upload(name, _data)


@functools.lru_cache(maxsize=64)  # not st.cache_data: drawn for every run option on every rerun, its
def run_variant(name: str, stamp: str) -> str | None:  # argument hashing cost more than the lookup
    try:
        return load_config_file(resolve_run(name) / "config.yaml").get("variant")
    except (FileNotFoundError, ValueError, OSError):
        return None


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# The files the app reads from a run folder: each must lie under a root, links followed.
RUN_FILES = ("checkpoint.pt", "config.yaml", "metrics.json", "replay.npz", EVALUATION_FILE)


def check_run_files(folder: Path) -> None:
    """Refuse a run folder one of whose :data:`RUN_FILES` leads outside the roots.

    Args:
        folder: the run folder.

    Raises:
        PathRefused: naming the file and where it leads.
    """
    for name in RUN_FILES:
        if os.path.lexists(folder / name):
            inside_roots(folder / name, "run file")


def open_model(run: str, label: str | None = None) -> ModelContext:
    folder = resolve_run(run)
    check_run_files(folder)
    localizer, config, info = load_model(str(folder), run_stamp(folder))
    variant = variant_label(config.variant)
    return ModelContext(localizer, config, info, f"{folder}@{run_stamp(folder)}",
                        label or f"{run} ({variant})", folder)


def open_imagenet() -> ModelContext:
    localizer, weights = load_imagenet()
    config = SimpleNamespace(backbone="efficientnet_lite0", variant="plain", preset=localizer.preset.name,
                             image_size=localizer.image_size)
    return ModelContext(localizer, config, {}, f"imagenet@{weights}", "ImageNet EfficientNet-Lite0", weights,
                        uploads_only=True)


def dataset_image_key(data_key: str, index: int) -> str:
    """Cache key of one dataset image (the maps of ``predict_maps`` are keyed on it)."""
    return f"{short_hash(data_key)}#{index}"


def maps_stamp(folder: Path) -> str:
    """Changes when files are added to or removed from the maps folder or its first-level folders
    (wsolevaluation's ``<split>/<class>/`` layout adds one or two levels)."""
    stamps = [folder.stat().st_mtime_ns]
    stamps += [child.stat().st_mtime_ns for child in folder.iterdir() if child.is_dir()]
    return f"{max(stamps)}"


def open_maps(folder, label: str | None = None) -> MapsContext:
    """A maps folder (``<image_id>.npy``) as a model-like context; ValueError when it holds no map."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder.name} is not a folder")
    if next(folder.rglob("*.npy"), None) is None:
        raise ValueError(f"{folder.name} holds no .npy map (expected <image_id>.npy, e.g. test/00000.png.npy)")
    name = (label or "").strip() or folder.name
    return MapsContext(folder, f"maps:{folder}@{maps_stamp(folder)}", f"{name} (maps folder)")


@st.cache_data(max_entries=64, show_spinner=False)
def load_map(maps_key: str, folder: str, image_id: str) -> np.ndarray:
    """One image's map of a maps folder (``spg_core.exports.map_path``), checked as
    :func:`spg_app.computations.read_folder_map` checks it."""
    return read_folder_map(folder, image_id)
