"""The trivial baselines (spg_core/baselines.py) beside every evaluation: the whole-image box, the
centred box (its fraction chosen on the held-out split as τ is) and the centred Gaussian map,
scored by the model's own code; in evaluate-maps' metrics.json and on the app's Dataset page."""
from __future__ import annotations

import json

import numpy as np
import pytest

from spg_core import evaluate as E
from spg_core import boxes as B
from spg_core import tau_sweep
from spg_core.baselines import (CENTER_FRACTIONS, Baselines, annotation_baselines, center_box, gaussian_map,
                                single_component_boxes)
from spg_core.metrics import tau_grid


def _images(count: int, seed: int, fraction: float | None = None):
    """gt entries (boxes, (w, h), mask): random boxes, or the centred box of ``fraction``."""
    rng = np.random.default_rng(seed)
    gt = {}
    for k in range(count):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        if fraction is None:
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            box = [x0, y0, int(rng.integers(x0 + 5, w)), int(rng.integers(y0 + 5, h))]
        else:
            box = [int(v) for v in center_box((w, h), fraction)]
        mask = np.zeros((h, w), np.uint8)
        mask[box[1]:box[3] + 1, box[0]:box[2] + 1] = 1
        gt[f"{seed}-{k}"] = (np.array([box], float), (w, h), mask)
    return gt


def test_center_box_is_centred_and_the_whole_image_at_one():
    assert center_box((224, 100), 1.0).tolist() == [0, 0, 223, 99]
    assert center_box((100, 50), 0.8).tolist() == [10, 5, 89, 44]
    for fraction in CENTER_FRACTIONS:
        x0, y0, x1, y1 = center_box((37, 53), fraction)
        assert x0 == 36 - x1 and y0 == 52 - y1  # symmetric about the centre
    assert CENTER_FRACTIONS[0] == 0.5 and CENTER_FRACTIONS[-1] == 1.0
    with pytest.raises(ValueError, match="fraction 0 must lie in"):
        center_box((10, 10), 0)


@pytest.mark.parametrize("protocol, paper_size", [("wsolevaluation", None), ("paper", None), ("paper", 64)])
def test_the_gaussian_is_scored_as_any_map(protocol, paper_size):
    """Its numbers equal evaluate_maps on Gaussian maps saved as any method's: same resize, rule, PxAP."""
    gt, held = _images(10, 0), _images(8, 1)
    maps = [(k, np.random.default_rng(2).random((7, 7))) for k in gt]
    held_maps = [(k, np.random.default_rng(3).random((7, 7))) for k in held]
    threshold = E.score_maps_split(held_maps, held, protocol, 0.05, split="val", paper_size=paper_size,
                                   baselines=True)
    metrics, _, _ = E.evaluate_maps(maps, gt, protocol, 0.05, split="test", paper_size=paper_size, baselines=True,
                                    threshold_curves=threshold.curves(), threshold_baselines=threshold.baselines)
    gaussian = metrics["baselines"]["center_gaussian"]

    def drawn(entries):  # the Gaussian at each image's scoring grid, saved as any method's map
        return [(k, gaussian_map(E.scoring_grid(protocol, entry[1], paper_size))) for k, entry in entries.items()]

    reference_held = E.score_maps_split(drawn(held), held, protocol, 0.05, split="val",
                                        paper_size=paper_size, iou_thresholds=[30, 50, 70]).curves()
    reference, _, _ = E.evaluate_maps(drawn(gt), gt, protocol, 0.05, split="test",
                                      paper_size=paper_size, iou_thresholds=[30, 50, 70],
                                      threshold_curves=reference_held)
    v2 = reference["maxboxacc_v2"] if protocol == "wsolevaluation" else reference["box_accuracy"]["mean"]
    assert gaussian["maxboxacc_v2"] == v2 and gaussian["pxap"] == reference["pxap"]
    assert gaussian["gt_known_loc"] == reference["gt_known_loc"] and gaussian["tau"] == reference["tau"]
    assert gaussian["tau_source"] == "best GT-known Loc τ of held-out split 'val'"
    # The model's own numbers are as without the baselines.
    plain, _, _ = E.evaluate_maps(maps, gt, protocol, 0.05, split="test", paper_size=paper_size,
                                  threshold_curves=threshold.curves())
    assert "baselines" not in plain and {k: v for k, v in metrics.items() if k != "baselines"} == plain


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (7, 5), (64, 200), (224, 224), (333, 334), (501, 373)])
def test_the_gaussians_boxes_at_once_are_the_paper_rules(grid):
    """Its superlevel sets are each one connected set: the tight box of the kept pixels is the labelling's."""
    normalized = B.minmax_numpy(gaussian_map(grid))
    taus = tau_grid(0.01)
    np.testing.assert_array_equal(single_component_boxes(normalized, taus),
                                  tau_sweep.largest_component_boxes(normalized, taus))


def test_fixed_boxes_and_the_fraction_chosen_on_the_held_out_split():
    held, report = _images(6, 4, fraction=0.8), _images(5, 5, fraction=0.8)

    def scored(gt, split):
        baselines = Baselines("wsolevaluation", 0.05, split=split)
        for image_id, (boxes, size, mask) in gt.items():
            baselines.add(image_id, boxes, size, mask)
        return baselines

    summary = scored(report, "test").summary(scored(held, "val"))
    center = summary["center_box"]
    assert center["fraction"] == 0.8 and center["fraction_source"] == "best GT-known Loc of held-out split 'val'"
    assert center["gt_known_loc"] == 100.0 and center["fraction_threshold_split_gt_known_loc"] == 100.0
    assert center["maxboxacc_v2_per_iou"] == {"30": 100.0, "50": 100.0, "70": 100.0}
    full = summary["full_box"]  # IoU of the 80 % box with the whole image is 0.64 (on WE's 224 grid)
    assert full["maxboxacc_v2_per_iou"] == {"30": 100.0, "50": 100.0, "70": 0.0}
    assert full["gt_known_loc"] == 100.0 and full["maxboxacc_v2"] == pytest.approx(200 / 3)
    assert "pxap" not in full and 0 <= summary["center_gaussian"]["pxap"] <= 100
    oracle = scored(report, "test").summary()
    assert oracle["center_box"]["fraction_source"].startswith("oracle: best GT-known Loc of the reported split")
    assert oracle["center_gaussian"]["tau_source"].startswith("oracle")


def test_evaluate_maps_command_writes_the_baselines(tmp_path, capsys):
    from spg_core.cli import main
    from spg_core.data import SyntheticConfig, build_dataset, write_wsol

    root = write_wsol(tmp_path / "data", SyntheticConfig(image_size=64, num_classes=2, num_train=0, num_val=4,
                                                         num_test=6), splits=("val", "test"), progress=False)
    for split in ("val", "test"):
        dataset = build_dataset("wsol", split, data_root=root)
        for index in range(len(dataset)):
            sample = dataset.load_sample(index, image=False)
            path = tmp_path / split / f"{sample.image_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.random.default_rng(index).random((8, 8)))
    code = main(["evaluate-maps", "--maps", str(tmp_path / "test"), "--format", "wsol", "--data-root", str(root),
                 "--split", "test", "--threshold-maps", str(tmp_path / "val"), "--threshold-split", "val",
                 "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    baselines = json.loads((tmp_path / "out" / "metrics.json").read_text())["baselines"]
    assert set(baselines) == {"full_box", "center_box", "center_gaussian"}
    for scores in baselines.values():
        assert {"gt_known_loc", "maxboxacc_v2", "maxboxacc_v2_per_iou"} <= set(scores)
    assert "pxap" in baselines["center_gaussian"]  # the synthetic benchmark has masks
    assert baselines["center_box"]["fraction_source"] == "best GT-known Loc of held-out split 'val'"
    reread = annotation_baselines(build_dataset("wsol", "test", data_root=root),
                                  threshold_dataset=build_dataset("wsol", "val", data_root=root))
    assert reread["num_images"] == 6
    assert json.loads(json.dumps({k: reread[k] for k in baselines})) == baselines


def test_the_dataset_page_shows_the_baselines(tmp_path):
    pytest.importorskip("streamlit")
    from app_runs import write_tiny_run
    from test_app_precomputed import start

    from spg_app.baseline_view import add_baseline_lines, baseline_entries
    from spg_app.pages.dataset import metrics_table
    from spg_app.precomputed import write_evaluation

    run = write_tiny_run(tmp_path / "tiny-spg", "spg")
    write_evaluation(run, log=lambda line: None)  # the page opens on its results, nothing pressed
    at = start(run, "dataset")
    table = at.dataframe[0].value
    rows = [row for row in table["model"] if row.startswith("baseline · ")]
    assert rows[0] == "baseline · whole image" and rows[2] == "baseline · centred Gaussian"
    assert rows[1].startswith("baseline · centred box (") and len(rows) == 3
    assert any("Baselines (grey lines" in caption.value for caption in at.caption)
    baselines = {"num_images": 3, "full_box": {"gt_known_loc": 10.0, "maxboxacc_v2": 20.0,
                                               "maxboxacc_v2_per_iou": {"30": 40.0, "50": 10.0, "70": 10.0}},
                 "center_box": {"gt_known_loc": 30.0, "maxboxacc_v2": 30.0, "fraction": 0.8,
                                "maxboxacc_v2_per_iou": {"30": 50.0, "50": 30.0, "70": 10.0}},
                 "center_gaussian": {"gt_known_loc": 20.0, "maxboxacc_v2": 25.0, "tau": 0.4, "pxap": 33.3,
                                     "maxboxacc_v2_per_iou": {"30": 45.0, "50": 20.0, "70": 10.0}}}
    table = metrics_table(baseline_entries(baselines, "paper"))
    assert list(table["model"]) == ["baseline · whole image", "baseline · centred box (80 %)",
                                    "baseline · centred Gaussian"]
    assert list(table["MaxBoxAccV2"]) == ["—"] * 3  # as for models: the paper protocol has no V2
    assert list(table["PxAP"]) == ["—", "—", "33.3"]
    assert list(table["τ"]) == ["—", "—", "0.40"]  # a fixed box has no τ
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = add_baseline_lines(make_subplots(rows=1, cols=1), baselines, ["gt_known_loc"])
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [10.0, 20.0, 30.0]
    assert not add_baseline_lines(go.Figure(), baselines, ["boxacc_v2_iou50"]).layout.shapes
