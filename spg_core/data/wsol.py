"""The wsolevaluation metadata format (Choe et al., CVPR 2020; spec §5).

Expected tree (paths inside the .txt files are relative to the image root)::

    <data_root>/<image paths>                     e.g. 001.Black_footed_Albatross/x.jpg
    <metadata_root>/<split>/image_ids.txt         one image path per line
                           class_labels.txt       path,label        (0-based)
                           image_sizes.txt        path,w,h          (optional)
                           localization.txt       path,x0,y0,x1,y1  (one line per box) or
                                                  path,mask.png,ignore.png (one line per instance)

``metadata_root`` may be the folder holding <split>/ (``metadata/CUB``), wsolevaluation's top
``metadata/`` holding one folder per dataset (pick one with ``dataset="CUB"`` when there are
several), or the <split> folder itself; it defaults to ``<data_root>/metadata``. When image paths
do not resolve under ``data_root`` but do under ``<data_root>/images`` (the layout that
:func:`spg_core.data.synthetic.write_wsol` writes), that folder is the image root.

Boxes are taken as 0-based inclusive pixel coordinates as written (wsolevaluation's own IoU
treats them so). Mask paths are relative to ``mask_root`` (``--mask-root``; default: the first
of data_root, <data_root>/masks, a ``masks`` folder beside data_root, the image root that holds
them — so both ``data_root=D`` and ``data_root=D/images`` read what ``synth --out D`` writes, its
masks in ``D/masks``); a mask pixel > 127 is object, an ignore-mask
pixel > 127 that is not object becomes 255 (excluded from PxAP, as in wsolevaluation). Mask-form
images get one GT box per instance mask (its tight box). Class names come from
``class_names.txt`` next to the split folders when present, otherwise the label numbers.

Reading annotations only (``need_images=False``: scoring saved maps, as wsolevaluation's own
evaluator does) needs no image file: ``data_root`` may be a folder without the images (it still
locates the masks), or None when no masks are listed; image sizes then come from
image_sizes.txt (else a mask's size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spg_core.data.dataset import (SPLITS, Record, WSOLDataset, check_files, first_seen, parse_box, read_lines,
                                   register_format, relative_file)

ONCE = "each image is listed once per file"


def _resolve_split_dir(metadata_root: Path, split: str, dataset: str | None) -> Path:
    if dataset is not None:
        metadata_root = metadata_root / dataset
    if (metadata_root / split / "image_ids.txt").is_file():
        return metadata_root / split
    if metadata_root.name == split and (metadata_root / "image_ids.txt").is_file():
        return metadata_root
    candidates = sorted(
        child.name for child in metadata_root.iterdir() if child.is_dir() and (child / split / "image_ids.txt").is_file()
    ) if metadata_root.is_dir() else []
    if len(candidates) == 1:
        return metadata_root / candidates[0] / split
    if len(candidates) > 1:
        raise ValueError(f"{metadata_root} holds metadata for several datasets {candidates}; pass dataset=<one of them>")
    raise FileNotFoundError(
        f"no wsolevaluation metadata for split {split!r}: expected {metadata_root / split / 'image_ids.txt'} "
        "(pass metadata_root= the folder that holds train/, val/, test/)"
    )


def _split_csv(text: str, where: str, count: tuple[int, ...]) -> list[str]:
    fields = [field.strip() for field in text.split(",")]
    if len(fields) not in count:
        raise ValueError(f"{where}: expected {' or '.join(map(str, count))} comma-separated fields, got {len(fields)}: {text!r}")
    return fields


def _read_labels(path: Path) -> dict[str, tuple[int, str]]:
    """image id -> (label, "file:line"); an id listed twice is refused (its labels may differ)."""
    labels, seen = {}, {}
    for number, text in read_lines(path):
        where = f"{path}:{number}"
        image_id, label = _split_csv(text, where, (2,))
        first_seen(seen, image_id, where, "image id", f"{ONCE}: keep the line with its right label")
        try:
            labels[image_id] = (int(label), where)
        except ValueError:
            raise ValueError(f"{where}: label {label!r} is not an integer") from None
    return labels


def _count_classes(dataset_dir: Path, split_labels: dict) -> int:
    """Number of classes = 1 + the largest label over every split present (so all splits of a
    dataset agree even if one split misses the last class)."""
    largest = max((label for label, _ in split_labels.values()), default=-1)
    for other in SPLITS:
        path = dataset_dir / other / "class_labels.txt"
        if path.is_file():
            largest = max([largest] + [label for label, _ in _read_labels(path).values()])
    return largest + 1


@register_format("wsol")
def build_wsol(
    split,
    data_root,
    metadata_root,
    image_size,
    train,
    dataset: str | None = None,
    mask_root: str | Path | None = None,
    num_classes: int | None = None,
    check_files_exist: bool = True,
    need_images: bool = True,
) -> WSOLDataset:
    split_dir = _resolve_split_dir(metadata_root or data_root / "metadata", split, dataset)
    dataset_dir = split_dir.parent
    ids = [(number, text) for number, text in read_lines(split_dir / "image_ids.txt")]
    labels = _read_labels(split_dir / "class_labels.txt")

    names_path = dataset_dir / "class_names.txt"
    class_names = [text for _, text in read_lines(names_path)] if names_path.is_file() else None
    if num_classes is None:
        num_classes = len(class_names) if class_names else _count_classes(dataset_dir, labels)
    if class_names is None:
        class_names = [str(k) for k in range(num_classes)]
    elif len(class_names) != num_classes:
        raise ValueError(f"{names_path} lists {len(class_names)} classes but num_classes={num_classes}")

    sizes: dict[str, tuple[tuple[int, int], str]] = {}
    sizes_path = split_dir / "image_sizes.txt"
    if sizes_path.is_file():
        sized: dict[str, str] = {}
        for number, text in read_lines(sizes_path):
            where = f"{sizes_path}:{number}"
            image_id, width, height = _split_csv(text, where, (3,))
            first_seen(sized, image_id, where, "image id", f"{ONCE}: keep the line with its right size")
            try:
                sizes[image_id] = ((int(float(width)), int(float(height))), where)
            except (ValueError, OverflowError):
                raise ValueError(f"{where}: image size {width!r},{height!r} is not two numbers") from None

    boxes: dict[str, list] = {}
    masks: dict[str, list] = {}
    ignores: dict[str, str] = {}
    localization = split_dir / "localization.txt"
    if localization.is_file():
        for number, text in read_lines(localization):
            where = f"{localization}:{number}"
            fields = _split_csv(text, where, (3, 5))
            if len(fields) == 5:
                boxes.setdefault(fields[0], []).append(parse_box(fields[1:], where))
            else:
                masks.setdefault(fields[0], []).append(relative_file(None, fields[1], where, "mask"))
                if fields[2]:
                    ignores[fields[0]] = relative_file(None, fields[2], where, "ignore mask")

    image_root = data_root
    if data_root is None:  # annotations only (need_images=False): no image is ever read
        if masks and mask_root is None:
            raise ValueError(f"{localization} lists masks, which are relative to the dataset folder: pass data_root= "
                             "(--data-root) the folder holding them (the images may be absent), or mask_root=")
    elif ids and not (data_root / ids[0][1]).is_file() and (data_root / "images" / ids[0][1]).is_file():
        image_root = data_root / "images"
    mask_candidates: tuple = ()
    if mask_root is not None:
        mask_base = Path(mask_root).expanduser()
    elif data_root is None:
        mask_base = None
    else:
        first_mask = next(iter(masks.values()), [None])[0]
        mask_base = data_root
        # data_root/../masks: the masks/ beside images/ that synth writes, when data_root is images/.
        mask_candidates = (data_root, data_root / "masks", data_root.parent / "masks", image_root)
        for candidate in mask_candidates:
            if first_mask is not None and (candidate / first_mask).is_file():
                mask_base = candidate
                break

    records = []
    listed: dict[str, str] = {}
    for number, image_id in ids:
        listing = f"{split_dir / 'image_ids.txt'}:{number}"
        if image_id not in labels:
            raise ValueError(f"{listing}: image {image_id!r} has no entry in class_labels.txt")
        label, where = labels[image_id]
        if not 0 <= label < num_classes:
            raise ValueError(f"{where}: label {label} is out of range 0..{num_classes - 1} (labels are 0-based)")
        first_seen(listed, image_id, listing, "image id", f"{ONCE}: remove the repeated line")
        relative_file(None, image_id, listing)
        size, size_where = sizes.get(image_id, (None, ""))
        records.append(
            Record(
                image_id=image_id,
                label=label,
                boxes=np.asarray(boxes.get(image_id, np.zeros((0, 4))), np.float32).reshape(-1, 4),
                path=None if image_root is None else image_root / image_id,
                size=size,
                mask_paths=tuple(mask_base / m for m in masks.get(image_id, ())),
                ignore_path=mask_base / ignores[image_id] if image_id in ignores else None,
                source=where,
                size_source=size_where,
            )
        )
    if not records:
        raise ValueError(f"{split_dir / 'image_ids.txt'} lists no images")
    if check_files_exist:
        looked = ", ".join(dict.fromkeys(str(c) for c in mask_candidates)) if masks and mask_candidates else ""
        check_files(records, f"fix: data_root={data_root} must be the folder the paths in {split_dir}/image_ids.txt "
                             "are relative to, and mask_root= (--mask-root) the folder the mask paths in "
                             f"localization.txt are relative to"
                             + (f" (not given: looked in {looked})" if looked else f" (mask_root={mask_base})"),
                    images=need_images)
    return WSOLDataset(records, class_names, image_size, train, format="wsol", split=split, root=image_root)
