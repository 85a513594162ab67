"""Self-produced guidance (paper §3.2, Eq. 1, Algorithm 1 steps 4-8).

Pure tensor functions: no I/O, no global state. The trainer, the localiser, the app and the
notebooks all call these, so a threshold means the same thing everywhere.

Seed mask values (Eq. 1): 0 = background, 1 = foreground, 255 = ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The stage table lives in the torch-free spg_core.stages (the CLI builds its flags from it
# without importing torch); every name stays importable from here.
from spg_core.stages import (  # noqa: F401
    MAP_STAGES,
    MAP_TITLES,
    SCORE_MAPS,
    STAGE_NAMES,
    STAGE_ORDER,
    STAGE_TITLES,
    STAGES,
    GuidedStage,
    guided_stage,
)

BACKGROUND, FOREGROUND, IGNORE = 0, 1, 255

# Both reference codes: when fewer than 30 pixels pass delta_high, use 0.7 * max(O) instead.
FALLBACK_MIN_PIXELS = 30
FALLBACK_RATIO = 0.7

# Which seed a pixel gets when it is both below δ_l and above the fallback threshold (GuidancePreset
# .precedence). Eq. 1 alone (δ_l < δ_h) never claims a pixel twice; the fallback can: on a nearly
# flat map, max(O) < δ_l / 0.7, its threshold 0.7·max(O) falls below δ_l. "foreground": the
# fallback's foreground seeds win (the pixels it keeps are the map's highest, and it exists to
# give every image foreground seeds). "background": background wins, as in both reference codes,
# which mark the foreground first and the background last (authors' mark_obj then mark_bg,
# wsolevaluation's mask_fg then mask_bg). Only unnormalised maps get there: Mask-A's attention
# map is min-max normalised (max 1, fallback 0.7), the B2 and fused maps are not.
PRECEDENCES = ("foreground", "background")


@dataclass(frozen=True)
class Thresholds:
    """(δ_l, δ_h) of Eq. 1 for one stage; 0 < δ_l < δ_h < 1."""

    delta_low: float
    delta_high: float

    def __post_init__(self):
        check_thresholds(self.delta_low, self.delta_high)


def check_precedence(precedence: str) -> None:
    if precedence not in PRECEDENCES:
        raise ValueError(f"seed precedence {precedence!r} is unknown; use 'foreground' (the fallback's foreground "
                         f"seeds win) or 'background' (background applied last, as both reference codes)")


def check_thresholds(delta_low: float, delta_high: float) -> None:
    if not (0.0 <= delta_low < delta_high <= 1.0):
        raise ValueError(
            f"seed thresholds must satisfy 0 <= δ_l < δ_h <= 1; got δ_l={delta_low} and "
            f"δ_h={delta_high}. Lower --delta-low or raise --delta-high."
        )


@dataclass(frozen=True)
class GuidancePreset:
    """Per-stage thresholds (one field per ``STAGES`` entry): attention → Mask-A (supervises
    B2), B2 → Mask-B2 (supervises B1), fused → Mask-fuse (supervises SPG-C); and ``precedence``
    (PRECEDENCES), which seed a pixel gets where the fallback threshold falls below δ_l."""

    name: str
    mask_a: Thresholds
    mask_b2: Thresholds
    mask_fuse: Thresholds
    description: str = ""
    precedence: str = "foreground"

    def __post_init__(self):
        check_precedence(self.precedence)

    def stage(self, stage: str) -> Thresholds:
        return getattr(self, guided_stage(stage).mask)

    def seeds(self, stage: str, score_map, return_fallback: bool = False):
        """``seed_mask`` of ``score_map`` at this preset's thresholds of ``stage`` and its precedence:
        what training, the localiser, the replay and the app all draw a stage's seeds with."""
        thresholds = self.stage(stage)
        return seed_mask(score_map, thresholds.delta_low, thresholds.delta_high, precedence=self.precedence,
                         return_fallback=return_fallback)

    def replace(self, stage: str, thresholds: Thresholds | None = None, *, delta_low: float | None = None,
                delta_high: float | None = None) -> GuidancePreset:
        """The preset with one stage's thresholds replaced: by ``thresholds``, or only the
        ``delta_low`` / ``delta_high`` given (the others kept). Unchanged → this preset."""
        current = self.stage(stage)
        if thresholds is None:
            if delta_low is None and delta_high is None:
                return self
            thresholds = Thresholds(current.delta_low if delta_low is None else delta_low,
                                    current.delta_high if delta_high is None else delta_high)
        if thresholds == current:
            return self
        name = self.name if self.name.endswith("+custom") else f"{self.name}+custom"
        return dataclasses.replace(self, name=name, **{stage: thresholds})

    def with_thresholds(self, thresholds: dict[str, tuple[float, float]]) -> GuidancePreset:
        """The preset with each stage's (δ_l, δ_h) replaced by ``thresholds[stage]`` where given."""
        preset = self
        for stage, (low, high) in thresholds.items():
            preset = preset.replace(stage, delta_low=low, delta_high=high)
        return preset

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GuidancePreset:
        """The preset :meth:`to_dict` wrote (thresholds checked; a ValueError names a bad entry)."""
        try:
            stages = {stage: Thresholds(float(values[stage]["delta_low"]), float(values[stage]["delta_high"]))
                      for stage in STAGE_NAMES}
            return cls(str(values["name"]), **stages, description=str(values.get("description", "")),
                       precedence=str(values.get("precedence", "foreground")))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a guidance preset (missing or bad entry {error}); expected the keys of "
                             f"GuidancePreset.to_dict(): name, {', '.join(STAGE_NAMES)}, precedence") from None


# Spec table §2. The fused → C row is not stated in the paper text; the authors' code uses 0.7/0.1.
# Precedence: the paper has no fallback, so it says nothing on a pixel claimed by both seeds;
# "paper" keeps foreground (the fallback's purpose), the two code presets do what their code does.
PRESETS: dict[str, GuidancePreset] = {
    "paper": GuidancePreset(
        "paper", Thresholds(0.1, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "values in the paper's text (fused → C, unstated there, taken from the authors' code); foreground "
        "wins where the fallback threshold falls below δ_l",
        precedence="foreground",
    ),
    "authors": GuidancePreset(
        "authors", Thresholds(0.05, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "values in the authors' released code (xiaomengyc/SPG); background wins where the fallback threshold "
        "falls below δ_l, as that code applies it last",
        precedence="background",
    ),
    "teaching": GuidancePreset(
        "teaching", Thresholds(0.05, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "the teaching recipe's (configs/teaching.yaml): `paper` with Mask-A's δ_l lowered to 0.05, chosen on "
        "validation images (docs/teaching_recipe.md); foreground wins where the fallback threshold falls below δ_l",
        precedence="foreground",
    ),
    "wsolevaluation": GuidancePreset(
        "wsolevaluation", Thresholds(0.01, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7),
        "defaults of the wsolevaluation reimplementation (clovaai/wsolevaluation); background wins where the "
        "fallback threshold falls below δ_l, as that code applies it last",
        precedence="background",
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
    precedence: str = "foreground",
):
    """Eq. 1 seeds of a score map O in [0, 1]: 0 where O < δ_l, 1 where O > δ_h, 255 otherwise.

    Accepts a single H×W map or a batch (..., H, W); numpy in → numpy out. The fallback
    (fewer than ``min_pixels`` above δ_h → use ``fallback_ratio · max(O)`` as δ_h) is decided for
    each image on its own: the authors' code kept the lowered threshold for the rest of the batch.
    Where the lowered threshold is below δ_l, ``precedence`` (PRECEDENCES) says which seed the
    pixels between the two get. With ``return_fallback`` also returns a bool tensor/array (one per
    image) saying where it fired.
    """
    check_thresholds(delta_low, delta_high)
    check_precedence(precedence)
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
    seeds = [(flat < delta_low, BACKGROUND), (flat > high.expand_as(flat), FOREGROUND)]
    if precedence == "background":
        seeds.reverse()  # the kind written last wins a pixel both claim
    for where, value in seeds:
        mask[where] = value
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
        detached = {name: value.detach() for name, value in outputs.items()}
        result = stage_maps(detached, labels, (mask_size, mask_size), stages=("attention", "b2", "fused"))
        for stage in STAGES:
            if stage.source not in result:
                continue
            if stage.mask == "mask_b2" and not cascade:
                result[stage.mask] = result["mask_a"]
                continue
            result[stage.mask] = preset.seeds(stage.mask, result[stage.source])
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


def stage_maps(outputs: dict, class_index: torch.Tensor, size=None, stages=SCORE_MAPS,
               normalize: bool = True) -> dict[str, torch.Tensor]:
    """The score maps of a model output, B×H×W float: ``attention`` = the A4 map of
    ``class_index`` (one per image), ``b2``/``b1``/``c`` = the branches' sigmoids, ``fused`` =
    their mean (``fused_guidance``). Each is resized (bilinear, logits before the sigmoid) to
    ``size`` when given, else kept at its own resolution (B2's for fused). ``normalize``: min-max
    the attention map per image (Eq. 1 and the stage strip); False keeps it raw (a protocol that
    resizes before normalising). Stages whose branches the output lacks are left out; what the
    trainer's guidance, the localiser and the evaluator all compute their maps with."""
    unknown = [stage for stage in stages if stage not in SCORE_MAPS]
    if unknown:
        raise ValueError(f"unknown map stage(s) {unknown}; choose from {SCORE_MAPS}")

    def resized(logits: torch.Tensor) -> torch.Tensor:
        return resize_map(logits.float(), size) if size is not None else logits.float().flatten(0, -3)

    maps = {}
    for stage in stages:
        if stage == "attention":
            raw = resized(attention_map(outputs["class_maps"], class_index)[:, None])
            maps[stage] = normalize_map(raw) if normalize else raw
        elif stage == "fused":
            if "b1" in outputs and "b2" in outputs:
                maps[stage] = fused_guidance(outputs["b1"].float(), outputs["b2"].float(), size)
        elif stage in outputs:
            maps[stage] = torch.sigmoid(resized(outputs[stage]))
    return maps


def stage_score_map(outputs: dict, class_index: torch.Tensor, stage: str = "attention") -> torch.Tensor:
    """The raw B×h×w map of one stage at its own resolution (``stage_maps`` with
    ``normalize=False``); a ValueError names the outputs a missing stage needs."""
    maps = stage_maps(outputs, class_index, stages=(stage,), normalize=False)
    if stage not in maps:
        needed = ("b1", "b2") if stage == "fused" else (stage,)
        raise ValueError(f"map stage {stage!r} needs the model outputs {[n for n in needed if n not in outputs]}; "
                         "run the model with with_guidance=True on a variant that has them")
    return maps[stage]
