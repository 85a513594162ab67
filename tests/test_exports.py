"""Exports: COCO detections, wsolevaluation score maps, and the round trip evaluate --export-maps ->
evaluate-maps on a tiny run."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from spg_core import exports as X


def test_map_path_keeps_the_image_id_folders_and_stays_inside():
    assert X.map_path("maps", "val/n01/x.JPEG").as_posix() == "maps/val/n01/x.JPEG.npy"
    assert X.map_path("maps", "a.png").as_posix() == "maps/a.png.npy"
    for bad in ("../a.png", "/etc/a.png", "val/../../a.png"):
        with pytest.raises(ValueError, match="relative path"):
            X.map_path("maps", bad)


def test_coco_bbox_is_inclusive_width_in_image_pixels():
    assert X.coco_bbox([3, 4, 10, 20], (50, 40), (50, 40)) == [3, 4, 8, 17]  # w = x1 - x0 + 1
    assert X.coco_bbox([0, 0, 223, 111], (224, 224), (448, 112)) == [0, 0, 448, 56]  # the whole width, half height


def test_coco_detections_number_images_by_their_place_in_the_split():
    rows = [{"image_id": "b.jpg", "label": 2, "pred_box": [1, 1, 4, 4], "grid_size": [8, 8], "image_size": [8, 8]}]
    assert X.coco_detections(rows, ["a.jpg", "b.jpg"]) == [
        {"image_id": 2, "category_id": 2, "bbox": [1.0, 1.0, 4.0, 4.0], "score": 1.0}]
    with pytest.raises(ValueError, match="not in the split"):
        X.coco_detections(rows, ["a.jpg"])
    with pytest.raises(ValueError, match="no label"):
        X.coco_detections([{**rows[0], "label": None}], ["b.jpg"])


def test_the_app_downloads_are_the_files_the_cli_writes(tmp_path):
    rows = [{"image_id": "a/1.png", "label": 2, "prediction": 2, "iou": 0.61, "failure": "ok",
             "pred_box": [1, 2, 10, 20], "gt_box": [0, 0, 11, 21], "grid_size": [224, 224], "image_size": [448, 224]}]
    assert X.rows_csv_text(rows).encode() == X.write_rows_csv(rows, tmp_path / "rows.csv").read_bytes()
    assert list(csv.DictReader(X.rows_csv_text(rows).splitlines()))[0]["pred_x1"] == "10"
    assert json.loads(X.coco_json_text(rows, ["a/1.png"])) == X.coco_detections(rows, ["a/1.png"])
    score_map = np.random.default_rng(0).random((12, 12))
    written = X.MapWriter(tmp_path / "maps")("a/1.png", score_map)
    assert written == tmp_path / "maps" / "a" / "1.png.npy"
    assert X.wsol_map_npy(score_map) == written.read_bytes()
    loaded = np.load(written)
    assert loaded.shape == (224, 224) and loaded.dtype == np.float64 and loaded.min() == 0.0 and loaded.max() == 1.0


def test_exported_maps_score_to_the_runs_wsolevaluation_numbers(tmp_path, capsys):
    """evaluate --export-maps/--export-coco on a tiny run; evaluate-maps on those maps, against the
    same benchmark written in the wsol layout without its images, gives the same numbers."""
    from app_runs import IMAGES, write_tiny_run

    from spg_core.cli import main
    from spg_core.config import TrainConfig, load_config_file
    from spg_core.data import SyntheticConfig, write_wsol

    run = write_tiny_run(tmp_path / "run", num_val=4)
    code = main(["evaluate", "--run", str(run), "--protocol", "wsolevaluation", "--device", "cpu",
                 "--out", str(tmp_path / "eval"), "--export-maps", str(tmp_path / "maps"),
                 "--export-coco", str(tmp_path / "boxes.json")])
    assert code == 0, capsys.readouterr().err
    ran = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    exported = sorted(p.relative_to(tmp_path / "maps").as_posix() for p in (tmp_path / "maps").rglob("*.npy"))
    assert exported == [f"test/{index:05d}.png.npy" for index in range(IMAGES)]  # the reported split only
    first = np.load(tmp_path / "maps" / exported[0])
    assert first.shape == (224, 224) and first.dtype == np.float64 and first.min() == 0.0 and first.max() == 1.0

    config = TrainConfig.from_dict(load_config_file(run / "config.yaml"))  # the run's benchmark, written out
    root = write_wsol(tmp_path / "data", SyntheticConfig(image_size=config.image_size, **config.synthetic),
                      splits=("test",), progress=False)
    shutil.rmtree(root / "images")
    code = main(["evaluate-maps", "--maps", str(tmp_path / "maps"), "--format", "wsol", "--data-root", str(root),
                 "--split", "test", "--out", str(tmp_path / "maps_eval"),
                 "--export-coco", str(tmp_path / "maps_boxes.json")])
    assert code == 0, capsys.readouterr().err
    scored = json.loads((tmp_path / "maps_eval" / "metrics.json").read_text())
    names = ("maxboxacc", "maxboxacc_v2", "maxboxacc_v2_per_iou", "pxap")
    assert {k: scored[k] for k in names} == {k: ran[k] for k in names}

    # COCO: one box per image, numbered by the image's place in the split, in the image's 64 px.
    detections = json.loads((tmp_path / "boxes.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "eval" / "per_image.csv")))
    assert [d["image_id"] for d in detections] == list(range(1, IMAGES + 1))
    for detection, row in zip(detections, rows):
        assert detection["category_id"] == int(row["label"]) and detection["score"] == 1.0
        box = [int(row[f"pred_{k}"]) for k in ("x0", "y0", "x1", "y1")]  # on the 224 grid
        assert detection["bbox"] == X.coco_bbox(box, (224, 224), (64, 64))
        x, y, w, h = detection["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 64 and y + h <= 64
    assert len(json.loads((tmp_path / "maps_boxes.json").read_text())) == IMAGES
