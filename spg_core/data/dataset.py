"""The one dataset type every format returns, the format registry, and ``collate``.

A format module parses its annotation files into :class:`Record` objects (one per image) at
build time — so annotation errors and missing files surface before training starts — and the
shared :class:`WSOLDataset` decodes images lazily, skipping undecodable ones. Torch is imported
only where tensors are made (``__getitem__``, :func:`collate`): reading annotations, e.g. to
score saved maps, does not load it.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import inspect
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from spg_core.data.images import BadImageError, image_size, load_image, load_mask
from spg_core.data.transforms import SampleTransform, as_boxes, clip_boxes, mask_box, scale_boxes, valid_boxes

SPLITS = ("train", "val", "test")
IGNORE = 255  # mask value of pixels excluded from PxAP (OpenImages "ignore" regions)


class DataWarning(UserWarning):
    """Annotation problems the loaders repair (clipped boxes) and images they skip."""


@dataclass
class Record:
    """One image as the annotation files describe it (nothing decoded yet).

    ``boxes`` are 0-based inclusive (x0, y0, x1, y1) in the pixels of the displayed,
    full-resolution image; ``size`` is (w, h) when the metadata states it, else None.
    ``mask_paths`` are instance masks (unioned), ``ignore_path`` an ignore-region mask.
    ``source`` is "file:line" of the annotation, for error messages; ``size_source`` the
    "file:line" that states ``size`` (wsolevaluation's image_sizes.txt), when another file does.
    """

    image_id: str
    label: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    path: Path | None = None
    size: tuple[int, int] | None = None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    source: str = ""
    size_source: str = ""


@dataclass
class Sample:
    """One decoded image, untransformed — or only its annotation (``image`` None, see
    :meth:`WSOLDataset.read_annotation`).

    ``boxes`` N×4 float32, inclusive, in this image's pixels; ``mask`` uint8 H×W with 1 = object,
    0 = background, 255 = ignore (or None); ``size`` = (w, h) of ``image``. ``scale`` is the factor
    from annotation pixels to these pixels: 1 except for images downscaled on load because their
    longest side exceeded 4096 px (boxes and mask are already scaled).
    """

    image: Image.Image | None
    label: int
    boxes: np.ndarray
    mask: np.ndarray | None
    image_id: str
    size: tuple[int, int]
    scale: float = 1.0


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


class WSOLDataset:
    """Images + class labels + GT boxes (+ masks), the same for every on-disk format: a map-style
    dataset (``__len__``, ``__getitem__``) for torch's ``DataLoader`` and ``Subset``.

    ``skipped`` counts the bad images this process has met (each time one is met): with
    DataLoader workers each worker process counts its own, so the trainer should rely on
    ``batch["num_skipped"]`` from :func:`collate`.
    """

    def __init__(
        self,
        records: Sequence[Record],
        class_names: Sequence[str],
        image_size: int = 224,
        train: bool = False,
        format: str = "",
        split: str = "",
        root: str | Path | None = None,
    ):
        self.records = list(records)
        self.class_names = [str(name) for name in class_names]
        self.num_classes = len(self.class_names)
        self.image_size = int(image_size)
        self.train = bool(train)
        self.format = format
        self.split = split
        self.root = None if root is None else Path(root)
        self.skipped = 0
        self.transform = SampleTransform(self.image_size, train=self.train)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(format={self.format!r}, split={self.split!r}, images={len(self)}, "
            f"classes={self.num_classes}, image_size={self.image_size}, train={self.train}, root={self.root})"
        )

    def with_ten_crop(self) -> WSOLDataset:
        """This dataset with the paper's ten test views in every item ("ten_crop", 10×3×S×S, cut
        from the decoded image: :func:`spg_core.data.transforms.ten_crop_tensor`), for ten-crop
        classification. A shallow copy: records (and a generator's cache) are shared."""
        view = copy.copy(self)
        view.transform = SampleTransform(self.image_size, train=self.train, ten_crop=True)
        return view

    # -- decoding ---------------------------------------------------------------------------
    def read(self, index: int) -> Sample:
        """Decode record ``index``; raises :class:`BadImageError` for an undecodable file."""
        record = self.records[index]
        image, scale = load_image(record.path)
        width, height = image.size
        scale_x = scale_y = scale
        if record.size is not None:
            stated_w, stated_h = record.size
            shown_w, shown_h = round(width / scale), round(height / scale)
            if (stated_w, stated_h) != (shown_w, shown_h) and stated_w > 0 and stated_h > 0:
                _warn(
                    f"{record.path}: the metadata ({record.size_source or record.source or 'image size'}) says "
                    f"{stated_w}x{stated_h} but "
                    f"the image is {shown_w}x{shown_h}; boxes rescaled by the ratio (fix the size entry if the "
                    "image was rotated rather than resized)"
                )
                scale_x, scale_y = width / stated_w, height / stated_h
        return self._annotated(record, image, (width, height), (scale_x, scale_y), scale)

    def read_annotation(self, index: int) -> Sample:
        """Record ``index``'s annotation without decoding the image: a :class:`Sample` with
        ``image`` None, in the annotation's own pixels (``scale`` 1). The size is the one the
        metadata states (wsolevaluation's image_sizes.txt, ILSVRC's XML), else the image file's
        header, else the first mask's; masks are read (PxAP needs them). What scoring saved
        maps reads: the images themselves may be absent, as with wsolevaluation's evaluator.
        Raises :class:`BadImageError` for an undecodable mask or header, ValueError when no
        size can be known."""
        record = self.records[index]
        size = record.size if record.size is not None and min(record.size) > 0 else self._header_size(record)
        return self._annotated(record, None, (int(size[0]), int(size[1])), (1.0, 1.0), 1.0)

    @staticmethod
    def _header_size(record: Record) -> tuple[int, int]:
        """(w, h) of an image whose annotation states no size: its header, else its first mask's."""
        if record.path is not None and Path(record.path).is_file():
            return image_size(record.path)
        if record.mask_paths:
            return image_size(record.mask_paths[0], orient=False)
        raise ValueError(f"image {record.image_id!r} ({record.source or 'annotation'}): no size is known without "
                         f"the image — the metadata states none and {record.path} is absent; add its size "
                         "(wsolevaluation: <split>/image_sizes.txt, 'path,w,h') or put the image there")

    def _annotated(self, record: Record, image, size: tuple[int, int], box_scale: tuple[float, float],
                   scale: float) -> Sample:
        """The sample of ``record`` in pixels of ``size`` = (w, h): boxes scaled by ``box_scale``
        = (x, y) from annotation pixels, instance masks (unioned) with their ignore region, one
        box per instance when the annotation has masks but no boxes, boxes clipped to the image."""
        width, height = size
        boxes = as_boxes(record.boxes)
        if box_scale != (1.0, 1.0):
            boxes = scale_boxes(boxes, *box_scale)
        mask = None
        if record.mask_paths:
            instances = [load_mask(path, (width, height)) for path in record.mask_paths]
            foreground = np.logical_or.reduce(instances)
            mask = foreground.astype(np.uint8)
            if record.ignore_path is not None:
                ignore = load_mask(record.ignore_path, (width, height))
                mask[ignore & ~foreground] = IGNORE
            if len(boxes) == 0:
                # Mask-form metadata carries no boxes: each instance mask's tight box is a GT box,
                # so box metrics are available alongside PxAP.
                boxes = np.concatenate([mask_box(m.astype(np.uint8)) for m in instances] or [boxes])
        boxes = self._clip(record, boxes, width, height)
        return Sample(image, record.label, boxes, mask, record.image_id, (width, height), scale)

    @staticmethod
    def _clip(record: Record, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        clipped, changed = clip_boxes(boxes, width, height)
        for original, new in zip(boxes[changed], clipped[changed]):
            shown = [round(float(v), 2) for v in original]
            if new[2] < new[0] or new[3] < new[1]:
                _warn(f"{record.path or record.image_id}: box {shown} lies outside the {width}x{height} image; dropped")
            else:
                _warn(
                    f"{record.path or record.image_id}: box {shown} extends outside the {width}x{height} image; "
                    f"clipped to {[round(float(v), 2) for v in new]}"
                )
        return valid_boxes(clipped)

    def load_sample(self, index: int, image: bool = True) -> Sample | None:
        """The original pixels and annotation of image ``index``; None (with a warning) if the
        file cannot be decoded — an epoch never stops on one bad image. ``image=False``: the
        annotation only (:meth:`read_annotation`), nothing decoded but the masks."""
        try:
            return self.read(index) if image else self.read_annotation(index)
        except BadImageError as error:
            self.skipped += 1
            _warn(f"skipping image {self.records[index].image_id!r}: {error}")
            return None

    def __getitem__(self, index: int) -> dict | None:
        """The transform's tensors (:class:`SampleTransform`) plus label, image_id and the
        annotation in the decoded image's pixels: orig_size (w, h), orig_boxes, and orig_mask
        (uint8 H×W, 1/0/255) when the image has a mask. None when the image cannot be decoded."""
        import torch

        sample = self.load_sample(index)
        if sample is None:
            return None
        out = self.transform(sample.image, sample.boxes, sample.mask)
        out["label"] = int(sample.label)
        out["image_id"] = sample.image_id
        out["orig_size"] = tuple(sample.size)
        out["orig_boxes"] = torch.from_numpy(as_boxes(sample.boxes).copy())
        if sample.mask is not None:
            # The mask in this image's pixels too: evaluation resizes it to its scoring grid itself.
            out["orig_mask"] = torch.from_numpy(np.array(sample.mask, dtype=np.uint8, copy=True))
        return out


def collate(batch: list) -> dict:
    """DataLoader ``collate_fn``: drops None (skipped images), stacks image/label, keeps lists
    for the per-image fields. ``num_skipped`` says how many were dropped; when every sample was
    bad, ``image`` has shape (0,) and the lists are empty."""
    import torch

    kept = [item for item in batch if item is not None]
    out: dict = {"num_skipped": len(batch) - len(kept)}
    if not kept:
        out.update(image=torch.empty(0), label=torch.empty(0, dtype=torch.long))
        out.update({key: [] for key in ("boxes", "orig_boxes", "image_id", "orig_size")})
        return out
    out["image"] = torch.stack([item["image"] for item in kept])
    out["label"] = torch.tensor([item["label"] for item in kept], dtype=torch.long)
    for key in ("boxes", "orig_boxes", "image_id", "orig_size"):
        out[key] = [item[key] for item in kept]
    for key in ("mask", "orig_mask"):
        if any(key in item for item in kept):
            out[key] = [item.get(key) for item in kept]
    if all("ten_crop" in item for item in kept):
        out["ten_crop"] = torch.stack([item["ten_crop"] for item in kept])  # B×10×3×S×S
    return out


# ----------------------------------------------------------------------------- helpers for formats
def check_files(records: Iterable[Record], fix: str, images: bool = True) -> None:
    """Collect every missing image/mask file, then raise one error listing the first few and
    the count — at build time, so a typo in data_root costs seconds, not a crashed epoch.
    ``images=False``: only the masks (a dataset whose images nothing will read)."""
    missing: list[str] = []
    for record in records:
        paths = [record.path if images else None, *record.mask_paths, record.ignore_path]
        missing.extend(str(path) for path in paths if path is not None and not Path(path).is_file())
    if missing:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(f"{len(missing)} file(s) listed in the annotations are missing:\n  {shown}{more}\n{fix}")


# What the caller allows the loaders to open (the app: only files under its roots); None: any file.
_FILE_CHECK: contextvars.ContextVar[Callable[[Path], None] | None] = contextvars.ContextVar("file_check",
                                                                                          default=None)


@contextlib.contextmanager
def files_checked(check: Callable[[Path], None]) -> Iterator[None]:
    """Within the block, every annotation file the loaders open and every image and mask file
    :func:`build_dataset` lists is first passed to ``check``, which raises to refuse it.

    Args:
        check: called with each path before it is opened (or listed); raises to refuse it.
    """
    token = _FILE_CHECK.set(check)
    try:
        yield
    finally:
        _FILE_CHECK.reset(token)


def checked(path) -> Path:
    """``path``, once the check of the enclosing :func:`files_checked` block (if any) passed it.

    Args:
        path: a file a loader is about to open.

    Returns:
        ``Path(path)``; the check raises to refuse it.
    """
    check = _FILE_CHECK.get()
    if check is not None:
        check(Path(path))
    return Path(path)


def decode_error(path, error: UnicodeDecodeError) -> ValueError:
    """The one-line error for text that is not UTF-8.

    Args:
        path: the file that was being read.
        error: what decoding it raised.

    Returns:
        A ValueError naming the file, the line and the byte, and how to convert the file.
    """
    raw = Path(path).read_bytes()
    try:  # the offset in the whole file (the error's own is in the chunk a text stream decoded)
        raw.decode("utf-8")
        start, byte = error.start, error.object[error.start:error.start + 1]
    except UnicodeDecodeError as whole:
        start, byte = whole.start, raw[whole.start:whole.start + 1]
    line = raw[:start].count(b"\n") + 1
    return ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{byte.hex()} at offset {start}); save the file as "
                      "UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a UTF-8 text file;
    ValueError naming the file and line when it is not UTF-8."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    with open(checked(path), encoding="utf-8-sig") as handle:
        try:
            return [(number, line.strip()) for number, line in enumerate(handle, 1) if line.strip()]
        except UnicodeDecodeError as error:
            raise decode_error(path, error) from None


_PATH_SIGNS = re.compile(r"[/\\:\0]")  # what can make a listed name leave its folder (with a bare "..")
_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive: "C:x" is relative to that drive's current folder


def relative_file(root: Path | None, text: str, where: str, what: str = "image") -> Path:
    """``root / text`` for a path listed in an annotation file, refused when it could name a file
    outside ``root``: absolute, a drive, ``..`` leading above ``root``, or a NUL byte.

    Args:
        root: the folder the listed paths are relative to (None: the path is checked only).
        text: the path as the file lists it.
        where: "file:line" of the listing, for the message.
        what: what the path names ("image", "mask"), for the message.

    Returns:
        ``root / text`` (``Path(text)`` when ``root`` is None).

    Raises:
        ValueError: naming the file:line, the value and the fix.
    """
    if text != ".." and not _PATH_SIGNS.search(text):  # a plain file name: nothing to check
        return Path(text) if root is None else Path(root) / text
    fix = (f"list it relative to {root if root is not None else 'the dataset folder'} (copy or link the file "
           "under that folder)")
    if "\0" in text:
        raise ValueError(f"{where}: {what} path {text!r} holds a NUL byte; {fix}")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or _DRIVE.match(text):
        raise ValueError(f"{where}: {what} path {text!r} is absolute; {fix}")
    if os.path.normpath(text.replace("\\", "/")).split("/")[0] == "..":
        raise ValueError(f"{where}: {what} path {text!r} leads outside its folder through '..'; {fix}")
    return Path(text) if root is None else Path(root) / text


def first_seen(seen: dict[str, str], key: str, where: str, what: str, fix: str) -> None:
    """Record that ``key`` is listed at ``where``; ValueError naming both lines if it was already.

    Args:
        seen: key -> "file:line" of the keys listed so far (updated).
        key: the value listed (an image id).
        where: "file:line" of this listing.
        what: what ``key`` is, for the message ("image id").
        fix: the fix, for the message.
    """
    if key in seen:
        raise ValueError(f"{where}: {what} {key!r} is listed again (first at {seen[key]}); {fix}")
    seen[key] = where


def stable_fraction(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by (key, seed) on every machine and Python version (unlike
    ``hash()``), used for documented deterministic splits."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def parse_box(values: Sequence[str], where: str) -> list[float]:
    try:
        box = [float(v) for v in values]
    except ValueError:
        raise ValueError(f"{where}: box {list(values)} is not four numbers") from None
    if len(box) != 4 or not np.all(np.isfinite(box)):
        raise ValueError(f"{where}: box {list(values)} must be four finite numbers x0,y0,x1,y1")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{where}: box {box} has x1 < x0 or y1 < y0; boxes are (x0, y0, x1, y1) with x1 >= x0, y1 >= y0")
    return box


# ----------------------------------------------------------------------------- registry
FORMATS: dict[str, Callable[..., WSOLDataset]] = {}


def register_format(name: str):
    """Decorator: ``@register_format("cub")`` on ``build(split, data_root, metadata_root,
    image_size, train, **options) -> WSOLDataset``."""

    def decorator(builder):
        FORMATS[name] = builder
        return builder

    return decorator


def build_dataset(
    format: str,
    split: str,
    data_root: str | Path | None = None,
    metadata_root: str | Path | None = None,
    image_size: int = 224,
    train: bool = False,
    need_images: bool = True,
    **options,
) -> WSOLDataset:
    """Build the ``split`` of a dataset stored in ``format`` (see ``FORMATS``).

    Annotation errors (bad labels, unknown classes, malformed boxes) raise ValueError naming
    file and line; missing files raise one FileNotFoundError listing them. ``options`` are the
    format's own (e.g. ``val_every`` for cub, the generator options for synthetic).
    ``need_images=False``: the images may be absent (only masks are checked) — for reading
    annotations only (``load_sample(i, image=False)``), e.g. to score saved maps; the wsol
    format then needs no ``data_root`` at all when ``metadata_root`` is given and no masks.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; choose one of {sorted(FORMATS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    builder = FORMATS[format]
    parameters = inspect.signature(builder).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    known = [name for name in parameters if name not in ("split", "data_root", "metadata_root", "image_size", "train")]
    unknown = sorted(set(options) - set(known))
    if unknown and not accepts_any:
        raise TypeError(f"format {format!r} does not take option(s) {unknown}; its options are {known}")
    metadata_only = format == "wsol" and metadata_root is not None and not need_images
    if format != "synthetic" and data_root is None and not metadata_only:
        raise ValueError(f"format {format!r} needs data_root (the folder holding the images)")
    if "need_images" in parameters:
        options["need_images"] = need_images
    dataset = builder(
        split=split,
        data_root=None if data_root is None else Path(data_root).expanduser(),
        metadata_root=None if metadata_root is None else Path(metadata_root).expanduser(),
        image_size=image_size,
        train=train,
        **options,
    )
    if _FILE_CHECK.get() is not None:  # inside files_checked(): every file the dataset will open, now
        for record in dataset.records:
            for path in (record.path, *record.mask_paths, record.ignore_path):
                try:
                    if path is not None:
                        checked(path)
                except ValueError as error:  # name the annotation line that lists the file
                    raise type(error)(f"{record.source or record.image_id}: {error}") from None
    return dataset
