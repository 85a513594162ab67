"""Importing SPG checkpoints written by other codebases into a run folder of this project.

Two layouts are read (``SOURCES``):

``"wsolevaluation"``
    clovaai/wsolevaluation's SPG models (``wsol/vgg.py``, ``wsol/resnet.py``, ``wsol/inception.py``
    with ``architecture_type='spg'``), saved by its ``main.py`` as a dict with ``architecture``,
    ``epoch``, ``optimizer`` and ``state_dict``. The backbone is told by its keys (and checked against
    ``architecture``), the class count by the A4 weight's shape. ``large_feature_map`` is not stored
    in the file: it is the caller's (default False, wsolevaluation's default).
``"authors"``
    the authors' Inception-v3 SPG (xiaomengyc/SPG, ``models/google/inception3_spg.py``), saved by
    its ``exper/train_frame.py`` as a dict with ``state_dict`` from a ``DataParallel`` model (keys
    under ``module.``). Its layout is this project's ``inception_v3`` with ``large_feature_map=True``
    (no max-pool after Mixed_5d).

Both architectures are this project's SPG models (``spg_core.models``): the weights are renamed
(:func:`map_state_dict`), never changed, and load with a strict ``load_state_dict``. SPG-C reads A3
directly in both codes, so the run is written with ``c_input_norm: false``. docs/interop.md has the
key mapping in words and what the tests verify.

Files are read with ``torch.load(weights_only=True)``: a file pickling anything but tensors and plain
values is refused, never executed. Importing this module loads no torch; the functions do.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

__all__ = [
    "SOURCES",
    "read_foreign_checkpoint",
    "detect_backbone",
    "import_options",
    "key_rules",
    "map_state_dict",
    "build_imported_model",
    "import_checkpoint",
]

SOURCES = ("wsolevaluation", "authors")
_OWNERS = {"wsolevaluation": "wsolevaluation's", "authors": "the authors'"}  # for messages

# A key present only in one backbone's SPG layout, per source: how the backbone is told.
_SIGNATURES = {
    "wsolevaluation": {"vgg16": "SPG_A_1.0.weight", "resnet50": "SPG_A1.0.conv1.weight",
                       "inception_v3": "SPG_A3_1b.0.weight"},
    "authors": {"inception_v3": "classier_1.weight"},
}
# The A4 weight (C × in × 1 × 1) per source and backbone: the class count is its first dimension.
_A4_KEYS = {
    ("wsolevaluation", "vgg16"): "SPG_A_4.weight",
    ("wsolevaluation", "resnet50"): "SPG_A4.weight",
    ("wsolevaluation", "inception_v3"): "SPG_A4.weight",
    ("authors", "inception_v3"): "classier_1.weight",
}
# Preset of the seed thresholds each source trained with (spg_core.guidance.PRESETS).
_PRESETS = {"wsolevaluation": "wsolevaluation", "authors": "authors"}
# The input side both codes test CUB at (wsolevaluation's crop_size; the authors' 224 upsampling).
_IMAGE_SIZE = 224
# Placeholders of rule targets that depend on the built model: A3's first and second conv.
_A3_FIRST, _A3_SECOND = "<a3 conv 1>", "<a3 conv 2>"
_B_TOP_CONV = ("spg_b.b1_top.0.0.", "spg_b.b2_top.0.0.")  # the shared top block sits under both names
_B_TOP_OUT = ("spg_b.b1_top.1.", "spg_b.b2_top.1.")

# wsolevaluation's head names, the same on its three backbones.
_WSOL_HEADS = (
    ("SPG_B_1a.0.", "spg_b.b1_entry.0."),
    ("SPG_B_2a.0.", "spg_b.b2_entry.0."),
    ("SPG_B_shared.0.", _B_TOP_CONV),
    ("SPG_B_shared.2.", _B_TOP_OUT),
    ("SPG_C.0.", "spg_c.0.0."),
    ("SPG_C.2.", "spg_c.1."),
)
# (source prefix, target prefix or prefixes), first match wins; prefixes end at a module boundary.
_RULES = {
    ("wsolevaluation", "vgg16"): (
        ("features.", "backbone.features."),  # conv1-conv3 keep torchvision's indices
        *((f"SPG_A_1.{i}.", f"backbone.features.{17 + i}.") for i in (0, 2, 4)),  # conv4 block
        *((f"SPG_A_2.{i}.", f"backbone.features.{24 + i}.") for i in (0, 2, 4)),  # conv5 block
        ("SPG_A_3.0.", _A3_FIRST), ("SPG_A_3.2.", _A3_SECOND),
        ("SPG_A_4.", "spg_a4."),
        *_WSOL_HEADS,
    ),
    ("wsolevaluation", "resnet50"): (
        *((f"{name}.", f"backbone.{name}.") for name in ("conv1", "bn1", "layer1", "layer2", "layer4")),
        ("SPG_A1.0.", "backbone.layer3.0."),  # layer3's first block
        *((f"SPG_A2.{i}.", f"backbone.layer3.{i + 1}.") for i in range(5)),  # its other five
        ("SPG_A4.", "spg_a4."),
        *_WSOL_HEADS,
    ),
    ("wsolevaluation", "inception_v3"): (
        ("Conv2d_", "backbone.Conv2d_"), ("Mixed_", "backbone.Mixed_"),
        ("SPG_A3_1b.0.", _A3_FIRST), ("SPG_A3_2b.0.", _A3_SECOND),
        ("SPG_A4.", "spg_a4."),
        *_WSOL_HEADS,
    ),
    ("authors", "inception_v3"): (
        ("Conv2d_", "backbone.Conv2d_"), ("Mixed_", "backbone.Mixed_"),
        ("fc6.0.", _A3_FIRST), ("fc7_1.0.", _A3_SECOND),
        ("classier_1.", "spg_a4."),
        ("side3.0.", "spg_b.b1_entry.0."),  # B1 on Mixed_5d
        ("side4.0.", "spg_b.b2_entry.0."),  # B2 on Mixed_6d
        ("side_all.0.", _B_TOP_CONV), ("side_all.2.", _B_TOP_OUT),
        ("branchB.0.", "spg_c.0.0."), ("branchB.2.", "spg_c.1."),  # SPG-C on A3
    ),
}


def read_foreign_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Read a checkpoint file of another codebase safely.

    Args:
        path: a ``torch.save`` file: a dict with a ``state_dict`` (or ``model``) entry, or a bare
            state dict. Zip and legacy formats are read, always with ``weights_only=True``.

    Returns:
        ``(entries, state_dict)``: the file's other top-level entries (e.g. ``architecture``,
        ``epoch``) and its weights, with a ``module.`` prefix (``DataParallel``) removed.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist; pass the .pth/.pth.tar file the other "
                                f"code saved")
    try:
        # mmap: the optimiser state many such files carry is never read into memory.
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise ValueError(f"{path} holds objects other than tensors and plain values, so it is not loaded "
                             f"(loading it could run code); re-save it from the code that wrote it as "
                             f"torch.save({{'state_dict': model.state_dict()}}, FILE)") from None
        # torch's message: a long preamble, then the unpickler's own reason after "error:".
        text = str(error).split("WeightsUnpickler error:")[-1]
        reason = next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]
        raise ValueError(f"{path} is not a readable PyTorch file ({reason}); pass the checkpoint file "
                         f"itself") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = (str(error).strip().splitlines() or [""])[-1][:200]
        raise ValueError(f"{path} is not a readable PyTorch file ({type(error).__name__}: {reason}); pass the "
                         f"checkpoint file itself") from None
    entries: dict = {}
    state = loaded
    if isinstance(loaded, dict):
        for name in ("state_dict", "model"):
            if isinstance(loaded.get(name), dict):
                entries = {key: value for key, value in loaded.items() if key != name}
                state = loaded[name]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = sorted(map(str, loaded)) if isinstance(loaded, dict) else type(loaded).__name__
        raise ValueError(f"{path} holds no state dict (found {found}); pass a checkpoint with a 'state_dict' entry, "
                         f"as wsolevaluation and the authors' code save them")
    if all(str(key).startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return entries, dict(state)


def detect_backbone(state_dict: dict, source: str, entries: dict | None = None) -> str:
    """The backbone whose SPG layout ``state_dict`` has, for checkpoints of ``source``.

    Args:
        state_dict: the foreign weights (``read_foreign_checkpoint``).
        source: one of ``SOURCES``.
        entries: the file's other entries; an ``architecture`` entry must agree with the keys.

    Returns:
        ``"vgg16"``, ``"resnet50"`` or ``"inception_v3"``.
    """
    if source not in SOURCES:
        raise ValueError(f"--from {source!r} is unknown; choose one of {', '.join(SOURCES)}")
    found = [name for name, key in _SIGNATURES[source].items() if key in state_dict]
    if len(found) != 1:
        other = next((name for name in SOURCES if name != source
                      and any(key in state_dict for key in _SIGNATURES[name].values())), None)
        if other is not None:
            raise ValueError(f"the file holds {_OWNERS[other]} SPG layout, not {_OWNERS[source]}; pass --from {other}")
        expected = " or ".join(f"{key!r} ({name})" for name, key in _SIGNATURES[source].items())
        raise ValueError(f"not a {source} SPG checkpoint: none of its {len(state_dict)} keys is {expected} "
                         f"(its first keys: {', '.join(list(state_dict)[:5])}); only SPG models are imported")
    backbone = found[0]
    architecture = (entries or {}).get("architecture")
    if source == "wsolevaluation" and isinstance(architecture, str) and architecture != backbone:
        raise ValueError(f"the file says architecture {architecture!r} but its keys are {backbone}'s SPG layout; "
                         f"the file is inconsistent, re-save it from wsolevaluation")
    return backbone


def import_options(source: str, backbone: str, large_feature_map: bool = False) -> dict:
    """The ``model_options`` that rebuild a ``source`` model of ``backbone`` in this project.

    Args:
        source: one of ``SOURCES``.
        backbone: ``detect_backbone``'s answer.
        large_feature_map: wsolevaluation's flag of the same name (not stored in its files);
            the authors' model always has the 28×28 layout, so it is True for them.

    Returns:
        The options, every one written out (this project's Inception default differs).
    """
    options = {"large_feature_map": True if source == "authors" else bool(large_feature_map),
               "c_input_norm": False, "spg_c_depth": 1, "a3_dilation": 1}  # SPG-C on A3, as both codes
    if backbone == "inception_v3":
        options.update(dropout=0.5, transform_input=False)  # both codes feed ImageNet-normalised images
    return options


def key_rules(model, source: str, backbone: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The renaming rules from ``source``'s keys of ``backbone`` to ``model``'s.

    Args:
        model: the ``SPGModel`` the weights go into (its A3 conv names depend on its dropout).
        source: one of ``SOURCES``.
        backbone: ``detect_backbone``'s answer.

    Returns:
        ``(source prefix, target prefixes)`` pairs, first match wins.
    """
    from torch import nn

    a3 = [f"spg_a3.{name}." for name, layer in model.spg_a3.named_modules() if isinstance(layer, nn.Conv2d)]
    placeholders = dict(zip((_A3_FIRST, _A3_SECOND), a3))  # ResNet50 has no A3 convs, and no rule names them
    rules = []
    for prefix, targets in _RULES[(source, backbone)]:
        targets = (targets,) if isinstance(targets, str) else targets
        if any(target in (_A3_FIRST, _A3_SECOND) and target not in placeholders for target in targets):
            raise ValueError(f"the {backbone} model has {len(a3)} A3 convs where {source}'s layout has 2; "
                             f"build it with its default head options")
        rules.append((prefix, tuple(placeholders.get(target, target) for target in targets)))
    return tuple(rules)


def map_state_dict(state_dict: dict, rules) -> tuple[dict, list[str], dict]:
    """Rename ``state_dict``'s keys by ``rules`` (``key_rules``).

    Args:
        state_dict: the foreign weights.
        rules: ``(source prefix, target prefixes)`` pairs; a key goes to every target of its rule.

    Returns:
        ``(renamed, unmatched, origins)``: the renamed weights (the same tensors), the keys no rule
        matched, and each new name's key in ``state_dict``.
    """
    renamed, unmatched, origins = {}, [], {}
    for key, value in state_dict.items():
        rule = next(((prefix, targets) for prefix, targets in rules if key.startswith(prefix)), None)
        if rule is None:
            unmatched.append(key)
            continue
        prefix, targets = rule
        for target in targets:
            renamed[target + key[len(prefix):]] = value
            origins[target + key[len(prefix):]] = key
    return renamed, unmatched, origins


def build_imported_model(state_dict: dict, source: str, entries: dict | None = None,
                         large_feature_map: bool = False):
    """This project's SPG model holding a foreign checkpoint's weights, loaded strictly.

    Args:
        state_dict: the foreign weights (``read_foreign_checkpoint``).
        source: one of ``SOURCES``.
        entries: the file's other entries (its ``architecture`` is checked).
        large_feature_map: see ``import_options``.

    Returns:
        ``(model, backbone, options, filled)``: the model (eval mode, CPU), its backbone name and
        ``model_options``, and the BatchNorm step counters the file lacked (set to 0; files saved
        before PyTorch 0.4.1 have none, and evaluation never reads them).
    """
    import torch

    from spg_core.models import build_model, state_dict_problems

    backbone = detect_backbone(state_dict, source, entries)
    a4 = state_dict[_A4_KEYS[(source, backbone)]]
    if a4.ndim != 4 or tuple(a4.shape[2:]) != (1, 1) or a4.shape[0] < 1:
        raise ValueError(f"{_A4_KEYS[(source, backbone)]} has shape {tuple(a4.shape)}, not classes × channels × 1 × 1; "
                         f"the file is not an SPG checkpoint of {source}")
    num_classes = int(a4.shape[0])
    options = import_options(source, backbone, large_feature_map)
    with torch.device("meta"):  # shapes and names only; the file's tensors replace every one
        model = build_model(backbone, num_classes, variant="spg", **options)
    renamed, unmatched, origins = map_state_dict(state_dict, key_rules(model, source, backbone))
    own = model.state_dict()
    # Named as in the file: a key whose rule led to no layer of the model did not map either.
    unexpected = sorted(set(unmatched) | {origins[key] for key in renamed if key not in own})
    filled = sorted(key for key in own if key not in renamed and key.endswith("num_batches_tracked"))
    missing = sorted(key for key in own if key not in renamed and key not in filled)
    problems = state_dict_problems(renamed, own, missing, unexpected,
                                   labels=("weights missing from the file", "keys that did not map"))
    if problems:
        raise ValueError(f"the file does not fit {_OWNERS[source]} {backbone} SPG layout ({'; '.join(problems)}); "
                         f"only unmodified SPG checkpoints of {source} are imported")
    weights = {key: renamed[key].to(dtype=own[key].dtype) if key in renamed
               else torch.zeros((), dtype=own[key].dtype) for key in own}
    result = model.load_state_dict(weights, strict=True, assign=True)  # raises on any missing/unexpected key
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval(), backbone, options, filled


def import_checkpoint(path: str | Path, source: str, out: str | Path, large_feature_map: bool = False,
                      data_root: str | None = None, metadata_root: str | None = None) -> dict:
    """``python -m spg_core import-checkpoint``: write a run folder holding a foreign SPG checkpoint.

    The folder has what ``python -m spg_core train`` writes for ``evaluate``, ``localize`` and the
    app to open it: ``checkpoint.pt`` (model, epoch, config, num_classes, class_names, history, plus
    ``imported_from``) and ``config.yaml``. Its data is the wsolevaluation layout (``--format wsol``)
    at ``data_root`` / ``metadata_root`` when given; other data flags can be passed to each command.

    Args:
        path: the foreign checkpoint file.
        source: one of ``SOURCES``.
        out: the RUN_DIR to write; refused when it already holds a checkpoint.
        large_feature_map: see ``import_options``.
        data_root: the dataset's image folder, kept in the run's config (optional).
        metadata_root: the dataset's wsolevaluation metadata folder, kept likewise (optional).

    Returns:
        A summary: run folder, source, backbone, classes, options, key count, filled counters.
    """
    from spg_core.checkpoint import CHECKPOINT, atomic_save
    from spg_core.config import TrainConfig, save_config

    out = Path(out)
    if (out / CHECKPOINT).exists():
        raise ValueError(f"{out} already holds {CHECKPOINT}; pass another --out (an import never overwrites a run)")
    entries, state_dict = read_foreign_checkpoint(path)
    model, backbone, options, filled = build_imported_model(state_dict, source, entries, large_feature_map)
    epoch = entries.get("epoch")
    epoch = int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else 0
    config = TrainConfig(format="wsol", data_root=data_root, metadata_root=metadata_root, image_size=_IMAGE_SIZE,
                         backbone=backbone, variant="spg", model_options=options, preset=_PRESETS[source],
                         epochs=epoch, out=str(out))
    architecture = entries.get("architecture") if isinstance(entries.get("architecture"), str) else None
    state = {"model": model.state_dict(), "epoch": epoch, "config": config.to_dict(),
             "num_classes": model.num_classes, "class_names": [], "history": [],
             "imported_from": {"source": source, "file": str(Path(path).resolve()), "architecture": architecture,
                               "epoch": epoch, "filled_keys": filled}}
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(state, out / CHECKPOINT)
    save_config(config, out / "config.yaml")
    return {"run": str(out), "source": source, "backbone": backbone, "num_classes": model.num_classes,
            "model_options": options, "keys": len(state_dict), "filled_keys": filled, "epoch": epoch}
