"""The note under each picture of the stage strip. (The stages themselves, the map each is drawn
from and what its seeds supervise, are ``spg_core.guidance.STAGES``.)"""
from __future__ import annotations

from spg_core.guidance import STAGE_TITLES

STAGE_NOTES = {
    "image": "The input, at its own resolution.",
    "attention": "A4 map of the chosen class, min-max normalised: the classifier's evidence.",
    "mask_a": "Eq. 1 on the attention map: white > δ_h (object), black < δ_l (background), grey ignored.",
    "b2": "B2 learned from Mask-A: spreads from confident seeds to similar pixels.",
    "mask_b2": "Eq. 1 on B2: the seeds that supervise B1.",
    "b1": "B1 (shares the top block with B2) learned from Mask-B2.",
    "fused": "(B1 + B2) / 2: the self-produced guidance.",
    "mask_fuse": "Eq. 1 on the fused map: pixel supervision for SPG-C.",
    "c": "SPG-C, the auxiliary branch that pushes the classifier's maps to cover the object.",
    "final": "Test time uses only the A4 map (§3.4): box = largest component at τ. Green: predicted, red: GT.",
}


def map_stage_label(stage: str) -> str:
    return "attention map (paper)" if stage == "attention" else f"{STAGE_TITLES[stage]} (extension)"
