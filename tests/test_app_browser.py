"""The app in a real browser: `streamlit run app.py` on a free port, headless Chromium through
Playwright: a threshold dragged in the pipeline view, the replay slider moved with the keyboard.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``); skipped without it.
The docs' screenshots are made by scripts/screenshots.py.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from spg_app.testing import CHROMIUM, app_server, launch_chromium

MASK_A = 'img[alt="Mask-A (seeds for B2)"]'  # the Training page's strip
PIPELINE = 'iframe[title="spg_app.pipeline_view.pipeline_view"]'  # the explore page's pipeline view

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium) for the browser test")]


@pytest.fixture(scope="module")
def server():
    started = time.perf_counter()
    with app_server() as url:
        print(f"\nserver up in {time.perf_counter() - started:.1f} s")
        yield url


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def save(page, name: str, tmp_path: Path) -> Path:
    """A screenshot into tmp_path (scripts/screenshots.py makes the docs' pictures)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def wait_for_change(page, selector: str, old: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = page.locator(selector).get_attribute("src")
        if current != old:
            return current
        time.sleep(0.2)
    return old


def default_mask_a_delta_high() -> float:
    """Mask-A's δ_h in the preset of the run the app opens on (where the slider starts)."""
    from spg_app.sidebar import DEFAULT_RUN
    from spg_core.config import load_config_file
    from spg_core.guidance import get_preset
    from spg_core.runs import resolve_run

    return get_preset(load_config_file(resolve_run(DEFAULT_RUN) / "config.yaml")["preset"]).mask_a.delta_high


def seeds_pixels(frame, name: str) -> str:
    """The drawn seed canvas of a picture of the pipeline view, as a data URL."""
    return frame.get_by_role("img", name=name).locator("canvas.base").evaluate("c => c.toDataURL()")


def test_dragging_a_threshold_redraws_the_seeds_while_the_button_is_held(server, browser, tmp_path):
    """The headline interaction, in the real app: Mask-A's δ_h dragged with the mouse held; the
    seeds change before the button is released, with no request to the server during the drag;
    the release reaches the server once, and the URL follows."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(time.perf_counter())))
    started = time.perf_counter()
    page.goto(server)
    iframe = page.locator(PIPELINE)
    iframe.wait_for(timeout=180_000)
    view = page.frame_locator(PIPELINE)
    slider = view.get_by_role("slider", name="Mask-A δ_h")
    slider.wait_for(timeout=180_000)
    print(f"first render (pipeline view visible) in {time.perf_counter() - started:.1f} s")
    assert float(slider.input_value()) == default_mask_a_delta_high()  # the run's preset
    page.wait_for_timeout(2000)  # let the app finish its first run
    frame = iframe.bounding_box()
    assert frame["y"] >= 0 and frame["y"] + frame["height"] <= 900, f"the pipeline view does not fit 1400×900: {frame}"
    before = seeds_pixels(view, "Mask-A seeds")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    x_at = lambda value: box["x"] + 8 + (box["width"] - 16) * value  # noqa: E731
    page.mouse.move(x_at(float(slider.input_value())), y)
    page.mouse.down()
    drag_started = time.perf_counter()
    for step in range(1, 13):
        page.mouse.move(x_at(0.7 - 0.03 * step), y)
        page.wait_for_timeout(50)
    during = seeds_pixels(view, "Mask-A seeds")
    value = float(slider.input_value())
    requests_during = [t for t in sent if t >= drag_started]
    page.mouse.up()
    assert value < 0.7 and during != before, "the seeds did not follow the thumb while it was held"
    assert not requests_during, f"{len(requests_during)} request(s) to the server during the drag"
    deadline = time.time() + 30
    while "mask_a=" not in page.url and time.time() < deadline:
        page.wait_for_timeout(200)
    assert f"mask_a=0.05-{value:.2f}" in page.url, page.url  # the release reached the server's view
    # Back to the preset's δ_h: a second release that only undoes the first reaches the server too
    # (the URL then names no Mask-A thresholds: they are the preset's again).
    slider.focus()
    for _ in range(round((0.7 - value) / 0.01)):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(30)
    deadline = time.time() + 30
    while "mask_a=" in page.url and time.time() < deadline:
        page.wait_for_timeout(200)
    assert float(slider.input_value()) == 0.7 and "mask_a=" not in page.url, page.url
    assert save(page, "explore", tmp_path).stat().st_size > 0
    page.close()


def test_dragging_the_replay_slider_changes_the_strip(server, browser):
    """The Training page of a shipped run that carries a replay: the moment-of-training slider,
    moved with the keyboard, redraws Mask-A."""
    from spg_core.replay import REPLAY_FILE
    from spg_core.runs import SHIPPED_DIR, shipped_runs

    runs = [name for name in shipped_runs() if (SHIPPED_DIR / name / REPLAY_FILE).is_file()]
    if not runs:
        pytest.skip("no shipped run carries a training replay")
    page = browser.new_page(viewport={"width": 1440, "height": 1900})
    page.goto(f"{server}/training?run={runs[0]}")  # the page and the run, by their deep link
    page.get_by_text("Moment of training").wait_for(timeout=180_000)
    page.locator(MASK_A).wait_for(timeout=180_000)
    before = page.locator(MASK_A).get_attribute("src")
    thumb = page.get_by_role("slider", name="Moment of training")
    thumb.focus()
    page.keyboard.press("Home")  # the first record: before training
    after = wait_for_change(page, MASK_A, before)
    assert after != before, "the replay's Mask-A picture did not change after moving the slider"
    assert page.get_by_text("before training").count() > 0
    page.close()
