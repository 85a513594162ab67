"""Detection-format datasets (spg_core/data/detection.py): Pascal VOC XML, COCO JSON and YOLO text
written here in their real layouts, read with one class per image, converted to the
wsolevaluation layout and read back, and a VOC folder trained and evaluated from the CLI."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spg_core.cli import main
from spg_core.data import DataWarning, build_dataset
from spg_core.data.detection import MissingSplit, convert_to_wsol
from spg_core.data.settings import FORMATS, DataSettings

# (stem, (w, h), [(class, (x0, y0, x1, y1) 0-based inclusive)]) per split; "mixed" has two classes,
# "empty" no object: both are skipped.
SCENES = {
    "train": [("a", (40, 30), [("dog", (2, 3, 20, 25))]),
              ("b", (36, 36), [("cat", (0, 0, 9, 9)), ("cat", (20, 18, 35, 35))]),
              ("mixed", (30, 40), [("dog", (1, 1, 10, 10)), ("cat", (12, 12, 20, 30))]),
              ("empty", (32, 32), [])],
    "val": [("e", (44, 28), [("dog", (10, 4, 30, 20))]), ("f", (30, 30), [("cat", (5, 5, 24, 24))])],
    "test": [("g", (34, 26), [("cat", (3, 2, 30, 21))]), ("h", (28, 36), [("dog", (0, 6, 27, 30))])],
}
COLOURS = {"dog": (200, 60, 40), "cat": (40, 90, 210)}


def _png(path: Path, size, objects) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (128, 128, 128))
    for name, (x0, y0, x1, y1) in objects:
        image.paste(COLOURS[name], (x0, y0, x1 + 1, y1 + 1))
    image.save(path)


def write_voc(root: Path, scenes=SCENES) -> Path:
    """A VOC folder: Annotations/*.xml (1-based boxes), JPEGImages/*.png, ImageSets/Main/<split>.txt."""
    for split, images in scenes.items():
        lines = []
        for stem, size, objects in images:
            _png(root / "JPEGImages" / f"{stem}.png", size, objects)
            xml = "".join(
                f"\n  <object>\n    <name>{name}</name>\n    <difficult>0</difficult>\n    <bndbox><xmin>{x0 + 1}</xmin>"
                f"<ymin>{y0 + 1}</ymin><xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox>\n  </object>"
                for name, (x0, y0, x1, y1) in objects)
            (root / "Annotations").mkdir(parents=True, exist_ok=True)
            (root / "Annotations" / f"{stem}.xml").write_text(
                f"<annotation>\n  <folder>VOC</folder>\n  <filename>{stem}.png</filename>\n  <size><width>{size[0]}"
                f"</width><height>{size[1]}</height><depth>3</depth></size>{xml}\n</annotation>\n")
            lines.append(stem)
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in lines))
    return root


COCO_IDS = {"dog": 1, "cat": 7}  # COCO's category ids need not be contiguous


def write_coco(root: Path) -> Path:
    """A COCO folder: annotations/instances_<split>.json (bbox x, y, w, h) and <split>/*.png."""
    (root / "annotations").mkdir(parents=True)
    image_id = 100
    for split, images in SCENES.items():
        data = {"info": {}, "categories": [{"id": i, "name": n, "supercategory": "animal"} for n, i in COCO_IDS.items()],
                "images": [], "annotations": []}
        for stem, size, objects in images:
            image_id += 1
            _png(root / split / f"{stem}.png", size, objects)
            data["images"].append({"id": image_id, "file_name": f"{stem}.png", "width": size[0], "height": size[1]})
            for name, (x0, y0, x1, y1) in objects:
                data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": image_id,
                                            "category_id": COCO_IDS[name], "iscrowd": 0,
                                            "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1]})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


YOLO_NAMES = ["dog", "cat"]


def write_yolo(root: Path) -> Path:
    """A YOLO folder: data.yaml, images/<split>/*.png, labels/<split>/*.txt (class cx cy w h, normalised)."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\ntest: images/test\n"
                                    f"nc: 2\nnames: {YOLO_NAMES}\n")
    for split, images in SCENES.items():
        for stem, (width, height), objects in images:
            _png(root / "images" / split / f"{stem}.png", (width, height), objects)
            lines = [f"{YOLO_NAMES.index(name)} {(x0 + x1 + 1) / 2 / width:.6f} {(y0 + y1 + 1) / 2 / height:.6f} "
                     f"{(x1 - x0 + 1) / width:.6f} {(y1 - y0 + 1) / height:.6f}\n"
                     for name, (x0, y0, x1, y1) in objects]
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            if stem != "empty":  # an image without a label file is an image without objects
                (root / "labels" / split / f"{stem}.txt").write_text("".join(lines))
    return root


WRITERS = {"voc": (write_voc, ["cat", "dog"], "JPEGImages/{}.png"),
           "coco": (write_coco, ["dog", "cat"], "{split}/{}.png"),
           "yolo": (write_yolo, YOLO_NAMES, "images/{split}/{}.png")}


def _load(fmt: str, root: Path, split: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return build_dataset(fmt, split, data_root=root)


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_each_format_reads_classes_and_inclusive_boxes(tmp_path, fmt):
    writer, classes, pattern = WRITERS[fmt]
    root = writer(tmp_path / fmt)
    for split, images in SCENES.items():
        dataset = _load(fmt, root, split)
        assert dataset.class_names == classes and dataset.format == fmt and dataset.split == split
        expected = [(stem, objects) for stem, _, objects in images if len({n for n, _ in objects}) == 1]
        assert [r.image_id for r in dataset.records] == [pattern.format(stem, split=split) for stem, _ in expected]
        for record, (stem, objects) in zip(dataset.records, expected):
            assert record.label == classes.index(objects[0][0])
            # YOLO's fractions are written with 6 decimals: a thousandth of a pixel off at these sizes.
            np.testing.assert_allclose(record.boxes, [box for _, box in objects], atol=1e-3 if fmt == "yolo" else 0)
            sample = dataset.load_sample(dataset.records.index(record))
            assert sample.size == next(size for s, size, _ in images if s == stem)


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_images_with_several_classes_or_none_are_skipped_and_counted(tmp_path, fmt):
    root = WRITERS[fmt][0](tmp_path / fmt)
    with pytest.warns(DataWarning, match=r"skipped 1 image\(s\) whose objects carry several classes .*; "
                                         r"1 image\(s\) without any object"):
        dataset = build_dataset(fmt, "train", data_root=root)
    assert dataset.skipped_annotations == {"several_classes": 1, "no_object": 1, "unreadable": 0}
    assert len(dataset) == 2


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_conversion_round_trip_reads_back_the_same_samples(tmp_path, fmt):
    root = WRITERS[fmt][0](tmp_path / fmt)
    out = tmp_path / "wsol"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        summary = convert_to_wsol(fmt, root, out)
    assert summary["missing"] == [] and summary["splits"]["train"]["skipped"]["several_classes"] == 1
    assert (out / "metadata" / "class_names.txt").read_text().split() == WRITERS[fmt][1]
    for split in SCENES:
        original, converted = _load(fmt, root, split), build_dataset("wsol", split, data_root=out)
        assert converted.class_names == original.class_names
        assert [(r.image_id, r.label) for r in converted.records] == [(r.image_id, r.label) for r in original.records]
        for index in range(len(original)):
            a, b = original.load_sample(index), converted.load_sample(index)
            np.testing.assert_array_equal(a.boxes, b.boxes)
            assert a.size == b.size and a.label == b.label
            np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))


def test_convert_dataset_command_links_images_and_leaves_out_missing_splits(tmp_path, capsys):
    scenes = {split: SCENES[split] for split in ("train", "val")}  # VOC2012 publishes no test list
    root = write_voc(tmp_path / "VOCdevkit" / "VOC2012", scenes)
    out = tmp_path / "wsol"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        code = main(["convert-dataset", "--format", "voc", "--data-root", str(tmp_path / "VOCdevkit"),
                     "--out", str(out), "--images", "link"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["missing"] == ["test"] and summary["splits"]["val"] == {
        "images": 2, "boxes": 2, "skipped": {"several_classes": 0, "no_object": 0, "unreadable": 0}}
    assert (out / "images" / "JPEGImages" / "e.png").is_symlink()
    assert len(build_dataset("wsol", "val", data_root=out)) == 2
    with pytest.raises(MissingSplit, match="test.txt"):
        build_dataset("voc", "test", data_root=root)
    with pytest.raises(SystemExit) as usage:  # a usage error: one line, exit status 2
        main(["convert-dataset", "--format", "cub", "--data-root", str(root), "--out", str(out)])
    assert usage.value.code == 2 and "invalid choice: 'cub'" in capsys.readouterr().err


def test_bad_annotations_name_the_file_line_and_the_fix(tmp_path):
    voc = write_voc(tmp_path / "voc")
    xml = voc / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<xmax>21</xmax>", "<xmax>1</xmax>"))
    with pytest.raises(ValueError, match=rf"{xml}:5: box of 'dog' has xmax < xmin"):
        _load("voc", voc, "train")
    yolo = write_yolo(tmp_path / "yolo")
    label = yolo / "labels" / "val" / "e.txt"
    label.write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=rf"{label}:1: class 5 is not one of the 2 classes of .*data.yaml"):
        _load("yolo", yolo, "val")
    coco = write_coco(tmp_path / "coco")
    path = coco / "annotations" / "instances_test.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"instances_test.json: annotations\[0\]: category_id 3 is not in"):
        _load("coco", coco, "test")


def test_flat_folders_split_by_a_seeded_hash(tmp_path):
    """labelImg's flat folder (XML beside the images) and YOLO without split folders: 80/10/10 by id."""
    root = tmp_path / "flat"
    for index in range(30):
        _png(root / f"img{index}.png", (20, 20), [("dog", (2, 2, 10, 10))])
        (root / f"img{index}.xml").write_text(f"<annotation><filename>img{index}.png</filename><object><name>dog"
                                              "</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>11</xmax><ymax>11"
                                              "</ymax></bndbox></object></annotation>")
    ids = {split: {r.image_id for r in _load("voc", root, split).records} for split in ("train", "val", "test")}
    assert sum(len(v) for v in ids.values()) == 30 and not ids["train"] & (ids["val"] | ids["test"])
    assert ids == {split: {r.image_id for r in _load("voc", root, split).records} for split in ids}


def test_the_formats_are_data_flags_of_train_evaluate_and_the_app(tmp_path):
    assert {"voc", "coco", "yolo"} <= set(FORMATS)
    root = write_yolo(tmp_path / "yolo")
    settings = DataSettings.from_flags(format="yolo", data_root=str(root))
    assert settings.image_size == 224 and len(settings.dataset("test")) == 2


def test_a_voc_folder_trains_and_evaluates_with_the_teaching_recipe(tmp_path, capsys):
    """The recipe with only the data flags changed (and one epoch): train, then evaluate with the baselines."""
    scenes = {"train": [(f"t{k}", (48, 40), [(("dog", "cat")[k % 2], (4 + k, 6, 30 + k, 33))]) for k in range(8)],
              "val": [(f"v{k}", (40, 48), [(("dog", "cat")[k % 2], (3, 5, 33, 40))]) for k in range(4)],
              "test": [(f"s{k}", (44, 44), [(("dog", "cat")[k % 2], (8, 8, 36, 36))]) for k in range(4)]}
    root = write_voc(tmp_path / "VOC", scenes)
    recipe = str(Path(__file__).resolve().parents[1] / "configs" / "teaching.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", recipe, "--format", "voc", "--data-root", str(root), "--image-size", "64",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", str(run)]) == 0, \
        capsys.readouterr().err
    code = main(["evaluate", "--run", str(run), "--split", "test", "--threshold-split", "val", "--device", "cpu",
                 "--out", str(tmp_path / "eval")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_images"] == 4 and "gt_known_loc" in metrics
    assert set(metrics["baselines"]) == {"full_box", "center_box", "center_gaussian"}
    assert metrics["baselines"]["center_box"]["fraction_source"] == "best GT-known Loc of held-out split 'val'"


@pytest.mark.filterwarnings("ignore::spg_core.data.DataWarning")  # the skipped images: the sidebar says them
def test_the_app_opens_a_voc_folder_as_another_dataset(tmp_path):
    """The sidebar's "Another dataset…" with --format voc: its images, the skipped count, the baselines."""
    pytest.importorskip("streamlit")
    from app_runs import write_tiny_run
    from test_app import start

    run = write_tiny_run(tmp_path / "tiny", "spg", num_classes=2)
    root = write_voc(tmp_path / "VOC")
    at = start(run, page="dataset", data_source="custom", data_format="voc", data_root=str(root), data_split="train",
               data_image_size=64, eval_n=2)
    captions = [element.value for element in at.sidebar.caption]
    assert "voc · train · 2 images" in captions
    assert any("Skipped: 1 image(s) with several classes, 1 without objects" in text for text in captions)
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(frame.value for frame in at.dataframe if "MaxBoxAccV2" in frame.value.columns)
    assert list(table["images"]) == [2] * 4 and table.loc[3, "model"] == "baseline · centred Gaussian"


def test_roboflow_exports_read_as_the_same_samples(tmp_path):
    """Roboflow's COCO (<split>/_annotations.coco.json) and YOLO (<split>/images, <split>/labels) layouts,
    "valid" for val: the same classes, labels and boxes as the canonical layouts."""
    import shutil

    coco, yolo = write_coco(tmp_path / "coco"), write_yolo(tmp_path / "yolo")
    flow_coco, flow_yolo = tmp_path / "flow-coco", tmp_path / "flow-yolo"
    flow_yolo.mkdir()
    shutil.copy(yolo / "data.yaml", flow_yolo / "data.yaml")
    for split, name in (("train", "train"), ("val", "valid"), ("test", "test")):
        shutil.copytree(coco / split, flow_coco / name)
        shutil.copy(coco / "annotations" / f"instances_{split}.json", flow_coco / name / "_annotations.coco.json")
        for kind in ("images", "labels"):
            shutil.copytree(yolo / kind / split, flow_yolo / name / kind)
    for fmt, canonical, flow in (("coco", coco, flow_coco), ("yolo", yolo, flow_yolo)):
        for split in SCENES:
            a, b = _load(fmt, canonical, split), _load(fmt, flow, split)
            assert a.class_names == b.class_names and len(a) == len(b)
            for x, y in zip(a.records, b.records):
                assert x.label == y.label and x.path.name == y.path.name
                np.testing.assert_array_equal(x.boxes, y.boxes)
