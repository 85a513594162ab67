"""Hostile and broken input on the command line, in training and in checkpoints.

Each case builds its input and asserts the defined outcome: a one-line error naming the value and
the fix with exit code 2 (or the defined result), and that nothing already on disk changed. No
code runs from any file the commands are pointed at; a run folder has one owner and is never
silently replaced or mixed."""
from __future__ import annotations

import collections
import errno
import io
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spg_core.cli import main
from test_hostile import memory_probe

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--backbone", "tiny", "--image-size", "64", "--synthetic-classes", "2", "--synthetic-train", "8",
        "--synthetic-val", "4", "--synthetic-test", "4", "--batch-size", "4", "--device", "cpu", "--amp", "off",
        "--threads", "1", "--replay-images", "2"]


# ----------------------------------------------------------------------------- helpers
def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    """(exit code, the one error line) of ``python -m spg_core ARGV``; fails on a traceback or on
    more than one error line."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return code, errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_record(folder: Path) -> dict[str, bytes]:
    """The files of a run that record its training (a resume rewrites config.yaml with its own settings)."""
    return {name: data for name, data in snapshot(folder).items() if name != "config.yaml"}


def train_args(run: Path, *extra) -> list:
    return ["train", *DATA, "--max-steps-per-epoch", "1", "--out", run, *extra]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A one-epoch run of the tiny backbone with a replay, trained once for this module."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main([str(a) for a in train_args(run, "--epochs", "1")]) == 0
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of ``trained_run`` a test may change."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def image(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (120, 40, 200)).save(path)
    return path


# ----------------------------------------------------------------------------- checkpoints that would run code
class OpensAFile:
    """Unpickled with full trust, this creates the file at ``path``: the code a crafted checkpoint runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_convert_checkpoint_refuses_a_payload_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save({"model": {}, "epoch": 1, "payload": OpensAFile(marker)}, path)
    before = path.read_bytes()
    code, line = run_cli(capsys, ["convert-checkpoint", path.parent])
    assert code == 2 and str(path) in line and "io.open" in line
    assert not marker.exists()  # nothing ran
    assert path.read_bytes() == before  # and the evidence is kept


def test_the_safe_reader_never_advises_converting_a_file_holding_other_globals(tmp_path, capsys):
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save({"model": {}, "epoch": 1, "rng": np.zeros(3, np.uint32), "payload": OpensAFile(tmp_path / "x")}, path)
    code, line = run_cli(capsys, ["localize", image(tmp_path / "a.png"), "--run", path.parent, "--out", tmp_path / "o"])
    assert code == 2 and str(path) in line and "io.open" in line
    assert "convert-checkpoint" not in line
    # a file holding NumPy arrays only may be converted, and the advice says by whom
    torch.save({"model": {}, "epoch": 1, "rng": np.zeros(3, np.uint32)}, path)
    code, line = run_cli(capsys, ["localize", tmp_path / "a.png", "--run", path.parent, "--out", tmp_path / "o"])
    assert code == 2 and "convert-checkpoint" in line and "only if this project's training wrote it" in line
    assert not (tmp_path / "o").exists()


def test_convert_checkpoint_admits_an_old_runs_numpy_arrays_and_nothing_else(tmp_path, capsys):
    from spg_core.checkpoint import read_checkpoint

    state = {"model": {"w": torch.ones(2)}, "epoch": 1, "rng": {"numpy": np.random.get_state()},
             "history": [{"loss": np.float64(0.5), "steps": np.int64(3)}]}
    new = tmp_path / "new.pt"
    torch.save(state, new)
    old = tmp_path / "old.pt"  # as NumPy 1.x names its reconstruction globals
    with zipfile.ZipFile(new) as source, zipfile.ZipFile(old, "w") as target:
        for entry in source.infolist():
            data = source.read(entry.filename)
            if entry.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(entry.filename, data)
    capsys.readouterr()
    assert main(["convert-checkpoint", str(new), str(old)]) == 0
    for path in (new, old):
        converted = read_checkpoint(path)
        assert converted["history"] == [{"loss": 0.5, "steps": 3}]
        assert torch.equal(converted["rng"]["numpy"][1], torch.from_numpy(state["rng"]["numpy"][1].copy()))
    # NumPy's globals alone are not enough: an object array (which holds any object) is refused
    path = tmp_path / "objects.pt"
    torch.save({"model": {}, "epoch": 1, "names": np.array(["a", 1], dtype=object)}, path)
    before = path.read_bytes()
    code, line = run_cli(capsys, ["convert-checkpoint", path])
    assert code == 2 and str(path) in line and "ObjectDType" in line
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- a deflated tensor
def deflated_checkpoint(path: Path, inflated_bytes: int) -> None:
    """A checkpoint whose one float tensor is stored deflated: a few hundred kB on disk that
    torch would inflate to ``inflated_bytes``. Written in chunks, never held in memory."""
    numel = inflated_bytes // 4
    storage = object()

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (storage, 0, (numel,), (1,), False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is storage else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"model": {"w": Tensor()}, "epoch": 1})
    with zipfile.ZipFile(path, "w", compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        entry = zipfile.ZipInfo("archive/data/0")
        entry.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(1 << 20)
        with archive.open(entry, "w", force_zip64=True) as handle:
            for _ in range(inflated_bytes >> 20):
                handle.write(chunk)


def test_a_deflated_checkpoint_tensor_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "checkpoint.pt"
    deflated_checkpoint(path, 192 << 20)
    assert path.stat().st_size < 2 << 20
    result = memory_probe("from spg_core.checkpoint import CheckpointError, read_checkpoint",
                          "read_checkpoint(sys.argv[1])", "CheckpointError", path)
    assert str(path) in result["outcome"] and "compressed" in result["outcome"], result
    assert "\n" not in result["outcome"]
    assert result["grew_mb"] < 48, result


# ----------------------------------------------------------------------------- a run folder has one owner
def test_training_into_an_existing_run_without_resume_is_refused(run_copy, capsys):
    before = snapshot(run_copy)
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "1"))
    assert code == 2 and str(run_copy) in line and "--overwrite" in line and "--resume" in line
    assert snapshot(run_copy) == before


def test_overwrite_replaces_the_whole_run(run_copy, capsys):
    from spg_core.checkpoint import read_checkpoint

    args = train_args(run_copy, "--epochs", "1", "--replay-images", "0", "--variant", "plain", "--overwrite")
    capsys.readouterr()
    assert main([str(a) for a in args]) == 0
    assert not (run_copy / "replay.npz").exists()  # the old run's replay is not mixed in
    assert len((run_copy / "history.jsonl").read_text().splitlines()) == 1
    assert read_checkpoint(run_copy / "checkpoint.pt")["config"]["variant"] == "plain"
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "2", "--overwrite", "--resume"))
    assert code == 2 and "not both" in line


def test_a_second_training_on_a_run_being_trained_is_refused(tmp_path, capsys):
    from spg_core.train import LOCK_FILE, RunLock

    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):  # another training holds the folder
        code, line = run_cli(capsys, train_args(run, "--epochs", "1"))
        assert code == 2 and str(run / LOCK_FILE) in line and "pid" in line
        assert [p.name for p in run.iterdir()] == [LOCK_FILE]
    assert not (run / LOCK_FILE).exists()  # released with its owner


@pytest.mark.parametrize("flags, named", [
    (["--variant", "plain"], "variant 'spg' (now 'plain')"),
    (["--backbone", "vgg16"], "backbone 'tiny' (now 'vgg16')"),
    (["--image-size", "96"], "image_size 64 (now 96)"),
    (["--synthetic-train", "12"], "synthetic num_train 8 (now 12)"),
])
def test_resuming_with_other_settings_is_refused_naming_the_difference(run_copy, capsys, flags, named):
    before = snapshot(run_copy)
    code, line = run_cli(capsys, [*train_args(run_copy, "--epochs", "2", "--resume"), *flags])
    assert code == 2 and named in line and str(run_copy / "checkpoint.pt") in line
    assert snapshot(run_copy) == before


# ----------------------------------------------------------------------------- values out of range
@pytest.mark.parametrize("flag, value", [
    ("--epochs", "0"), ("--max-steps-per-epoch", "0"), ("--image-size", "0"), ("--replay-images", "-3"),
    ("--lr-step", "-2"), ("--mask-size", "-4"), ("--mask-size", "100000"), ("--threads", "-2"), ("--lr", "nan"),
    ("--lr", "inf"), ("--lr", "0"), ("--lr", "-0.1"), ("--batch-size", "0"), ("--epochs", "three"),
])
def test_train_refuses_an_out_of_range_value_naming_it_and_the_range(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    code, line = run_cli(capsys, ["train", *DATA, "--epochs", "1", "--max-steps-per-epoch", "1", flag, value,
                                  "--out", out])
    assert code == 2 and flag in line and repr(value) in line and "use a" in line
    assert not out.exists()


@pytest.mark.parametrize("tau", ["2", "nan", "-1"])
def test_localize_refuses_a_tau_outside_0_1(tmp_path, capsys, tau):
    code, line = run_cli(capsys, ["localize", image(tmp_path / "a.png"), "--tau", tau, "--out", tmp_path / "o"])
    assert code == 2 and "--tau" in line and repr(tau) in line and "[0, 1]" in line
    assert not (tmp_path / "o").exists()


def test_localization_box_refuses_a_tau_outside_0_1():
    from spg_core.localize import localization_box

    for tau in (2.0, float("nan"), -1.0):
        with pytest.raises(ValueError, match="tau"):
            localization_box(np.ones((4, 4)), tau)


def test_localize_refuses_two_images_that_would_write_one_folder(tmp_path, capsys):
    a, b = image(tmp_path / "a" / "x.png"), image(tmp_path / "b" / "x.png")
    code, line = run_cli(capsys, ["localize", a, b, "--out", tmp_path / "o"])
    assert code == 2 and str(a) in line and str(b) in line and str(tmp_path / "o" / "x") in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["train", "localize"])
def test_an_out_that_is_a_file_is_refused(tmp_path, capsys, command):
    out = tmp_path / "taken"
    out.write_text("mine")
    argv = train_args(out, "--epochs", "1") if command == "train" else ["localize", image(tmp_path / "a.png"),
                                                                        "--out", out]
    code, line = run_cli(capsys, argv)
    assert code == 2 and str(out) in line and "is a file" in line
    assert out.read_text() == "mine"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    code, line = run_cli(capsys, ["localize", image(tmp_path / "a.png"), "--device", "cuda", "--out", tmp_path / "o"])
    assert code == 2 and "--device cuda" in line and "CUDA is not available" in line
    code, line = run_cli(capsys, train_args(tmp_path / "run", "--epochs", "1", "--device", "cuda"))
    assert code == 2 and "--device cuda" in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- divergence
def test_lr_1e30_stops_with_one_line_instead_of_a_traceback(tmp_path, capsys):
    run = tmp_path / "run"
    code, line = run_cli(capsys, ["train", *DATA, "--synthetic-train", "16", "--epochs", "1", "--lr", "1e30",
                                  "--out", run])
    assert code == 2 and "non-finite loss" in line and "1e+30" in line and "no checkpoint was written" in line
    assert not (run / "checkpoint.pt").exists()


def test_a_non_finite_loss_on_resume_keeps_the_good_checkpoint(run_copy, capsys, monkeypatch):
    import spg_core.train

    real_loss = spg_core.train.spg_loss

    def nan_loss(*args, **kwargs):
        losses = real_loss(*args, **kwargs)
        return {**losses, "total": losses["total"] * float("nan")}

    before = run_record(run_copy)
    monkeypatch.setattr(spg_core.train, "spg_loss", nan_loss)
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "2", "--resume"))
    monkeypatch.undo()
    assert code == 2 and "non-finite loss nan at epoch 2" in line and "kept at epoch 1" in line
    assert run_record(run_copy) == before


def test_weights_gone_non_finite_in_the_last_step_are_never_saved(run_copy, capsys, monkeypatch):
    from spg_core.checkpoint import read_checkpoint

    real_step = torch.optim.SGD.step

    def step_to_nan(self, *args, **kwargs):  # what --lr nan did: a finite loss, then NaN weights
        result = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("nan"))
        return result

    before = run_record(run_copy)
    monkeypatch.setattr(torch.optim.SGD, "step", step_to_nan)
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "2", "--resume"))
    monkeypatch.undo()
    assert code == 2 and "non-finite in epoch 2" in line and "kept at epoch 1" in line
    assert run_record(run_copy) == before
    state = read_checkpoint(run_copy / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# ----------------------------------------------------------------------------- NaN pixels
def test_a_nan_pixel_counts_as_the_maps_minimum_not_as_an_empty_map():
    from spg_core.localize import localization_box

    score = np.zeros((8, 8))
    score[2:5, 3:7] = 1.0
    broken = score.copy()
    broken[0, 0] = np.nan
    assert localization_box(broken, 0.5) == localization_box(score, 0.5) == (3, 2, 6, 4)


class NanPixelModel(torch.nn.Module):
    """A two-class stand-in whose attention map has one NaN value."""

    num_classes = 2
    variant = "plain"

    def forward(self, x, with_guidance=False):
        maps = torch.zeros(x.shape[0], 2, 4, 4)
        maps[:, :, 1:3, 1:3] = 1.0
        maps[:, :, 0, 0] = float("nan")
        return {"logits": torch.tensor([[2.0, 0.0]]).expand(x.shape[0], 2), "class_maps": maps}


def test_localize_counts_nan_pixels_and_sets_them_to_the_minimum(tmp_path):
    from PIL import Image

    from spg_core.localize import Localizer

    stage = Localizer(NanPixelModel(), 32).predict(Image.new("RGB", (32, 32)))
    assert stage.nonfinite["attention"] > 0
    assert np.isfinite(stage.maps["attention"]).all()
    assert stage.maps["attention"].max() == 1.0


# ----------------------------------------------------------------------------- files that gave tracebacks
def test_a_checkpoint_without_config_or_with_a_wrong_class_count_is_one_line(run_copy, tmp_path, capsys):
    from spg_core.checkpoint import read_checkpoint

    path = run_copy / "checkpoint.pt"
    state = read_checkpoint(path)
    picture = image(tmp_path / "a.png")
    torch.save({k: v for k, v in state.items() if k != "config"}, path)
    code, line = run_cli(capsys, ["localize", picture, "--run", run_copy, "--out", tmp_path / "o"])
    assert code == 2 and str(path) in line and "'config'" in line
    torch.save({**state, "num_classes": 5}, path)
    code, line = run_cli(capsys, ["localize", picture, "--run", run_copy, "--out", tmp_path / "o"])
    assert code == 2 and str(path) in line and "5 classes" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, named", [
    ("epochs: [1, 2\n", ":2:"),
    ("epochs: !!python/object/apply:os.system ['touch {marker}']\n", "python/object/apply:os.system"),
    ('epochs: "three"\n', "epochs='three'"),
    ("lr: .nan\n", "lr=nan"),
])
def test_a_broken_or_hostile_config_file_is_one_line_naming_it(tmp_path, capsys, text, named):
    marker = tmp_path / "ran"
    config = tmp_path / "c.yaml"
    config.write_text(text.format(marker=marker))
    code, line = run_cli(capsys, train_args(tmp_path / "run", "--config", config))
    assert code == 2 and str(config) in line and named in line
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_hostile_model_option_is_one_line(tmp_path, capsys):
    code, line = run_cli(capsys, train_args(tmp_path / "run", "--model-option", "x=!!python/name:os.system"))
    assert code == 2 and "--model-option" in line and "python/name:os.system" in line
    assert not (tmp_path / "run").exists()


def test_a_truncated_replay_is_one_line_on_resume_and_when_read(run_copy, capsys):
    from spg_core.replay import load_replay

    replay = run_copy / "replay.npz"
    replay.write_bytes(replay.read_bytes()[: replay.stat().st_size // 2])
    before = snapshot(run_copy)
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "2", "--resume"))
    assert code == 2 and str(replay) in line and "delete it" in line
    assert snapshot(run_copy) == before
    with pytest.raises(ValueError, match="not a training replay") as refused:
        load_replay(run_copy)
    assert str(replay) in str(refused.value) and "\n" not in str(refused.value)


def test_a_full_disk_during_the_checkpoint_write_is_one_line_and_keeps_the_old_one(run_copy, capsys, monkeypatch):
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, io.BytesIO())
        handle = open(f, "wb") if isinstance(f, (str, Path)) else f
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    before = snapshot(run_copy)
    monkeypatch.setattr(torch, "save", full_disk)
    code, line = run_cli(capsys, train_args(run_copy, "--epochs", "2", "--resume"))
    monkeypatch.undo()
    assert code == 2 and str(run_copy / "checkpoint.pt") in line and "No space left on device" in line
    after = snapshot(run_copy)
    assert not [name for name in after if name.endswith(".tmp")]
    assert after["checkpoint.pt"] == before["checkpoint.pt"] and after["replay.npz"] == before["replay.npz"]


class Killed(BaseException):
    """Stands for ``kill -9`` at one point of the loop."""


def test_a_kill_between_checkpoint_and_replay_loses_no_replay_record(run_copy, capsys, monkeypatch, tmp_path):
    from spg_core.replay import ReplayRecorder, load_replay

    real_record = ReplayRecorder.record

    def killed_after_the_checkpoint(self, model, epochs_done, steps_done):
        if epochs_done == 2.0:
            raise Killed
        return real_record(self, model, epochs_done, steps_done)

    monkeypatch.setattr(ReplayRecorder, "record", killed_after_the_checkpoint)
    with pytest.raises(Killed):
        main([str(a) for a in train_args(run_copy, "--epochs", "2", "--resume")])
    monkeypatch.undo()
    assert load_replay(run_copy).epochs.tolist() == [0.0, 1.0]  # epoch 2 checkpointed, not recorded
    assert main([str(a) for a in train_args(run_copy, "--epochs", "3", "--resume")]) == 0
    resumed = load_replay(run_copy)
    straight = tmp_path / "straight"
    assert main([str(a) for a in train_args(straight, "--epochs", "3")]) == 0
    uninterrupted = load_replay(straight)
    assert resumed.epochs.tolist() == uninterrupted.epochs.tolist() == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(resumed.maps, uninterrupted.maps)


def test_temporaries_of_a_save_killed_midway_are_removed_on_resume(run_copy, capsys):
    stale = [run_copy / "checkpoint.pt.k1ll3d.tmp", run_copy / "replay.npz.x.tmp"]
    for path in stale:
        path.write_bytes(b"PK\x03\x04 half")
    assert main([str(a) for a in train_args(run_copy, "--epochs", "2", "--resume")]) == 0
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]


def test_a_nan_pixel_in_a_scored_map_is_counted_and_does_not_empty_it_under_the_paper_protocol():
    """E.evaluate_maps: under the paper protocol a NaN pixel is the map's minimum (the box stays
    where the map is); under wsolevaluation's the map scores as zeros, as WE does; both say how
    many maps held such pixels."""
    from spg_core import evaluate as E

    score = np.zeros((40, 40))
    score[10:20, 10:20] = 1.0
    broken = score.copy()
    broken[0, 0] = np.nan
    gt = {"a": (np.array([[10.0, 10.0, 19.0, 19.0]]), (40, 40)), "b": (np.array([[10.0, 10.0, 19.0, 19.0]]), (40, 40))}
    paper, rows, _ = E.evaluate_maps([("a", score), ("b", broken)], gt, "paper", 0.05, tau=0.5)
    assert [round(r["iou"], 3) for r in rows] == [1.0, 1.0]
    assert paper["maps_with_nonfinite_pixels"] == {"count": 1, "pixels": 1, "first": ["b"],
                                                   "rule": "pixels set to the map's minimum"}
    clean, _, _ = E.evaluate_maps([("a", score), ("b", score)], gt, "paper", 0.05, tau=0.5)
    assert "maps_with_nonfinite_pixels" not in clean
    we, _, _ = E.evaluate_maps([("a", score), ("b", broken)], gt, "wsolevaluation", 0.05)
    assert we["maps_with_nonfinite_pixels"]["rule"] == "map scored as zeros"


def test_an_image_without_a_gt_box_is_named():
    from spg_core import evaluate as E

    gt = {"cat.png": (np.zeros((0, 4)), (40, 40))}
    with pytest.raises(ValueError, match=r"image 'cat.png' has no GT box"):
        E.evaluate_maps([("cat.png", np.ones((40, 40)))], gt, "paper", 0.05, tau=0.5)
