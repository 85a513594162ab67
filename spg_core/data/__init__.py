"""Datasets for weakly-supervised localisation: one loader per on-disk format, one sample type.

``build_dataset(format, split, data_root=..., metadata_root=..., image_size=224, train=False)``
with format in ``FORMATS``: "wsol" (wsolevaluation metadata), "cub" (CUB-200-2011 native),
"ilsvrc" (ILSVRC-2012 native: XML or Kaggle CSV), "folder" (your own images + a CSV), "voc" /
"coco" / "yolo" (detection labels, one class per image: :mod:`spg_core.data.detection`) and
"synthetic" (the teaching benchmark, generated on the fly). Box convention everywhere: 0-based
inclusive pixel coordinates (x0, y0, x1, y1); see transforms.py. Score maps saved as ``.npy``
are read by ``spg_core.data.arrays.read_map``, which checks the header before allocating.
"""
from spg_core.data.dataset import (  # noqa: F401
    FORMATS,
    IGNORE,
    SPLITS,
    DataWarning,
    Record,
    Sample,
    WSOLDataset,
    build_dataset,
    collate,
    register_format,
)
from spg_core.data.images import BadImageError, load_image  # noqa: F401
from spg_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize  # noqa: F401

# Importing the format modules registers them.
from spg_core.data import cub, detection, folder, ilsvrc, wsol  # noqa: F401,E402
from spg_core.data.synthetic import (  # noqa: F401,E402
    SyntheticConfig,
    add_synthetic_arguments,
    generate,
    synthetic_config_from_args,
    write_wsol,
)

__all__ = [
    "build_dataset",
    "collate",
    "Sample",
    "Record",
    "WSOLDataset",
    "SyntheticConfig",
    "write_wsol",
    "denormalize",
]
