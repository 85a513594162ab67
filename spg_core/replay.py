"""Training replay: the stage maps of a few fixed validation images, recorded while a run trains.

Every epoch (before the first one, after each, and a few times inside the first guided epoch) the
trainer runs K fixed validation images (default 16) through the network and keeps, for each,
the score maps of every stage (attention of the GT class, B2, B1, fused, SPG-C) and, against the
ground-truth object (its mask, else its boxes), each Eq. 1 seed mask's precision and coverage at
the run's thresholds. The masks themselves are not stored: Eq. 1 on a stored map gives them back,
at the run's thresholds or any other.

Stored compactly in RUN_DIR/replay.npz: maps as uint8 at ``REPLAY_SIDE`` px (a 16-image, 8-epoch
run is about 1 MB), written atomically after each record. A resumed run drops the records past
its checkpoint and continues, so the replay has no gap and no duplicate. Recording neither
consumes random numbers nor changes the model, so a run trains to the same weights with it on or
off.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spg_core.guidance import FOREGROUND, PRESETS, SCORE_MAPS, STAGES, GuidancePreset, seed_statistics, stage_maps

REPLAY_FILE = "replay.npz"
REPLAY_IMAGES = 16  # validation images recorded (TrainConfig.replay_images; 0 = off)
REPLAY_SIDE = 64  # side of the stored maps, in pixels (at most the input size)
MID_EPOCH_FRACTIONS = (0.25, 0.5, 0.75)  # extra records inside the first guided epoch
STAT_NAMES = ("foreground_precision", "object_coverage", "background_precision", "foreground")
STAGE_NAMES = tuple(stage.mask for stage in STAGES)
REPLAY_TAUS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))  # τ grid of Replay.box_accuracy
# Largest replay.npz the reader unpacks (its arrays' sizes from the zip directory, before
# inflating): 64 images × 5 maps × 64² px × 300 records is 0.4 GB.
REPLAY_MAX_BYTES = 1 << 30


class ReplayError(ValueError):
    """A replay.npz that cannot be read, with the file and the fix in the message."""


def seed_quality(mask: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """``STAT_NAMES`` of one seed mask against the object's region (bool): the foreground seeds'
    precision, the share of the object they cover, the background seeds' precision, and the
    share of the image that is foreground seed. NaN where undefined (no seeds of a kind)."""
    stats = seed_statistics(mask, obj)
    covered = float((mask[obj] == FOREGROUND).mean()) if obj.any() else float("nan")
    return np.array([stats["foreground_precision"], covered, stats["background_precision"], stats["foreground"]],
                    dtype=np.float32)


@contextlib.contextmanager
def random_state_kept():
    """Whatever runs inside leaves Python's, NumPy's and torch's random streams as they were."""
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


@dataclass
class Replay:
    """The recorded images and, per record, their stage maps and seed statistics.

    images: K×S×S×3 uint8 (the network's view, denormalised); objects: K×S×S bool; maps:
    R×K×M×S×S uint8 (``map_names`` order, value/255); epochs: R floats (epochs done, e.g. 2.5 =
    half-way through the third); steps: R optimisation steps done; stats: R×K×3×4 float32
    (``STAGE_NAMES`` × ``STAT_NAMES`` at the run's thresholds, NaN for a stage the variant
    lacks)."""

    image_ids: list[str]
    labels: np.ndarray
    images: np.ndarray
    objects: np.ndarray
    map_names: tuple[str, ...]
    maps: np.ndarray
    epochs: np.ndarray
    steps: np.ndarray
    stats: np.ndarray
    preset: str
    guidance: dict | None = None  # GuidancePreset.to_dict() of the thresholds the seeds were drawn at

    def seed_preset(self) -> GuidancePreset:
        """The thresholds this replay's seeds were drawn at: the stored preset, else (a replay
        written before they were stored) the named one; a ValueError when the name alone does not
        say them (e.g. ``paper+custom``)."""
        if self.guidance is not None:
            return GuidancePreset.from_dict(self.guidance)
        if self.preset in PRESETS:
            return PRESETS[self.preset]
        raise ValueError(f"the replay names the preset {self.preset!r} but not its thresholds (it was written "
                         "before replays stored them)")

    def __len__(self) -> int:
        return len(self.epochs)

    def stage_maps(self, record: int, image: int) -> dict[str, np.ndarray]:
        """Float32 maps in [0, 1] of one image at one record, by stage name."""
        if not 0 <= record < len(self):
            raise IndexError(f"record {record} is out of range 0..{len(self) - 1}")
        return {name: self.maps[record, image, m].astype(np.float32) / 255.0 for m, name in enumerate(self.map_names)}

    def box_accuracy(self, taus=REPLAY_TAUS) -> dict[str, np.ndarray]:
        """Per stored map, per record: the fraction of the replay images whose box by the paper
        rule (min-max map, largest component at τ: ``tau_sweep.largest_component_sweep``) has
        IoU ≥ 0.5 with the tight box of the image's recorded object, at the best τ of that
        record. A map the variant lacks (all zero) is NaN. A curve over training, not a score:
        K images (16 by default) and τ chosen per record."""
        from spg_core.data.transforms import mask_box
        from spg_core.tau_sweep import largest_component_sweep

        truth = [mask_box(region) for region in self.objects]
        curves = {}
        for m, name in enumerate(self.map_names):
            curve = np.full(len(self), np.nan)
            for r in range(len(self)):
                maps = self.maps[r, :, m]
                if not maps.any():
                    continue
                hits = np.array([largest_component_sweep(maps[k], box, taus)[1] >= 0.5 if len(box) else
                                 np.zeros(len(taus), bool) for k, box in enumerate(truth)])
                curve[r] = float(hits.mean(axis=0).max())
            curves[name] = curve
        return curves

    def object_background_means(self) -> dict[str, np.ndarray]:
        """Per stored map: R×2, its mean score on the recorded objects' pixels and on the rest.
        A map that scores the background above the object has turned inside out."""
        inside = self.objects[None]
        return {name: np.stack([(self.maps[:, :, m] * inside).sum(axis=(1, 2, 3)) / max(inside.sum() * 1.0, 1.0),
                                (self.maps[:, :, m] * ~inside).sum(axis=(1, 2, 3)) / max((~inside).sum() * 1.0, 1.0)],
                               axis=1) / 255.0
                for m, name in enumerate(self.map_names)}

    def keep_until(self, epochs_done: float) -> None:
        """Drop the records made after ``epochs_done`` (a resumed run redoes them)."""
        keep = self.epochs <= epochs_done + 1e-9
        self.maps, self.epochs, self.steps, self.stats = (a[keep] for a in (self.maps, self.epochs, self.steps, self.stats))

    def save(self, path: str | Path) -> None:
        """Atomic: written to a temporary file in the same folder, then renamed."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, image_ids=np.array(self.image_ids), labels=self.labels, images=self.images,
                                    objects=self.objects, map_names=np.array(self.map_names), maps=self.maps,
                                    epochs=self.epochs, steps=self.steps, stats=self.stats, preset=np.array(self.preset),
                                    **({} if self.guidance is None else {"guidance": np.array(json.dumps(self.guidance))}))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | Path) -> Replay:
        """Read a replay.npz written by :meth:`save`.

        Args:
            path: the file.

        Returns:
            The replay.

        Raises:
            ReplayError: the file is truncated, damaged, not a replay, or would unpack to more
                than ``REPLAY_MAX_BYTES`` (checked before anything is inflated).
        """
        path = Path(path)
        fix = "delete it (a resumed run then records from where it resumes), restore it, or retrain the run"
        try:
            with zipfile.ZipFile(path) as archive:
                unpacked = sum(entry.file_size for entry in archive.infolist())
            if unpacked > REPLAY_MAX_BYTES:
                raise ReplayError(f"{path} would unpack to {unpacked} bytes, more than the {REPLAY_MAX_BYTES} a "
                                  f"training replay may hold; {fix}")
            with np.load(path, allow_pickle=False) as data:
                replay = cls(image_ids=[str(i) for i in data["image_ids"]], labels=data["labels"],
                             images=data["images"], objects=data["objects"],
                             map_names=tuple(str(n) for n in data["map_names"]), maps=data["maps"],
                             epochs=data["epochs"], steps=data["steps"], stats=data["stats"],
                             preset=str(data["preset"]),
                             guidance=json.loads(str(data["guidance"])) if "guidance" in data else None)
        except ReplayError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, TypeError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ReplayError(f"{path} is not a training replay ({reason}); {fix}") from None
        count = len(replay.epochs)
        if replay.maps.ndim != 5 or not (len(replay.maps) == len(replay.steps) == len(replay.stats) == count):
            raise ReplayError(f"{path} is not a training replay (its arrays disagree: {count} records, "
                              f"maps of shape {replay.maps.shape}); {fix}")
        return replay


def load_replay(run_dir: str | Path) -> Replay | None:
    """The replay of a run folder, or None when the run was trained without one."""
    path = Path(run_dir) / REPLAY_FILE
    return Replay.load(path) if path.is_file() else None


class ReplayRecorder:
    """Records a run's replay (``record``) and keeps RUN_DIR/replay.npz up to date."""

    def __init__(self, dataset, count: int, preset: GuidancePreset, out_dir: str | Path, map_names=SCORE_MAPS,
                 epochs_done: int = 0):
        from spg_core.data.transforms import denormalize
        from spg_core.sweeps import object_mask

        self.path = Path(out_dir) / REPLAY_FILE
        self.preset = preset
        with random_state_kept():
            samples = []
            for index in range(len(dataset)):
                if len(samples) == count:
                    break
                item = dataset[index]
                if item is not None:
                    samples.append(item)
        if not samples:
            raise ValueError(f"no readable image in the {getattr(dataset, 'split', '')} split to record a replay of")
        self.inputs = torch.stack([item["image"] for item in samples])
        self.labels = torch.tensor([item["label"] for item in samples], dtype=torch.long)
        input_size = int(self.inputs.shape[-1])
        self.side = min(REPLAY_SIDE, input_size)
        self.map_names = tuple(map_names)
        images = np.stack([np.asarray(Image.fromarray(denormalize(x)).resize((self.side, self.side), Image.BILINEAR))
                           for x in self.inputs])
        objects = []
        for item in samples:
            region = object_mask(None if item.get("mask") is None else np.asarray(item["mask"]), item["boxes"],
                                 (input_size, input_size))
            objects.append(torch.nn.functional.interpolate(torch.from_numpy(region)[None, None].float(),
                                                           size=(self.side, self.side), mode="nearest")[0, 0].bool())
        previous = load_replay(out_dir) if epochs_done > 0 and self.path.is_file() else None
        ids = [str(item["image_id"]) for item in samples]
        if previous is not None and previous.image_ids == ids and previous.map_names == self.map_names:
            previous.keep_until(epochs_done)
            previous.guidance = preset.to_dict()  # the resumed run's seeds are drawn at these
            self.replay = previous
        else:
            self.replay = Replay(ids, self.labels.numpy(), images, torch.stack(objects).numpy(), self.map_names,
                                 np.zeros((0, len(ids), len(self.map_names), self.side, self.side), np.uint8),
                                 np.zeros(0, np.float32), np.zeros(0, np.int64),
                                 np.zeros((0, len(ids), len(STAGES), len(STAT_NAMES)), np.float32), preset.name,
                                 preset.to_dict())

    @property
    def empty(self) -> bool:
        return len(self.replay) == 0

    def lacks(self, epochs_done: int) -> bool:
        """Whether the replay has no record at the end of an epoch (a run stopped between writing
        its checkpoint and its replay).

        Args:
            epochs_done: the epoch (1-based) whose end-of-epoch record is looked for.

        Returns:
            True when that record is missing.
        """
        return epochs_done > 0 and not bool(np.any(np.abs(self.replay.epochs - epochs_done) < 1e-6))

    @torch.no_grad()
    def record(self, model: torch.nn.Module, epochs_done: float, steps_done: int) -> None:
        """One record of the model as it is now (eval mode for the pass; its mode is restored)."""
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        try:
            with random_state_kept():
                outputs = model(self.inputs.to(device), with_guidance=getattr(model, "variant", "plain") != "plain")
                maps = stage_maps(outputs, self.labels.to(device), (self.side, self.side), stages=self.map_names)
        finally:
            model.train(was_training)
        count = len(self.replay.image_ids)
        stored = np.zeros((1, count, len(self.map_names), self.side, self.side), np.uint8)
        stats = np.full((1, count, len(STAGES), len(STAT_NAMES)), np.nan, np.float32)
        for m, name in enumerate(self.map_names):
            if name in maps:
                stored[0, :, m] = (maps[name].float().clamp(0, 1) * 255).round().byte().cpu().numpy()
        for s, stage in enumerate(STAGES):
            if stage.source not in maps:
                continue
            masks = self.preset.seeds(stage.mask, maps[stage.source].float().cpu()).numpy()
            for k in range(count):
                stats[0, k, s] = seed_quality(masks[k], self.replay.objects[k])
        r = self.replay
        r.maps = np.concatenate([r.maps, stored])
        r.epochs = np.append(r.epochs, np.float32(epochs_done))
        r.steps = np.append(r.steps, np.int64(steps_done))
        r.stats = np.concatenate([r.stats, stats])
        r.save(self.path)


def mid_epoch_steps(steps: int) -> set[int]:
    """The steps (0-based, after which) the first guided epoch records: ``MID_EPOCH_FRACTIONS``."""
    return {max(0, min(steps - 2, round(fraction * steps) - 1)) for fraction in MID_EPOCH_FRACTIONS} if steps > 1 else set()


__all__ = ["REPLAY_FILE", "REPLAY_IMAGES", "ReplayError", "REPLAY_TAUS", "REPLAY_SIDE", "STAT_NAMES", "STAGE_NAMES", "Replay", "ReplayRecorder",
           "load_replay", "mid_epoch_steps", "seed_quality"]
