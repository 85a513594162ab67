"""The app in a real browser: `streamlit run app.py` on a free port, headless Chromium through
Playwright, a δ slider moved with the keyboard, and the Mask-A picture checked to change.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``); skipped without it.
With ``SPG_SAVE_SCREENSHOTS=1`` it also visits the dataset and triage pages (which open with the
shipped run's precomputed evaluation), runs the δ sweep on the default data, and writes
docs/screenshots/{explore,dataset,sweep,triage}.png.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
MAX_SCREENSHOT_BYTES = 300 * 1024
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
MASK_A = 'img[alt="Mask-A (seeds for B2)"]'

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium) for the browser test")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("streamlit did not answer its health check within 120 s")
            time.sleep(0.5)
        print(f"\nserver up in {time.perf_counter() - started:.1f} s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group of the one server process started above
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def save(page, name: str, tmp_path: Path) -> Path:
    """Screenshot into tmp_path, and into docs/screenshots when SPG_SAVE_SCREENSHOTS=1 (kept
    under 300 KB: quantised to a palette when a plain PNG is larger)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if path.stat().st_size > MAX_SCREENSHOT_BYTES:
        from PIL import Image

        with Image.open(path) as image:
            image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    if os.environ.get("SPG_SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path


def wait_for_change(page, selector: str, old: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = page.locator(selector).get_attribute("src")
        if current != old:
            return current
        time.sleep(0.2)
    return old


def press_until(page, thumb, target: float, timeout: float = 60) -> float:
    """Press ArrowRight on a slider thumb until it reads `target`. One press at a time, each
    waited for: a rerun of the app can redraw the slider between presses and drop a key that
    arrives meanwhile, so the presses are counted by the value they produce, not by number."""
    deadline = time.time() + timeout
    value = float(thumb.get_attribute("value"))
    while value < target - 1e-9 and time.time() < deadline:
        thumb.focus()
        page.keyboard.press("ArrowRight")
        step_deadline = time.time() + 2
        while time.time() < step_deadline:
            now = float(thumb.get_attribute("value"))
            if now != value:
                value = now
                break
            time.sleep(0.05)
    return round(value, 2)


def default_mask_a_delta_low() -> float:
    """Mask-A's δ_l in the preset of the run the app opens on (where the slider starts)."""
    from spg_app.sidebar import DEFAULT_RUN
    from spg_core.config import load_config_file
    from spg_core.guidance import get_preset
    from spg_core.runs import resolve_run

    return get_preset(load_config_file(resolve_run(DEFAULT_RUN) / "config.yaml")["preset"]).mask_a.delta_low


def test_moving_a_delta_slider_changes_the_seed_mask(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 2300})
    started = time.perf_counter()
    page.goto(server)
    page.locator(MASK_A).wait_for(timeout=180_000)
    print(f"first render (strip visible) in {time.perf_counter() - started:.1f} s")
    before = page.locator(MASK_A).get_attribute("src")
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Mask-A: δ_l, δ_h")
    low_thumb = slider.locator('input[type="range"]').first
    assert float(low_thumb.get_attribute("value")) == default_mask_a_delta_low()  # the run's preset
    assert press_until(page, low_thumb, 0.25) == 0.25
    moved = time.perf_counter()
    after = wait_for_change(page, MASK_A, before)
    assert after != before, "the Mask-A picture did not change after moving δ_l"
    print(f"Mask-A redrawn {time.perf_counter() - moved:.1f} s after the key presses")
    page.wait_for_timeout(1500)  # let the rest of the strip settle before the picture is taken
    assert save(page, "explore", tmp_path).stat().st_size > 0
    page.close()


@pytest.mark.skipif(os.environ.get("SPG_SAVE_SCREENSHOTS") != "1",
                    reason="screenshots of every page are taken only with SPG_SAVE_SCREENSHOTS=1")
def test_screenshots_of_the_dataset_and_triage_pages(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 1900})
    page.goto(f"{server}/dataset")  # the shipped runs open it with their precomputed evaluation
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.nth(1).wait_for(timeout=600_000)
    page.wait_for_timeout(2000)
    save(page, "dataset", tmp_path)
    page.get_by_role("tab", name="δ sweep").click()
    page.get_by_role("button", name="Run sweep").click(timeout=60_000)
    charts.nth(2).wait_for(timeout=600_000)
    page.wait_for_timeout(2000)
    page.set_viewport_size({"width": 1440, "height": 1100})
    save(page, "sweep", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 1900})
    page.goto(f"{server}/triage")
    page.locator('img[alt^="triage "]').nth(11).wait_for(timeout=600_000)  # a full first page of tiles
    page.wait_for_timeout(2000)
    save(page, "triage", tmp_path)
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
    page.goto(server)
    page.locator(MASK_A).wait_for(timeout=180_000)
    model = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    model.click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(runs[0])}\b")).click()
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Training").click()
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
