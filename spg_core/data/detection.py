"""Detection-format datasets: Pascal VOC XML, COCO JSON and YOLO text, read as WSOL datasets,
and written out in the wsolevaluation layout (:func:`convert_to_wsol`).

One class per image: WSOL trains a classifier on image-level labels, so an image whose objects
carry several classes is skipped, and so is an image without any object; both are counted
(``dataset.skipped_annotations``) and said in one warning per split. The boxes of the one
class are the image's GT boxes. Image ids are the image paths relative to ``data_root`` (what
the converter writes into ``image_ids.txt``).

``voc`` (``data_root``: the VOC folder, e.g. ``VOCdevkit/VOC2007``, or a folder holding one)::

    Annotations/<id>.xml          <object><name>, <bndbox><xmin>..<ymax> 1-based inclusive
    JPEGImages/<filename>         the XML's <filename> (else <id>.jpg/.png/...)
    ImageSets/Main/<split>.txt    one id per line (--metadata-root: another folder of lists)
    classes.txt                   optional: the class names in label order

A flat folder of XML files (labelImg) works too: images beside the XML files or in images/.
Boxes are converted by subtracting 1 (VOC's first pixel is 1). Objects marked difficult are
kept. Without any split list, the images are split 80/10/10 by a seeded hash of the id (as the
folder format). Classes: classes.txt, else the sorted names over every XML file.

``coco`` (``data_root``: the folder holding the images and annotations)::

    annotations/instances_<split>*.json or annotations/<split>.json   (--metadata-root: that folder)
    <split>/_annotations.coco.json                                  (Roboflow's export)

``bbox`` = [x, y, w, h], the top-left corner and the size in pixels: covers columns
x .. x + w − 1 (at least one pixel). Images are found under, in order, the JSON's own folder,
``<data_root>/<the JSON's name without instances_>`` (COCO's ``val2017``), ``<data_root>/<split>``,
``<data_root>/images/<split>``, ``<data_root>/images``, ``<data_root>``: the first holding the
first image. Classes: the JSON's categories in order of their id (every split's JSON lists the
same categories, as COCO's and Roboflow's do). Polygon and RLE segmentations are not read.

``yolo`` (``data_root``: the folder holding data.yaml)::

    data.yaml                     names: [a, b, ...] or {0: a, 1: b} (or classes.txt, one per line)
    images/<split>/..., labels/<split>/...       (Ultralytics) or
    <split>/images/..., <split>/labels/...       (Roboflow's export; "valid" is read for val)

One label file per image (same relative path, ``.txt``), a line per object: ``class cx cy w h``
as fractions of the image's width and height (or ``class x1 y1 x2 y2 ...``, a polygon: its
tight box). The box covers columns (cx − w/2)·W .. (cx + w/2)·W − 1; the image's size comes from
its header, so YOLO needs the images. A missing or empty label file is an image without objects.
Without split folders (``images/`` holding the images), the images are split 80/10/10 by a
seeded hash of their path.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from spg_core.data.dataset import (SPLITS, DataWarning, Record, WSOLDataset, build_dataset, check_files, checked,
                                   decode_error, first_seen, read_lines, register_format, relative_file)
from spg_core.data.folder import hash_split
from spg_core.data.images import BadImageError
from spg_core.data.images import image_size as header_size  # the builders' image_size is the input size

__all__ = ["DETECTION_FORMATS", "IMAGE_SUFFIXES", "MissingSplit", "convert_to_wsol"]

DETECTION_FORMATS = ("voc", "coco", "yolo")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SPLIT_ALIASES = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few lines: a larger file is not one


class MissingSplit(FileNotFoundError):
    """The dataset has no annotations for the asked split (the converter skips such a split)."""


# ----------------------------------------------------------------------------- shared
class _Skipped:
    """Images left out for WSOL's one-class rule, counted with one example each."""

    def __init__(self):
        self.counts = {"several_classes": 0, "no_object": 0, "unreadable": 0}
        self.examples: dict[str, str] = {}

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, where)

    def warn(self, fmt: str, split: str) -> None:
        words = {"several_classes": "whose objects carry several classes", "no_object": "without any object",
                 "unreadable": "whose image header cannot be read"}
        parts = [f"{count} image(s) {words[reason]} (e.g. {self.examples[reason]})"
                 for reason, count in self.counts.items() if count]
        if parts:
            warnings.warn(f"{fmt} split {split!r}: skipped {'; '.join(parts)}: WSOL needs one class per image "
                          "(docs/datasets.md)", DataWarning, stacklevel=3)


def _one_class(objects: list[tuple], where: str, skipped: _Skipped):
    """(class, boxes) of an image's objects [(class, box)], or None when it has none or several classes."""
    if not objects:
        skipped.add("no_object", where)
        return None
    classes = {name for name, _ in objects}
    if len(classes) > 1:
        skipped.add("several_classes", where)
        return None
    return objects[0][0], [box for _, box in objects]


def _relative_id(path: Path, root: Path) -> str:
    """The image's path relative to the dataset folder, with forward slashes: its image id."""
    return Path(os.path.relpath(path, root)).as_posix()


def _finish(records: list[Record], class_names, image_size_px: int, train: bool, fmt: str, split: str, root: Path,
            skipped: _Skipped, where: str, check_files_exist: bool, need_images: bool, fix: str) -> WSOLDataset:
    skipped.warn(fmt, split)
    if not records:
        raise ValueError(f"{fmt} split {split!r} of {where} has no image with one class ({skipped.counts}); "
                         "annotate at least one image there")
    if check_files_exist:
        check_files(records, fix, images=need_images)
    dataset = WSOLDataset(records, class_names, image_size_px, train, format=fmt, split=split, root=root)
    dataset.skipped_annotations = dict(skipped.counts)
    return dataset


def _fixed_classes(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    return [text for _, text in read_lines(path)] if path.is_file() else None


def _number(text, where: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not a finite number")
    return value


def _sized_box(x: float, y: float, width: float, height: float) -> list[float]:
    """A box of the top-left corner and size in pixels: inclusive, at least one pixel wide."""
    return [x, y, max(x, x + width - 1), max(y, y + height - 1)]


# ----------------------------------------------------------------------------- Pascal VOC
def _voc_root(data_root: Path) -> Path:
    if (data_root / "Annotations").is_dir() or any(data_root.glob("*.xml")):
        return data_root
    inside = sorted(child for child in data_root.iterdir() if (child / "Annotations").is_dir()) \
        if data_root.is_dir() else []
    if len(inside) == 1:
        return inside[0]
    if inside:
        raise ValueError(f"{data_root} holds several VOC folders {[c.name for c in inside]}; pass --data-root one of them")
    raise FileNotFoundError(f"no Annotations/ folder of Pascal VOC XML files in {data_root}; pass --data-root the "
                            "VOC folder (e.g. VOCdevkit/VOC2007)")


_OBJECT_TAG = re.compile(rb"<object[\s>]")


def _read_voc_xml(path: Path) -> tuple[str, tuple[int, int] | None, list[tuple[str, list[float], str]]]:
    """(filename, (w, h) or None, [(class name, 0-based box, "file:line")]) of one VOC XML file."""
    raw = checked(path).read_bytes()
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}:{error.position[0]}: malformed XML ({error}); fix or remove the file") from None
    # ElementTree keeps no line numbers: the n-th <object> tag's line names the n-th object.
    lines = [raw[:match.start()].count(b"\n") + 1 for match in _OBJECT_TAG.finditer(raw)]
    objects = []
    for index, element in enumerate(root.iter("object")):
        where = f"{path}:{lines[index] if index < len(lines) else 1}"
        name = (element.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"{where}: <object> has no <name>; give every object its class name")
        box = element.find("bndbox")
        if box is None:
            raise ValueError(f"{where}: <object> {name!r} has no <bndbox>; give xmin, ymin, xmax, ymax")
        x0, y0, x1, y1 = (_number((box.findtext(k) or "").strip(), where, k) - 1
                          for k in ("xmin", "ymin", "xmax", "ymax"))
        if x1 < x0 or y1 < y0:
            raise ValueError(f"{where}: box of {name!r} has xmax < xmin or ymax < ymin; swap them")
        objects.append((name, [x0, y0, x1, y1], where))
    size = None
    width, height = root.findtext("size/width"), root.findtext("size/height")
    if width and height:
        size = (int(_number(width, f"{path}", "size/width")), int(_number(height, f"{path}", "size/height")))
        if min(size) <= 0:
            size = None  # some tools write 0: the image's own size is used
    return (root.findtext("filename") or "").strip(), size, objects


def _voc_ids(root: Path, lists: Path, annotations: Path, split: str, split_seed: int) -> list[tuple[str, str]]:
    """(image id, "file:line" that lists it) of the split's images."""
    path = lists / f"{split}.txt"
    if path.is_file():
        out, seen = [], {}
        for number, text in read_lines(path):
            where = f"{path}:{number}"
            image_id = text.split()[0]
            first_seen(seen, image_id, where, "image id", "list each image once")
            relative_file(None, image_id, where)
            out.append((image_id, where))
        return out
    found = sorted(p.name for p in lists.glob("*.txt")) if lists.is_dir() else []
    if any(name in found for name in ("train.txt", "val.txt", "test.txt", "trainval.txt")):
        raise MissingSplit(f"no {path} (this VOC folder lists {', '.join(found)}); choose --split among them or "
                           "write that list, one image id per line")
    stems = sorted(p.stem for p in annotations.glob("*.xml"))
    return [(stem, str(annotations / f"{stem}.xml")) for stem in stems if hash_split(stem, seed=split_seed) == split]


def _voc_image(images: Path, filename: str, image_id: str, where: str) -> Path:
    candidates = ([filename] if filename else []) + [image_id + suffix for suffix in IMAGE_SUFFIXES]
    paths = [relative_file(images, name, where) for name in candidates]
    return next((p for p in paths if p.is_file()), paths[0])


@register_format("voc")
def build_voc(split, data_root, metadata_root, image_size, train, split_seed: int = 0,
              check_files_exist: bool = True, need_images: bool = True) -> WSOLDataset:
    root = _voc_root(data_root)
    annotations = root / "Annotations" if (root / "Annotations").is_dir() else root
    images = next((folder for folder in (root / "JPEGImages", root / "images") if folder.is_dir()), annotations)
    lists = metadata_root or root / "ImageSets" / "Main"
    ids = _voc_ids(root, lists, annotations, split, split_seed)
    fixed = _fixed_classes(root)
    parsed = {}
    for image_id, where in ids:
        xml = relative_file(annotations, f"{image_id}.xml", where)
        if not xml.is_file():
            raise FileNotFoundError(f"{where}: image id {image_id!r} has no annotation {xml}; add it or remove the line")
        parsed[image_id] = (_read_voc_xml(xml), where)
    if fixed is None:  # every split's names, so that the labels agree across splits
        names = set()
        for xml in sorted(annotations.glob("*.xml")):
            objects = parsed[xml.stem][0][2] if xml.stem in parsed else _read_voc_xml(xml)[2]
            names.update(name for name, _, _ in objects)
        class_names = sorted(names)
    else:
        class_names = fixed
    index = {name: k for k, name in enumerate(class_names)}
    skipped, records = _Skipped(), []
    for image_id, ((filename, size, objects), where) in parsed.items():
        for name, _, line in objects:
            if name not in index:
                raise ValueError(f"{line}: unknown class name {name!r}; {root / 'classes.txt'} lists "
                                 f"{len(class_names)} classes: add it there")
        chosen = _one_class([(name, box) for name, box, _ in objects], where, skipped)
        if chosen is None:
            continue
        path = _voc_image(images, filename, image_id, where)
        records.append(Record(image_id=_relative_id(path, root), label=index[chosen[0]],
                              boxes=np.asarray(chosen[1], np.float32).reshape(-1, 4), path=path, size=size,
                              source=objects[0][2], size_source=str(annotations / f"{image_id}.xml")))
    return _finish(records, class_names, image_size, train, "voc", split, root, skipped, str(lists / f"{split}.txt"),
                   check_files_exist, need_images,
                   f"fix: the images of {annotations} are looked up in {images} by each XML's <filename>")


# ----------------------------------------------------------------------------- COCO
def _coco_json(root: Path, metadata_root: Path | None, split: str) -> Path:
    folders = [metadata_root] if metadata_root is not None else [root / "annotations", root]
    tried = []
    for name in SPLIT_ALIASES[split]:
        for folder in folders:
            tried += [folder / f"instances_{name}.json", folder / f"{name}.json"]
            tried += sorted(folder.glob(f"instances_{name}[0-9]*.json")) if folder.is_dir() else []
        tried.append(root / name / "_annotations.coco.json")
    found = next((path for path in tried if path.is_file()), None)
    if found is None:
        shown = ", ".join(str(p) for p in dict.fromkeys(tried[:4]))
        raise MissingSplit(f"no COCO JSON for split {split!r} (looked for {shown}, ...); pass --metadata-root the "
                           f"folder holding instances_{split}.json")
    return found


def _coco_fields(item, where: str, fields: tuple[str, ...]) -> dict:
    if not isinstance(item, dict) or any(field not in item for field in fields):
        raise ValueError(f"{where}: expected an object with {', '.join(fields)}, got {str(item)[:80]!r}")
    return item


def _read_coco(path: Path) -> dict:
    raw = checked(path).read_bytes()
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as error:
        raise decode_error(path, error) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg}); fix the file") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list)
                                             for key in ("images", "annotations", "categories")):
        raise ValueError(f"{path}: a COCO file has lists 'images', 'annotations' and 'categories' at its top")
    return data


def _coco_image_root(root: Path, path: Path, split: str, first: str | None) -> Path:
    stem = path.stem.removeprefix("instances_")
    candidates = [path.parent, root / stem, root / split, root / "images" / split, root / "images", root]
    if first is not None:
        for folder in candidates:
            if (folder / first).is_file():
                return folder
    return next((folder for folder in candidates[1:] if folder.is_dir() and folder != root), root)


@register_format("coco")
def build_coco(split, data_root, metadata_root, image_size, train, check_files_exist: bool = True,
               need_images: bool = True) -> WSOLDataset:
    root = data_root
    path = _coco_json(root, metadata_root, split)
    data = _read_coco(path)
    categories: dict[int, str] = {}
    for position, item in enumerate(data["categories"]):
        where = f"{path}: categories[{position}]"
        item = _coco_fields(item, where, ("id", "name"))
        if not isinstance(item["id"], (int, str)) or isinstance(item["id"], bool):
            raise ValueError(f"{where}: category id {str(item['id'])[:40]!r} must be a number")
        if item["id"] in categories:
            raise ValueError(f"{where}: category id {item['id']} is listed twice; give each category its own id")
        categories[item["id"]] = str(item["name"])
    try:
        order = sorted(categories)
    except TypeError:
        raise ValueError(f"{path}: category ids {list(categories)[:5]} must all be numbers") from None
    label_of = {category: k for k, category in enumerate(order)}
    images: dict = {}
    for position, item in enumerate(data["images"]):
        where = f"{path}: images[{position}]"
        item = _coco_fields(item, where, ("id", "file_name"))
        if not isinstance(item["id"], (int, str)) or isinstance(item["id"], bool):
            raise ValueError(f"{where}: image id {str(item['id'])[:40]!r} must be a number or a text")
        if item["id"] in images:
            raise ValueError(f"{where}: image id {item['id']} is listed twice (first at images[{images[item['id']][1]}])")
        relative_file(None, str(item["file_name"]), where)
        images[item["id"]] = (item, position)
    objects: dict = {}
    for position, item in enumerate(data["annotations"]):
        where = f"{path}: annotations[{position}]"
        item = _coco_fields(item, where, ("image_id", "category_id", "bbox"))
        if not all(isinstance(item[key], (int, str)) for key in ("image_id", "category_id")):
            raise ValueError(f"{where}: image_id and category_id must be numbers")
        if item["image_id"] not in images:
            raise ValueError(f"{where}: image_id {item['image_id']!r} is not in 'images'; add the image or drop it")
        if item["category_id"] not in label_of:
            raise ValueError(f"{where}: category_id {item['category_id']!r} is not in 'categories'")
        bbox = item["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox {str(bbox)[:60]} must be [x, y, width, height]")
        x, y, width, height = (_number(v, where, "bbox value") for v in bbox)
        if width <= 0 or height <= 0:
            raise ValueError(f"{where}: bbox {bbox} has a width or height <= 0; fix or drop the annotation")
        objects.setdefault(item["image_id"], []).append((item["category_id"], _sized_box(x, y, width, height)))
    first = next(iter(images.values()), ({"file_name": None}, 0))[0]["file_name"]
    image_root = _coco_image_root(root, path, split, None if first is None else str(first))
    skipped, records = _Skipped(), []
    for image_key, (item, position) in images.items():
        where = f"{path}: images[{position}]"
        chosen = _one_class(objects.get(image_key, []), where, skipped)
        if chosen is None:
            continue
        file = image_root / str(item["file_name"])
        width, height = item.get("width"), item.get("height")
        size = (int(width), int(height)) if isinstance(width, (int, float)) and isinstance(height, (int, float)) \
            and width > 0 and height > 0 else None
        records.append(Record(image_id=_relative_id(file, root), label=label_of[chosen[0]],
                              boxes=np.asarray(chosen[1], np.float32).reshape(-1, 4), path=file, size=size,
                              source=where, size_source=where))
    return _finish(records, [categories[c] for c in order], image_size, train, "coco", split, root, skipped,
                   str(path), check_files_exist, need_images,
                   f"fix: the file_name entries of {path} are looked up in {image_root}")


# ----------------------------------------------------------------------------- YOLO
def _yolo_names(folder: Path) -> tuple[list[str], Path]:
    """The class names and the file that lists them."""
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        path = folder / name
        if path.is_file():
            return _yaml_names(path), path
    for name in ("classes.txt", "obj.names"):
        if (folder / name).is_file():
            return [text for _, text in read_lines(folder / name)], folder / name
    raise FileNotFoundError(f"no data.yaml (with names:) or classes.txt in {folder}; YOLO labels are class numbers: "
                            "list the class names there")


def _yaml_names(path: Path) -> list[str]:
    import yaml

    if path.stat().st_size > MAX_YAML_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is too large for a data.yaml; keep the names there")
    try:
        data = yaml.safe_load(checked(path).read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise decode_error(path, error) from None
    except yaml.YAMLError as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        raise ValueError(f"{path}:{'' if line is None else line + 1}: not valid YAML ({str(error).splitlines()[0]})") \
            from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        keys = sorted(names, key=lambda k: (not isinstance(k, int), k if isinstance(k, int) else 0))
        if keys != list(range(len(keys))):
            raise ValueError(f"{path}: names keys {list(names)[:5]} must be 0, 1, ... without gaps")
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int, float)) for n in names):
        raise ValueError(f"{path}: 'names' must list the class names (names: [cat, dog] or names: {{0: cat}})")
    count = data.get("nc")
    if count is not None and count != len(names):
        raise ValueError(f"{path}: nc is {count} but names lists {len(names)} classes; make them agree")
    return [str(n) for n in names]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _yolo_images(root: Path, split: str, split_seed: int) -> list[tuple[Path, Path]]:
    """(image, label file) of the split's images."""
    for name in SPLIT_ALIASES[split]:
        for images in (root / "images" / name, root / name / "images"):
            if images.is_dir():
                labels = images.parent.parent / "labels" / name if images.parent.name == "images" \
                    else images.parent / "labels"
                return [(path, (labels / path.relative_to(images)).with_suffix(".txt"))
                        for path in _image_files(images)]
    split_folders = [root / "images" / s for names in SPLIT_ALIASES.values() for s in names] + \
                    [root / s / "images" for names in SPLIT_ALIASES.values() for s in names]
    if any(folder.is_dir() for folder in split_folders) or not (root / "images").is_dir():
        raise MissingSplit(f"no YOLO image folder for split {split!r}: looked for {root / 'images' / split} and "
                           f"{root / split / 'images'}")
    images = root / "images"
    return [(path, (root / "labels" / path.relative_to(images)).with_suffix(".txt")) for path in _image_files(images)
            if hash_split(path.relative_to(images).as_posix(), seed=split_seed) == split]


def _yolo_objects(path: Path, size: tuple[int, int], num_classes: int, names_file: str) -> list[tuple[int, list]]:
    width, height = size
    objects = []
    for number, text in read_lines(path):
        where = f"{path}:{number}"
        fields = text.split()
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise ValueError(f"{where}: expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...', a polygon), "
                             f"got {len(fields)} fields")
        label = _number(fields[0], where, "class")
        if label != int(label) or not 0 <= label < num_classes:
            raise ValueError(f"{where}: class {fields[0]} is not one of the {num_classes} classes of {names_file} "
                             f"(0..{num_classes - 1})")
        values = [_number(v, where, "coordinate") for v in fields[1:]]
        if len(fields) == 5:
            cx, cy, w, h = values
            if w <= 0 or h <= 0:
                raise ValueError(f"{where}: box width/height {w:g}x{h:g} must be positive")
            box = _sized_box((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
        else:
            xs, ys = np.array(values[0::2]) * width, np.array(values[1::2]) * height
            box = [float(xs.min()), float(ys.min()), max(float(xs.min()), float(xs.max()) - 1),
                   max(float(ys.min()), float(ys.max()) - 1)]
        objects.append((int(label), box))
    return objects


@register_format("yolo")
def build_yolo(split, data_root, metadata_root, image_size, train, split_seed: int = 0,
               check_files_exist: bool = True, need_images: bool = True) -> WSOLDataset:
    root = data_root
    names_folder = metadata_root or root
    class_names, names_file = _yolo_names(names_folder)
    pairs = _yolo_images(root, split, split_seed)
    skipped, records = _Skipped(), []
    for path, labels in pairs:
        where = str(labels)
        if not labels.is_file():
            skipped.add("no_object", f"{path} (no {labels.name})")
            continue
        checked(path)
        try:
            size = header_size(path)
        except BadImageError as error:
            skipped.add("unreadable", str(error))
            continue
        chosen = _one_class(_yolo_objects(labels, size, len(class_names), str(names_file)), where, skipped)
        if chosen is None:
            continue
        records.append(Record(image_id=_relative_id(path, root), label=chosen[0],
                              boxes=np.asarray(chosen[1], np.float32).reshape(-1, 4), path=path, source=where))
    return _finish(records, class_names, image_size, train, "yolo", split, root, skipped, str(root),
                   check_files_exist, need_images, f"fix: --data-root {root} must hold the images and labels")



# ----------------------------------------------------------------------------- conversion
def _number_text(value) -> str:
    """The shortest text that reads back to the same float32 (what the loaders keep)."""
    return np.format_float_positional(np.float32(value), trim="-")


def convert_to_wsol(format: str, data_root, out, metadata_root=None, splits=SPLITS, images: str = "copy") -> dict:
    """Write a VOC, COCO or YOLO dataset in the wsolevaluation layout, which ``--format wsol
    --data-root OUT`` reads back as the same samples.

    Args:
        format: "voc", "coco" or "yolo".
        data_root: the dataset's folder (as ``--data-root``).
        out: the folder to write: ``images/<image id>`` and ``metadata/<split>/{image_ids,
            class_labels,image_sizes,localization}.txt`` with ``metadata/class_names.txt``.
        metadata_root: as ``--metadata-root`` of the format, or None.
        splits: the splits to write; a split the dataset lacks is left out (and said so).
        images: "copy" the images under ``out/images``, "link" them (symbolic links), or "none"
            (metadata only: then read with ``--data-root`` the original folder and
            ``--metadata-root OUT/metadata``).

    Returns:
        ``{"out", "classes", "splits": {split: {"images", "boxes", "skipped"}}, "missing": [splits]}``.
    """
    if format not in DETECTION_FORMATS:
        raise ValueError(f"format {format!r} cannot be converted; choose one of {', '.join(DETECTION_FORMATS)}")
    if images not in ("copy", "link", "none"):
        raise ValueError(f"images={images!r}; choose copy, link or none")
    out = Path(out).expanduser()
    built, missing = {}, []
    for split in splits:
        try:
            built[split] = build_dataset(format, split, data_root=data_root, metadata_root=metadata_root,
                                         need_images=images != "none")
        except MissingSplit:
            missing.append(split)
    if not built:
        raise FileNotFoundError(f"{data_root} has none of the splits {list(splits)} in the {format} layout "
                                "(docs/datasets.md)")
    names = next(iter(built.values())).class_names
    for split, dataset in built.items():
        if dataset.class_names != names:
            raise ValueError(f"split {split!r} has classes {dataset.class_names[:5]}... but another split "
                             f"{names[:5]}...; every split must list the same classes in the same order")
    for dataset in built.values():
        for record in dataset.records:
            if any(sign in record.image_id for sign in (",", "\n", "\r")):
                raise ValueError(f"{record.source}: image path {record.image_id!r} holds a comma or line break, "
                                 "which the wsolevaluation lists cannot hold; rename the file")
    metadata = out / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    (metadata / "class_names.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    summary = {"out": str(out), "classes": len(names), "splits": {}, "missing": missing}
    for split, dataset in built.items():
        folder = metadata / split
        folder.mkdir(exist_ok=True)
        ids, labels, sizes, boxes = [], [], [], []
        for record in dataset.records:
            ids.append(f"{record.image_id}\n")
            labels.append(f"{record.image_id},{record.label}\n")
            size = record.size
            if size is None and record.path is not None and Path(record.path).is_file():
                size = header_size(record.path)
            if size is not None:
                sizes.append(f"{record.image_id},{size[0]},{size[1]}\n")
            boxes += [f"{record.image_id}," + ",".join(_number_text(v) for v in box) + "\n" for box in record.boxes]
            if images != "none":
                _place_image(Path(record.path), out / "images" / record.image_id, images)
        for name, lines in (("image_ids", ids), ("class_labels", labels), ("image_sizes", sizes),
                            ("localization", boxes)):
            (folder / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
        summary["splits"][split] = {"images": len(ids), "boxes": len(boxes),
                                    "skipped": getattr(dataset, "skipped_annotations", {})}
    return summary


def _place_image(source: Path, target: Path, how: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if how == "link":
        target.symlink_to(source.resolve())
    else:
        shutil.copy2(source, target)
