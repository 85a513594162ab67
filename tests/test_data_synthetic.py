"""The teaching benchmark: determinism, GT consistency, class-from-part only, files round trip."""
from __future__ import annotations

import argparse
import colorsys

import numpy as np
import pytest

from spg_core.data import SyntheticConfig, build_dataset, generate, write_wsol
from spg_core.data.synthetic import (
    MAX_CLASSES,
    add_synthetic_arguments,
    labels_of,
    object_geometry_box,
    synthetic_config_from_args,
)
from spg_core.data.transforms import mask_box

SMALL = SyntheticConfig(image_size=64, num_classes=8, num_train=24, num_val=8, num_test=8)


def test_same_seed_same_bytes_other_seed_or_split_differs():
    a = generate(SMALL, "train", 5)
    b = generate(SyntheticConfig(**{**SMALL.__dict__}), "train", 5)
    assert a.image.tobytes() == b.image.tobytes() and a.mask.tobytes() == b.mask.tobytes() and a.label == b.label
    assert generate(SyntheticConfig(**{**SMALL.__dict__, "seed": 1}), "train", 5).image.tobytes() != a.image.tobytes()
    assert generate(SMALL, "test", 5).image.tobytes() != a.image.tobytes()
    assert generate(SMALL, "train", 6).image.tobytes() != a.image.tobytes()
    dataset = build_dataset("synthetic", "train", image_size=64, **SMALL.options(), cache_size=0)
    assert np.asarray(dataset.load_sample(5).image).tobytes() == a.image.tobytes()


@pytest.mark.parametrize("clutter", [0.0, 0.5, 1.0])
def test_box_is_the_tight_box_of_the_mask(clutter):
    config = SyntheticConfig(image_size=96, clutter=clutter)
    for index in range(40):
        g = generate(config, "val", index)
        assert g.image.shape == (96, 96, 3) and g.image.dtype == np.uint8
        np.testing.assert_array_equal(g.box, mask_box(g.mask))
        np.testing.assert_array_equal(g.box, object_geometry_box(config, "val", index))  # records need no painting
        np.testing.assert_array_equal(g.mask.astype(bool), g.body_mask | g.part_mask)
        x0, y0, x1, y1 = g.box[0]
        assert x0 >= 1 and y0 >= 1 and x1 <= 94 and y1 <= 94  # the whole object is inside the image
        part_fraction = g.part_mask.sum() / g.mask.sum()
        assert 0.08 <= part_fraction <= 0.18  # small part, large body
        assert g.mask.mean() > 0.06


def _hsv(pixels: np.ndarray) -> np.ndarray:
    return np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in pixels])


def test_class_is_decidable_from_the_part_and_not_from_the_body():
    config = SyntheticConfig(image_size=96, num_classes=8, clutter=0.5)
    part_colour, body_colour, background_colour, labels = [], [], [], []
    for index in range(160):
        g = generate(config, "train", index)
        part_colour.append(g.image[g.part_mask].mean(axis=0))
        body_colour.append(g.image[g.body_mask & ~g.part_mask].mean(axis=0))
        background_colour.append(g.image[g.mask == 0].mean(axis=0))
        labels.append(g.label)
    labels = np.array(labels)

    def nearest_centroid_accuracy(features):
        features = np.asarray(features, float)
        train, test = slice(0, 80), slice(80, 160)
        centroids = np.stack([features[train][labels[train] == k].mean(0) for k in range(8)])
        predicted = np.argmin(((features[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        return (predicted == labels[test]).mean()

    assert nearest_centroid_accuracy(part_colour) > 0.95
    assert nearest_centroid_accuracy(body_colour) < 0.35  # chance is 0.125
    assert nearest_centroid_accuracy(background_colour) < 0.35
    # The part is the only strongly saturated region: its saturation is far above the body's.
    part_saturation = _hsv(np.array(part_colour))[:, 1]
    body_saturation = _hsv(np.array(body_colour))[:, 1]
    assert part_saturation.min() > body_saturation.max()


def test_patterns_separate_classes_sharing_a_hue():
    config = SyntheticConfig(image_size=128, num_classes=MAX_CLASSES, clutter=0.0)
    spread = {}
    for index in range(128):
        g = generate(config, "train", index)
        pattern = g.label // 8
        spread.setdefault(pattern, []).append(g.image[g.part_mask].astype(float).std(axis=0).mean())
    assert np.mean(spread[0]) < 12 < min(np.mean(spread[k]) for k in (1, 2, 3))  # solid vs two-tone


@pytest.mark.parametrize("position", ["top", "side", "end"])
def test_part_position(position):
    config = SyntheticConfig(image_size=96, part_position=position)
    for index in range(30):
        g = generate(config, "test", index)
        body_y, body_x = np.argwhere(g.body_mask).mean(axis=0)
        part_y, part_x = np.argwhere(g.part_mask).mean(axis=0)
        dx, dy = part_x - body_x, part_y - body_y
        if position == "top":
            assert dy < 0 and abs(dy) > abs(dx)
        elif position == "side":
            assert abs(dx) > abs(dy)
        else:
            # On an end of the long axis: the part is farther from the body centre than any rim point
            # across the short axis would be.
            assert np.hypot(dx, dy) > 0.9 * np.sqrt(g.body_mask.sum() / np.pi)


def test_labels_are_balanced_and_deterministic():
    config = SyntheticConfig(num_classes=5, num_train=103)
    labels = labels_of(config, "train")
    counts = np.bincount(labels, minlength=5)
    assert counts.max() - counts.min() <= 1 and len(labels) == 103
    np.testing.assert_array_equal(labels, labels_of(config, "train"))
    assert [generate(config, "train", i).label for i in range(12)] == labels[:12].tolist()


def test_dataset_items_match_the_generator():
    dataset = build_dataset("synthetic", "val", image_size=64, **SMALL.options())
    assert len(dataset) == 8 and dataset.num_classes == 8 and len(dataset.class_names) == 8
    for index in range(3):
        g = generate(SMALL, "val", index)
        sample = dataset.load_sample(index)
        np.testing.assert_array_equal(np.asarray(sample.image), g.image)
        np.testing.assert_array_equal(sample.mask, g.mask)
        np.testing.assert_array_equal(sample.boxes, g.box)
        np.testing.assert_array_equal(dataset.records[index].boxes, g.box)
        item = dataset[index]
        assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (64, 64) and item["label"] == g.label
        np.testing.assert_array_equal(item["boxes"].numpy(), g.box)  # eval resize 64 -> 64 is the identity
    train = build_dataset("synthetic", "train", image_size=64, train=True, config=SMALL)
    assert train[0]["image"].shape == (3, 64, 64)
    counts = build_dataset("synthetic", "test", image_size=64, counts={"test": 3})
    assert len(counts) == 3


def test_body_cue_puts_class_information_in_the_body_and_zero_changes_nothing():
    default, zero = SyntheticConfig(image_size=64, num_classes=8), SyntheticConfig(image_size=64, num_classes=8, body_cue=0.0)
    for index in range(6):
        assert generate(default, "train", index).image.tobytes() == generate(zero, "train", index).image.tobytes()
    hues = {}
    for cue in (0.0, 1.0):
        config = SyntheticConfig(image_size=96, num_classes=8, body_cue=cue)
        per_image = []
        for index in range(64):
            g = generate(config, "train", index)
            hue = _hsv(g.image[g.body_mask & ~g.part_mask].mean(axis=0, keepdims=True).astype(float))[0, 0] * 360
            per_image.append((g.label, hue))
        labels, values = np.array(per_image).T
        hues[cue] = np.corrcoef(labels, values)[0, 1]
    assert hues[1.0] > 0.8  # the body's hue follows the class
    assert abs(hues[0.0]) < 0.4  # ... and does not without the cue


def test_config_validation():
    for bad in (dict(image_size=32), dict(image_size=300), dict(num_classes=1), dict(num_classes=MAX_CLASSES + 1),
                dict(clutter=1.5), dict(body_cue=-0.1), dict(body_cue=2), dict(part_position="bottom"), dict(num_train=-1), dict(seed=-3)):
        with pytest.raises(ValueError):
            SyntheticConfig(**bad)
    with pytest.raises(ValueError, match="num_val=0"):
        build_dataset("synthetic", "val", image_size=64, num_val=0)


def test_write_wsol_round_trip(tmp_path):
    config = SyntheticConfig(image_size=64, num_classes=4, num_train=5, num_val=3, num_test=4, seed=7)
    root = write_wsol(tmp_path / "bench", config, progress=False)
    assert (root / "images" / "test" / "00003.png").is_file()
    assert (root / "masks" / "test" / "00003_mask.png").is_file() and (root / "masks" / "test" / "00003_ignore.png").is_file()
    for split in ("train", "val", "test"):
        generated = build_dataset("synthetic", split, image_size=64, config=config)
        from_files = build_dataset("wsol", split, data_root=root, image_size=64)
        assert from_files.class_names == generated.class_names
        assert [r.image_id for r in from_files.records] == [r.image_id for r in generated.records]
        assert [r.label for r in from_files.records] == [r.label for r in generated.records]
        for index in range(len(generated)):
            a, b = generated.load_sample(index), from_files.load_sample(index)
            assert np.asarray(a.image).tobytes() == np.asarray(b.image).tobytes()
            np.testing.assert_array_equal(a.mask, b.mask)
            np.testing.assert_array_equal(a.boxes, b.boxes)
            assert a.label == b.label and a.image_id == b.image_id and a.size == b.size


def test_cli_helpers():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-size", type=int, default=96)
    add_synthetic_arguments(parser)
    args = parser.parse_args(["--synthetic-classes", "12", "--synthetic-train", "50", "--synthetic-val", "5",
                              "--synthetic-test", "7", "--part-position", "top", "--clutter", "0.25",
                              "--body-cue", "0.5", "--synthetic-seed", "3", "--image-size", "128"])
    config = synthetic_config_from_args(args)
    assert config == SyntheticConfig(image_size=128, num_classes=12, num_train=50, num_val=5, num_test=7,
                                     part_position="top", clutter=0.25, body_cue=0.5, seed=3)
    assert synthetic_config_from_args(args, 64).image_size == 64
    assert synthetic_config_from_args(argparse.Namespace()) == SyntheticConfig()
    assert synthetic_config_from_args(parser.parse_args([])) == SyntheticConfig()
    unset = argparse.Namespace(synthetic_classes=None, clutter=None, synthetic_seed=4)
    assert synthetic_config_from_args(unset) == SyntheticConfig(seed=4)
    assert "image_size" not in config.options() and config.options()["num_train"] == 50


def test_part_inside_lies_wholly_inside_the_body():
    config = SyntheticConfig(image_size=96, part_position="inside")
    for index in range(20):
        g = generate(config, "train", index)
        assert g.part_mask.any() and not (g.part_mask & ~g.body_mask).any()
        np.testing.assert_array_equal(g.mask.astype(bool), g.body_mask)  # the object is the body


def test_mark_look_paints_the_part_in_the_body_colour_with_a_small_class_mark():
    own, mark = SyntheticConfig(image_size=96), SyntheticConfig(image_size=96, part_look="mark")
    for index in range(10):
        a, b = generate(own, "train", index), generate(mark, "train", index)
        np.testing.assert_array_equal(a.mask, b.mask)  # same geometry, same ground truth
        np.testing.assert_array_equal(a.box, b.box)
        assert 0 < b.part_mask.sum() < 0.4 * a.part_mask.sum()  # the mark, not the whole part
        assert not (b.part_mask & ~b.mask.astype(bool)).any()
        saturation = lambda pixels: (pixels.max(1) - pixels.min(1)) / np.maximum(pixels.max(1), 1)  # noqa: E731
        head = a.part_mask & ~b.part_mask  # the part minus its mark: body-coloured in the mark look
        assert saturation(b.image[head].astype(float)).mean() < 0.7 < saturation(a.image[head].astype(float)).mean()
    with pytest.raises(ValueError, match="part_look"):
        SyntheticConfig(part_look="glow")


def test_named_benchmark_variants_are_valid_generator_options():
    from spg_core.data.synthetic import BENCHMARK_VARIANTS

    assert set(BENCHMARK_VARIANTS) == {"premise-fails", "part-inside", "premise-holds"}
    for options in BENCHMARK_VARIANTS.values():
        generate(SyntheticConfig(image_size=64, **options), "val", 0)
    assert SyntheticConfig(**BENCHMARK_VARIANTS["premise-fails"]) == SyntheticConfig()  # the default images
