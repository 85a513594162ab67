"""A user's own images: one CSV of labels and boxes.

Expected tree (``data_root`` is the folder, or the CSV file itself; ``metadata_root``, when
given, is where the CSV lives instead)::

    <root>/annotations.csv     header: path,label,x0,y0,x1,y1[,split]
    <root>/classes.txt         optional: one class name per line (fixes order and catches typos)
    <root>/<path> ...          image paths relative to <root> (absolute paths and paths whose
                               ``..`` leads above <root> are refused: link or copy images under it)

One row per box; an image with several boxes has several rows (same path, same label). A row
whose four box cells are empty is an image without boxes — fine for training, not scored for
localisation. Boxes are 0-based inclusive pixel coordinates of the displayed image (after EXIF
rotation): x1 is the last column the object covers.

Classes: the sorted set of label names, unless classes.txt lists them (then its order is used
and any other name is an error naming the CSV line).

Splits: the ``split`` column (train / val / test) when present. Rows without one — or every row,
when there is no such column — are assigned by a seeded hash of the image path: 80 % train,
10 % val, 10 % test (``split_fractions``, ``split_seed``). The hash is stable across machines
and runs, and keeps all rows of one image together.
"""
from __future__ import annotations

import csv

import numpy as np

from spg_core.data.dataset import (SPLITS, Record, WSOLDataset, check_files, checked, decode_error, parse_box,
                                   read_lines, register_format, relative_file, stable_fraction)

REQUIRED = ("path", "label", "x0", "y0", "x1", "y1")


def hash_split(path: str, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> str:
    """The documented deterministic split of an image without a split column."""
    value = stable_fraction(path, seed) * sum(fractions)
    if value < fractions[0]:
        return "train"
    return "val" if value < fractions[0] + fractions[1] else "test"


@register_format("folder")
def build_folder(
    split,
    data_root,
    metadata_root,
    image_size,
    train,
    annotations: str = "annotations.csv",
    split_fractions=(0.8, 0.1, 0.1),
    split_seed: int = 0,
    check_files_exist: bool = True,
    need_images: bool = True,
) -> WSOLDataset:
    if data_root.is_file():
        csv_path, root = data_root, data_root.parent
    else:
        csv_path, root = (metadata_root or data_root) / annotations, data_root
    if not csv_path.is_file():
        raise FileNotFoundError(f"no {csv_path}; the folder format needs a CSV with header {','.join(REQUIRED)}[,split]")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions={split_fractions} must be three non-negative numbers (train, val, test)")
    classes_path = root / "classes.txt"
    fixed_classes = [text for _, text in read_lines(classes_path)] if classes_path.is_file() else None

    with open(checked(csv_path), newline="", encoding="utf-8-sig") as handle:
        try:
            reader = csv.reader(handle)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValueError(f"{csv_path}:1: header lacks column(s) {missing}; expected {','.join(REQUIRED)}[,split]")
            column = {name: header.index(name) for name in header}
            rows = [(number, row) for number, row in enumerate(reader, 2) if any(cell.strip() for cell in row)]
        except UnicodeDecodeError as error:
            raise decode_error(csv_path, error) from None

    images: dict[str, dict] = {}
    for number, row in rows:
        where = f"{csv_path}:{number}"
        row = row + [""] * (len(header) - len(row))
        cell = {name: row[index].strip() for name, index in column.items()}
        path, label = cell["path"], cell["label"]
        if not path or not label:
            raise ValueError(f"{where}: path and label must not be empty")
        relative_file(root, path, where)
        if fixed_classes is not None and label not in fixed_classes:
            raise ValueError(f"{where}: unknown class name {label!r}; {classes_path} lists {len(fixed_classes)} classes")
        coords = [cell[k] for k in ("x0", "y0", "x1", "y1")]
        entry = images.setdefault(path, {"label": label, "boxes": [], "split": "", "where": where})
        if entry["label"] != label:
            raise ValueError(f"{where}: image {path} is labelled {label!r} here but {entry['label']!r} at {entry['where']}")
        if any(coords):
            if not all(coords):
                raise ValueError(f"{where}: box {coords} is partly empty; give all of x0,y0,x1,y1 or none")
            entry["boxes"].append(parse_box(coords, where))
        row_split = cell.get("split", "").lower()
        if row_split:
            if row_split not in SPLITS:
                raise ValueError(f"{where}: split {row_split!r} must be one of {SPLITS} (or empty for the hashed split)")
            if entry["split"] and entry["split"] != row_split:
                raise ValueError(f"{where}: image {path} is in split {row_split!r} here but {entry['split']!r} earlier")
            entry["split"] = row_split

    class_names = fixed_classes if fixed_classes is not None else sorted({e["label"] for e in images.values()})
    class_index = {name: k for k, name in enumerate(class_names)}
    records = []
    for path, entry in images.items():
        chosen = entry["split"] or hash_split(path, split_fractions, split_seed)
        if chosen != split:
            continue
        records.append(
            Record(
                image_id=path,
                label=class_index[entry["label"]],
                boxes=np.asarray(entry["boxes"], np.float32).reshape(-1, 4),
                path=root / path,
                source=entry["where"],
            )
        )
    if not records:
        raise ValueError(
            f"split {split!r} of {csv_path} has no images; add a split column or more images "
            f"(without one, images are split {split_fractions} by a hash of their path)"
        )
    if check_files_exist:
        check_files(records, f"fix: paths in {csv_path} are relative to {root}", images=need_images)
    return WSOLDataset(records, class_names, image_size, train, format="folder", split=split, root=root)
