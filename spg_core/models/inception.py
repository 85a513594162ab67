"""Inception-v3 truncated after Mixed_6e, in the authors' resolution-keeping layout (paper §3.3).

Changes from torchvision's Inception3, all from the authors' code: Conv2d_1a_3x3 has padding 1,
both stem max-pools are k3 s2 p1 with ceil_mode, and Mixed_6a has stride 1 (its pool branch is a
k3 s1 p1 max-pool). That gives 28x28 maps at 224 input (40x40 at 321). wsolevaluation adds a
max-pool after Mixed_5d unless large_feature_map=True (14x14 at 224).

B1 reads the Mixed_5d output (288 ch), B2 the Mixed_6d output (768 ch: the authors' code, where
the paper text says A1/A2), A3 the Mixed_6e output. Module names follow torchvision, so its
inception_v3 weight file loads (Mixed_7*, AuxLogits and fc are skipped).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionC

from spg_core.models import register_backbone
from spg_core.models.heads import Backbone, BackboneFeatures, HeadConfig, LrRule, kaiming_init_


class InceptionBStride1(nn.Module):
    """Mixed_6a without its stride-2 reduction; same parameter names as torchvision's InceptionB."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=1, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionV3Backbone(Backbone):
    b1_channels = 288
    b2_channels = 768
    top_channels = 768
    ignored_weight_prefixes = ("Mixed_7", "AuxLogits.", "fc.")
    weights_format = ("a torchvision inception_v3 state dict "
                      "(torchvision.models.inception_v3(aux_logits=True).state_dict() keys)")
    # wsolevaluation's main.py patterns for Inception (Mixed*, Conv2d_1..4*) are the whole backbone,
    # its 1x group: the SPG heads alone train at 10x, as under the paper's rule.
    wsolevaluation_lr_rule = LrRule((), heads=True)

    def __init__(self, large_feature_map: bool = True, dropout: float = 0.5, transform_input: bool = False):
        super().__init__()
        self.large_feature_map = large_feature_map
        self.transform_input = transform_input
        self.feature_stride = 8 if large_feature_map else 16
        # Both reference codes use dropout 0.5 before A3's convs and A4, and SPG-B/C widths 512.
        self.head_config = HeadConfig(a3_width=1024, b_width=512, c_width=512, dropout=dropout)

        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2, padding=1)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionBStride1(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        if self.transform_input:
            # ImageNet mean/std normalisation -> the [-1, 1] scaling Google's weights were trained on
            # (torchvision's transform_input).
            mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            x = (x * std + mean - 0.5) / 0.5
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        if not self.large_feature_map:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        b1 = x
        x = self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x))))
        b2 = x
        return BackboneFeatures(b1=b1, b2=b2, top=self.Mixed_6e(x))


@register_backbone("inception_v3")
def inception_v3(
    large_feature_map: bool = True, dropout: float = 0.5, transform_input: bool = False
) -> InceptionV3Backbone:
    """Inception-v3 SPG backbone.

    large_feature_map=True: the authors' layout (28x28 at 224). False: wsolevaluation's default,
    a max-pool after Mixed_5d (14x14 at 224). dropout: before each A3 conv and A4 (train only).
    transform_input: rescale ImageNet-normalised input to the [-1, 1] range of torchvision's
    inception_v3 weights (ported from TensorFlow). Off by default, as in wsolevaluation, which
    feeds ImageNet-normalised images straight in.
    """
    return InceptionV3Backbone(large_feature_map=large_feature_map, dropout=dropout,
                               transform_input=transform_input)
