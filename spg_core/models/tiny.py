"""A small CNN carrying the full SPG heads, for CPU teaching runs and the tests.

Same wiring as the Inception-v3 model at a fraction of the cost: feature stride 8 (12x12 class
maps at 96 px), B1 on a lower-level and B2 on a higher-level feature at that stride, A3/A4 and
SPG-C on the top feature. Conv + BatchNorm + ReLU throughout so it trains from scratch.
No published weights exist, so every layer is in the "new" learning-rate group.
"""
from __future__ import annotations

import torch
from torch import nn

from spg_core.models import register_backbone
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig, kaiming_init_


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(Backbone):
    feature_stride = 8
    has_pretrained_weights = False

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), b1_stride: int = 8):
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths={widths!r} must be three positive channel counts, e.g. (32, 64, 128)")
        if b1_stride not in (4, 8):
            raise ValueError(f"b1_stride={b1_stride!r} must be 4 (B1 reads the /4 stage) or 8 (the /8 stage, default)")
        w1, w2, w3 = (int(w) for w in widths)
        self.b1_stride = int(b1_stride)
        self.b2_channels = self.top_channels = w3
        self.b1_channels = w2 if self.b1_stride == 4 else w3
        self.head_config = HeadConfig(a3_width=w3, b_width=w2, c_width=w2, dropout=0.0)
        self.stem = _conv_bn_relu(3, w1, stride=2)                                         # /2
        self.stage1 = nn.Sequential(_conv_bn_relu(w1, w2, stride=2), _conv_bn_relu(w2, w2))  # /4
        self.stage2 = nn.Sequential(_conv_bn_relu(w2, w3, stride=2), _conv_bn_relu(w3, w3))  # /8 -> B1
        self.stage3 = _conv_bn_relu(w3, w3)                                                # -> B2
        self.stage4 = _conv_bn_relu(w3, w3)                                                # -> A3
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        quarter = self.stage1(self.stem(x))
        eighth = self.stage2(quarter)
        b2 = self.stage3(eighth)
        return BackboneFeatures(b1=quarter if self.b1_stride == 4 else eighth, b2=b2, top=self.stage4(b2))


@register_backbone("tiny")
def tiny(widths: tuple[int, int, int] = (32, 64, 128), b1_stride: int = 8) -> TinyBackbone:
    """Tiny SPG backbone: 12x12 maps at 96 px. widths: channels of the /2, /4 and /8 stages;
    the heads use A3 width widths[2] and B/C width widths[1]. b1_stride: 8 (default) feeds B1 the
    last /8 stage before B2's; 4 feeds it the /4 stage (finer, lower-level features, 24x24 B1
    maps at 96 px)."""
    return TinyBackbone(widths=tuple(widths), b1_stride=int(b1_stride))
