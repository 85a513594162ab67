"""Image → per-stage maps → seed masks → box. What the CLI, the app and the notebooks call.

Paper §3.4: at test time only the classifier runs; the localisation map is the A4 map of the
chosen class. B1, B2 and SPG-C are evaluated here too (``with_guidance=True``) so a user can see
every stage of Fig. 2, but they never change the box.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spg_core import boxes as box_ops
from spg_core.data.transforms import ten_crop_tensor, to_tensor
from spg_core.guidance import STAGES, GuidancePreset, get_preset, normalize_map, stage_maps

@dataclass
class StageMaps:
    """Every score map of one image at the image's own resolution (float32 in [0, 1])."""

    image: Image.Image
    probabilities: np.ndarray
    class_index: int
    class_names: list[str]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    # NaN/inf pixels per map in the network's output, set to the map's minimum (fill_nonfinite)
    nonfinite: dict[str, int] = field(default_factory=dict)

    def top_k(self, k: int = 5) -> list[tuple[int, str, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(int(i), self.class_names[i], float(self.probabilities[i])) for i in order]

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


def stage_masks(maps: dict[str, np.ndarray], preset: GuidancePreset) -> dict:
    """Eq. 1 seeds of each guided stage, with per-image fallback flags (``<mask>_fallback``)."""
    out = {}
    for stage in STAGES:
        if stage.source in maps:
            out[stage.mask], fired = preset.seeds(stage.mask, maps[stage.source], return_fallback=True)
            out[f"{stage.mask}_fallback"] = bool(fired)
    return out


@torch.no_grad()
def ten_crop_probabilities(model, views: torch.Tensor) -> torch.Tensor:
    """Paper §4.1: each image's softmax averaged over its ten views. ``views``: B×10×3×S×S
    (:func:`spg_core.data.transforms.ten_crop_tensor` per image) -> B×C, one forward pass per
    view position over the batch. The single-image path (:class:`Localizer`) and dataset
    evaluation (``spg_core.evaluate``) both classify with this."""
    probabilities = [F.softmax(model(views[:, k], with_guidance=False)["logits"].float(), dim=1)
                     for k in range(views.shape[1])]
    return torch.stack(probabilities).mean(dim=0)


def check_tau(tau) -> float:
    """τ as a float if it is a number in [0, 1], else a ValueError naming it.

    Args:
        tau: the box threshold on the min-max map.

    Returns:
        ``float(tau)``.
    """
    value = float(tau) if isinstance(tau, (int, float, np.floating, np.integer)) and not isinstance(tau, bool) \
        else float("nan")
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise ValueError(f"tau={tau!r} is out of range: τ thresholds the min-max map, use a number in [0, 1]")
    return value


def localization_box(score_map: np.ndarray, tau: float) -> tuple[int, int, int, int]:
    """Paper §3.4 (after CAM): tight box of the largest connected component at τ.

    Args:
        score_map: a 2-D map; NaN/inf pixels count as its minimum (:func:`spg_core.boxes.fill_nonfinite`).
        tau: threshold in [0, 1] on the min-max map (a ValueError otherwise).

    Returns:
        ``(x0, y0, x1, y1)`` inclusive pixel coordinates.
    """
    tau = check_tau(tau)
    filled, _ = box_ops.fill_nonfinite(score_map)
    return tuple(int(v) for v in box_ops.largest_component_box(filled, tau))


class Localizer:
    """Runs a trained SPG model on PIL images."""

    def __init__(self, model, image_size: int, class_names=None, device="cpu", preset: str | GuidancePreset = "paper"):
        self.model = model.eval()
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(model.num_classes)]
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        # One model serves every thread that holds this Localizer (the app's sessions share one):
        # one forward at a time, each with torch's whole thread pool, instead of several pools
        # oversubscribing the cores.
        self._lock = threading.Lock()

    @classmethod
    def from_run(cls, run, device="cpu") -> Localizer:
        from spg_core.runs import load_run

        model, config, info = load_run(run, device)
        return cls(model, config.image_size, info["class_names"], device, config.preset)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
        return to_tensor(image).unsqueeze(0)

    def ten_crop_probabilities(self, image: Image.Image) -> np.ndarray:
        """Paper §4.1: softmax averaged over 4 corners + centre and their flips, cut from the
        image resized to S·256/224 (:func:`ten_crop_probabilities`)."""
        views = ten_crop_tensor(image, self.image_size)[None].to(self.device)
        with self._lock:
            return ten_crop_probabilities(self.model, views)[0].cpu().numpy()

    @property
    def has_guidance(self) -> bool:
        return getattr(self.model, "variant", "plain") != "plain"

    @torch.no_grad()
    def forward_many(self, images, batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
        """The model's outputs for several images, run in batches: one dict per image (batch
        dimension 1, on the CPU), what :meth:`predict` takes as ``outputs`` so that the image's
        maps need no forward of their own. Equal to one forward per image up to float rounding."""
        images = list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        out: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(images), batch_size):
            x = torch.cat([self.preprocess(image.convert("RGB")) for image in images[start:start + batch_size]])
            with self._lock:
                outputs = self.model(x.to(self.device), with_guidance=self.has_guidance)
            outputs = {k: v.detach().float().cpu() for k, v in outputs.items()}
            out += [{k: v[i:i + 1].clone() for k, v in outputs.items()} for i in range(x.shape[0])]
        return out

    @torch.no_grad()
    def predict(self, image: Image.Image, class_index: int | None = None, ten_crop: bool = False,
                outputs: dict[str, torch.Tensor] | None = None) -> StageMaps:
        """All stage maps of ``image`` for ``class_index`` (default: the top-1 prediction).
        ``outputs``: the model's outputs for this image computed before (:meth:`forward_many`),
        so no forward runs."""
        image = image.convert("RGB")
        if outputs is None:
            x = self.preprocess(image).to(self.device)
            with self._lock:
                outputs = self.model(x, with_guidance=self.has_guidance)
        probabilities = F.softmax(outputs["logits"].float(), dim=1)[0].cpu().numpy()
        if ten_crop:
            probabilities = self.ten_crop_probabilities(image)
        if class_index is None:
            class_index = int(np.argmax(probabilities))
        if not 0 <= class_index < probabilities.shape[0]:
            raise ValueError(f"class index {class_index} is out of range 0..{probabilities.shape[0] - 1}")
        raw = stage_maps(outputs, torch.tensor([class_index]), (image.height, image.width), normalize=False)
        maps, nonfinite = {}, {}
        for name, value in raw.items():
            # counted before the attention map's min-max, which sets NaN pixels to its minimum too
            value = normalize_map(value) if name == "attention" else value
            maps[name], count = box_ops.fill_nonfinite(value[0].cpu().numpy())
            maps[name] = maps[name].astype(np.float32)
            nonfinite[name] = int((~torch.isfinite(raw[name][0])).sum()) if name == "attention" else count
        return StageMaps(image, probabilities, class_index, self.class_names, maps,
                         {name: count for name, count in nonfinite.items() if count})

    def masks(self, stage_maps: StageMaps, preset: GuidancePreset | None = None) -> dict:
        return stage_masks(stage_maps.maps, preset or self.preset)
