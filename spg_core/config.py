"""Typed training configuration, written next to every run as ``config.yaml``."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

# Training choices named by the command line, kept here (no torch) so that `--help` and the
# commands that only score maps start without importing torch.
# Learning-rate rules (see spg_core.models: which parameters train at 10×).
LR_GROUPS = ("paper", "wsolevaluation")
# Number of 3×3 convs of SPG-C before its 1×1 output (1: both reference codes; 2: paper §3.3).
SPG_C_DEPTHS = (1, 2)
# Input sizes in pixels a run may use: below 16 the backbones have no map left, above 2048 one
# batch no longer fits in memory.
IMAGE_SIZE_RANGE = (16, 2048)
# Whole-number options: (smallest, largest or None); an optional one may also be None (its default).
INT_LIMITS = {
    "image_size": IMAGE_SIZE_RANGE,
    "mask_size": (1, IMAGE_SIZE_RANGE[1]),
    "num_workers": (0, None),
    "epochs": (1, None),
    "batch_size": (1, None),
    "lr_step": (1, None),
    "seed": (0, None),
    "threads": (1, None),
    "max_steps_per_epoch": (1, None),
    "replay_images": (0, None),
}
# Real-valued options: (smallest, whether the smallest itself is allowed); all must be finite.
FLOAT_LIMITS = {
    "lr": (0.0, False),
    "new_layer_lr_multiplier": (0.0, False),
    "momentum": (0.0, True),
    "weight_decay": (0.0, True),
    "lr_gamma": (0.0, False),
    "c_loss_weight": (0.0, True),
}
# A stored run may describe 0 epochs (an imported checkpoint); a training needs INT_LIMITS' 1.
STORED_MINIMUM = {"epochs": 0}
OPTIONAL_FIELDS = {"data_root", "metadata_root", "weights", "mask_size", "lr_step", "threads", "max_steps_per_epoch"}
TEXT_FIELDS = {"format", "data_root", "metadata_root", "backbone", "variant", "weights", "preset", "bce_balance",
               "lr_groups", "device", "amp", "out"}
BOOL_FIELDS = {"nesterov", "channels_last", "sync_batchnorm"}
MAPPING_FIELDS = {"synthetic", "model_options"}


def int_range_text(name: str) -> str:
    """The valid range of a whole-number option in words, e.g. ``a whole number from 16 to 2048``."""
    low, high = INT_LIMITS[name]
    return f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"


def float_range_text(name: str) -> str:
    """The valid range of a real-valued option in words, e.g. ``a finite number > 0``."""
    low, inclusive = FLOAT_LIMITS[name]
    return f"a finite number {'>=' if inclusive else '>'} {low:g}"


def check_int(name: str, value, low: int | None = None) -> int:
    """``value`` of the whole-number option ``name`` if it lies in ``INT_LIMITS``, else a ValueError
    naming the value and the range.

    Args:
        name: the option (a key of ``INT_LIMITS``).
        value: its value.
        low: a smallest value other than ``INT_LIMITS``' own.

    Returns:
        ``value``.
    """
    low = INT_LIMITS[name][0] if low is None else low
    high = INT_LIMITS[name][1]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        range_text = int_range_text(name) if low == INT_LIMITS[name][0] else f"a whole number >= {low}"
        raise ValueError(f"{name}={value!r} is out of range: use {range_text}")
    return value


def check_float(name: str, value) -> float:
    """``value`` of the real-valued option ``name`` as a float if it lies in ``FLOAT_LIMITS``, else
    a ValueError naming the value and the range."""
    low, inclusive = FLOAT_LIMITS[name]
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and (number >= low if inclusive else number > low)):
        hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if isinstance(value, str) else ""
        raise ValueError(f"{name}={value!r} is out of range: use {float_range_text(name)}{hint}")
    return number


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

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Refuse a value of the wrong type or out of range with a ValueError naming it and the
        valid range (a config file's ``epochs: three`` fails here, not deep inside training)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in OPTIONAL_FIELDS:
                continue
            if f.name in INT_LIMITS:
                check_int(f.name, value, STORED_MINIMUM.get(f.name))
            elif f.name in FLOAT_LIMITS:
                setattr(self, f.name, check_float(f.name, value))
            elif f.name in TEXT_FIELDS and not isinstance(value, str):
                raise ValueError(f"{f.name}={value!r} must be text")
            elif f.name in BOOL_FIELDS and not isinstance(value, bool):
                raise ValueError(f"{f.name}={value!r} must be true or false")
            elif f.name in MAPPING_FIELDS and not isinstance(value, dict):
                raise ValueError(f"{f.name}={value!r} must be a mapping of option: value")

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
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path}{yaml_error_text(error)}; only plain YAML values are read "
                         f"(numbers, text, true/false, lists, mappings; no !!python tags)") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(data).__name__}")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ValueError(f"config file {path}: option names must be text, got {odd[0]!r}")
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


def out_folder(out: str | Path) -> Path:
    """``--out`` as a folder path, refused when it (or a folder above it) is a file.

    Args:
        out: the folder a command writes into (it need not exist yet).

    Returns:
        ``Path(out)``.

    Raises:
        ValueError: naming the file in the way.
    """
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"--out {out}: {path} is a file, not a folder; pass a folder path")
            break
    return out


def yaml_error_text(error: yaml.YAMLError) -> str:
    """A YAML parse or construction error on one line.

    Args:
        error: what ``yaml.safe_load`` raised.

    Returns:
        ``:LINE: problem`` (``: problem`` when the error has no position).
    """
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    return f"{':' + str(mark.line + 1) if mark is not None else ''}: {problem}"


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
