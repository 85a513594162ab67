import numpy as np
import pytest
import torch

from spg_core.guidance import (
    BACKGROUND as B,
    FOREGROUND as F,
    IGNORE as I,
    PRESETS,
    Thresholds,
    attention_map,
    fused_guidance,
    get_preset,
    normalize_map,
    seed_mask,
    seed_statistics,
    self_produced_guidance,
)


def test_seed_mask_hand_written_4x4():
    o = torch.tensor(
        [
            [0.00, 0.04, 0.06, 0.10],
            [0.20, 0.50, 0.69, 0.70],
            [0.71, 0.80, 0.90, 1.00],
            [0.05, 0.049, 0.7001, 0.3],
        ]
    )
    expected = torch.tensor(
        [
            [B, B, I, I],
            [I, I, I, I],
            [F, F, F, F],
            [I, B, F, I],
        ],
        dtype=torch.uint8,
    )
    got = seed_mask(o, delta_low=0.05, delta_high=0.7, min_pixels=1)
    assert torch.equal(got, expected)
    assert got.dtype == torch.uint8


def test_seed_mask_numpy_in_numpy_out():
    o = np.array([[0.0, 0.5], [0.9, 1.0]], dtype=np.float32)
    got = seed_mask(o, 0.1, 0.7, min_pixels=1)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, [[B, I], [F, F]])


def test_fallback_fires_per_image_without_leak():
    # Image 0: only a few pixels above 0.7 → fallback to 0.7·max = 0.56 for image 0 only.
    # Image 1: plenty of pixels above 0.7; pixels at 0.6 must stay "ignore" (no leaked 0.56).
    a = torch.full((8, 8), 0.6)
    a[0, 0] = 0.8  # 1 pixel > 0.7, fewer than 30
    b = torch.full((8, 8), 0.6)
    b[:5, :] = 0.9  # 40 pixels > 0.7
    mask, fired = seed_mask(torch.stack([a, b]), 0.1, 0.7, return_fallback=True)
    assert fired.tolist() == [True, False]
    assert (mask[0] == F).all()  # 0.6 > 0.56 everywhere
    assert (mask[1][5:] == I).all()  # the 0.6 pixels of image 1 are not foreground
    assert (mask[1][:5] == F).all()
    # Same result when image 1 is processed alone: order in the batch does not matter.
    alone = seed_mask(b, 0.1, 0.7)
    assert torch.equal(alone, mask[1])
    reversed_mask = seed_mask(torch.stack([b, a]), 0.1, 0.7)
    assert torch.equal(reversed_mask[0], mask[1])


def test_fallback_threshold_is_a_fraction_of_the_max():
    o = torch.zeros(10, 10)
    o[0, :5] = 0.5  # max 0.5, no pixel above 0.7 → fallback δ_h = 0.35
    o[1, :5] = 0.3
    mask = seed_mask(o, 0.1, 0.7)
    assert (mask[0, :5] == F).all()
    assert (mask[1, :5] == I).all()
    assert (mask[2:] == B).all()


@pytest.mark.parametrize("low,high", [(0.8, 0.7), (0.5, 0.5), (-0.1, 0.5), (0.1, 1.5)])
def test_bad_thresholds_name_both_values(low, high):
    with pytest.raises(ValueError) as error:
        seed_mask(torch.rand(4, 4), low, high)
    assert f"δ_l={low}" in str(error.value) and f"δ_h={high}" in str(error.value)
    with pytest.raises(ValueError):
        Thresholds(low, high)


def test_presets_match_the_spec_table():
    assert (PRESETS["paper"].mask_a.delta_high, PRESETS["paper"].mask_a.delta_low) == (0.7, 0.1)
    assert (PRESETS["authors"].mask_a.delta_high, PRESETS["authors"].mask_a.delta_low) == (0.7, 0.05)
    assert (PRESETS["wsolevaluation"].mask_a.delta_high, PRESETS["wsolevaluation"].mask_a.delta_low) == (0.7, 0.01)
    # the teaching recipe's preset is `paper` with Mask-A's δ_l at 0.05, nothing else changed
    lowered, teaching = PRESETS["paper"].replace("mask_a", delta_low=0.05), PRESETS["teaching"]
    for field in ("mask_a", "mask_b2", "mask_fuse", "precedence"):
        assert getattr(teaching, field) == getattr(lowered, field), field
    assert teaching.mask_a != PRESETS["paper"].mask_a
    for preset in PRESETS.values():
        assert (preset.mask_b2.delta_high, preset.mask_b2.delta_low) == (0.5, 0.05)
        assert (preset.mask_fuse.delta_high, preset.mask_fuse.delta_low) == (0.7, 0.1)
    with pytest.raises(ValueError, match="paper"):
        get_preset("nope")


def test_normalize_guards_constant_and_nan():
    maps = torch.stack([torch.full((3, 3), 5.0), torch.arange(9.0).view(3, 3), torch.full((3, 3), float("nan"))])
    out = normalize_map(maps)
    assert not torch.isnan(out).any()
    assert torch.equal(out[0], torch.zeros(3, 3))
    assert out[1].min() == 0 and out[1].max() == 1
    assert torch.equal(out[2], torch.zeros(3, 3))
    partial = torch.arange(9.0).view(3, 3)
    partial[0, 0] = float("nan")
    got = normalize_map(partial)
    assert got[0, 0] == 0 and got[2, 2] == 1 and torch.isclose(got[0, 1], torch.tensor(0.0))


def test_attention_map_picks_each_images_class():
    class_maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    got = attention_map(class_maps, torch.tensor([2, 0]))
    assert torch.equal(got[0], class_maps[0, 2]) and torch.equal(got[1], class_maps[1, 0])


def test_fused_is_mean_of_sigmoids():
    b1 = torch.randn(2, 1, 4, 4)
    b2 = torch.randn(2, 1, 4, 4)
    assert torch.allclose(fused_guidance(b1, b2), (torch.sigmoid(b1) + torch.sigmoid(b2))[:, 0] / 2)


def _outputs():
    torch.manual_seed(1)
    return {
        "class_maps": torch.randn(2, 3, 7, 7),
        "b1": torch.randn(2, 1, 7, 7, requires_grad=True),
        "b2": torch.randn(2, 1, 7, 7, requires_grad=True),
    }


def test_algorithm1_cascade_and_no_cascade():
    outputs = _outputs()
    labels = torch.tensor([0, 2])
    g = self_produced_guidance(outputs, labels, get_preset("paper"), mask_size=28)
    assert g["mask_a"].shape == (2, 28, 28) and g["mask_a"].dtype == torch.uint8
    assert set(torch.unique(g["mask_a"]).tolist()) <= {0, 1, 255}
    assert not g["fused"].requires_grad
    expected_b2 = seed_mask(torch.sigmoid(g["b2"].logit()), 0.05, 0.5)
    assert torch.equal(g["mask_b2"], expected_b2)
    no_cascade = self_produced_guidance(outputs, labels, get_preset("paper"), mask_size=28, cascade=False)
    assert torch.equal(no_cascade["mask_b2"], no_cascade["mask_a"])


def test_seed_statistics():
    mask = np.array([[F, F], [B, I]], dtype=np.uint8)
    obj = np.array([[1, 0], [0, 0]], dtype=bool)
    s = seed_statistics(mask, obj)
    assert s["foreground"] == 0.5 and s["background"] == 0.25 and s["ignored"] == 0.25
    assert s["foreground_precision"] == 0.5 and s["background_precision"] == 1.0


def test_the_stage_table_names_every_stage_once():
    from dataclasses import fields as dataclass_fields

    from spg_core.guidance import STAGE_ORDER, STAGE_TITLES, STAGES, GuidancePreset, guided_stage
    from spg_core.losses import SUPERVISION

    assert [(s.mask, s.source, s.branch) for s in STAGES] == [
        ("mask_a", "attention", "b2"), ("mask_b2", "b2", "b1"), ("mask_fuse", "fused", "c")]
    assert SUPERVISION == {"b2": "mask_a", "b1": "mask_b2", "c": "mask_fuse"}
    assert {s.mask for s in STAGES} <= {f.name for f in dataclass_fields(GuidancePreset)}
    assert STAGE_ORDER == ("attention", "mask_a", "b2", "mask_b2", "b1", "fused", "mask_fuse", "c")
    assert STAGE_TITLES["mask_fuse"] == "Mask-fuse (seeds for SPG-C)"
    with pytest.raises(ValueError, match="mask_z"):
        guided_stage("mask_z")


def test_preset_replace_changes_only_what_is_given():
    from spg_core.guidance import PRESETS, Thresholds

    paper = PRESETS["paper"]
    assert paper.replace("mask_a") is paper
    assert paper.replace("mask_a", delta_low=0.1) is paper  # the same value: unchanged
    moved = paper.replace("mask_a", delta_high=0.8)
    assert moved.mask_a == Thresholds(0.1, 0.8) and moved.mask_b2 == paper.mask_b2 and moved.name == "paper+custom"
    both = paper.with_thresholds({"mask_a": (0.2, 0.8), "mask_fuse": (0.05, 0.6)})
    assert (both.mask_a, both.mask_fuse, both.name) == (Thresholds(0.2, 0.8), Thresholds(0.05, 0.6), "paper+custom")
    with pytest.raises(ValueError, match="δ_l"):
        paper.replace("mask_b2", delta_low=0.9)


def test_stage_maps_are_the_branch_sigmoids_and_the_normalised_attention():
    import torch.nn.functional as F

    from spg_core.guidance import normalize_map, stage_maps

    torch.manual_seed(1)
    outputs = {"class_maps": torch.randn(2, 3, 4, 4), "b1": torch.randn(2, 1, 8, 8), "b2": torch.randn(2, 1, 4, 4),
               "c": torch.randn(2, 1, 4, 4)}
    labels = torch.tensor([2, 0])
    maps = stage_maps(outputs, labels, (16, 16))
    assert set(maps) == {"attention", "b2", "b1", "fused", "c"} and all(m.shape == (2, 16, 16) for m in maps.values())
    up = lambda t: F.interpolate(t, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    torch.testing.assert_close(maps["b1"], torch.sigmoid(up(outputs["b1"])))
    torch.testing.assert_close(maps["fused"], (torch.sigmoid(up(outputs["b1"])) + torch.sigmoid(up(outputs["b2"]))) / 2)
    expected = normalize_map(up(outputs["class_maps"][[0, 1], [2, 0]][:, None]))
    torch.testing.assert_close(maps["attention"], expected)
    raw = stage_maps(outputs, labels, stages=("attention", "c"), normalize=False)
    torch.testing.assert_close(raw["attention"], outputs["class_maps"][[0, 1], [2, 0]])
    assert raw["c"].shape == (2, 4, 4)
    plain = stage_maps({"class_maps": outputs["class_maps"]}, labels)
    assert set(plain) == {"attention"}


def _nearly_flat(low=0.02, high=0.06, side=10):
    """A map whose max is under δ_l / 0.7 for δ_l = 0.05: the fallback threshold 0.7·max (0.042)
    falls below δ_l, so the pixels in (0.042, 0.05) are both under δ_l and over the fallback."""
    return torch.linspace(low, high, side * side).reshape(side, side)


def test_where_the_fallback_falls_below_delta_low_the_precedence_decides():
    o = _nearly_flat()
    fallback = 0.7 * o.max()
    both = (o < 0.05) & (o > fallback)
    assert both.sum() >= 10 and fallback < 0.05
    foreground, fired = seed_mask(o, 0.05, 0.5, precedence="foreground", return_fallback=True)
    background = seed_mask(o, 0.05, 0.5, precedence="background")
    assert bool(fired)
    assert (foreground[both] == F).all() and (background[both] == B).all()
    assert torch.equal(foreground[~both], background[~both])  # the rules agree everywhere else
    assert (foreground[o <= fallback] == B).all() and (foreground[o >= 0.05] == F).all()
    assert torch.equal(seed_mask(o, 0.05, 0.5), foreground)  # the default, as before
    # Where the fallback stays above δ_l (any normalised map: max 1) the two rules are the same.
    normalised = normalize_map(o)
    assert torch.equal(seed_mask(normalised, 0.05, 0.7, precedence="background"), seed_mask(normalised, 0.05, 0.7))
    with pytest.raises(ValueError, match="'both'"):
        seed_mask(o, 0.05, 0.5, precedence="both")


def test_the_code_presets_let_background_win_and_every_consumer_follows_the_preset():
    from spg_core.batch_guidance import _batch_masks
    from spg_core.guidance import GuidancePreset
    from spg_core.localize import stage_masks

    assert PRESETS["paper"].precedence == "foreground"
    assert PRESETS["authors"].precedence == PRESETS["wsolevaluation"].precedence == "background"
    assert PRESETS["paper"].mask_b2 == PRESETS["authors"].mask_b2  # so Mask-B2 differs by precedence only
    outputs = {"class_maps": torch.randn(1, 3, 10, 10), "b1": torch.zeros(1, 1, 10, 10),
               "b2": _nearly_flat()[None, None].logit()}
    labels = torch.tensor([0])
    paper = self_produced_guidance(outputs, labels, PRESETS["paper"], mask_size=10)
    authors = self_produced_guidance(outputs, labels, PRESETS["authors"], mask_size=10)
    o = paper["b2"][0]
    both = (o < 0.05) & (o > 0.7 * o.max())
    assert both.any()
    assert (paper["mask_b2"][0][both] == F).all() and (authors["mask_b2"][0][both] == B).all()
    for name in ("paper", "authors"):  # the localiser / app and the batch analyses draw the same seeds
        preset = PRESETS[name]
        expected = seed_mask(o, 0.05, 0.5, precedence=preset.precedence)
        assert torch.equal(torch.as_tensor(stage_masks({"b2": o.numpy()}, preset)["mask_b2"]), expected)
        assert torch.equal(torch.as_tensor(_batch_masks({"b2": o[None]}, preset)["mask_b2"][0]), expected)
    assert PRESETS["authors"].replace("mask_b2", delta_low=0.04).precedence == "background"
    with pytest.raises(ValueError, match="'last'"):
        GuidancePreset("x", Thresholds(0.1, 0.7), Thresholds(0.05, 0.5), Thresholds(0.1, 0.7), precedence="last")
