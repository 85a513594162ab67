"""Training replay: what is recorded, that recording changes nothing, resume without gap or duplicate."""
import numpy as np
import pytest
import torch

from spg_core.replay import REPLAY_FILE, STAGE_NAMES, STAT_NAMES, Replay, load_replay, mid_epoch_steps, seed_quality
from spg_core.train import train
from test_train import small_config


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_a_run_records_every_epoch_and_inside_the_first_guided_one(tmp_path):
    config = small_config(tmp_path, guidance_warmup=1, epochs=2, max_steps_per_epoch=4, replay_images=3)
    train(config, progress=False)
    replay = load_replay(tmp_path / "run")
    # before training, end of epoch 1 (CE only), three times inside epoch 2 (the first guided one), its end
    assert replay.epochs.tolist() == pytest.approx([0.0, 1.0, 1.25, 1.5, 1.75, 2.0])
    assert replay.steps.tolist() == [0, 4, 5, 6, 7, 8]
    assert replay.map_names == ("attention", "b2", "b1", "fused", "c")
    assert replay.maps.shape == (6, 3, 5, 64, 64) and replay.maps.dtype == np.uint8
    assert replay.images.shape == (3, 64, 64, 3) and replay.objects.shape == (3, 64, 64)
    assert replay.objects.any(axis=(1, 2)).all()  # every image has its object
    assert replay.stats.shape == (6, 3, len(STAGE_NAMES), len(STAT_NAMES))
    # the attention map is min-max normalised: its maximum is 255 in every record
    assert (replay.maps[:, :, 0].reshape(6, 3, -1).max(axis=2) == 255).all()
    maps = replay.stage_maps(5, 0)
    assert set(maps) == set(replay.map_names) and 0.0 <= maps["fused"].min() <= maps["fused"].max() <= 1.0
    assert not np.array_equal(replay.maps[0], replay.maps[-1])  # the network changed


@pytest.mark.slow
def test_recording_leaves_training_unchanged(tmp_path):
    on = small_config(tmp_path / "on", guidance_warmup=1, replay_images=4)
    off = small_config(tmp_path / "off", guidance_warmup=1, replay_images=0)
    train(on, progress=False)
    train(off, progress=False)
    assert (tmp_path / "on" / "run" / REPLAY_FILE).is_file()
    assert not (tmp_path / "off" / "run" / REPLAY_FILE).exists()
    a, b = _weights(tmp_path / "on" / "run"), _weights(tmp_path / "off" / "run")
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_a_resumed_run_continues_its_replay_without_gap_or_duplicate(tmp_path):
    full = small_config(tmp_path / "a", guidance_warmup=1, epochs=3, replay_images=2)
    train(full, progress=False)
    train(small_config(tmp_path / "b", guidance_warmup=1, epochs=2, replay_images=2), progress=False)
    # a crash during epoch 3 would leave records past the checkpoint: simulate one
    partial = load_replay(tmp_path / "b" / "run")
    partial.maps = np.concatenate([partial.maps, partial.maps[-1:]])
    partial.epochs = np.append(partial.epochs, np.float32(2.5))
    partial.steps = np.append(partial.steps, 99)
    partial.stats = np.concatenate([partial.stats, partial.stats[-1:]])
    partial.save(tmp_path / "b" / "run" / REPLAY_FILE)
    train(small_config(tmp_path / "b", guidance_warmup=1, epochs=3, replay_images=2), resume=True, progress=False)
    a, b = load_replay(tmp_path / "a" / "run"), load_replay(tmp_path / "b" / "run")
    assert b.epochs.tolist() == a.epochs.tolist() and b.steps.tolist() == a.steps.tolist()
    np.testing.assert_array_equal(a.maps, b.maps)


@pytest.mark.slow
def test_plain_records_only_its_attention_map(tmp_path):
    train(small_config(tmp_path, variant="plain", epochs=1, replay_images=2), progress=False)
    replay = load_replay(tmp_path / "run")
    assert replay.map_names == ("attention",)
    assert np.isnan(replay.stats[:, :, 1:]).all() and not np.isnan(replay.stats[:, :, 0, 0]).all()


def test_seed_quality_counts_precision_and_coverage():
    obj = np.zeros((4, 4), bool)
    obj[:2] = True  # 8 object pixels
    mask = np.full((4, 4), 255, np.uint8)
    mask[0, :] = 1  # 4 foreground seeds on the object
    mask[3, 0] = 1  # one off it
    mask[3, 1:] = 0  # background seeds off the object
    precision, coverage, background, foreground = seed_quality(mask, obj)
    assert precision == pytest.approx(4 / 5) and coverage == pytest.approx(4 / 8)
    assert background == pytest.approx(1.0) and foreground == pytest.approx(5 / 16)


def test_a_broken_replay_file_says_so(tmp_path):
    (tmp_path / REPLAY_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a training replay"):
        Replay.load(tmp_path / REPLAY_FILE)
    assert load_replay(tmp_path / "missing") is None


def test_mid_epoch_steps():
    assert mid_epoch_steps(4) == {0, 1, 2}
    assert mid_epoch_steps(100) == {24, 49, 74}
    assert mid_epoch_steps(1) == set()


def _hand_replay(maps: np.ndarray, objects: np.ndarray) -> Replay:
    records, count, names = maps.shape[0], maps.shape[1], ("attention", "b2", "b1", "fused", "c")[: maps.shape[2]]
    return Replay([f"i{k}" for k in range(count)], np.zeros(count, np.int64), np.zeros((count, 16, 16, 3), np.uint8),
                  objects, names, maps, np.arange(records, dtype=np.float32), np.arange(records, dtype=np.int64),
                  np.full((records, count, len(STAGE_NAMES), len(STAT_NAMES)), np.nan, np.float32), "paper")


def test_the_replay_curve_boxes_a_map_on_the_object_and_misses_one_turned_inside_out():
    objects = np.zeros((2, 16, 16), bool)
    objects[0, 2:8, 3:10] = True
    objects[1, 9:15, 6:14] = True
    on_object = np.where(objects, 255, 20).astype(np.uint8)
    inside_out = np.where(objects, 20, 255).astype(np.uint8)
    maps = np.zeros((2, 2, 2, 16, 16), np.uint8)  # records × images × (attention, b2) × side × side
    maps[0, :, 0], maps[1, :, 0] = on_object, inside_out  # attention: right, then inverted
    replay = _hand_replay(maps, objects)  # b2 stays all zero: a map this variant lacks
    accuracy = replay.box_accuracy()
    assert accuracy["attention"].tolist() == [1.0, 0.0]
    assert np.isnan(accuracy["b2"]).all()
    means = replay.object_background_means()["attention"]
    assert means[0, 0] == pytest.approx(1.0) and means[0, 1] == pytest.approx(20 / 255)
    assert means[1, 0] < means[1, 1]  # the inverted record scores the background above the object


def test_the_replay_curve_script_prints_one_row_per_record(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    objects = np.zeros((1, 16, 16), bool)
    objects[0, 4:12, 4:12] = True
    maps = np.zeros((3, 1, 1, 16, 16), np.uint8)
    maps[:, 0, 0] = np.where(objects[0], 255, 0)
    run = tmp_path / "run"
    run.mkdir()
    _hand_replay(maps, objects).save(run / REPLAY_FILE)
    script = Path(__file__).resolve().parents[1] / "scripts" / "replay_curve.py"
    out = subprocess.run([sys.executable, str(script), str(run)], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3 and all(row.split("|")[2].strip() == "100" for row in rows)
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run([sys.executable, str(script), str(empty)], capture_output=True, text=True)
    assert failed.returncode != 0 and "no training replay" in failed.stderr
