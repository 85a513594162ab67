"""import-checkpoint: SPG checkpoints of wsolevaluation (VGG16, ResNet50, Inception-v3) and of the
authors' code (Inception-v3) become run folders.

The files are built in each code's layout from tests/data/wsolevaluation_spg_state_dicts.json (a
copy of the manifest of wsolevaluation's SPG state-dict keys and shapes, CUB, 200 classes), with
random tensors of the listed shapes. The authors' layout renames the heads as
models/google/inception3_spg.py of xiaomengyc/SPG names them (fc6, fc7_1, classier_1, side3, side4,
side_all, branchB) and is saved as its exper/train_frame.py saves it: a DataParallel state dict
(keys under ``module.``), in the legacy torch.save format, without BatchNorm step counters.

Every imported run must load strictly and give outputs equal, bit for bit, to those of the same
tensors loaded into the project's model by an independent mapping written here module by module
(and, for VGG16, to wsolevaluation's forward written out with torch.nn.functional).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spg_core.cli import main
from spg_core.interop import build_imported_model, import_checkpoint
from spg_core.models import build_model
from spg_core.runs import load_run

MANIFEST = Path(__file__).parent / "data" / "wsolevaluation_spg_state_dicts.json"
NUM_CLASSES = 200
# The authors' head names (inception3_spg.py) for wsolevaluation's same layers: equal shapes.
AUTHORS_HEADS = {"SPG_A3_1b.0.": "fc6.0.", "SPG_A3_2b.0.": "fc7_1.0.", "SPG_A4.": "classier_1.",
                 "SPG_B_1a.0.": "side3.0.", "SPG_B_2a.0.": "side4.0.", "SPG_B_shared.": "side_all.",
                 "SPG_C.": "branchB."}
INPUT = {"vgg16": 96, "resnet50": 64, "inception_v3": 96}  # small inputs: the maps are a few cells wide


def manifest_state_dict(backbone: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the manifest's shapes (BatchNorm variances positive, counters integers)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in json.loads(MANIFEST.read_text())[backbone]["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


def authors_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The authors' Inception-v3 SPG layout, as its DataParallel model's state dict in PyTorch 0.4."""
    state = {}
    for key, value in manifest_state_dict("inception_v3", seed).items():
        if key.endswith("num_batches_tracked"):
            continue
        for ours, theirs in AUTHORS_HEADS.items():
            if key.startswith(ours):
                key = theirs + key[len(ours):]
        state["module." + key] = value
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoint files in each layout, written once for the module: {name: (path, state dict)}."""
    folder = tmp_path_factory.mktemp("foreign")
    written = {}
    for backbone in ("vgg16", "resnet50", "inception_v3"):
        state = manifest_state_dict(backbone)
        path = folder / f"{backbone}_last_checkpoint.pth.tar"
        torch.save({"architecture": backbone, "epoch": 40, "state_dict": state,
                    "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]}}, path)
        written[backbone] = (path, state)
    state = authors_state_dict()
    path = folder / "cub_epoch_99_glo_step_1000.pth.tar"
    torch.save({"epoch": 99, "arch": "resnet", "global_counter": 1000, "state_dict": state,
                "optimizer": {"state": {}, "param_groups": []}}, path, _use_new_zipfile_serialization=False)
    written["authors"] = (path, {key[len("module."):]: value for key, value in state.items()})
    return written


def hand_mapped_reference(backbone: str, state: dict, large_feature_map: bool, authors: bool = False):
    """The project's model with ``state`` loaded module by module (each module strictly, every
    key used once): the mapping written independently of spg_core.interop's prefix rules."""
    model = build_model(backbone, NUM_CLASSES, c_input_norm=False, large_feature_map=large_feature_map)
    body, a3 = model.backbone, [m for m in model.spg_a3.modules() if isinstance(m, nn.Conv2d)]
    heads = {"SPG_B_1a.0": model.spg_b.b1_entry[0], "SPG_B_2a.0": model.spg_b.b2_entry[0],
             "SPG_B_shared.0": model.spg_b.b1_top[0][0], "SPG_B_shared.2": model.spg_b.b1_top[1],
             "SPG_C.0": model.spg_c[0][0], "SPG_C.2": model.spg_c[1]}
    if backbone == "vgg16":
        modules = {f"features.{i}": body.features[i] for i in (0, 2, 5, 7, 10, 12, 14)}
        modules.update({f"SPG_A_1.{i}": body.features[17 + i] for i in (0, 2, 4)})
        modules.update({f"SPG_A_2.{i}": body.features[24 + i] for i in (0, 2, 4)})
        modules.update({"SPG_A_3.0": a3[0], "SPG_A_3.2": a3[1], "SPG_A_4": model.spg_a4})
    elif backbone == "resnet50":
        modules = {name: getattr(body, name) for name in ("conv1", "bn1", "layer1", "layer2", "layer4")}
        modules.update({"SPG_A1.0": body.layer3[0], **{f"SPG_A2.{i}": body.layer3[i + 1] for i in range(5)}})
        modules["SPG_A4"] = model.spg_a4
    else:
        modules = {name: module for name, module in body.named_children() if name.startswith(("Conv2d_", "Mixed_"))}
        modules.update({"SPG_A3_1b.0": a3[0], "SPG_A3_2b.0": a3[1], "SPG_A4": model.spg_a4})
    modules.update(heads)
    if authors:
        names = {ours.rstrip("."): theirs.rstrip(".") for ours, theirs in AUTHORS_HEADS.items()}
        modules = {next((names[n] + name[len(n):] for n in names if name.startswith(n)), name): module
                   for name, module in modules.items()}
    used = 0
    for name, module in modules.items():
        part = {key[len(name) + 1:]: value for key, value in state.items() if key.startswith(name + ".")}
        if authors:  # the old file has no BatchNorm step counters: keep the module's own
            part.update({key: value for key, value in module.state_dict().items()
                         if key.endswith("num_batches_tracked")})
        module.load_state_dict(part, strict=True)
        used += sum(1 for key in state if key.startswith(name + "."))
    assert used == len(state)
    return model.eval()


def assert_same_outputs(ours, reference, side: int) -> None:
    images = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = ours(images, with_guidance=True), reference(images, with_guidance=True)
    assert set(got) == set(expected) == {"logits", "class_maps", "b1", "b2", "c"}
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


@pytest.mark.parametrize("backbone,large", [("vgg16", False), ("resnet50", False), ("inception_v3", False),
                                            ("inception_v3", True)])
def test_imported_run_loads_strictly_and_equals_the_hand_mapped_reference(files, tmp_path, capsys, backbone, large):
    path, state = files[backbone]
    flags = ["--large-feature-map"] if large else []
    assert main(["import-checkpoint", str(path), "--from", "wsolevaluation", "--out", str(tmp_path / "run"),
                 *flags]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["backbone"], summary["num_classes"], summary["keys"]) == (backbone, NUM_CLASSES, len(state))
    assert summary["filled_keys"] == []

    model, config, info = load_run(tmp_path / "run")  # load_run loads strictly
    assert (config.backbone, config.variant, config.format, config.preset) == (backbone, "spg", "wsol", "wsolevaluation")
    # Written out even where this project's default differs (Inception: large_feature_map True).
    assert config.model_options["large_feature_map"] is large and config.model_options["c_input_norm"] is False
    assert info["epoch"] == 40 and model.num_classes == NUM_CLASSES
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert raw["imported_from"]["source"] == "wsolevaluation" and raw["imported_from"]["architecture"] == backbone
    reference = hand_mapped_reference(backbone, state, large)
    assert set(raw["model"]) == set(reference.state_dict())  # 0 missing, 0 unexpected
    assert_same_outputs(model, reference, INPUT[backbone])


def wsolevaluation_vgg16_forward(state: dict, images: torch.Tensor, large_feature_map: bool) -> dict:
    """wsolevaluation's VggSpg forward, written out on its own state-dict keys."""
    def conv(x, name):
        return F.relu(F.conv2d(x, state[name + ".weight"], state[name + ".bias"], padding=1))

    def out(x, name):
        return F.conv2d(x, state[name + ".weight"], state[name + ".bias"])

    x = images
    for block in ((0, 2), (5, 7), (10, 12, 14)):
        for index in block:
            x = conv(x, f"features.{index}")
        x = F.max_pool2d(x, 2, 2)
    for index in (0, 2, 4):
        x = conv(x, f"SPG_A_1.{index}")
    if not large_feature_map:
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    b1 = out(conv(conv(x, "SPG_B_1a.0"), "SPG_B_shared.0"), "SPG_B_shared.2")
    for index in (0, 2, 4):
        x = conv(x, f"SPG_A_2.{index}")
    b2 = out(conv(conv(x, "SPG_B_2a.0"), "SPG_B_shared.0"), "SPG_B_shared.2")
    x = conv(conv(x, "SPG_A_3.0"), "SPG_A_3.2")
    class_maps = out(x, "SPG_A_4")
    return {"logits": F.adaptive_avg_pool2d(class_maps, 1).flatten(1), "class_maps": class_maps,
            "b1": b1, "b2": b2, "c": out(conv(x, "SPG_C.0"), "SPG_C.2")}


@pytest.mark.parametrize("large", [False, True])
def test_vgg16_import_gives_wsolevaluations_forward(files, tmp_path, large):
    path, state = files["vgg16"]
    import_checkpoint(path, "wsolevaluation", tmp_path / "run", large_feature_map=large)
    model, _, _ = load_run(tmp_path / "run")
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = model(images, with_guidance=True)
        expected = wsolevaluation_vgg16_forward(state, images, large)
    assert got["class_maps"].shape[-1] == (12 if large else 6)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


def test_authors_inception_imports_from_a_dataparallel_legacy_file(files, tmp_path, capsys):
    path, state = files["authors"]
    assert main(["import-checkpoint", str(path), "--from", "authors", "--out", str(tmp_path / "run")]) == 0, \
        capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    # PyTorch 0.4 saved no BatchNorm step counters: they are filled (with 0) and listed.
    assert summary["filled_keys"] and all(key.endswith("num_batches_tracked") for key in summary["filled_keys"])
    assert summary["epoch"] == 99 and summary["keys"] == len(state)
    model, config, _ = load_run(tmp_path / "run")
    assert config.model_options["large_feature_map"] is True and config.preset == "authors"
    assert_same_outputs(model, hand_mapped_reference("inception_v3", state, True, authors=True), 96)


def test_unknown_layouts_are_refused_naming_the_keys(files):
    _, state = files["vgg16"]
    extra = {**state, "SPG_D.0.weight": torch.zeros(1), "features.30.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"keys that did not map \(2\): SPG_D.0.weight, features.30.weight"):
        build_imported_model(extra, "wsolevaluation")
    short = {key: value for key, value in state.items() if key != "SPG_C.2.bias"}
    with pytest.raises(ValueError, match=r"weights missing from the file \(1\): spg_c.1.bias"):
        build_imported_model(short, "wsolevaluation")
    wrong = {**state, "SPG_A_2.0.weight": torch.zeros(512, 512, 1, 1)}
    with pytest.raises(ValueError, match=r"shape mismatches \(1\): backbone.features.24.weight"):
        build_imported_model(wrong, "wsolevaluation")
    with pytest.raises(ValueError, match="not a wsolevaluation SPG checkpoint.*only SPG models"):
        build_imported_model({"fc.weight": torch.zeros(200, 2048), "conv1.weight": torch.zeros(1)}, "wsolevaluation")
    with pytest.raises(ValueError, match="holds the authors' SPG layout, not wsolevaluation's; pass --from authors"):
        build_imported_model(files["authors"][1], "wsolevaluation")
    with pytest.raises(ValueError, match="pass --from wsolevaluation"):
        build_imported_model(state, "authors")
    with pytest.raises(ValueError, match="architecture 'resnet50' but its keys are vgg16's"):
        build_imported_model(state, "wsolevaluation", {"architecture": "resnet50"})


class _Payload:
    """Anything but tensors and plain values: the safe reader must not build it."""


def test_files_that_are_not_safe_checkpoints_are_refused(tmp_path, capsys):
    def refused(path, *words):
        code = main(["import-checkpoint", str(path), "--from", "wsolevaluation", "--out", str(tmp_path / "run")])
        error = capsys.readouterr().err
        assert code == 2 and error.startswith("error: ") and error.count("\n") == 1, error
        for word in words:
            assert word in error, error
        assert not (tmp_path / "run").exists()

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    refused(garbage, "not a readable PyTorch file")
    crafted = tmp_path / "crafted.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Payload()}, crafted)
    refused(crafted, "objects other than tensors", "could run code")
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    refused(listed, "holds no state dict")
    refused(tmp_path / "absent.pth", "does not exist")


def test_an_import_never_overwrites_a_run(files, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"a trained run")
    assert main(["import-checkpoint", str(files["vgg16"][0]), "--from", "wsolevaluation", "--out", str(run)]) == 2
    assert "already holds checkpoint.pt" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == b"a trained run"


@pytest.mark.parametrize("backbone, size", [("vgg16", 64), ("resnet50", 64), ("inception_v3", 96)])
def test_an_imported_run_evaluates_localizes_and_opens_in_the_app(files, tmp_path, capsys, backbone, size):
    from spg_core.data import SyntheticConfig, write_wsol

    root = write_wsol(tmp_path / "data", SyntheticConfig(image_size=64, num_classes=2, num_train=0, num_val=3,
                                                         num_test=3), splits=("val", "test"), progress=False)
    run = tmp_path / "runs" / f"wsol-{backbone}"
    assert main(["import-checkpoint", str(files[backbone][0]), "--from", "wsolevaluation", "--out", str(run),
                 "--data-root", str(root / "images"), "--metadata-root", str(root / "metadata")]) == 0
    capsys.readouterr()
    # evaluate with the run's own data (kept in its config), at a small input size for speed
    assert main(["evaluate", "--run", str(run), "--image-size", str(size), "--protocol", "wsolevaluation",
                 "--out", str(tmp_path / "eval")]) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_images"] == 3 and 0 <= metrics["maxboxacc_v2"] <= 100
    image = next((root / "images" / "test").iterdir())
    assert main(["localize", str(image), "--run", str(run), "--out", str(tmp_path / "loc")]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "loc" / image.stem / "localization.png").is_file()

    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from test_app import APP, TIMEOUT

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception, at.exception
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    # The model (200 CUB classes) is open on the run's own data (the 2-class test split here).
    assert any("2 classes but the model 200" in w.value for w in at.sidebar.warning), at.sidebar.warning


def test_help_names_the_sources(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["import-checkpoint", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m spg_core import-checkpoint" in out and "{wsolevaluation,authors}" in out
