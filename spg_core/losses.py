"""Losses of Algorithm 1 (step 9): CE on the image label + masked BCE for each guided branch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spg_core.guidance import BACKGROUND, FOREGROUND, IGNORE, STAGES, resize_map

# Which seed mask supervises which branch (guidance.STAGES): B2 ← Mask-A, B1 ← Mask-B2, C ← Mask-fuse.
SUPERVISION = {stage.branch: stage.mask for stage in STAGES}

# How the seed pixels of a batch are weighted: "pixel" = every non-ignored pixel alike (both
# reference codes); "class" = the foreground seeds and the background seeds each carry half the
# loss, so a branch cannot satisfy a mask that is mostly foreground (or mostly background) by
# predicting that class everywhere.
BCE_BALANCES = ("pixel", "class")


def masked_bce(logits: torch.Tensor, seed_mask: torch.Tensor, balance: str = "pixel") -> torch.Tensor:
    """BCE-with-logits over the non-ignored pixels of the whole batch, at the mask's resolution
    (``balance="class"``: the mean over foreground seeds and the mean over background seeds,
    averaged; a batch with seeds of one kind only is that kind's mean).

    An all-ignore batch contributes exactly 0 (both reference codes divide by a zero count and
    return NaN, which then poisons every weight).
    """
    if balance not in BCE_BALANCES:
        raise ValueError(f"bce balance {balance!r} is unknown; choose one of {BCE_BALANCES}")
    logits = resize_map(logits, tuple(seed_mask.shape[-2:])).float()
    keep = seed_mask != IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0  # keeps the graph, contributes nothing
    if balance == "pixel":
        return F.binary_cross_entropy_with_logits(logits[keep], seed_mask.float()[keep])
    terms = []
    for value in (FOREGROUND, BACKGROUND):
        chosen = seed_mask == value
        if bool(chosen.any()):
            terms.append(F.binary_cross_entropy_with_logits(logits[chosen], torch.full_like(logits[chosen], float(value))))
    return sum(terms) / len(terms)


def checked_c_weight(value) -> float:
    """SPG-C's loss weight as a float, or ValueError naming the value (checked before training)."""
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not (weight >= 0.0 and math.isfinite(weight)):
        raise ValueError(f"c_loss_weight={value!r} must be a finite number >= 0 (1 is the paper's)")
    return weight


def spg_loss(outputs: dict, labels: torch.Tensor, guidance: dict | None, balance: str = "pixel",
             c_weight: float = 1.0) -> dict:
    """Total = CE(logits, y) + BCE(B2, Mask-A) + BCE(B1, Mask-B2) + c_weight · BCE(C, Mask-fuse);
    the paper's weights are all 1.

    ``guidance`` is the result of :func:`spg_core.guidance.self_produced_guidance`, or None
    during guidance warm-up (CE only). ``balance``: see :data:`BCE_BALANCES`. ``c_weight``
    scales SPG-C's term (the one whose gradient reaches A3). Returns every term, unweighted,
    and ``total``.
    """
    c_weight = checked_c_weight(c_weight)
    terms = {"ce": F.cross_entropy(outputs["logits"].float(), labels)}
    total = terms["ce"]
    if guidance is not None:
        for branch, mask_name in SUPERVISION.items():
            if branch in outputs and mask_name in guidance:
                terms[f"bce_{branch}"] = masked_bce(outputs[branch], guidance[mask_name], balance)
                total = total + (c_weight if branch == "c" else 1.0) * terms[f"bce_{branch}"]
    terms["total"] = total
    return terms
