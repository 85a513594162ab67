"""Typed training configuration, written next to every run as ``config.yaml``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

# Training choices named by the command line, kept here (no torch) so that `--help` and the
# commands that only score maps start without importing torch.
# Learning-rate rules (see spg_core.models: which parameters train at 10×).
LR_GROUPS = ("paper", "wsolevaluation")
# Number of 3×3 convs of SPG-C before its 1×1 output (1: both reference codes; 2: paper §3.3).
SPG_C_DEPTHS = (1, 2)


@dataclass
class TrainConfig:
    # data
    format: str = "synthetic"
    data_root: str | None = None
    metadata_root: str | None = None
    synthetic: dict = field(default_factory=dict)  # generator options for --format synthetic
    image_size: int = 224
    num_workers: int = 0
    # model
    backbone: str = "inception_v3"
    variant: str = "spg"
    model_options: dict = field(default_factory=dict)
    weights: str | None = None
    # guidance (paper §3.2)
    preset: str = "paper"
    mask_size: int | None = None  # seed-mask resolution; None = image size (the authors used 224 at 224)
    # "auto": CE only until the classifier has learned (train.GuidanceSwitch); or a number of epochs
    guidance_warmup: int | str = "auto"
    bce_balance: str = "pixel"  # losses.BCE_BALANCES: "pixel" (reference codes) or "class"
    c_loss_weight: float = 1.0  # weight of SPG-C's BCE against Mask-fuse in the total (1: the paper)
    # optimisation (paper §3.3)
    epochs: int = 10
    batch_size: int = 30
    lr: float = 0.001
    new_layer_lr_multiplier: float = 10.0
    # which parameters train at lr × new_layer_lr_multiplier (models.LR_GROUPS): "paper" (the added
    # layers, §3.3) or "wsolevaluation" (its main.py's name patterns: vgg16, inception_v3, resnet50)
    lr_groups: str = "paper"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    lr_step: int | None = None  # epochs between ÷10 decays; None = max(1, epochs // 3)
    lr_gamma: float = 0.1
    # runtime
    device: str = "auto"
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: bool = True
    seed: int = 0
    out: str = "runs/spg"
    threads: int | None = None  # torch CPU threads; 1 is fastest on a busy 2-core machine
    max_steps_per_epoch: int | None = None  # cap for smoke runs
    sync_batchnorm: bool = False
    # training replay (spg_core/replay.py): stage maps of this many fixed validation images, recorded
    # every epoch into RUN_DIR/replay.npz; 0 = off
    replay_images: int = 16

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; valid options are {sorted(known)}")
        return cls(**values)

    def resolved_lr_step(self) -> int:
        return self.lr_step if self.lr_step else max(1, self.epochs // 3)

    def resolved_mask_size(self) -> int:
        return self.mask_size or self.image_size


def load_config_file(path: str | Path, _depth: int = 0) -> dict:
    """Read a YAML or JSON config file into a dict of TrainConfig fields (kebab-case keys allowed).
    A ``base: FILE`` key starts from another config file (path relative to this one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(data).__name__}")
    values = {k.replace("-", "_"): v for k, v in data.items()}
    base = values.pop("base", None)
    if base is None:
        return values
    # `base: other.yaml` (relative to this file): start from that config, then apply these keys;
    # a `synthetic` mapping is merged key by key, so a variant states only what it changes.
    if _depth >= 8:
        raise ValueError(f"config file {path}: `base:` chains deeper than 8 files (a cycle?)")
    merged = load_config_file(path.parent / str(base), _depth + 1)
    if isinstance(values.get("synthetic"), dict) and isinstance(merged.get("synthetic"), dict):
        values["synthetic"] = {**merged["synthetic"], **values["synthetic"]}
    return {**merged, **values}


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
