"""What the app reads from a run folder besides its weights: the checkpoint's identity (cache
keys; its digest for the files stored beside it), the metrics written by ``evaluate --out``, the
τ they chose, the variant's name."""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

DEFAULT_TAU = 0.2  # CAM's box threshold (Zhou et al. 2016), the CLI's `localize --tau` default


def run_stamp(folder: str | Path) -> str:
    """Identity of a run's weights: a run replaced under the same name gets a new stamp, so
    nothing cached for the old checkpoint is shown for the new one."""
    stat = (Path(folder) / "checkpoint.pt").stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def checkpoint_digest(folder: str | Path) -> str:
    """SHA-256 of a run's checkpoint.pt: its weights' identity in files written next to it (a
    copy or a fresh clone keeps it, unlike :func:`run_stamp`); hashed once per stamp."""
    return _file_digest(str(Path(folder) / "checkpoint.pt"), run_stamp(folder))


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, stamp: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def paired_run(name: str | None) -> str | None:
    """The other half of a shipped SPG / SPG-plain pair by name (``synthetic-spg`` ↔
    ``synthetic-plain``, ``premise-fails-spg`` ↔ ``premise-fails-plain``, …); None for any other name."""
    for mine, other in (("-spg", "-plain"), ("-plain", "-spg")):
        if name and name.endswith(mine) and len(name) > len(mine):
            return name[: -len(mine)] + other
    return None


def run_metrics(folder: str | Path) -> dict | None:
    """metrics.json written next to a run by ``python -m spg_core evaluate --out RUN_DIR``, if any."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_tau(folder: str | Path) -> float:
    """τ chosen on the held-out split by the run's own evaluation, else CAM's 0.2."""
    metrics = run_metrics(folder) or {}
    # Shipped runs keep both protocols ({"paper": {...}, "wsolevaluation": {...}}); the paper
    # protocol's τ is the one chosen on the held-out split. `evaluate --out` writes a flat dict.
    tau = (metrics.get("paper") or {}).get("tau", metrics.get("tau"))
    return float(tau) if isinstance(tau, (int, float)) and 0 <= tau < 1 else DEFAULT_TAU


def variant_label(variant: str) -> str:
    return {"spg": "SPG", "plain": "SPG-plain"}.get(variant, f"SPG ({variant})")
