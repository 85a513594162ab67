"""Classroom load test of the app: N students on the explore page at once, over loopback.

    python benchmarks/bench_load.py --sessions 1 10 30 100               # a class, one release per ~3 s each
    python benchmarks/bench_load.py --sessions 100 --pace 1 --report benchmarks/reports/load-pace1.md  # stress
    python benchmarks/bench_load.py --sessions 1 3 --moves 5 --pace 0.2  # a quick self-check
    python benchmarks/bench_load.py --server-option runner.postScriptGC=true  # a server configured otherwise

What a student does on the explore page: the pipeline view
(``spg_app/pipeline_view``, a custom component, widget key ``pipeline``) applies δ_l/δ_h and τ in
the browser while a thumb is dragged, which costs the server nothing, and sends its values once,
on release; the server applies them to the session's view and reruns the page's thresholded part.
On this page τ and the map opacity are controls of the view too (the sidebar only names them).
So a session's "move" is mostly a **release** of the view, sometimes another image (the number
input ``explore_index``).

For each N of ``--sessions`` the script starts ``python -m spg_app.serve --server.headless true
--server.address 127.0.0.1 --server.port PORT --browser.gatherUsageStats false`` (as ``make app``
does, with the repository's ``.streamlit/config.toml``; plus any ``--server-option``;
``--launcher streamlit`` starts ``python -m streamlit run app.py`` instead) from the repository
root, on a free port: a fresh server per N, so memory and cache figures are per N. It opens N
sessions, then stops the server, also on an error, Ctrl-C, SIGTERM or when ``--max-seconds`` run
out. The server's log goes to ``--log-dir`` (a temporary folder unless given).

A session is not a browser but a websocket client speaking Streamlit's own protocol
(Streamlit 1.67 serves it with Starlette/uvicorn):

* it connects to ``ws://127.0.0.1:PORT/_stcore/stream`` with the subprotocol list
  ``["streamlit"]`` (the browser adds an XSRF token and a session id to resume; the token only
  guards the auth cookie and no Origin header means no origin check, so neither is needed).
  Frames are binary protobufs: ``BackMsg`` up, ``ForwardMsg`` down;
* it asks for the page with a ``BackMsg.rerun_script`` (a ``ClientState``) and reads ForwardMsgs
  until ``script_finished``. A run that a widget callback or the app replaces with another
  (``st.rerun``: a release's callback reruns only the parts that show what moved) ends
  ``FINISHED_EARLY_FOR_RERUN``; the run that follows ends the move;
* like the browser it keeps the large elements it received (``metadata.cacheable``, by their
  ``hash``) and lists them in ``cached_message_hashes``, so the server sends an unchanged one
  as a ``ref_hash``; entries age as the browser's do (``maxCachedMessageAge`` finished runs of
  their fragment without being used);
* it keeps each widget's value from the elements it received, ``delta.new_element.<widget>``:
  ``id`` (``$$ID-<hash>-<key>`` for a keyed widget), ``default``, and ``value`` / ``raw_value``
  when ``set_value`` says the server set it; each rerun's ``widget_states`` carry the state of
  every widget the session knows, as a browser's do, and its ``page_script_hash`` is the page it
  is on. Value types: a slider is a ``double_array_value`` (``tau``), an int ``number_input``
  (``explore_index``) an ``int_value``, a selectbox or radio the formatted option as
  ``string_value``, a checkbox a ``bool_value``. Buttons and downloads are triggers, never sent;
* the pipeline view is a ``component_instance`` element: its ``id`` (``$$ID-<hash>-pipeline``)
  is the widget id, its ``json_args`` the component's arguments as JSON, whose ``"values"``
  (thresholds, τ, opacity) are what its controls show. A release is what the component's
  ``setComponentValue`` makes the browser send: a ``rerun_script`` with ``fragment_id`` the
  fragment the element was drawn in and a ``WidgetState`` for that id whose ``json_value`` is
  ``{"thresholds": {"mask_a": [lo, hi], "mask_b2": [lo, hi], "mask_fuse": [lo, hi]}, "tau": t,
  "alpha": a, "nonce": n}`` as JSON (a new nonce per release; the state is sent again, unchanged,
  with later reruns, as the browser keeps it). The values start from what the view last showed
  (its ``json_args``) with one thumb moved, as a person's release does.

At a person's pace (``--pace`` seconds ± 50 % between a session's moves: the drag before a
release happens in the browser, so this is the time from one release to the next; all N render
the page first), ``--moves`` times, a session releases the view (one δ thumb of a stage, or τ
in ``--view-tau-share`` of the releases), or picks another image among the first ``--image-pool`` (``--image-share``). Measured per N:

* server time per move: from sending the BackMsg to receiving the ``script_finished`` that ends
  it (the run and the transfer of its deltas; ``/media/...`` pictures in the deltas are then
  fetched as a browser does — new URLs only — and timed apart; ``--no-media`` skips them).
  Releases are reported apart from image changes; the target is for them
  (p95 ≤ ``--target-ms``, 100 ms);
* server CPU per move (``/proc/PID/stat`` over the moves / their number): unlike the times, it
  holds on a busy machine; one Python process runs the scripts under one interpreter lock, so
  ``1000 * pace / CPU ms`` sessions is about what one core keeps up with. This client's own CPU
  (it shares the machine with the server) is reported beside it;
* failures: an ``exception`` element, an ``st.error`` box, a compile error, a page not found, a
  run that does not end successfully within ``--move-timeout``, a lost connection, a cached
  message the server refers to that the session does not hold, a picture that does not load,
  or a broken isolation check;
* isolation: session k releases Mask-A with its own (δ_l, δ_h): δ_h one of 66 values in
  0.30–0.99 used by no preset (k mod 66), δ_l drawn at random on every release within a band of
  its own (0.00–0.09, 0.10–0.19 or 0.20–0.29 for k div 66), so no two sessions ever send the same
  pair; the other stages and τ are drawn at random. After every run it checks what the server
  sent back for its session against what it sent itself: the values in the view's ``json_args``
  (every stage's thresholds and τ), δ_l and δ_h in Mask-A's row of the seed numbers table, and
  the image number in the image's title and
  number input. A value that is not the session's own is a violation, named as another
  session's when it is one of theirs;
* server memory: RSS of the server and its children (``/proc/PID/status`` VmRSS) every 0.5 s:
  idle, with all N on the page, peak (checked against ``--max-rss-mb``, 2 GB) and final;
* models loaded: the server's own counters at ``/_stcore/metrics``: how often the
  ``st.cache_resource`` functions ``load_model`` / ``load_imagenet`` ran: one per server, whatever
  N, when the model is shared; with every cache's lookups, runs, evictions and memory.

Prints a table, writes the Markdown report ``--report`` (benchmarks/reports/load.md: date,
machine, command, the table, the targets; overwritten per run) and, with ``--json``, every figure
as JSON; exits 1 if any session failed or a target was missed (2 if the time limit, an interrupt
or the server stopped the test). Loopback only; N ≤ 150; the whole test is bounded by
``--max-seconds`` (a round cut short keeps what it measured).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_load.py` from anywhere
    sys.path.insert(0, str(ROOT))

from spg_app.widgets import read_numbers_table  # noqa: E402

HOST = "127.0.0.1"
MAX_SESSIONS = 150
MAX_MOVES = 500
STAGES = ("mask_a", "mask_b2", "mask_fuse")
SIGNATURE_STAGE = "mask_a"
VIEW_KEY = "pipeline"  # the pipeline view's widget key (spg_app.pages.explore.PIPELINE_KEY)
# Mask-A's (δ_l, δ_h) of session k: δ_h = SIGNATURE_HIGHS[k % 66] (never a preset's), δ_l drawn in
# band k // 66 of LOW_BANDS: the pair names the session.
PRESET_HIGHS = {0.5, 0.6, 0.7, 0.8}
SIGNATURE_HIGHS = [v for v in (round(0.30 + 0.01 * i, 2) for i in range(70)) if v not in PRESET_HIGHS]
LOW_BANDS = 3  # δ_l bands of 0.10 below 0.30
TITLE = re.compile(r"^\*\*#(\d+) ·")
MODEL_CACHES = ("spg_app.loaders.load_model", "spg_app.loaders.load_imagenet")
TOLERANCE = 1e-9
CLEANUP_SECONDS = 5.0  # of --max-seconds, kept for closing the sessions and stopping the server
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MOVE_KINDS = ("release", "image")
PACE = 3.0  # default --pace: a drag (in the browser, free for the server), a look, a release


def signature(k: int) -> tuple[int, float]:
    """(δ_l band, δ_h) of session k's Mask-A."""
    return k // len(SIGNATURE_HIGHS), SIGNATURE_HIGHS[k % len(SIGNATURE_HIGHS)]


def signed_by(pair) -> int | None:
    """The session whose Mask-A signature a (δ_l, δ_h) pair is, or None."""
    try:
        low, high = round(float(pair[0]), 2), round(float(pair[1]), 2)
    except (TypeError, ValueError, IndexError):
        return None
    if high not in SIGNATURE_HIGHS or not 0 <= low < 0.1 * LOW_BANDS:
        return None
    return int(round(low * 100)) // 10 * len(SIGNATURE_HIGHS) + SIGNATURE_HIGHS.index(high)


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
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= TOLERANCE
    return a == b


def user_key(widget_id: str) -> str:
    """A keyed widget's id is ``$$ID-<hash>-<key>``; unkeyed ones have no key."""
    parts = widget_id.split("-", 2)
    return parts[2] if widget_id.startswith("$$ID-") and len(parts) == 3 else ""


def widget_value(kind: str, w) -> tuple[str, object, object] | None:
    """(WidgetState field, value the server set or None, default) of a value widget, None for others
    (buttons, downloads, dataframes: triggers or selections a browser only sends when used; the
    pipeline view, whose value the browser sends only once it released)."""
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
    elif field_name == "json_value":  # a custom component's value: JSON, as the browser's JSON.stringify
        state.json_value = json.dumps(value, separators=(",", ":"))
    else:
        setattr(state, field_name, value)
    return state


VALUES_KEY = '"values": '


def view_values(json_args: str) -> dict | None:
    """The ``"values"`` of the pipeline view's arguments (thresholds, τ, opacity). The arguments
    hold the image and its maps too (hundreds of kB); ``values`` follows them (``json.dumps`` keeps
    the order), so only it is decoded."""
    at = json_args.rfind(VALUES_KEY + "{")
    try:
        if at >= 0:
            return json.JSONDecoder().raw_decode(json_args, at + len(VALUES_KEY))[0]
        return json.loads(json_args).get("values")
    except (ValueError, AttributeError):
        return None


def slim(msg: ForwardMsg) -> ForwardMsg:
    """What the session keeps of a cached element: of the pipeline view, its id and the values of
    its arguments (not the image and maps); of pictures sent inline (data URLs), not their bytes."""
    element = msg.delta.new_element
    kind = element.WhichOneof("type")
    kept = ForwardMsg()
    if kind == "component_instance":
        kept.delta.fragment_id = msg.delta.fragment_id
        view = kept.delta.new_element.component_instance
        view.id = element.component_instance.id
        view.json_args = json.dumps({"values": view_values(element.component_instance.json_args)})
        return kept
    kept.CopyFrom(msg)
    if kind == "imgs":
        for image in kept.delta.new_element.imgs.imgs:
            if not image.url.startswith("/media/"):
                image.url = ""
    return kept


class MessageCache:
    """The browser's cache of large ForwardMsgs (``ForwardMsgCache`` in Streamlit's frontend): a
    message whose ``metadata.cacheable`` is set is kept by its ``hash``; the hashes go up with
    every rerun (``cached_message_hashes``) and the server then sends a ``ref_hash`` instead of an
    unchanged element. After each finished run (not one ended early for a rerun) the entries of the
    fragments that ran (all, after a full run) age by one; an entry not used for more than
    ``max_age`` runs is dropped."""

    def __init__(self, max_age: int = 2):
        self.max_age = max_age
        self.runs = 0
        self.entries: dict[str, list] = {}  # hash -> [run count when last used, fragment id, slim message]

    def hashes(self) -> list[str]:
        return list(self.entries)

    def resolve(self, msg: ForwardMsg) -> ForwardMsg:
        """The message itself, or (a ``ref_hash``) the cached one it refers to; raises on a miss."""
        if msg.WhichOneof("type") == "ref_hash":
            entry = self.entries.get(msg.ref_hash)
            if entry is None:
                raise RuntimeError(f"the server referred to a message this session does not hold ({msg.ref_hash})")
            entry[0] = self.runs
            return entry[2]
        if msg.metadata.cacheable and msg.hash:
            if msg.hash in self.entries:
                self.entries[msg.hash][0] = self.runs
            else:
                self.entries[msg.hash] = [self.runs, msg.delta.fragment_id, slim(msg)]
        return msg

    def finished(self, fragment_ids) -> None:
        self.runs += 1
        fragments = set(fragment_ids)
        for key, (used, fragment, _) in list(self.entries.items()):
            if fragments and (not fragment or fragment not in fragments):
                continue
            if self.runs - used > self.max_age:
                del self.entries[key]


@dataclass
class RunReply:
    """What one move made the server send a session (one run, or a run and the one that replaced it)."""

    ms: float = 0.0
    status: int = -1
    echoes: dict = field(default_factory=dict)  # widget key -> value the server set
    view: dict | None = None  # the pipeline view's "values", when the view was sent
    mask_a_row: tuple | None = None  # (δ_l, δ_h) in Mask-A's row of the seed numbers table
    title_index: int | None = None
    media: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    widget_ids: set = field(default_factory=set)
    fragment_id: str = ""  # the fragment this move asked to rerun ("" = the whole script)
    fragments: set = field(default_factory=set)  # fragments that ran ({} after a full run)
    replaced: bool = False  # a run ended FINISHED_EARLY_FOR_RERUN and another followed
    refs: int = 0  # elements the server sent as a ref_hash (the session's cached copy)
    received_bytes: int = 0

    @property
    def partial(self) -> bool:
        """Did only fragments run (the last run of the move)?"""
        if self.status in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            return self.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        return bool(self.fragment_id)

    def redrew(self, fragment_of_widget: str) -> bool:
        """Was a widget drawn in ``fragment_of_widget`` ("" = outside any) sent again by this move?
        With nested fragments a widget's fragment is its innermost; a rerun of an enclosing one
        sends it too (its deltas name the innermost, which lands in ``fragments``)."""
        if not self.partial:
            return True
        return fragment_of_widget in self.fragments - {""}


@dataclass
class Move:
    kind: str  # "release" or "image"
    ms: float
    media_ms: float = 0.0
    control: str = ""  # a release: the stage whose thumb moved, or "tau" (the view's τ)
    whole_app: bool = False  # the move ended with a run of the whole app
    received_kb: float = 0.0


class Session:
    """One student: a websocket client that reruns the app with its own widget values."""

    def __init__(self, index: int, args, server: Server):
        self.index, self.args, self.server = index, args, server
        self.band, self.high = signature(index)
        self.rng = random.Random(args.seed * 1000 + index)
        self.values: dict[str, tuple[str, object]] = {}  # widget id -> (WidgetState field, value)
        self.ids: dict[str, str] = {}  # widget key -> widget id
        self.fragment_of: dict[str, str] = {}  # widget id -> id of the st.fragment drawing it ("" = none)
        self.limits: dict[str, int] = {}  # number_input key -> its max + 1 (the split's size for explore_index)
        self.page_hash = ""
        self.cache = MessageCache()
        self.shown: dict | None = None  # the pipeline view's values as its controls hold them (browser side)
        self.own: dict[str, object] = {}  # what this session set last: "thresholds", "tau", "explore_index"
        self.releases = 0
        self.seen_media: set[str] = set()
        self.moves: list[Move] = []
        self.first_render_ms: float | None = None
        self.failures: list[str] = []
        self.violations: list[str] = []
        self.checks = 0
        self.unverified = 0
        self.observed_signatures: set[tuple] = set()
        self.model = None  # the sidebar's run, as its selectbox shows it
        self.ws = None
        self.http = AsyncHTTPClient()

    # -- protocol
    async def rerun(self, fragment_id: str = "") -> RunReply:
        """One move: the whole script, or (``fragment_id``, as a browser does for a widget drawn
        inside an ``st.fragment``) only that fragment; and the run that replaces it, if any."""
        message = BackMsg()
        state = message.rerun_script
        state.query_string = ""
        state.page_script_hash = self.page_hash
        state.fragment_id = fragment_id
        state.widget_states.widgets.extend(widget_state(wid, f, v) for wid, (f, v) in self.values.items())
        state.cached_message_hashes.extend(self.cache.hashes())
        reply = RunReply(fragment_id=fragment_id)
        started = time.perf_counter()
        await self.ws.send(message.SerializeToString())
        while True:  # --move-timeout bounds the whole move, not each message
            left = started + self.args.move_timeout - time.perf_counter()
            try:
                data = await asyncio.wait_for(self.ws.recv(), timeout=max(left, 0))
            except TimeoutError:
                raise TimeoutError(f"no script_finished within --move-timeout {self.args.move_timeout} s") from None
            reply.received_bytes += len(data)
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":
                reply.refs += 1
                msg = self.cache.resolve(msg)
                kind = msg.WhichOneof("type")
            else:
                self.cache.resolve(msg)
            if kind == "script_finished":
                if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    # st.rerun (a widget callback's keyed one, or the app's): the server runs again
                    # and that run's script_finished ends this move, as the browser just keeps reading.
                    reply.replaced = True
                    reply.fragments.clear()
                    continue
                reply.ms = (time.perf_counter() - started) * 1000
                reply.status = msg.script_finished
                reply.fragments.update(msg.metadata.run.fragment_ids)
                self.cache.finished(msg.metadata.run.fragment_ids if reply.partial else ())
                break
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                if msg.delta.fragment_id:
                    reply.fragments.add(msg.delta.fragment_id)
                self.read_element(msg.delta.new_element, reply, msg.delta.fragment_id)
            elif kind == "new_session":
                self.cache.max_age = msg.new_session.config.max_cached_message_age or self.cache.max_age
            elif kind == "navigation" and msg.navigation.page_script_hash:
                self.page_hash = msg.navigation.page_script_hash
            elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
                reply.problems.append(f"compile error: {msg.session_event.script_compilation_exception.message}")
            elif kind == "page_not_found":
                reply.problems.append(f"page not found: {msg.page_not_found.page_name!r}")
        if reply.status not in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            reply.problems.append(f"script_finished status {ForwardMsg.ScriptFinishedStatus.Name(reply.status)}")
        elif fragment_id and not reply.replaced and not reply.partial:
            reply.problems.append("a fragment's rerun ran the whole app")
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
        elif kind == "component_instance":
            if user_key(w.id) == VIEW_KEY:
                self.ids[VIEW_KEY] = w.id
                self.fragment_of[w.id] = fragment_id
                reply.widget_ids.add(w.id)
                reply.view = view_values(w.json_args)
                if reply.view is None:
                    reply.problems.append("the pipeline view's arguments have no values")
                else:
                    self.shown = json.loads(json.dumps(reply.view))  # the controls show what Python passed
            return
        described = widget_value(kind, w) if kind else None
        if described is None:
            return
        field_name, server_value, default = described
        reply.widget_ids.add(w.id)
        self.fragment_of[w.id] = fragment_id
        key = user_key(w.id)
        if key:
            self.ids[key] = w.id
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
    def choose(self, step: int) -> tuple[str, str]:
        """(kind, control) of the next move: ("release", stage or "tau"), ("image", ""). The first
        is a release of Mask-A: it sets the signature."""
        roll = self.rng.random()
        if step > 0 and roll < self.args.image_share and "explore_index" in self.ids:
            return "image", ""
        if step > 0 and self.rng.random() < self.args.view_tau_share:
            return "release", "tau"
        return "release", SIGNATURE_STAGE if step == 0 else self.rng.choice(STAGES)

    def new_pair(self, stage: str, current) -> list[float]:
        rng = self.rng
        while True:
            if stage == SIGNATURE_STAGE:
                value = [(10 * self.band + rng.randrange(0, 10)) / 100, self.high]
            else:
                low = rng.randrange(0, 41)
                value = [low / 100, rng.randrange(low + 5, 101) / 100]
            if not same(value, current):
                return value

    def new_tau(self, current) -> float:
        return self.rng.choice([i / 100 for i in range(1, 100) if not same(current, i / 100)])

    def release_value(self, control: str) -> dict:
        """What the view sends when a thumb is let go: the values its controls hold, one moved; the
        Mask-A pair keeps this session's signature (set by its first release)."""
        shown = self.shown
        thresholds = {stage: [float(v) for v in shown["thresholds"][stage]] for stage in STAGES}
        if self.releases == 0 or control == SIGNATURE_STAGE:
            thresholds[SIGNATURE_STAGE] = self.new_pair(SIGNATURE_STAGE, thresholds[SIGNATURE_STAGE]
                                                        if control == SIGNATURE_STAGE else None)
        if control in STAGES and control != SIGNATURE_STAGE:
            thresholds[control] = self.new_pair(control, thresholds[control])
        tau = float(shown["tau"])
        if control == "tau":
            tau = self.new_tau(tau)
        self.releases += 1
        return {"thresholds": thresholds, "tau": tau, "alpha": float(shown["alpha"]),
                "nonce": int(time.time() * 1000) * 1000 + self.releases % 1000}

    def apply(self, kind: str, control: str) -> str:
        """Set the widget state of the move (as the browser would) and what this session expects
        back; returns the fragment the move reruns ("" = the whole app)."""
        if kind == "release":
            value = self.release_value(control)
            widget_id = self.ids[VIEW_KEY]
            self.values[widget_id] = ("json_value", value)
            self.shown = {"thresholds": value["thresholds"], "tau": value["tau"], "alpha": value["alpha"]}
            self.own["thresholds"] = value["thresholds"]
            self.own["tau"] = value["tau"]
            return self.fragment_of.get(widget_id, "")
        key = "explore_index"
        widget_id = self.ids[key]
        field_name, current = self.values[widget_id]
        pool = min(self.args.image_pool, self.limits.get(key, self.args.image_pool))
        value = self.rng.choice([i for i in range(pool) if i != current])
        self.own["explore_index"] = value
        self.values[widget_id] = (field_name, value)
        return self.fragment_of.get(widget_id, "")

    def check(self, reply: RunReply) -> None:
        """Does what the server sent back hold this session's own values, and only them?"""
        def verify(what: str, shown, own, expected: bool) -> None:
            if shown is None:
                self.unverified += int(expected)
                return
            self.checks += 1
            if not same(shown, own):
                hint = ""
                culprits = {signed_by(pair) for pair in (
                    [shown] if what.startswith("Mask-A") else
                    [shown.get(SIGNATURE_STAGE)] if isinstance(shown, dict) else [])} - {None, self.index}
                if culprits:
                    hint = f" (session {', '.join(map(str, sorted(culprits)))}'s Mask-A)"
                self.violations.append(f"{what}: sent {own}, the server shows {shown}{hint}")

        def drawn(key: str) -> bool:  # a fragment's run re-sends only the fragment's own elements
            return key in self.ids and reply.redrew(self.fragment_of.get(self.ids[key], ""))

        view_drawn = drawn(VIEW_KEY)
        own_thresholds, own_tau = self.own.get("thresholds"), self.own.get("tau")
        if own_thresholds is not None:
            verify("the view's thresholds", None if reply.view is None else
                   {stage: reply.view["thresholds"].get(stage) for stage in STAGES}, own_thresholds, view_drawn)
            verify("Mask-A's row of the seed numbers", None if reply.mask_a_row is None else list(reply.mask_a_row),
                   own_thresholds[SIGNATURE_STAGE], view_drawn)
            if reply.mask_a_row is not None:
                self.observed_signatures.add(tuple(reply.mask_a_row))
        if own_tau is not None:
            verify("the view's τ", None if reply.view is None else reply.view.get("tau"), own_tau, view_drawn)
        own_index = self.own.get("explore_index")
        if own_index is not None:
            verify("the image number input", reply.echoes.get("explore_index"), own_index, False)
            verify("the image in the title", reply.title_index, own_index, view_drawn)

    async def first_render(self) -> None:
        url = f"ws://{HOST}:{self.server.port}/_stcore/stream"
        self.ws = await connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=self.args.move_timeout)
        reply = await self.rerun()
        await self.fetch_media(reply.media)
        self.first_render_ms = reply.ms
        self.model = reply.echoes.get("model_choice")
        self.failures += reply.problems
        for key in (VIEW_KEY, "explore_index"):
            if key not in self.ids:
                self.failures.append(f"the first render has no {key!r} widget")
        if self.shown is None:
            self.failures.append("the first render sent no values for the pipeline view")

    async def play(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.args.pace))  # students do not move in step
        for step in range(self.args.moves):
            kind, control = self.choose(step)
            fragment_id = self.apply(kind, control)
            reply = await self.rerun(fragment_id)
            media_ms = await self.fetch_media(reply.media)
            self.moves.append(Move(kind, reply.ms, media_ms, control, not reply.partial,
                                   reply.received_bytes / 1024))
            self.failures += [f"move {step} ({kind} {control}): {p}" for p in reply.problems]
            self.check(reply)
            await asyncio.sleep(self.args.pace * self.rng.uniform(0.5, 1.5))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def summary(self) -> dict:
        return {"session": self.index, "signature": [f"{self.band / 10:.1f}–{self.band / 10 + 0.09:.2f}", self.high],
                "moves": len(self.moves), "first_render_ms": self.first_render_ms, "failures": self.failures[:20],
                "failure_count": len(self.failures), "isolation_checks": self.checks,
                "isolation_unverified": self.unverified, "isolation_violations": self.violations[:20],
                "mask_a_pairs_seen": sorted(self.observed_signatures)[:50]}


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
    sessions += [Session(k, args, server) for k in range(n)]

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
    interpreter lock: a bound, not a promise); and this client's own CPU over the same time."""
    (t0, cpu0, _, own0), (t1, cpu1, _, own1) = marks["moves_started"], marks["moves_ended"]
    if not moves or t1 <= t0:
        return {}
    per_move = (cpu1 - cpu0) * 1000 / moves
    return {"server_cpu_ms_per_move": round(per_move, 1), "server_cpu_cores_busy": round((cpu1 - cpu0) / (t1 - t0), 2),
            "client_cpu_cores_busy": round((own1 - own0) / (t1 - t0), 2),
            "moves_per_s": round(moves / (t1 - t0), 1),
            "sessions_one_core_sustains": round(1000 * pace / per_move, 1) if per_move > 0 else None}


def run_round(n: int, args, deadline: float, log_dir: Path) -> dict:
    """One N: a fresh server, N sessions, the figures; the server is stopped whatever happens."""
    started = time.monotonic()
    server = Server(args.server_option, log_dir / f"load_server_n{n}.log", args.launcher)
    sampler = ProcessSampler(server.process.pid)
    marks: dict[str, tuple[float, float, int, float]] = {}  # name -> (time, server CPU s, server RSS, client CPU s)

    def mark(name: str) -> None:
        marks[name] = (time.monotonic(), sampler.cpu(), sampler.rss(), time.process_time())

    result: dict = {"sessions": n, "server_command": shlex.join(server.command), "server_log": str(server.log_path),
                    "errors": []}
    sessions: list[Session] = []
    try:
        sampler.start()
        if deadline - time.monotonic() <= 0:
            raise TimeoutError
        result["server_ready_s"] = round(server.wait_ready(min(180.0, deadline - time.monotonic())), 1)
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
    releases = [m for m in moves if m.kind == "release"]
    result.update(
        idle_rss_mb=megabytes("ready"),
        rendered_rss_mb=megabytes("moves_started"),  # all N on the page, no move yet
        peak_rss_mb=round(sampler.peak(marks["ready"][0]) / 2**20, 1) if "ready" in marks else None,
        final_rss_mb=megabytes("closed"),
        **(cpu_figures(marks, len(moves), args.pace) if "moves_ended" in marks else {}),
        watcher_overflows=server.log_path.read_text(encoding="utf-8", errors="replace").count(
            "Inotify queue overflowed"),
        moves=len(moves),
        moves_by_kind={kind: sum(m.kind == kind for m in moves) for kind in MOVE_KINDS},
        failed_sessions=sum(bool(s.failures or s.violations) for s in sessions) + (n - len(sessions)),
        release=stats([m.ms for m in releases]),
        release_delta=stats([m.ms for m in releases if m.control in STAGES]),
        release_tau=stats([m.ms for m in releases if m.control == "tau"]),
        releases_whole_app=sum(m.whole_app for m in releases),
        release_received_kb=round(statistics.mean([m.received_kb for m in releases]), 1) if releases else None,
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

def cell(value, fmt="{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def pair(figures: dict, keys=("median_ms", "p95_ms")) -> str:
    return " / ".join(cell(figures.get(key)) for key in keys)


def print_table(rounds: list[dict], target_ms: float) -> None:
    header = (f"{'N':>3} {'moves':>5} {'failed':>6} | {'release ms p50':>14} {'p95':>6} {'max':>6} | "
              f"{'image ms p50':>12} {'p95':>6} | {'CPU ms/move':>11} | "
              f"{'RSS MB on page':>14} {'peak':>6} | {'models':>6} | {'isolation ok/bad':>16}")
    print(header)
    print("-" * len(header))
    for r in rounds:
        s, i, iso = r["release"], r["image_change"], r["isolation"]
        print(f"{r['sessions']:>3} {r['moves']:>5} {r['failed_sessions']:>6} | {cell(s['median_ms']):>14} "
              f"{cell(s['p95_ms']):>6} {cell(s['max_ms']):>6} | {cell(i['median_ms']):>12} {cell(i['p95_ms']):>6} | "
              f"{cell(r.get('server_cpu_ms_per_move')):>11} | "
              f"{cell(r.get('rendered_rss_mb')):>14} {cell(r.get('peak_rss_mb')):>6} | "
              f"{cell(r.get('models_loaded'), '{}'):>6} | "
              f"{str(iso['checks'] - iso['violations']) + '/' + str(iso['violations']):>16}")
    print(f"release: a release of the pipeline view, from the BackMsg to its script_finished (target: p95 ≤ "
          f"{target_ms:.0f} ms); CPU ms/move: server CPU over the moves / their number; RSS 'on page': all N "
          "rendered, before the first move; models: runs of load_model/load_imagenet in that server")


TARGETS = (  # (name, figure of a round, bound, what it says)
    ("failed sessions", lambda r, a: r["failed_sessions"], lambda a: 0, "= 0"),
    ("isolation violations", lambda r, a: r["isolation"]["violations"], lambda a: 0, "= 0"),
    ("p95 server time per release (ms)", lambda r, a: r["release"]["p95_ms"], lambda a: a.target_ms, "≤ {:g}"),
    ("peak server RSS (MB)", lambda r, a: r.get("peak_rss_mb"), lambda a: a.max_rss_mb, "≤ {:g}"),
)


def verdicts(rounds: list[dict], args) -> dict:
    """Each target at each N: "ok", "missed" or None (not measured)."""
    out: dict = {}
    for name, figure, bound, _ in TARGETS:
        for r in rounds:
            value = figure(r, args)
            out[f"{name} N={r['sessions']}"] = None if value is None else ("ok" if value <= bound(args) else "missed")
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the start, "
            f"{platform.system()} {platform.release()}")


def software() -> str:
    import streamlit

    return f"Python {platform.python_version()}, Streamlit {streamlit.__version__}"


def markdown_report(rounds: list[dict], args, command: str, started: str, machine_text: str,
                    interrupted: bool) -> str:
    """The report written to ``--report``: date, machine, command, the table, the targets."""
    niceness = os.nice(0)
    lines = ["# Classroom load (benchmarks/bench_load.py)", "",
             "Written by `benchmarks/bench_load.py`; overwritten by each run. What it measures and why: "
             "[docs/app.md](../../docs/app.md#load-measured).", "",
             f"- date: {started}",
             f"- machine: {machine_text}",
             f"- software: {software()}",
             f"- command: `{command}`" + (f" (niceness {niceness}: the server and the sessions ran at that "
                                          "priority)" if niceness else ""),
             f"- each session: {args.moves} moves {args.pace:g} s ± 50 % apart; "
             f"{100 * (1 - args.image_share):.0f} % releases of the pipeline view "
             f"({100 * args.view_tau_share:.0f} % of them move τ, the others one δ thumb), "
             f"{100 * args.image_share:.0f} % image changes "
             f"(among the first {args.image_pool}); server as `make app` starts it"
             + (f", with {' '.join(args.server_option)}" if args.server_option else "")]
    if interrupted:
        lines.append("- **interrupted**: the figures are those measured until then")
    lines += ["", "| N | moves (releases / images) | failed sessions | release p50 / p95 / max (ms) "
                  "| δ release p50 / p95 | τ release p50 / p95 | image change p50 / p95 (ms) "
                  "| server CPU per move (ms) | server cores busy | RSS on page / peak (MB) | models loaded "
                  "| isolation checks / violations |",
              "|---:|---|---:|---|---|---|---|---:|---:|---|---:|---|"]
    for r in rounds:
        kinds = r["moves_by_kind"]
        iso = r["isolation"]
        lines.append(
            f"| {r['sessions']} | {r['moves']} ({kinds['release']} / {kinds['image']}) "
            f"| {r['failed_sessions']} | {pair(r['release'], ('median_ms', 'p95_ms', 'max_ms'))} "
            f"| {pair(r['release_delta'])} | {pair(r['release_tau'])} "
            f"| {pair(r['image_change'])} | {cell(r.get('server_cpu_ms_per_move'))} "
            f"| {cell(r.get('server_cpu_cores_busy'), '{:.2f}')} "
            f"| {cell(r.get('rendered_rss_mb'), '{:.0f}')} / {cell(r.get('peak_rss_mb'), '{:.0f}')} "
            f"| {cell(r.get('models_loaded'), '{}')} | {iso['checks']} / {iso['violations']} |")
    lines += ["", "## Targets", "",
              "| target | " + " | ".join(f"N = {r['sessions']}" for r in rounds) + " |",
              "|---|" + "---|" * len(rounds)]
    for name, figure, bound, text in TARGETS:
        row = []
        for r in rounds:
            value = figure(r, args)
            shown = cell(value, "{}" if isinstance(value, int) else "{:.1f}")
            row.append(shown if value is None else f"{shown} ({'met' if value <= bound(args) else '**missed**'})")
        lines.append(f"| {name} {text.format(bound(args))} | " + " | ".join(row) + " |")
    lines += ["", "## Notes", ""]
    for r in rounds:
        notes = [f"server ready in {cell(r.get('server_ready_s'))} s",
                 f"first render p50 / max {pair(r['first_render'], ('median_ms', 'max_ms'))} ms",
                 f"{r['releases_whole_app']} of {r['moves_by_kind']['release']} releases reran the whole app",
                 f"{cell(r.get('release_received_kb'), '{:.0f}')} kB received per release",
                 f"isolation checks not possible (an element expected but not sent): {r['isolation']['unverified']}",
                 f"this client used {cell(r.get('client_cpu_cores_busy'), '{:.2f}')} cores of the same machine "
                 f"during the moves; {cell(r.get('moves_per_s'))} moves/s"]
        if r.get("sessions_one_core_sustains"):
            notes.append(f"one core keeps up with about {r['sessions_one_core_sustains']} sessions at this pace")
        if r.get("watcher_overflows"):
            notes.append(f"the server's file watcher overflowed {r['watcher_overflows']} times")
        notes += [f"error: {e}" for e in r["errors"]]
        problems = [f"session {s['session']}: {p}" for s in r["per_session"]
                    for p in (s["failures"] + s["isolation_violations"])[:2]][:5]
        notes += problems
        lines.append(f"- N = {r['sessions']}: " + "; ".join(notes) + ".")
    lines += ["", "Server time: from sending the BackMsg to the `script_finished` that ends the move (the run, and "
              "the one a `st.rerun` puts in its place). Server CPU: `/proc` user + system time of the server over "
              "the moves / their number (holds on a busy machine, unlike the times). RSS: the server and its "
              "children, sampled every 0.5 s. Models loaded: runs of `load_model` / `load_imagenet` "
              "(`/_stcore/metrics`).", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30, 100], help="the N to run, in order")
    parser.add_argument("--moves", type=int, default=50, help="moves per session")
    parser.add_argument("--pace", type=float, default=PACE, help="mean seconds between a session's moves (±50%%)")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which the N sessions open the page")
    parser.add_argument("--image-share", type=float, default=0.15, help="share of moves that pick another image")
    parser.add_argument("--view-tau-share", type=float, default=0.15,
                        help="share of the releases that move the view's τ (the others move a δ thumb)")
    parser.add_argument("--image-pool", type=int, default=200, help="images picked among the first N of the split")
    parser.add_argument("--move-timeout", type=float, default=120.0, help="seconds a move may take before failing")
    parser.add_argument("--max-seconds", type=float, default=2400.0, help="hard limit on the whole test")
    parser.add_argument("--target-ms", type=float, default=100.0, help="p95 target of the server time per release")
    parser.add_argument("--max-rss-mb", type=float, default=2048.0, help="bound the peak server RSS is checked against")
    parser.add_argument("--no-media", action="store_true", help="do not fetch the pictures a browser would")
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `streamlit run` option, e.g. runner.postScriptGC=true (repeatable)")
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="serve",
                        help="streamlit: `python -m streamlit run app.py`; serve: `python -m spg_app.serve` (make app)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks" / "reports" / "load.md",
                        help="the Markdown report (overwritten)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure, per session, as JSON")
    parser.add_argument("--log-dir", type=Path, default=None, help="folder of the servers' logs (default: a temporary one)")
    args = parser.parse_args(argv)
    for n in args.sessions:
        if not 1 <= n <= MAX_SESSIONS:
            parser.error(f"--sessions {n}: N must be between 1 and {MAX_SESSIONS} (a loopback classroom test, "
                         "not a stress test: more sessions would measure this machine, not the app)")
    if not 1 <= args.moves <= MAX_MOVES:
        parser.error(f"--moves must be between 1 and {MAX_MOVES}")
    if args.pace < 0.01 or args.max_seconds <= 0 or args.move_timeout <= 0 or args.image_pool < 2:
        parser.error("--pace ≥ 0.01, --max-seconds > 0, --move-timeout > 0 and --image-pool ≥ 2 are required")
    if not 0 <= args.image_share <= 1 or not 0 <= args.view_tau_share <= 1:
        parser.error("--image-share and --view-tau-share lie in [0, 1]")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_load.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}")
    started_at = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine_text = machine()
    expected = sum(40 + args.ramp + args.moves * args.pace * 1.05 for _ in args.sessions)
    if expected > args.max_seconds:
        print(f"warning: these rounds need at least {expected:.0f} s, more than --max-seconds {args.max_seconds:.0f}")
    deadline = time.monotonic() + args.max_seconds
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench_load_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"server logs: {log_dir}")

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
                      f"busy, this client {r['client_cpu_cores_busy']}, {r['moves_per_s']} moves/s)")
            if any(e.startswith("time limit") for e in r["errors"]):
                break
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the server was stopped", file=sys.stderr)
    print()
    print_table(rounds, args.target_ms)
    summary = verdicts(rounds, args)
    print("targets: " + ", ".join(f"{k}: {v}" for k, v in summary.items()))
    if rounds:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(markdown_report(rounds, args, command, started_at, machine_text, interrupted),
                               encoding="utf-8")
        print(f"wrote {args.report}")
    if args.json:
        report = {"command": command, "date": started_at, "machine": machine_text,
                  "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "rounds": rounds, "targets": summary, "interrupted": interrupted}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if interrupted or any(r["errors"] for r in rounds):
        return 2
    return 1 if any(v == "missed" for v in summary.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
