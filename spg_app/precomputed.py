"""A run's precomputed evaluation, ``RUN_DIR/evaluation.json.gz``: the results the Dataset and
Failure triage pages open with, computed once by the pages' own functions
(``spg_app.computations``) so that those pages show results on the first visit.

The file (gzip-compressed JSON: no pickle, nothing in it runs) holds the SHA-256 of the
checkpoint it was computed with, the date, and one entry per result: its **settings** (what the
page's result depends on besides the run: the dataset key, N, protocol, τ, map stage, τ grid;
or, for seed statistics, the stage and its (δ_l, δ_h)) and the **result** as the page reads it
(metrics, per-image rows and τ curves; or per-image seed statistics). A page uses an entry only
when the checkpoint's digest and every setting match exactly; otherwise it says in one line why
the file was not used.

What is stored (:func:`page_defaults`): the run's own test split, N = the pages' default, the
τ values the sidebar opens with (this run's and each shipped run's, from their metrics.json),
the attention map, both protocols (the Dataset page opens on wsolevaluation; triage and the
explore page's worst-IoU ranking use the paper protocol), and Mask-A's statistics at the run's
preset (triage's fallback flags).
``python scripts/ship_run.py --evaluation-only NAME|RUN_DIR`` (re)writes it.
"""
from __future__ import annotations

import functools
import gzip
import json
import os
import re
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from spg_app.computations import CAM_CURVE_INTERVAL, evaluate_first, seed_result, seed_statistics_first
from spg_app.datasets import DEFAULT_COUNT
from spg_app.runs import checkpoint_digest, default_tau
from spg_core.guidance import PRESETS, guided_stage
from spg_core.metrics import Curve
from spg_core.runs import SHIPPED_DIR, shipped_runs

EVALUATION_FILE = "evaluation.json.gz"
FORMAT = 1
# The most bytes the file may inflate to: the shipped runs' inflate to 0.6 MB (200 images), so
# this holds ~10000 images, and a 2 MB file that would inflate to gigabytes stops here.
MAX_INFLATED_BYTES = 32 * 2**20
# How write_stored begins the file: the checkpoint's digest is read from the first bytes, so a
# stale file is set aside without inflating the rest.
HEAD = re.compile(rb'^\{"format": (\d+), "checkpoint_sha256": "([0-9a-f]{64})"')
PAGE_PROTOCOLS = ("paper", "wsolevaluation")  # triage and the worst-IoU ranking; the Dataset page
SEED_STAGE = "mask_a"  # triage's "Mask-A fallback" filter


# ----------------------------------------------------------------------------- settings
def evaluation_settings(data_key: str, n: int, protocol: str, tau: float, map_stage: str = "attention") -> dict:
    """What an evaluation of the pages depends on besides the run."""
    return {"kind": "evaluate", "data": data_key, "n": int(n), "protocol": protocol, "tau": round(float(tau), 2),
            "map_stage": map_stage, "cam_curve_interval": CAM_CURVE_INTERVAL}


def seed_settings(data_key: str, n: int, stage: str, lows, highs) -> dict:
    """What the seed statistics of the pages depend on besides the run."""
    return {"kind": "seeds", "data": data_key, "n": int(n), "stage": stage,
            "lows": tuple(round(float(v), 4) for v in lows), "highs": tuple(round(float(v), 4) for v in highs)}


def settings_key(settings) -> str:
    """``settings`` (or one value of them) as canonical JSON text: the same before and after a
    trip through the file (a tuple comes back a list)."""
    return json.dumps(settings, sort_keys=True, default=_plain)


def checked_settings(settings: dict) -> dict:
    """Stored ``settings`` if they are as this app builds them, else ValueError (what a page
    then reads from them is of the types it expects)."""
    kind = settings.get("kind")
    if kind == "evaluate":
        rebuilt = evaluation_settings(str(settings["data"]), settings["n"], settings["protocol"], settings["tau"],
                                      settings["map_stage"])
    elif kind == "seeds":
        rebuilt = seed_settings(str(settings["data"]), settings["n"], settings["stage"], settings["lows"],
                                settings["highs"])
    else:
        raise ValueError(f"an entry of unknown kind {kind!r}")
    if settings_key(rebuilt) != settings_key(settings):
        raise ValueError(f"settings {settings_key(settings)[:80]}… are not as this app writes them")
    return settings


def differences(stored: dict, settings: dict) -> dict:
    """The stored settings that differ from ``settings``."""
    return {k: v for k, v in stored.items() if settings_key(v) != settings_key(settings.get(k))}


def page_taus(folder) -> list[float]:
    """The τ values the sidebar opens with: the run's own default and every shipped run's (the
    sidebar keeps τ when another run is chosen, and the Dataset page compares runs at it)."""
    runs = [folder, *(SHIPPED_DIR / name for name in shipped_runs())]
    return sorted({round(default_tau(run), 2) for run in runs})


def page_defaults(folder, config, data_key: str, count: int) -> list[dict]:
    """The settings the pages open with on a run's own data: ``count`` images of it (the
    pages' default N, or fewer if the split is smaller), each of :func:`page_taus`, both
    protocols, the attention map; Mask-A's statistics at the run's preset."""
    n = min(DEFAULT_COUNT, int(count))
    thresholds = PRESETS[config.preset].stage(SEED_STAGE)
    return [*(evaluation_settings(data_key, n, protocol, tau) for protocol in PAGE_PROTOCOLS
              for tau in page_taus(folder)),
            seed_settings(data_key, n, SEED_STAGE, [thresholds.delta_low], [thresholds.delta_high])]


# ----------------------------------------------------------------------------- results <-> JSON
def _plain(value):
    """JSON for what ``json`` does not know: numpy scalars and arrays (NaN stays NaN)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be stored in {EVALUATION_FILE}")


def encode_result(kind: str, result: dict) -> dict:
    """A page's result as plain JSON data (curves as ``Curve.to_dict``, arrays as lists)."""
    if kind == "evaluate":
        return {"metrics": result["metrics"], "rows": result["rows"], "tau": result["tau"], "n": result["n"],
                "protocol": result["protocol"],
                "curves": {name: curve.to_dict() for name, curve in result["curves"].items()}}
    return {"indices": result["indices"], "per_image": {k: v.tolist() for k, v in result["per_image"].items()},
            "lows": list(result["lows"]), "highs": list(result["highs"]), "stage": result["stage"],
            "mask_size": result["mask_size"]}


def _curve(data: dict) -> Curve:
    fields = ("name", "split", "iou_threshold", "taus", "values")
    return Curve(data["name"], data["split"], np.asarray(data["taus"], dtype=np.float64),
                 np.asarray(data["values"], dtype=np.float64), data["iou_threshold"],
                 {k: v for k, v in data.items() if k not in fields})


def decode_result(kind: str, data: dict) -> dict:
    """The result a page reads, from :func:`encode_result`'s data."""
    if kind == "evaluate":
        return {"metrics": data["metrics"], "rows": data["rows"], "tau": data["tau"], "n": data["n"],
                "protocol": data["protocol"], "curves": {name: _curve(c) for name, c in data["curves"].items()}}
    per_image = {k: np.asarray(v, dtype=np.float64) for k, v in data["per_image"].items()}
    return seed_result(data["indices"], per_image, data["lows"], data["highs"], data["stage"], data["mask_size"])


# ----------------------------------------------------------------------------- the file
def write_stored(folder, digest: str, entries: list[tuple[dict, dict]], command: str | None = None) -> Path:
    """Write ``entries`` [(settings, result)] computed with the checkpoint of SHA-256 ``digest``
    into ``folder/evaluation.json.gz`` (atomically)."""
    stored = {"format": FORMAT, "checkpoint_sha256": digest, "command": command,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "entries": [{"settings": settings, "result": encode_result(settings["kind"], result)}
                          for settings, result in entries]}
    path = Path(folder) / EVALUATION_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(gzip.compress(json.dumps(stored, default=_plain).encode("utf-8"), mtime=0))
    os.replace(partial, path)
    return path


def read_stored(folder) -> dict | None:
    """The parsed file of a run folder ({"created", "checkpoint_sha256", "entries": {settings_key:
    (settings, result)}}), None without one; ValueError when it cannot be read (remembered per
    version of the file: a page drawn again does not read it again)."""
    path = Path(folder) / EVALUATION_FILE
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    outcome = _read(str(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(outcome, str):
        raise ValueError(outcome)
    return outcome


def inflate(path, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """The decompressed content of a gzip file, inflated as a stream and refused past ``limit`` bytes
    (no more memory than that is spent finding out).

    Args:
        path: the ``.gz`` file.
        limit: the most bytes it may inflate to.

    Returns:
        The inflated bytes.

    Raises:
        ValueError: naming the limit; OSError / EOFError / zlib.error: not gzip, or truncated.
    """
    with gzip.open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"it inflates to more than {limit // 2**20} MB, the limit")
    return data


@functools.lru_cache(maxsize=16)  # per file version; the results are shared read-only, like the result cache's
def _read(path: str, mtime_ns: int, size: int) -> dict | str:
    """The parsed file, or why it cannot be read (a text: failures are remembered too)."""
    try:
        stored = json.loads(inflate(path))
        if stored.get("format") != FORMAT:
            raise ValueError(f"format {stored.get('format')!r}, this app reads {FORMAT}")
        entries = {}
        for entry in stored["entries"]:
            settings = checked_settings(entry["settings"])
            result = decode_result(settings["kind"], entry["result"])
            result["precomputed"] = stored["created"]
            entries[settings_key(settings)] = (settings, result)
        return {"created": stored["created"], "checkpoint_sha256": stored["checkpoint_sha256"], "entries": entries}
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"{EVALUATION_FILE} cannot be read ({reason})"


@functools.lru_cache(maxsize=16)
def _named_digest(path: str, mtime_ns: int, size: int) -> str | None:
    """The checkpoint digest the file's first bytes name, when it begins as :func:`write_stored`
    writes it; else None (the whole file is then read to find out)."""
    try:
        with gzip.open(path, "rb") as handle:
            match = HEAD.match(handle.read(256))
    except (OSError, EOFError, zlib.error):
        return None
    return match.group(2).decode("ascii") if match else None


def _usable(folder) -> tuple[dict | None, str | None]:
    """(the stored file, None) when it is for this checkpoint; else (None, why not; None if no file).
    A file naming another checkpoint in its first bytes is not inflated."""
    path = Path(folder) / EVALUATION_FILE
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    stale = f"{EVALUATION_FILE} was computed with another checkpoint.pt: ignored as stale."
    digest = checkpoint_digest(folder)
    version = (str(path), stat.st_mtime_ns, stat.st_size)
    if _named_digest(*version) not in (None, digest):
        return None, stale
    stored = _read(*version)
    if isinstance(stored, str):
        return None, f"{stored}: ignored; rewrite it with python scripts/ship_run.py --evaluation-only RUN_DIR."
    if stored["checkpoint_sha256"] != digest:
        return None, stale
    return stored, None


def stored_result(folder, settings: dict) -> dict | None:
    """The precomputed result for ``settings`` if the run folder's file holds one for its
    current checkpoint, else None."""
    stored, _ = _usable(folder)
    if stored is None:
        return None
    entry = stored["entries"].get(settings_key(settings))
    return None if entry is None else entry[1]


def stored_note(folder, settings: dict, shown: dict | None) -> str | None:
    """One line for the page: when the ``shown`` result was precomputed; or, if nothing is
    shown, why the run's file does not answer for ``settings``; or that it is stale."""
    if shown is not None and shown.get("precomputed"):
        return (f"Precomputed on {shown['precomputed'][:10]} ({EVALUATION_FILE}): {describe(settings)}. "
                "Another N or setting is computed with the button.")
    stored, problem = _usable(folder)
    if problem or stored is None or shown is not None:
        return problem
    same_kind = [s for s, _ in stored["entries"].values() if s["kind"] == settings["kind"]]
    if not same_kind:
        return None
    candidates = [differences(s, settings) for s in same_kind]
    fewest = min(len(c) for c in candidates)
    nearest = dict.fromkeys(describe(c) for c in candidates if len(c) == fewest)
    return f"Precomputed ({EVALUATION_FILE}) for {' or '.join(nearest)}, not these settings."


def describe(settings: dict) -> str:
    """Settings in words: "200 images · paper protocol · τ = 0.31 · attention map"."""
    words = {
        "data": data_words,
        "n": lambda v: f"{v} images", "protocol": lambda v: f"{v} protocol", "tau": lambda v: f"τ = {v:.2f}",
        "map_stage": lambda v: f"{v} map",
        "stage": lambda v: f"{guided_stage(v).title} seeds", "lows": lambda v: f"δ_l = {', '.join(f'{x:g}' for x in v)}",
        "highs": lambda v: f"δ_h = {', '.join(f'{x:g}' for x in v)}",
    }
    return " · ".join(words[k](v) for k, v in settings.items() if k in words)


def data_words(data_key: str) -> str:
    """A dataset key (``DataSettings.key``) in words: "synthetic · test"."""
    try:
        values = json.loads(data_key)
        return f"{values['format']} · {values['split']}"
    except (ValueError, TypeError, KeyError):
        return data_key


# ----------------------------------------------------------------------------- writing a run's file
def write_evaluation(folder, log: Callable[[str], None] = print, command: str | None = None) -> Path:
    """Compute :func:`page_defaults` for a run folder with the pages' functions and write its
    evaluation.json.gz; ``log`` receives progress lines."""
    from spg_core.data.settings import DataSettings
    from spg_core.runs import load_run, resolve_run

    folder = resolve_run(folder)
    digest = checkpoint_digest(folder)
    model, config, _ = load_run(folder, "cpu")
    data = DataSettings.from_flags(config)
    data_key = data.key("test")
    dataset = data.dataset("test")
    entries = []
    for settings in page_defaults(folder, config, data_key, len(dataset)):
        title = describe({k: v for k, v in settings.items() if k != "data"})
        report = _progress(log, f"{folder.name}: {title}")
        if settings["kind"] == "evaluate":
            result = evaluate_first(model, dataset, settings["n"], settings["protocol"], settings["tau"],
                                    settings["map_stage"], report)
        else:
            result = seed_statistics_first(model, config, dataset, settings["n"], settings["stage"],
                                           settings["lows"], settings["highs"], report)
        entries.append((settings, result))
    if checkpoint_digest(folder) != digest:
        raise RuntimeError(f"{folder / 'checkpoint.pt'} changed while it was evaluated; nothing written")
    path = write_stored(folder, digest, entries, command)
    log(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return path


def _progress(log: Callable[[str], None], text: str) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log(f"{text}: {done}/{total} images")
    return update
