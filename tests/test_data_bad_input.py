"""Every kind of bad input a user's dataset can hold: what is repaired, skipped or refused."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import spg_core.data.images as images_module
from spg_core.data import DataWarning, build_dataset, collate
from spg_core.data.images import BadImageError, load_image


def write_text(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def folder_dataset(root: Path, rows, image_size=32, **options):
    """A folder-format test split over ``rows`` = [(path, label, box or None)]."""
    lines = ["path,label,x0,y0,x1,y1,split"]
    for path, label, box in rows:
        lines.append(f"{path},{label},{','.join(map(str, box)) if box else ',,,'},test")
    write_text(root / "annotations.csv", lines)
    return build_dataset("folder", "test", data_root=root, image_size=image_size, **options)


def jpeg_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- undecodable files
@pytest.fixture
def bad_tree(tmp_path):
    (tmp_path / "good.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "truncated.jpg").write_bytes(jpeg_bytes()[:300])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (tmp_path / "notes.jpg").write_text("this is a text file, not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    names = ["good.jpg", "truncated.jpg", "corrupt.png", "notes.jpg", "empty.png"]
    return tmp_path, names


def test_bad_images_are_skipped_with_a_warning_never_raised(bad_tree):
    root, names = bad_tree
    dataset = folder_dataset(root, [(name, "x", (1, 1, 5, 5)) for name in names])
    order = [r.image_id for r in dataset.records]
    for index, image_id in enumerate(order):
        if image_id == "good.jpg":
            assert dataset.load_sample(index) is not None
            continue
        with pytest.warns(DataWarning, match=f"skipping image '{image_id}'"):
            assert dataset.load_sample(index) is None
        with pytest.warns(DataWarning):
            assert dataset[index] is None
    assert dataset.skipped == 2 * 4
    # A whole epoch through a DataLoader: bad images vanish from batches and are counted.
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        batches = list(loader)
    assert sum(b["num_skipped"] for b in batches) == 4
    assert sum(b["image"].shape[0] for b in batches) == 1
    assert all(b["image"].shape[0] == 0 or b["image"].shape[1:] == (3, 32, 32) for b in batches)


def test_file_deleted_after_build_is_skipped(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    dataset = folder_dataset(tmp_path, [("a.jpg", "x", None)])
    (tmp_path / "a.jpg").unlink()
    with pytest.warns(DataWarning, match="not found"):
        assert dataset[0] is None


# ----------------------------------------------------------------------------- image modes -> RGB
def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_modes_become_correct_rgb(tmp_path):
    gray = save(Image.new("L", (4, 3), 77), tmp_path / "gray.png")
    assert np.asarray(load_image(gray)[0])[0, 0].tolist() == [77, 77, 77]

    one_bit = save(Image.new("1", (4, 3), 1), tmp_path / "bits.png")
    assert np.asarray(load_image(one_bit)[0])[0, 0].tolist() == [255, 255, 255]

    cmyk = save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=100)  # pure red
    red = np.asarray(load_image(cmyk)[0])[4, 4]
    assert red[0] > 230 and red[1] < 30 and red[2] < 30

    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., :3] = (10, 200, 10)
    rgba[:, :2, 3] = 255  # left half opaque green, right half fully transparent
    rgba_path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png")
    pixels = np.asarray(load_image(rgba_path)[0])
    assert pixels[0, 0].tolist() == [10, 200, 10] and pixels[0, 3].tolist() == [255, 255, 255]  # onto white

    la = Image.fromarray(np.stack([np.full((2, 2), 50, np.uint8), np.full((2, 2), 255, np.uint8)], -1), "LA")
    assert np.asarray(load_image(save(la, tmp_path / "la.png"))[0])[0, 0].tolist() == [50, 50, 50]

    sixteen = np.array([[0, 32896, 65535]], np.uint16)  # 0, 50 %, 100 % of the 16-bit range
    path16 = save(Image.fromarray(sixteen), tmp_path / "sixteen.png")
    assert Image.open(path16).mode.startswith("I")
    assert np.asarray(load_image(path16)[0])[0, :, 0].tolist() == [0, 128, 255]  # not clipped at 255

    palette = Image.new("P", (4, 2))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 0, 1, 1] * 2)
    palette.info["transparency"] = 1
    pixels = np.asarray(load_image(save(palette, tmp_path / "pal.png", transparency=1))[0])
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[0, 3].tolist() == [255, 255, 255]

    opaque_palette = Image.new("P", (2, 2), 1)
    opaque_palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    assert np.asarray(load_image(save(opaque_palette, tmp_path / "pal2.png"))[0])[0, 0].tolist() == [0, 0, 255]

    for path in tmp_path.iterdir():
        assert load_image(path)[0].mode == "RGB"


def test_exif_rotation_is_applied_and_boxes_are_in_displayed_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide × 20 high
    stored[:5, :5] = (255, 0, 0)  # red marker at the stored top-left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    loaded, scale = load_image(path)
    assert loaded.size == (20, 40) and scale == 1.0
    displayed = np.asarray(loaded)
    assert displayed[2, 17, 0] > 200 and displayed[2, 2, 0] < 50  # marker now top-right
    # A box drawn on the displayed image (the red corner) loads unchanged.
    dataset = folder_dataset(tmp_path, [("rotated.jpg", "x", (15, 0, 19, 4))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample = dataset.load_sample(0)
    assert sample.size == (20, 40)
    np.testing.assert_allclose(sample.boxes, [[15, 0, 19, 4]])


# ----------------------------------------------------------------------------- size limits
def test_huge_images_are_downscaled_with_their_boxes(tmp_path):
    array = np.zeros((500, 5000, 3), np.uint8)
    array[100:300, 1000:3000] = 255
    Image.fromarray(array).save(tmp_path / "wide.png")
    Image.fromarray(array).save(tmp_path / "wide.jpg", quality=90)
    for name in ("wide.png", "wide.jpg"):
        dataset = folder_dataset(tmp_path, [(name, "x", (1000, 100, 2999, 299))])
        sample = dataset.load_sample(0)
        assert max(sample.size) == 4096 and sample.scale == pytest.approx(4096 / 5000, rel=1e-3)
        x0, y0, x1, y1 = sample.boxes[0]
        white = np.nonzero(np.asarray(sample.image)[..., 0] > 128)
        assert abs(white[1].min() - x0) <= 2 and abs(white[1].max() - x1) <= 2
        assert abs(white[0].min() - y0) <= 2 and abs(white[0].max() - y1) <= 2


def test_huge_image_mask_is_downscaled_with_it(tmp_path):
    Image.new("RGB", (5000, 40)).save(tmp_path / "strip.png")
    mask = np.zeros((40, 5000), np.uint8)
    mask[10:30, 2500:5000] = 255
    Image.fromarray(mask).save(tmp_path / "strip_mask.png")
    meta = tmp_path / "metadata" / "test"
    write_text(meta / "image_ids.txt", ["strip.png"])
    write_text(meta / "class_labels.txt", ["strip.png,0"])
    write_text(meta / "localization.txt", ["strip.png,strip_mask.png,"])
    sample = build_dataset("wsol", "test", data_root=tmp_path).load_sample(0)
    assert sample.size == (4096, 33) and sample.mask.shape == (33, 4096)
    ys, xs = np.nonzero(sample.mask == 1)
    assert abs(xs.min() - 2048) <= 1 and xs.max() == 4095 and 7 <= ys.min() <= 9 and 23 <= ys.max() <= 25
    np.testing.assert_allclose(sample.boxes, [[xs.min(), ys.min(), xs.max(), ys.max()]])


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300), (1, 2, 3)).save(path)
    # Pillow's own global limit does not break loading (we apply ours instead) and is restored.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert load_image(path)[0].size == (300, 300)
    assert Image.MAX_IMAGE_PIXELS == 1000
    # Our limit refuses the file as a bad image — skipped by datasets, never an exception.
    with pytest.raises(BadImageError, match="decompression-bomb"):
        load_image(path, max_pixels=50_000)
    monkeypatch.setattr(images_module, "MAX_PIXELS", 50_000)
    dataset = folder_dataset(tmp_path, [("big.png", "x", None)])
    with pytest.warns(DataWarning, match="decompression-bomb"):
        assert dataset[0] is None


# ----------------------------------------------------------------------------- boxes outside the image
def test_boxes_outside_are_clipped_or_dropped_with_a_warning(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "img.png")
    dataset = folder_dataset(tmp_path, [("img.png", "x", (-5, 2, 10, 50)), ("img.png", "x", (50, 40, 60, 45)), ("img.png", "x", (1, 1, 2, 2))])
    with pytest.warns(DataWarning) as caught:
        sample = dataset.load_sample(0)
    messages = [str(w.message) for w in caught]
    assert any("img.png" in m and "[-5.0, 2.0, 10.0, 50.0]" in m and "clipped to [0.0, 2.0, 10.0, 29.0]" in m for m in messages)
    assert any("img.png" in m and "[50.0, 40.0, 60.0, 45.0]" in m and "dropped" in m for m in messages)
    np.testing.assert_allclose(sample.boxes, [[0, 2, 10, 29], [1, 1, 2, 2]])


def test_inverted_box_is_an_annotation_error(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "img.png")
    with pytest.raises(ValueError, match=r"annotations.csv:2: box .* x1 < x0"):
        folder_dataset(tmp_path, [("img.png", "x", (3, 0, 1, 2))])


# ----------------------------------------------------------------------------- labels
def test_cub_label_out_of_range_names_file_and_line(tmp_path):
    for k in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{k}.jpg")
    write_text(tmp_path / "images.txt", ["1 images/0.jpg", "2 images/1.jpg", "3 images/2.jpg"])
    write_text(tmp_path / "train_test_split.txt", ["1 1", "2 1", "3 0"])
    write_text(tmp_path / "classes.txt", ["1 a", "2 b"])
    write_text(tmp_path / "image_class_labels.txt", ["1 1", "2 3", "3 2"])
    with pytest.raises(ValueError, match=r"image_class_labels.txt:2: class 3 is out of range 1..2"):
        build_dataset("cub", "train", data_root=tmp_path)
    write_text(tmp_path / "image_class_labels.txt", ["1 1", "2 2", "3 0"])
    with pytest.raises(ValueError, match=r"image_class_labels.txt:3: class 0 is out of range"):
        build_dataset("cub", "test", data_root=tmp_path)
    write_text(tmp_path / "image_class_labels.txt", ["1 1", "2 two", "3 1"])
    with pytest.raises(ValueError, match=r"image_class_labels.txt:2: class 'two' is not an integer"):
        build_dataset("cub", "test", data_root=tmp_path)


def test_wsol_label_out_of_range_names_file_and_line(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    meta = tmp_path / "metadata"
    write_text(meta / "class_names.txt", ["cat", "dog"])
    write_text(meta / "test" / "image_ids.txt", ["a.png", "a.png"])
    write_text(meta / "test" / "class_labels.txt", ["b.png,0", "a.png,2"])
    with pytest.raises(ValueError, match=r"test/class_labels.txt:2: label 2 is out of range 0..1"):
        build_dataset("wsol", "test", data_root=tmp_path)
    write_text(meta / "test" / "class_labels.txt", ["a.png,-1"])
    with pytest.raises(ValueError, match=r"class_labels.txt:1: label -1 is out of range"):
        build_dataset("wsol", "test", data_root=tmp_path)
    write_text(meta / "test" / "class_labels.txt", ["a.png,cat"])
    with pytest.raises(ValueError, match=r"class_labels.txt:1: label 'cat' is not an integer"):
        build_dataset("wsol", "test", data_root=tmp_path)


def test_folder_unknown_class_name_names_file_and_line(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    write_text(tmp_path / "classes.txt", ["cat", "dog"])
    with pytest.raises(ValueError, match=r"annotations.csv:3: unknown class name 'cta'"):
        folder_dataset(tmp_path, [("a.png", "cat", None), ("a.png", "cta", None)])


def test_ilsvrc_unknown_wnid_names_file_and_line(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    write_text(tmp_path / "LOC_synset_mapping.txt", ["n01440764 tench, Tinca tinca"])
    write_text(tmp_path / "LOC_val_solution.csv", ["ImageId,PredictionString", "ILSVRC2012_val_00000001,n01440764 1 1 2 2",
                                                   "ILSVRC2012_val_00000002,n09999999 1 1 2 2"])
    with pytest.raises(ValueError, match=r"LOC_val_solution.csv:3: unknown class 'n09999999'"):
        build_dataset("ilsvrc", "test", data_root=tmp_path)
    (tmp_path / "LOC_val_solution.csv").unlink()
    xml = tmp_path / "ILSVRC2012_val_00000001.xml"
    xml.write_text("<annotation>\n<object>\n<name>n01440764</name>\n<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
                   "<ymax>2</ymax></bndbox></object>\n<object>\n<name>n02000000</name>\n<bndbox><xmin>1</xmin><ymin>1</ymin>"
                   "<xmax>2</xmax><ymax>2</ymax></bndbox></object>\n</annotation>\n")
    with pytest.raises(ValueError, match=r"ILSVRC2012_val_00000001.xml:6: unknown class 'n02000000'"):
        build_dataset("ilsvrc", "test", data_root=tmp_path)
    write_text(tmp_path / "LOC_synset_mapping.txt", ["tench"])
    with pytest.raises(ValueError, match=r"LOC_synset_mapping.txt:1: 'tench' is not a WordNet id"):
        build_dataset("ilsvrc", "test", data_root=tmp_path)


# ----------------------------------------------------------------------------- missing files
def test_missing_files_are_all_collected_before_training(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "present.png")
    rows = [("present.png", "x", None)] + [(f"gone/{k}.png", "x", None) for k in range(7)]
    with pytest.raises(FileNotFoundError) as error:
        folder_dataset(tmp_path, rows)
    message = str(error.value)
    assert message.startswith("7 file(s) listed in the annotations are missing")
    assert "gone/0.png" in message and "gone/4.png" in message and "gone/5.png" not in message
    assert "and 2 more" in message and "fix:" in message


def test_missing_mask_files_are_reported_too(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    meta = tmp_path / "metadata" / "test"
    write_text(meta / "image_ids.txt", ["a.png"])
    write_text(meta / "class_labels.txt", ["a.png,0"])
    write_text(meta / "localization.txt", ["a.png,masks/a.png,masks/a_ignore.png"])
    with pytest.raises(FileNotFoundError, match="2 file"):
        build_dataset("wsol", "test", data_root=tmp_path)
