"""Run checkpoints load without executing anything; bad files get a one-line error."""
import numpy as np
import pytest
import torch

from spg_core.checkpoint import CheckpointError, atomic_save, convert_checkpoint, read_checkpoint
from spg_core.cli import main
from spg_core.runs import load_run, shipped_runs
from spg_core.train import epochs_done, train
from test_train import small_config

MARKER = []


class RunsCode:
    """Unpickling this calls MARKER.append: the code a crafted checkpoint would run."""

    def __reduce__(self):
        return (MARKER.append, ("ran",))


@pytest.mark.slow
def test_a_trained_run_loads_with_weights_only(tmp_path):
    config = small_config(tmp_path, epochs=1, replay_images=0)
    train(config, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and "rng" in state and "optimizer" in state
    assert epochs_done(tmp_path / "run") == 1
    model, loaded, _ = load_run(tmp_path / "run")
    assert loaded.variant == config.variant


@pytest.mark.parametrize("name", shipped_runs())
def test_every_shipped_run_loads_with_weights_only(name):
    from spg_core.runs import SHIPPED_DIR

    assert "model" in torch.load(SHIPPED_DIR / name / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "epoch": 1, "payload": RunsCode()}, path)
    MARKER.clear()
    with pytest.raises(CheckpointError, match="no checkpoint of this project holds") as refused:
        read_checkpoint(path)
    assert "convert-checkpoint" not in str(refused.value)  # never advise converting a file this project did not write
    assert MARKER == []  # nothing ran


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04 truncated zip"])
def test_a_garbage_checkpoint_is_a_one_line_error_in_the_cli(tmp_path, capsys, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=str(run / "checkpoint.pt")):
        read_checkpoint(run / "checkpoint.pt")
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "gray").save(image)
    code = main(["localize", str(image), "--run", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and str(run / "checkpoint.pt") in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_an_old_checkpoint_is_converted_on_request_and_then_resumes(tmp_path):
    config = small_config(tmp_path, epochs=1, replay_images=0)
    train(config, progress=False)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    name, keys, position, has_gauss, cached = state["rng"]["numpy"]
    state["rng"]["numpy"] = (name, keys.numpy().astype(np.uint32), position, has_gauss, cached)  # the old layout
    atomic_save(state, path)
    with pytest.raises(CheckpointError, match="convert-checkpoint"):
        read_checkpoint(path)
    assert main(["convert-checkpoint", str(tmp_path / "run")]) == 0
    assert not convert_checkpoint(path)  # already safe now
    train(small_config(tmp_path, epochs=2, replay_images=0), resume=True, progress=False)
    assert epochs_done(tmp_path / "run") == 2


def test_the_app_names_a_garbage_checkpoint_and_keeps_running(tmp_path):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from test_app import APP, TIMEOUT

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"garbage")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "not a readable checkpoint" in errors and "run/checkpoint.pt" in errors
    assert str(tmp_path) not in errors  # paths are shown relative to their root


def test_a_run_with_a_two_conv_spg_c_reloads_with_the_same_head(tmp_path):
    import yaml

    config = small_config(tmp_path, epochs=1, max_steps_per_epoch=1, guidance_warmup=0, replay_images=0,
                          model_options={"spg_c_depth": 2})
    train(config, progress=False)
    # the run writes the head default it was built with (SPG-C's input BatchNorm), so a later default does not change it
    written = {"spg_c_depth": 2, "c_input_norm": True}
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model_options"] == written
    model, loaded, _ = load_run(tmp_path / "run")
    assert model.spg_c_depth == 2 and loaded.model_options == written
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert "spg_c.3.weight" in state  # BatchNorm, conv3x3, conv3x3, conv1x1
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_run_saved_before_the_new_options_loads_with_their_defaults():
    model, config, _ = load_run("premise-fails-spg")  # trained before lr_groups, spg_c_depth, a3_dilation existed
    saved = read_checkpoint(shipped_folder("premise-fails-spg") / "checkpoint.pt")["config"]
    assert "lr_groups" not in saved and not {"spg_c_depth", "a3_dilation"} & set(saved.get("model_options", {}))
    assert config.lr_groups == "paper" and model.spg_c_depth == 1
    assert [m.dilation for m in model.spg_a3.modules() if isinstance(m, torch.nn.Conv2d)] == [(1, 1), (1, 1)]


def shipped_folder(name):
    from spg_core.runs import SHIPPED_DIR

    return SHIPPED_DIR / name


def test_a_run_saved_before_spg_c_read_a_batchnorm_resumes_and_reloads_with_its_own_head(tmp_path):
    import yaml

    old_head = small_config(tmp_path, epochs=1, max_steps_per_epoch=1, guidance_warmup=0, replay_images=0,
                            model_options={"c_input_norm": False})
    train(old_head, progress=False)
    # as a run of an earlier version wrote it: no c_input_norm in its config
    path = tmp_path / "run" / "checkpoint.pt"
    state = read_checkpoint(path)
    state["config"]["model_options"] = {}
    torch.save(state, path)
    model, _, _ = load_run(tmp_path / "run")
    assert not isinstance(model.spg_c[0], torch.nn.BatchNorm2d)
    resumed = small_config(tmp_path, epochs=2, max_steps_per_epoch=1, guidance_warmup=0, replay_images=0)
    train(resumed, resume=True, progress=False)  # the default head would not load these weights
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model_options"] == {"c_input_norm": False}
    assert read_checkpoint(path)["epoch"] == 2
