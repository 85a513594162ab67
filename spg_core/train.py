"""Algorithm 1: train the classifier and its self-produced guidance together.

One loop for every backbone and variant, on CPU or GPU, single process or under ``torchrun``
(DistributedDataParallel). Every epoch ends with an atomic checkpoint holding everything needed
to resume to the same result as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from spg_core.checkpoint import (CHECKPOINT, atomic_save, atomic_write_text, read_checkpoint,
                                  remove_stale_temporaries, run_fields)
from spg_core.config import TrainConfig, check_int, out_folder, save_config
from spg_core.data.settings import DataSettings
from spg_core.guidance import SCORE_MAPS, get_preset, self_produced_guidance
from spg_core.losses import checked_c_weight, spg_loss
from spg_core.models import C_INPUT_NORM_DEFAULT, build_model, load_backbone_weights, saved_head_options
from spg_core.replay import REPLAY_FILE, ReplayError, ReplayRecorder, mid_epoch_steps, random_state_kept

log = logging.getLogger("spg_core.train")

LOCK_FILE = "train.lock"  # RUN_DIR/train.lock: held (flock) by the one training that writes the folder
HISTORY_FILE = "history.jsonl"
CONFIG_FILE = "config.yaml"
# What a training writes into RUN_DIR: a folder holding any of these holds a run.
RUN_FILES = (CHECKPOINT, CONFIG_FILE, HISTORY_FILE, REPLAY_FILE)
# Settings a resumed run must share with its checkpoint: another value trains a different run.
RESUME_FIELDS = ("backbone", "variant", "image_size", "format", "data_root", "metadata_root", "synthetic")


class RunLock:
    """Ownership of a run folder while one training writes it: an exclusive ``flock`` on
    RUN_DIR/train.lock, which holds the owner's pid. The kernel drops the lock when the process
    ends however it ends (``kill -9`` included), so a lock is never stale."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE
        self.handle = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a ValueError naming the owner's pid and the lock file."""
        for _ in range(5):
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                handle.close()
                raise ValueError(f"{self.path.parent} is being trained by another process (pid {owner}, lock "
                                 f"{self.path}); wait for it to finish, or pass another --out") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its previous owner removed while this process opened it
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                self.handle = handle
                return self
            handle.close()
        raise ValueError(f"could not take the lock {self.path}: it keeps being replaced; is another training "
                         f"starting in {self.path.parent}?")

    def release(self) -> None:
        """Give the folder up (the lock file is removed)."""
        if self.handle is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # removed while still held: a waiting opener sees a new file
            self.handle.close()
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def resume_differences(saved: dict, config: TrainConfig, saved_classes: int, num_classes: int) -> list[str]:
    """What a resumed run would change of its checkpoint's ``RESUME_FIELDS`` and class count.

    Args:
        saved: the checkpoint's config dict.
        config: the settings of the resumed run.
        saved_classes: the checkpoint's ``num_classes``.
        num_classes: the class count of the data the resumed run reads.

    Returns:
        ``name 'old' (now 'new')`` texts, [] when it trains the same run.
    """
    from spg_core.data.synthetic import SyntheticConfig

    differences = []
    now = config.to_dict()
    for name in RESUME_FIELDS:
        if name not in saved:  # a run saved before the option existed
            continue
        old, new = saved[name], now[name]
        if name == "synthetic":
            if saved.get("format", config.format) != "synthetic":
                continue
            defaults = SyntheticConfig().options()
            keys = sorted((set(old or {}) | set(new or {})) - {"image_size"})
            changed = [k for k in keys if (old or {}).get(k, defaults.get(k)) != (new or {}).get(k, defaults.get(k))]
            differences += [f"synthetic {k} {(old or {}).get(k, defaults.get(k))!r} (now "
                            f"{(new or {}).get(k, defaults.get(k))!r})" for k in changed]
            continue
        if name in ("data_root", "metadata_root") and old and new:
            same = Path(old).resolve() == Path(new).resolve()
        else:
            same = old == new
        if not same:
            differences.append(f"{name} {old!r} (now {new!r})")
    if saved_classes != num_classes:
        differences.append(f"{saved_classes} classes (the dataset now has {num_classes})")
    return differences


# ----------------------------------------------------------------------------- guidance warm-up
class GuidanceSwitch:
    """When the guidance losses switch on (``--guidance-warmup``).

    An integer N: after N epochs of classification only. ``auto`` (the default): as soon as the
    classifier has learned — its accuracy over the last ``AUTO_WINDOW`` training batches reaches
    ``AUTO_ACCURACY`` — and at the latest after half the epochs. Seeds are thresholds of the A4
    map of the ground-truth class, and A4 is a new layer whatever the backbone, so before the
    classifier is right on most images its map, and every mask grown from it, is noise. The rule
    is the same for every backbone, pretrained or not, and waits exactly as long as the
    classifier needs (docs/teaching_recipe.md).
    The state (on, recent batch accuracies) travels in the checkpoint, so a resumed run switches
    at the same step as an uninterrupted one.
    """

    AUTO_ACCURACY = 0.8
    AUTO_WINDOW = 20

    def __init__(self, warmup, epochs: int, state: dict | None = None):
        self.auto = warmup == "auto"
        if not self.auto and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
            raise ValueError(f"guidance_warmup={warmup!r} must be 'auto' or a number of epochs >= 0")
        self.warmup = warmup
        self.latest = max(1, epochs // 2)
        state = state or {}
        self.on = bool(state.get("on", False))
        self.recent: list[float] = list(state.get("recent", []))

    def active(self, epoch: int) -> bool:
        if not self.auto:
            return epoch >= self.warmup
        if not self.on and epoch >= self.latest:
            log.warning("guidance_warmup=auto: the classifier did not reach %.0f%% training accuracy in %d "
                        "epochs; the guidance losses switch on now", 100 * self.AUTO_ACCURACY, self.latest)
            self.on = True
        return self.on

    def observe(self, accuracy: float) -> None:
        """Record one training batch's accuracy (already averaged over processes)."""
        if not self.auto or self.on:
            return
        self.recent = (self.recent + [float(accuracy)])[-self.AUTO_WINDOW:]
        if len(self.recent) == self.AUTO_WINDOW and sum(self.recent) / self.AUTO_WINDOW >= self.AUTO_ACCURACY:
            self.on = True

    def state_dict(self) -> dict:
        return {"on": self.on, "recent": list(self.recent)}


class CollapseWatch:
    """Says when the guidance switching on collapses the classifier (docs/teaching_recipe.md).

    Before the switch it keeps the cross-entropy and accuracy of the last ``WINDOW`` classification
    -only batches: the classifier's level. After it, the same window over the guided batches: a
    mean accuracy below ``RATIO`` × the level before (and at least ``MIN_DROP`` below it) is a
    collapse, said once in the log and kept in the run's history (``collapse``), with the CE
    before and after. The state travels in the checkpoint, like the switch's.
    """

    WINDOW = 20
    RATIO = 0.5
    MIN_DROP = 0.2

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.before: list[tuple[float, float]] = [tuple(v) for v in state.get("before", [])]
        self.after: list[tuple[float, float]] = [tuple(v) for v in state.get("after", [])]
        self.found: dict | None = state.get("found")

    @staticmethod
    def _mean(window, index: int) -> float:
        return sum(v[index] for v in window) / max(len(window), 1)

    def observe(self, guided: bool, accuracy: float, ce: float, epoch: int, step: int) -> dict | None:
        """One training batch: its accuracy (0-1) and cross-entropy, and whether the guidance
        losses were on. Returns the collapse found at this batch (once), else None."""
        if not guided:
            self.before = (self.before + [(float(accuracy), float(ce))])[-self.WINDOW:]
            return None
        if self.found is not None or len(self.before) < self.WINDOW:
            return None
        self.after = (self.after + [(float(accuracy), float(ce))])[-self.WINDOW:]
        if len(self.after) < self.WINDOW:
            return None
        level, now = self._mean(self.before, 0), self._mean(self.after, 0)
        if now < self.RATIO * level and level - now >= self.MIN_DROP:
            self.found = {"epoch": epoch + 1, "step": step + 1, "accuracy_before": round(100 * level, 2),
                          "accuracy_after": round(100 * now, 2), "ce_before": round(self._mean(self.before, 1), 4),
                          "ce_after": round(self._mean(self.after, 1), 4)}
            return self.found
        return None

    def state_dict(self) -> dict:
        return {"before": [list(v) for v in self.before], "after": [list(v) for v in self.after], "found": self.found}


def collapse_text(found: dict) -> str:
    """The log line of a collapse (:class:`CollapseWatch`)."""
    return (f"the classifier collapsed when the guidance switched on: training accuracy "
            f"{found['accuracy_after']:.1f}% over the last {CollapseWatch.WINDOW} guided batches (epoch "
            f"{found['epoch']}, step {found['step']}) against {found['accuracy_before']:.1f}% before, "
            f"cross-entropy {found['ce_after']:.2f} against {found['ce_before']:.2f}; lower --lr, or switch "
            "the guidance on later (--guidance-warmup)")


# ----------------------------------------------------------------------------- runtime helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but CUDA is not available here; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it (CPU autocast, Ampere+ GPUs), fp16 + grad scaler otherwise."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp != "auto":
        raise ValueError(f"unknown --amp {amp!r}; use auto, bf16, fp16 or off")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # On CPUs without native bf16 (AVX2-only, as on many laptops and CI runners) bf16 autocast
    # is emulated and runs slower than fp32, so "auto" only turns it on where the hardware has it.
    return torch.bfloat16 if cpu_has_native_bf16() else None


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def distributed_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every random stream's state, as tensors and plain values (what a safe checkpoint holds)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy = [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)]
    state = {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), int(position), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- building blocks
def build_optimizer(model: torch.nn.Module, config: TrainConfig):
    """Paper §3.3: SGD, 10× learning rate on the added layers, ÷10 step decay.

    Which parameters get the 10× rate is ``config.lr_groups`` (models.LR_GROUPS): the paper's
    rule, or wsolevaluation's name patterns. (The authors' code meant to follow the paper but
    its 10× group matched no parameter name.)
    """
    base, tenfold = model.parameter_groups(config.lr_groups)
    groups = []
    if base:
        groups.append({"params": base, "lr": config.lr})
    if tenfold:
        groups.append({"params": tenfold, "lr": config.lr * config.new_layer_lr_multiplier})
    optimizer = torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=config.nesterov
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.resolved_lr_step(), gamma=config.lr_gamma)
    return optimizer, scheduler


def build_training_model(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    model = build_model(config.backbone, num_classes, variant=config.variant, **config.model_options)
    if config.weights:
        load_backbone_weights(model, config.weights)
    return model


# ----------------------------------------------------------------------------- the loop
def train(config: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    """Run Algorithm 1 and return the final epoch's summary. Writes RUN_DIR/{checkpoint.pt,
    config.yaml, history.jsonl, replay.npz} while holding RUN_DIR/train.lock.

    Args:
        config: the run's settings (``config.out`` is RUN_DIR).
        resume: continue RUN_DIR/checkpoint.pt; refused when the checkpoint was trained with
            another backbone, variant, image size or dataset.
        progress: show a progress bar.
        overwrite: replace a run already in RUN_DIR (its checkpoint, config, history and replay
            are deleted once the new run is set up). Without it, or ``resume``, a folder holding
            a run is refused.

    Returns:
        The last epoch's summary (also the last line of history.jsonl).

    Raises:
        ValueError: a refused folder or resume (one line naming it and the fix).
        FloatingPointError: the loss or the weights became non-finite; the checkpoint on disk
            is the last good one.
    """
    if resume and overwrite:
        raise ValueError("pass --resume (continue the run) or --overwrite (replace it), not both")
    check_int("epochs", config.epochs)  # a stored config may say 0 (an imported run); a training needs 1
    out = out_folder(config.out)
    if distributed_info()[0] != 0:
        return _train(config, resume, progress, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        existing = [name for name in RUN_FILES if (out / name).exists()]
        if existing and not resume and not overwrite:
            raise ValueError(f"{out} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
                             f"--overwrite to replace it, or another --out")
        for stale in remove_stale_temporaries(out, RUN_FILES):
            log.info("removed %s, left by a save that was interrupted", stale)
        return _train(config, resume, progress, overwrite)


def _train(config: TrainConfig, resume: bool, progress: bool, overwrite: bool) -> dict:
    from spg_core.data import collate

    rank, local_rank, world = distributed_info()
    is_main = rank == 0
    device = resolve_device(config.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = resolve_amp(config.amp, device)
    preset = get_preset(config.preset)
    c_weight = checked_c_weight(config.c_loss_weight)  # a bad value fails now, not after the warm-up
    out = Path(config.out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / CHECKPOINT

    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    train_set = DataSettings.from_config(config).dataset("train", train=True)
    num_classes = train_set.num_classes
    state = read_checkpoint(checkpoint_path) if resume and checkpoint_path.exists() else None
    if state is not None:
        saved, saved_classes = run_fields(state, checkpoint_path)
        differences = resume_differences(saved, config, saved_classes, num_classes)
        if differences:
            raise ValueError(f"--resume: {checkpoint_path} was trained with {'; '.join(differences)}; resume with "
                             f"the run's own settings (its config.yaml), or train into another --out")
    # The head defaults a run was built with are written into its config (a later default does not
    # change it); a run saved before they were written resumes with the heads its weights have.
    options = saved_head_options(config.model_options, state["model"]) if state else dict(config.model_options)
    options.setdefault("c_input_norm", C_INPUT_NORM_DEFAULT)
    config = dataclasses.replace(config, model_options=options)  # the caller's config stays as given
    model = build_training_model(config, num_classes)
    if config.sync_batchnorm and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, config)
    history: list[dict] = []
    start_epoch = 0
    switch_state = watch_state = None

    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"]
        history = state.get("history", [])
        switch_state = state.get("guidance_switch")
        watch_state = state.get("collapse_watch")
        set_rng_state(state["rng"])
        if is_main:
            log.info("resumed %s at epoch %d", checkpoint_path, start_epoch)
    elif resume and is_main:
        log.warning("--resume: no checkpoint at %s, starting from scratch", checkpoint_path)

    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.variant != "plain",
        )
    switch = GuidanceSwitch(config.guidance_warmup, config.epochs, switch_state)
    watch = CollapseWatch(watch_state)
    recorder = replay_recorder(config, preset, out, start_epoch) if is_main else None
    if is_main:
        if overwrite:  # the old run's files go only now, when the new run is set up
            for name in RUN_FILES:
                if (out / name).exists():
                    (out / name).unlink()
                    log.info("--overwrite: removed %s", out / name)
        save_config(config, out / CONFIG_FILE)
    steps_done = sum(int(h.get("steps", 0)) for h in history)
    if recorder is not None and start_epoch == 0 and recorder.empty:
        recorder.record(model, 0.0, steps_done)  # before any training
    elif recorder is not None and start_epoch > 0 and recorder.lacks(start_epoch):
        # The run stopped between its checkpoint and its replay write: the loaded weights are the
        # ones that record shows, and recording uses no random numbers, so it is made now.
        recorder.record(model, float(start_epoch), steps_done)
        log.info("recorded the replay of epoch %d, which the interrupted run had not written", start_epoch)
    cascade = config.variant != "no-cascade"
    mask_size = config.resolved_mask_size()
    summary: dict = history[-1] if history else {}
    for epoch in range(start_epoch, config.epochs):
        # Shuffling, crops and dropout of epoch e depend on (seed, e) only, so a resumed run
        # replays exactly what the uninterrupted one would have done.
        epoch_seed = config.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed)
        generator = torch.Generator().manual_seed(epoch_seed)
        sampler = None
        if world > 1:
            sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, seed=config.seed)
            sampler.set_epoch(epoch)
        loader = DataLoader(
            train_set,
            batch_size=config.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            num_workers=config.num_workers,
            collate_fn=collate,
            drop_last=len(train_set) // world > config.batch_size,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        guided = config.variant != "plain"
        guided_steps = 0
        # The first guided epoch is recorded a few times inside too: the guidance changes fastest there.
        first_guided = guided and not any(h.get("guidance") for h in history)
        net.train()
        totals = {"images": 0, "correct": 0, "skipped": 0, "steps": 0}
        loss_sums: dict[str, float] = {}
        started = time.time()
        steps = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
        record_steps = mid_epoch_steps(steps) if recorder is not None and first_guided else set()
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (progress and is_main), leave=False)
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            totals["skipped"] += batch.get("num_skipped", 0)
            if batch["image"].shape[0] == 0:
                continue
            images = batch["image"].to(device, non_blocking=True)
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = batch["label"].to(device, non_blocking=True)
            use_guidance = guided and switch.active(epoch)
            guided_steps += int(use_guidance)
            with autocast(device, amp_dtype):
                outputs = net(images, with_guidance=use_guidance)
            guidance = (
                self_produced_guidance(outputs, labels, preset, mask_size=mask_size, cascade=cascade)
                if use_guidance
                else None
            )
            losses = spg_loss(outputs, labels, guidance, config.bce_balance, c_weight)
            if not torch.isfinite(losses["total"]):
                raise FloatingPointError(
                    f"non-finite loss {losses['total'].item()} at epoch {epoch + 1} step {step + 1}: training "
                    f"diverged and stopped; {_kept_text(checkpoint_path, epoch)}; lower --lr "
                    f"(now {config.lr}) or use --amp off"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            n = labels.shape[0]
            correct = int((outputs["logits"].argmax(1) == labels).sum())
            totals["images"] += n
            totals["steps"] += 1
            totals["correct"] += correct
            if guided:
                counts = _reduce({"correct": correct, "n": n, "ce": float(losses["ce"].detach()) * n}, device, world)
                batch_accuracy = counts["correct"] / max(counts["n"], 1)
                if not use_guidance:
                    switch.observe(batch_accuracy)
                found = watch.observe(use_guidance, batch_accuracy, counts["ce"] / max(counts["n"], 1), epoch, step)
                if found is not None and is_main:
                    log.warning(collapse_text(found))
            for name, value in losses.items():
                loss_sums[name] = loss_sums.get(name, 0.0) + float(value.detach()) * n
            if recorder is not None and first_guided and use_guidance and step in record_steps:
                recorder.record(model, epoch + (step + 1) / steps, steps_done + totals["steps"])
            bar.set_postfix(loss=f"{loss_sums['total'] / totals['images']:.3f}",
                            acc=f"{100 * totals['correct'] / totals['images']:.1f}")
            bar.update()
        bar.close()
        epoch_lr = optimizer.param_groups[-1]["lr"]  # the rate this epoch trained at (the 10× group)
        scheduler.step()
        reduced = _reduce({**totals, **loss_sums}, device, world)
        images_seen = max(reduced["images"], 1)
        summary = {
            "epoch": epoch + 1,
            "train_accuracy": 100.0 * reduced["correct"] / images_seen,
            "images": int(reduced["images"]),
            "skipped_images": int(reduced["skipped"]),
            "guidance": guided_steps > 0,
            "guided_steps": guided_steps,
            "lr": epoch_lr,
            "steps": int(totals["steps"]),
            "seconds": time.time() - started,
            **{f"loss_{k}": reduced[k] / images_seen for k in loss_sums},
        }
        if watch.found is not None and watch.found["epoch"] == epoch + 1:
            summary["collapse"] = watch.found
        history.append(summary)
        bad = [name for name, value in model.state_dict().items()
               if value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:  # a NaN/inf weight after the last step would pass the loss check: never save it
            raise FloatingPointError(
                f"the weights became non-finite in epoch {epoch + 1} ({bad[0]} first): training diverged and "
                f"stopped; {_kept_text(checkpoint_path, epoch)}; lower --lr (now "
                f"{config.lr}) or use --amp off")
        if is_main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "rng": rng_state(),
                "config": config.to_dict(),
                "num_classes": num_classes,
                "class_names": list(getattr(train_set, "class_names", [])),
                "history": history,
                "guidance_switch": switch.state_dict(),
                "collapse_watch": watch.state_dict(),
            }
            atomic_save(state, checkpoint_path)
            steps_done += totals["steps"]
            # Killed here, before the replay's record of this epoch: a resume records it first.
            if recorder is not None:
                recorder.record(model, float(epoch + 1), steps_done)
            atomic_write_text("".join(json.dumps(h) + "\n" for h in history), out / HISTORY_FILE)
            if summary["skipped_images"]:
                log.warning("epoch %d skipped %d unreadable images", epoch + 1, summary["skipped_images"])
            log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
        if world > 1:
            dist.barrier()
    return summary


def _kept_text(checkpoint_path: Path, epochs_done: int) -> str:
    """What a run that diverged in epoch ``epochs_done + 1`` leaves on disk, for its error message."""
    if epochs_done > 0:
        return f"{checkpoint_path} is kept at epoch {epochs_done}, the last finite one"
    return f"no checkpoint was written to {checkpoint_path.parent}"


def replay_recorder(config: TrainConfig, preset, out: Path, epochs_done: int) -> ReplayRecorder | None:
    """The recorder of RUN_DIR/replay.npz (``config.replay_images`` validation images), or None
    when it is off or the data has no validation split to draw them from."""
    if not config.replay_images:
        return None
    # The maps the variant has: SPG-plain has no B/C branches, no-c no SPG-C.
    names = tuple(name for name in SCORE_MAPS if name == "attention"
                  or (config.variant != "plain" and not (name == "c" and config.variant == "no-c")))
    try:
        with random_state_kept():
            val = DataSettings.from_config(config).dataset("val")
        if len(val) == 0:
            raise ValueError("it is empty")
        return ReplayRecorder(val, config.replay_images, preset, out, map_names=names, epochs_done=epochs_done)
    except ReplayError:
        raise  # the run's own replay.npz is damaged: the user decides, the run does not drop it silently
    except (ValueError, FileNotFoundError, OSError) as error:
        log.warning("no training replay: the validation split cannot be used (%s)", error)
        return None


def _reduce(values: dict, device: torch.device, world: int) -> dict:
    """Sum per-rank counters across processes (metrics of the whole epoch, not of rank 0)."""
    if world == 1:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def epochs_done(run_dir: str | Path) -> int:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return 0
    return int(read_checkpoint(path)["epoch"])


__all__ = ["train", "TrainConfig", "GuidanceSwitch", "resolve_device", "resolve_amp", "epochs_done"]
