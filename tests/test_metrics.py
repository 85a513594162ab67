"""Metrics with hand-computed oracles: classification, Loc metrics, MaxBoxAcc v1/v2, PxAP, τ choice."""
import numpy as np
import pytest

from spg_core import metrics as M


def test_tau_grid_is_wes_arange():
    assert len(M.tau_grid(0.01)) == 100
    assert np.array_equal(M.tau_grid(0.001), np.arange(0, 1, 0.001))
    with pytest.raises(ValueError, match="cam_curve_interval"):
        M.tau_grid(0)


# ----------------------------------------------------------------------------- classification
def test_top1_top5_with_wrong_classes():
    scores = np.array([
        [9, 1, 2, 3, 4, 5, 6],  # label 0 ranked 1st
        [9, 8, 7, 6, 5, 4, 1],  # label 6 ranked 7th: wrong in top-1 and top-5
        [9, 8, 7, 6, 5, 4, 1],  # label 4 ranked 5th: top-5 only
    ], dtype=float)
    labels = np.array([0, 6, 4])
    assert M.topk_correct(scores, labels, 1).tolist() == [True, False, False]
    assert M.topk_correct(scores, labels, 5).tolist() == [True, False, True]
    accuracy = M.classification_accuracy(scores, labels)
    assert accuracy["top1"] == pytest.approx(100 / 3)
    assert accuracy["top5"] == pytest.approx(200 / 3)


def test_top5_with_fewer_than_five_classes_is_top_all():
    scores = np.array([[0.1, 0.2, 0.7]])
    assert M.topk_correct(scores, [0], 5).tolist() == [True]


# ----------------------------------------------------------------------------- paper Loc metrics
def test_localization_curves_by_hand():
    # 4 images, 2 τ values; IoU of each image's GT-class box with its best GT box.
    ious = np.array([[0.6, 0.4],
                     [0.5, 0.7],   # exactly 0.5 counts (>=)
                     [0.9, 0.9],
                     [0.1, 0.8]])
    top1 = [True, False, True, True]
    top5 = [True, True, False, True]
    curves = M.localization_curves(ious, top1, top5, [0.2, 0.4], split="test")
    assert curves["gt_known_loc"].values.tolist() == [75.0, 75.0]
    assert curves["top1_loc"].values.tolist() == [50.0, 50.0]  # image 1 right box, wrong class
    assert curves["top5_loc"].values.tolist() == [50.0, 50.0]  # image 2 right box, GT not in top 5


# ----------------------------------------------------------------------------- τ selection
def test_select_tau_never_on_reported_split():
    taus = np.array([0.1, 0.2, 0.3])
    val = M.Curve("gt_known_loc", "val", taus, np.array([10.0, 40.0, 20.0]))
    test = M.Curve("gt_known_loc", "test", taus, np.array([30.0, 25.0, 50.0]))
    chosen = M.select_tau(val, test)
    assert chosen["tau"] == 0.2 and chosen["value"] == 25.0  # not test's own best 50
    assert chosen["oracle"] is False
    with pytest.raises(ValueError, match="reported split"):
        M.select_tau(test, test)
    with pytest.raises(ValueError, match="reported split"):
        M.select_tau(M.Curve("gt_known_loc", "test", taus, val.values), test)
    oracle = M.select_tau(test, test, oracle=True)
    assert oracle["tau"] == 0.3 and oracle["value"] == 50.0 and oracle["oracle"] is True


# ----------------------------------------------------------------------------- WE box accuracy
def test_maxboxacc_uses_one_dataset_level_tau():
    box = M.BoxAccuracy([0.1, 0.2, 0.3])
    box.add(iou_v1=[0.6, 0.1, 0.1], iou_v2=[0.6, 0.1, 0.1])  # right only at τ=0.1
    box.add(iou_v1=[0.1, 0.1, 0.6], iou_v2=[0.1, 0.1, 0.6])  # right only at τ=0.3
    # Per-image best τ would give 100; WE's metric takes the best single τ for the dataset.
    assert box.metrics()["maxboxacc"] == 50.0
    assert box.accuracy("v1", 50).tolist() == [50.0, 0.0, 50.0]


def test_maxboxacc_v2_each_iou_has_its_own_tau():
    box = M.BoxAccuracy([0.1, 0.2])
    box.add(iou_v1=[0.0, 0.0], iou_v2=[0.35, 0.75])
    box.add(iou_v1=[0.0, 0.0], iou_v2=[0.45, 0.0])
    metrics = box.metrics()
    # IoU 0.3: τ=0.1 gets both (100). IoU 0.5 and 0.7: τ=0.2 gets image 1 (50).
    assert metrics["maxboxacc_v2_per_iou"] == {"30": 100.0, "50": 50.0, "70": 50.0}
    assert metrics["maxboxacc_v2"] == pytest.approx(200 / 3)
    assert metrics["maxboxacc"] == 0.0
    assert set(box.curves("test")) == {f"boxacc_{m}_iou{t}" for m in ("v1", "v2") for t in (30, 50, 70)}


# ----------------------------------------------------------------------------- PxAP
def _mask():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2:6, 2:7] = 1  # 20 object pixels
    mask[8:10, :] = 255  # 20 ignored pixels
    return mask  # 60 background pixels


def test_pxap_perfect_map_is_100():
    pxap = M.PxAP(M.tau_grid(0.01))
    mask = _mask()
    score = (mask == 1).astype(float)
    score[mask == 255] = 1.0  # whatever the ignore region scores, it is excluded
    pxap.add(score, mask)
    assert pxap.compute() == 100.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_pxap_constant_map_is_the_positive_rate(value):
    pxap = M.PxAP(M.tau_grid(0.01))
    pxap.add(np.full((10, 10), value), _mask())
    assert pxap.compute() == pytest.approx(100 * 20 / 80)


def test_pxap_needs_object_pixels():
    pxap = M.PxAP(M.tau_grid(0.01))
    pxap.add(np.zeros((4, 4)), np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="no mask has an object pixel"):
        pxap.compute()


def test_pxap_curve_ends_at_full_recall():
    pxap = M.PxAP(M.tau_grid(0.1))
    rng = np.random.default_rng(0)
    pxap.add(rng.random((10, 10)), _mask())
    curve = pxap.curve("test")
    assert curve.extra["recall"][-1] == 1.0
    assert 0 <= curve.values.min() and curve.values.max() <= 100


# ----------------------------------------------------------------------------- SPG* and failures
def test_spg_star_top5_two_boxes_for_the_first_two_classes():
    gt = [[10, 10, 20, 20]]
    good, bad = [10, 10, 20, 20], [40, 40, 50, 50]
    # Boxes are [loose, tight]. GT class ranked 2nd, its tight box is the right one: counts.
    assert M.spg_star_top5_correct([3, 7, 1], {3: [good], 7: [bad, good], 1: [bad]}, 7, gt)
    # GT class ranked 3rd: only its loose box counts.
    assert not M.spg_star_top5_correct([3, 1, 7], {3: [good], 1: [bad], 7: [bad, good]}, 7, gt)
    # A right box from a wrong class never counts.
    assert not M.spg_star_top5_correct([3, 1, 2], {3: [good], 1: [good], 2: [good]}, 7, gt)


def test_failure_types_by_hand():
    gt = [[10, 10, 29, 29]]  # 20x20 = 400 px
    assert M.failure_type([10, 10, 29, 29], gt, class_correct=False) == "wrong-class"
    assert M.failure_type([11, 11, 29, 29], gt, class_correct=True) == "ok"
    assert M.failure_type([12, 12, 19, 19], gt, True) == "part-only"  # 64 px, all inside
    assert M.failure_type([0, 0, 49, 49], gt, True) == "too-large"  # 2500 px holding the GT
    assert M.failure_type([25, 25, 44, 44], gt, True) == "wrong-place"  # 25 px overlap of 400
    assert M.failure_type([0, 0, 3, 3], [[0, 0, 1, 1], [50, 50, 60, 60]], True) == "too-large"
    assert set(M.FAILURE_TYPES) == {"ok", "wrong-class", "part-only", "too-large", "wrong-place"}


# ----------------------------------------------------------------------------- failure types
def _bird():
    """A 100×100 object as the teaching benchmark draws it: a body (ellipse) with a head (disc)
    on its top rim. Returns (1/0 mask, its tight GT box)."""
    ys, xs = np.mgrid[0:100, 0:100]
    body = ((xs - 50) / 30.0) ** 2 + ((ys - 60) / 15.0) ** 2 <= 1
    head = (xs - 50) ** 2 + (ys - 42) ** 2 <= 7 ** 2
    mask = (body | head).astype(np.uint8)
    rows, cols = np.nonzero(mask)
    return mask, [[int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())]]


def _old_failure_type(pred, gt):
    """The earlier rule (boxes only: 80 % of the box inside a GT box -> part-only)."""
    from spg_core.boxes import box_areas, intersection_areas

    pred, gt = np.asarray(pred)[None], np.atleast_2d(gt)
    inter = intersection_areas(pred, gt)[0]
    if (inter / box_areas(pred[0]) >= 0.8).any():
        return "part-only"
    return "too-large" if (inter / box_areas(gt) >= 0.8).any() else "wrong-place"


def test_failure_types_match_what_a_person_sees_with_a_mask():
    mask, gt = _bird()
    assert gt == [[20, 35, 80, 75]]
    cases = {
        # The classic CAM box: around the head on the object's rim, hanging over the background
        # above it (a quarter of it outside the GT box, about half of it off the object).
        "head": ([36, 28, 64, 56], "part-only"),
        # Around the whole object plus much background.
        "everything": ([0, 0, 99, 99], "too-large"),
        # 1.8 times the object's box, shifted down: holds 84 % of the object, 72 % background.
        "big-shifted": ([10, 50, 99, 99], "too-large"),
        # On the background beside the object.
        "off": ([82, 5, 97, 30], "wrong-place"),
        # Inside the GT box but in its empty corner: no object pixel under it.
        "empty-corner": ([20, 35, 30, 45], "wrong-place"),
        "exact": (gt[0], "ok"),
    }
    for name, (box, expected) in cases.items():
        assert M.failure_type(box, gt, True, mask=mask) == expected, name
        overlap = M.object_overlap([box], mask, gt)[0]
        assert M.failure_type(box, gt, True, overlap=overlap) == expected, name
    assert M.failure_type(gt[0], gt, False, mask=mask) == "wrong-class"
    assert M.failure_type(cases["head"][0], gt, False, mask=mask) == "wrong-class"
    # The old box-only rule called the head box wrong-place and the empty corner part-only.
    assert _old_failure_type(cases["head"][0], gt) == "wrong-place"
    assert _old_failure_type(cases["big-shifted"][0], gt) == "wrong-place"
    assert _old_failure_type(cases["empty-corner"][0], gt) == "part-only"
    # Without the mask the GT box is the object: its corner is then a part of it.
    assert M.failure_type(cases["empty-corner"][0], gt, True) == "part-only"


def test_failure_types_without_a_mask_use_the_gt_boxes():
    gt = [[20, 20, 59, 59]]  # 40×40
    assert M.failure_type([20, 20, 59, 59], gt, True) == "ok"
    assert M.failure_type([20, 20, 59, 59], gt, False) == "wrong-class"
    assert M.failure_type([30, 30, 39, 39], gt, True) == "part-only"  # inside, 6 % of the object
    # On the rim, half outside the object: still on a part of it (the old rule: wrong-place).
    assert M.failure_type([10, 30, 29, 49], gt, True) == "part-only"
    assert _old_failure_type([10, 30, 29, 49], gt) == "wrong-place"
    assert M.failure_type([0, 0, 99, 99], gt, True) == "too-large"
    # 3600 px holding 56 % of the object, 75 % background (the old rule: wrong-place).
    assert M.failure_type([30, 30, 89, 89], gt, True) == "too-large"
    assert _old_failure_type([30, 30, 89, 89], gt) == "wrong-place"
    assert M.failure_type([70, 70, 89, 89], gt, True) == "wrong-place"  # off the object
    assert M.failure_type([50, 50, 79, 79], gt, True) == "wrong-place"  # 11 % of it on the object


def test_failure_type_fractions_and_ignored_pixels():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    gt = [[10, 10, 29, 29]]
    # [object in box, labelled in box, object in box ∩ GT box, object in GT box]
    assert M.object_overlap([[0, 0, 19, 19]], mask, gt).tolist() == [[100, 400, 100, 400]]
    assert M.object_overlap([[35, 35, 39, 39]], mask, gt).tolist() == [[0, 25, 0, 400]]
    # A fifth of the box on the object is the line between part-only and wrong-place.
    assert M.failure_type([6, 10, 10, 29], gt, True, mask=mask) == "part-only"  # 1 of 5 columns
    assert M.failure_type([5, 10, 10, 29], gt, True, mask=mask) == "wrong-place"  # 1 of 6 columns
    assert M.failure_type([0, 0, 39, 11], gt, True, mask=mask) == "wrong-place"  # 40 of 480 px
    # Ignored pixels (255) are neither object nor background.
    ignored = mask.copy()
    ignored[0:10, 0:40] = 255
    assert M.failure_type([0, 0, 39, 11], gt, True, mask=ignored) == "part-only"  # 40 of 80 labelled px
    # Several instances: "too large" is judged against the instance the box matches best.
    two = [[0, 0, 1, 1], [50, 50, 60, 60]]
    assert M.failure_type([0, 0, 3, 3], two, True) == "too-large"


def test_evaluator_rows_use_the_mask_for_the_failure_type():
    from spg_core.evaluate import evaluate_maps

    mask, gt = _bird()
    score = np.zeros((100, 100))
    score[35:46, 20:31] = 1.0  # a blob in the GT box's empty corner
    for with_mask, expected in ((True, "wrong-place"), (False, "part-only")):
        entry = (np.array(gt, float), (100, 100), mask) if with_mask else (np.array(gt, float), (100, 100))
        _, rows, _ = evaluate_maps([("a", score)], {"a": entry}, protocol="paper", tau=0.5)
        assert rows[0]["pred_box"] == [20, 35, 30, 45]
        assert rows[0]["failure"] == expected, with_mask
