"""CUB-200-2011 in its native layout (Wah et al. 2011; spec §6).

Expected tree (``data_root`` is CUB_200_2011/ or the folder that contains it)::

    CUB_200_2011/images/<class>/<file>.jpg
                 images.txt               "<id> <path under images/>"
                 image_class_labels.txt   "<id> <class>"   1-based -> 0-based here
                 train_test_split.txt     "<id> <is_train>"
                 bounding_boxes.txt       "<id> <x> <y> <w> <h>"  floats, top-left + size
                 classes.txt              "<class> <name>"  (optional: class names)

Box convention: (x, y) is the top-left pixel and w×h the size in pixels, so the box covers
columns x .. x+w-1: ``x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1`` (0-based inclusive, the
project-wide convention; wsolevaluation's metadata uses x + w, one pixel wider).

Splits: "test" = the official test images (5794). "val" = a held-out part of the official train
images — in each class, every ``val_every``-th train image in images.txt order (the 1st, 7th,
13th ... with the default 6; about 1000 images, the size of wsolevaluation's CUB val) — and
"train" = the other train images, so localisation thresholds are chosen without touching test.
``val_every=0`` keeps all train images in "train" and disables "val".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spg_core.data.dataset import Record, WSOLDataset, check_files, first_seen, read_lines, register_format, relative_file


def _find_root(data_root: Path) -> Path:
    for candidate in (data_root, data_root / "CUB_200_2011"):
        if (candidate / "images.txt").is_file():
            return candidate
    raise FileNotFoundError(
        f"no CUB images.txt in {data_root} or {data_root / 'CUB_200_2011'}; pass data_root= the CUB_200_2011 folder"
    )


def _two_columns(path: Path, expected: int) -> dict[str, tuple[list[str], str]]:
    """id -> (the remaining fields, "file:line") for a whitespace-separated CUB file."""
    rows = {}
    for number, text in read_lines(path):
        fields = text.split(maxsplit=expected - 1) if expected == 2 else text.split()
        where = f"{path}:{number}"
        if len(fields) != expected:
            raise ValueError(f"{where}: expected {expected} fields, got {len(fields)}: {text!r}")
        if fields[0] in rows:
            raise ValueError(f"{where}: image id {fields[0]} appears twice")
        rows[fields[0]] = (fields[1:], where)
    return rows


def _int(value: str, where: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not an integer") from None


@register_format("cub")
def build_cub(
    split,
    data_root,
    metadata_root,
    image_size,
    train,
    val_every: int = 6,
    check_files_exist: bool = True,
    need_images: bool = True,
) -> WSOLDataset:
    root = _find_root(data_root)
    text_root = metadata_root or root
    images = _two_columns(text_root / "images.txt", 2)
    labels = _two_columns(text_root / "image_class_labels.txt", 2)
    is_train = _two_columns(text_root / "train_test_split.txt", 2)

    classes_path = text_root / "classes.txt"
    if classes_path.is_file():
        classes = _two_columns(classes_path, 2)
        numbers = sorted(_int(k, where, "class id") for k, (_, where) in classes.items())
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{classes_path}: class ids must be 1..{len(numbers)} without gaps")
        by_number = {_int(k, where, "class id"): fields[0] for k, (fields, where) in classes.items()}
        class_names = [by_number[k] for k in numbers]
    else:
        largest = max((_int(f[0], where, "class") for f, where in labels.values()), default=0)
        class_names = [str(k) for k in range(1, largest + 1)]
    num_classes = len(class_names)

    boxes: dict[str, list] = {}
    boxes_path = text_root / "bounding_boxes.txt"
    for number, text in read_lines(boxes_path) if boxes_path.is_file() else []:
        where = f"{boxes_path}:{number}"
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"{where}: expected '<id> <x> <y> <w> <h>', got {text!r}")
        try:
            x, y, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"{where}: box {fields[1:]} is not four numbers") from None
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: box width/height {w}x{h} must be positive")
        if fields[0] not in images:
            raise ValueError(f"{where}: image id {fields[0]} is not in images.txt")
        # Inclusive convention: w pixels starting at x end at x + w - 1.
        boxes.setdefault(fields[0], []).append([x, y, x + w - 1, y + h - 1])

    records_by_split: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    train_seen_per_class: dict[int, int] = {}
    paths: dict[str, str] = {}
    for image_id, (fields, where) in images.items():
        first_seen(paths, fields[0], where, "image path", "each image is listed once: remove the repeated line")
        if image_id not in labels:
            raise ValueError(f"{where}: image id {image_id} has no line in image_class_labels.txt")
        if image_id not in is_train:
            raise ValueError(f"{where}: image id {image_id} has no line in train_test_split.txt")
        (label_text,), label_where = labels[image_id]
        label = _int(label_text, label_where, "class")
        if not 1 <= label <= num_classes:
            raise ValueError(f"{label_where}: class {label} is out of range 1..{num_classes} (CUB classes are 1-based)")
        (flag,), flag_where = is_train[image_id]
        if flag not in ("0", "1"):
            raise ValueError(f"{flag_where}: is_train must be 0 or 1, got {flag!r}")
        record = Record(
            image_id=fields[0],
            label=label - 1,
            boxes=np.asarray(boxes.get(image_id, np.zeros((0, 4))), np.float32).reshape(-1, 4),
            path=relative_file(root / "images", fields[0], where),
            source=where,
        )
        if flag == "0":
            records_by_split["test"].append(record)
            continue
        seen = train_seen_per_class.get(label, 0)
        train_seen_per_class[label] = seen + 1
        held_out = val_every > 0 and seen % val_every == 0
        records_by_split["val" if held_out else "train"].append(record)

    records = records_by_split[split]
    if not records:
        hint = " (val is disabled by val_every=0)" if split == "val" and val_every <= 0 else ""
        raise ValueError(f"CUB split {split!r} under {root} has no images{hint}")
    if check_files_exist:
        check_files(records, f"fix: data_root={data_root} must be the CUB_200_2011 folder (or its parent), with "
                             "images/ inside", images=need_images)
    return WSOLDataset(records, class_names, image_size, train, format="cub", split=split, root=root)
