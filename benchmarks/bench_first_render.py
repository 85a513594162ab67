"""Time to first render of the app in a real browser (Debian's /usr/bin/chromium, headless).

    python benchmarks/bench_first_render.py

Starts `streamlit run app.py` on a free local port, opens the page once the server answers and
prints when the title, the sidebar, the stage-strip header and the last stage picture appear.
"""
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    started = time.time()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ready = time.time()
        print(f"server ready: {ready - started:.1f} s after start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            opened = time.time()
            page.goto(f"http://127.0.0.1:{port}/", timeout=60000)
            for label, text in (("title", "Explore one image"), ("sidebar", "Trained run"),
                                ("stage-strip header", "Stages"), ("last stage picture", "Localisation map")):
                page.get_by_text(text).first.wait_for(timeout=120000)
                print(f"{label}: {time.time() - opened:.1f} s after opening the page")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
