"""Finding and loading trained runs: a RUN_DIR on disk or a run shipped with the package."""
from __future__ import annotations

from pathlib import Path

import torch

from spg_core.checkpoint import CheckpointError, read_checkpoint, run_fields
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
    path = folder / "checkpoint.pt"
    state = read_checkpoint(path)
    saved, num_classes = run_fields(state, path)
    try:
        config = TrainConfig.from_dict(saved)
        options = saved_head_options(config.model_options, state["model"])
        model = build_model(config.backbone, num_classes, variant=config.variant, **options)
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{path}: its training config does not describe a model ({error}); retrain the run "
                              f"or restore the file") from None
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = (lines[1:] or lines or ["the weights do not match"])[0][:200]
        raise CheckpointError(f"{path}: its weights do not fit the {config.backbone} {config.variant} model of "
                              f"{num_classes} classes its config and num_classes describe ({detail}); retrain the run "
                              f"or restore the file") from None
    model.to(device).eval()
    class_names = state.get("class_names") or [str(i) for i in range(num_classes)]
    if not isinstance(class_names, list) or len(class_names) != num_classes:
        raise CheckpointError(f"{path}: it names {len(class_names) if isinstance(class_names, list) else 'no list of'} "
                              f"classes but has num_classes={num_classes}; retrain the run or restore the file")
    info = {"folder": folder, "class_names": [str(name) for name in class_names], "history": state.get("history", []),
            "epoch": state.get("epoch", 0)}
    return model, config, info
