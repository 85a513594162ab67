import json
import subprocess
import sys

import pytest

from spg_core.cli import build_parser, main

SUBCOMMANDS = ["train", "evaluate", "evaluate-maps", "localize", "synth", "runs"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m spg_core {command}" in out


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "spg_core", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in SUBCOMMANDS:
        assert command in result.stdout


def test_train_flags_override_config_file(tmp_path):
    from spg_core.cli import train_config_from_args

    config_file = tmp_path / "c.yaml"
    config_file.write_text("backbone: tiny\nepochs: 7\nguidance-warmup: 2\nsynthetic: {num_classes: 4}\n")
    args = build_parser().parse_args(
        ["train", "--config", str(config_file), "--epochs", "3", "--image-size", "64", "--clutter", "0.1",
         "--out", str(tmp_path / "run")]
    )
    config = train_config_from_args(args)
    assert config.backbone == "tiny" and config.epochs == 3 and config.guidance_warmup == 2
    assert config.image_size == 64
    assert config.synthetic["num_classes"] == 4 and config.synthetic["clutter"] == 0.1


def test_bad_config_key_is_a_clear_error(tmp_path, capsys):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("epochz: 3\n")
    code = main(["train", "--config", str(config_file), "--out", str(tmp_path / "run")])
    assert code == 2
    assert "epochz" in capsys.readouterr().err


def test_synth_writes_wsol_layout(tmp_path):
    code = main(["synth", "--image-size", "64", "--synthetic-train", "4", "--synthetic-val", "2",
                 "--synthetic-test", "3", "--synthetic-classes", "2", "--out", str(tmp_path / "bench")])
    assert code == 0
    ids = (tmp_path / "bench" / "metadata" / "test" / "image_ids.txt").read_text().split()
    assert len(ids) == 3


def test_train_then_localize_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--backbone", "tiny", "--image-size", "64", "--synthetic-classes", "2",
                 "--synthetic-train", "32", "--synthetic-val", "8", "--synthetic-test", "8", "--epochs", "1",
                 "--batch-size", "16", "--device", "cpu", "--out", str(run)]) == 0
    from PIL import Image

    image_path = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (120, 40, 200)).save(image_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    capsys.readouterr()
    code = main(["localize", "--run", str(run), str(image_path), str(tmp_path / "broken.jpg"),
                 "--out", str(tmp_path / "loc"), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    assert "broken.jpg" in captured.err
    result = json.loads((tmp_path / "loc" / "photo" / "result.json").read_text())
    assert len(result["top5"]) == 2  # only two classes
    x0, y0, x1, y1 = result["box"]
    assert 0 <= x0 <= x1 < 80 and 0 <= y0 <= y1 < 60
    for name in ("attention", "mask_a", "b2", "mask_b2", "b1", "fused", "mask_fuse", "c"):
        assert (tmp_path / "loc" / "photo" / f"{name}.npy").is_file(), name
        assert (tmp_path / "loc" / "photo" / f"{name}.png").is_file(), name
