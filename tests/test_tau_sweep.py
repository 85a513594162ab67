"""τ sweeps: the paper rule at every τ == per-τ calls, and the exact fast WE sweep == WE's per-τ loop."""
import cv2
import numpy as np
import pytest

from spg_core import boxes as B
from spg_core import level_sets as L
from spg_core import tau_sweep as S


# ----------------------------------------------------------------------------- paper rule
def test_largest_component_sweep_matches_per_tau_calls():
    rng = np.random.default_rng(3)
    score = cv2.GaussianBlur(rng.random((40, 50)), (0, 0), 3)
    gt = [[5, 5, 30, 25], [20, 10, 45, 35]]
    taus = np.arange(0, 1, 0.05)
    boxes, ious = S.largest_component_sweep(score, gt, taus)
    for i, tau in enumerate(taus):
        expected = B.largest_component_box(score, tau)
        assert boxes[i].tolist() == expected.tolist()
        assert ious[i] == B.iou(expected, gt).max()


def test_best_iou_sweep_is_each_rules_own_sweep():
    rng = np.random.default_rng(5)
    score = B.minmax_numpy(cv2.GaussianBlur(rng.random((40, 50)), (0, 0), 3))
    gt = np.array([[5, 5, 30, 25], [20, 10, 45, 35]])
    taus = np.arange(0, 1, 0.05)
    assert np.array_equal(S.best_iou_sweep(score, gt, taus, "largest_component"),
                          S.largest_component_sweep(score, gt, taus)[1])
    sweep = S.wsol_sweep(score, gt, taus)
    assert np.array_equal(S.best_iou_sweep(score, gt, taus, "largest_contour"), sweep.iou_v1)
    assert np.array_equal(S.best_iou_sweep(score, gt, taus, "all_contours"), sweep.iou_v2)
    with pytest.raises(ValueError, match="box_rule"):
        S.best_iou_sweep(score, gt, taus, "components")


# ----------------------------------------------------------------------------- fast sweep == naive sweep
def _smooth_map(rng, size, blobs):
    yy, xx = np.mgrid[0:size, 0:size]
    score = np.zeros((size, size))
    for _ in range(blobs):
        cx, cy = rng.uniform(0, size, 2)
        sigma = rng.uniform(1, size / 4)
        score += rng.uniform(-0.5, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    return B.minmax_numpy(score)


def _maps(seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(40):
        kind = i % 4
        if kind == 0:  # sums of Gaussians, negative ones make pits and holes
            score = _smooth_map(rng, 48, int(rng.integers(1, 7)))
        elif kind == 1:  # noise: many components, holes, ties
            score = B.minmax_numpy(rng.random((20, 20)))
        elif kind == 2:  # bicubic upsampling of a small map, like a CAM
            small = rng.random((int(rng.integers(2, 7)), int(rng.integers(2, 7))))
            score = B.minmax_numpy(cv2.resize(small, (40, 36), interpolation=cv2.INTER_CUBIC))
        else:  # few levels: flat plateaus and equal-area ties between contours
            score = B.minmax_numpy(rng.integers(0, 4, (16, 18)).astype(float))
        height, width = score.shape
        gt = []
        for _ in range(int(rng.integers(1, 3))):
            x0, x1 = sorted(rng.integers(0, width, 2))
            y0, y1 = sorted(rng.integers(0, height, 2))
            gt.append([x0, y0, x1, y1])
        out.append((score, np.array(gt)))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_sweep_equals_naive_sweep(seed):
    taus = np.arange(0, 1, 0.01)
    for score, gt in _maps(seed):
        fast = S.wsol_sweep(score, gt, taus)
        assert np.array_equal(fast.iou_v1, S.wsol_best_iou_naive(score, gt, taus, multi_contour=False))
        assert np.array_equal(fast.iou_v2, S.wsol_best_iou_naive(score, gt, taus, multi_contour=True))


def test_fast_sweep_boxes_are_the_naive_boxes():
    taus = np.arange(0, 1, 0.05)
    for score, gt in _maps(2)[:12]:
        fast = S.wsol_sweep(score, gt, taus)
        for i, tau in enumerate(taus):
            assert fast.box_v1(i).tolist() == B.wsol_boxes(score, tau)[0].tolist()
            all_boxes = B.wsol_boxes(score, tau, multi_contour=True)
            assert fast.box_v2(i).tolist() in all_boxes.tolist()


def test_fast_sweep_fine_grid_and_constant_map():
    rng = np.random.default_rng(5)
    score = _smooth_map(rng, 64, 4)
    gt = [[10, 10, 40, 50]]
    taus = np.arange(0, 1, 0.001)
    fast = S.wsol_sweep(score, gt, taus)
    assert np.array_equal(fast.iou_v2, S.wsol_best_iou_naive(score, gt, taus, multi_contour=True))
    assert len(fast.v1_iou) <= 255  # one evaluation per distinct integer threshold
    empty = S.wsol_sweep(np.zeros((8, 8)), [[0, 0, 1, 1]], taus)
    assert np.all(empty.iou_v1 == 0.25) and np.all(empty.iou_v2 == 0.25)  # box [0,0,0,0] vs 2x2


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_many_keeps_order(workers):
    maps = _maps(4)
    taus = np.arange(0, 1, 0.1)
    many = S.wsol_sweep_many([m for m, _ in maps], [g for _, g in maps], taus, workers=workers, chunksize=8)
    assert len(many) == len(maps)
    for (score, gt), result in zip(maps, many):
        assert np.array_equal(result.iou_v2, S.wsol_sweep(score, gt, taus).iou_v2)


def test_hole_thresholds_match_opencv():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:60, 0:60]
    for _ in range(6):  # craters: rings around pits, plus a blob
        cx, cy, radius = rng.uniform(15, 45), rng.uniform(15, 45), rng.uniform(5, 15)
        score = np.exp(-((np.hypot(xx - cx, yy - cy) - radius) ** 2) / 8.0) + 0.3 * _smooth_map(rng, 60, 2)
        score = B.minmax_numpy(score)
        quantized = B.quantize_scoremap(score)
        _, pits = L.vanishing_levels(score, quantized)
        holed = L.hole_thresholds(quantized, pits)
        for t in range(int(quantized.max())):
            _, hierarchy = cv2.findContours((quantized > t).view(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            assert holed[t] == bool((hierarchy[0, :, 3] >= 0).any()), t


def test_sweep_rejects_bad_taus():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        S.wsol_sweep(np.zeros((4, 4)), [[0, 0, 1, 1]], [0.5, 1.0])
