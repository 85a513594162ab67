import numpy as np
import pytest
import torch

from spg_core.guidance import seed_mask, seed_statistics
from spg_core.sweeps import SWEEP_STATISTICS, guidance_batches, object_mask, seed_sweep, summarize_sweep


def test_object_mask_prefers_the_mask_and_fills_boxes_inclusively():
    mask = np.array([[0, 1], [255, 1]], dtype=np.uint8)
    assert object_mask(mask, [[0, 0, 1, 1]], (2, 2)).tolist() == [[False, True], [False, True]]
    region = object_mask(None, [[1, 0, 2, 1], [0, 3, 0, 3]], (4, 4))
    expected = np.zeros((4, 4), bool)
    expected[0:2, 1:3] = True
    expected[3, 0] = True
    assert np.array_equal(region, expected)
    with pytest.raises(ValueError, match="resize the mask"):
        object_mask(mask, None, (3, 3))


def test_hand_checked_4x4_cell():
    # One map, thresholds (0.2, 0.6), no fallback (min_pixels=1): fg = {0.9, 0.7}, bg = {0.1, 0.0}.
    o = np.array([[0.9, 0.7, 0.5, 0.1],
                  [0.0, 0.3, 0.3, 0.3],
                  [0.3, 0.3, 0.3, 0.3],
                  [0.3, 0.3, 0.3, 0.3]], dtype=np.float32)
    obj = np.zeros((4, 4), bool)
    obj[0, 0] = True  # one fg seed right, one wrong; both bg seeds outside the object
    stats = seed_sweep(o[None], [obj], [0.2], [0.6], min_pixels=1)
    assert stats["foreground"][0, 0, 0] == pytest.approx(2 / 16)
    assert stats["background"][0, 0, 0] == pytest.approx(2 / 16)
    assert stats["ignored"][0, 0, 0] == pytest.approx(12 / 16)
    assert stats["foreground_precision"][0, 0, 0] == pytest.approx(0.5)
    assert stats["background_precision"][0, 0, 0] == pytest.approx(1.0)
    assert stats["fallback"][0, 0, 0] == 0.0


def test_matches_seed_statistics_and_fallback_of_every_cell():
    rng = np.random.default_rng(0)
    maps = [rng.random((12, 12)).astype(np.float32) ** 3 for _ in range(3)] + [rng.random((8, 10)).astype(np.float32)]
    objects = [rng.random(m.shape) > 0.6 for m in maps]
    lows, highs = [0.0, 0.1, 0.5], [0.3, 0.7, 0.95]
    stats = seed_sweep(maps, objects, lows, highs)
    assert set(stats) == set(SWEEP_STATISTICS)
    for n, (score_map, obj) in enumerate(zip(maps, objects)):
        for i, low in enumerate(lows):
            for j, high in enumerate(highs):
                if low >= high:
                    assert all(np.isnan(stats[k][n, i, j]) for k in stats)
                    continue
                mask, fired = seed_mask(score_map, low, high, return_fallback=True)
                expected = seed_statistics(mask, obj)
                for key, value in expected.items():
                    np.testing.assert_allclose(stats[key][n, i, j], value, equal_nan=True, err_msg=key)
                assert stats["fallback"][n, i, j] == float(fired)


def test_fallback_and_summary():
    flat = np.full((2, 8, 8), 0.5, dtype=np.float32)
    flat[1, :6, :6] = 1.0  # 36 pixels above 0.7: no fallback for the second image
    stats = seed_sweep(flat, None, [0.1], [0.7])
    assert "foreground_precision" not in stats
    assert stats["fallback"][:, 0, 0].tolist() == [1.0, 0.0]
    summary = summarize_sweep(stats)
    assert summary["fallback"][0, 0] == pytest.approx(0.5)
    with_obj = seed_sweep(np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), bool), [0.1], [0.7], min_pixels=0)
    # All-zero maps: no foreground seed, so fg precision is undefined and excluded from the mean.
    summary = summarize_sweep(with_obj)
    assert np.isnan(summary["foreground_precision"][0, 0])
    assert summary["images_with_foreground"][0, 0] == 0
    assert summary["background_precision"][0, 0] == pytest.approx(1.0)


def test_bad_grids_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="deltas_high"):
        seed_sweep(np.zeros((1, 4, 4)), None, [0.1], [1.5])
    with pytest.raises(ValueError, match="one mask per map"):
        seed_sweep(np.zeros((2, 4, 4)), [np.zeros((4, 4), bool)], [0.1], [0.7])


def test_guidance_batches_on_a_tiny_model_and_dataset():
    from spg_core.data import build_dataset
    from spg_core.models import build_model

    dataset = build_dataset("synthetic", "test", image_size=64, num_classes=2, num_train=0, num_val=0, num_test=5)
    model = build_model("tiny", 2, variant="spg", widths=(4, 8, 16))
    progress = []
    batches = list(guidance_batches(model, dataset, limit=3, batch_size=2, mask_size=32,
                                    on_batch=lambda done, total: progress.append((done, total))))
    assert progress == [(2, 3), (3, 3)]
    assert [i for b in batches for i in b["indices"]] == [0, 1, 2]
    first = batches[0]
    assert set(first["maps"]) == {"attention", "b2", "fused"}
    assert first["maps"]["attention"].shape == (2, 32, 32)
    assert first["object_masks"].shape == (2, 32, 32) and first["object_masks"].dtype == bool
    assert first["object_masks"].any()
    maps = torch.cat([b["maps"]["attention"] for b in batches])
    objects = np.concatenate([b["object_masks"] for b in batches])
    stats = seed_sweep(maps, objects, [0.1], [0.7])
    assert stats["foreground"].shape == (3, 1, 1)
    plain = build_model("tiny", 2, variant="plain", widths=(4, 8, 16))
    only = next(guidance_batches(plain, dataset, limit=1))
    assert set(only["maps"]) == {"attention"}


def test_seed_composition_and_score_by_distance():
    from spg_core.sweeps import score_by_distance, seed_composition

    reference = np.zeros((1, 20, 20), bool)
    reference[0, 8:12, 0:4] = True  # a "part" on the left edge
    body = np.zeros_like(reference)
    body[0, 6:14, 4:14] = True
    regions = {"part": reference, "body": body, "background": ~(reference | body)}
    masks = np.full((1, 20, 20), 255, np.uint8)
    masks[0, 8:12, 0:6] = 1  # 16 part pixels + 8 body pixels
    assert seed_composition(masks, regions) == {"part": 16 / 24, "body": 8 / 24, "background": 0.0}
    # A map that is 1 on the body and 0 elsewhere: body column 1, background 0 in every ring.
    rows = score_by_distance(body.astype(float), reference, regions, bins=(0, 4, 8))
    assert [row["distance"] for row in rows] == ["0 (inside)", "0-4", "4-8", ">8"]
    assert rows[0]["part"] == 0.0 and rows[0]["body"] is None
    assert all(row["body"] in (None, 1.0) and row["background"] in (None, 0.0) for row in rows)
    # A radial map (a function of the distance only) gives equal body and background means.
    from scipy import ndimage

    radial = np.exp(-ndimage.distance_transform_edt(~reference[0]) / 5)[None]
    for row in score_by_distance(radial, reference, regions, bins=tuple(range(9)))[1:-1]:
        if row["body"] is not None and row["background"] is not None:
            assert abs(row["body"] - row["background"]) < 0.05
    with pytest.raises(ValueError, match="same"):
        score_by_distance(radial[:, :10], reference, regions)


def test_benchmark_regions_tile_the_image_and_match_the_generator():
    from types import SimpleNamespace

    from spg_core.data.synthetic import SyntheticConfig, generate
    from spg_core.sweeps import benchmark_regions

    options = {"num_classes": 3, "num_train": 4, "num_val": 4, "num_test": 4, "seed": 5}
    config = SimpleNamespace(format="synthetic", image_size=64, synthetic=options)
    regions = benchmark_regions(config, "val", 3)
    assert {name: value.shape for name, value in regions.items()} == {n: (3, 64, 64) for n in ("part", "body", "background")}
    total = regions["part"].astype(int) + regions["body"] + regions["background"]
    assert (total == 1).all()  # every pixel in exactly one region
    image = generate(SyntheticConfig(image_size=64, **options), "val", 2)
    assert (regions["part"][2] == image.part_mask).all() and regions["part"][2].any()
    with pytest.raises(ValueError, match="teaching benchmark"):
        benchmark_regions(SimpleNamespace(format="cub", image_size=64, synthetic={}), "val", 1)


def test_the_sweep_draws_the_seeds_with_the_presets_precedence():
    flat = torch.linspace(0.02, 0.06, 100).reshape(1, 10, 10)  # fallback 0.042 < δ_l 0.05
    for precedence in ("foreground", "background"):
        stats = seed_sweep(flat, None, [0.05], [0.5], precedence=precedence)
        mask = seed_mask(flat, 0.05, 0.5, precedence=precedence)
        assert stats["background"][0, 0, 0] == pytest.approx(float((mask == 0).float().mean()))
    assert (seed_sweep(flat, None, [0.05], [0.5], precedence="background")["background"]
            > seed_sweep(flat, None, [0.05], [0.5])["background"]).all()
