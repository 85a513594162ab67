"""VGG16 SPG backbone, as wsolevaluation reimplements SPG (the authors released Inception only).

conv1-conv3 + pool3 form the stem; A1 is the conv4 block (B1 reads it), followed by a k3 s2 p1
max-pool unless large_feature_map; A2 is the conv5 block (B2 and A3 read it); pool5 and the fully
connected layers are dropped. A3 is two new conv3x3 512 without dropout. B1 reads the pooled
conv4 output, as in wsolevaluation, so B1 and B2 share a resolution.

`features` keeps torchvision's vgg16 indices (features.0 ... features.28), so its weight file
loads directly (classifier.* is skipped).
"""
from __future__ import annotations

import torch
from torch import nn

from spg_core.models import register_backbone
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig, LrRule, kaiming_init_

_POOL4 = 23  # index of pool4 in torchvision's vgg16.features
_CONV5_END = 29  # last ReLU of conv5; pool5 (index 30) is dropped
# The conv4 and conv5 convs. wsolevaluation renames them SPG_A_1.* / SPG_A_2.* when it loads the
# weights, so its main.py pattern "features." (the 1x group) leaves them in the 10x group.
_CONV4_CONV5 = (17, 19, 21, 24, 26, 28)


def _vgg16_features(large_feature_map: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for block, (width, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for _ in range(convs):
            layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = width
        if block < 3:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif block == 3:
            # wsolevaluation's pool after conv4; an Identity keeps conv5 at torchvision's indices.
            layers.append(nn.Identity() if large_feature_map else nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*layers)


class VGG16Backbone(Backbone):
    b1_channels = 512
    b2_channels = 512
    top_channels = 512
    ignored_weight_prefixes = ("classifier.",)
    weights_format = "a torchvision vgg16 state dict (torchvision.models.vgg16().state_dict() keys)"
    wsolevaluation_lr_rule = LrRule(tuple(f"features.{index}." for index in _CONV4_CONV5), heads=True)

    def __init__(self, large_feature_map: bool = False):
        super().__init__()
        self.large_feature_map = large_feature_map
        self.feature_stride = 8 if large_feature_map else 16
        self.head_config = HeadConfig(a3_width=512, b_width=512, c_width=512, dropout=0.0)
        self.features = _vgg16_features(large_feature_map)
        assert len(self.features) == _CONV5_END + 1
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        b1 = None
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == _POOL4:
                b1 = x
        return BackboneFeatures(b1=b1, b2=x, top=x)


@register_backbone("vgg16")
def vgg16(large_feature_map: bool = False) -> VGG16Backbone:
    """VGG16 SPG backbone. large_feature_map=False (wsolevaluation's default): 14x14 maps at 224;
    True: 28x28."""
    return VGG16Backbone(large_feature_map=large_feature_map)
