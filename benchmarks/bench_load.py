"""Classroom load test of the app: N students on the explore page at once, over loopback.

    python benchmarks/bench_load.py --sessions 1 10 30                    # the issue's curve
    python benchmarks/bench_load.py --sessions 1 3 --moves 5 --pace 0.2   # a quick self-check
    python benchmarks/bench_load.py --server-option runner.postScriptGC=false \
        --server-option server.fileWatcherType=none                       # a server configured otherwise

For each N of ``--sessions`` the script starts ``python -m spg_app.serve --server.headless true
--server.address 127.0.0.1 --server.port PORT --browser.gatherUsageStats false`` (as ``make app``
does, with the repository's ``.streamlit/config.toml``; plus any ``--server-option``;
``--launcher streamlit`` starts ``python -m streamlit run app.py`` instead) from the repository
root, on a free port: a fresh server per N, so memory and
cache figures are per N. It opens N sessions, then stops the server, also on an error, Ctrl-C,
SIGTERM or when ``--max-seconds`` run out. The server's log goes next to ``--out``.

A session is not a browser but a websocket client speaking Streamlit's own protocol
(Streamlit 1.67 serves it with Starlette/uvicorn; Tornado is gone):

* it connects to ``ws://127.0.0.1:PORT/_stcore/stream`` with the subprotocol list
  ``["streamlit"]``. The browser sends ``streamlit, XSRF token, session id to resume`` in that
  header; the token only guards the auth cookie and no Origin header means no origin check, so
  neither is needed. Frames are binary protobufs: ``BackMsg`` up, ``ForwardMsg`` down;
* it asks for the page with a ``BackMsg.rerun_script`` (a ``ClientState``) holding no widget
  states and reads ForwardMsgs until ``script_finished`` (the ``session_status_changed`` that
  follows it is read with the next run). A run a widget callback replaces with a keyed rerun
  (``st.rerun(keys)``: the app's τ does on the explore page) ends ``FINISHED_EARLY_FOR_RERUN``;
  the fragments' own run follows, and its ``script_finished`` ends the move. No ``cached_message_hashes`` are sent, so the server
  sends every element in full, never a ``ref_hash``;
* it keeps each widget's value from the elements it received, ``delta.new_element.<widget>``:
  ``id`` (``$$ID-<hash>-<key>`` for a keyed widget), ``default``, and ``value`` / ``raw_value``
  when ``set_value`` says the server set it (this app re-assigns its persistent keys on every
  run, so the δ sliders, τ and the image index come back on every run);
* each move is a ``rerun_script`` whose ``widget_states`` carry the state of every widget the
  session knows, as a browser's do (the server would keep the others, but a browser sends all),
  and whose ``page_script_hash`` is the page it is on (from the ``navigation`` ForwardMsg).
  Value types: a slider is a ``double_array_value`` (two values for the δ range sliders
  ``delta_mask_a`` / ``delta_mask_b2`` / ``delta_mask_fuse``, one for ``tau``), an int
  ``number_input`` (``explore_index``) an ``int_value``, a selectbox or radio the formatted
  option as ``string_value``, a checkbox a ``bool_value``, a select_slider the formatted options
  as ``string_array_value``. Buttons and downloads are triggers, sent only when pressed: never.

At a person's pace (``--pace`` seconds ± 50 % between a session's moves; all N render the page
first), ``--moves`` times, a session moves a δ slider (``--image-share`` of the moves pick
another image among the first ``--image-pool``, ``--tau-share`` move τ). Measured per N:

* server time per move: from sending the BackMsg to receiving its ``script_finished`` (the run
  of the whole script and the transfer of its deltas; the pictures, ``/media/...`` URLs in the
  deltas, are then fetched as a browser does — new URLs only — and timed apart; ``--no-media``
  skips them). Slider moves (δ, τ) and image changes are reported apart; the issue's budget is
  for the former (p95 ≤ ``--target-ms``, 50 ms);
* server CPU per move (``/proc/PID/stat`` over the moves / their number): unlike the times, it
  holds on a busy machine; one Python process runs the scripts under one GIL, so
  ``1000 * pace / CPU ms`` sessions is about what one core keeps up with;
* failures: an ``exception`` element, an ``st.error`` box, a compile error, a page not found, a
  run that does not end with ``FINISHED_SUCCESSFULLY`` within ``--move-timeout``, a lost
  connection, a picture that does not load, or a broken isolation check;
* isolation: session k gives Mask-A's δ_h its own value (no other session, and no preset, uses
  it; its δ_l and the other sliders are drawn at random) and after every run checks what the
  server sent back against what it sent itself: the values the server re-asserts for its
  widgets, δ_l and δ_h in the table of Mask-A's seed panel and the image number in the
  page's title. A value that is not the session's own is a violation, named as another
  session's when it is one of theirs;
* server memory: RSS of the server and its children (``/proc/PID/status`` VmRSS) every 0.5 s:
  idle, with all N on the page, peak (checked against ``--max-rss-mb``) and final, and the growth
  per extra session from the smallest to the largest N (a copy of the model per session would add
  about its checkpoint's size, printed alongside);
* models loaded: the server's own counters at ``/_stcore/metrics``: how often the
  ``st.cache_resource`` functions ``load_model`` / ``load_imagenet`` ran (the count of
  ``cache_compute_duration_seconds``; not the misses, which also count the sessions that waited
  for another's load): one per run, whatever N, when the model is shared; with every cache's
  lookups, runs, evictions and, for ``st.cache_data``, its memory.

Prints a table, writes JSON to ``--out`` and exits 1 if any session failed (2 if the time limit,
an interrupt or the server stopped the test). Loopback only; N ≤ 60; the whole test is bounded by
``--max-seconds`` (a round cut short keeps what it measured).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from tornado.httpclient import AsyncHTTPClient
from websockets.asyncio.client import connect

from spg_app.widgets import read_numbers_table

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MAX_SESSIONS = 60
MAX_MOVES = 500
STAGES = ("mask_a", "mask_b2", "mask_fuse")
SIGNATURE_STAGE = "mask_a"
# Mask-A's δ_h of session k: distinct per session, above every δ_l drawn (< 0.30) and never a preset's.
PRESET_HIGHS = {0.5, 0.6, 0.7, 0.8}
SIGNATURES = [v for v in (round(0.30 + 0.01 * i, 2) for i in range(70)) if v not in PRESET_HIGHS][:MAX_SESSIONS]
TITLE = re.compile(r"^\*\*#(\d+) ·")
MODEL_CACHES = ("spg_app.loaders.load_model", "spg_app.loaders.load_imagenet")
TOLERANCE = 1e-9
CLEANUP_SECONDS = 5.0  # of --max-seconds, kept for closing the sessions and stopping the server
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


LAUNCHERS = {"streamlit": ["-m", "streamlit", "run", "app.py"],  # the app as `streamlit run` starts it
             "serve": ["-m", "spg_app.serve"]}  # as `make app` does: the toolkit imported before the first visit


class Server:
    """The app's server on loopback, its log in a file, stopped by :meth:`stop`."""

    def __init__(self, options: list[str], log_path: Path, launcher: str = "streamlit"):
        self.port = free_port()
        self.command = [sys.executable, *LAUNCHERS[launcher], "--server.headless", "true",
                        "--server.address", HOST, "--server.port", str(self.port),
                        "--browser.gatherUsageStats", "false"]
        for option in options:
            key, _, value = option.partition("=")
            self.command += [f"--{key.removeprefix('--')}", value]
        self.log_path = log_path
        self.log = open(log_path, "w", encoding="utf-8")  # closed in stop()
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float) -> float:
        """Seconds until ``/_stcore/health`` answers; raises if the server exits or takes longer."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1).read()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /_stcore/health within {timeout:.0f} s; see {self.log_path}")

    def metrics(self) -> list[tuple[str, dict, float]]:
        """The server's OpenMetrics lines as (name, labels, value)."""
        text = urllib.request.urlopen(f"{self.url}/_stcore/metrics", timeout=30).read().decode()
        rows = []
        for line in text.splitlines():
            match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if match:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
                rows.append((match.group(1), labels, float(match.group(3))))
        return rows

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.log.close()


class ProcessSampler(threading.Thread):
    """Samples the RSS of a process and its descendants (``/proc``, no psutil) every ``interval`` s;
    reads their CPU time on request."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return found

    def _tree(self) -> list[int]:
        todo, seen = [self.pid], []
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.append(pid)
                todo += self._children(pid)
        return seen

    def rss(self) -> int:
        """Bytes resident (VmRSS) of the process and its descendants."""
        total = 0
        for pid in self._tree():
            try:
                match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
            except OSError:
                continue
            total += int(match.group(1)) * 1024 if match else 0
        return total

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) of the process and its live descendants."""
        total = 0.0
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic(), self.rss()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def peak(self, since: float = 0.0) -> int:
        return max((rss for t, rss in self.samples if t >= since), default=0)


# ----------------------------------------------------------------------------- one session

def same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= TOLERANCE
    return a == b


def user_key(widget_id: str) -> str:
    """A keyed widget's id is ``$$ID-<hash>-<key>``; unkeyed ones have no key."""
    parts = widget_id.split("-", 2)
    return parts[2] if widget_id.startswith("$$ID-") and len(parts) == 3 else ""


def widget_value(kind: str, w) -> tuple[str, object, object] | None:
    """(WidgetState field, value the server set or None, default) of a value widget, None for others
    (buttons, downloads, dataframes: triggers or selections a browser only sends when used)."""
    if kind == "slider":
        if w.type == Slider.SELECT_SLIDER:
            options = list(w.options)
            default = [options[int(i)] for i in w.default if 0 <= int(i) < len(options)]
            return "string_array_value", list(w.raw_value) if w.set_value else None, default
        return "double_array_value", list(w.value) if w.set_value else None, list(w.default)
    if kind == "number_input":
        field_name, cast = ("int_value", int) if w.data_type == NumberInput.INT else ("double_value", float)
        value = cast(w.value) if w.set_value and w.HasField("value") else None
        return field_name, value, cast(w.default) if w.HasField("default") else None
    if kind in ("selectbox", "radio"):
        options = list(w.options)
        default = options[w.default] if w.HasField("default") and 0 <= w.default < len(options) else None
        return "string_value", w.raw_value if w.set_value and w.HasField("raw_value") else None, default
    if kind == "checkbox":
        return "bool_value", bool(w.value) if w.set_value else None, bool(w.default)
    if kind in ("text_input", "text_area"):
        return "string_value", w.value if w.set_value and w.HasField("value") else None, \
            w.default if w.HasField("default") else None
    return None


def widget_state(widget_id: str, field_name: str, value) -> WidgetState:
    state = WidgetState(id=widget_id)
    if field_name == "double_array_value":
        state.double_array_value.data[:] = [float(v) for v in value]
    elif field_name == "string_array_value":
        state.string_array_value.data[:] = [str(v) for v in value]
    else:
        setattr(state, field_name, value)
    return state


@dataclass
class RunReply:
    """What one run of the script sent a session."""

    ms: float = 0.0
    status: int = -1
    echoes: dict = field(default_factory=dict)  # widget key -> value the server set
    mask_a_row: tuple | None = None  # (δ_l, δ_h) in the table of Mask-A's seed panel
    title_index: int | None = None
    media: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    widget_ids: set = field(default_factory=set)
    fragment_id: str = ""  # the fragment this run reran ("" = the whole script)
    fragments: set = field(default_factory=set)  # fragments a widget callback's keyed rerun ran instead

    @property
    def partial(self) -> bool:
        """Did only fragments run (asked for one, or a callback's ``st.rerun(keys)`` chose them)?"""
        return bool(self.fragment_id) or self.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY

    def redrew(self, fragment_of_widget: str) -> bool:
        """Was a widget drawn in ``fragment_of_widget`` ("" = outside any) sent again by this run?
        With nested fragments a widget's fragment is its innermost; a rerun of an enclosing one
        sends it too, but is not counted here (the check just skips it)."""
        if not self.partial:
            return True
        return fragment_of_widget in ({self.fragment_id} | self.fragments) - {""}


@dataclass
class Move:
    kind: str  # "delta", "tau" or "image"
    ms: float
    media_ms: float = 0.0


class Session:
    """One student: a websocket client that reruns the app with its own widget values."""

    def __init__(self, index: int, args, server: Server, signatures: dict[int, float]):
        self.index, self.args, self.server = index, args, server
        self.signature = signatures[index]
        self.others = {value: k for k, value in signatures.items() if k != index}
        self.rng = random.Random(args.seed * 1000 + index)
        self.values: dict[str, tuple[str, object]] = {}  # widget id -> (WidgetState field, value)
        self.ids: dict[str, str] = {}  # widget key -> widget id
        self.fragment_of: dict[str, str] = {}  # widget id -> id of the st.fragment drawing it ("" = none)
        self.limits: dict[str, int] = {}  # number_input key -> its max + 1 (the split's size for explore_index)
        self.disabled: set[str] = set()  # widget keys drawn disabled in the last run (a person cannot move them)
        self.page_hash = ""
        self.sent: dict[str, object] = {}  # widget key -> the value this session chose last
        self.seen_media: set[str] = set()
        self.moves: list[Move] = []
        self.first_render_ms: float | None = None
        self.failures: list[str] = []
        self.violations: list[str] = []
        self.checks = 0
        self.unverified = 0
        self.observed_signatures: set[float] = set()
        self.model = None  # the sidebar's run, as its selectbox shows it
        self.ws = None
        self.http = AsyncHTTPClient()

    # -- protocol
    async def rerun(self, fragment_id: str = "") -> RunReply:
        """One run: the whole script, or (``fragment_id``, as a browser does for a widget drawn inside an
        ``st.fragment``) only that fragment."""
        message = BackMsg()
        state = message.rerun_script
        state.query_string = ""
        state.page_script_hash = self.page_hash
        state.fragment_id = fragment_id
        state.widget_states.widgets.extend(widget_state(wid, f, v) for wid, (f, v) in self.values.items())
        reply = RunReply(fragment_id=fragment_id)
        started = time.perf_counter()
        await self.ws.send(message.SerializeToString())
        while True:  # --move-timeout bounds the whole run, not each message
            left = started + self.args.move_timeout - time.perf_counter()
            try:
                data = await asyncio.wait_for(self.ws.recv(), timeout=max(left, 0))
            except TimeoutError:
                raise TimeoutError(f"no script_finished within --move-timeout {self.args.move_timeout} s") from None
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "script_finished":
                if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    # A widget callback's st.rerun(keys): the server runs those fragments next, and
                    # their script_finished ends this move (as the browser, which just keeps reading).
                    continue
                reply.ms = (time.perf_counter() - started) * 1000
                reply.status = msg.script_finished
                break
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                if msg.delta.fragment_id:
                    reply.fragments.add(msg.delta.fragment_id)
                self.read_element(msg.delta.new_element, reply, msg.delta.fragment_id)
            elif kind == "navigation" and msg.navigation.page_script_hash:
                self.page_hash = msg.navigation.page_script_hash
            elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
                reply.problems.append(f"compile error: {msg.session_event.script_compilation_exception.message}")
            elif kind == "page_not_found":
                reply.problems.append(f"page not found: {msg.page_not_found.page_name!r}")
        expected = {ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY} if fragment_id else {
            ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
        if reply.status not in expected:
            reply.problems.append(f"script_finished status {ForwardMsg.ScriptFinishedStatus.Name(reply.status)}")
        if not reply.partial:  # as a browser does after a full run: forget the widgets this run did not draw
            self.values = {wid: v for wid, v in self.values.items() if wid in reply.widget_ids}
        return reply

    def read_element(self, element, reply: RunReply, fragment_id: str = "") -> None:
        kind = element.WhichOneof("type")
        w = getattr(element, kind) if kind else None
        if kind == "exception":
            reply.problems.append(f"exception {w.type}: {w.message}")
        elif kind == "alert" and w.format == Alert.ERROR:
            reply.problems.append(f"st.error: {w.body[:200]}")
        elif kind == "markdown":
            match = TITLE.match(w.body)
            if match:
                reply.title_index = int(match.group(1))
            table = read_numbers_table(w.body)  # a seed panel's numbers (spg_app.widgets.numbers_table)
            if table and table[0].startswith("Mask-A") and {"δ_l", "δ_h"} <= set(table[1]):
                reply.mask_a_row = (float(table[1]["δ_l"]), float(table[1]["δ_h"]))
        elif kind == "imgs":
            reply.media += [image.url for image in w.imgs if image.url.startswith("/media/")]
        described = widget_value(kind, w) if kind else None
        if described is None:
            return
        field_name, server_value, default = described
        reply.widget_ids.add(w.id)
        self.fragment_of[w.id] = fragment_id
        key = user_key(w.id)
        if key:
            self.ids[key] = w.id
            (self.disabled.add if w.disabled else self.disabled.discard)(key)
            if kind == "number_input" and w.has_max:
                self.limits[key] = int(w.max) + 1
        if server_value is not None:
            self.values[w.id] = (field_name, server_value)
            if key:
                reply.echoes[key] = server_value
        elif w.id not in self.values and default is not None:
            self.values[w.id] = (field_name, default)

    async def fetch_media(self, urls: list[str]) -> float:
        """Fetch the pictures a browser would (new URLs only: they are content hashes); ms taken."""
        new = [url for url in dict.fromkeys(urls) if url not in self.seen_media]
        if not new or self.args.no_media:
            return 0.0
        started = time.perf_counter()
        responses = await asyncio.gather(*(self.http.fetch(self.server.url + url, raise_error=False,
                                                           request_timeout=self.args.move_timeout) for url in new))
        for url, response in zip(new, responses):
            if response.code != 200:
                self.failures.append(f"picture {url}: HTTP {response.code}")
        self.seen_media.update(new)
        return (time.perf_counter() - started) * 1000

    # -- what a student does
    def choose(self, step: int) -> tuple[str, str, object]:
        """(kind, widget key, new value) of the next move; the first sets this session's signature."""
        rng = self.rng
        roll = rng.random()
        if step > 0 and roll < self.args.image_share and "explore_index" in self.ids:
            current = self.sent.get("explore_index", self.current("explore_index"))
            pool = min(self.args.image_pool, self.limits.get("explore_index", self.args.image_pool))
            choices = [i for i in range(pool) if i != current]
            return "image", "explore_index", rng.choice(choices)
        if step > 0 and roll < self.args.image_share + self.args.tau_share and "tau" in self.ids:
            current = self.current("tau")
            return "tau", "tau", [rng.choice([i / 100 for i in range(1, 100) if not same(current, [i / 100])])]
        movable = [stage for stage in STAGES if f"delta_{stage}" not in self.disabled] or [SIGNATURE_STAGE]
        stage = SIGNATURE_STAGE if step == 0 else rng.choice(movable)
        current = self.current(f"delta_{stage}")
        while True:
            if stage == SIGNATURE_STAGE:
                value = [rng.randrange(0, 30) / 100, self.signature]
            else:
                low = rng.randrange(0, 41)
                value = [low / 100, rng.randrange(low + 5, 101) / 100]
            if not same(value, current):
                return "delta", f"delta_{stage}", value

    def current(self, key: str):
        widget_id = self.ids.get(key)
        return self.values[widget_id][1] if widget_id in self.values else None

    def set_value(self, key: str, value) -> None:
        widget_id = self.ids[key]
        field_name = self.values[widget_id][0]
        self.values[widget_id] = (field_name, value)
        self.sent[key] = value

    def check(self, reply: RunReply) -> None:
        """Does what the server sent back hold this session's own values, and only them?"""
        def violation(what: str, shown, own, signed: bool = False) -> None:
            hint = ""
            if signed and isinstance(shown, (list, tuple)) and len(shown) == 2 and round(shown[1], 2) in self.others:
                hint = f" (δ_h {shown[1]} is session {self.others[round(shown[1], 2)]}'s)"
            self.violations.append(f"{what}: sent {own}, the server shows {shown}{hint}")

        def redrawn(key: str) -> bool:  # a fragment's run re-sends only the fragment's own elements
            return reply.redrew(self.fragment_of.get(self.ids.get(key, ""), ""))

        for key, own in self.sent.items():
            if not redrawn(key):
                continue
            if key not in reply.echoes:
                self.unverified += 1
                continue
            self.checks += 1
            if not same(reply.echoes[key], own):
                violation(key, reply.echoes[key], own, signed=key == f"delta_{SIGNATURE_STAGE}")
        own_a = self.sent.get(f"delta_{SIGNATURE_STAGE}")
        if own_a is not None:
            if reply.mask_a_row is None:
                self.unverified += 1
            else:
                self.checks += 1
                self.observed_signatures.add(round(reply.mask_a_row[1], 2))
                if not same(list(reply.mask_a_row), own_a):
                    violation("Mask-A's seed table (δ_l, δ_h)", list(reply.mask_a_row), own_a, signed=True)
        own_index = self.sent.get("explore_index")
        if own_index is not None and (reply.title_index is not None or not reply.partial):
            if reply.title_index is None:  # a full run without the image's title
                self.unverified += 1
            else:
                self.checks += 1
                if reply.title_index != own_index:
                    violation("image in the page title", reply.title_index, own_index)

    async def first_render(self) -> None:
        url = f"ws://{HOST}:{self.server.port}/_stcore/stream"
        # Subprotocol entries: "streamlit", then the XSRF token and a session id to resume (both
        # optional: the token only guards the auth cookie; no Origin header, so no origin check).
        self.ws = await connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=self.args.move_timeout)
        reply = await self.rerun()
        await self.fetch_media(reply.media)
        self.first_render_ms = reply.ms
        self.model = reply.echoes.get("model_choice")
        self.failures += reply.problems
        for key in ("delta_mask_a", "tau", "explore_index"):
            if key not in self.ids:
                self.failures.append(f"the first render has no {key!r} widget")

    async def play(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.args.pace))  # students do not move in step
        for step in range(self.args.moves):
            kind, key, value = self.choose(step)
            self.set_value(key, value)
            reply = await self.rerun(self.fragment_of.get(self.ids[key], ""))
            media_ms = await self.fetch_media(reply.media)
            self.moves.append(Move(kind, reply.ms, media_ms))
            self.failures += [f"move {step} ({key}): {p}" for p in reply.problems]
            self.check(reply)
            await asyncio.sleep(self.args.pace * self.rng.uniform(0.5, 1.5))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def summary(self) -> dict:
        return {"session": self.index, "signature_delta_high": self.signature, "moves": len(self.moves),
                "first_render_ms": self.first_render_ms, "failures": self.failures[:20],
                "failure_count": len(self.failures), "isolation_checks": self.checks,
                "isolation_unverified": self.unverified, "isolation_violations": self.violations[:20],
                "mask_a_delta_high_seen": sorted(self.observed_signatures)}


# ----------------------------------------------------------------------------- one round (one N)

def stats(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
    return {"count": len(values), "median_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1)}


async def run_sessions(n: int, args, server: Server, sessions: list[Session], mark) -> None:
    """Open N sessions (filled into ``sessions``, so a time limit keeps what they measured), let
    each render the page, then play them all at once; ``mark(name)`` is called as the moves start and end."""
    signatures = dict(enumerate(SIGNATURES[:n]))
    sessions += [Session(k, args, server, signatures) for k in range(n)]

    async def open_one(session: Session) -> None:
        await asyncio.sleep(args.ramp * session.index / max(n, 1))
        await session.first_render()

    async def guarded(session: Session, step) -> None:
        try:
            await step(session)
        except asyncio.CancelledError:
            session.failures.append("stopped: time limit or interrupt")
            raise
        except Exception as error:  # a lost connection, a timeout: this session failed, the others go on
            session.failures.append(f"{type(error).__name__}: {error}")

    playing = False
    try:
        await asyncio.gather(*(guarded(s, open_one) for s in sessions))
        ready = [s for s in sessions if not s.failures]
        # Every student is on the page before anyone moves (the first renders are reported apart).
        mark("moves_started")
        playing = True
        await asyncio.gather(*(guarded(s, Session.play) for s in ready))
    finally:
        if playing:
            mark("moves_ended")
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def cache_figures(metrics: list[tuple[str, dict, float]]) -> dict:
    """Per cache of the server: lookups (hit / miss: a caller that waited for another's computation
    counts as a miss too), computed (runs of the function), evictions and, for st.cache_data and
    the media files, memory."""
    caches: dict[str, dict] = {}
    for name, labels, value in metrics:
        figures = caches.setdefault(labels.get("cache") or labels.get("cache_type", ""), {})
        if name == "cache_lookups_total":
            figures[labels.get("result", "?")] = int(value)
        elif name == "cache_compute_duration_seconds_count":
            figures["computed"] = figures.get("computed", 0) + int(value)
        elif name == "cache_evictions_total":
            figures["evictions"] = figures.get("evictions", 0) + int(value)
        elif name == "cache_memory_bytes" and labels.get("cache_type") != "st_cache_resource":  # resources: not sized
            figures["memory_bytes"] = int(value)
    return {name.removeprefix("spg_app.loaders."): figures for name, figures in sorted(caches.items()) if figures}


def sessions_seen(metrics: list[tuple[str, dict, float]]) -> dict:
    return {f"{labels.get('type', name)}": int(value) for name, labels, value in metrics
            if name in ("session_events_total", "active_sessions")}


def server_figures(server: Server, result: dict) -> None:
    """The server's own counters, read before it stops: caches, sessions, models loaded."""
    try:
        metrics = server.metrics()
    except OSError as error:
        result["errors"].append(f"/_stcore/metrics did not answer: {error}")
        return
    result["caches"] = cache_figures(metrics)
    result["server_sessions"] = sessions_seen(metrics)
    result["models_loaded"] = sum(result["caches"].get(name.removeprefix("spg_app.loaders."), {}).get("computed", 0)
                                  for name in MODEL_CACHES)


def cpu_figures(marks: dict, moves: int, pace: float) -> dict:
    """Server CPU over the moves (robust to a busy machine, unlike the times): per move, cores busy,
    moves a second, and the sessions one core keeps up with at this pace (the scripts share one
    GIL: a bound, not a promise)."""
    (t0, cpu0, _), (t1, cpu1, _) = marks["moves_started"], marks["moves_ended"]
    if not moves or t1 <= t0:
        return {}
    per_move = (cpu1 - cpu0) * 1000 / moves
    return {"server_cpu_ms_per_move": round(per_move, 1), "server_cpu_cores_busy": round((cpu1 - cpu0) / (t1 - t0), 2),
            "moves_per_s": round(moves / (t1 - t0), 1),
            "sessions_one_core_sustains": round(1000 * pace / per_move, 1) if per_move > 0 else None}


def run_round(n: int, args, deadline: float, log_dir: Path) -> dict:
    """One N: a fresh server, N sessions, the figures; the server is stopped whatever happens."""
    started = time.monotonic()
    server = Server(args.server_option, log_dir / f"{args.out.stem}_server_n{n}.log", args.launcher)
    sampler = ProcessSampler(server.process.pid)
    marks: dict[str, tuple[float, float, int]] = {}  # name -> (time, server CPU s, server RSS)

    def mark(name: str) -> None:
        marks[name] = (time.monotonic(), sampler.cpu(), sampler.rss())

    result: dict = {"sessions": n, "server_command": shlex.join(server.command), "server_log": str(server.log_path),
                    "errors": []}
    sessions: list[Session] = []
    try:
        sampler.start()
        if deadline - time.monotonic() <= 0:
            raise TimeoutError
        result["server_ready_s"] = round(server.wait_ready(min(120.0, deadline - time.monotonic())), 1)
        mark("ready")
        remaining = deadline - time.monotonic() - CLEANUP_SECONDS
        if remaining <= 0:
            raise TimeoutError
        try:
            asyncio.run(asyncio.wait_for(run_sessions(n, args, server, sessions, mark), timeout=remaining))
        except TimeoutError:
            result["errors"].append(f"time limit: --max-seconds {args.max_seconds} ran out during N = {n}")
        time.sleep(1.0)  # let the server settle after the sessions closed
        mark("closed")
        if server.process.poll() is None:
            server_figures(server, result)
        else:
            result["errors"].append(f"the server exited with code {server.process.returncode}")
    except TimeoutError:
        result["errors"].append(f"time limit: --max-seconds {args.max_seconds} ran out before N = {n} started")
    except RuntimeError as error:
        result["errors"].append(str(error))
    finally:
        try:
            server.stop()  # first: whatever else fails, no server is left behind
        finally:
            sampler.stop()

    def megabytes(mark_name: str) -> float | None:
        return round(marks[mark_name][2] / 2**20, 1) if mark_name in marks else None

    moves = [m for s in sessions for m in s.moves]
    result.update(
        idle_rss_mb=megabytes("ready"),
        rendered_rss_mb=megabytes("moves_started"),  # all N on the page, no move yet
        peak_rss_mb=round(sampler.peak(marks["ready"][0]) / 2**20, 1) if "ready" in marks else None,
        final_rss_mb=megabytes("closed"),
        **(cpu_figures(marks, len(moves), args.pace) if "moves_ended" in marks else {}),
        # Streamlit's default file watcher watches the app's folder recursively (here with .venv
        # inside): past the kernel's inotify queue its re-scan floods the queue again, a loop that
        # keeps a core busy while a session is connected.
        watcher_overflows=server.log_path.read_text(encoding="utf-8", errors="replace").count(
            "Inotify queue overflowed"),
        moves=len(moves),
        failed_sessions=sum(bool(s.failures or s.violations) for s in sessions) + (n - len(sessions)),
        slider_move=stats([m.ms for m in moves if m.kind in ("delta", "tau")]),
        delta_move=stats([m.ms for m in moves if m.kind == "delta"]),
        tau_move=stats([m.ms for m in moves if m.kind == "tau"]),
        image_change=stats([m.ms for m in moves if m.kind == "image"]),
        first_render=stats([s.first_render_ms for s in sessions if s.first_render_ms is not None]),
        media_fetch=stats([m.media_ms for m in moves if m.media_ms]),
        isolation={"checks": sum(s.checks for s in sessions), "unverified": sum(s.unverified for s in sessions),
                   "violations": sum(len(s.violations) for s in sessions)},
        model=next((s.model for s in sessions if s.model), None),
        seconds=round(time.monotonic() - started, 1),
        per_session=[s.summary() for s in sessions])
    return result


# ----------------------------------------------------------------------------- report

def model_checkpoint_mb(model: str | None) -> float | None:
    """Size of a shipped run's checkpoint (``spg_core/checkpoints/NAME``), the scale of one model copy."""
    name = (model or "").split(" (")[0]
    path = ROOT / "spg_core" / "checkpoints" / name / "checkpoint.pt"
    return round(path.stat().st_size / 2**20, 1) if name and path.is_file() else None


def print_table(rounds: list[dict], target_ms: float) -> None:
    def cell(value, fmt="{:.1f}") -> str:
        return "—" if value is None else fmt.format(value)

    def seconds(ms) -> str:
        return cell(None if ms is None else ms / 1000, "{:.2f}")

    header = (f"{'N':>3} {'moves':>5} {'failed':>6} | {'slider move ms p50':>18} {'p95':>6} {'max':>6} | "
              f"{'image ms p50':>12} {'p95':>6} | {'1st render s p50':>16} {'max':>5} | {'CPU ms/move':>11} | "
              f"{'RSS MB idle':>11} {'on page':>7} {'peak':>6} {'final':>6} | {'models':>6} | {'isolation ok/bad':>16}")
    print(header)
    print("-" * len(header))
    for r in rounds:
        s, i, f, iso = r["slider_move"], r["image_change"], r["first_render"], r["isolation"]
        print(f"{r['sessions']:>3} {r['moves']:>5} {r['failed_sessions']:>6} | {cell(s['median_ms']):>18} "
              f"{cell(s['p95_ms']):>6} {cell(s['max_ms']):>6} | {cell(i['median_ms']):>12} {cell(i['p95_ms']):>6} | "
              f"{seconds(f['median_ms']):>16} {seconds(f['max_ms']):>5} | "
              f"{cell(r.get('server_cpu_ms_per_move')):>11} | "
              f"{cell(r.get('idle_rss_mb')):>11} {cell(r.get('rendered_rss_mb')):>7} {cell(r.get('peak_rss_mb')):>6} "
              f"{cell(r.get('final_rss_mb')):>6} | {cell(r.get('models_loaded'), '{}'):>6} | "
              f"{str(iso['checks'] - iso['violations']) + '/' + str(iso['violations']):>16}")
    for r in rounds:
        d, t = r.get("delta_move") or {}, r.get("tau_move") or {}
        print(f"  N = {r['sessions']}: δ moves p50 {cell(d.get('median_ms'))} / p95 {cell(d.get('p95_ms'))} ms "
              f"({d.get('count', 0)}), τ moves p50 {cell(t.get('median_ms'))} / p95 {cell(t.get('p95_ms'))} ms "
              f"({t.get('count', 0)})")
    print(f"slider move: δ or τ, from the BackMsg to its script_finished (budget: p95 ≤ {target_ms:.0f} ms); "
          "CPU ms/move: server CPU time over the moves / their number; RSS 'on page': all N rendered, before the "
          "first move; models: runs of load_model/load_imagenet in that server (1 per run when shared)")


def verdicts(rounds: list[dict], args) -> dict:
    out: dict = {}
    for r in rounds:
        p95 = r["slider_move"]["p95_ms"]
        out[f"p95_slider_move_N{r['sessions']}"] = None if p95 is None else ("ok" if p95 <= args.target_ms else "over")
    for figure in ("rendered_rss_mb", "peak_rss_mb"):
        measured = [r for r in rounds if r.get(figure)]
        if len(measured) >= 2:
            small, large = min(measured, key=lambda r: r["sessions"]), max(measured, key=lambda r: r["sessions"])
            if large["sessions"] > small["sessions"]:
                growth = (large[figure] - small[figure]) / (large["sessions"] - small["sessions"])
                out[f"{figure.removesuffix('_mb')}_growth_mb_per_session"] = round(growth, 2)
    out["model"] = next((r["model"] for r in rounds if r.get("model")), None)
    out["model_checkpoint_mb"] = model_checkpoint_mb(out["model"])
    out["models_loaded_per_round"] = [r.get("models_loaded") for r in rounds]
    out["peak_rss_mb"] = max((r.get("peak_rss_mb") or 0 for r in rounds), default=None)
    if out["peak_rss_mb"]:
        out["peak_rss_within_bound"] = out["peak_rss_mb"] <= args.max_rss_mb
    return out


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30], help="the N to run, in order")
    parser.add_argument("--moves", type=int, default=50, help="moves per session")
    parser.add_argument("--pace", type=float, default=1.0, help="mean seconds between a session's moves (±50%%)")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which the N sessions open the page")
    parser.add_argument("--image-share", type=float, default=0.15, help="share of moves that pick another image")
    parser.add_argument("--tau-share", type=float, default=0.10, help="share of moves that move τ")
    parser.add_argument("--image-pool", type=int, default=200, help="images picked among the first N of the split")
    parser.add_argument("--move-timeout", type=float, default=120.0, help="seconds a run may take before failing")
    parser.add_argument("--max-seconds", type=float, default=1500.0, help="hard limit on the whole test")
    parser.add_argument("--target-ms", type=float, default=50.0, help="p95 budget of a slider move")
    parser.add_argument("--max-rss-mb", type=float, default=2048.0, help="bound the peak server RSS is checked against")
    parser.add_argument("--no-media", action="store_true", help="do not fetch the pictures a browser would")
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `streamlit run` option, e.g. server.fileWatcherType=none (repeatable)")
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="serve",
                        help="streamlit: `python -m streamlit run app.py`; serve: `python -m spg_app.serve` (make app)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load.json")
    args = parser.parse_args(argv)
    for n in args.sessions:
        if not 1 <= n <= MAX_SESSIONS:
            parser.error(f"--sessions {n}: N must be between 1 and {MAX_SESSIONS} (a loopback classroom test, "
                         "not a stress test: more sessions would measure this machine, not the app)")
    if not 1 <= args.moves <= MAX_MOVES:
        parser.error(f"--moves must be between 1 and {MAX_MOVES}")
    if args.pace < 0.01 or args.max_seconds <= 0 or args.move_timeout <= 0 or args.image_pool < 2:
        parser.error("--pace ≥ 0.01, --max-seconds > 0, --move-timeout > 0 and --image-pool ≥ 2 are required")
    if args.image_share + args.tau_share > 1:
        parser.error("--image-share + --tau-share must not exceed 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["bench_load.py", *argv])
    print(f"command: {command}")
    expected = sum(30 + args.ramp + args.moves * args.pace * 1.05 for _ in args.sessions)
    if expected > args.max_seconds:
        print(f"warning: these rounds need at least {expected:.0f} s, more than --max-seconds {args.max_seconds:.0f}")
    deadline = time.monotonic() + args.max_seconds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.out.parent

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    rounds: list[dict] = []
    interrupted = False
    try:
        for n in args.sessions:
            print(f"N = {n}: starting the server and {n} session(s)…", flush=True)
            rounds.append(run_round(n, args, deadline, log_dir))
            r = rounds[-1]
            print(f"  done in {r['seconds']} s; {r['moves']} moves, {r['failed_sessions']} failed session(s)"
                  + "".join(f"\n  error: {e}" for e in r["errors"]), flush=True)
            for s in r["per_session"]:
                for problem in (s["failures"] + s["isolation_violations"])[:3]:
                    print(f"  session {s['session']}: {problem}")
            if r.get("server_cpu_ms_per_move"):
                print(f"  server CPU {r['server_cpu_ms_per_move']} ms per move ({r['server_cpu_cores_busy']} cores "
                      f"busy, {r['moves_per_s']} moves/s): one core keeps up with about "
                      f"{r['sessions_one_core_sustains']} sessions at --pace {args.pace}")
            if r["watcher_overflows"]:
                print(f"  note: the server's file watcher overflowed {r['watcher_overflows']} times (its recursive "
                      "inotify watch of the repo, .venv included, re-scans in a loop and keeps a core busy); "
                      "--server-option server.fileWatcherType=none measures the app without it")
            if any(e.startswith("time limit") for e in r["errors"]):
                break
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the server was stopped", file=sys.stderr)
    print()
    print_table(rounds, args.target_ms)
    summary = verdicts(rounds, args)
    print("verdicts: " + ", ".join(f"{k} = {v}" for k, v in summary.items()))
    report = {"command": command, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "rounds": rounds, "verdicts": summary, "interrupted": interrupted}
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if interrupted or any(r["errors"] for r in rounds):
        return 2
    return 1 if any(r["failed_sessions"] for r in rounds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
