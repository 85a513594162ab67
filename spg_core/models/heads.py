"""The layers SPG adds on top of any backbone (paper §3.1, Fig. 2), and the contract a backbone meets.

- SPG-A3 + SPG-A4: the classifier. A4 is a 1×1 conv to C channels whose output *is* the class
  activation map (`class_maps`); the logits are its global average (the ACoL trick: the map is
  produced in the forward pass, no CAM re-weighting afterwards).
- SPG-B: two branches on a lower (B1) and a higher (B2) backbone feature. Each has its own
  entry conv, then both go through ONE shared top block. Sharing is part of the method (paper
  Table 5: no sharing raises ILSVRC GT-known error 35.31 -> 36.31).
- SPG-C: reads the A3 output; its output only supervises A3 through its gradient and is never
  fed back into the classifier. Its depth is a choice (``SPG_C_DEPTHS``): one 3×3 conv then the
  1×1, as both reference codes build it (the default), or two 3×3 convs then the 1×1, as paper
  §3.3 describes it.

New convs use Xavier-uniform weights and zero bias, as both reference codes do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from spg_core.config import SPG_C_DEPTHS


@dataclass(frozen=True)
class HeadConfig:
    """Channel widths of the SPG heads for one backbone.

    a3_width: width of the two SPG-A3 convs; None means no A3 convs (A4 reads the backbone
        output directly, as wsolevaluation's ResNet50 does).
    b_width: width of the B1/B2 entry convs and of the shared top block.
    c_width: width of the SPG-C hidden conv.
    dropout: dropout probability before each A3 conv and before A4 (the authors' Inception-v3
        recipe); 0 disables it.
    """

    a3_width: int | None
    b_width: int
    c_width: int
    dropout: float = 0.0


class LrRule(NamedTuple):
    """Which parameters one learning-rate rule trains at the 10× rate on one backbone: the backbone
    parameters whose names (relative to the backbone) start with one of ``backbone_prefixes``
    (``""`` matches them all), and the SPG heads (A3, A4, B, C) when ``heads``. The rest train at
    the base rate. The rules are chosen by name in ``SPGModel.lr_rule``."""

    backbone_prefixes: tuple[str, ...]
    heads: bool

    def tenfold(self, name: str) -> bool:
        """Whether the parameter ``name`` (an ``SPGModel`` parameter name) is in the 10× group."""
        if name.startswith("backbone."):
            return name[len("backbone."):].startswith(self.backbone_prefixes)
        return self.heads


class BackboneFeatures(NamedTuple):
    """What a backbone hands to the heads: B1 input, B2 input, and the input of A3/A4."""

    b1: torch.Tensor
    b2: torch.Tensor
    top: torch.Tensor


class Backbone(nn.Module):
    """Base class of the backbones: forward(x) -> BackboneFeatures.

    Subclasses set the attributes below. Parameter names inside a backbone follow torchvision's
    own model, so torchvision weight files load with `load_backbone_weights`.
    """

    b1_channels: int
    b2_channels: int
    top_channels: int
    head_config: HeadConfig
    # Nominal stride of the class maps: their side is about input_side / feature_stride.
    feature_stride: int
    # False when no published weights exist, so every layer counts as new (10x lr group).
    has_pretrained_weights: bool = True
    # Keys of the torchvision file that belong to layers this truncated backbone drops.
    ignored_weight_prefixes: tuple[str, ...] = ()
    # Keys of new backbone layers that no weight file holds (they keep their initialisation).
    new_weight_prefixes: tuple[str, ...] = ()
    # Named in load errors, so the user knows which file the backbone expects.
    weights_format: str = "a state dict saved from this backbone"
    # Weights known by name rather than path (e.g. {"imagenet": loader}); loader(model) loads them.
    named_weights: dict = {}
    # The learning-rate groups clovaai/wsolevaluation's main.py forms on this backbone
    # (``--lr-groups wsolevaluation``); None where wsolevaluation does not train it.
    wsolevaluation_lr_rule: LrRule | None = None

    def forward(self, x: torch.Tensor) -> BackboneFeatures:  # pragma: no cover - abstract
        raise NotImplementedError


def conv3x3_relu(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
                         nn.ReLU(inplace=True))


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero bias for every conv of a new head."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


# Dilation of SPG-A3's two 3×3 convs (model option ``a3_dilation``; 1 in both reference codes).
# Why: the attention map can only light a body pixel for the class if A3 there sees the
# class-deciding part. Inception-v3's A3 at 28×28 sees the whole image; ``tiny``'s A3 reads about
# ±2 cells of its /8 map (±16 px at 96 px), while a body reaches 60 px from its head. SPG-C's
# gradient raises on the body the A3 features that are active there; when those see no class,
# the class weights of A4 read them with whatever sign their start gave them.
A3_DILATION_DEFAULT = 1


def check_a3_dilation(dilation) -> int:
    """``dilation`` if it is an integer in 1..4, else a ValueError naming it and the fix."""
    if isinstance(dilation, bool) or not isinstance(dilation, int) or not 1 <= dilation <= 4:
        raise ValueError(f"a3_dilation={dilation!r} must be an integer in 1..4 (1 = plain 3×3 convs, both "
                         f"reference codes), e.g. --model-option a3_dilation=2")
    return dilation


def build_spg_a3(in_channels: int, config: HeadConfig, dilation: int = A3_DILATION_DEFAULT) -> tuple[nn.Module, int]:
    """SPG-A3 -> (module, output channels). ``dilation``: of both 3×3 convs (A3_DILATION_DEFAULT).

    Dropout sits before each A3 conv and before A4, as in both reference codes. nn.Dropout
    follows .training; the authors' `F.dropout(x, 0.5)` is on at test time too in modern PyTorch.
    """
    dilation = check_a3_dilation(dilation)
    layers: list[nn.Module] = []
    width = in_channels
    if config.a3_width is not None:
        for _ in range(2):
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            layers.append(conv3x3_relu(width, config.a3_width, dilation))
            width = config.a3_width
    if config.dropout > 0:
        layers.append(nn.Dropout(config.dropout))
    module = nn.Sequential(*layers) if layers else nn.Identity()
    xavier_init_(module)
    return module, width


def build_spg_a4(in_channels: int, num_classes: int) -> nn.Conv2d:
    """SPG-A4: 1×1 conv to the class maps."""
    conv = nn.Conv2d(in_channels, num_classes, 1)
    xavier_init_(conv)
    return conv


def _guidance_top(width: int) -> nn.Sequential:
    return nn.Sequential(conv3x3_relu(width, width), nn.Conv2d(width, 1, 1))


class SPGBranches(nn.Module):
    """SPG-B: B1 and B2 logit maps (sigmoid is applied where they are used).

    With share=True, `b1_top` and `b2_top` are the same module object, so both branches train
    one set of top weights (paper §3.1). share=False is the "no-share" ablation.
    """

    def __init__(self, b1_channels: int, b2_channels: int, width: int, share: bool = True):
        super().__init__()
        self.b1_entry = conv3x3_relu(b1_channels, width)
        self.b2_entry = conv3x3_relu(b2_channels, width)
        self.b1_top = _guidance_top(width)
        self.b2_top = self.b1_top if share else _guidance_top(width)
        xavier_init_(self)

    @property
    def shared(self) -> bool:
        return self.b1_top is self.b2_top

    def forward(self, b1_features: torch.Tensor, b2_features: torch.Tensor):
        b1 = self.b1_top(self.b1_entry(b1_features))
        b2 = self.b2_top(self.b2_entry(b2_features))
        return b1, b2


# How SPG-C's output conv starts. "zero" (default): logit 0 everywhere, so C's first loss is
# ln 2 and its gradient into A3 grows with C's own output weights. "xavier" (both reference
# codes): when the guidance switches on after a warm-up, A3's ReLU features have been scaled up by
# the classification loss, a Xavier output conv on them starts with logits in the tens, C's first
# BCE is 3-9, and its gradient rewrites A3 at the heads' learning rate: measured on lite0_cut,
# the classifier fell from 90 % to chance within 20 steps (docs/teaching_recipe.md, "SPG-C's first steps").
C_INITS = ("zero", "xavier")

# SPG-C reading a BatchNorm of A3 (model option ``c_input_norm``; on by default, off in both
# reference codes: ``--model-option c_input_norm=false`` restores them): A3's few huge activations
# on the discriminative part kill SPG-C's first ReLUs, and a dead SPG-C sends no gradient into A3;
# measured in docs/results.md ("SPG-C dies, and how to keep it alive"). Runs saved before
# it was the default say so in their weights (``saved_head_options``).
C_INPUT_NORM_DEFAULT = True

# Number of 3×3 convs (+ReLU) of SPG-C before its 1×1 output conv (model option ``spg_c_depth``,
# ``--spg-c-depth``): 1 in both reference codes (the default), 2 as paper §3.3 describes SPG-C (two
# 3×3 convs of 512 filters, then the 1×1).
# (The tuple lives in spg_core.config, so the CLI needs no torch.)


def check_spg_c_depth(depth) -> int:
    """``depth`` if it is one of SPG_C_DEPTHS, else a ValueError naming it and the choices."""
    if isinstance(depth, bool) or depth not in SPG_C_DEPTHS:
        raise ValueError(f"spg_c_depth={depth!r} is unknown; use 1 (one 3×3 conv, both reference codes) or 2 "
                         f"(two 3×3 convs, paper §3.3), e.g. --spg-c-depth 2")
    return int(depth)


def build_spg_c(in_channels: int, width: int, init: str = "zero", depth: int = 1,
                input_norm: bool = C_INPUT_NORM_DEFAULT) -> nn.Sequential:
    """SPG-C on the A3 output: ``depth`` conv3×3 + ReLU of ``width`` channels (SPG_C_DEPTHS), then
    conv1×1 -> 1 logit map. ``init``: how the output conv starts, see C_INITS. ``input_norm``: a
    BatchNorm of A3 in front of the first conv (model option ``c_input_norm``, see C_INPUT_NORM_DEFAULT)."""
    if init not in C_INITS:
        raise ValueError(f"c_init={init!r} is unknown; choose one of {C_INITS}")
    if not isinstance(input_norm, bool):
        raise ValueError(f"c_input_norm={input_norm!r} must be true or false, e.g. --model-option c_input_norm=true")
    depth = check_spg_c_depth(depth)
    hidden = [conv3x3_relu(in_channels if i == 0 else width, width) for i in range(depth)]
    norm = [nn.BatchNorm2d(in_channels)] if input_norm else []
    module = nn.Sequential(*norm, *hidden, nn.Conv2d(width, 1, 1))
    xavier_init_(module)
    if init == "zero":
        nn.init.zeros_(module[-1].weight)
    return module


def kaiming_init_(module: nn.Module) -> None:
    """Initialisation for backbone layers trained from scratch (torchvision's ResNet/VGG rule).

    Pretrained runs overwrite it with `load_backbone_weights`.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
