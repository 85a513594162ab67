"""Robust image and mask loading: every file a user can throw at the loaders becomes RGB, or a
:class:`BadImageError` that the dataset turns into a skipped sample.

What "robust" means here, case by case:

- grayscale (L, LA, 1), palette (P, PA), CMYK, YCbCr, LAB, HSV: converted to RGB by Pillow;
- RGBA / LA / palette transparency: composited onto white, so transparent pixels do not show
  whatever colour the encoder left under them;
- 16-bit and 32-bit integer images (I;16, I): scaled to 8 bits by the value range of their bit
  depth (Pillow's own ``convert("L")`` clips everything above 255 to white);
- float images (F): values in [0, 1] are scaled to [0, 255], others are clipped;
- EXIF orientation: applied (``ImageOps.exif_transpose``), so pixels — and therefore the boxes
  and masks, which must be annotated on the *displayed* image — are in the orientation a viewer
  shows. CUB, ILSVRC and OpenImages annotations were all drawn on the displayed image;
- huge images: anything whose longest side exceeds ``max_side`` (4096 px) is downscaled on
  load (JPEGs by DCT scaling, which is cheap), and the returned scale lets the caller scale its
  boxes and masks the same way;
- decompression bombs: Pillow's global ``MAX_IMAGE_PIXELS`` check is replaced for the duration
  of one open by our own ``max_pixels`` limit, so a large but legitimate photograph loads (and is
  downscaled) while a file that claims billions of pixels is refused as a bad image instead of
  exhausting memory;
- truncated, corrupt, non-image, missing files: :class:`BadImageError` (truncated files are not
  silently padded — ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MAX_SIDE = 4096
MAX_PIXELS = 1 << 28  # 268 Mpx (16384²): above this a file is refused, not decoded
_PIXEL_LIMIT_LOCK = threading.Lock()
EXIF_ORIENTATION = 0x0112  # the tag ImageOps.exif_transpose reads; 5-8 swap width and height


class BadImageError(Exception):
    """A file that cannot be decoded into an image (corrupt, truncated, not an image, missing,
    or a decompression bomb). Datasets skip such samples instead of stopping an epoch."""


@contextmanager
def _pixel_limit(max_pixels: int):
    # Pillow raises DecompressionBombError above 2×MAX_IMAGE_PIXELS and warns above 1× when a
    # file is opened; for the duration of one open we apply our own limit instead (checked
    # explicitly after the header is read). Held only around Image.open, which reads headers,
    # so decoding in threads is not serialised. Formats that re-check while decoding (GIF
    # frames, ICO) still see the global limit; exceeding it there makes a bad image.
    with _PIXEL_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image)
        if mode == "F":
            array = array.astype(np.float64)
            array = array * 255.0 if np.nanmax(array) <= 1.0 else array
            array = np.nan_to_num(array)
        elif mode == "I" and array.size and array.max() > 65535:
            array = array.astype(np.float64) / 16843009.0  # 32-bit range -> 8 bits (2**32-1)/255
        else:
            array = array.astype(np.float64) / 257.0  # 16-bit range -> 8 bits (65535/255)
        gray = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path, max_side: int | None = None, max_pixels: int | None = None,
               max_decoded_pixels: int | None = None) -> tuple[Image.Image, float]:
    """Decode ``path`` into an RGB image in its displayed orientation.

    Args:
        path: the image file.
        max_side: the longest side of the returned image (default ``MAX_SIDE``).
        max_pixels: files whose header claims more pixels are refused (default ``MAX_PIXELS``).
        max_decoded_pixels: the most pixels decoded into memory (a JPEG is decoded at 1/2, 1/4
            or 1/8 of its size when that fits ``max_side``; other formats decode whole), checked
            from the header before anything is decoded; None: ``max_pixels``. What bounds the
            memory a small compressed file can cost (a 1 MB PNG may hold 16384² pixels).

    Returns:
        ``(image, scale)`` where ``scale`` (<= 1) is the factor applied to fit ``max_side``;
        boxes in the file's pixel coordinates must be multiplied by it.

    Raises:
        BadImageError: anything that is not a decodable image, or is too large.
    """
    path = Path(path)
    max_side = MAX_SIDE if max_side is None else int(max_side)
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    max_decoded = max_pixels if max_decoded_pixels is None else int(max_decoded_pixels)
    try:
        with _pixel_limit(max_pixels):
            image = Image.open(path)  # reads the header only; Pillow's size check happens here
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadImageError(
                    f"{path}: {width}x{height} px exceeds the decompression-bomb limit of "
                    f"{max_pixels} px; pass a larger max_pixels if the file is genuine"
                )
            longest = max(width, height)
            if longest > max_side and image.format == "JPEG":
                # DCT-domain downscaling: decodes a 1/2, 1/4 or 1/8 image directly.
                image.draft("RGB", (max(1, width * max_side // longest), max(1, height * max_side // longest)))
            decoded = image.size[0] * image.size[1]  # after draft(): what load() will allocate
            if decoded > max_decoded:
                raise BadImageError(
                    f"{path}: {width}x{height} px would decode to {decoded / 1e6:.0f} Mpx, above the limit of "
                    f"{max_decoded / 1e6:.0f} Mpx; downscale it (e.g. to 2048 px on its longest side) or save it as JPEG"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except BadImageError:
        raise
    except FileNotFoundError as error:
        raise BadImageError(f"{path}: file not found") from error
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise BadImageError(f"{path}: cannot decode image ({type(error).__name__}: {error})") from error
    if image.size[0] == 0 or image.size[1] == 0:
        raise BadImageError(f"{path}: image has zero size {image.size}")
    # The displayed size after a possible draft(); `scale` relates it to the stored size.
    stored_longest = max(width, height)
    displayed_longest = max(image.size)
    scale = displayed_longest / stored_longest
    if displayed_longest > max_side:
        factor = max_side / displayed_longest
        new_size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
        image = image.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        scale *= factor
    return image, scale


def image_size(path: str | Path, orient: bool = True) -> tuple[int, int]:
    """(w, h) of an image file read from its header, nothing decoded: the displayed size
    (EXIF orientation applied, as :func:`load_image` does) unless ``orient`` is False (masks,
    which :func:`load_mask` reads as stored). Raises :class:`BadImageError` when unreadable."""
    path = Path(path)
    try:
        with _pixel_limit(MAX_PIXELS):
            image = Image.open(path)
        with image:
            width, height = image.size
            transposed = orient and image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except FileNotFoundError as error:
        raise BadImageError(f"{path}: file not found") from error
    except Exception as error:
        raise BadImageError(f"{path}: cannot read the image header ({type(error).__name__}: {error})") from error
    return (height, width) if transposed else (width, height)


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A binary mask file (any mode; > 127 means set) as a bool H×W array, resized (nearest)
    to ``size`` = (w, h) when given. Raises :class:`BadImageError` when undecodable."""
    path = Path(path)
    try:
        with _pixel_limit(MAX_PIXELS):
            image = Image.open(path)
        with image:
            image.load()
            if image.mode.startswith("I;16") or image.mode in ("I", "F"):
                array = np.asarray(image).astype(np.float64)
                binary = array > (0.5 if array.max(initial=0) <= 1.0 else array.max() / 2)
            else:
                binary = np.asarray(image.convert("L")) > 127
    except FileNotFoundError as error:
        raise BadImageError(f"{path}: mask file not found") from error
    except Exception as error:
        raise BadImageError(f"{path}: cannot decode mask ({type(error).__name__}: {error})") from error
    if size is not None and (binary.shape[1], binary.shape[0]) != tuple(size):
        resized = Image.fromarray(binary.astype(np.uint8) * 255).resize(tuple(size), Image.Resampling.NEAREST)
        binary = np.asarray(resized) > 127
    return binary
