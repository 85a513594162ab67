"""Datasets in the app: sample listing and a dataset view that reports progress. (The widgets'
data options become datasets through ``spg_core.data.settings.DataSettings``, as the CLI's flags.)"""
from __future__ import annotations

from collections.abc import Callable

import torch

DEFAULT_COUNT = 200  # the pages' "Images (N)" default: their computations use the first N images


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
