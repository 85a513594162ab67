"""Hostile input on a class server: files built to cost the server far more than their size.
Each case builds its input and asserts the defined outcome — a one-line refusal, and a bound on
the memory spent finding out (measured in a subprocess's peak RSS)."""
from __future__ import annotations

import functools
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=4)
def png_bomb(side: int = 16384, mode: str = "RGBA") -> bytes:
    """A PNG of ``side``² pixels, all zero: about a megabyte on disk, ``side``²×4 bytes decoded.
    Written row by row through zlib, so the test never holds the decoded image."""
    colour, channels = {"RGBA": (6, 4), "1": (0, None)}[mode]
    depth = 1 if mode == "1" else 8
    row = b"\x00" + bytes(side * channels if channels else (side + 7) // 8)  # filter byte + pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(6)
    rows = row * 256  # 256 rows per call: the same stream, fewer calls
    data = b"".join(packer.compress(rows) for _ in range(side // 256)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


PROBE = """
import json, resource, sys
{setup}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = {call}
except {refusal} as error:
    outcome = str(error)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"outcome": outcome if isinstance(outcome, str) else "opened", "grew_mb": (after - before) / 1024}}))
"""


def memory_probe(setup: str, call: str, refusal: str, path, timeout: int = 300) -> dict:
    """``call`` (Python, reading ``sys.argv[1]`` = ``path``) run in a fresh interpreter after
    ``setup``: {"outcome": the text it returned, the refusal's message (``refusal``: the exception
    class expected) or "opened", "grew_mb": growth of the process's peak RSS during the call}."""
    script = PROBE.format(setup=setup, call=call, refusal=refusal)
    reply = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
    assert reply.returncode == 0, reply.stderr
    return json.loads(reply.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["RGBA", "1"])
def test_a_small_png_claiming_16384_squared_pixels_is_refused_before_decoding(tmp_path, mode):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(16384, mode))
    assert path.stat().st_size < 2 * 2**20  # small enough to pass the upload size limit
    result = memory_probe("from spg_app.uploads import UploadError, read_upload",
                          'read_upload("photo.png", open(sys.argv[1], "rb").read())', "UploadError", path)
    assert "16384x16384" in result["outcome"] and "downscale" in result["outcome"]
    assert "\n" not in result["outcome"]
    assert result["grew_mb"] < 200, result


def test_a_large_jpeg_photo_still_opens():
    """The bound is on decoded pixels: a JPEG decodes at 1/8 of its size, so a big photo passes."""
    import io

    from PIL import Image

    from spg_app.uploads import DISPLAY_MAX_SIDE, read_upload

    buffer = io.BytesIO()
    Image.new("RGB", (6000, 4000), (120, 80, 40)).save(buffer, "JPEG", quality=70)
    image, scale = read_upload("photo.jpg", buffer.getvalue())
    assert max(image.size) == DISPLAY_MAX_SIDE and scale < 0.1


@pytest.mark.slow  # opens the ImageNet model in AppTest
def test_the_app_refuses_the_bomb_upload_in_one_line(tmp_path):
    from streamlit.testing.v1 import AppTest

    from test_app import APP, TIMEOUT

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__imagenet__"
    at.run()
    uploader = at.get("file_uploader")
    if not uploader or not hasattr(uploader[0], "upload"):
        pytest.skip("this Streamlit's AppTest cannot upload files")
    uploader[0].upload("bomb.png", png_bomb(16384), "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("16384x16384" in e and "downscale" in e for e in errors), errors
