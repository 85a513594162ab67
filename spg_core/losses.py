"""Losses of Algorithm 1 (step 9): CE on the image label + masked BCE for each guided branch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from spg_core.guidance import IGNORE, resize_map

# Which seed mask supervises which branch (paper Fig. 2): B2 ← Mask-A, B1 ← Mask-B2, C ← Mask-fuse.
SUPERVISION = {"b2": "mask_a", "b1": "mask_b2", "c": "mask_fuse"}


def masked_bce(logits: torch.Tensor, seed_mask: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits over the non-ignored pixels of the whole batch, at the mask's resolution.

    An all-ignore batch contributes exactly 0 (both reference codes divide by a zero count and
    return NaN, which then poisons every weight).
    """
    logits = resize_map(logits, tuple(seed_mask.shape[-2:]))
    keep = seed_mask != IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0  # keeps the graph, contributes nothing
    target = seed_mask.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits.float()[keep], target.float()[keep])


def spg_loss(outputs: dict, labels: torch.Tensor, guidance: dict | None) -> dict:
    """Total = CE(logits, y) + BCE(B2, Mask-A) + BCE(B1, Mask-B2) + BCE(C, Mask-fuse), weights 1.

    ``guidance`` is the result of :func:`spg_core.guidance.self_produced_guidance`, or None
    during guidance warm-up (CE only). Returns every term and ``total``.
    """
    terms = {"ce": F.cross_entropy(outputs["logits"].float(), labels)}
    if guidance is not None:
        for branch, mask_name in SUPERVISION.items():
            if branch in outputs and mask_name in guidance:
                terms[f"bce_{branch}"] = masked_bce(outputs[branch], guidance[mask_name])
    terms["total"] = sum(terms.values())
    return terms
