"""Self-produced guidance (paper §3.2, Eq. 1, Algorithm 1 steps 4-8).

Pure tensor functions: no I/O, no global state. The trainer, the localiser, the app and the
notebooks all call these, so a threshold means the same thing everywhere.

Seed mask values (Eq. 1): 0 = background, 1 = foreground, 255 = ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn.functional as F

BACKGROUND, FOREGROUND, IGNORE = 0, 1, 255

# Both reference codes: when fewer than 30 pixels pass delta_high, use 0.7 * max(O) instead.
FALLBACK_MIN_PIXELS = 30
FALLBACK_RATIO = 0.7


@dataclass(frozen=True)
class Thresholds:
    """(δ_l, δ_h) of Eq. 1 for one stage; 0 < δ_l < δ_h < 1."""

    delta_low: float
    delta_high: float

    def __post_init__(self):
        check_thresholds(self.delta_low, self.delta_high)


def check_thresholds(delta_low: float, delta_high: float) -> None:
    if not (0.0 <= delta_low < delta_high <= 1.0):
        raise ValueError(
            f"seed thresholds must satisfy 0 <= δ_l < δ_h <= 1; got δ_l={delta_low} and "
            f"δ_h={delta_high}. Lower --delta-low or raise --delta-high."
        )


@dataclass(frozen=True)
class GuidancePreset:
    """Per-stage thresholds: attention → Mask-A (supervises B2), B2 → Mask-B2 (supervises B1),
    fused → Mask-fuse (supervises SPG-C)."""

    name: str
    mask_a: Thresholds
    mask_b2: Thresholds
    mask_fuse: Thresholds
    description: str = ""

    def stage(self, stage: str) -> Thresholds:
        try:
            return {"mask_a": self.mask_a, "mask_b2": self.mask_b2, "mask_fuse": self.mask_fuse}[stage]
        except KeyError:
            raise ValueError(f"unknown guidance stage {stage!r}; use one of mask_a, mask_b2, mask_fuse") from None

    def replace(self, stage: str, thresholds: Thresholds) -> GuidancePreset:
        values = {"mask_a": self.mask_a, "mask_b2": self.mask_b2, "mask_fuse": self.mask_fuse}
        self.stage(stage)
        values[stage] = thresholds
        return GuidancePreset(name=f"{self.name}+custom", description=self.description, **values)

    def to_dict(self) -> dict:
        return asdict(self)


# Spec table §2. The fused → C row is not stated in the paper text; the authors' code uses 0.7/0.1.
PRESETS: dict[str, GuidancePreset] = {
    "paper": GuidancePreset(
        "paper", Thresholds(0.1, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "values in the paper's text (fused → C, unstated there, taken from the authors' code)",
    ),
    "authors": GuidancePreset(
        "authors", Thresholds(0.05, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "values in the authors' released code (xiaomengyc/SPG)",
    ),
    "wsolevaluation": GuidancePreset(
        "wsolevaluation", Thresholds(0.01, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "defaults of the wsolevaluation reimplementation (clovaai/wsolevaluation)",
    ),
}


def get_preset(name: str) -> GuidancePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown guidance preset {name!r}; choose one of {sorted(PRESETS)}") from None


def normalize_map(score_map: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-image min-max over the last two dims.

    A constant map has max == min: it maps to zeros instead of 0/0 = NaN. NaN pixels become 0
    and do not take part in the min and max.
    """
    x = score_map.float()
    nan = torch.isnan(x)
    low = x.masked_fill(nan, float("inf")).amin(dim=(-2, -1), keepdim=True)
    high = x.masked_fill(nan, float("-inf")).amax(dim=(-2, -1), keepdim=True)
    span = high - low  # 0 for a constant map, -inf for an all-NaN one
    valid = (span > eps) & ~nan
    out = (x - low) / torch.where(span > eps, span, torch.ones_like(span))
    return torch.where(valid, out, torch.zeros_like(out))


def seed_mask(
    score_map: torch.Tensor | np.ndarray,
    delta_low: float,
    delta_high: float,
    min_pixels: int = FALLBACK_MIN_PIXELS,
    fallback_ratio: float = FALLBACK_RATIO,
    return_fallback: bool = False,
):
    """Eq. 1 seeds of a score map O in [0, 1]: 0 where O < δ_l, 1 where O > δ_h, 255 otherwise.

    Accepts a single H×W map or a batch (..., H, W); numpy in → numpy out. The fallback
    (fewer than ``min_pixels`` above δ_h → use ``fallback_ratio · max(O)`` as δ_h) is decided for
    each image on its own: the authors' code kept the lowered threshold for the rest of the batch.
    With ``return_fallback`` also returns a bool tensor/array (one per image) saying where it fired.
    """
    check_thresholds(delta_low, delta_high)
    as_numpy = isinstance(score_map, np.ndarray)
    o = torch.from_numpy(np.asarray(score_map)) if as_numpy else score_map
    o = o.float()
    single = o.dim() == 2
    if single:
        o = o.unsqueeze(0)
    batch_shape = o.shape[:-2]
    flat = o.reshape(-1, o.shape[-2] * o.shape[-1])
    high = torch.full((flat.shape[0], 1), float(delta_high), device=flat.device)
    fired = (flat > high).sum(dim=1, keepdim=True) < min_pixels
    high = torch.where(fired, fallback_ratio * flat.amax(dim=1, keepdim=True), high)
    mask = torch.full_like(flat, IGNORE, dtype=torch.uint8)
    mask[flat < delta_low] = BACKGROUND
    # Foreground wins where the fallback threshold drops below δ_l (a nearly flat map).
    mask[flat > high.expand_as(flat)] = FOREGROUND
    mask = mask.reshape(o.shape)
    fired = fired.reshape(batch_shape)
    if single:
        mask, fired = mask[0], fired[0]
    if as_numpy:
        mask, fired = mask.numpy(), fired.numpy()
    return (mask, fired) if return_fallback else mask


def resize_map(score_map: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of B×1×h×w (or B×h×w) maps to ``size``; returns B×H×W."""
    x = score_map if score_map.dim() == 4 else score_map.unsqueeze(1)
    if isinstance(size, int):
        size = (size, size)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    return x[:, 0]


def attention_map(class_maps: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
    """O_A before normalisation: the A4 map of ``class_index`` (one per image), B×h×w."""
    index = class_index.view(-1, 1, 1, 1).expand(-1, 1, *class_maps.shape[-2:])
    return class_maps.gather(1, index.to(class_maps.device))[:, 0]


def fused_guidance(b1_logits: torch.Tensor, b2_logits: torch.Tensor, size=None) -> torch.Tensor:
    """O_fuse = (sigmoid(B1) + sigmoid(B2)) / 2, both taken at ``size`` (default B2's size)."""
    size = size or tuple(b2_logits.shape[-2:])
    return (torch.sigmoid(resize_map(b1_logits, size)) + torch.sigmoid(resize_map(b2_logits, size))) / 2


def self_produced_guidance(
    outputs: dict,
    labels: torch.Tensor,
    preset: GuidancePreset,
    mask_size: int = 224,
    cascade: bool = True,
) -> dict:
    """Algorithm 1, steps 4-8: seed masks for B2, B1 and SPG-C from the network's own outputs.

    All maps are detached: guidance is a target, not a path for gradients.
    ``cascade=False`` is the paper's "no cascade" ablation: B1 also learns from Mask-A.
    Returns the score maps (in [0, 1], at ``mask_size``) and the masks (uint8 0/1/255).
    """
    with torch.no_grad():
        o_a = normalize_map(resize_map(attention_map(outputs["class_maps"].detach(), labels), mask_size))
        mask_a = seed_mask(o_a, preset.mask_a.delta_low, preset.mask_a.delta_high)
        result = {"attention": o_a, "mask_a": mask_a}
        if "b2" in outputs:
            o_b2 = torch.sigmoid(resize_map(outputs["b2"].detach(), mask_size))
            result["b2"] = o_b2
            result["mask_b2"] = (
                seed_mask(o_b2, preset.mask_b2.delta_low, preset.mask_b2.delta_high) if cascade else mask_a
            )
        if "b1" in outputs and "b2" in outputs:
            o_fuse = fused_guidance(outputs["b1"].detach(), outputs["b2"].detach(), (mask_size, mask_size))
            result["fused"] = o_fuse
            result["mask_fuse"] = seed_mask(o_fuse, preset.mask_fuse.delta_low, preset.mask_fuse.delta_high)
    return result


def seed_statistics(mask: np.ndarray, object_mask: np.ndarray | None = None) -> dict:
    """Coverage of a seed mask (fraction fg / bg / ignored) and, given the object's GT mask
    (bool, same shape), seed precision: fraction of foreground seeds inside the object and of
    background seeds outside it. Precision is NaN when the mask has no seeds of that kind."""
    mask = np.asarray(mask)
    total = mask.size
    fg, bg = mask == FOREGROUND, mask == BACKGROUND
    stats = {
        "foreground": fg.sum() / total,
        "background": bg.sum() / total,
        "ignored": (mask == IGNORE).sum() / total,
    }
    if object_mask is not None:
        obj = np.asarray(object_mask).astype(bool)
        stats["foreground_precision"] = float(obj[fg].mean()) if fg.any() else float("nan")
        stats["background_precision"] = float((~obj[bg]).mean()) if bg.any() else float("nan")
    return {k: float(v) for k, v in stats.items()}


# Maps a box can be drawn from. The paper localises from the attention map only (§3.4); the
# class-agnostic B1/B2/fused/SPG-C maps are offered as an extension for comparison.
MAP_STAGES = ("attention", "fused", "c", "b1", "b2")


def stage_score_map(outputs: dict, class_index: torch.Tensor, stage: str = "attention") -> torch.Tensor:
    """B×h×w score map of one stage: the A4 map of ``class_index`` (raw), or a sigmoid map of a
    guidance branch (``fused`` = mean of the B1 and B2 sigmoids at B2's size)."""
    if stage == "attention":
        return attention_map(outputs["class_maps"], class_index)
    if stage not in MAP_STAGES:
        raise ValueError(f"unknown map stage {stage!r}; choose one of {MAP_STAGES}")
    needed = ("b1", "b2") if stage == "fused" else (stage,)
    missing = [name for name in needed if name not in outputs]
    if missing:
        raise ValueError(f"map stage {stage!r} needs the model outputs {missing}; run the model with "
                         "with_guidance=True on a variant that has them")
    if stage == "fused":
        return fused_guidance(outputs["b1"], outputs["b2"])
    return torch.sigmoid(outputs[stage].float())[:, 0]
