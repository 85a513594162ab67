import json

import pytest
import torch

from spg_core.config import TrainConfig
from spg_core.checkpoint import atomic_save
from spg_core.train import epochs_done, train


def small_config(tmp_path, **overrides):
    values = dict(
        format="synthetic",
        synthetic={"num_classes": 2, "num_train": 64, "num_val": 16, "num_test": 16, "clutter": 0.0, "seed": 3},
        image_size=64,
        backbone="tiny",
        variant="spg",
        epochs=2,
        batch_size=16,
        lr=0.01,
        device="cpu",
        amp="off",
        seed=5,
        out=str(tmp_path / "run"),
        max_steps_per_epoch=2,
        threads=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    full = small_config(tmp_path / "a", guidance_warmup=1)
    train(full, progress=False)
    first = small_config(tmp_path / "b", guidance_warmup=1, epochs=1)
    train(first, progress=False)
    assert epochs_done(first.out) == 1
    second = small_config(tmp_path / "b", guidance_warmup=1, epochs=2)
    train(second, resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "run" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    history = [json.loads(line) for line in (tmp_path / "b" / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert [h["guidance"] for h in history] == [False, True]
    assert "loss_bce_b2" in history[1] and "loss_bce_b2" not in history[0]


def test_run_folder_holds_config_and_checkpoint(tmp_path):
    config = small_config(tmp_path, epochs=1, variant="plain")
    train(config, progress=False)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "config", "history"} <= set(state)
    assert state["config"]["variant"] == "plain"
    assert not list(run.glob("*.tmp"))


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert torch.load(path)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_smoke_training_learns(tmp_path):
    """Loss falls and accuracy ends well above chance (1/num_classes) on held-out images."""
    from spg_core.data import build_dataset, collate
    from spg_core.runs import load_run

    synthetic = {"num_classes": 3, "num_train": 384, "num_val": 90, "num_test": 90, "clutter": 0.0, "seed": 11}
    config = small_config(tmp_path, synthetic=synthetic, epochs=4, batch_size=32, lr=0.003, lr_step=3,
                          max_steps_per_epoch=None, guidance_warmup=2, threads=1)
    summary = train(config, progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["loss_ce"] < history[0]["loss_ce"]
    model, _, _ = load_run(tmp_path / "run")
    val = build_dataset("synthetic", "val", image_size=64, **{k: v for k, v in synthetic.items()})
    batch = collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        predicted = model(batch["image"])["logits"].argmax(1)
    accuracy = (predicted == batch["label"]).float().mean().item()
    assert accuracy > 0.6, (accuracy, summary)


def test_guidance_switch_auto_waits_for_the_classifier_and_is_capped():
    from spg_core.train import GuidanceSwitch

    switch = GuidanceSwitch("auto", epochs=10)
    assert not switch.active(0)
    for _ in range(GuidanceSwitch.AUTO_WINDOW - 1):
        switch.observe(1.0)
    assert not switch.active(0)  # the window is not full yet
    switch.observe(0.2)
    mean = (GuidanceSwitch.AUTO_WINDOW - 1 + 0.2) / GuidanceSwitch.AUTO_WINDOW
    assert switch.active(0) == (mean >= GuidanceSwitch.AUTO_ACCURACY)
    resumed = GuidanceSwitch("auto", epochs=10, state=switch.state_dict())
    assert resumed.active(0) == switch.active(0) and resumed.recent == switch.recent
    never = GuidanceSwitch("auto", epochs=10)
    for _ in range(50):
        never.observe(0.1)
    assert not never.active(4) and never.active(5)  # at the latest after half the epochs
    assert not GuidanceSwitch(2, epochs=10).active(1) and GuidanceSwitch(2, epochs=10).active(2)
    with pytest.raises(ValueError, match="guidance_warmup"):
        GuidanceSwitch("soon", epochs=3)


def test_collapse_watch_finds_a_constructed_collapse_once():
    from spg_core.train import CollapseWatch

    watch = CollapseWatch()
    for step in range(CollapseWatch.WINDOW):
        assert watch.observe(False, 0.9, 0.3, epoch=0, step=step) is None  # the level: 90 %
    found = None
    for step in range(CollapseWatch.WINDOW):  # the guidance on: accuracy falls to chance (12.5 %)
        found = watch.observe(True, 0.125, 9.6, epoch=1, step=step) or found
    assert found == {"epoch": 2, "step": CollapseWatch.WINDOW, "accuracy_before": 90.0, "accuracy_after": 12.5,
                     "ce_before": 0.3, "ce_after": 9.6}
    assert watch.observe(True, 0.1, 9.9, epoch=1, step=99) is None  # said once
    resumed = CollapseWatch(watch.state_dict())
    assert resumed.found == found
    healthy = CollapseWatch()
    for step in range(CollapseWatch.WINDOW):
        healthy.observe(False, 0.9, 0.3, 0, step)
    for step in range(3 * CollapseWatch.WINDOW):  # a dip to 70 % is learning, not a collapse
        assert healthy.observe(True, 0.7, 0.8, 1, step) is None
    weak = CollapseWatch()  # a classifier at 30 % that drops to 12 %: below half, but not 20 points
    for step in range(CollapseWatch.WINDOW):
        weak.observe(False, 0.3, 1.8, 0, step)
    assert all(weak.observe(True, 0.12, 2.0, 1, step) is None for step in range(CollapseWatch.WINDOW))


def test_a_collapse_is_said_in_the_log_and_kept_in_the_history(tmp_path, monkeypatch, caplog):
    from spg_core.train import CollapseWatch

    # Constructed: a window of two batches, and any guided accuracy counts as a collapse.
    monkeypatch.setattr(CollapseWatch, "WINDOW", 2)
    monkeypatch.setattr(CollapseWatch, "RATIO", 1e9)
    monkeypatch.setattr(CollapseWatch, "MIN_DROP", -1.0)
    config = small_config(tmp_path, guidance_warmup=1, epochs=2, max_steps_per_epoch=3)
    with caplog.at_level("WARNING", logger="spg_core.train"):
        train(config, progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert "collapse" not in history[0] and history[1]["collapse"]["epoch"] == 2
    assert history[1]["collapse"]["step"] == 2  # the first full window of guided batches
    assert "collapsed when the guidance switched on" in caplog.text
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["collapse_watch"]["found"] == history[1]["collapse"]


@pytest.mark.slow
def test_auto_warmup_resumes_at_the_same_step(tmp_path):
    """guidance_warmup=auto on a 2-class toy: the switch state travels in the checkpoint."""
    overrides = dict(guidance_warmup="auto", epochs=4, max_steps_per_epoch=None, batch_size=8,
                     synthetic={"num_classes": 2, "num_train": 48, "num_val": 8, "num_test": 8, "clutter": 0.0,
                                "seed": 3})
    train(small_config(tmp_path / "a", **overrides), progress=False)
    train(small_config(tmp_path / "b", **{**overrides, "epochs": 1}), progress=False)
    train(small_config(tmp_path / "b", **overrides), resume=True, progress=False)
    history = [json.loads(line) for line in (tmp_path / "a" / "run" / "history.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (tmp_path / "b" / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["guided_steps"] for h in history] == [h["guided_steps"] for h in resumed]
    assert history[-1]["guided_steps"] > 0  # switched on (by accuracy or at the latest after 2 epochs)
    a = torch.load(tmp_path / "a" / "run" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=False)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_the_optimizer_trains_the_groups_of_the_chosen_lr_rule_at_1x_and_10x():
    from spg_core.models import build_model
    from spg_core.train import build_optimizer

    model = build_model("resnet50", 3)
    layer4 = {id(p) for p in model.backbone.layer4.parameters()}
    heads = {id(p) for name, p in model.named_parameters() if not name.startswith("backbone.")}
    for rule, expected in (("paper", heads), ("wsolevaluation", layer4)):
        optimizer, _ = build_optimizer(model, TrainConfig(lr=0.001, lr_groups=rule))
        base, tenfold = optimizer.param_groups
        assert (base["lr"], tenfold["lr"]) == (0.001, pytest.approx(0.01)), rule
        assert {id(p) for p in tenfold["params"]} == expected, rule
        assert len(base["params"]) + len(tenfold["params"]) == len(list(model.parameters()))
