import pytest
import torch
import torch.nn.functional as F

from spg_core.guidance import IGNORE
from spg_core.losses import masked_bce, spg_loss


def test_all_ignore_batch_gives_zero_not_nan():
    logits = torch.randn(3, 1, 4, 4, requires_grad=True)
    mask = torch.full((3, 8, 8), IGNORE, dtype=torch.uint8)
    loss = masked_bce(logits, mask)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_masked_bce_averages_over_batch_non_ignored_pixels():
    logits = torch.zeros(2, 1, 2, 2)
    logits[0, 0, 0, 0] = 3.0
    mask = torch.full((2, 2, 2), IGNORE, dtype=torch.uint8)
    mask[0, 0, 0] = 1
    mask[1, 1, 1] = 0
    expected = (F.softplus(torch.tensor(-3.0)) + F.softplus(torch.tensor(0.0))) / 2
    assert torch.isclose(masked_bce(logits, mask), expected)


def test_spg_loss_terms_and_warmup():
    outputs = {
        "logits": torch.randn(2, 4),
        "b1": torch.randn(2, 1, 4, 4),
        "b2": torch.randn(2, 1, 4, 4),
        "c": torch.randn(2, 1, 4, 4),
    }
    labels = torch.tensor([1, 3])
    guidance = {name: torch.randint(0, 2, (2, 8, 8), dtype=torch.uint8) for name in ("mask_a", "mask_b2", "mask_fuse")}
    terms = spg_loss(outputs, labels, guidance)
    assert set(terms) == {"ce", "bce_b1", "bce_b2", "bce_c", "total"}
    assert torch.isclose(terms["total"], terms["ce"] + terms["bce_b1"] + terms["bce_b2"] + terms["bce_c"])
    assert torch.isclose(terms["bce_b2"], masked_bce(outputs["b2"], guidance["mask_a"]))
    assert torch.isclose(terms["bce_b1"], masked_bce(outputs["b1"], guidance["mask_b2"]))
    warm = spg_loss(outputs, labels, None)
    assert set(warm) == {"ce", "total"}
    heavy = spg_loss(outputs, labels, guidance, c_weight=3.0)
    assert torch.isclose(heavy["bce_c"], terms["bce_c"])  # terms stay unweighted, the total weighs C
    assert torch.isclose(heavy["total"], terms["ce"] + terms["bce_b1"] + terms["bce_b2"] + 3.0 * terms["bce_c"])
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="c_loss_weight=.*finite number >= 0"):
            spg_loss(outputs, labels, guidance, c_weight=bad)


def test_class_balanced_bce_weights_foreground_and_background_seeds_equally():
    from spg_core.losses import masked_bce

    mask = torch.zeros(1, 4, 4, dtype=torch.uint8)  # 15 background seeds, 1 foreground, no ignore
    mask[0, 0, 0] = 1
    logits = torch.full((1, 1, 4, 4), 3.0)  # "foreground everywhere"
    fg = torch.nn.functional.softplus(torch.tensor(-3.0))  # BCE of a foreground seed at logit 3
    bg = torch.nn.functional.softplus(torch.tensor(3.0))
    torch.testing.assert_close(masked_bce(logits, mask, "class"), (fg + bg) / 2)
    torch.testing.assert_close(masked_bce(logits, mask, "pixel"), (fg + 15 * bg) / 16)
    only_bg = torch.zeros(1, 4, 4, dtype=torch.uint8)
    torch.testing.assert_close(masked_bce(logits, only_bg, "class"), bg)
    assert masked_bce(logits, torch.full((1, 4, 4), 255, dtype=torch.uint8), "class").item() == 0.0
    with pytest.raises(ValueError, match="balance"):
        masked_bce(logits, mask, "median")


def test_a_bad_c_loss_weight_stops_training_before_any_step(tmp_path):
    from spg_core.config import TrainConfig
    from spg_core.train import train

    with pytest.raises(ValueError, match="c_loss_weight='heavy' is out of range: use a finite number >= 0"):
        train(TrainConfig(backbone="tiny", image_size=64, epochs=1, c_loss_weight="heavy", out=str(tmp_path / "run")),
              progress=False)  # the configuration refuses it: no training starts
    assert not (tmp_path / "run").exists()
