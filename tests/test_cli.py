import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow  # a fresh interpreter importing the toolkit
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



def test_what_synth_writes_evaluates_as_written(tmp_path, capsys):
    """``synth --out D`` then ``evaluate --format wsol --data-root D/images
    --metadata-root D/metadata`` failed on the masks (they are in D/masks, beside images/)."""
    import shutil

    bench = tmp_path / "D"
    assert main(["synth", "--synthetic-train", "2", "--synthetic-val", "3", "--synthetic-test", "3",
                 "--out", str(bench)]) == 0
    data = ["--format", "wsol", "--metadata-root", str(bench / "metadata")]
    common = ["evaluate", "--run", "synthetic-spg", "--device", "cpu", "--batch-size", "4"]
    capsys.readouterr()
    assert main([*common, *data, "--data-root", str(bench / "images"), "--out", str(tmp_path / "e1")]) == 0
    first = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert first["num_images"] == 3 and "pxap" in first  # the masks were read
    # The masks moved elsewhere: --mask-root says where; without it the error names the flag.
    shutil.move(str(bench / "masks"), str(tmp_path / "elsewhere"))
    capsys.readouterr()
    assert main([*common, *data, "--data-root", str(bench / "images"), "--out", str(tmp_path / "e2")]) != 0
    assert "--mask-root" in capsys.readouterr().err
    assert main([*common, *data, "--data-root", str(bench / "images"), "--mask-root", str(tmp_path / "elsewhere"),
                 "--out", str(tmp_path / "e3")]) == 0
    again = json.loads((tmp_path / "e3" / "metrics.json").read_text())
    assert again["pxap"] == pytest.approx(first["pxap"]) and again["gt_known_loc"] == first["gt_known_loc"]
    with pytest.raises(SystemExit):  # a run's config keeps no mask root: train has no such flag
        build_parser().parse_args(["train", "--mask-root", str(tmp_path), "--out", str(tmp_path / "run")])

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


def test_a_config_may_start_from_a_base_config(tmp_path):
    from spg_core.config import load_config_file

    (tmp_path / "base.yaml").write_text("backbone: tiny\nepochs: 7\nsynthetic: {num_classes: 4, clutter: 0.2}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nepochs: 3\nsynthetic: {clutter: 0.9}\n")
    values = load_config_file(tmp_path / "child.yaml")
    assert values["backbone"] == "tiny" and values["epochs"] == 3
    assert values["synthetic"] == {"num_classes": 4, "clutter": 0.9}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="base"):
        load_config_file(tmp_path / "loop.yaml")


def test_the_teaching_recipe_takes_any_format_from_the_data_flags(tmp_path):
    from spg_core.cli import build_parser, train_config_from_args

    recipe = str(Path(__file__).resolve().parents[1] / "configs" / "teaching.yaml")
    args = build_parser().parse_args(["train", "--config", recipe, "--format", "wsol", "--data-root", str(tmp_path),
                                      "--metadata-root", str(tmp_path / "metadata"), "--variant", "plain"])
    config = train_config_from_args(args)
    assert config.format == "wsol" and config.data_root == str(tmp_path) and config.synthetic == {}
    assert config.backbone == "tiny" and config.weights is None and config.variant == "plain"
    assert config.guidance_warmup == "auto" and config.model_options == {"c_input_norm": True, "a3_dilation": 2}
    assert config.preset == "teaching"
    # a head flag adds to the recipe's model options, it does not replace them
    args = build_parser().parse_args(["train", "--config", recipe, "--spg-c-depth", "2", "--out", str(tmp_path / "run")])
    assert train_config_from_args(args).model_options == {"c_input_norm": True, "a3_dilation": 2, "spg_c_depth": 2}
    # the comparisons change only what they are named for (and keep the preset their tables were trained with)
    lite0, no_norm = load_config_file_values("teaching_lite0.yaml"), load_config_file_values("teaching_no_c_norm.yaml")
    plain_a3 = load_config_file_values("teaching_plain_a3.yaml")
    recipe_values = load_config_file_values("teaching.yaml")
    assert {k for k in recipe_values if lite0.get(k) != recipe_values[k]} == {"backbone", "weights", "lr", "model_options", "preset"}
    assert lite0["backbone"] == "lite0_cut" and lite0["weights"] == "imagenet" and lite0["model_options"] == {"c_input_norm": False}
    assert {k for k in recipe_values if no_norm.get(k) != recipe_values[k]} == {"model_options", "preset"}
    assert no_norm["model_options"] == {"c_input_norm": False}
    assert {k for k in recipe_values if plain_a3.get(k) != recipe_values[k]} == {"model_options", "preset"}
    assert lite0["preset"] == no_norm["preset"] == plain_a3["preset"] == "paper"
    assert plain_a3["model_options"] == {"c_input_norm": True}


def load_config_file_values(name):
    from spg_core.config import load_config_file

    return load_config_file(Path(__file__).resolve().parents[1] / "configs" / name)


def test_lr_groups_come_from_the_flag_or_the_config_file_and_default_to_the_paper(tmp_path):
    from spg_core.cli import train_config_from_args

    out = ["--out", str(tmp_path / "run")]
    assert train_config_from_args(build_parser().parse_args(["train", *out])).lr_groups == "paper"
    config_file = tmp_path / "c.yaml"
    config_file.write_text("backbone: resnet50\nlr-groups: wsolevaluation\n")
    from_file = train_config_from_args(build_parser().parse_args(["train", "--config", str(config_file), *out]))
    assert from_file.lr_groups == "wsolevaluation"
    flag = build_parser().parse_args(["train", "--config", str(config_file), "--lr-groups", "paper", *out])
    assert train_config_from_args(flag).lr_groups == "paper"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--lr-groups", "authors", *out])


def test_spg_c_depth_flag_is_a_model_option_saved_with_the_run(tmp_path):
    from spg_core.cli import train_config_from_args

    out = ["--out", str(tmp_path / "run")]
    args = build_parser().parse_args(["train", "--model-option", "widths=[4,8,16]", "--spg-c-depth", "2", *out])
    assert train_config_from_args(args).model_options == {"widths": [4, 8, 16], "spg_c_depth": 2}
    assert train_config_from_args(build_parser().parse_args(["train", *out])).model_options == {}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--spg-c-depth", "3", *out])
