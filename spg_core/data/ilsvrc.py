"""ILSVRC-2012 localisation in its native layouts (spec §6).

Expected tree under ``data_root`` (the Kaggle "imagenet-object-localization-challenge" folder
works as is; the shorter forms too)::

    LOC_synset_mapping.txt     "n01440764 tench, Tinca tinca" per line (line order = class
                               index), or a plain wnid list (synsets.txt / wnids.txt /
                               synset_words.txt); or pass synsets=PATH
    -- split "test" = the 2012 validation set (50000 images, 80477 boxes) --
    ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG ...   (or val/, or data_root itself)
    and ONE annotation form:
      LOC_val_solution.csv     "ImageId,PredictionString" with "wnid x0 y0 x1 y1" repeated
      ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml  PASCAL-VOC XML per image
                               (or Annotations/, bbox/, val/ next to the JPEGs, data_root)
    -- split "train" / "val" (optional) --
    ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG ...       (or train/<wnid>/)
    LOC_train_solution.csv     boxes of the train images that have them

Auto-detection: ``annotations=`` (a CSV file or an XML folder) wins; otherwise the CSV when
present (one file, fast to parse), otherwise the first folder above holding XML files.

Coordinates: VOC XML boxes are 1-based inclusive (xmin = 1 is the first column); they are
converted to the project's 0-based inclusive convention by subtracting 1 from all four. The
Kaggle CSVs copy the XML numbers, so they get the same conversion.

The class of an image is its first object's wnid (every 2012 val image has one class); boxes of
objects with another wnid are dropped with a warning.

"val" is a held-out part of the *train* images that have boxes: those whose id hashes (seeded,
stable) into 1 of every ``val_every`` buckets; "train" excludes them. Thresholds are then chosen
without touching the 2012 val images that the paper reports on. (wsolevaluation instead uses its
ILSVRCv2 set for val: use format "wsol" with its metadata for that.)
"""
from __future__ import annotations

import csv
import os
import re
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from spg_core.data.dataset import (
    DataWarning,
    Record,
    WSOLDataset,
    check_files,
    checked,
    decode_error,
    read_lines,
    register_format,
    relative_file,
    stable_fraction,
)

WNID = re.compile(r"^n\d{8}$")
IMAGE_SUFFIXES = (".JPEG", ".jpeg", ".jpg", ".JPG", ".png", ".PNG")
SYNSET_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "synsets.txt", "wnids.txt")
VAL_IMAGE_DIRS = ("ILSVRC/Data/CLS-LOC/val", "Data/CLS-LOC/val", "val", "")
VAL_XML_DIRS = ("ILSVRC/Annotations/CLS-LOC/val", "Annotations/CLS-LOC/val", "Annotations", "bbox", "val", "")
TRAIN_IMAGE_DIRS = ("ILSVRC/Data/CLS-LOC/train", "Data/CLS-LOC/train", "train")


def read_synsets(path: Path) -> tuple[list[str], list[str]]:
    """(wnids, names) in file order; a name is the first alias ("tench"), or the wnid when the
    file is a plain wnid list."""
    wnids, names = [], []
    for number, text in read_lines(path):
        wnid, _, rest = text.partition(" ")
        if not WNID.match(wnid):
            raise ValueError(f"{path}:{number}: {wnid!r} is not a WordNet id like n01440764")
        if wnid in wnids:
            raise ValueError(f"{path}:{number}: wnid {wnid} appears twice")
        wnids.append(wnid)
        names.append(rest.split(",")[0].strip() or wnid)
    if not wnids:
        raise ValueError(f"{path} lists no synsets")
    return wnids, names


def _find_synsets(roots: list[Path], synsets) -> Path:
    if synsets is not None:
        return Path(synsets)
    for root in roots:
        for name in SYNSET_FILES:
            if (root / name).is_file():
                return root / name
    raise FileNotFoundError(f"no synset list ({' / '.join(SYNSET_FILES)}) in {[str(r) for r in roots]}; pass synsets=PATH")


def _image_index(folder: Path) -> dict[str, str]:
    """stem -> file name of the images in one folder (one directory listing, not a stat per id)."""
    index = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if dot and "." + suffix in IMAGE_SUFFIXES:
                index.setdefault(stem, entry.name)
    return index


def _has_files(folder: Path, suffixes) -> bool:
    if not folder.is_dir():
        return False
    with os.scandir(folder) as entries:
        return any(entry.name.endswith(tuple(suffixes)) for entry in entries)


def _convert(values, where: str) -> list[float]:
    """VOC 1-based inclusive -> 0-based inclusive."""
    try:
        x0, y0, x1, y1 = (float(v) - 1 for v in values)
    except ValueError:
        raise ValueError(f"{where}: box {list(values)} is not four numbers") from None
    if x1 < x0 or y1 < y0:
        raise ValueError(f"{where}: box {list(values)} has xmax < xmin or ymax < ymin")
    return [x0, y0, x1, y1]


def _read_solution_csv(path: Path, class_index: dict[str, int]) -> dict[str, tuple[int, list, str]]:
    """image id -> (label, boxes, "file:line") from a Kaggle LOC_*_solution.csv."""
    out: dict[str, tuple[int, list, str]] = {}
    with open(checked(path), newline="", encoding="utf-8-sig") as handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
                raise ValueError(f"{path}:1: expected the header 'ImageId,PredictionString', got {header}")
            for number, row in enumerate(reader, 2):
                if not row:
                    continue
                where = f"{path}:{number}"
                if len(row) < 2:
                    raise ValueError(f"{where}: expected 'ImageId,PredictionString', got {row}")
                image_id = row[0].strip()
                if image_id in out:
                    raise ValueError(f"{where}: ImageId {image_id!r} is listed again (first at {out[image_id][2]}); "
                                     "each image has one row: put all its objects in that row's PredictionString")
                relative_file(None, image_id, where)
                tokens = row[1].split()
                if not tokens or len(tokens) % 5:
                    raise ValueError(f"{where}: PredictionString must be groups of 'wnid x0 y0 x1 y1', got "
                                     f"{len(tokens)} tokens")
                out[image_id] = _objects([tokens[i : i + 5] for i in range(0, len(tokens), 5)], class_index, where)
        except UnicodeDecodeError as error:
            raise decode_error(path, error) from None
    return out


def _objects(objects: list[list[str]], class_index: dict[str, int], where: str) -> tuple[int, list, str]:
    wnid = objects[0][0]
    if wnid not in class_index:
        raise ValueError(f"{where}: unknown class {wnid!r} (not in the synset list of {len(class_index)} classes)")
    boxes = []
    for other, *coords in objects:
        if other not in class_index:
            raise ValueError(f"{where}: unknown class {other!r} (not in the synset list of {len(class_index)} classes)")
        if other != wnid:
            warnings.warn(f"{where}: object of class {other} in an image of class {wnid}; its box is dropped", DataWarning,
                          stacklevel=2)
            continue
        boxes.append(_convert(coords, where))
    return class_index[wnid], boxes, where


def _read_xml(path: Path, class_index: dict[str, int]) -> tuple[int, list, str, tuple[int, int] | None]:
    text = checked(path).read_text(encoding="utf-8", errors="replace")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}: malformed XML ({error})") from None
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{path}: <object> {name!r} has no <bndbox>")
        objects.append([name] + [(box.findtext(k) or "").strip() for k in ("xmin", "ymin", "xmax", "ymax")])
    if not objects:
        raise ValueError(f"{path}: no <object> in the annotation")
    # Point errors at the line of the first offending wnid (ElementTree keeps no line numbers).
    unknown = next((o[0] for o in objects if o[0] not in class_index), None)
    line = text[: text.find(f">{unknown}<")].count("\n") + 1 if unknown is not None and f">{unknown}<" in text else 1
    label, boxes, where = _objects(objects, class_index, f"{path}:{line}")
    size = None
    width, height = root.findtext("size/width"), root.findtext("size/height")
    if width and height and int(float(width)) > 0 and int(float(height)) > 0:
        size = (int(float(width)), int(float(height)))
    return label, boxes, where, size


def _first_dir(data_root: Path, names, suffixes) -> Path | None:
    for name in names:
        folder = data_root / name if name else data_root
        if _has_files(folder, suffixes):
            return folder
    return None


def _test_records(data_root: Path, metadata_root: Path | None, class_index, annotations) -> list[Record]:
    image_dir = _first_dir(data_root, VAL_IMAGE_DIRS, IMAGE_SUFFIXES)
    if image_dir is None:
        raise FileNotFoundError(f"no 2012 validation images under {data_root} (looked in {VAL_IMAGE_DIRS})")
    images = _image_index(image_dir)
    roots = [data_root] + ([metadata_root] if metadata_root else [])
    csv_path = xml_dir = None
    if annotations is not None:
        annotations = Path(annotations)
        csv_path, xml_dir = (annotations, None) if annotations.is_file() else (None, annotations)
    else:
        csv_path = next((r / "LOC_val_solution.csv" for r in roots if (r / "LOC_val_solution.csv").is_file()), None)
        if csv_path is None:
            xml_dir = _first_dir(data_root, VAL_XML_DIRS, (".xml",))
    records = []
    if csv_path is not None:
        for image_id, (label, boxes, where) in _read_solution_csv(csv_path, class_index).items():
            path = image_dir / images.get(image_id, image_id + ".JPEG")
            records.append(Record(image_id, label, np.asarray(boxes, np.float32).reshape(-1, 4), path, source=where))
    elif xml_dir is not None and xml_dir.is_dir():
        for xml_path in sorted(xml_dir.glob("*.xml")):
            label, boxes, where, size = _read_xml(xml_path, class_index)
            image_id = xml_path.stem
            path = image_dir / images.get(image_id, image_id + ".JPEG")
            records.append(Record(image_id, label, np.asarray(boxes, np.float32).reshape(-1, 4), path, size, source=where))
    else:
        raise FileNotFoundError(
            f"no ILSVRC validation annotations under {data_root}: expected LOC_val_solution.csv or a folder of "
            f"PASCAL-VOC XML files ({', '.join(d or '.' for d in VAL_XML_DIRS)}); pass annotations=PATH"
        )
    records.sort(key=lambda r: r.image_id)
    return records


def _train_records(data_root: Path, metadata_root: Path | None, class_index, wnids) -> list[Record]:
    train_dir = next((data_root / d for d in TRAIN_IMAGE_DIRS if (data_root / d).is_dir()), None)
    if train_dir is None:
        raise FileNotFoundError(f"no ILSVRC train folder under {data_root} (looked for {TRAIN_IMAGE_DIRS}, each with <wnid>/ subfolders)")
    roots = [data_root] + ([metadata_root] if metadata_root else [])
    csv_path = next((r / "LOC_train_solution.csv" for r in roots if (r / "LOC_train_solution.csv").is_file()), None)
    solution = _read_solution_csv(csv_path, class_index) if csv_path else {}
    records = []
    for wnid in wnids:
        folder = train_dir / wnid
        if not folder.is_dir():
            continue
        for stem, name in sorted(_image_index(folder).items()):
            label, boxes, where = solution.get(stem, (class_index[wnid], [], str(folder / name)))
            if label != class_index[wnid]:
                raise ValueError(f"{where}: image {stem} lies in folder {wnid} but is annotated as class {wnids[label]}")
            records.append(Record(stem, label, np.asarray(boxes, np.float32).reshape(-1, 4), folder / name, source=where))
    if not records:
        raise FileNotFoundError(f"no images in the <wnid>/ subfolders of {train_dir}")
    return records


@register_format("ilsvrc")
def build_ilsvrc(
    split,
    data_root,
    metadata_root,
    image_size,
    train,
    synsets: str | Path | None = None,
    annotations: str | Path | None = None,
    val_every: int = 50,
    split_seed: int = 0,
    check_files_exist: bool = True,
    need_images: bool = True,
) -> WSOLDataset:
    roots = [data_root] + ([metadata_root] if metadata_root else [])
    wnids, names = read_synsets(_find_synsets(roots, synsets))
    class_index = {wnid: k for k, wnid in enumerate(wnids)}
    if split == "test":
        records = _test_records(data_root, metadata_root, class_index, annotations)
    else:
        all_train = _train_records(data_root, metadata_root, class_index, wnids)

        def held_out(record: Record) -> bool:
            return val_every > 0 and len(record.boxes) > 0 and stable_fraction(record.image_id, split_seed) * val_every < 1

        records = [r for r in all_train if held_out(r) == (split == "val")]
        if split == "val" and not records:
            raise ValueError(
                f"ILSVRC split 'val' is drawn from train images with boxes, and none were found under {data_root} "
                "(needs LOC_train_solution.csv and val_every > 0); or use format 'wsol' with wsolevaluation's ILSVRC metadata"
            )
    if not records:
        raise ValueError(f"ILSVRC split {split!r} under {data_root} has no images")
    if check_files_exist:
        check_files(records, f"fix: data_root={data_root} must hold the images as laid out in spg_core/data/ilsvrc.py",
                    images=need_images)
    return WSOLDataset(records, names, image_size, train, format="ilsvrc", split=split, root=data_root)
