"""Image + box + mask transforms that keep the three consistent.

Box convention used everywhere in the project: **0-based, inclusive pixel coordinates**
``(x0, y0, x1, y1)``: the box covers pixel columns x0..x1 and rows y0..y1, so its area is
``(x1 - x0 + 1) * (y1 - y0 + 1)`` (spec §4, the IoU "+1" rule). In continuous image coordinates
such a box spans ``[x0, x1 + 1)``, which is what resizing has to scale:

    x0' = x0 * s          x1' = (x1 + 1) * s - 1

(:func:`spg_core.boxes.resize_boxes`, rule "span", is the one place that resizes boxes.)
Flipping a width-W image maps column x to W - 1 - x, so ``x0' = W - 1 - x1``, ``x1' = W - 1 - x0``.

Augmentation (paper §3.3 and wsolevaluation): train = resize to (S·256/224)² -> random S×S crop
-> horizontal flip with p = 0.5; test = resize to S×S; the paper's ten-crop test views
(:func:`ten_crop_views`) are cut from the original image resized to (S·256/224)². Randomness
comes from torch's global generator, so DataLoader worker seeding and the trainer's per-epoch
seed control it. The box functions are plain numpy; torch is imported by the functions that make
tensors.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from spg_core.boxes import resize_boxes

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def _mean_std():
    """IMAGENET_MEAN and IMAGENET_STD as 3×1×1 tensors."""
    import torch

    return torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)


# ----------------------------------------------------------------------------- boxes (numpy, pure)
def as_boxes(boxes) -> np.ndarray:
    """Any N×4 sequence (or None) as a float32 N×4 array."""
    if boxes is None:
        return np.zeros((0, 4), np.float32)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def scale_boxes(boxes: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Resize inclusive boxes by (scale_x, scale_y) as float32; a box never shrinks below one pixel."""
    return resize_boxes(as_boxes(boxes), (1, 1), (scale_x, scale_y), rule="span", at_least_one_pixel=True)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip inclusive boxes to a width×height image.

    Returns ``(clipped, changed)``; boxes that lie entirely outside the image come back with
    x1 < x0 or y1 < y0 (use :func:`valid_boxes` to drop them)."""
    boxes = as_boxes(boxes)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
    clipped[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
    outside = (boxes[:, 0] > width - 1) | (boxes[:, 1] > height - 1) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    clipped[outside] = [0, 0, -1, -1]
    changed = np.any(clipped != boxes, axis=1)
    return clipped, changed


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = as_boxes(boxes)
    return boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    boxes = as_boxes(boxes)
    out = boxes.copy()
    out[:, 0] = width - 1 - boxes[:, 2]
    out[:, 2] = width - 1 - boxes[:, 0]
    return out


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight inclusive box of the foreground (== 1) pixels of a mask, as a 1×4 array (0×4 if empty)."""
    foreground = np.asarray(mask) == 1
    rows = np.flatnonzero(foreground.any(axis=1))
    cols = np.flatnonzero(foreground.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 4), np.float32)
    return np.array([[cols[0], rows[0], cols[-1], rows[-1]]], np.float32)


# ----------------------------------------------------------------------------- tensors
def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float 3×H×W, ImageNet-normalised."""
    import torch

    mean, std = _mean_std()
    array = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    return (array.float().div_(255.0) - mean) / std


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor`: float 3×H×W (normalised) -> uint8 H×W×3 for display."""
    mean, std = _mean_std()
    tensor = tensor.detach().float().cpu()
    image = tensor * std + mean
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def train_resize_size(image_size: int) -> int:
    """Paper/wsolevaluation: resize to 256 before a 224 crop; the same ratio at other sizes."""
    return int(round(image_size * 256 / 224))


def ten_crop_views(image: Image.Image, crop_size: int) -> tuple:
    """The paper's ten test views (§4.1) of a PIL image at its own resolution: resize to
    :func:`train_resize_size` squared (bilinear, as the training resize), then
    ``torchvision.transforms.functional.ten_crop`` at ``crop_size`` (the network input side S):
    the 4 corners and the centre, then the same of the flipped image."""
    from torchvision.transforms import functional as TF  # only here: keeps the app's start light

    if not isinstance(image, Image.Image):
        raise TypeError(f"ten_crop_views cuts a PIL image at its own resolution, not a {type(image).__name__}: "
                        "views of an already resized input would be upsampled ones")
    size = int(crop_size)
    larger = train_resize_size(size)
    resized = image.resize((larger, larger), Image.Resampling.BILINEAR)
    return tuple(TF.ten_crop(resized, [size, size]))


def ten_crop_tensor(image: Image.Image, crop_size: int) -> torch.Tensor:
    """:func:`ten_crop_views` of an image as one 10×3×S×S normalised tensor (:func:`to_tensor`):
    what the single-image path and the dataset items classify (``spg_core.localize``)."""
    import torch

    return torch.stack([to_tensor(view) for view in ten_crop_views(image.convert("RGB"), crop_size)])


# ----------------------------------------------------------------------------- the sample transform
class SampleTransform:
    """Callable ``(sample) -> dict`` producing the training/evaluation tensors.

    Output keys: image (3×S×S float, normalised), boxes (N×4 float, transformed pixels,
    inclusive), mask (S×S uint8, 1/0/255) when the sample has one, and with ``ten_crop`` the
    paper's ten test views of the untransformed image (10×3×S×S, :func:`ten_crop_tensor`).
    Boxes that a random crop cuts away entirely are dropped, the rest are clipped to the crop.
    """

    def __init__(self, image_size: int, train: bool = False, ten_crop: bool = False):
        if int(image_size) < 8:
            raise ValueError(f"image_size={image_size} is too small; use at least 8 (224 for the paper's setting)")
        self.image_size = int(image_size)
        self.train = bool(train)
        self.ten_crop = bool(ten_crop)

    def __call__(self, image: Image.Image, boxes: np.ndarray, mask: np.ndarray | None) -> dict:
        import torch

        size = self.image_size
        width, height = image.size
        views = ten_crop_tensor(image, size) if self.ten_crop else None
        resize = train_resize_size(size) if self.train else size
        image = image.resize((resize, resize), Image.Resampling.BILINEAR)
        boxes = scale_boxes(boxes, resize / width, resize / height)
        mask_image = None
        if mask is not None:
            # NEAREST keeps the label values {0, 1, 255}; no interpolation between fg and ignore.
            mask_image = Image.fromarray(np.asarray(mask, dtype=np.uint8)).resize((resize, resize), Image.Resampling.NEAREST)
        if self.train:
            left = int(torch.randint(0, resize - size + 1, (1,)).item())
            top = int(torch.randint(0, resize - size + 1, (1,)).item())
            image = image.crop((left, top, left + size, top + size))
            if mask_image is not None:
                mask_image = mask_image.crop((left, top, left + size, top + size))
            boxes = boxes - np.array([left, top, left, top], np.float32)
            boxes = valid_boxes(clip_boxes(boxes, size, size)[0])
            if torch.rand(1).item() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                if mask_image is not None:
                    mask_image = mask_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                boxes = flip_boxes(boxes, size)
        out = {"image": to_tensor(image), "boxes": torch.from_numpy(as_boxes(boxes).copy())}
        if mask_image is not None:
            out["mask"] = torch.from_numpy(np.array(mask_image, dtype=np.uint8, copy=True))
        if views is not None:
            out["ten_crop"] = views
        return out
