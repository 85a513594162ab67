"""ResNet50 SPG backbone, as wsolevaluation reimplements SPG.

layer3 is split: its block 0 is A1 (B1 reads it), blocks 1-5 are A2 (B2 reads them); layer4 runs
with stride 1 and feeds A4 and SPG-C directly (wsolevaluation has no A3 convs on ResNet50).
layer3 has stride 2 unless large_feature_map (14x14 maps at 224, or 28x28).

Module names follow torchvision's resnet50 (conv1, bn1, layer1 ... layer4), so its weight file
loads directly (fc.* is skipped).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from spg_core.models import register_backbone
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig, LrRule, kaiming_init_


def _make_layer(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    out_channels = planes * Bottleneck.expansion
    downsample = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )
    layers = [Bottleneck(in_channels, planes, stride=stride, downsample=downsample)]
    layers += [Bottleneck(out_channels, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet50Backbone(Backbone):
    b1_channels = 1024
    b2_channels = 1024
    top_channels = 2048
    ignored_weight_prefixes = ("fc.",)
    weights_format = "a torchvision resnet50 state dict (torchvision.models.resnet50().state_dict() keys)"
    # wsolevaluation's main.py pattern for ResNet ("layer4.", "fc.") names its 10x group: layer4 only.
    # Its SPG heads (SPG_A4, SPG_B_*, SPG_C) match no pattern and train at 1x.
    wsolevaluation_lr_rule = LrRule(("layer4.",), heads=False)

    def __init__(self, large_feature_map: bool = False):
        super().__init__()
        self.large_feature_map = large_feature_map
        self.feature_stride = 8 if large_feature_map else 16
        # wsolevaluation: B entry/shared convs 1024 wide, SPG-C 2048 -> 512 -> 1, no A3.
        self.head_config = HeadConfig(a3_width=None, b_width=1024, c_width=512, dropout=0.0)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_layer(64, 64, 3, stride=1)
        self.layer2 = _make_layer(256, 128, 4, stride=2)
        self.layer3 = _make_layer(512, 256, 6, stride=1 if large_feature_map else 2)
        self.layer4 = _make_layer(1024, 512, 3, stride=1)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        b1 = self.layer3[0](x)
        x = b1
        for block in self.layer3[1:]:
            x = block(x)
        return BackboneFeatures(b1=b1, b2=x, top=self.layer4(x))


@register_backbone("resnet50")
def resnet50(large_feature_map: bool = False) -> ResNet50Backbone:
    """ResNet50 SPG backbone. large_feature_map=False (wsolevaluation's default): 14x14 maps at
    224; True: 28x28."""
    return ResNet50Backbone(large_feature_map=large_feature_map)
