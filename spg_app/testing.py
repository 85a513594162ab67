"""Driving the app from outside, as a person would: the app served on a free local port and a
headless Debian Chromium. Used by the browser tests, ``scripts/screenshots.py`` and the
browser benchmarks; never by the app itself."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (apt-get install chromium); never a downloaded browser
# Chromium as root in a container, with no background traffic to a network that is not there.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def app_server(launcher: str = "streamlit", timeout: float = 180, env: dict | None = None, log=None,
               script: str | Path | None = None):
    """Serve ``app.py`` on a free port until the block ends; yields its URL.

    Args:
        launcher: "streamlit" (``streamlit run app.py``) or "serve" (``python -m spg_app.serve``,
            what ``make app`` runs: the default run's outputs computed ahead first).
        script: another Streamlit script to ``streamlit run`` instead of ``app.py`` (a test harness).
        timeout: seconds to wait for ``/_stcore/health``.
        env: extra environment variables for the server.
        log: a file object for the server's output (default: discarded).

    Returns:
        A context manager yielding ``http://127.0.0.1:PORT``; a RuntimeError if the server exits
        or does not answer in time.
    """
    port = free_port()
    start = (["-m", "spg_app.serve"] if launcher == "serve" and script is None
             else ["-m", "streamlit", "run", str(script or ROOT / "app.py")])
    process = subprocess.Popen([sys.executable, *start, "--server.headless", "true", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
                               cwd=ROOT, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app server exited with code {process.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the app server did not answer its health check within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server's process group
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def launch_chromium(playwright):
    """Headless Debian Chromium through Playwright (``playwright.sync_api.sync_playwright()``)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)


def settle(page, timeout: float = 60) -> None:
    """Wait until the app has finished its script run (no "running" status shown)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not page.locator('[data-testid="stStatusWidget"]').is_visible():
            return
        time.sleep(0.25)
