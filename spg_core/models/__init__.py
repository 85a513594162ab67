"""SPG networks: a registry of backbones, each carrying the same SPG heads (heads.py).

    model = build_model("inception_v3", num_classes=200)       # authors' layout, 28x28 maps at 224
    model = build_model("inception_v3", 200, large_feature_map=False)   # wsolevaluation, 14x14
    load_backbone_weights(model, "inception_v3_google-0cc3c7bd.pth")     # a local torchvision file
    out = model(images)            # train mode: logits, class_maps, b1, b2, c
    out = model.eval()(images)     # eval mode: logits, class_maps only (test cost = SPG-plain)

A backbone registers itself with `@register_backbone("name")` on a factory that takes keyword
options and returns a `Backbone` (heads.py); the tests are parametrised over the registry.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch
from torch import nn

from spg_core.config import LR_GROUPS
from spg_core.models.heads import (
    A3_DILATION_DEFAULT,
    Backbone,
    C_INPUT_NORM_DEFAULT,
    BackboneFeatures,
    HeadConfig,
    LrRule,
    SPGBranches,
    build_spg_a3,
    build_spg_a4,
    build_spg_c,
    check_spg_c_depth,
)

__all__ = [
    "LR_GROUPS",
    "VARIANTS",
    "Backbone",
    "BackboneFeatures",
    "HeadConfig",
    "LrRule",
    "SPGModel",
    "build_model",
    "list_backbones",
    "load_backbone_weights",
    "register_backbone",
    "saved_head_options",
]

# Paper Table 5 ablations. "no-cascade" has the spg architecture: only the mask that supervises
# B1 changes (M_A instead of M_B2), which the loss side reads from `model.variant`.
VARIANTS = ("spg", "plain", "no-share", "no-c", "no-cascade")

# Which parameters train at the 10× rate (``--lr-groups``, TrainConfig.lr_groups; SPGModel.lr_rule):
#   paper           §3.3: the added layers (every SPG head) at 10×, the pretrained backbone at 1×;
#                   a backbone without published weights (tiny) is all new, so all of it is at 10×.
#   wsolevaluation  the name patterns of clovaai/wsolevaluation's main.py on the backbones it
#                   trains (Backbone.wsolevaluation_lr_rule): VGG16 conv4-conv5 and the heads,
#                   ResNet50 layer4 only (its SPG heads at 1×), Inception-v3 the heads (= paper).
#                   Refused for the other backbones, as wsolevaluation refuses an architecture it
#                   has no pattern for.
# (The tuple lives in spg_core.config, beside the lr_groups field, so the CLI needs no torch.)

_BACKBONES: dict[str, Callable[..., Backbone]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    """Decorator: make a backbone factory buildable by name with `build_model(name, ...)`."""

    def decorator(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _BACKBONES:
            raise ValueError(f"backbone name {name!r} is already registered; pick another name")
        _BACKBONES[name] = factory
        return factory

    return decorator


# Backbones whose modules pull in torchvision or timm are imported on first use, so that
# `tiny` runs (the app's default) start without paying for those imports.
_LAZY_BACKBONES = {"inception_v3": "inception", "vgg16": "vgg", "resnet50": "resnet",
                   "efficientnet_lite0": "efficientnet", "lite0_cut": "lite0_cut"}


def _ensure_registered(name: str) -> None:
    if name not in _BACKBONES and name in _LAZY_BACKBONES:
        import importlib

        importlib.import_module(f"spg_core.models.{_LAZY_BACKBONES[name]}")


def list_backbones() -> list[str]:
    return sorted(set(_BACKBONES) | set(_LAZY_BACKBONES))


class SPGModel(nn.Module):
    """Backbone + SPG-A3/A4 (classifier), SPG-B (B1, B2 with a shared top) and SPG-C.

    forward(x, with_guidance=None) -> dict with
        "logits"      B×C, the global average of class_maps
        "class_maps"  B×C×h×w, the A4 output (the attention maps of paper §3.2)
    and, when with_guidance (default: self.training) and the variant has them,
        "b1", "b2"    B×1×h'×w' logit maps
        "c"           B×1×h×w logit map
    B and C are not computed without guidance, so inference costs what SPG-plain costs (§3.4).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        variant: str = "spg",
        backbone_name: str = "custom",
        options: dict[str, Any] | None = None,
        c_init: str = "zero",
        spg_c_depth: int = 1,
        c_input_norm: bool = C_INPUT_NORM_DEFAULT,
        a3_dilation: int = A3_DILATION_DEFAULT,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is unknown; choose one of {', '.join(VARIANTS)}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
        self.backbone_name = backbone_name
        self.variant = variant
        self.num_classes = num_classes
        self.options = dict(options or {})
        self.spg_c_depth = check_spg_c_depth(spg_c_depth)  # 3×3 convs of SPG-C (heads.SPG_C_DEPTHS)

        config = backbone.head_config
        self.backbone = backbone
        self.spg_a3, a3_channels = build_spg_a3(backbone.top_channels, config, a3_dilation)
        self.spg_a4 = build_spg_a4(a3_channels, num_classes)
        self.spg_b = None
        self.spg_c = None
        if variant != "plain":
            self.spg_b = SPGBranches(
                backbone.b1_channels, backbone.b2_channels, config.b_width, share=variant != "no-share"
            )
        if variant not in ("plain", "no-c"):
            self.spg_c = build_spg_c(a3_channels, config.c_width, init=c_init, depth=self.spg_c_depth,
                                     input_norm=c_input_norm)

    def forward(self, x: torch.Tensor, with_guidance: bool | None = None) -> dict[str, torch.Tensor]:
        if with_guidance is None:
            with_guidance = self.training
        features = self.backbone(x)
        a3 = self.spg_a3(features.top)
        return self.head_outputs(features, a3, self.spg_a4(a3), with_guidance)

    def head_outputs(self, features, a3: torch.Tensor, class_maps: torch.Tensor,
                     with_guidance: bool = True) -> dict[str, torch.Tensor]:
        """The outputs ``forward`` returns, from the backbone features, A3 and the A4 class maps
        already computed (a caller with a frozen classifier computes those once and runs only the
        guidance branches)."""
        out = {"logits": class_maps.mean(dim=(2, 3)), "class_maps": class_maps}
        if with_guidance and self.spg_b is not None:
            out["b1"], out["b2"] = self.spg_b(features.b1, features.b2)
        if with_guidance and self.spg_c is not None:
            # SPG-C reads A3 but nothing reads SPG-C: it shapes A3 through its gradient only.
            out["c"] = self.spg_c(a3)
        return out

    def lr_rule(self, rule: str = "paper") -> LrRule:
        """The parameters learning-rate rule ``rule`` (one of LR_GROUPS) trains at 10×."""
        if rule == "paper":
            return LrRule(() if self.backbone.has_pretrained_weights else ("",), heads=True)
        if rule == "wsolevaluation":
            if self.backbone.wsolevaluation_lr_rule is None:
                raise ValueError(
                    f"lr_groups='wsolevaluation' has no rule for backbone {self.backbone_name!r}: wsolevaluation "
                    f"trains SPG on vgg16, inception_v3 and resnet50 only; use --lr-groups paper (the new heads "
                    f"at 10x) with this backbone")
            return self.backbone.wsolevaluation_lr_rule
        raise ValueError(f"lr_groups={rule!r} is unknown; choose one of {', '.join(LR_GROUPS)}")

    def named_parameter_groups(self, rule: str = "paper") -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
        """(base, tenfold): name -> parameter of the parameters trained at the base learning rate and
        at 10× under ``rule`` (see LR_GROUPS). Every parameter is in exactly one of them, once
        (B's shared top block is one set of parameters)."""
        chosen = self.lr_rule(rule)
        base: dict[str, nn.Parameter] = {}
        tenfold: dict[str, nn.Parameter] = {}
        for name, parameter in self.named_parameters():
            (tenfold if chosen.tenfold(name) else base)[name] = parameter
        return base, tenfold

    def parameter_groups(self, rule: str = "paper") -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(base_params, tenfold_params) of ``named_parameter_groups``. With the default ``paper``
        rule: (pretrained backbone, added layers), the paper's 10× learning rate on added layers
        (§3.3); a backbone without published weights (tiny) counts entirely as new."""
        base, tenfold = self.named_parameter_groups(rule)
        return list(base.values()), list(tenfold.values())


def build_model(name: str, num_classes: int, variant: str = "spg", **options: Any) -> SPGModel:
    """Build a registered backbone with the SPG heads. `options` go to the backbone factory,
    except the head options ``c_init`` (zero | xavier: how SPG-C's output conv starts, see
    heads.C_INITS), ``spg_c_depth`` (1 | 2: SPG-C's 3×3 convs, see heads.SPG_C_DEPTHS),
    ``c_input_norm`` (SPG-C's input BatchNorm) and ``a3_dilation`` (heads.A3_DILATION_DEFAULT).
    A run keeps them all in its config's ``model_options``, so it reloads with the same heads."""
    _ensure_registered(name)
    if name not in _BACKBONES:
        raise ValueError(f"backbone {name!r} is unknown; choose one of {', '.join(list_backbones())}")
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is unknown; choose one of {', '.join(VARIANTS)}")
    factory = _BACKBONES[name]
    options = dict(options)
    c_init = options.pop("c_init", "zero")  # head options, not the backbone's (heads.C_INITS)
    spg_c_depth = options.pop("spg_c_depth", 1)  # heads.SPG_C_DEPTHS
    c_input_norm = options.pop("c_input_norm", C_INPUT_NORM_DEFAULT)  # heads: SPG-C's input BatchNorm
    a3_dilation = options.pop("a3_dilation", A3_DILATION_DEFAULT)  # heads: A3's context
    signature = inspect.signature(factory)
    unknown = sorted(set(options) - set(signature.parameters))
    if unknown:
        valid = ", ".join(signature.parameters) or "none"
        raise ValueError(f"option(s) {', '.join(unknown)} not understood by backbone {name!r}; "
                         f"its options are: {valid}")
    bound = signature.bind(**options)
    bound.apply_defaults()
    backbone = factory(**bound.arguments)
    return SPGModel(backbone, num_classes, variant, backbone_name=name, options=dict(bound.arguments), c_init=c_init,
                    spg_c_depth=spg_c_depth, c_input_norm=c_input_norm, a3_dilation=a3_dilation)


def saved_head_options(options: dict, state_dict) -> dict:
    """The model options a saved model was built with: its config's ``model_options``, plus
    ``c_input_norm`` read off its weights (SPG-C's BatchNorm has running statistics) when the
    config does not name it — runs saved before SPG-C's input BatchNorm was the default."""
    options = dict(options or {})
    if "c_input_norm" not in options and any(key.startswith("spg_c.") for key in state_dict):
        options["c_input_norm"] = "spg_c.0.running_mean" in state_dict
    return options


def _format_keys(keys, limit: int = 12) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def state_dict_problems(given: dict, own: dict, missing, unexpected,
                        labels: tuple[str, str] = ("missing keys", "unexpected keys")) -> list[str]:
    """What keeps the tensors ``given`` from loading strictly into a module whose state is ``own``.

    Args:
        given: name -> tensor, as read (renamed to the module's names).
        own: the module's ``state_dict()``.
        missing: the module's names the file should have held.
        unexpected: the file's names the module has no place for.
        labels: how the message names the missing and the unexpected keys.

    Returns:
        One text per kind of problem (missing, unexpected, shape mismatches); empty when it fits.
    """
    mismatched = [f"{key} {tuple(given[key].shape)} != {tuple(own[key].shape)}"
                  for key in own if key in given and given[key].shape != own[key].shape]
    return [f"{label} ({len(keys)}): {_format_keys(keys)}"
            for label, keys in ((labels[0], missing), (labels[1], unexpected), ("shape mismatches", mismatched))
            if keys]


def _unwrap_state_dict(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict):
        for entry in ("state_dict", "model"):
            if isinstance(checkpoint.get(entry), dict):
                checkpoint = checkpoint[entry]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), or a checkpoint "
                         f"with a 'state_dict' or 'model' entry holding one; got {type(checkpoint).__name__}")
    if checkpoint and all(key.startswith("module.") for key in checkpoint):
        # Saved from a DataParallel/DistributedDataParallel wrapper.
        checkpoint = {key[len("module."):]: value for key, value in checkpoint.items()}
    return checkpoint


def load_backbone_weights(model: SPGModel, path: str | Path) -> None:
    """Load a local torchvision-format weight file into `model.backbone`; never downloads.

    Keys must match the backbone exactly, except those of layers the truncated backbone drops
    (fc, AuxLogits, Mixed_7*, classifier). On any mismatch nothing is loaded and a ValueError
    lists the missing, unexpected and wrongly shaped keys.
    """
    named = getattr(model.backbone, "named_weights", {})
    if str(path) in named:
        # Weights a package ships under a name (efficientnet_lite0: "imagenet"); still offline.
        named[str(path)](model)
        return
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist; pass the path of a local .pth file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path} could not be read as a PyTorch weight file: {error}") from error
    given = _unwrap_state_dict(checkpoint, path)

    backbone = model.backbone
    given = {k: v for k, v in given.items() if not k.startswith(backbone.ignored_weight_prefixes)}
    own = backbone.state_dict()
    # Files saved before PyTorch 0.4.1 have no BatchNorm step counters; BatchNorm fills them in.
    missing = sorted(k for k in own if k not in given and not k.endswith("num_batches_tracked")
                     and not k.startswith(backbone.new_weight_prefixes))
    unexpected = sorted(k for k in given if k not in own)
    problems = state_dict_problems(given, own, missing, unexpected)
    if problems:
        raise ValueError(f"{path} does not fit the {model.backbone_name!r} backbone "
                         f"(expected {backbone.weights_format}); " + "; ".join(problems))
    backbone.load_state_dict({**own, **given}, strict=True)


# The backbone modules register themselves on import; they need register_backbone defined above.
from spg_core.models import tiny  # noqa: E402,F401
