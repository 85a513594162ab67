"""The stages of SPG (paper Fig. 2, Algorithm 1): the score maps of a model output and the guided
stages (each one's seed mask, the map its seeds are drawn from, the branch they supervise,
its titles) — the one stage table every other module reads, through here or
:mod:`spg_core.guidance`. Plain names, no torch, so that the command line and the map scorer
(``evaluate-maps``) can use them without importing it.
"""
from __future__ import annotations

from dataclasses import dataclass

# The score maps of a model output, in the paper's order (Fig. 2): the A4 attention map of one
# class, the two B branches, their fused mean, SPG-C. A box can be drawn from any of them: the
# paper localises from the attention map only (§3.4); the class-agnostic B1/B2/fused/SPG-C maps are
# offered as an extension for comparison.
SCORE_MAPS = ("attention", "b2", "b1", "fused", "c")
MAP_STAGES = SCORE_MAPS
MAP_TITLES = {"attention": "Attention map (A4)", "b2": "B2", "b1": "B1", "fused": "Fused guidance (B1+B2)/2",
              "c": "SPG-C"}


@dataclass(frozen=True)
class GuidedStage:
    """One Eq. 1 stage of Algorithm 1: seeds drawn from a score map supervise a branch."""

    mask: str  # the seed mask's name, also its GuidancePreset field (the preset key)
    source: str  # the score map the seeds are drawn from (a SCORE_MAPS name)
    branch: str  # the branch the seeds supervise
    title: str  # short title, e.g. "Mask-A"
    source_title: str  # the source map in words, e.g. "attention map"

    @property
    def role(self) -> str:
        return f"seeds for {MAP_TITLES[self.branch]}"

    @property
    def full_title(self) -> str:
        return f"{self.title} ({self.role})"


# Paper Fig. 2 / Algorithm 1: Mask-A (attention) → B2, Mask-B2 (B2) → B1, Mask-fuse (fused) → SPG-C.
STAGES = (
    GuidedStage("mask_a", "attention", "b2", "Mask-A", "attention map"),
    GuidedStage("mask_b2", "b2", "b1", "Mask-B2", "B2"),
    GuidedStage("mask_fuse", "fused", "c", "Mask-fuse", "fused guidance"),
)
STAGE_NAMES = tuple(stage.mask for stage in STAGES)
# Titles of every map and seed mask; the stage strip's order: each map, then the seeds drawn from it.
STAGE_TITLES = {**MAP_TITLES, **{stage.mask: stage.full_title for stage in STAGES}}
STAGE_ORDER = tuple(name for source in SCORE_MAPS
                    for name in (source, *(stage.mask for stage in STAGES if stage.source == source)))


def guided_stage(name: str) -> GuidedStage:
    for stage in STAGES:
        if stage.mask == name:
            return stage
    raise ValueError(f"unknown guidance stage {name!r}; use one of {', '.join(STAGE_NAMES)}")
