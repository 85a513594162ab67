"""Run checkpoints on disk: written atomically, read without executing anything.

A checkpoint holds tensors and plain values only (dicts, lists, tuples, numbers, text), so it
is read with ``torch.load(..., weights_only=True)``: a crafted checkpoint.pt typed into the app
or the CLI cannot run code. A file that is not such a checkpoint (truncated, garbage, or one
pickling arbitrary objects) is refused with a ``CheckpointError`` naming the file and what to do.

Checkpoints written before this rule held NumPy's random state as an array (refused by the
safe reader); ``convert_checkpoint`` rewrites such a file, once, after the user says they trust
it (``python -m spg_core convert-checkpoint RUN_DIR``).
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely, with the fix in the message."""


def atomic_save(obj, path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path`` (tensors and plain values only, loaded on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train a run (python -m spg_core train --out RUN_DIR)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is not a readable checkpoint (not a torch.save archive: truncated or another "
                              f"kind of file); retrain the run or restore the file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain values, so it is not loaded (loading it could "
                f"run code). If you wrote it yourself with an older version of this toolkit, convert it once: "
                f"python -m spg_core convert-checkpoint {path.parent}") from None
        reason = str(error).strip().splitlines()[-1][:200]
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason}); retrain the run or restore the file") \
            from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        reason = (str(error).strip().splitlines() or [""])[-1][:200]
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {reason}); retrain the "
                              f"run or restore the file") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a run checkpoint (no model weights in it); pass the RUN_DIR written by "
                              f"python -m spg_core train")
    return state


def plain_value(value):
    """``value`` with NumPy arrays and scalars turned into tensors and Python numbers (what the
    safe reader accepts); everything else as it is."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(v) for v in value)
    return value


def convert_checkpoint(path: str | Path) -> bool:
    """Rewrite a checkpoint the user trusts so that the safe reader accepts it. Reads it with
    ``weights_only=False`` — only ever on the user's explicit request. Returns False when it was
    already safe."""
    path = Path(path)
    try:
        read_checkpoint(path)
        return False
    except CheckpointError:
        pass
    state = torch.load(path, map_location="cpu", weights_only=False)  # the user vouched for this file
    atomic_save(plain_value(state), path)
    read_checkpoint(path)  # now safe
    return True
