"""Dragging the pipeline view's controls in a real browser: is the view live, and does a drag
cost the server nothing?

    python benchmarks/bench_drag.py                      # the harness, 224-px maps (tests/pipeline_view_harness.py)
    python benchmarks/bench_drag.py --app app.py --query ""   # the real app, once the view is wired into it
    python benchmarks/bench_drag.py --query "?size=224" --query "?size=224&run=synthetic-spg,synthetic-plain"

It starts ``streamlit run <app>`` on a free port and opens it in headless Chromium (Debian's
/usr/bin/chromium, through Playwright) at 1400×900. For each control of the view (δ_l and δ_h of
Mask-A, Mask-B2 and Mask-fuse, τ, map opacity) it presses the mouse on the thumb, makes
``--moves`` pointer moves (one every ``--interval-ms``, 8 ms: a 125 Hz mouse; queued without
waiting for the browser, which coalesces them into animation frames as it does a mouse's) back
and forth over the track, each about two slider steps, and lets go; ``--repeats`` times (3). It
reports:

* redraws per second during the drag: the component's own count of animation-frame redraws
  (``window.__spgStats``) over the drag's wall time, the median of the repeats (the browser's
  frame production bounds it, so on a shared machine it moves with the load);
* the time per redraw (recompute + draw of what moved, measured in the component): median, p95, max;
* script reruns: the browser→server websocket messages that ask for one (``BackMsg.rerun_script``,
  read with ``page.on("websocket")`` → ``framesent``) while the button is held, and in the
  ``--settle`` seconds (2) after release.

Targets (224-px maps, a 2-core machine): ≥ 30 redraws/s, p95 ≤ 16 ms, 0 reruns during the
drag, 1 after. Writes a Markdown report (``--out``, default benchmarks/reports/drag.md;
``--append`` adds the run below the ones already there).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
CONTROLS = ("Mask-A δ_l", "Mask-A δ_h", "Mask-B2 δ_l", "Mask-B2 δ_h", "Mask-fuse δ_l", "Mask-fuse δ_h", "τ",
            "Map opacity")
TARGETS = {"redraws_per_s": 30.0, "p95_ms": 16.0, "reruns_during": 0, "reruns_after": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(app: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "streamlit", "run", app, "--server.headless", "true", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    raise RuntimeError("streamlit did not answer its health check within 180 s")


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the group of the one server started above
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class RerunCounter:
    """The browser→server messages that ask the script to rerun, counted. (Playwright's sync API
    delivers the websocket events while it waits on the browser, in the order they happened: so
    counts are read after a call to the page, not timed.)"""

    def __init__(self, page):
        from streamlit.proto.BackMsg_pb2 import BackMsg

        self.count = 0
        self.other = 0

        def on_frame(payload):
            if isinstance(payload, str):
                self.other += 1
                return
            message = BackMsg()
            try:
                message.ParseFromString(payload)
            except Exception:  # noqa: BLE001 - not a BackMsg: not a rerun
                self.other += 1
                return
            if message.WhichOneof("type") == "rerun_script":
                self.count += 1
            else:
                self.other += 1

        page.on("websocket", lambda ws: ws.on("framesent", on_frame))


def component_frame(page):
    for frame in page.frames:
        if "pipeline_view" in frame.url:
            return frame
    raise RuntimeError("no pipeline_view component on the page")


def drag_path(x0: float, left: float, right: float, moves: int) -> list[float]:
    """``moves`` x positions from the thumb at ``x0``: back and forth between the track's ends,
    each move about two slider steps (so each one changes the value, as a brisk hand does), and
    ending away from the start (a drag back to its start value is no change, which the browser
    does not report)."""
    width = right - left
    step = max(2.0, 2.2 * width / 100)  # the slider has 100 steps over the track
    xs, x, direction = [], x0, -1 if x0 - left > right - x0 else 1
    for _ in range(moves):
        x += direction * step
        if x > right or x < left:
            direction = -direction
            x = min(right, max(left, x)) + direction * step
        xs.append(x)
    if abs(xs[-1] - x0) < 3 * step:
        xs.append(x0 + (width / 3 if x0 < left + width / 2 else -width / 3))
    return xs


async def drag(page, frame, name: str, moves: int, interval_s: float, settle_s: float, reruns: RerunCounter) -> dict:
    """Press the thumb, move the pointer every ``interval_s`` seconds like a mouse (the moves are
    queued without waiting for the browser, which coalesces them into animation frames), let go."""
    thumb = page.frame_locator("iframe[title*='pipeline_view']").get_by_role("slider", name=name, exact=True)
    await thumb.scroll_into_view_if_needed()
    box = await thumb.bounding_box()
    if box is None:
        raise RuntimeError(f"the control {name!r} is not visible")
    value = float(await thumb.input_value())
    inset = 8  # about half a thumb: where the track's ends put its centre
    left, right = box["x"] + inset, box["x"] + box["width"] - inset
    x0 = left + value * (right - left)
    y = box["y"] + box["height"] / 2
    path = drag_path(x0, left, right, moves)
    await page.mouse.move(x0, y)
    await frame.evaluate("() => { const s = window.__spgStats; s.redraws = 0; s.times_ms = []; }")
    before = reruns.count
    await page.mouse.down()
    started = time.perf_counter()
    pending = []
    for x in path:
        pending.append(asyncio.ensure_future(page.mouse.move(x, y)))
        await asyncio.sleep(interval_s)
    await asyncio.gather(*pending)
    ended = time.perf_counter()
    stats = await frame.evaluate("() => ({redraws: window.__spgStats.redraws, times: window.__spgStats.times_ms.slice()})")
    during = reruns.count - before
    await page.mouse.up()
    await page.wait_for_timeout(settle_s * 1000)
    after = reruns.count - before - during
    return {"control": name, "moves": len(path), "seconds": ended - started, "redraws": stats["redraws"],
            "redraws_per_s": stats["redraws"] / (ended - started), "moves_per_s": len(path) / (ended - started),
            "times": np.asarray(stats["times"], dtype=float), "reruns_during": during, "reruns_after": after}


def combine(drags: list[dict]) -> dict:
    """Repeated drags of one control: the median rates, the times of all redraws pooled, the
    reruns of the drag that had most (during) and of each drag (after)."""
    times = np.concatenate([d["times"] for d in drags]) if drags else np.zeros(0)
    after = sorted({d["reruns_after"] for d in drags})
    return {"control": drags[0]["control"], "drags": len(drags), "moves": drags[0]["moves"],
            "seconds": float(np.median([d["seconds"] for d in drags])),
            "moves_per_s": float(np.median([d["moves_per_s"] for d in drags])),
            "redraws": int(sum(d["redraws"] for d in drags)),
            "redraws_per_s": float(np.median([d["redraws_per_s"] for d in drags])),
            "redraws_per_s_each": [d["redraws_per_s"] for d in drags],
            "p50_ms": float(np.percentile(times, 50)) if len(times) else math.nan,
            "p95_ms": float(np.percentile(times, 95)) if len(times) else math.nan,
            "max_ms": float(times.max()) if len(times) else math.nan,
            "reruns_during": max(d["reruns_during"] for d in drags),
            "reruns_after": after[0] if len(after) == 1 else after}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{cpu}, {os.cpu_count()} cores, load average {load} at the start, {platform.system()} {platform.release()}"


async def measure(args, query: str) -> tuple[list[dict], dict]:
    from playwright.async_api import async_playwright

    port = free_port()
    server = start_server(args.app, port)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            reruns = RerunCounter(page)
            await page.goto(f"http://127.0.0.1:{port}/{query}")
            view = page.frame_locator("iframe[title*='pipeline_view']")
            await view.get_by_role("img", name="Mask-A seeds", exact=True).first.wait_for(timeout=300_000)
            await page.wait_for_timeout(1500)
            frame = component_frame(page)
            info = await frame.evaluate("() => { const r = window.__spgView.state.runs; return {runs: r.length,"
                                        " size: r[0].w + '×' + r[0].h, maps: Object.keys(r[0].maps)}; }")
            info["chromium"] = browser.version
            rows = []
            for name in args.controls:
                drags = [await drag(page, frame, name, args.moves, args.interval_ms / 1000, args.settle, reruns)
                         for _ in range(args.repeats)]
                rows.append(combine(drags))
            await browser.close()
    finally:
        stop_server(server)
    return rows, info


def verdict(row: dict) -> str:
    good = (row["redraws_per_s"] >= TARGETS["redraws_per_s"] and row["p95_ms"] <= TARGETS["p95_ms"]
            and row["reruns_during"] == TARGETS["reruns_during"] and row["reruns_after"] == TARGETS["reruns_after"])
    return "yes" if good else "**no**"


def report(args, sections: list[tuple[str, list[dict], dict]], command: str, machine_line: str) -> str:
    lines = ["# Dragging the pipeline view (benchmarks/bench_drag.py)", "",
             f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
             f"- machine: {machine_line}",
             f"- command: `{command}`",
             f"- app: `{args.app}`; {args.repeats} drags per control, {args.moves} pointer moves each, one every "
             f"{args.interval_ms:g} ms; reruns after release counted for {args.settle:g} s",
             f"- targets (224-px maps): ≥ {TARGETS['redraws_per_s']:g} redraws/s, p95 ≤ "
             f"{TARGETS['p95_ms']:g} ms per redraw, {TARGETS['reruns_during']} reruns during the drag, "
             f"{TARGETS['reruns_after']} after"] + ([f"- note: {args.note}"] if args.note else []) + [""]
    for query, rows, info in sections:
        lines += [f"## `{query or '(no query)'}`: {info['runs']} run(s), maps {info['size']} "
                  f"({', '.join(info['maps'])}), Chromium {info['chromium']}", "",
                  "| control | drags × moves | drag s | moves/s | redraws/s (median; each drag) | median ms | p95 ms "
                  "| max ms | reruns during | reruns after | on target |",
                  "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            each = ", ".join(f"{v:.0f}" for v in r["redraws_per_s_each"])
            lines.append(f"| {r['control']} | {r['drags']} × {r['moves']} | {r['seconds']:.2f} | {r['moves_per_s']:.0f} | "
                         f"**{r['redraws_per_s']:.1f}**; {each} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                         f"{r['max_ms']:.2f} | {r['reruns_during']} | {r['reruns_after']} | {verdict(r)} |")
        lines.append("")
    lines += ["Redraws are the component's animation-frame redraws (recompute + draw of what the control changes, "
              "for every run shown), timed in the browser (`window.__spgStats`); redraws/s is their number over the "
              "drag's wall time (the median of the drags), which the browser's frame production bounds: on a busy "
              "machine it falls with the frames the renderer gets, not with the work per redraw (the ms columns). "
              "Reruns are the websocket messages asking the server to rerun the script (`BackMsg.rerun_script`): "
              "the most in one drag while the button is held, and after each release.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="tests/pipeline_view_harness.py", help="the Streamlit script to run")
    parser.add_argument("--query", action="append", default=None,
                        help="URL query of the page, e.g. '?size=224' (the harness's 224-px maps; default); repeat "
                             "to measure several pages")
    parser.add_argument("--moves", type=int, default=120, help="pointer moves per drag (at least 100)")
    parser.add_argument("--interval-ms", type=float, default=8.0,
                        help="time between pointer moves (default 8: a 125 Hz mouse)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to count reruns after release")
    parser.add_argument("--repeats", type=int, default=3, help="drags of each control (median redraws/s)")
    parser.add_argument("--controls", nargs="+", default=list(CONTROLS), help="accessible names of the sliders")
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else the machine was doing)")
    parser.add_argument("--append", action="store_true", help="add this run to the report instead of replacing it")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "reports" / "drag.md"), help="Markdown report")
    args = parser.parse_args(argv)
    if args.moves < 100:
        parser.error("--moves must be at least 100")
    if not Path(CHROMIUM).is_file():
        parser.error(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    queries = args.query if args.query is not None else ["?size=224"]
    command = "python benchmarks/bench_drag.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    machine_line = machine()  # the load before the benchmark's own
    sections = []
    for query in queries:
        rows, info = asyncio.run(measure(args, query))
        sections.append((query, rows, info))
        for r in rows:
            print(f"{query} {r['control']:<14} {r['moves_per_s']:5.0f} moves/s {r['redraws_per_s']:6.1f} redraws/s (median) p95 {r['p95_ms']:6.2f} ms  "
                  f"reruns during {r['reruns_during']} after {r['reruns_after']}  {verdict(r)}")
    text = report(args, sections, command.strip(), machine_line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.is_file():
        previous = out.read_text(encoding="utf-8").rstrip("\n")
        text = previous + "\n\n---\n\n" + text.split("\n", 2)[2]  # one title for the file
    out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    failed = [r for _, rows, _ in sections for r in rows if verdict(r) != "yes"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
