"""Every on-disk format parsed exactly from tiny trees written here, plus the shared transform."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spg_core.data import WSOLDataset, build_dataset, collate, denormalize
from spg_core.data.folder import hash_split
from spg_core.data.transforms import SampleTransform, flip_boxes, scale_boxes


def write_image(path: Path, size=(40, 30), colour=(90, 120, 150)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_text(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def quiet_sample(dataset, index):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean tree must load without any warning
        return dataset.load_sample(index)


# ----------------------------------------------------------------------------- CUB
def make_cub(root: Path, with_classes: bool = True) -> Path:
    cub = root / "CUB_200_2011"
    rows = [  # id, path, class (1-based), is_train, box x y w h
        (1, "001.Albatross/a1.jpg", 1, 1, "2.0 3.0 10.0 5.0"),
        (2, "001.Albatross/a2.jpg", 1, 1, "0.0 0.0 40.0 30.0"),
        (3, "001.Albatross/a3.jpg", 1, 0, "5.5 6.0 4.0 4.0"),
        (4, "002.Auklet/b1.jpg", 2, 1, "1.0 1.0 1.0 1.0"),
        (5, "002.Auklet/b2.jpg", 2, 1, "10.0 2.0 20.0 20.0"),
        (6, "002.Auklet/b3.jpg", 2, 1, "3.0 4.0 5.0 6.0"),
        (7, "002.Auklet/b4.jpg", 2, 0, "0.0 0.0 8.0 8.0"),
    ]
    for _, path, *_ in rows:
        write_image(cub / "images" / path)
    write_text(cub / "images.txt", [f"{i} {p}" for i, p, *_ in rows])
    write_text(cub / "image_class_labels.txt", [f"{i} {c}" for i, _, c, *_ in rows])
    write_text(cub / "train_test_split.txt", [f"{i} {t}" for i, _, _, t, _ in rows])
    write_text(cub / "bounding_boxes.txt", [f"{i} {b}" for i, *_, b in rows])
    if with_classes:
        write_text(cub / "classes.txt", ["1 001.Albatross", "2 002.Auklet"])
    return cub


def test_cub_parses_labels_boxes_and_splits(tmp_path):
    cub = make_cub(tmp_path)
    test = build_dataset("cub", "test", data_root=cub, image_size=32)
    assert isinstance(test, WSOLDataset)
    assert [r.image_id for r in test.records] == ["001.Albatross/a3.jpg", "002.Auklet/b4.jpg"]
    assert [r.label for r in test.records] == [0, 1]  # 1-based file -> 0-based
    assert test.class_names == ["001.Albatross", "002.Auklet"] and test.num_classes == 2
    # x, y, w, h -> inclusive x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
    np.testing.assert_allclose(test.records[0].boxes, [[5.5, 6.0, 8.5, 9.0]])
    sample = quiet_sample(test, 1)
    np.testing.assert_allclose(sample.boxes, [[0, 0, 7, 7]])
    assert sample.size == (40, 30) and sample.image.mode == "RGB" and sample.mask is None

    # val = every val_every-th train image of each class, in images.txt order; train = the rest.
    train = build_dataset("cub", "train", data_root=tmp_path, val_every=2)  # parent folder works too
    val = build_dataset("cub", "val", data_root=cub, val_every=2)
    assert [r.image_id for r in val.records] == ["001.Albatross/a1.jpg", "002.Auklet/b1.jpg", "002.Auklet/b3.jpg"]
    assert [r.image_id for r in train.records] == ["001.Albatross/a2.jpg", "002.Auklet/b2.jpg"]
    np.testing.assert_allclose(val.records[1].boxes, [[1, 1, 1, 1]])  # a 1×1 box is one pixel
    everything = build_dataset("cub", "train", data_root=cub, val_every=0)
    assert len(everything) == 5
    with pytest.raises(ValueError, match="val_every=0"):
        build_dataset("cub", "val", data_root=cub, val_every=0)


def test_cub_without_classes_txt_names_by_number(tmp_path):
    cub = make_cub(tmp_path, with_classes=False)
    dataset = build_dataset("cub", "test", data_root=cub)
    assert dataset.class_names == ["1", "2"]


# ----------------------------------------------------------------------------- ILSVRC
SYNSETS = ["n01440764 tench, Tinca tinca", "n01443537 goldfish, Carassius auratus", "n01484850 great white shark"]


def voc_xml(objects, size=(40, 30)) -> str:
    body = "".join(
        f"<object><name>{w}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>\n"
        for w, b in objects
    )
    return f"<annotation>\n<size><width>{size[0]}</width><height>{size[1]}</height></size>\n{body}</annotation>\n"


ILSVRC_OBJECTS = {
    "ILSVRC2012_val_00000001": [("n01443537", (1, 1, 10, 20))],
    "ILSVRC2012_val_00000002": [("n01484850", (5, 6, 30, 25)), ("n01484850", (20, 2, 40, 30))],
    "ILSVRC2012_val_00000003": [("n01440764", (2, 3, 4, 5))],
}


def make_ilsvrc_xml(root: Path) -> Path:
    for image_id, objects in ILSVRC_OBJECTS.items():
        write_image(root / "val" / f"{image_id}.JPEG")
        xml = root / "Annotations" / f"{image_id}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(objects))
    write_text(root / "LOC_synset_mapping.txt", SYNSETS)
    return root


def solution_csv(objects) -> list[str]:
    lines = ["ImageId,PredictionString"]
    for image_id, objs in objects.items():
        lines.append(image_id + "," + " ".join(f"{w} {b[0]} {b[1]} {b[2]} {b[3]}" for w, b in objs))
    return lines


def check_ilsvrc_records(dataset):
    assert [r.image_id for r in dataset.records] == sorted(ILSVRC_OBJECTS)
    assert [r.label for r in dataset.records] == [1, 2, 0]
    # VOC 1-based inclusive -> 0-based inclusive: every coordinate minus one.
    np.testing.assert_allclose(dataset.records[0].boxes, [[0, 0, 9, 19]])
    np.testing.assert_allclose(dataset.records[1].boxes, [[4, 5, 29, 24], [19, 1, 39, 29]])


def test_ilsvrc_xml_form(tmp_path):
    dataset = build_dataset("ilsvrc", "test", data_root=make_ilsvrc_xml(tmp_path), image_size=32)
    check_ilsvrc_records(dataset)
    assert dataset.class_names == ["tench", "goldfish", "great white shark"]
    assert dataset.records[1].size == (40, 30)
    sample = quiet_sample(dataset, 1)
    assert sample.boxes.shape == (2, 4)
    item = dataset[1]
    assert item["boxes"].shape == (2, 4) and item["label"] == 2


def test_ilsvrc_csv_form_kaggle_tree_and_plain_wnid_list(tmp_path):
    images = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    for image_id in ILSVRC_OBJECTS:
        write_image(images / f"{image_id}.JPEG")
    write_text(tmp_path / "LOC_val_solution.csv", solution_csv(ILSVRC_OBJECTS))
    write_text(tmp_path / "wnids.txt", [line.split()[0] for line in SYNSETS])
    dataset = build_dataset("ilsvrc", "test", data_root=tmp_path)
    check_ilsvrc_records(dataset)
    assert dataset.class_names == ["n01440764", "n01443537", "n01484850"]
    assert dataset.records[0].path == images / "ILSVRC2012_val_00000001.JPEG"


def test_ilsvrc_explicit_annotations_choose_the_form(tmp_path):
    root = make_ilsvrc_xml(tmp_path)
    other = dict(ILSVRC_OBJECTS)
    other["ILSVRC2012_val_00000003"] = [("n01440764", (3, 3, 8, 8))]
    csv_path = write_text(tmp_path / "elsewhere" / "solution.csv", solution_csv(other))
    from_csv = build_dataset("ilsvrc", "test", data_root=root, annotations=csv_path)
    np.testing.assert_allclose(from_csv.records[2].boxes, [[2, 2, 7, 7]])
    # Without annotations= and no CSV in data_root, the XML folder is detected.
    np.testing.assert_allclose(build_dataset("ilsvrc", "test", data_root=root).records[2].boxes, [[1, 2, 3, 4]])


def test_ilsvrc_train_and_held_out_val(tmp_path):
    write_text(tmp_path / "LOC_synset_mapping.txt", SYNSETS[:2])
    objects = {}
    for wnid in ["n01440764", "n01443537"]:
        for n in range(6):
            image_id = f"{wnid}_{n}"
            write_image(tmp_path / "train" / wnid / f"{image_id}.JPEG")
            if n < 4:
                objects[image_id] = [(wnid, (1, 1, 5 + n, 6))]
    write_text(tmp_path / "LOC_train_solution.csv", solution_csv(objects))
    train = build_dataset("ilsvrc", "train", data_root=tmp_path, val_every=2)
    val = build_dataset("ilsvrc", "val", data_root=tmp_path, val_every=2)
    train_ids, val_ids = {r.image_id for r in train.records}, {r.image_id for r in val.records}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 12
    assert val_ids <= set(objects)  # held-out images all have boxes
    assert all(len(r.boxes) == 1 for r in val.records)
    labelled = {r.image_id: r.label for r in train.records + val.records}
    assert labelled["n01443537_5"] == 1 and labelled["n01440764_0"] == 0


# ----------------------------------------------------------------------------- wsolevaluation metadata
def make_wsol(root: Path) -> tuple[Path, Path]:
    data = root / "dataset" / "CUB"
    meta = root / "metadata" / "CUB"
    ids = ["001.A/x.jpg", "002.B/y.jpg", "002.B/z.jpg"]
    for image_id in ids:
        write_image(data / image_id)
    for split, chosen in (("train", ids), ("test", ids[:2])):
        write_text(meta / split / "image_ids.txt", chosen)
        write_text(meta / split / "class_labels.txt", [f"{i},{0 if i.startswith('001') else 1}" for i in chosen])
        write_text(meta / split / "image_sizes.txt", [f"{i},40,30" for i in chosen])
        write_text(
            meta / split / "localization.txt",
            ["001.A/x.jpg,1,2,10,20", "002.B/y.jpg,0,0,39,29", "002.B/y.jpg,5,5,7,9", "002.B/z.jpg,3,3,4,4"][: len(chosen) + 1],
        )
    return data, meta


def test_wsol_box_form_and_metadata_root_variants(tmp_path):
    data, meta = make_wsol(tmp_path)
    dataset = build_dataset("wsol", "test", data_root=data, metadata_root=meta)
    assert [r.image_id for r in dataset.records] == ["001.A/x.jpg", "002.B/y.jpg"]
    assert [r.label for r in dataset.records] == [0, 1] and dataset.num_classes == 2
    np.testing.assert_allclose(dataset.records[0].boxes, [[1, 2, 10, 20]])
    np.testing.assert_allclose(dataset.records[1].boxes, [[0, 0, 39, 29], [5, 5, 7, 9]])  # several lines, several boxes
    assert dataset.records[1].size == (40, 30)
    assert quiet_sample(dataset, 1).boxes.shape == (2, 4)
    # The wsolevaluation top folder (one dataset inside), and the split folder itself, work too.
    for root in (tmp_path / "metadata", meta / "test"):
        again = build_dataset("wsol", "test", data_root=data, metadata_root=root)
        assert [r.image_id for r in again.records] == ["001.A/x.jpg", "002.B/y.jpg"]
    (tmp_path / "metadata" / "ILSVRC" / "test").mkdir(parents=True)
    write_text(tmp_path / "metadata" / "ILSVRC" / "test" / "image_ids.txt", ["a.jpg"])
    with pytest.raises(ValueError, match="dataset="):
        build_dataset("wsol", "test", data_root=data, metadata_root=tmp_path / "metadata")
    assert len(build_dataset("wsol", "test", data_root=data, metadata_root=tmp_path / "metadata", dataset="CUB")) == 2
    with pytest.raises(FileNotFoundError, match="val"):
        build_dataset("wsol", "val", data_root=data, metadata_root=meta)


def test_wsol_annotations_need_no_images(tmp_path):
    data, meta = make_wsol(tmp_path)
    decoded = build_dataset("wsol", "test", data_root=data, metadata_root=meta)
    expected = [quiet_sample(decoded, index) for index in range(len(decoded))]
    for image_id in ("001.A/x.jpg", "002.B/y.jpg", "002.B/z.jpg"):
        (data / image_id).unlink()
    with pytest.raises(FileNotFoundError, match="data_root="):  # what reads pixels still refuses, clearly
        build_dataset("wsol", "test", data_root=data, metadata_root=meta)
    with pytest.raises(ValueError, match="data_root"):
        build_dataset("wsol", "test", metadata_root=meta)
    # The annotation path: a folder without the images, or no data_root at all (box form).
    for root in (data, None):
        dataset = build_dataset("wsol", "test", data_root=root, metadata_root=meta, need_images=False)
        for index, sample in enumerate(expected):
            annotation = dataset.load_sample(index, image=False)
            assert annotation.image is None and annotation.scale == 1.0
            assert (annotation.image_id, annotation.label, annotation.size) == (sample.image_id, sample.label, sample.size)
            np.testing.assert_array_equal(annotation.boxes, sample.boxes)
    # No image and no stated size: nothing tells the size; the error names the fix.
    (meta / "test" / "image_sizes.txt").unlink()
    dataset = build_dataset("wsol", "test", data_root=data, metadata_root=meta, need_images=False)
    with pytest.raises(ValueError, match="image_sizes.txt"):
        dataset.load_sample(0, image=False)


def test_wsol_mask_form_with_ignore(tmp_path):
    data = tmp_path / "OpenImages"
    write_image(data / "test" / "a.jpg", size=(8, 6))
    first = np.zeros((6, 8), np.uint8)
    first[1:3, 1:4] = 255
    second = np.zeros((6, 8), np.uint8)
    second[4:6, 6:8] = 255
    ignore = np.zeros((6, 8), np.uint8)
    ignore[0:3, 0:6] = 255  # overlaps the first instance: object wins over ignore
    (data / "masks").mkdir()
    for name, array in (("m1.png", first), ("m2.png", second), ("ig.png", ignore)):
        Image.fromarray(array).save(data / "masks" / name)
    meta = tmp_path / "meta"
    write_text(meta / "test" / "image_ids.txt", ["test/a.jpg"])
    write_text(meta / "test" / "class_labels.txt", ["test/a.jpg,0"])
    write_text(meta / "test" / "localization.txt", ["test/a.jpg,masks/m1.png,masks/ig.png", "test/a.jpg,masks/m2.png,masks/ig.png"])
    dataset = build_dataset("wsol", "test", data_root=data, metadata_root=meta, image_size=16)
    sample = quiet_sample(dataset, 0)
    expected = np.zeros((6, 8), np.uint8)
    expected[0:3, 0:6] = 255
    expected[1:3, 1:4] = 1
    expected[4:6, 6:8] = 1
    np.testing.assert_array_equal(sample.mask, expected)
    np.testing.assert_allclose(sample.boxes, [[1, 1, 3, 2], [6, 4, 7, 5]])  # one tight box per instance mask
    item = dataset[0]
    assert item["mask"].shape == (16, 16) and set(item["mask"].unique().tolist()) == {0, 1, 255}
    np.testing.assert_array_equal(item["orig_mask"].numpy(), expected)  # what evaluation resizes itself
    assert collate([item, None])["orig_mask"][0] is item["orig_mask"]
    # The annotation alone: the size from the image's header, then (image gone) from a mask's.
    for step in ("header", "mask"):
        annotation = dataset.load_sample(0, image=False)
        assert annotation.image is None and annotation.size == (8, 6), step
        np.testing.assert_array_equal(annotation.mask, expected)
        np.testing.assert_allclose(annotation.boxes, sample.boxes)
        (data / "test" / "a.jpg").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="masks"):  # masks are found through data_root
        build_dataset("wsol", "test", metadata_root=meta, need_images=False)
    assert len(build_dataset("wsol", "test", data_root=data, metadata_root=meta, need_images=False)) == 1



def test_wsol_finds_the_masks_that_synth_writes_or_takes_mask_root(tmp_path):
    from spg_core.data import SyntheticConfig, write_wsol
    from spg_core.data.settings import DataSettings

    root = write_wsol(tmp_path / "D", SyntheticConfig(image_size=64, num_classes=2, num_train=0, num_val=0, num_test=2),
                      splits=("test",), progress=False)
    reference = build_dataset("wsol", "test", data_root=root)
    masks = [quiet_sample(reference, index).mask for index in range(2)]
    # data_root = the images folder: the masks are in the masks/ beside it.
    beside = build_dataset("wsol", "test", data_root=root / "images", metadata_root=root / "metadata")
    for index in range(2):
        np.testing.assert_array_equal(quiet_sample(beside, index).mask, masks[index])
    # Masks moved elsewhere: the error names --mask-root and where it looked; mask_root reads them.
    (root / "masks").rename(tmp_path / "kept")
    with pytest.raises(FileNotFoundError, match="--mask-root"):
        build_dataset("wsol", "test", data_root=root / "images", metadata_root=root / "metadata")
    settings = DataSettings.from_flags(format="wsol", data_root=str(root / "images"),
                                       metadata_root=str(root / "metadata"), mask_root=str(tmp_path / "kept"))
    moved = settings.dataset("test")
    np.testing.assert_array_equal(quiet_sample(moved, 1).mask, masks[1])
    assert DataSettings.from_key(settings.key("test")) == (settings, "test")
    assert "mask_root" not in DataSettings.from_flags(format="wsol", data_root="x").key("test")  # keys as before
    with pytest.raises(ValueError, match="wsol"):
        DataSettings.from_flags(format="synthetic", mask_root=str(tmp_path))

# ----------------------------------------------------------------------------- folder
def test_folder_with_split_column(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path / "imgs" / name)
    write_text(
        tmp_path / "annotations.csv",
        [
            "path,label,x0,y0,x1,y1,split",
            "imgs/a.png,zebra,1,2,3,4,train",
            "imgs/a.png,zebra,5,5,9,9,train",
            "imgs/b.png,ant,,,,,train",
            "imgs/c.png,mole,0,0,39,29,test",
            "imgs/d.png,ant,2,2,6,6,val",
        ],
    )
    train = build_dataset("folder", "train", data_root=tmp_path)
    assert train.class_names == ["ant", "mole", "zebra"]  # sorted names -> indices
    assert [(r.image_id, r.label) for r in train.records] == [("imgs/a.png", 2), ("imgs/b.png", 0)]
    np.testing.assert_allclose(train.records[0].boxes, [[1, 2, 3, 4], [5, 5, 9, 9]])
    assert train.records[1].boxes.shape == (0, 4)  # an image without boxes is fine for training
    assert train[1]["boxes"].shape == (0, 4)
    assert [r.image_id for r in build_dataset("folder", "test", data_root=tmp_path / "annotations.csv").records] == ["imgs/c.png"]
    assert build_dataset("folder", "val", data_root=tmp_path).records[0].label == 0


def test_folder_without_split_column_uses_the_documented_hash(tmp_path):
    paths = [f"p/{k:03d}.png" for k in range(60)]
    for path in paths:
        write_image(tmp_path / path, size=(4, 4))
    write_text(tmp_path / "annotations.csv", ["path,label,x0,y0,x1,y1"] + [f"{p},c{k % 3},0,0,3,3" for k, p in enumerate(paths)])
    parts = {split: [r.image_id for r in build_dataset("folder", split, data_root=tmp_path).records] for split in ("train", "val", "test")}
    assert sorted(sum(parts.values(), [])) == paths  # a partition
    for split, ids in parts.items():
        assert all(hash_split(i) == split for i in ids)
    assert 36 <= len(parts["train"]) <= 58 and parts["val"] and parts["test"]
    assert hash_split("p/000.png") == hash_split("p/000.png", seed=0)  # stable
    assert any(hash_split(p, seed=1) != hash_split(p) for p in paths)


# ----------------------------------------------------------------------------- transforms
def white_rectangle(tmp_path) -> tuple[Path, list[int]]:
    array = np.zeros((90, 120, 3), np.uint8)
    box = [30, 20, 79, 59]  # inclusive
    array[box[1] : box[3] + 1, box[0] : box[2] + 1] = 255
    path = tmp_path / "rect.png"
    Image.fromarray(array).save(path)
    mask = np.zeros((90, 120), np.uint8)
    mask[box[1] : box[3] + 1, box[0] : box[2] + 1] = 1
    return path, box, mask


def test_box_arithmetic_inclusive_convention():
    np.testing.assert_allclose(scale_boxes([[0, 0, 9, 9]], 2, 0.5), [[0, 0, 19, 4]])
    np.testing.assert_allclose(flip_boxes([[0, 0, 2, 5]], 10), [[7, 0, 9, 5]])


@pytest.mark.parametrize("train", [False, True])
def test_transform_keeps_box_and_mask_on_the_white_pixels(tmp_path, train):
    path, box, mask = white_rectangle(tmp_path)
    image = Image.open(path).convert("RGB")
    transform = SampleTransform(64, train=train)
    flips = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(image, np.array([box], np.float32), mask)
        pixels = denormalize(out["image"]).astype(int).sum(axis=2)
        ys, xs = np.nonzero(pixels > 3 * 200)  # clearly white after bilinear resizing
        x0, y0, x1, y1 = out["boxes"][0].tolist()
        assert x0 - 1 <= xs.min() and xs.max() <= x1 + 1 and y0 - 1 <= ys.min() and ys.max() <= y1 + 1
        ys_all, xs_all = np.nonzero(pixels > 3 * 40)  # any trace of white
        assert xs_all.min() <= x0 + 1 and x1 - 1 <= xs_all.max() and ys_all.min() <= y0 + 1 and y1 - 1 <= ys_all.max()
        fg = np.nonzero(out["mask"].numpy() == 1)
        assert (fg[1].min(), fg[0].min(), fg[1].max(), fg[0].max()) == pytest.approx((x0, y0, x1, y1), abs=1)
        flips.add(xs.min() < 64 - 1 - xs.max())
    if not train:
        # 120×90 -> 64×64: inclusive scaling (x1 + 1)·s - 1.
        np.testing.assert_allclose(out["boxes"][0].numpy(), [30 * 64 / 120, 20 * 64 / 90, 80 * 64 / 120 - 1, 60 * 64 / 90 - 1], rtol=1e-5)
    else:
        assert len(flips) == 2  # both flipped and unflipped samples were drawn


def test_getitem_and_collate(tmp_path):
    path, box, mask = white_rectangle(tmp_path)
    write_text(tmp_path / "annotations.csv", ["path,label,x0,y0,x1,y1,split", f"rect.png,box,{','.join(map(str, box))},test"])
    dataset = build_dataset("folder", "test", data_root=tmp_path, image_size=48)
    item = dataset[0]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
    assert item["label"] == 0 and item["image_id"] == "rect.png" and item["orig_size"] == (120, 90)
    np.testing.assert_allclose(item["orig_boxes"].numpy(), [box])
    assert "mask" not in item and "orig_mask" not in item
    batch = collate([item, None, item])
    assert batch["image"].shape == (2, 3, 48, 48) and batch["label"].tolist() == [0, 0]
    assert batch["num_skipped"] == 1 and len(batch["boxes"]) == 2 and batch["image_id"] == ["rect.png"] * 2
    assert "mask" not in batch and "orig_mask" not in batch
    empty = collate([None, None])
    assert empty["num_skipped"] == 2 and empty["image"].shape[0] == 0 and empty["boxes"] == []


def test_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'kitti'"):
        build_dataset("kitti", "train", data_root=tmp_path)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        build_dataset("synthetic", "dev")
    with pytest.raises(TypeError, match="val_evry"):
        build_dataset("cub", "train", data_root=tmp_path, val_evry=3)
    with pytest.raises(ValueError, match="needs data_root"):
        build_dataset("cub", "train")
