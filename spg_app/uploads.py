"""Uploaded photos: size, type and content checks with messages meant for the user, then
decoding (downscaled to :data:`DISPLAY_MAX_SIDE`)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = ("png", "jpg", "jpeg")
# Photos are analysed at most this large: the maps are upsampled from a 12-28 px grid, so 512 px
# shows all they hold, and a slider move on it stays within ~30 ms (benchmarks/bench_app.py
# --photo-side); at 1024 px it takes ~4x longer for no more information.
DISPLAY_MAX_SIDE = 512
# The most pixels an upload may decode to (checked from its header first): 16.8 Mpx (4096²), about
# 70 MB while decoding. A PNG is decoded whole before it is shrunk, and a 1 MB PNG can claim
# 16384² pixels (1 GB decoded); a JPEG decodes at 1/8 of its size when that is enough, so far
# larger JPEG photos pass.
MAX_DECODED_PIXELS = 4096 * 4096
_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",)}


class UploadError(ValueError):
    """An uploaded file the app refuses, with a message meant for the user."""


def read_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = DISPLAY_MAX_SIDE):
    """Check and decode an uploaded PNG/JPEG: returns ``(image, scale)`` from
    ``spg_core.data.images.load_image`` (``scale`` < 1 when downscaled to ``max_side``).

    Raises :class:`UploadError` naming the problem and the fix: too large, wrong type (by name
    and by the file's first bytes), or not decodable.
    """
    from spg_core.data.images import BadImageError, load_image

    size = len(data)
    if size > max_bytes:
        raise UploadError(f"{name} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                          "Downscale or re-encode the photo (e.g. JPEG quality 90) and upload it again.")
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes); upload a PNG or JPEG photo.")
    extension = Path(name).suffix.lower().lstrip(".")
    if extension not in UPLOAD_TYPES:
        raise UploadError(f"{name}: .{extension or '(none)'} files are not supported; upload a PNG or JPEG "
                          f"({', '.join('.' + t for t in UPLOAD_TYPES)}).")
    kind = "png" if extension == "png" else "jpeg"
    if not any(data.startswith(signature) for signature in _SIGNATURES[kind]):
        actual = next((k for k, sigs in _SIGNATURES.items() if any(data.startswith(s) for s in sigs)), None)
        hint = f"it holds {actual.upper()} data — rename it" if actual else "it is not an image file"
        raise UploadError(f"{name} is named .{extension} but {hint}; upload a PNG or JPEG photo.")
    handle, path = tempfile.mkstemp(suffix=f".{extension}")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        try:
            image, scale = load_image(path, max_side=max_side, max_decoded_pixels=MAX_DECODED_PIXELS)
        except BadImageError as error:
            raise UploadError(f"{name} could not be read as an image: {str(error).replace(path, name)}") from None
    finally:
        os.unlink(path)
    return image, scale
