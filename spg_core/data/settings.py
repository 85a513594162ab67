"""Data settings: which images a run reads (format, roots, input size, generator options) and the
datasets they make.

One ``DataSettings`` is built from the command line's data flags (``from_args``), from a run's
saved config (``from_config``), or from the app's widgets (``from_flags``, same names as the
flags); ``dataset(split)`` builds the split. The CLI, the trainer, the evaluator, the app and the
scripts all build their datasets here.

The rule for flags not given: a run's own setting when the run uses the same format, then the
defaults (96 px for the synthetic benchmark, 224 px for real data).

``mask_root`` (``--mask-root``, the wsol format only) is the folder the mask paths of
localization.txt are relative to. It is a reading option, not part of a run's config: when it is
not given the wsol loader looks for the masks itself (see :mod:`spg_core.data.wsol`), which finds
them in every layout ``python -m spg_core synth`` writes.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

from spg_core.data import FORMATS as REGISTERED_FORMATS
from spg_core.data import build_dataset
from spg_core.data.synthetic import SYNTHETIC_FLAGS, SyntheticConfig, add_synthetic_arguments

# The registered formats, the default (the generated teaching benchmark) first.
FORMATS = ("synthetic", *sorted(set(REGISTERED_FORMATS) - {"synthetic"}))
DATA_FLAGS = ("format", "data_root", "metadata_root", "mask_root", "image_size", *SYNTHETIC_FLAGS)
DEFAULT_IMAGE_SIZES = {"synthetic": 96}
REAL_IMAGE_SIZE = 224


def add_data_arguments(parser: argparse.ArgumentParser, mask_root: bool = True) -> None:
    """The data flags of every subcommand that reads a dataset (None = not given).
    ``mask_root=False`` leaves out ``--mask-root`` (train: a run's config does not keep it)."""
    group = parser.add_argument_group("data")
    group.add_argument("--format", choices=FORMATS, default=None,
                       help="dataset format (default: the run's own format, else synthetic)")
    group.add_argument("--data-root", default=None, help="dataset folder (images, native annotation files)")
    group.add_argument("--metadata-root", default=None,
                       help="wsolevaluation metadata folder holding <split>/{image_ids,class_labels,...}.txt")
    if mask_root:
        group.add_argument("--mask-root", default=None,
                           help="--format wsol: the folder the mask paths in <split>/localization.txt are relative "
                                "to (default: the first that holds them of --data-root, <data-root>/masks, "
                                "a masks/ folder beside an images/ data root, the image folder)")
    group.add_argument("--image-size", type=int, default=None,
                       help="network input size in pixels (default: the run's, else 96 synthetic / 224 real data)")
    add_synthetic_arguments(parser)
    # None = "not given", so a run's own generator settings can fill what the user did not set.
    parser.set_defaults(**{flag: None for flag in SYNTHETIC_FLAGS})


def _given(value):
    """None for a flag the user left empty (None or blank text)."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


@dataclass(frozen=True)
class DataSettings:
    format: str = "synthetic"
    data_root: str | None = None
    metadata_root: str | None = None
    image_size: int = DEFAULT_IMAGE_SIZES["synthetic"]
    synthetic: dict = field(default_factory=dict)  # SyntheticConfig.options() for the synthetic format
    mask_root: str | None = None  # wsol only: where the mask paths point (None = the loader finds them)

    @classmethod
    def from_flags(cls, fallback=None, **flags) -> DataSettings:
        """Settings from flag values named as in ``DATA_FLAGS`` (missing, None or blank = not
        given). ``fallback`` (a run's TrainConfig, or DataSettings) fills what is not given when
        it uses the same format."""
        unknown = sorted(set(flags) - set(DATA_FLAGS))
        if unknown:
            raise TypeError(f"unknown data flag(s) {unknown}; use {DATA_FLAGS}")
        given = {name: _given(flags.get(name)) for name in DATA_FLAGS}
        fmt = given["format"] or (fallback.format if fallback is not None else "synthetic")
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
        same = fallback is not None and fallback.format == fmt
        image_size = given["image_size"]
        if image_size is None:
            image_size = (fallback.image_size if fallback is not None
                          else DEFAULT_IMAGE_SIZES.get(fmt, REAL_IMAGE_SIZE))
        else:  # 0 or a negative size is refused, never replaced by a default
            from spg_core.config import check_int

            image_size = check_int("image_size", image_size)
        mask_root = given["mask_root"] or (getattr(fallback, "mask_root", None) if same else None)
        if mask_root is not None and fmt != "wsol":
            raise ValueError(f"mask_root (--mask-root) applies to format 'wsol' only, not {fmt!r}")
        synthetic = {}
        if fmt == "synthetic":
            synthetic = SyntheticConfig().options()
            if same:
                synthetic.update({k: v for k, v in fallback.synthetic.items() if k != "image_size"})
            synthetic.update({option: given[flag] for flag, option in SYNTHETIC_FLAGS.items() if given[flag] is not None})
            synthetic = SyntheticConfig(image_size=image_size, **synthetic).options()  # validates
        return cls(format=fmt, data_root=given["data_root"] or (fallback.data_root if same else None),
                   metadata_root=given["metadata_root"] or (fallback.metadata_root if same else None),
                   image_size=int(image_size), synthetic=synthetic,
                   mask_root=None if mask_root is None else str(mask_root))

    @classmethod
    def from_args(cls, args: argparse.Namespace, fallback=None) -> DataSettings:
        """Settings from parsed ``add_data_arguments`` flags."""
        return cls.from_flags(fallback, **{name: getattr(args, name, None) for name in DATA_FLAGS})

    @classmethod
    def from_config(cls, config) -> DataSettings:
        """The data a run was trained on (its TrainConfig)."""
        synthetic = {k: v for k, v in config.synthetic.items() if k != "image_size"} if config.format == "synthetic" else {}
        return cls(format=config.format, data_root=config.data_root, metadata_root=config.metadata_root,
                   image_size=int(config.image_size), synthetic=synthetic)

    def with_synthetic(self, **options) -> DataSettings:
        """The same data with some generator options changed (e.g. an unseen part position)."""
        if self.format != "synthetic":
            raise ValueError(f"generator options {sorted(options)} apply to format 'synthetic', not {self.format!r}")
        merged = {**self.synthetic, **options}
        SyntheticConfig(image_size=self.image_size, **{**SyntheticConfig().options(), **merged})  # validates
        return DataSettings(self.format, self.data_root, self.metadata_root, self.image_size, merged, self.mask_root)

    def config_fields(self) -> dict:
        """The data fields of a TrainConfig (``mask_root`` is not one: see the module docstring)."""
        return {"format": self.format, "data_root": self.data_root, "metadata_root": self.metadata_root,
                "image_size": self.image_size, "synthetic": dict(self.synthetic)}

    def key(self, split: str) -> str:
        """A stable text key for (settings, split): what caches are keyed on; ``from_key`` reads it.
        ``mask_root`` appears only when set, so keys of settings without it are as before."""
        extra = {} if self.mask_root is None else {"mask_root": self.mask_root}
        return json.dumps({"split": split, **self.config_fields(), **extra}, sort_keys=True, default=str)

    @classmethod
    def from_key(cls, key: str) -> tuple[DataSettings, str]:
        values = json.loads(key)
        split = values.pop("split")
        return cls(**values), split

    def dataset(self, split: str, train: bool = False, need_images: bool = True):
        """The split as a WSOL dataset (``train=True``: with the training augmentation;
        ``need_images=False``: for its annotations only, the images may be absent)."""
        options = dict(self.synthetic)
        if self.mask_root is not None:
            options["mask_root"] = self.mask_root
        return build_dataset(self.format, split, data_root=self.data_root, metadata_root=self.metadata_root,
                             image_size=self.image_size, train=train, need_images=need_images, **options)
