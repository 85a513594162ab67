"""Regenerate every screenshot the README and docs show, from the running app in Chromium, so
no picture can show an app that no longer exists.

    python scripts/screenshots.py                # all of them, into docs/screenshots/
    python scripts/screenshots.py --only explore training

Each shot opens the app through a deep link (spg_app.links) on the default shipped run, waits
until the page has finished drawing, and saves a PNG (quantised to a palette when a plain PNG
would exceed 300 KB). ``drag`` records the pipeline view while Mask-A's δ_h and then τ are
dragged with the mouse, as the animated WebP the README opens with.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spg_app.testing import app_server, launch_chromium, settle  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
MAX_BYTES = 300 * 1024
WIDTH = 1400


def save_png(data: bytes, path: Path) -> None:
    """A screenshot as PNG, palette-quantised when a plain one is over MAX_BYTES."""
    path.write_bytes(data)
    if path.stat().st_size > MAX_BYTES:
        with Image.open(io.BytesIO(data)) as image:
            image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def open_page(page, url: str, selector: str, timeout_ms: int = 600_000) -> None:
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=timeout_ms)
    settle(page, timeout=timeout_ms / 1000)
    page.wait_for_timeout(1500)  # images decode after the run ends


def shot_explore(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    open_page(page, f"{url}/?run=synthetic-spg", 'img[alt="Localisation map + box"]')
    save_png(page.screenshot(), OUT / "explore.png")


def shot_dataset(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1500})
    open_page(page, f"{url}/dataset?run=synthetic-spg", '[data-testid="stPlotlyChart"]')
    page.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for(timeout=600_000)
    page.wait_for_timeout(1500)
    save_png(page.screenshot(), OUT / "dataset.png")


def shot_sweep(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1500})
    open_page(page, f"{url}/dataset?run=synthetic-spg", '[data-testid="stPlotlyChart"]')
    charts = page.locator('[data-testid="stPlotlyChart"]')
    count = charts.count()
    page.get_by_role("tab", name="δ sweep").click()
    page.get_by_role("button", name="Run sweep").click(timeout=60_000)
    charts.nth(count).wait_for(timeout=600_000)
    settle(page, timeout=600)
    page.wait_for_timeout(1500)
    page.set_viewport_size({"width": WIDTH, "height": 1100})
    save_png(page.screenshot(), OUT / "sweep.png")


def shot_triage(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1500})
    open_page(page, f"{url}/triage?run=synthetic-spg", 'img[alt^="triage "]')
    page.locator('img[alt^="triage "]').nth(11).wait_for(timeout=600_000)
    page.wait_for_timeout(1500)
    save_png(page.screenshot(), OUT / "triage.png")


def shot_training(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1300})
    open_page(page, f"{url}/training?run=synthetic-spg", 'img[alt="Attention map (A4)"]')
    save_png(page.screenshot(), OUT / "training.png")


def frame_of(page, view_box: dict) -> Image.Image:
    """The pipeline view's area of the page, at three quarters of its size (the animation's frames)."""
    data = page.screenshot(clip=view_box)
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)


def drag(page, frame, slider, target: float, frames: list, steps: int = 18) -> None:
    """Drag ``slider`` (an <input type=range> in the view) to ``target`` with the mouse held,
    taking a frame after each move."""
    box = slider.bounding_box()
    low, high = slider.evaluate("e => [Number(e.min), Number(e.max)]")
    start = float(slider.input_value())
    x_of = lambda value: box["x"] + 8 + (box["width"] - 16) * (value - low) / (high - low)  # noqa: E731
    y = box["y"] + box["height"] / 2
    page.mouse.move(x_of(start), y)
    page.mouse.down()
    for step in range(1, steps + 1):
        page.mouse.move(x_of(start + (target - start) * step / steps), y)
        page.wait_for_timeout(60)
        frames.append(frame())
    page.mouse.up()
    page.wait_for_timeout(400)
    frames.extend([frame()] * 4)  # a pause on the released value


def shot_drag(page, url: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    open_page(page, f"{url}/?run=synthetic-spg", 'iframe[title="spg_app.pipeline_view.pipeline_view"]')
    iframe = page.locator('iframe[title="spg_app.pipeline_view.pipeline_view"]')
    iframe.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    view_box = iframe.bounding_box()
    inner = iframe.content_frame
    frames: list[Image.Image] = []
    frame = lambda: frame_of(page, view_box)  # noqa: E731
    frames.extend([frame()] * 4)
    drag(page, frame, inner.get_by_role("slider", name="Mask-A δ_h"), 0.35, frames)
    drag(page, frame, inner.get_by_role("slider", name="Mask-A δ_h"), 0.7, frames)
    drag(page, frame, inner.get_by_role("slider", name="τ"), 0.25, frames)
    frames[0].save(OUT / "drag.webp", save_all=True, append_images=frames[1:], duration=90, loop=0, quality=70,
                   method=4)


SHOTS = {"explore": shot_explore, "dataset": shot_dataset, "sweep": shot_sweep, "triage": shot_triage,
         "training": shot_training, "drag": shot_drag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SHOTS), help="these shots only (default: all)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with app_server() as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for name in args.only or list(SHOTS):
            started = time.perf_counter()
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            SHOTS[name](page, url)
            page.close()
            print(f"{name}: {time.perf_counter() - started:.1f} s")
        browser.close()


if __name__ == "__main__":
    main()
