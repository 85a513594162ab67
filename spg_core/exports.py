"""An evaluation's results in the formats other tools read: the per-image rows as CSV, the boxes as
COCO detections, the maps as wsolevaluation score maps. What ``python -m spg_core evaluate`` /
``evaluate-maps`` write (``--export-coco``, ``--export-maps``; per_image.csv always) and what
the app can offer as downloads.

* **Rows** (:func:`write_rows_csv`): one line per image: image_id, label, prediction, IoU at τ,
  the predicted and the best-matching GT box (inclusive, on the protocol's scoring grid), the
  failure type (:func:`spg_core.metrics.failure_type`).
* **COCO detections** (:func:`coco_detections`): ``[{"image_id", "category_id", "bbox": [x, y,
  w, h], "score"}]``, one box per image, in the original image's pixels. ``image_id`` is the
  image's 1-based position in the split's list (the line of ``<split>/image_ids.txt`` for the
  wsol format, the dataset's order for the others); ``category_id`` the 0-based class label
  (the map is the GT class's, so the box is that class's); ``score`` 1.0 (one box per image,
  no ranking). The project's boxes are inclusive pixel coordinates, so ``w = x1 - x0 + 1``;
  a box on the protocol's grid (224×224 in wsolevaluation's) is scaled to the image with the
  project's span rule (:func:`spg_core.boxes.resize_boxes`).
* **Score maps** (:func:`map_path`, :class:`MapWriter`): ``<folder>/<image_id>.npy``, the
  image id's folders kept (``val/n01/x.JPEG`` → ``<folder>/val/n01/x.JPEG.npy``), each map
  float64 224×224, bicubic-resized and min-max normalised: what wsolevaluation's
  ``inference.py`` saves and its ``evaluate_wsol`` reads, and what ``evaluate-maps`` scores to
  the same wsolevaluation numbers as the run that wrote them.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = ["ROW_COLUMNS", "rows_csv_text", "write_rows_csv", "coco_detections", "coco_json_text", "write_coco_detections",
           "map_path", "MapWriter", "wsol_map_npy"]

ROW_COLUMNS = ("image_id", "label", "prediction", "iou", "pred_x0", "pred_y0", "pred_x1", "pred_y1",
               "gt_x0", "gt_y0", "gt_x1", "gt_y1", "failure")


# ----------------------------------------------------------------------------- per-image rows
def rows_csv_text(rows: Iterable[dict]) -> str:
    """The evaluation rows (``spg_core.evaluate`` ``rows``) as CSV text with ``ROW_COLUMNS``."""
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=ROW_COLUMNS)
    writer.writeheader()
    for row in rows:
        flat = {key: row.get(key) for key in ("image_id", "label", "prediction", "iou", "failure")}
        flat.update({f"pred_{k}": v for k, v in zip(("x0", "y0", "x1", "y1"), row["pred_box"])})
        flat.update({f"gt_{k}": v for k, v in zip(("x0", "y0", "x1", "y1"), row["gt_box"])})
        writer.writerow(flat)
    return handle.getvalue()


def write_rows_csv(rows: Iterable[dict], path) -> Path:
    """:func:`rows_csv_text` written to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(rows_csv_text(rows))
    return path


# ----------------------------------------------------------------------------- COCO detections
def coco_bbox(box, grid_size, image_size) -> list[float]:
    """An inclusive box on a ``grid_size`` = (w, h) grid as COCO's ``[x, y, w, h]`` in the pixels
    of an image of ``image_size``: ``w = x1 - x0 + 1`` (inclusive), scaled by the span rule."""
    from spg_core.boxes import resize_boxes

    x0, y0, x1, y1 = resize_boxes([box], tuple(grid_size), tuple(image_size), rule="span")[0]
    return [round(float(v), 2) for v in (x0, y0, x1 - x0 + 1, y1 - y0 + 1)]


def coco_detections(rows: Iterable[dict], image_ids: Sequence[str]) -> list[dict]:
    """The rows' boxes as COCO detection results (see the module docstring for the fields);
    ``image_ids``: the split's image ids in order, which number the images from 1."""
    numbers = {str(image_id): position for position, image_id in enumerate(image_ids, 1)}
    detections = []
    for row in rows:
        image_id = str(row["image_id"])
        if image_id not in numbers:
            raise ValueError(f"row of image {image_id!r} is not in the split's image list; pass the ids of the "
                             "split the rows were evaluated on")
        if row.get("label") is None:
            raise ValueError(f"row of image {image_id!r} has no label: a COCO detection needs its class "
                             "(give the ground truth with labels)")
        detections.append({"image_id": numbers[image_id], "category_id": int(row["label"]),
                           "bbox": coco_bbox(row["pred_box"], row["grid_size"], row["image_size"]), "score": 1.0})
    return detections


def coco_json_text(rows: Iterable[dict], image_ids: Sequence[str]) -> str:
    """:func:`coco_detections` as a JSON list."""
    return json.dumps(coco_detections(rows, image_ids)) + "\n"


def write_coco_detections(rows: Iterable[dict], image_ids: Sequence[str], path) -> Path:
    """Write :func:`coco_json_text` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(coco_json_text(rows, image_ids), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- score maps
def map_path(folder, image_id: str) -> Path:
    """``<folder>/<image_id>.npy``, wsolevaluation's score-map layout. An image id that would
    leave the folder (absolute, or with ``..``) is refused."""
    relative = PurePosixPath(str(image_id).replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"image id {image_id!r} cannot name a map file inside {folder}: it must be a relative path "
                         "without '..'")
    return Path(folder).joinpath(*relative.parts[:-1], f"{relative.parts[-1]}.npy")


class MapWriter:
    """Callable ``(image_id, score_map)``: saves the map as wsolevaluation does (float64
    224×224, bicubic, min-max; :func:`spg_core.evaluate.prepare_wsol_map`) at
    :func:`map_path`. ``count`` says how many it wrote."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.count = 0

    def __call__(self, image_id: str, score_map) -> Path:
        path = map_path(self.folder, image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wsol_map_npy(score_map))
        self.count += 1
        return path


def wsol_map_npy(score_map) -> bytes:
    """One map as wsolevaluation saves it (float64 224×224, bicubic, min-max;
    :func:`spg_core.evaluate.prepare_wsol_map`), as the bytes of a .npy file."""
    from spg_core.evaluate import prepare_wsol_map

    buffer = io.BytesIO()
    np.save(buffer, prepare_wsol_map(score_map))
    return buffer.getvalue()
