"""Run checkpoints on disk: written atomically, read without executing anything.

A checkpoint holds tensors and plain values only (dicts, lists, tuples, numbers, text), so it
is read with ``torch.load(..., weights_only=True)``: a crafted checkpoint.pt typed into the app
or the CLI cannot run code. A file that is not such a checkpoint (truncated, garbage, one
pickling arbitrary objects, or one whose entries inflate far beyond its size) is refused with a
``CheckpointError`` naming the file and what to do, before any of its data is unpacked.

Checkpoints written before this rule held NumPy's random state as an array (refused by the
safe reader); ``convert_checkpoint`` rewrites such a file (``python -m spg_core convert-checkpoint
RUN_DIR``). It reads the file with the same restricted unpickler plus NumPy's array and scalar
globals (``OLD_RUN_GLOBALS``), which is all an old run holds, and refuses anything else: no
file, converted or not, can run code.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"
# NumPy dtypes an old run's arrays and scalars have (random state: uint32; history: numbers).
_OLD_RUN_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                   np.float16, np.float32, np.float64)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (or written) safely, with the fix in the message."""


def _old_run_globals() -> list:
    """The globals the converter admits beyond torch's safe set: NumPy's array and scalar
    reconstruction under the module names NumPy 1.x and 2.x pickle them with, and numeric dtypes."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    admitted = [np.ndarray, np.dtype, *(type(np.dtype(kind)) for kind in _OLD_RUN_DTYPES)]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        admitted += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    return admitted


OLD_RUN_GLOBALS = _old_run_globals()
OLD_RUN_GLOBAL_NAMES = frozenset(
    item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}" for item in OLD_RUN_GLOBALS)


def atomic_save(obj, path: str | Path) -> None:
    """Write ``obj`` with torch.save to a temporary file in the same folder, then rename: a crash
    never leaves half a file, and a failed write (a full disk) leaves the file there before as it was.

    Args:
        obj: what to save (tensors and plain values).
        path: the file to write.

    Raises:
        CheckpointError: the write failed (the temporary file is removed, ``path`` is untouched).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        # Written through a Python file, so that an I/O failure is an OSError with its errno.
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
        os.replace(tmp, path)
    except OSError as error:
        raise CheckpointError(f"could not write {path} ({error.strerror or error}); the file there before is kept "
                              f"as it was: free space on the disk (or fix the folder's permissions) and run again"
                              ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (see :func:`atomic_save`).

    Args:
        text: the file's new content.
        path: the file to write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: str | Path, names) -> list[Path]:
    """Delete the ``NAME.*.tmp`` files a writer killed inside :func:`atomic_save` left behind.
    Call it only while owning the folder (a training holding the run lock).

    Args:
        folder: the run folder.
        names: the file names whose temporaries to delete (e.g. ``checkpoint.pt``).

    Returns:
        The files deleted.
    """
    removed = []
    for name in names:
        for stale in Path(folder).glob(f"{_glob_escape(name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


def _glob_escape(name: str) -> str:
    """``name`` with glob's special characters matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def check_archive(path: Path) -> None:
    """Refuse a torch.save archive whose entries would cost more memory than the file's size.
    torch.save stores every entry uncompressed, so an entry that is compressed, or that claims
    more bytes than the file holds, is not a checkpoint of this project; reading it could inflate
    a 1 MB file into gigabytes. Checked from the zip directory alone, before anything is unpacked.

    Args:
        path: the checkpoint file (already known to be a zip archive).

    Raises:
        CheckpointError: naming the entry and the sizes.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (its zip directory is damaged: {error}); retrain "
                              f"the run or restore the file") from None
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"{path} is refused: its entry {entry.filename} is compressed ({entry.compress_size} bytes that "
                f"inflate to {entry.file_size}), and torch.save stores every entry uncompressed, so this project did "
                f"not write it; retrain the run or restore the file")
        if entry.file_size != entry.compress_size or entry.header_offset + entry.compress_size > size:
            raise CheckpointError(
                f"{path} is refused: its entry {entry.filename} claims {entry.file_size} bytes but the file holds "
                f"{size}; retrain the run or restore the file")


def _refused_globals(path: Path) -> list[str]:
    """The globals of the checkpoint's pickle that torch's safe reader does not admit (found by
    reading the pickle's opcodes, nothing is executed); [] when they cannot be listed."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - a damaged pickle: the caller reports the load error instead
        return []


def _unpickling_reason(error: Exception) -> str:
    """One line saying what the restricted unpickler refused, out of torch's many-line message."""
    text = str(error)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return f"the global {found.group(1)}"
    found = re.search(r"but got (<class '[^']+'>)", text)
    if found:
        return f"an object of {found.group(1)}"
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")
    lines = [line.replace("WeightsUnpickler error:", "").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(boilerplate)]
    return (lines or ["an object other than tensors and plain values"])[0][:200]


def _load(path: Path, admitted: list | None = None):
    """``torch.load(weights_only=True)`` of a checked archive, with ``admitted`` globals added to
    torch's safe set; errors become one-line ``CheckpointError``s naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train a run (python -m spg_core train --out RUN_DIR)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is not a readable checkpoint (not a torch.save archive: truncated or another "
                              f"kind of file); retrain the run or restore the file")
    check_archive(path)
    admit = torch.serialization.safe_globals(admitted) if admitted else contextlib.nullcontext()
    try:
        with admit:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_globals(path)
        outside = [name for name in refused if admitted is None or name not in OLD_RUN_GLOBAL_NAMES]
        if admitted is None and refused and set(refused) <= OLD_RUN_GLOBAL_NAMES:
            raise CheckpointError(
                f"{path} holds NumPy arrays ({', '.join(refused)}), so it is not loaded (loading objects other "
                f"than tensors and plain values could run code). Convert it only if this project's training "
                f"wrote it (older versions kept NumPy's random state as an array); the converter admits only "
                f"NumPy's array and scalar globals: python -m spg_core convert-checkpoint {path.parent}") from None
        what = ", ".join(outside) if outside else _unpickling_reason(error)
        raise CheckpointError(
            f"{path} is refused, not loaded: it holds {what}, which no checkpoint of this project holds (loading "
            f"it could run code; the converter admits only NumPy's array and scalar globals besides tensors and "
            f"plain values): retrain the run or restore the file") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, TypeError, KeyError) as error:
        reason = (str(error).strip().splitlines() or [""])[-1][:200]
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {reason}); retrain the "
                              f"run or restore the file") from None


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path`` (tensors and plain values only, loaded on the CPU).

    Args:
        path: a checkpoint.pt file.

    Returns:
        The saved dict (``model`` and, for a run, ``config``, ``num_classes``, ``epoch``, ...).

    Raises:
        FileNotFoundError: no file there.
        CheckpointError: the file is not a checkpoint that loads without running code.
    """
    path = Path(path)
    state = _load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a run checkpoint (no model weights in it); pass the RUN_DIR written by "
                              f"python -m spg_core train")
    return state


def run_fields(state: dict, path: str | Path) -> tuple[dict, int]:
    """The training config and class count a run checkpoint must hold.

    Args:
        state: what :func:`read_checkpoint` returned.
        path: the file, named in the error.

    Returns:
        (config dict, num_classes).

    Raises:
        CheckpointError: either is missing or malformed.
    """
    config, num_classes = state.get("config"), state.get("num_classes")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds no training config ('config'), so its model cannot be rebuilt; it was "
                              f"not written by python -m spg_core train: retrain the run or restore the file")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise CheckpointError(f"{path}: num_classes={num_classes!r} is not a class count >= 1; retrain the run or "
                              f"restore the file")
    return config, num_classes


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
    """Rewrite a checkpoint an older version of this project wrote so that the safe reader
    accepts it. It is read with torch's restricted unpickler admitting, besides tensors and
    plain values, only ``OLD_RUN_GLOBALS`` (NumPy arrays and scalars of numeric dtypes): no
    code runs, and a file holding anything else is refused as it is.

    Args:
        path: the checkpoint file.

    Returns:
        True when it was rewritten, False when it was already safe.

    Raises:
        CheckpointError: it holds a global outside the allow-list, or is not a run checkpoint.
    """
    path = Path(path)
    try:
        read_checkpoint(path)
        return False
    except CheckpointError:
        pass
    state = _load(path, OLD_RUN_GLOBALS)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a run checkpoint (no model weights in it); nothing was converted")
    atomic_save(plain_value(state), path)
    read_checkpoint(path)  # now safe
    return True
