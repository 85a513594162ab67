"""Time to first render of the app in a real browser (Debian's /usr/bin/chromium, headless).

    python benchmarks/bench_first_render.py                       # the server `make app` starts
    python benchmarks/bench_first_render.py --launcher streamlit  # plain `streamlit run app.py`

Starts the app on a free local port, opens the page once the server answers and prints when the
title, the sidebar, the pipeline view's last seed mask and its box, and the box panel below it
appear; then opens it a second time in a new tab of the same browser (a second visit: a new
session, the browser's cache warm). Targets: the pipeline view drawn ≤ 5 s after opening the page
on a started server, a second visit ≤ 2 s; the whole page (box panel included) is printed too.
"""
import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spg_app.testing import free_port, launch_chromium  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {"first visit": 5.0, "second visit": 2.0}
# (what, "text" | "alt" | "view", text on the page, a picture's alt text or an accessible name in
# the pipeline view, whole text only). The view is drawn when its last seed mask and its box are.
PIPELINE = 'iframe[title="spg_app.pipeline_view.pipeline_view"]'
STRIP_DRAWN = "pipeline view (its box)"
MILESTONES = (("title", "text", "Explore one image", False), ("sidebar", "text", "Trained run", False),
              ("last seed mask", "view", "Mask-fuse seeds", True), (STRIP_DRAWN, "view", "Box", True),
              ("box panel (the last)", "alt", "Localisation map + box", True))


def visit(context, url: str) -> dict[str, float]:
    """Open ``url`` in a new tab of ``context``; print each milestone; the seconds until each."""
    page = context.new_page()
    opened = time.time()
    page.goto(url, timeout=60000)
    seconds = {}
    for label, kind, text, exact in MILESTONES:
        if kind == "view":
            page.frame_locator(PIPELINE).get_by_role("img", name=text, exact=exact).first.wait_for(timeout=120000)
        else:
            find = page.get_by_alt_text if kind == "alt" else page.get_by_text
            find(text, exact=exact).first.wait_for(timeout=120000)
        seconds[label] = time.time() - opened
        print(f"  {label}: {seconds[label]:.1f} s after opening the page")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launcher", choices=("serve", "streamlit"), default="serve",
                        help="serve: `python -m spg_app.serve` (what `make app` runs, the toolkit imported before the "
                             "server starts); streamlit: `streamlit run app.py`")
    args = parser.parse_args()
    port = free_port()
    started = time.time()
    launcher = ["-m", "spg_app.serve"] if args.launcher == "serve" else ["-m", "streamlit", "run", str(ROOT / "app.py")]
    server = subprocess.Popen([sys.executable, *launcher, "--server.headless", "true",
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
            browser = launch_chromium(playwright)
            context = browser.new_context()  # one browser profile: the second visit finds its cache warm
            seconds = {}
            for name in TARGETS:
                print(f"{name} ({args.launcher}):")
                seconds[name] = visit(context, f"http://127.0.0.1:{port}/")
            browser.close()
        for name, target in TARGETS.items():
            strip, page = seconds[name][STRIP_DRAWN], seconds[name][MILESTONES[-1][0]]
            verdict = "meets" if strip <= target else "misses"
            print(f"{name}: pipeline view drawn in {strip:.1f} s ({verdict} the target of {target:.0f} s); "
                  f"the whole page, box panel included, in {page:.1f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
