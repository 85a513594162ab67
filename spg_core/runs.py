"""Finding and loading trained runs: a RUN_DIR on disk or a run shipped with the package."""
from __future__ import annotations

from pathlib import Path

import torch

from spg_core.checkpoint import read_checkpoint
from spg_core.config import TrainConfig
from spg_core.models import build_model, saved_head_options

SHIPPED_DIR = Path(__file__).parent / "checkpoints"


def shipped_runs() -> list[str]:
    """Names of the runs embedded in the package (``--run synthetic-spg``)."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "checkpoint.pt").is_file())


def resolve_run(run: str | Path) -> Path:
    """A RUN_DIR path, a checkpoint file, or the name of a shipped run → the run's folder."""
    path = Path(run)
    if path.is_file() and path.suffix == ".pt":
        return path.parent
    if (path / "checkpoint.pt").is_file():
        return path
    if (SHIPPED_DIR / str(run) / "checkpoint.pt").is_file():
        return SHIPPED_DIR / str(run)
    raise FileNotFoundError(
        f"no run at {run!r}: expected a folder holding checkpoint.pt (written by `python -m spg_core "
        f"train --out RUN_DIR`) or one of the shipped runs {shipped_runs()}"
    )


def load_run(run: str | Path, device: str | torch.device = "cpu"):
    """Build the model of a run and load its weights (eval mode).

    Returns (model, config, info) where info holds class_names, history and the run folder.
    """
    folder = resolve_run(run)
    state = read_checkpoint(folder / "checkpoint.pt")
    config = TrainConfig.from_dict(state["config"])
    options = saved_head_options(config.model_options, state["model"])
    model = build_model(config.backbone, state["num_classes"], variant=config.variant, **options)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    class_names = state.get("class_names") or [str(i) for i in range(state["num_classes"])]
    info = {"folder": folder, "class_names": class_names, "history": state.get("history", []), "epoch": state["epoch"]}
    return model, config, info
