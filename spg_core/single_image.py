"""Single-image self-produced guidance: SPG-B (and SPG-C) trained on one photo's own seeds.

**An exploration beyond the paper.** SPG learns B1/B2/C over a whole training set (Algorithm 1).
Here the classifier is frozen (pretrained backbone + A4, e.g. the ImageNet EfficientNet-Lite0)
and only fresh B2 → B1 → fused heads (and, optionally, SPG-C) are trained, for a few seconds on CPU, on
augmented views of *one* image: Mask-A of each view supervises B2, Mask-B2 supervises B1,
Mask-fuse supervises C — exactly `guidance.self_produced_guidance` + `losses.spg_loss`, the
functions the trainer calls. What it shows: the seeds of the attention map (the most
discriminative part, e.g. the cat's face) grow, through the B branches' own features, over more
of the object. Nothing here is a result of the paper.

    result = single_image_guidance(localizer, image, seconds=5.0, progress=callback)
    result.maps          # attention, b2, b1, fused (c with train_c=True) at the image's size
    result.history       # coverage of Mask-A / Mask-B2 / Mask-fuse over time
    growth_strip(result) # picture: Mask-A, then the fused guidance as it grew

The caller's model is never modified: the trained heads live in a new SPGModel that shares the
(frozen) backbone and classifier.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spg_core.guidance import (
    FOREGROUND,
    STAGE_NAMES,
    GuidancePreset,
    get_preset,
    self_produced_guidance,
)
from spg_core.localize import Localizer, StageMaps, stage_masks
from spg_core.losses import spg_loss
from spg_core.models import SPGModel
from spg_core.models.heads import SPGBranches, build_spg_c

# The masks whose foreground share the history follows, in paper order.
TRACKED_MASKS = STAGE_NAMES
SNAPSHOT_SIDE = 56  # fused-map snapshots are stored small: they are for a strip of thumbnails


@dataclass
class SingleImageGuidance(StageMaps):
    """StageMaps of the image with the heads trained on it, plus how they got there.

    history: one record per evaluation of the un-augmented image during training:
        {"step", "seconds", "loss" (BCE terms, mean over the recorded steps),
         "foreground": {mask name: fraction of the image that is foreground seed}}
    snapshots: [{"step", "seconds", "fused": SNAPSHOT_SIDE² float32 map}] for the growth strip.
    """

    history: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    views: int = 0
    preset: GuidancePreset | None = None


ProgressCallback = Callable[[float, dict], None]


def as_localizer(localizer_or_model, image_size, class_names, preset) -> Localizer:
    """A :class:`Localizer` as given, or one around an :class:`SPGModel` on its own device.

    Args:
        localizer_or_model: a Localizer, or an SPGModel.
        image_size: the model's input size (None: 224).
        class_names: the class names of the model's outputs.
        preset: the guidance preset's name (None: paper).

    Returns:
        The Localizer.
    """
    if isinstance(localizer_or_model, Localizer):
        return localizer_or_model
    if not isinstance(localizer_or_model, SPGModel):
        raise TypeError(f"expected a Localizer or an SPGModel, got {type(localizer_or_model).__name__}")
    model = localizer_or_model
    device = next(model.parameters()).device
    return Localizer(model, image_size or 224, class_names, device, preset or "paper")


def augmented_views(image: Image.Image, size: int, count: int, max_zoom: float = 1.25,
                    generator: torch.Generator | None = None) -> list[Image.Image]:
    """``count`` square views of ``image``: the plain resize first, then random zooms of up to
    ``max_zoom`` (resize, random crop back to ``size``) with random horizontal flips.

    Every target of a view (Mask-A, Mask-B2, Mask-fuse) is computed on that same view, so the
    seeds are aligned with the pixels they supervise by construction.
    """
    image = image.convert("RGB")
    views = [image.resize((size, size), Image.BILINEAR)]
    for _ in range(count - 1):
        zoom = 1.0 + float(torch.rand((), generator=generator)) * (max_zoom - 1.0)
        big = max(size, round(size * zoom))
        view = image.resize((big, big), Image.BILINEAR)
        left = int(torch.randint(0, big - size + 1, (), generator=generator))
        top = int(torch.randint(0, big - size + 1, (), generator=generator))
        view = view.crop((left, top, left + size, top + size))
        if float(torch.rand((), generator=generator)) < 0.5:
            view = view.transpose(Image.FLIP_LEFT_RIGHT)
        views.append(view)
    return views


def guided_model(model: SPGModel, train_c: bool = False, width: int | None = None, seed: int = 0) -> SPGModel:
    """A new SPGModel with fresh (Xavier) SPG-B (shared top, paper §3.1) and, with ``train_c``,
    SPG-C heads of ``width`` channels (default: the backbone's head config; SPG-C as deep as
    ``model``'s) that shares
    ``model``'s backbone, A3 and A4 — so training its heads leaves ``model`` as it was."""
    config = model.backbone.head_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        guided = SPGModel(model.backbone, model.num_classes, variant="plain",
                          backbone_name=model.backbone_name, options=model.options, spg_c_depth=model.spg_c_depth)
        guided.spg_b = SPGBranches(model.backbone.b1_channels, model.backbone.b2_channels, width or config.b_width)
        if train_c:
            guided.spg_c = build_spg_c(model.spg_a4.in_channels, width or config.c_width, depth=model.spg_c_depth)
    guided.variant = "spg" if train_c else "no-c"
    guided.spg_a3, guided.spg_a4 = model.spg_a3, model.spg_a4
    device = next(model.parameters()).device
    return guided.to(device).eval()


@dataclass
class _FrozenViews:
    """The frozen part of the network, computed once per augmented view."""

    features: object  # BackboneFeatures of the views
    a3: torch.Tensor
    class_maps: torch.Tensor
    labels: torch.Tensor

    def outputs(self, model: SPGModel, index) -> dict:
        features = type(self.features)(*(tensor[index] for tensor in self.features))
        return model.head_outputs(features, self.a3[index], self.class_maps[index])


FORWARD_CHUNK = 32  # views per frozen forward pass (bounds the memory of a large batch)


@torch.no_grad()
def frozen_views(localizer: Localizer, images: list[Image.Image], count: int, generator: torch.Generator,
                 class_indices: list[int | None]) -> _FrozenViews:
    """``count`` augmented views of each image (image-major: image i's plain view is view
    ``i * count``) through the frozen backbone, A3 and A4; each view labelled with its image's
    class (None: the top-1 of its plain view)."""
    model = localizer.model
    views = [view for image in images for view in augmented_views(image, localizer.image_size, count,
                                                                  generator=generator)]
    batch = torch.cat([localizer.preprocess(view) for view in views]).to(localizer.device)
    chunks = []
    for start in range(0, len(views), FORWARD_CHUNK):
        features = model.backbone(batch[start:start + FORWARD_CHUNK])
        a3 = model.spg_a3(features.top)
        chunks.append((features, a3, model.spg_a4(a3)))
    features = type(chunks[0][0])(*(torch.cat(parts) for parts in zip(*(chunk[0] for chunk in chunks))))
    a3, class_maps = torch.cat([chunk[1] for chunk in chunks]), torch.cat([chunk[2] for chunk in chunks])
    labels = []
    for i, class_index in enumerate(class_indices):
        if class_index is None:
            class_index = int(class_maps[i * count].mean(dim=(1, 2)).argmax())  # top-1 of the plain view
        if not 0 <= class_index < model.num_classes:
            raise ValueError(f"class index {class_index} is out of range 0..{model.num_classes - 1}")
        labels += [class_index] * count
    labels = torch.tensor(labels, dtype=torch.long, device=localizer.device)
    return _FrozenViews(features, a3, class_maps, labels)


class GrowthRecorder:
    """History and snapshots of the guidance on the plain view (view 0) while the heads train."""

    def __init__(self, preset: GuidancePreset, size: int, plain=slice(0, 1)):
        self.preset, self.size, self.plain = preset, size, plain  # plain: the un-augmented views
        self.history: list[dict] = []
        self.snapshots: list[dict] = []
        self._loss_sums: dict[str, float] = {}
        self._loss_count = 0

    def add_losses(self, losses: dict) -> None:
        for name, value in losses.items():
            if name.startswith("bce_"):
                self._loss_sums[name] = self._loss_sums.get(name, 0.0) + float(value.detach())
        self._loss_count += 1

    @torch.no_grad()
    def record(self, model: SPGModel, views: _FrozenViews, step: int, seconds: float) -> None:
        plain = self.plain
        guidance = self_produced_guidance(views.outputs(model, plain), views.labels[plain], self.preset,
                                          mask_size=self.size)
        self.history.append({
            "step": step,
            "seconds": round(seconds, 3),
            "loss": {name: total / max(self._loss_count, 1) for name, total in self._loss_sums.items()},
            "foreground": {name: float((guidance[name] == FOREGROUND).float().mean())
                           for name in TRACKED_MASKS if name in guidance},
        })
        fused = F.interpolate(guidance["fused"][:1, None], size=(SNAPSHOT_SIDE, SNAPSHOT_SIDE), mode="bilinear",
                              align_corners=False)[0, 0]
        self.snapshots.append({"step": step, "seconds": round(seconds, 3),
                               "fused": fused.cpu().numpy().astype(np.float32)})
        self._loss_sums, self._loss_count = {}, 0


def train_heads(guided: SPGModel, frozen: _FrozenViews, preset: GuidancePreset, mask_size: int,
                recorder: GrowthRecorder, generator: torch.Generator, started: float, reserve: float, *,
                seconds: float | None, steps: int | None, progress: ProgressCallback | None, batch_size: int,
                learning_rate: float, record_every: int) -> int:
    """Adam on the fresh heads of ``guided`` over mini-batches of the frozen views, each step
    Algorithm 1 steps 4-9 unchanged (``self_produced_guidance`` then ``spg_loss``), until
    ``steps`` or the ``seconds`` budget (counted from ``started``, ``reserve`` kept for what
    follows) runs out. Returns the number of steps done."""
    heads = [head for head in (guided.spg_b, guided.spg_c) if head is not None]
    optimizer = torch.optim.Adam([p for head in heads for p in head.parameters()], lr=learning_rate)
    recorder.record(guided, frozen, 0, time.perf_counter() - started)
    count = len(frozen.labels)
    order = torch.randperm(count, generator=generator)
    step = 0
    while steps is None or step < steps:
        if seconds is not None and step > 0 and time.perf_counter() - started + reserve >= seconds:
            break
        index = order[(torch.arange(batch_size) + step * batch_size) % count].to(frozen.labels.device)
        outputs = frozen.outputs(guided, index)
        # Algorithm 1 steps 4-9, unchanged: seeds from the network's own maps, masked BCE.
        guidance = self_produced_guidance(outputs, frozen.labels[index], preset, mask_size=mask_size)
        losses = spg_loss(outputs, frozen.labels[index], guidance)
        trainable = sum(value for name, value in losses.items() if name.startswith("bce_"))
        optimizer.zero_grad(set_to_none=True)
        trainable.backward()  # the CE term has no trainable input: the classifier is frozen
        optimizer.step()
        step += 1
        recorder.add_losses(losses)
        if step % record_every == 0:
            recorder.record(guided, frozen, step, time.perf_counter() - started)
        if progress is not None:
            elapsed = time.perf_counter() - started
            fraction = max(step / steps if steps else 0.0, elapsed / seconds if seconds else 0.0)
            progress(min(1.0, fraction), {"step": step, "seconds": elapsed, "record": recorder.history[-1]})
    if recorder.history[-1]["step"] != step:
        recorder.record(guided, frozen, step, time.perf_counter() - started)
    return step


def check_budget(seconds, steps, views: int, batch_size: int) -> None:
    """Refuse a growth budget that cannot run, in one line naming the value.

    Args:
        seconds: a time budget in seconds, or None.
        steps: a number of steps, or None (one of the two is needed).
        views: augmented views per image (≥ 1).
        batch_size: views per step (≥ 1).
    """
    if seconds is None and steps is None:
        raise ValueError("give seconds (a time budget, e.g. 5.0) or steps (e.g. 100), or both")
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds={seconds} must be positive; try 5.0")
    if steps is not None and steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    if views < 1 or batch_size < 1:
        raise ValueError(f"views={views} and batch_size={batch_size} must be at least 1")


def single_image_guidance(
    localizer_or_model,
    image: Image.Image,
    class_index: int | None = None,
    seconds: float | None = 5.0,
    steps: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    preset: str | GuidancePreset | None = None,
    image_size: int | None = None,
    class_names=None,
    train_c: bool = False,
    width: int | None = 64,
    views: int = 8,
    batch_size: int = 4,
    learning_rate: float = 3e-4,
    record_every: int = 5,
    seed: int = 0,
) -> SingleImageGuidance:
    """Train fresh SPG-B (B2 → B1, shared top) and optionally SPG-C on one image's own seeds, the
    classifier frozen. An exploration beyond the paper (see the module docstring).

    localizer_or_model: a Localizer, or an SPGModel (then ``image_size`` (default 224),
        ``class_names`` and ``preset`` (default "paper") describe it). Never modified.
    class_index: the class whose attention map seeds the guidance (default: top-1).
    seconds / steps: stop after this wall-clock budget (counted from the call, the final
        prediction included) or this many optimisation steps, whichever comes first; give at
        least one. ``steps`` alone makes a run reproducible (with ``seed``).
    progress: called after every step as ``progress(fraction_done, info)``; ``info`` holds
        ``step``, ``seconds`` and ``record`` (the latest history record).
    width: channels of the new heads' hidden convs (64 keeps a step ~0.1 s on one CPU thread).
    views / batch_size: augmented views (plain resize + random zoom-crops and flips) and views per
        step. Optimiser: Adam at ``learning_rate`` (a few seconds, not the paper's epochs of SGD;
        at 1e-3 the covered area swung more from seed to seed: 0.40-0.82 of the `chelsea` cat
        after 30 steps against 0.49-0.67 at 3e-4).
    """
    check_budget(seconds, steps, views, batch_size)
    started = time.perf_counter()
    localizer = as_localizer(localizer_or_model, image_size, class_names, preset)
    preset = get_preset(preset) if isinstance(preset, str) else (preset or localizer.preset)
    image = image.convert("RGB")
    generator = torch.Generator().manual_seed(seed)
    frozen = frozen_views(localizer, [image], views, generator, [class_index])
    # Kept for the final prediction: about two forward passes of one view.
    reserve = 2 * (time.perf_counter() - started) / views

    guided = guided_model(localizer.model, train_c=train_c, width=width, seed=seed)
    recorder = GrowthRecorder(preset, localizer.image_size)
    step = train_heads(guided, frozen, preset, localizer.image_size, recorder, generator, started, reserve,
                        seconds=seconds, steps=steps, progress=progress, batch_size=batch_size,
                        learning_rate=learning_rate, record_every=record_every)

    final = Localizer(guided, localizer.image_size, localizer.class_names, localizer.device, preset)
    predicted = final.predict(image, int(frozen.labels[0]))
    values = {f.name: getattr(predicted, f.name) for f in fields(StageMaps)}
    return SingleImageGuidance(**values, history=recorder.history, snapshots=recorder.snapshots, steps=step,
                               seconds=time.perf_counter() - started, views=views, preset=preset)


def box_coverage(mask: np.ndarray, box) -> dict:
    """How much of an object box a seed mask's foreground covers.

    recall: fraction of the box's pixels that are foreground seeds; precision: fraction of the
    foreground seeds inside the box (NaN without foreground). ``box`` is inclusive (x0, y0, x1, y1).
    """
    foreground = np.asarray(mask) == FOREGROUND
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = np.zeros_like(foreground)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    hits = float((foreground & inside).sum())
    return {
        "recall": hits / float(inside.sum()),
        "precision": hits / float(foreground.sum()) if foreground.any() else float("nan"),
    }


def growth_strip(result: SingleImageGuidance, count: int = 5, height: int = 160) -> Image.Image:
    """Mask-A, then the fused guidance at ``count`` moments of training, then the final Mask-fuse:
    how the guidance grew from the attention seeds over the object."""
    from PIL import ImageDraw

    from spg_core.viz import heatmap_overlay, mask_image

    masks = stage_masks(result.maps, result.preset or get_preset("paper"))
    width = round(result.image.width * height / result.image.height)
    base = result.image.resize((width, height), Image.BILINEAR)
    # Step 0 is the untrained heads' output: noise, not guidance.
    trained = [snap for snap in result.snapshots if snap["step"] > 0] or result.snapshots
    picks = np.unique(np.linspace(0, len(trained) - 1, num=min(count, len(trained))).round().astype(int))
    tiles = [(mask_image(masks["mask_a"]).resize((width, height), Image.NEAREST), "Mask-A (seeds)")]
    for i in picks:
        snap = trained[i]
        fused = np.asarray(Image.fromarray(snap["fused"]).resize((width, height), Image.BILINEAR))
        tiles.append((heatmap_overlay(base, fused), f"fused, step {snap['step']}"))
    if "mask_fuse" in masks:
        tiles.append((mask_image(masks["mask_fuse"]).resize((width, height), Image.NEAREST), "Mask-fuse (final)"))
    strip = Image.new("RGB", (len(tiles) * (width + 4), height + 16), "white")
    draw = ImageDraw.Draw(strip)
    for k, (tile, title) in enumerate(tiles):
        strip.paste(tile, (k * (width + 4), 16))
        draw.text((k * (width + 4) + 2, 2), title, fill=(0, 0, 0))
    return strip


__all__ = ["SingleImageGuidance", "single_image_guidance", "guided_model", "augmented_views", "box_coverage", "growth_strip", "TRACKED_MASKS"]
