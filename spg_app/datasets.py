"""Datasets in the app: the data options mapped to a dataset, cache keys, sample listing and a
dataset view that reports progress.

The mapping from the ``--format/--data-root/...`` options to a dataset is the CLI's
(``spg_core.cli``); :func:`settings_from_flags`, :func:`dataset_from_settings` and
:data:`FORMATS` are the app's only way to it.
"""
from __future__ import annotations

import argparse
import json
from typing import Callable

import torch

from spg_core import cli

FORMATS = cli.FORMATS  # the --format choices

_DATA_FLAGS = ("format", "data_root", "metadata_root", "image_size", "synthetic_classes", "synthetic_train",
               "synthetic_val", "synthetic_test", "part_position", "part_look", "clutter", "body_cue", "synthetic_seed")


def data_namespace(**given) -> argparse.Namespace:
    """The ``--format/--data-root/...`` flags of the CLI as a namespace (None = not given), so
    the app builds datasets through the same ``spg_core.cli.data_settings`` as the CLI."""
    unknown = sorted(set(given) - set(_DATA_FLAGS))
    if unknown:
        raise TypeError(f"unknown data flag(s) {unknown}; use {_DATA_FLAGS}")
    values = {flag: None for flag in _DATA_FLAGS}
    values.update({k: (None if v is None or (isinstance(v, str) and not v.strip()) else v) for k, v in given.items()})
    return argparse.Namespace(**values)


def settings_from_flags(config, **flags) -> dict:
    """The dataset settings of the data flags given (None or blank = not given: the run's own
    ``config`` decides), by the CLI's ``data_settings``."""
    return cli.data_settings(data_namespace(**flags), fallback=config)


def dataset_from_settings(settings: dict, split: str):
    """The dataset of one split of ``settings`` (:func:`settings_from_flags`), by the CLI's mapping."""
    return cli.dataset_from_settings(settings, split)


def settings_key(settings: dict, split: str) -> str:
    """A stable text key for (dataset settings, split): what the caches are keyed on."""
    return json.dumps({"split": split, **settings}, sort_keys=True, default=str)


def indices_by_class(dataset) -> dict[int, list[int]]:
    """Dataset positions of each class, read from the annotation records (nothing decoded)."""
    out: dict[int, list[int]] = {}
    for position, record in enumerate(dataset.records):
        out.setdefault(int(record.label), []).append(position)
    return out


def positions_by_image_id(dataset) -> dict[str, int]:
    return {str(record.image_id): position for position, record in enumerate(dataset.records)}


class DatasetView(torch.utils.data.Dataset):
    """The first ``limit`` images of a dataset, calling ``on_item(done, total)`` as items are
    read — how the app shows progress of ``spg_core.evaluate.evaluate`` (run with
    ``num_workers=0``, so items are read in the calling thread). Forwards the attributes the
    evaluator reads (split, image_size, records, class names)."""

    def __init__(self, dataset, limit: int | None = None, on_item: Callable[[int, int], None] | None = None):
        self.dataset = dataset
        self.total = len(dataset) if limit is None else max(0, min(int(limit), len(dataset)))
        self.on_item = on_item
        self.done = 0
        self.split = getattr(dataset, "split", "report")
        self.image_size = getattr(dataset, "image_size", None)
        self.class_names = getattr(dataset, "class_names", None)
        self.num_classes = getattr(dataset, "num_classes", None)
        records = getattr(dataset, "records", None)
        self.records = None if records is None else records[: self.total]

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int):
        if not 0 <= index < self.total:
            raise IndexError(f"index {index} out of range for the first {self.total} images")
        item = self.dataset[index]
        self.done += 1
        if self.on_item is not None:
            self.on_item(self.done, self.total)
        return item
