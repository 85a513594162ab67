"""Box rules and IoU: hand-computed oracles and WE's own test cases (the sweeps: test_tau_sweep.py)."""
import numpy as np
import pytest

from spg_core import boxes as B
from spg_core import tau_sweep as S


# ----------------------------------------------------------------------------- IoU
def test_iou_plus_one_rule():
    # Inclusive coordinates: [0, 0, 1, 1] covers 4 pixels, [1, 1, 2, 2] 4 pixels, overlap 1 pixel.
    assert B.iou([0, 0, 1, 1], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    # A single-pixel box has area 1, so two equal single pixels have IoU 1 (WE's degenerate case).
    assert B.iou(np.zeros((3, 4)), np.zeros((5, 4))).tolist() == np.ones((3, 5)).tolist()


def test_iou_disjoint_nested_identical_and_shapes():
    assert B.iou([0, 0, 4, 4], [5, 5, 9, 9]) == 0.0
    assert B.iou([0, 0, 4, 4], [0, 5, 4, 9]) == 0.0  # touching edges share no pixel
    assert B.iou([0, 0, 9, 9], [2, 2, 6, 6]) == pytest.approx(25 / 100)
    assert B.iou([3, 4, 8, 9], [3, 4, 8, 9]) == 1.0
    # WE's realistic case: [1,2,5,6] vs [3,1,4,5] -> 8 / 27.
    assert B.iou([1, 2, 5, 6], [3, 1, 4, 5]) == pytest.approx(8 / 27)
    many = B.iou([[1, 1, 3, 3], [4, 4, 5, 5]], [[1, 1, 3, 3], [4, 4, 5, 5], [0, 0, 0, 0]])
    assert many.shape == (2, 3)
    assert np.array_equal(many[:, :2], np.eye(2))
    assert B.iou([1, 1, 3, 3], [[1, 1, 3, 3], [4, 4, 5, 5]]).shape == (2,)


def test_iou_rejects_swapped_corners():
    with pytest.raises(ValueError, match="x1 < x0"):
        B.iou([5, 0, 1, 3], [0, 0, 1, 1])


def test_areas_and_intersections_are_inclusive_pixel_counts():
    assert B.box_areas(np.array([[0, 0, 0, 0], [2, 3, 4, 7]])).tolist() == [1, 15]
    assert B.intersection_areas(np.array([[0, 0, 3, 3]]), np.array([[2, 2, 5, 5], [4, 4, 5, 5]])).tolist() == [[4, 0]]


# ----------------------------------------------------------------------------- resizing
def test_resize_span_rule_scales_the_pixel_span():
    boxes = np.array([[0, 0, 9, 9], [4, 6, 4, 6]], dtype=np.float32)
    out = B.resize_boxes(boxes, (10, 10), (20, 5))
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 0, 19, 4], [8, 3, 9, 3]]  # [4, 5) -> [8, 10); row 6 -> 3 (kept one pixel)
    raw = B.resize_boxes(boxes, (10, 10), (20, 5), at_least_one_pixel=False)
    assert raw[1].tolist() == [8, 3, 9, 2.5]  # without the guard the shrunk row ends before it starts


def test_resize_wsolevaluation_rule_truncates_x_times_new_over_old():
    assert B.resize_boxes([[1, 2, 4, 3]], (10, 20), (35, 10), rule="wsolevaluation").tolist() == [[3, 1, 14, 1]]
    # x * new / old in that order: 49 * 1 / 49 is exactly 1, while 49 * (1 / 49) is 0.9999999999999999.
    assert B.resize_boxes([[49, 0, 49, 0]], (49, 1), (1, 1), rule="wsolevaluation").tolist() == [[1, 0, 1, 0]]
    with pytest.raises(ValueError, match="rule"):
        B.resize_boxes([[0, 0, 1, 1]], (2, 2), (4, 4), rule="round")


# ----------------------------------------------------------------------------- normalisation
def test_minmax_guards_constant_and_nan():
    assert np.array_equal(B.minmax_numpy(np.full((3, 4), 7.0)), np.zeros((3, 4)))
    with_nan = np.arange(12.0).reshape(3, 4)
    with_nan[1, 1] = np.nan
    assert np.array_equal(B.minmax_numpy(with_nan), np.zeros((3, 4)))
    ramp = B.minmax_numpy(np.array([[2.0, 4.0], [6.0, 10.0]]))
    assert ramp.tolist() == [[0.0, 0.25], [0.5, 1.0]]
    source = np.array([[1.0, 3.0]])
    B.minmax_numpy(source)
    assert source.tolist() == [[1.0, 3.0]]  # the caller's map is left alone


def test_max_normalisation_keeps_the_floor_and_guards():
    assert np.array_equal(B.max_numpy(np.array([[-1.0, 0.0], [2.0, 4.0]])), [[0.0, 0.0], [0.5, 1.0]])
    assert np.array_equal(B.max_numpy(np.full((2, 3), 7.0)), np.ones((2, 3)))  # unlike min-max: all object
    assert not B.max_numpy(np.full((2, 2), -3.0)).any() and not B.max_numpy(np.array([[np.nan, 1.0]])).any()
    assert np.array_equal(B.normalize_numpy(np.array([[2.0, 4.0]]), "minmax"), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="normalization"):
        B.normalize_numpy(np.ones((2, 2)), "sum")


# ----------------------------------------------------------------------------- paper rule
def test_paper_rule_rectangle_is_exact():
    score = np.zeros((20, 30))
    score[4:12, 7:25] = 1.0  # rows 4..11, cols 7..24
    box = B.largest_component_box(score, 0.5)
    assert box.tolist() == [7, 4, 24, 11]
    assert B.iou(box, [7, 4, 24, 11]) == 1.0


def test_paper_rule_largest_component_8_connected_and_ge_threshold():
    score = np.zeros((10, 10))
    score[1, 1] = score[2, 2] = score[3, 3] = 0.6  # a diagonal: one 8-connected component of 3 px
    score[6:8, 6:8] = 0.5  # a 2x2 block exactly at tau: kept because the rule is ">= tau"
    score[0, 9] = 1.0
    assert B.largest_component_box(score, 0.5).tolist() == [6, 6, 7, 7]  # 4 px beat 3 px
    assert B.component_boxes(score, 0.5).tolist() == [[6, 6, 7, 7], [1, 1, 3, 3], [9, 0, 9, 0]]
    assert B.largest_component_box(score, 0.55).tolist() == [1, 1, 3, 3]


def test_paper_rule_degenerate_maps():
    zeros = np.zeros((5, 6))
    assert B.largest_component_box(zeros, 0.3).tolist() == [0, 0, 0, 0]  # nothing survives
    assert B.largest_component_box(zeros, 0.0).tolist() == [0, 0, 5, 4]  # ">= 0" keeps everything
    nan_map = np.full((5, 6), np.nan)
    assert B.largest_component_box(nan_map, 0.5).tolist() == [0, 0, 0, 0]


# ----------------------------------------------------------------------------- CAM's loose and tight boxes (SPG*)
def _plateau_peak_and_blob():
    """A low plateau (0.3) over the object, a peak (1.0) on one part and a side blob (0.6)."""
    score = np.zeros((40, 40))
    score[5:31, 5:35] = 0.3  # box [5, 5, 34, 30]
    score[10:18, 10:18] = 1.0  # box [10, 10, 17, 17], 64 px
    score[25:29, 28:32] = 0.6  # box [28, 25, 31, 28], 16 px, apart from the peak
    return score


def test_loose_tight_boxes_are_the_largest_component_at_two_thresholds():
    score = _plateau_peak_and_blob()
    loose, tight = B.loose_tight_boxes(score, 0.2, 0.4)
    assert loose.tolist() == [5, 5, 34, 30]  # τ 0.2 keeps the plateau: one component around everything
    assert tight.tolist() == [10, 10, 17, 17]  # τ 0.4: the peak outgrows the blob
    assert B.loose_tight_boxes(score).tolist() == B.loose_tight_boxes(score, *B.LOOSE_TIGHT_TAUS).tolist()
    assert B.LOOSE_TIGHT_TAUS == (0.2, 0.4)
    # The rule it replaces, the two largest components at one τ, never offers both boxes:
    assert B.component_boxes(score, 0.5)[:2].tolist() == [[10, 10, 17, 17], [28, 25, 31, 28]]  # no loose box
    assert B.component_boxes(score, 0.2)[:2].tolist() == [[5, 5, 34, 30]]  # no tight box
    for bad in ((0.4, 0.2), (0.3, 0.3), (-0.1, 0.5), (0.2, 1.5)):
        with pytest.raises(ValueError, match="tau_loose < tau_tight"):
            B.loose_tight_boxes(score, *bad)


# ----------------------------------------------------------------------------- WE rule, one tau
WE_TAUS = np.arange(0, 1, 0.2)


def test_we_degenerate_map():
    boxes = [B.wsol_boxes(np.zeros((3, 3)), tau).tolist() for tau in WE_TAUS]
    assert boxes == [[[0, 0, 0, 0]]] * 5


def test_we_unimodal_map():
    # WE's evaluation_test.py case, array[y][x]; the x+w end makes x1 = min(x+w, W-1).
    score = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.4, 0.4, 0.4, 0.6],
                      [0.0, 0.4, 1.0, 0.8, 0.6],
                      [0.0, 0.4, 0.4, 0.4, 0.6]])
    boxes = [B.wsol_boxes(score, tau)[0].tolist() for tau in WE_TAUS]
    assert boxes == [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]


def test_we_multimodal_map():
    score = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                      [0.4, 0.4, 0.0, 0.4, 0.0],
                      [0.0, 0.0, 0.0, 0.4, 0.0],
                      [1.0, 0.6, 0.8, 0.2, 0.2]])
    boxes = [B.wsol_boxes(score, tau)[0].tolist() for tau in WE_TAUS]
    assert boxes == [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]
    # All contours (v2) at tau=0.2 (pixels > 51): the top-left blob, and the right column joined
    # to the bottom row through the 8-connected diagonal (3,2)-(2,3).
    assert sorted(B.wsol_boxes(score, 0.2, multi_contour=True).tolist()) == [[0, 0, 2, 2], [0, 1, 4, 3]]


def test_we_rejects_nan_and_out_of_range_maps():
    with pytest.raises(ValueError, match="NaN"):
        B.wsol_boxes(np.full((3, 3), np.nan), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        B.wsol_boxes(np.full((3, 3), 2.0), 0.5)


def test_we_perfect_rectangle_scores_about_098():
    score = np.zeros((224, 224))
    score[50:150, 40:180] = 1.0
    gt = [40, 50, 179, 149]
    box = B.wsol_boxes(score, 0.5)[0]
    assert box.tolist() == [40, 50, 180, 150]  # one pixel past the object on each far side
    value = B.iou(box, gt)
    assert value == pytest.approx(14000 / (141 * 101))
    assert 0.97 < value < 0.99
    assert B.iou(B.largest_component_box(score, 0.5), gt) == 1.0  # the paper rule is tight


def test_we_hole_contours_are_boxes_too():
    ring = np.zeros((12, 12))
    ring[2:10, 2:10] = 1.0
    ring[4:8, 4:8] = 0.0  # a 4x4 hole at rows/cols 4..7
    boxes = B.wsol_boxes(ring, 0.5, multi_contour=True).tolist()
    # Outer: tight 2..9 -> end 10. Hole: the ring pixels around it, 3..8 -> end 9.
    assert sorted(boxes) == [[2, 2, 10, 10], [3, 3, 9, 9]]
    sweep = S.wsol_sweep(ring, [[3, 3, 9, 9]], [0.5])
    assert sweep.iou_v2[0] == 1.0  # the hole's box matches this GT exactly
    assert sweep.iou_v1[0] < 1.0  # v1 takes the largest (outer) contour


def test_thresholds_are_we_int_truncation():
    assert B.wsol_threshold(255, 0.4) == 102  # 0.4 * 255 = 102.00000000000001
    taus = np.arange(0, 1, 0.001)
    assert B.uint8_levels(255, taus).tolist() == [int(t * np.uint8(255)) for t in taus]
