"""Tiny runs for the app's tests: a few-thousand-parameter model on a 64 px, 3-class benchmark,
written in the checkpoint format of ``python -m spg_core train`` (no training: the app's
behaviour, not the model's quality, is under test)."""
from __future__ import annotations

from pathlib import Path

import torch

from spg_core.config import TrainConfig, save_config
from spg_core.data.synthetic import class_names
from spg_core.models import build_model

NUM_CLASSES = 3
IMAGES = 12
WIDTHS = (4, 8, 16)


def write_tiny_run(folder: Path, variant: str = "spg", seed: int = 0, num_val: int = 0,
                   num_classes: int = NUM_CLASSES) -> Path:
    """A run folder with an untrained tiny model; ``num_val``: images of its validation split."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = TrainConfig(format="synthetic", image_size=64, backbone="tiny", variant=variant,
                         model_options={"widths": list(WIDTHS)}, preset="paper", out=str(folder),
                         synthetic={"num_classes": num_classes, "num_train": 0, "num_val": num_val, "num_test": IMAGES,
                                    "part_position": "end", "clutter": 0.2, "seed": 0})
    model = build_model("tiny", num_classes, variant=variant, widths=WIDTHS)
    state = {"model": model.state_dict(), "epoch": 1, "config": config.to_dict(), "num_classes": num_classes,
             "class_names": class_names(num_classes), "history": []}
    torch.save(state, folder / "checkpoint.pt")
    save_config(config, folder / "config.yaml")
    return folder
