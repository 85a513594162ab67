"""evaluate-maps --iou-thresholds / --box-rule: wsolevaluation's --iou_threshold_list,
--multi_contour_eval and --multi_iou_eval, checked against its BoxEvaluator written out; at the
defaults every number stays what it was."""
import json

import cv2
import numpy as np
import pytest

from spg_core import boxes as B
from spg_core import evaluate as E
from spg_core import metrics as M


def _two_blob_data(count=6, seed=0):
    """Maps with a large blob away from the GT box and a smaller one on it (the largest contour
    misses, the best contour hits), plus noise, on images of varying sizes."""
    rng = np.random.default_rng(seed)
    maps, gt = [], {}
    for i in range(count):
        width, height = int(rng.integers(90, 160)), int(rng.integers(80, 150))
        score = 0.2 * rng.random((height, width))
        score[: height // 2, : width // 2] += 1.0  # large decoy
        x0, y0 = width * 3 // 4, height * 3 // 4
        x1, y1 = min(width - 1, x0 + int(rng.integers(8, 20))), min(height - 1, y0 + int(rng.integers(8, 20)))
        score[y0:y1 + 1, x0:x1 + 1] += 0.9
        gt[f"img{i}"] = (np.array([[x0, y0, x1, y1]], dtype=float), (width, height))
        maps.append((f"img{i}", score))
    return maps, gt


def _smooth_data(count=6, seed=4):
    rng = np.random.default_rng(seed)
    maps, gt = [], {}
    for i in range(count):
        maps.append((f"m{i}", rng.random((7, 7))))
        x0, y0 = rng.integers(0, 100, 2)
        gt[f"m{i}"] = (np.array([[x0, y0, x0 + rng.integers(20, 100), y0 + rng.integers(20, 80)]]), (200, 180))
    return maps, gt


def _we_box_evaluator(maps, gt, taus, multi_contour, thresholds):
    """WE's BoxEvaluator, written out: one contour pass per τ, counts per IoU threshold, best τ each."""
    correct = {t: np.zeros(len(taus)) for t in thresholds}
    for image_id, score in maps:
        boxes, size = gt[image_id][0], gt[image_id][1]
        resized = B.minmax_numpy(cv2.resize(score.astype(np.float64), (224, 224), interpolation=cv2.INTER_CUBIC))
        gt224 = np.array([E.resize_box(b, size, (224, 224)) for b in boxes])
        best = [B.iou(B.wsol_boxes(resized, tau, multi_contour), gt224).max() for tau in taus]
        for t in thresholds:
            correct[t][np.where(np.asarray(best) >= t / 100)[0]] += 1
    return {t: (c * 100.0 / len(maps)).max() for t, c in correct.items()}


def test_defaults_score_exactly_as_without_options():
    maps, gt = _two_blob_data()
    plain, plain_rows, plain_curves = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05)
    given, given_rows, given_curves = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05,
                                                      iou_thresholds=[30, 50, 70])
    summary = given.pop("box_accuracy")
    assert given == plain and given_rows == plain_rows and set(given_curves) == set(plain_curves)
    # With no rule given the summary is wsolevaluation's default (--multi_contour_eval true): MaxBoxAccV2.
    assert summary["box_rule"] == "all-contours" and summary["mean"] == plain["maxboxacc_v2"]
    assert summary["per_iou"] == plain["maxboxacc_v2_per_iou"]
    assert summary["wsolevaluation_flags"] == ("--multi_contour_eval true --iou_threshold_list 30 50 70 "
                                               "--multi_iou_eval true")
    # The largest-contour rule is the Loc metrics' default box: only the summary is added.
    ruled, ruled_rows, _ = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05, box_rule="largest-contour")
    assert ruled.pop("box_accuracy")["box_rule"] == "largest-contour"
    assert ruled == plain and ruled_rows == plain_rows


@pytest.mark.parametrize("thresholds", [(30, 50, 70), (50,), (10, 90), (70, 30)])
@pytest.mark.parametrize("rule", ["largest-contour", "all-contours"])
def test_contour_rules_are_wsolevaluations_box_evaluator(rule, thresholds):
    maps, gt = _smooth_data()
    taus = M.tau_grid(0.05)
    metrics, _, _ = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05, iou_thresholds=list(thresholds),
                                    box_rule=rule)
    reference = _we_box_evaluator(maps, gt, taus, rule == "all-contours", thresholds)
    summary = metrics["box_accuracy"]
    assert summary["iou_thresholds"] == list(thresholds)
    assert summary["per_iou"] == {str(t): reference[t] for t in thresholds}
    assert summary["mean"] == np.average([reference[t] for t in thresholds])  # --multi_iou_eval true
    # MaxBoxAccV2 follows the IoU set; MaxBoxAcc stays at IoU 50, also when 50 is not in the set.
    all_contours = _we_box_evaluator(maps, gt, taus, True, thresholds)
    assert metrics["maxboxacc_v2_per_iou"] == {str(t): all_contours[t] for t in thresholds}
    assert metrics["maxboxacc_v2"] == np.average([all_contours[t] for t in thresholds])
    assert metrics["maxboxacc"] == _we_box_evaluator(maps, gt, taus, False, (50,))[50]


def test_the_rule_picks_the_box_of_the_loc_metrics_and_rows():
    maps, gt = _two_blob_data()
    largest, largest_rows, _ = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05, tau=0.5, box_rule="largest-contour")
    best, best_rows, curves = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05, tau=0.5, box_rule="all-contours")
    assert largest["gt_known_loc"] == 0.0 and best["gt_known_loc"] == 100.0  # the decoy is the largest contour
    for row in best_rows:
        assert row["failure"] == "ok" and row["iou"] >= 0.5
        assert row["pred_box"][0] >= 224 * 3 // 4 - 2  # the small blob's box, on the 224 grid
    assert all(row["iou"] < 0.5 for row in largest_rows)
    # Without τ the rows are shown at the best τ of the rule's own curve.
    shown, _, _ = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05, box_rule="all-contours")
    assert "all-contours" in shown["rows_tau_source"]
    assert shown["rows_tau"] == curves["boxacc_v2_iou50"].taus[int(np.argmax(curves["boxacc_v2_iou50"].values))]


def test_largest_component_is_the_paper_rule_at_every_iou():
    maps, gt = _smooth_data(5, seed=7)
    taus = M.tau_grid(0.05)
    metrics, _, _ = E.evaluate_maps(maps, gt, "paper", 0.05, tau="oracle", box_rule="largest-component",
                                    iou_thresholds=[30, 50, 70])
    correct = {t: np.zeros(len(taus)) for t in (30, 50, 70)}
    for image_id, score in maps:
        boxes, size = gt[image_id][0], gt[image_id][1]
        grid_boxes = boxes.astype(np.int64)  # the paper protocol scores on the original image here
        resized = cv2.resize(score.astype(np.float64), size, interpolation=cv2.INTER_LINEAR)
        ious = [B.iou(B.largest_component_box(resized, tau), grid_boxes).max() for tau in taus]
        for t in correct:
            correct[t][np.asarray(ious) >= t / 100] += 1
    expected = {str(t): (c * 100.0 / len(maps)).max() for t, c in correct.items()}
    summary = metrics["box_accuracy"]
    assert summary["per_iou"] == expected and summary["wsolevaluation_flags"] is None
    assert summary["box_rule"] == "largest-component"
    plain, _, _ = E.evaluate_maps(maps, gt, "paper", 0.05, tau="oracle")
    metrics.pop("box_accuracy")
    assert metrics == plain


@pytest.mark.parametrize("thresholds", [[], [0, 50], [50, 101], [50, 50], [0.5]])
def test_bad_iou_thresholds_are_refused(thresholds):
    maps, gt = _smooth_data(2)
    with pytest.raises(ValueError, match="whole percents in 1..100"):
        E.evaluate_maps(maps, gt, "wsolevaluation", 0.1, iou_thresholds=thresholds)


def test_a_rule_of_the_other_protocol_is_refused():
    maps, gt = _smooth_data(2)
    with pytest.raises(ValueError, match="belongs to the paper protocol"):
        E.evaluate_maps(maps, gt, "wsolevaluation", 0.1, box_rule="largest-component")
    with pytest.raises(ValueError, match="belongs to the wsolevaluation protocol"):
        E.evaluate_maps(maps, gt, "paper", 0.1, tau="oracle", box_rule="all_contours")
    with pytest.raises(ValueError, match="unknown"):
        E.evaluate_maps(maps, gt, "wsolevaluation", 0.1, box_rule="biggest")


def _write_box_metadata(folder, maps, gt):
    metadata = folder / "metadata" / "test"
    metadata.mkdir(parents=True)
    for name, lines in {"image_ids": [i for i, _ in maps], "class_labels": [f"{i},0" for i, _ in maps],
                        "image_sizes": [f"{i},{gt[i][1][0]},{gt[i][1][1]}" for i, _ in maps],
                        "localization": [f"{i}," + ",".join(str(int(v)) for v in gt[i][0][0]) for i, _ in maps]}.items():
        (metadata / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    (folder / "maps").mkdir()
    for image_id, score in maps:
        np.save(folder / "maps" / f"{image_id}.npy", score)


def test_command_line_flags(tmp_path, capsys):
    from spg_core.cli import main

    maps, gt = _two_blob_data(4)
    _write_box_metadata(tmp_path, maps, gt)
    base = ["evaluate-maps", "--maps", str(tmp_path / "maps"), "--format", "wsol",
            "--metadata-root", str(tmp_path / "metadata"), "--split", "test"]

    def score(name, *flags):
        code = main([*base, "--out", str(tmp_path / name), *flags])
        assert code == 0, capsys.readouterr().err
        return json.loads((tmp_path / name / "metrics.json").read_text())

    default = score("default")
    assert "box_accuracy" not in default
    flagged = score("flagged", "--iou-thresholds", "30", "50", "70", "--box-rule", "all-contours")
    summary = flagged.pop("box_accuracy")
    assert summary["mean"] == default["maxboxacc_v2"] and summary["box_rule"] == "all-contours"
    assert {k: v for k, v in flagged.items() if k not in ("rows_tau", "rows_tau_source")} == \
        {k: v for k, v in default.items() if k not in ("rows_tau", "rows_tau_source")}
    single = score("single", "--iou-thresholds", "50", "--box-rule", "largest-contour")
    assert single["box_accuracy"]["mean"] == default["maxboxacc"]  # wsolevaluation's deprecated MaxBoxAcc
    assert single["maxboxacc_v2_per_iou"] == {"50": default["maxboxacc_v2_per_iou"]["50"]}

    # A rule of the paper protocol selects it; a --protocol that contradicts the rule is a usage error.
    assert main([*base, "--out", str(tmp_path / "bad"), "--box-rule", "largest-component",
                 "--protocol", "wsolevaluation"]) == 2
    assert "belongs to the paper protocol" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "paper"), "--box-rule", "largest-component"]) == 2
    assert "paper protocol needs a τ" in capsys.readouterr().err  # the paper protocol was chosen
    assert main([*base, "--out", str(tmp_path / "bad"), "--iou-thresholds", "0", "50"]) == 2
    assert "--iou-thresholds 30 50 70" in capsys.readouterr().err
