"""Tests of spg_core.models: the SPG heads on every registered backbone (CPU, small inputs)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn

from spg_core.models import LR_GROUPS, VARIANTS, build_model, list_backbones, load_backbone_weights, saved_head_options

NUM_CLASSES = 3
SIZES = (32, 48)

GUIDANCE_KEYS = {
    "spg": {"b1", "b2", "c"},
    "plain": set(),
    "no-share": {"b1", "b2", "c"},
    "no-c": {"b1", "b2"},
    "no-cascade": {"b1", "b2", "c"},
}

# Constructors of the torchvision architectures whose weight files our backbones load.
TORCHVISION_ARCHITECTURES = {
    "inception_v3": lambda: torchvision.models.inception_v3(
        weights=None, aux_logits=True, init_weights=False),
    "vgg16": lambda: torchvision.models.vgg16(weights=None),
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
}


def _build(name: str, variant: str = "spg", **options):
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, variant, **options)


def _new_convs(model) -> list[nn.Conv2d]:
    heads = [model.spg_a3, model.spg_a4, model.spg_b, model.spg_c]
    return [m for head in heads if head is not None for m in head.modules() if isinstance(m, nn.Conv2d)]


def test_variants_match_the_paper_ablations():
    assert set(VARIANTS) == set(GUIDANCE_KEYS)


def test_registry_lists_the_backbones():
    names = list_backbones()
    assert names == sorted(names)
    assert {"tiny", "inception_v3", "vgg16", "resnet50"} <= set(names)


def test_unknown_names_raise_with_the_valid_choices():
    with pytest.raises(ValueError, match="tiny") as error:
        build_model("alexnet", NUM_CLASSES)
    assert "alexnet" in str(error.value)
    with pytest.raises(ValueError, match="no-share") as error:
        build_model("tiny", NUM_CLASSES, variant="shared")
    assert "shared" in str(error.value)
    with pytest.raises(ValueError, match="widths") as error:
        build_model("tiny", NUM_CLASSES, large_feature_map=True)
    assert "large_feature_map" in str(error.value)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny", 0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", list_backbones())
def test_outputs_and_structure(name, variant):
    model = _build(name, variant)
    assert (model.backbone_name, model.variant, model.num_classes) == (name, variant, NUM_CLASSES)
    stride = model.backbone.feature_stride
    expected_guidance = GUIDANCE_KEYS[variant]
    batch = 2  # BatchNorm needs more than one value per channel in training mode

    for size in SIZES:
        # One batch shape per size: each new shape costs every conv a kernel set-up.
        x = torch.randn(batch, 3, size, size)
        for training in (True, False):
            model.train(training)
            with torch.no_grad():
                out = model(x)
            assert set(out) == {"logits", "class_maps"} | (expected_guidance if training else set())
            logits, class_maps = out["logits"], out["class_maps"]
            assert logits.shape == (batch, NUM_CLASSES)
            assert class_maps.shape[:2] == (batch, NUM_CLASSES)
            h, w = class_maps.shape[2:]
            assert h == w and abs(h - size / stride) < 1, f"{h}x{w} maps at {size} px, stride {stride}"
            torch.testing.assert_close(logits, class_maps.mean(dim=(2, 3)), rtol=0, atol=0)
            for key in ("b1", "b2"):
                if key in out:
                    assert out[key].ndim == 4 and out[key].shape[:2] == (batch, 1)
            if "c" in out:
                assert out["c"].shape == (batch, 1, h, w)

    # Eval mode: B/C only when asked for, and deterministic (no dropout at test time).
    x = torch.randn(batch, 3, SIZES[0], SIZES[0])
    with torch.no_grad():
        plain = model(x)
        guided = model(x, with_guidance=True)
    assert set(guided) == {"logits", "class_maps"} | expected_guidance
    torch.testing.assert_close(plain["class_maps"], guided["class_maps"], rtol=0, atol=0)

    if variant == "plain":
        assert model.spg_b is None and model.spg_c is None
        assert not any(n.startswith(("spg_b.", "spg_c.")) for n, _ in model.named_parameters())
    else:
        assert model.spg_b is not None
        assert (model.spg_b.b1_top is model.spg_b.b2_top) == (variant != "no-share")
        assert (model.spg_c is None) == (variant == "no-c")


@pytest.mark.parametrize("variant", ["spg", "no-cascade", "no-share"])
def test_b_top_block_is_one_module_unless_no_share(variant):
    branches = _build("tiny", variant).spg_b
    if variant == "no-share":
        assert branches.b1_top is not branches.b2_top
        b1_params = {id(p) for p in branches.b1_top.parameters()}
        assert b1_params.isdisjoint(id(p) for p in branches.b2_top.parameters())
    else:
        assert branches.b1_top is branches.b2_top
        # One set of weights receives the gradients of both branches.
        b1, b2 = branches(torch.randn(1, branches.b1_entry[0].in_channels, 6, 6),
                          torch.randn(1, branches.b2_entry[0].in_channels, 6, 6))
        b1.sum().backward()
        grad_from_b1 = branches.b1_top[1].weight.grad.clone()
        b2.sum().backward()
        assert not torch.equal(grad_from_b1, branches.b1_top[1].weight.grad)


@pytest.mark.parametrize("size, large_feature_map, side", [(224, True, 28), (224, False, 14)])
def test_inception_class_map_size_at_224(size, large_feature_map, side):
    model = _build("inception_v3", large_feature_map=large_feature_map).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size), with_guidance=True)
    assert out["class_maps"].shape == (1, NUM_CLASSES, side, side)
    assert out["b1"].shape == out["b2"].shape == out["c"].shape == (1, 1, side, side)


@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_large_feature_map_doubles_the_map_side(name):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        small = _build(name, "plain").eval()(x)["class_maps"]
        large = _build(name, "plain", large_feature_map=True).eval()(x)["class_maps"]
    assert small.shape[-1] == 2 and large.shape[-1] == 4


def test_inception_dropout_is_on_in_training_only():
    model = _build("inception_v3", "plain")
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x)["class_maps"], model(x)["class_maps"])
        model.eval()
        torch.testing.assert_close(model(x)["class_maps"], model(x)["class_maps"], rtol=0, atol=0)
    no_dropout = _build("inception_v3", "plain", dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in no_dropout.modules())


def test_inception_transform_input_matches_torchvision():
    model = _build("inception_v3", "plain").eval()
    x = torch.randn(1, 3, 32, 32)
    rescaled = torchvision.models.Inception3._transform_input(SimpleNamespace(transform_input=True), x)
    with torch.no_grad():
        reference = model(rescaled)["class_maps"]
        model.backbone.transform_input = True
        torch.testing.assert_close(model(x)["class_maps"], reference)


@pytest.mark.parametrize("name", ["tiny", "vgg16", "resnet50"])
def test_wsolevaluation_backbones_have_no_dropout(name):
    assert not any(isinstance(m, nn.Dropout) for m in _build(name, "plain").modules())


@pytest.mark.parametrize("name", list_backbones())
def test_new_convs_are_xavier_uniform_with_zero_bias(name):
    model = _build(name, c_init="xavier")  # the reference codes' start (the default zeroes C's output conv)
    convs = _new_convs(model)
    assert convs
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weight = conv.weight.detach()
        assert weight.abs().max() <= bound + 1e-6
        # Uniform(-a, a) has std a/sqrt(3); PyTorch's default conv init has a far smaller std.
        assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.15)
        assert conv.bias is not None and torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize("name", list_backbones())
def test_parameter_groups_split_backbone_from_heads(name):
    model = _build(name)
    pretrained, new = model.parameter_groups()
    pretrained_ids, new_ids = {id(p) for p in pretrained}, {id(p) for p in new}
    assert pretrained_ids.isdisjoint(new_ids)
    assert pretrained_ids | new_ids == {id(p) for p in model.parameters()}
    assert len(pretrained) + len(new) == len(list(model.parameters()))  # no duplicates
    if model.backbone.has_pretrained_weights:
        assert pretrained_ids == {id(p) for p in model.backbone.parameters()}
    else:
        assert pretrained == []


def _expected_tenfold(backbone: str, rule: str, names: list[str]) -> set[str] | None:
    """The parameter names each learning-rate rule trains at 10×, written out per backbone; None
    where the rule must be refused."""
    heads = {n for n in names if not n.startswith("backbone.")}  # A3, A4, B, C
    if rule == "paper":
        return set(names) if backbone == "tiny" else heads  # tiny has no published weights: all new
    # wsolevaluation main.py: VGG "features." (conv1-3, as it renames conv4/conv5) at 1x; ResNet
    # "layer4."/"fc." at 10x (its SPG heads at 1x); Inception Mixed*/Conv2d_* at 1x.
    if backbone == "vgg16":
        return heads | {f"backbone.features.{i}.{kind}" for i in (17, 19, 21, 24, 26, 28) for kind in ("weight", "bias")}
    if backbone == "resnet50":
        return {n for n in names if n.startswith("backbone.layer4.")}
    if backbone == "inception_v3":
        return heads
    return None


@pytest.mark.parametrize("name", list_backbones())
def test_each_lr_rule_puts_every_parameter_in_one_group_and_the_expected_ones_at_10x(name):
    model = _build(name)
    names = [n for n, _ in model.named_parameters()]
    for rule in LR_GROUPS:
        expected = _expected_tenfold(name, rule, names)
        if expected is None:
            with pytest.raises(ValueError, match="--lr-groups paper") as error:
                model.parameter_groups(rule)
            assert name in str(error.value)
            continue
        base, tenfold = model.named_parameter_groups(rule)
        assert set(base).isdisjoint(tenfold) and sorted([*base, *tenfold]) == sorted(names), rule
        assert set(tenfold) == expected and expected <= set(names), rule
        assert expected, rule  # every rule trains something at 10x
        base_params, tenfold_params = model.parameter_groups(rule)
        assert [id(p) for p in tenfold_params] == [id(p) for p in tenfold.values()]
        assert len(base_params) + len(tenfold_params) == len(list(model.parameters()))  # each parameter once
    with pytest.raises(ValueError, match="paper, wsolevaluation"):
        model.parameter_groups("authors")


def test_without_guidance_b_and_c_are_not_computed():
    model = _build("tiny").train()
    calls = []
    model.spg_b.register_forward_hook(lambda *args: calls.append("b"))
    model.spg_c.register_forward_hook(lambda *args: calls.append("c"))
    out = model(torch.randn(2, 3, 32, 32), with_guidance=False)
    assert set(out) == {"logits", "class_maps"} and calls == []
    model(torch.randn(2, 3, 32, 32))
    assert calls == ["b", "c"]


def test_spg_c_output_never_reaches_the_classifier():
    model = _build("tiny").train()
    out = model(torch.randn(2, 3, 32, 32))
    out["logits"].sum().backward()
    assert all(p.grad is None for p in model.spg_c.parameters())
    assert all(p.grad is None for p in model.spg_b.parameters())
    model.zero_grad(set_to_none=True)
    out = model(torch.randn(2, 3, 32, 32))
    out["c"].sum().backward()
    # SPG-C trains A3 (paper §3.1) but not A4.
    assert model.spg_a3[0][0].weight.grad is not None and model.spg_a4.weight.grad is None


def test_tiny_runs_under_bfloat16_autocast_and_channels_last():
    model = _build("tiny").to(memory_format=torch.channels_last).train()
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    loss = out["logits"].float().logsumexp(1).mean() + sum(out[k].float().mean() for k in ("b1", "b2", "c"))
    loss.backward()
    assert out["class_maps"].shape == (2, NUM_CLASSES, 4, 4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- load_backbone_weights -------------------------------------------------------------------

def _torchvision_state_dict(name: str, keep_ignored: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors with the keys and shapes of torchvision's architecture (nothing downloaded).

    Built on the meta device, so no full-size torchvision model is allocated; the layers our
    truncated backbones drop get small stand-in tensors (only their keys matter).
    """
    with torch.device("meta"):
        reference = TORCHVISION_ARCHITECTURES[name]().state_dict()
    ignored = _build(name).backbone.ignored_weight_prefixes
    generator = torch.Generator().manual_seed(1)
    state = {}
    for key, tensor in reference.items():
        if key.startswith(ignored):
            if keep_ignored:
                state[key] = torch.zeros(1)
        elif tensor.dtype == torch.long:
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(tensor.shape, generator=generator)
    return state


@pytest.mark.parametrize("name", sorted(TORCHVISION_ARCHITECTURES))
def test_torchvision_weight_files_load_into_the_backbone(name, tmp_path):
    state = _torchvision_state_dict(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    model = _build(name, "plain")
    load_backbone_weights(model, path)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


def test_checkpoint_wrappers_and_old_batchnorm_files_load(tmp_path):
    state = _torchvision_state_dict("inception_v3", keep_ignored=False)
    # Files written before PyTorch 0.4.1 have no BatchNorm step counters.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = _build("inception_v3", "plain")
    load_backbone_weights(model, path)
    torch.testing.assert_close(model.backbone.Mixed_6e.branch_pool.conv.weight,
                               state["Mixed_6e.branch_pool.conv.weight"], rtol=0, atol=0)
    torch.save({"model": state}, path)
    load_backbone_weights(_build("inception_v3", "plain"), path)


def test_wrong_keys_raise_naming_the_keys_and_file_and_load_nothing(tmp_path):
    state = _torchvision_state_dict("vgg16")
    state["features.0.weight_renamed"] = state.pop("features.0.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    model = _build("vgg16", "plain")
    before = model.backbone.features[2].weight.detach().clone()
    with pytest.raises(ValueError) as error:
        load_backbone_weights(model, path)
    message = str(error.value)
    assert "features.0.weight_renamed" in message and "missing keys (1): features.0.weight" in message
    assert "renamed.pth" in message
    torch.testing.assert_close(model.backbone.features[2].weight, before, rtol=0, atol=0)


def test_wrong_shapes_and_foreign_files_raise(tmp_path):
    state = _torchvision_state_dict("vgg16")
    state["features.28.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "shapes.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="features.28.weight"):
        load_backbone_weights(_build("vgg16", "plain"), path)
    # A VGG file handed to the ResNet backbone: every key is wrong.
    with pytest.raises(ValueError, match="resnet50"):
        load_backbone_weights(_build("resnet50", "plain"), path)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="state dict"):
        load_backbone_weights(_build("tiny"), tmp_path / "list.pth")
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_backbone_weights(_build("tiny"), tmp_path / "absent.pth")


def test_tiny_b1_stride_4_reads_the_finer_stage():
    model = build_model("tiny", NUM_CLASSES, b1_stride=4).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["b1"].shape == (2, 1, 16, 16) and out["b2"].shape == (2, 1, 8, 8)
    assert out["class_maps"].shape == (2, NUM_CLASSES, 8, 8)
    with pytest.raises(ValueError, match="b1_stride=2"):
        build_model("tiny", NUM_CLASSES, b1_stride=2)


@pytest.mark.parametrize("name", ["tiny", "lite0_cut"])
def test_spg_c_output_starts_at_zero_by_default(name):
    model = _build(name)
    output = model.spg_c[-1]
    assert torch.count_nonzero(output.weight) == 0 and torch.count_nonzero(output.bias) == 0
    assert torch.count_nonzero(model.spg_c[1][0].weight) > 0  # the hidden conv (after the input BatchNorm) stays Xavier
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert torch.count_nonzero(out["c"]) == 0  # logit 0: C's first loss is ln 2 on every seed
    with pytest.raises(ValueError, match="c_init"):
        _build(name, c_init="ones")


@pytest.mark.parametrize("name", ["tiny", "inception_v3"])
def test_spg_c_of_either_depth_builds_and_gives_the_same_map(name):
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    for depth in (1, 2):
        model = _build(name, spg_c_depth=depth).train()
        assert model.spg_c_depth == depth
        convs = [m for m in model.spg_c.modules() if isinstance(m, nn.Conv2d)]
        hidden, output = convs[:-1], convs[-1]
        assert [c.kernel_size for c in hidden] == [(3, 3)] * depth and output.kernel_size == (1, 1)
        width = model.backbone.head_config.c_width
        assert [c.out_channels for c in hidden] == [width] * depth and output.out_channels == 1
        assert hidden[0].in_channels == model.spg_a4.in_channels and all(c.in_channels == width for c in hidden[1:])
        assert torch.count_nonzero(output.weight) == 0  # the default zero start, whatever the depth
        shapes[depth] = model(x)["c"].shape
    assert shapes[1] == shapes[2]
    if name == "inception_v3":  # paper §3.3: two 3x3 convs of 512 filters on A3's 1024 channels
        assert (hidden[0].in_channels, width) == (1024, 512)


@pytest.mark.parametrize("depth", [0, 3, True, "2"])
def test_a_bad_spg_c_depth_names_the_value_and_the_choices(depth):
    with pytest.raises(ValueError, match="spg_c_depth") as error:
        _build("tiny", spg_c_depth=depth)
    assert repr(depth) in str(error.value) and "--spg-c-depth 2" in str(error.value)
    with pytest.raises(ValueError, match="spg_c_depth"):  # refused even where the variant has no SPG-C
        _build("tiny", "plain", spg_c_depth=depth)


def test_depth_one_keeps_the_parameter_names_of_earlier_checkpoints():
    names = {n for n in _build("tiny", c_input_norm=False).state_dict() if n.startswith("spg_c.")}
    assert names == {"spg_c.0.0.weight", "spg_c.0.0.bias", "spg_c.1.weight", "spg_c.1.bias"}


def test_spg_c_reads_a_batchnorm_of_a3_by_default_and_saved_runs_keep_their_heads():
    assert isinstance(_build("tiny").spg_c[0], nn.BatchNorm2d)
    # A run saved before the default changed has no `c_input_norm` in its config: its weights say which.
    old, new = _build("tiny", c_input_norm=False).state_dict(), _build("tiny").state_dict()
    assert saved_head_options({}, old) == {"c_input_norm": False}
    assert saved_head_options({"a3_dilation": 2}, new) == {"a3_dilation": 2, "c_input_norm": True}
    assert saved_head_options({"c_input_norm": False}, new) == {"c_input_norm": False}  # the config wins
    assert saved_head_options({}, _build("tiny", "plain").state_dict()) == {}  # no SPG-C: nothing to read
    rebuilt = build_model("tiny", NUM_CLASSES, "spg", **saved_head_options({}, old))
    rebuilt.load_state_dict(old)  # strict: the same heads


def test_spg_c_input_norm_makes_c_blind_to_the_scale_of_a3():
    plain_c, normed_c = _build("tiny", c_input_norm=False).spg_c.train(), _build("tiny").spg_c.train()
    assert isinstance(normed_c[0], nn.BatchNorm2d) and not isinstance(plain_c[0], nn.BatchNorm2d)
    for c in (plain_c, normed_c):
        nn.init.normal_(c[-1].weight)  # a trained output conv, so the logits show the hidden layer
    a3 = torch.relu(torch.randn(4, normed_c[0].num_features, 6, 6))
    # The classifier can blow A3 up by orders of magnitude; a normalised SPG-C sees the same input.
    assert torch.allclose(normed_c(a3), normed_c(a3 * 1000), atol=1e-3)
    assert not torch.allclose(plain_c(a3), plain_c(a3 * 1000), atol=1e-3)
    with pytest.raises(ValueError, match="c_input_norm=true"):
        _build("tiny", c_input_norm="yes")


def test_a3_dilation_widens_what_a3_sees_without_new_weights():
    plain, dilated = _build("tiny", c_input_norm=True), _build("tiny", c_input_norm=True, a3_dilation=2)
    # Same parameters (a run's weights load either way), same map size, convs dilated as asked.
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}
    convs = [m for m in dilated.spg_a3.modules() if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in convs] == [(2, 2), (2, 2)]
    x = torch.randn(1, 3, 96, 96)
    assert dilated.eval()(x)["class_maps"].shape == plain.eval()(x)["class_maps"].shape == (1, NUM_CLASSES, 12, 12)
    # A3 alone: a feature 4 cells to the side reaches the centre through two 3×3 convs of
    # dilation 2 (±4 cells), not through two plain ones (±2 cells).
    for a3, reaches in ((plain.spg_a3, False), (dilated.spg_a3, True)):
        top = torch.rand(1, a3[0][0].in_channels, 12, 12).requires_grad_()
        a3(top)[0, :, 6, 6].sum().backward()
        assert bool(top.grad[0, :, 6, 10].abs().sum() > 0) is reaches
    for bad in (0, 5, 1.5, "2", True):
        with pytest.raises(ValueError, match="a3_dilation"):
            _build("tiny", a3_dilation=bad)
