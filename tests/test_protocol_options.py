"""The protocol switchboard (spg_core.protocol_options): every published combination equals the
evaluator's own number to the last digit — on a tiny run's real maps and on smooth maps with
two-box images — and a custom combination differs exactly where its switch acts."""
from __future__ import annotations

import numpy as np
import pytest

from app_runs import write_tiny_run
from spg_core import evaluate as E
from spg_core import protocol_options as P

PAPER, MAXBOXACC, MAXBOXACC_V2 = (P.PUBLISHED[k].options for k in ("paper", "maxboxacc", "maxboxacc_v2"))


# ----------------------------------------------------------------------------- labels
def test_published_combinations_are_named_and_the_rest_custom():
    assert P.protocol_label(P.ProtocolOptions()).name == "paper/CAM GT-known Loc"
    assert P.protocol_label(MAXBOXACC).name == "wsolevaluation MaxBoxAcc"
    label = P.protocol_label(MAXBOXACC_V2)
    assert label.name == "wsolevaluation MaxBoxAccV2" and label.oracle and label.published
    assert "as wsolevaluation defines" in label.text
    first = P.protocol_label(P.ProtocolOptions(matching="first"))
    assert (first.name, first.preset) == ("custom", "paper") and "the first GT box only" in first.text
    assert not first.oracle and "oracle" not in first.text
    oracle = P.protocol_label(P.ProtocolOptions(tau="oracle"))
    assert oracle.name == "custom" and oracle.oracle and "upper bound" in oracle.text
    fair = P.protocol_label(P.ProtocolOptions("largest_contour"))  # MaxBoxAcc's rule, τ from val
    assert (fair.name, fair.preset) == ("custom", "maxboxacc") and "held-out" in fair.text
    assert P.ProtocolOptions(iou_set=[0.7, 0.3, 0.5]).iou_set == (0.3, 0.5, 0.7)


@pytest.mark.parametrize("bad", [{"box_rule": "contours"}, {"matching": "all"}, {"normalization": "sum"},
                                 {"iou_set": ()}, {"iou_set": (0.5, 1.5)}, {"tau": "test"}])
def test_options_refuse_unknown_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        P.ProtocolOptions(**bad)


# ----------------------------------------------------------------------------- against the evaluator
def _equal_curve(a, b):
    assert np.array_equal(a.taus, b.taus) and np.array_equal(a.values, b.values)


def _check_against_evaluator(report, held_out, paper, fair):
    """paper: evaluate(…, protocol='paper', τ from held-out) metrics and curves; fair: protocol='wsolevaluation'."""
    (paper_metrics, paper_curves), (fair_metrics, fair_curves) = paper, fair
    result = P.score_protocol(report, PAPER, held_out)
    assert result["value"] == paper_metrics["gt_known_loc"]
    assert result["per_iou"][0]["tau"] == paper_metrics["tau"]
    assert result["per_iou"][0]["threshold_value"] == paper_metrics["tau_threshold_split_gt_known_loc"]
    _equal_curve(result["curves"]["iou50"], paper_curves["gt_known_loc"])
    _equal_curve(result["threshold_curves"]["iou50"], paper_curves["threshold/gt_known_loc"])
    if "top1_loc" in paper_metrics:
        assert result["top1_loc"] == paper_metrics["top1_loc"]
        assert result["per_iou"][0]["top5_loc"] == paper_metrics["top5_loc"]
    result = P.score_protocol(report, MAXBOXACC)
    assert result["value"] == fair_metrics["maxboxacc"]
    _equal_curve(result["curves"]["iou50"], fair_curves["boxacc_v1_iou50"])
    result = P.score_protocol(report, MAXBOXACC_V2)
    assert result["value"] == fair_metrics["maxboxacc_v2"]
    assert {f"{e['iou'] * 100:g}": e["value"] for e in result["per_iou"]} == fair_metrics["maxboxacc_v2_per_iou"]
    for threshold in (30, 50, 70):
        _equal_curve(result["curves"][f"iou{threshold}"], fair_curves[f"boxacc_v2_iou{threshold}"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained run (tests/app_runs.py) with its generated test and val splits."""
    from spg_core.data.settings import DataSettings
    from spg_core.runs import load_run

    model, config, _ = load_run(write_tiny_run(tmp_path_factory.mktemp("protocols") / "tiny", num_val=12), "cpu")
    settings = DataSettings.from_config(config)
    return model, settings.dataset("test"), settings.dataset("val")


def test_published_combinations_reproduce_the_evaluator_on_a_tiny_run(tiny):
    model, test, val = tiny
    paper, _, paper_curves = E.evaluate(model, test, protocol="paper", threshold_dataset=val, progress=False)
    fair, _, fair_curves = E.evaluate(model, test, protocol="wsolevaluation", progress=False)
    report, held_out = P.collect_maps(model, test), P.collect_maps(model, val)
    assert (len(report), report.split, held_out.split, report.paper_size) == (len(test), "test", "val", 64)
    assert report.classified and report.extra["classification_top1"] == paper["classification_top1"]
    _check_against_evaluator(report, held_out, (paper, paper_curves), (fair, fair_curves))


def _smooth_maps(count, seed, prefix):
    """Low-resolution random maps of images of varied sizes, every other one with two GT boxes."""
    rng = np.random.default_rng(seed)
    maps, gt = [], {}
    for i in range(count):
        width, height = int(rng.integers(80, 200)), int(rng.integers(70, 180))
        boxes = []
        for _ in range(1 + i % 2):
            x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            boxes.append([x0, y0, int(rng.integers(x0 + 10, width)), int(rng.integers(y0 + 10, height))])
        maps.append((f"{prefix}{i}", rng.random((7, 7)) + 0.2))
        gt[f"{prefix}{i}"] = (np.array(boxes, dtype=float), (width, height))
    return maps, gt


def test_published_combinations_reproduce_evaluate_maps_on_two_box_images():
    (maps, gt), (held_maps, held_gt) = _smooth_maps(16, 0, "t"), _smooth_maps(16, 1, "v")
    threshold = E.score_maps_split(held_maps, held_gt, "paper", split="val").curves()
    paper, _, paper_curves = E.evaluate_maps(maps, gt, "paper", split="test", threshold_curves=threshold)
    fair, _, fair_curves = E.evaluate_maps(maps, gt, "wsolevaluation", split="test")
    report, held_out = P.MapSet.from_maps(maps, gt, "test"), P.MapSet.from_maps(held_maps, held_gt, "val")
    assert 0 < paper["gt_known_loc"] < 100 and 0 < fair["maxboxacc_v2"] < 100  # not a trivial case
    _check_against_evaluator(report, held_out, (paper, paper_curves), (fair, fair_curves))


# ----------------------------------------------------------------------------- custom switches
def _two_box_image():
    """One 60×40 image with two GT boxes; the map is hot on the second one only."""
    score = np.zeros((40, 60))
    score[20:35, 40:55] = 1.0
    return P.MapSet.from_maps([("a", score)], {"a": (np.array([[2, 2, 20, 15], [40, 20, 54, 34]]), (60, 40))})


@pytest.mark.parametrize("rule", P.BOX_RULES)
def test_first_box_matching_differs_from_any_box_on_a_two_box_image(rule):
    maps = _two_box_image()
    any_box = P.score_protocol(maps, P.ProtocolOptions(rule, tau="oracle"))
    first = P.score_protocol(maps, P.ProtocolOptions(rule, matching="first", tau="oracle"))
    assert any_box["value"] == 100.0 and first["value"] == 0.0
    assert P.protocol_label(first["options"]).name == "custom"


def test_max_normalisation_keeps_a_non_zero_floor():
    score = np.full((40, 60), 0.5)
    score[10:30, 20:45] = 1.0  # the object at twice the floor
    maps = P.MapSet.from_maps([("a", score)], {"a": (np.array([[20, 10, 44, 29]]), (60, 40))})
    minmax = P.score_protocol(maps, P.ProtocolOptions(tau="oracle"))
    peak = P.score_protocol(maps, P.ProtocolOptions(normalization="max", tau="oracle"))
    assert minmax["value"] == peak["value"] == 100.0  # both find the object at their best τ ...
    # ... but max normalisation keeps the whole image up to τ = 0.5, min-max only at τ = 0
    assert minmax["per_iou"][0]["tau"] == 0.01 and peak["per_iou"][0]["tau"] == 0.51
    taus = minmax["curves"]["iou50"].taus
    assert minmax["curves"]["iou50"].values[np.isclose(taus, 0.3)] == 100.0
    assert peak["curves"]["iou50"].values[np.isclose(taus, 0.3)] == 0.0
    assert "max-normalised maps" in peak["label"].text


# ----------------------------------------------------------------------------- τ: fair or labelled
def test_tau_from_val_needs_a_disjoint_held_out_split():
    maps, gt = _smooth_maps(4, 0, "t")
    report = P.MapSet.from_maps(maps, gt, "test")
    with pytest.raises(ValueError, match="held-out split"):
        P.score_protocol(report, PAPER)
    with pytest.raises(ValueError, match="both the held-out and the reported"):
        P.score_protocol(report, PAPER, P.MapSet.from_maps(maps, gt, "val"))
    other, other_gt = _smooth_maps(4, 1, "v")
    with pytest.raises(ValueError, match="reported split"):  # same split name: select_tau refuses
        P.score_protocol(report, PAPER, P.MapSet.from_maps(other, other_gt, "test"))
    oracle = P.score_protocol(report, P.ProtocolOptions(tau="oracle"))
    assert oracle["oracle"] and oracle["tau_source"].startswith("oracle") and not oracle["threshold_curves"]


def test_iou_set_and_tau_switches_reuse_the_cached_ious():
    (maps, gt), (held_maps, held_gt) = _smooth_maps(6, 2, "t"), _smooth_maps(6, 3, "v")
    report, held_out = P.MapSet.from_maps(maps, gt, "test"), P.MapSet.from_maps(held_maps, held_gt, "val")
    for iou_set in P.IOU_SETS:
        for tau in P.TAU_SOURCES:
            P.score_protocol(report, P.ProtocolOptions("all_contours", iou_set=iou_set, tau=tau), held_out)
    assert len(report._ious) == len(held_out._ious) == 1
    P.score_protocol(report, P.ProtocolOptions("all_contours", matching="first", tau="oracle"))
    assert len(report._ious) == 2
