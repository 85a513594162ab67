"""End-to-end evaluation on tiny generated data: maps without a model, and a fake model."""
import json

import cv2
import numpy as np
import pytest
import torch

from spg_core import boxes as B
from spg_core import evaluate as E
from spg_core import metrics as M
from spg_core import report as R
from spg_core.data.transforms import ten_crop_views, to_tensor


# ----------------------------------------------------------------------------- WE preprocessing
def test_resize_box_is_wes_int_truncation():
    assert E.resize_box((1, 2, 4, 3), (10, 20), (35, 10)) == (3, 1, 14, 1)
    assert E.resize_box((1, 2, 1, 2), (3, 3), (3, 3)) == (1, 2, 1, 2)


def test_prepare_wsol_map_guards():
    assert E.prepare_wsol_map(np.full((7, 7), 3.0)).tolist() == np.zeros((224, 224)).tolist()
    assert not E.prepare_wsol_map(np.full((7, 7), np.nan)).any()
    ramp = E.prepare_wsol_map(np.arange(49, dtype=np.float32).reshape(7, 7))
    assert ramp.shape == (224, 224) and ramp.dtype == np.float64
    assert ramp.min() == 0.0 and ramp.max() == 1.0


# ----------------------------------------------------------------------------- maps without a model
def _rectangle_data(count=6, seed=0):
    """Maps that are 1 on the GT box (original pixels), sizes varying per image."""
    rng = np.random.default_rng(seed)
    maps, gt = [], {}
    for i in range(count):
        width, height = int(rng.integers(60, 120)), int(rng.integers(50, 110))
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1, y1 = int(rng.integers(x0 + 10, width)), int(rng.integers(y0 + 10, height))
        score = np.zeros((height, width))
        score[y0:y1 + 1, x0:x1 + 1] = 1.0
        mask = (score > 0).astype(np.uint8)
        gt[f"img{i}"] = (np.array([[x0, y0, x1, y1]], dtype=float), (width, height), mask)
        maps.append((f"img{i}", score))
    return maps, gt


def test_evaluate_maps_wsol_end_to_end():
    maps, gt = _rectangle_data()
    metrics, rows, curves = E.evaluate_maps(maps, gt, "wsolevaluation", 0.01)
    assert metrics["maxboxacc"] == 100.0
    assert metrics["maxboxacc_v2"] == 100.0
    assert metrics["pxap"] > 95
    assert metrics["num_images"] == 6 and metrics["protocol"] == "wsolevaluation"
    assert "gt_known_loc" not in metrics  # no τ given: only the threshold-free WE metrics
    assert "rows_tau" in metrics
    assert len(rows) == 6 and all(row["failure"] == "ok" for row in rows)
    assert {"boxacc_v1_iou50", "boxacc_v2_iou70", "gt_known_loc", "pxap_pr"} <= set(curves)


def _we_reference_maxboxacc(maps, gt, taus, multi_contour):
    """WE's BoxEvaluator, written out: one contour pass per τ, counts per IoU threshold."""
    correct = {t: np.zeros(len(taus)) for t in (30, 50, 70)}
    for image_id, score in maps:
        boxes, size = gt[image_id][0], gt[image_id][1]
        resized = B.minmax_numpy(cv2.resize(score.astype(np.float64), (224, 224), interpolation=cv2.INTER_CUBIC))
        gt224 = np.array([E.resize_box(b, size, (224, 224)) for b in boxes])
        best = [B.iou(B.wsol_boxes(resized, tau, multi_contour), gt224).max() for tau in taus]
        for t in correct:
            correct[t][np.where(np.asarray(best) >= t / 100)[0]] += 1
    return {t: (c * 100.0 / len(maps)).max() for t, c in correct.items()}


def test_evaluate_maps_matches_we_arithmetic_on_smooth_maps():
    rng = np.random.default_rng(4)
    maps, gt = [], {}
    for i in range(5):
        small = rng.random((7, 7))
        maps.append((f"m{i}", small))
        x0, y0 = rng.integers(0, 100, 2)
        gt[f"m{i}"] = (np.array([[x0, y0, x0 + rng.integers(20, 100), y0 + rng.integers(20, 80)]]), (200, 180))
    taus = M.tau_grid(0.05)
    metrics, _, _ = E.evaluate_maps(maps, gt, "wsolevaluation", 0.05)
    v1 = _we_reference_maxboxacc(maps, gt, taus, multi_contour=False)
    v2 = _we_reference_maxboxacc(maps, gt, taus, multi_contour=True)
    assert metrics["maxboxacc"] == v1[50]
    assert metrics["maxboxacc_v2_per_iou"] == {str(t): v2[t] for t in (30, 50, 70)}
    assert metrics["maxboxacc_v2"] == np.average([v2[30], v2[50], v2[70]])


def test_evaluate_maps_paper_protocol_and_classes():
    maps, gt = _rectangle_data(4, seed=1)
    predictions = {"img0": (3, True), "img1": (5, True), "img2": (3, False), "img3": (3, True)}
    gt = {k: (*v, 3) for k, v in gt.items()}  # label 3 for every image
    metrics, rows, _ = E.evaluate_maps(maps, gt, "paper", 0.01, tau=0.5, predictions=predictions)
    assert metrics["gt_known_loc"] == 100.0  # the paper rule is tight on a rectangle
    assert metrics["top1_loc"] == 75.0  # img1 predicted class 5
    assert metrics["top5_loc"] == 75.0  # img2 has the GT class outside the top 5
    assert all(row["iou"] == 1.0 for row in rows)
    assert [row["failure"] for row in rows] == ["ok", "wrong-class", "ok", "ok"]
    assert metrics["tau"] == 0.5 and metrics["tau_source"] == "given"


def test_paper_protocol_refuses_to_choose_tau_on_the_reported_split():
    maps, gt = _rectangle_data(3)
    with pytest.raises(ValueError, match="needs a τ"):
        E.evaluate_maps(maps, gt, "paper", 0.1)
    metrics, _, _ = E.evaluate_maps(maps, gt, "paper", 0.1, tau="oracle")
    assert metrics["tau_source"].startswith("oracle")
    same_split = E.score_maps_split(maps, gt, "paper", 0.1, split="test").curves()
    with pytest.raises(ValueError, match="reported split"):
        E.evaluate_maps(maps, gt, "paper", 0.1, split="test", threshold_curves=same_split)


def test_tau_chosen_on_held_out_split_is_applied_to_the_report_split():
    held_maps, held_gt = _rectangle_data(4, seed=2)
    held_out = E.score_maps_split(held_maps, held_gt, "paper", 0.1, split="val").curves()
    maps, gt = _rectangle_data(4, seed=3)
    metrics, _, curves = E.evaluate_maps(maps, gt, "paper", 0.1, split="test", threshold_curves=held_out)
    assert metrics["tau"] == held_out["gt_known_loc"].best()[0]
    assert "val" in metrics["tau_source"]
    assert "threshold/gt_known_loc" in curves


# ----------------------------------------------------------------------------- a fake model
SIZE, CLASSES = 32, 4
REGISTRY: dict[int, tuple] = {}  # image number -> (image_id, label, (w, h), box), shared by the fakes


class FakeDataset(torch.utils.data.Dataset):
    """Image number n is written in pixel (0, 0); label and GT box are drawn per image."""

    def __init__(self, count, split, offset=0, with_masks=False, bad=()):
        rng = np.random.default_rng(offset)
        self.split, self.image_size, self.bad, self.with_masks = split, SIZE, set(bad), with_masks
        self.numbers = list(range(offset, offset + count))
        for number in self.numbers:
            width, height = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            x1, y1 = int(rng.integers(x0 + 8, width)), int(rng.integers(y0 + 8, height))
            REGISTRY[number] = (f"{split}{number}", int(rng.integers(0, CLASSES)), (width, height), (x0, y0, x1, y1))

    def __len__(self):
        return len(self.numbers)

    def __getitem__(self, index):
        if index in self.bad:
            return None
        number = self.numbers[index]
        image_id, label, size, box = REGISTRY[number]
        image = torch.zeros(3, SIZE, SIZE)
        image[0, 0, 0] = number
        scaled = E.resize_box(box, size, (SIZE, SIZE))
        item = {"image": image, "label": label, "image_id": image_id, "orig_size": size,
                "boxes": torch.tensor([scaled], dtype=torch.float32),
                "orig_boxes": torch.tensor([box], dtype=torch.float32)}
        if self.with_masks:
            mask = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
            mask[scaled[1]:scaled[3] + 1, scaled[0]:scaled[2] + 1] = 1
            item["mask"] = mask
        return item


class FakeModel(torch.nn.Module):
    """GT-class map = the GT box on the input grid; the GT class wins unless the image is listed
    in ``wrong`` (then it ranks last)."""

    def __init__(self, wrong=()):
        super().__init__()
        self.wrong = set(wrong)

    def forward(self, x, with_guidance=None):
        logits, maps = [], []
        for image in x:
            number = int(image[0, 0, 0])
            _, label, size, box = REGISTRY[number]
            x0, y0, x1, y1 = E.resize_box(box, size, (SIZE, SIZE))
            class_maps = torch.zeros(CLASSES, SIZE, SIZE)
            class_maps[label, y0:y1 + 1, x0:x1 + 1] = 1.0
            scores = torch.arange(CLASSES, dtype=torch.float32)
            scores[label] = -10.0 if number in self.wrong else 10.0
            logits.append(scores)
            maps.append(class_maps)
        return {"logits": torch.stack(logits), "class_maps": torch.stack(maps)}


def test_evaluate_with_a_fake_model_paper_protocol():
    report = FakeDataset(6, "test", with_masks=True, bad={5})
    metrics, rows, curves = E.evaluate(FakeModel(wrong={1}), report, tau=0.5, batch_size=4, progress=False,
                                       cam_curve_interval=0.05)
    assert metrics["num_images"] == 5 and metrics["num_skipped"] == 1
    assert metrics["classification_top1"] == 80.0
    assert metrics["classification_top5"] == 100.0  # 4 classes: everything is in the top 5
    assert metrics["gt_known_loc"] == 100.0
    assert metrics["top1_loc"] == 80.0
    assert metrics["pxap"] == 100.0
    assert [row["failure"] for row in rows].count("wrong-class") == 1
    assert {"gt_known_loc", "top1_loc", "top5_loc", "pxap_pr"} <= set(curves)


def test_evaluate_refuses_the_reported_split_as_threshold_split():
    report = FakeDataset(3, "test", offset=200)
    with pytest.raises(ValueError, match="reported split"):
        E.evaluate(FakeModel(), report, threshold_dataset=report, progress=False)
    twin = FakeDataset(3, "test", offset=300)  # same split name: still the reported split
    with pytest.raises(ValueError, match="reported split"):
        E.evaluate(FakeModel(), report, threshold_dataset=twin, progress=False)


def test_evaluate_threshold_split_and_wsol_protocol():
    report = FakeDataset(4, "test", offset=400)
    held_out = FakeDataset(3, "val", offset=500)
    metrics, rows, curves = E.evaluate(FakeModel(), report, threshold_dataset=held_out, progress=False,
                                       protocol="wsolevaluation", cam_curve_interval=0.05)
    assert "val" in metrics["tau_source"]
    assert metrics["maxboxacc"] == 100.0 and metrics["gt_known_loc"] == 100.0
    assert "threshold/gt_known_loc" in curves and len(rows) == 4


def test_ten_crop_views_of_a_pil_image():
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    views = ten_crop_views(image, 16)
    larger = image.resize((18, 18), Image.Resampling.BILINEAR)  # round(16 * 256 / 224) = 18
    assert len(views) == 10 and all(v.size == (16, 16) for v in views)
    assert np.array_equal(np.asarray(views[0]), np.asarray(larger)[:16, :16])  # top-left corner
    flipped = larger.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert np.array_equal(np.asarray(views[5]), np.asarray(flipped)[:16, :16])  # the flip's top-left
    with pytest.raises(TypeError, match="PIL image"):
        ten_crop_views(torch.rand(3, 16, 16), 16)  # an already resized input: the views would be upsampled


class Recording(torch.nn.Module):
    """A model that keeps every input it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x, with_guidance=False):
        self.inputs.append(x.clone())
        return self.model(x, with_guidance=with_guidance)


def test_ten_crop_class_scores_of_a_dataset_image_are_the_single_image_ones(tmp_path):
    import torchvision.transforms.functional as TF
    from PIL import Image

    from spg_core.data import collate
    from spg_core.localize import Localizer, ten_crop_probabilities
    from spg_core.models import build_model

    size = 32
    dataset = _masked_dataset(tmp_path, size, count=6)  # photos of six sizes, none square
    torch.manual_seed(0)
    model = build_model("tiny", 3, variant="plain", widths=(8, 16, 16)).eval()
    localizer = Localizer(model, size, dataset.class_names)
    single = np.stack([localizer.ten_crop_probabilities(Image.open(record.path)) for record in dataset.records])

    batch = collate([dataset.with_ten_crop()[i] for i in range(len(dataset))])
    assert batch["ten_crop"].shape == (6, 10, 3, size, size)
    from_dataset = ten_crop_probabilities(model, batch["ten_crop"]).numpy()
    np.testing.assert_allclose(from_dataset, single, rtol=1e-5, atol=1e-7)
    # What the dataset path did before: ten views cut from the S×S input tensor upsampled to 37².
    upsampled = TF.resize(batch["image"], [37, 37], antialias=True)
    before = ten_crop_probabilities(model, torch.stack(TF.ten_crop(upsampled, [size, size]), dim=1)).numpy()
    assert np.abs(before - single).max() > 1e-3

    # evaluate classifies exactly these views: the image resized to 37² (PIL bilinear), then cut.
    recording = Recording(model)
    metrics, rows, _ = E.evaluate(recording, dataset, tau=0.5, ten_crop=True, progress=False, batch_size=6)
    classified = torch.stack(recording.inputs[1:], dim=1)  # inputs[0]: the full view, for the maps
    for record, views in zip(dataset.records, classified):
        image = Image.open(record.path).convert("RGB").resize((37, 37), Image.Resampling.BILINEAR)
        expected = torch.stack([to_tensor(view) for view in TF.ten_crop(image, [size, size])])
        assert torch.equal(views, expected)
    assert [row["prediction"] for row in rows] == single.argmax(axis=1).tolist()
    assert metrics["ten_crop"] is True
    with pytest.raises(ValueError, match="ten_crop"):  # a dataset that gives no views
        E.evaluate(FakeModel(), FakeDataset(2, "test", offset=600), tau=0.5, ten_crop=True, progress=False)


# ----------------------------------------------------------------------------- PxAP masks: cv2 nearest, as WE
class PoolModel(torch.nn.Module):
    """Class c's map = colour channel c average-pooled to 6×6; logits = its mean."""

    def forward(self, x, with_guidance=None):
        maps = torch.nn.functional.adaptive_avg_pool2d(x, 6)
        return {"logits": maps.mean(dim=(2, 3)), "class_maps": maps}


def _masked_dataset(tmp_path, image_size, count=2):
    """Photos of odd sizes with a rectangle mask each, as mask-form WSOL metadata gives them."""
    from PIL import Image

    from spg_core.data.dataset import Record, WSOLDataset

    rng = np.random.default_rng(7)
    shapes = [((50, 37), (7, 5, 30, 22)), ((41, 63), (3, 11, 28, 50))]
    shapes += [((int(w), int(h)), (2, 3, int(w) - 5, int(h) - 4)) for w, h in rng.integers(30, 70, (count - 2, 2))]
    records = []
    for k, ((w, h), (x0, y0, x1, y1)) in enumerate(shapes[:count]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
        mask = np.zeros((h, w), np.uint8)
        mask[y0:y1 + 1, x0:x1 + 1] = 255
        Image.fromarray(mask).save(tmp_path / f"{k}_mask.png")
        records.append(Record(f"img{k}", k % 3, path=tmp_path / f"{k}.png", mask_paths=(tmp_path / f"{k}_mask.png",)))
    return WSOLDataset(records, ["r", "g", "b"], image_size=image_size, split="test")


@pytest.mark.parametrize("protocol", E.PROTOCOLS)
def test_pxap_of_a_model_uses_masks_resized_with_cv2_nearest(tmp_path, protocol):
    size = 48
    dataset = _masked_dataset(tmp_path, size)
    metrics, _, _ = E.evaluate(PoolModel(), dataset, protocol=protocol, tau=0.5, progress=False,
                               cam_curve_interval=0.05)
    grader = E.SplitEvaluator(protocol, 0.05, paper_size=size if protocol == "paper" else None)
    oracle, pil = M.PxAP(grader.taus), M.PxAP(grader.taus)
    for index in range(len(dataset)):
        item, sample = dataset[index], dataset.read(index)
        grid = grader.grid(sample.size)
        class_map = PoolModel()(item["image"][None])["class_maps"][0, sample.label].numpy()
        prepared = grader.prepare(class_map, sample.size)
        # The oracle: WE's load_mask_image, cv2.INTER_NEAREST from the original mask to the grid.
        expected = cv2.resize(sample.mask, grid, interpolation=cv2.INTER_NEAREST)
        # What scoring the network-input mask gave (PIL nearest to S, then cv2 to the grid).
        old = item["mask"].numpy()
        old = old if old.shape == expected.shape else cv2.resize(old, grid, interpolation=cv2.INTER_NEAREST)
        assert not np.array_equal(old, expected)  # the sizes are ones where PIL and cv2 pick other pixels
        oracle.add(prepared, expected)
        pil.add(prepared, old)
    assert metrics["pxap"] == oracle.compute()
    assert metrics["pxap"] != pil.compute()


# ----------------------------------------------------------------------------- SPG* (CAM's top-5 rule)
STAR_PEAK = (8, 8, 13, 13)  # the GT box: the peak of the map, 36 px
STAR_PLATEAU = (2, 2, 29, 27)  # the low plateau around it, 728 px (IoU with the peak < 0.5)


class StarDataset(torch.utils.data.Dataset):
    """Image k ranks the GT class (0) k-th (written in pixel (0, 0)); the GT box is the peak."""

    def __init__(self, ranks):
        self.split, self.image_size, self.ranks = "test", SIZE, list(ranks)

    def __len__(self):
        return len(self.ranks)

    def __getitem__(self, index):
        image = torch.zeros(3, SIZE, SIZE)
        image[0, 0, 0] = self.ranks[index]
        box = torch.tensor([STAR_PEAK], dtype=torch.float32)
        return {"image": image, "label": 0, "image_id": f"star{index}", "orig_size": (SIZE, SIZE),
                "boxes": box, "orig_boxes": box}


class StarModel(torch.nn.Module):
    """Every class map is a plateau (0.3) with a peak (1.0) on the GT box; the GT class (0) is
    ranked as the image says, the other classes by index."""

    def forward(self, x, with_guidance=None):
        x0, y0, x1, y1 = STAR_PLATEAU
        plateau = torch.zeros(SIZE, SIZE)
        plateau[y0:y1 + 1, x0:x1 + 1] = 0.3
        x0, y0, x1, y1 = STAR_PEAK
        plateau[y0:y1 + 1, x0:x1 + 1] = 1.0
        logits = []
        for image in x:
            rank = int(image[0, 0, 0])
            order = list(range(1, CLASSES))
            order.insert(rank - 1, 0)  # classes from best to worst
            scores = torch.zeros(CLASSES)
            scores[order] = torch.arange(CLASSES, 0, -1, dtype=torch.float32)
            logits.append(scores)
        return {"logits": torch.stack(logits), "class_maps": plateau.expand(len(x), CLASSES, SIZE, SIZE)}


def test_spg_star_is_cams_loose_and_tight_boxes():
    metrics, _, _ = E.evaluate(StarModel(), StarDataset([1, 2, 3]), tau=0.2, spg_star=True, progress=False,
                               cam_curve_interval=0.1)
    # Top-5 Loc (one box per class, at τ 0.2) gets the plateau: wrong for all three.
    assert metrics["top5_loc"] == 0.0
    # SPG*: the tight box (τ 0.4) is the peak; 1st and 2nd classes offer it, the 3rd only its loose box.
    assert metrics["spg_star_top5_loc"] == pytest.approx(200 / 3)
    assert metrics["spg_star_taus"] == {"loose": 0.2, "tight": 0.4}
    assert metrics["spg_star_note"].startswith("NON-STANDARD")
    # The rule this replaced (the two largest components at the τ given, 0.2) had only the plateau: 0 %.
    # The pair is selectable; at (0.1, 0.2) both boxes are the plateau.
    low_tight, _, _ = E.evaluate(StarModel(), StarDataset([1, 2, 3]), tau=0.2, spg_star=True, progress=False,
                                 cam_curve_interval=0.1, spg_star_taus=(0.1, 0.2))
    assert low_tight["spg_star_top5_loc"] == 0.0  # both thresholds keep the plateau
    with pytest.raises(ValueError, match="tau_loose < tau_tight"):
        E.evaluate(StarModel(), StarDataset([1]), tau=0.2, spg_star=True, progress=False, spg_star_taus=(0.5, 0.4))


def test_write_outputs_embeds_plotly(tmp_path):
    maps, gt = _rectangle_data(3)
    metrics, rows, curves = E.evaluate_maps(maps, gt, "paper", 0.1, tau=0.5)
    paths = R.write_outputs(tmp_path, metrics, rows, curves)
    assert json.loads(paths["metrics"].read_text())["gt_known_loc"] == 100.0
    lines = paths["rows"].read_text().splitlines()
    assert lines[0].split(",") == list(R.ROW_COLUMNS) and len(lines) == 4
    html = paths["curves"].read_text()
    assert "<script src=" not in html.replace('"', "") and len(html) > 1_000_000  # plotly.js is inside the file
    figure = R.curves_figure(curves, tau=0.5)
    assert len(figure.data) == len([name for name in curves if not name.endswith("pxap_pr")]) + (
        1 if "pxap_pr" in curves else 0)


def test_map_stage_scores_a_guidance_map_and_refuses_plain():
    import torch

    from spg_core.evaluate import evaluate
    from spg_core.guidance import stage_score_map

    outputs = {"class_maps": torch.zeros(1, 2, 4, 4), "b1": torch.zeros(1, 1, 4, 4), "b2": torch.full((1, 1, 4, 4), 2.0)}
    fused = stage_score_map(outputs, torch.tensor([0]), "fused")
    assert torch.allclose(fused, torch.full((1, 4, 4), (0.5 + torch.sigmoid(torch.tensor(2.0)).item()) / 2))
    with pytest.raises(ValueError, match="c"):
        stage_score_map(outputs, torch.tensor([0]), "c")

    class Plain(torch.nn.Module):
        variant = "plain"

    with pytest.raises(ValueError, match="plain"):
        evaluate(Plain(), [], map_stage="fused", tau=0.5)


def test_tau_window_flags_a_knife_edge_number():
    """A map whose floor is box-sized at one exact level: 100 % at τ 0.02, 0 % a step away."""
    maps, gt = [], {}
    for i in range(4):
        score = np.zeros((64, 64))
        score[10:40, 12:44] = 0.02  # the GT box, at 2 % of the peak
        score[20:23, 20:23] = 1.0  # a small peak inside it
        maps.append((f"img{i}", score))
        gt[f"img{i}"] = (np.array([[12, 10, 43, 39]], dtype=float), (64, 64), None)
    metrics, _, _ = E.evaluate_maps(maps, gt, "paper", 0.01, tau=0.02)
    assert metrics["gt_known_loc"] == 100.0
    window = metrics["gt_known_loc_tau_window"]
    assert (window["tau_low"], window["tau_high"]) == pytest.approx((0.01, 0.04))  # τ = 0, the whole image, left out
    assert window["max"] == 100.0 and window["min"] == 0.0


def test_tau_window_is_flat_for_a_stable_map():
    maps, gt = _rectangle_data(4, seed=2)
    metrics, _, _ = E.evaluate_maps(maps, gt, "paper", 0.01, tau=0.5)
    assert metrics["gt_known_loc_tau_window"] == {"tau_low": 0.48, "tau_high": 0.52, "min": 100.0, "max": 100.0}


# ----------------------------------------------------------------------------- evaluate-maps on files
def _cam_like_maps(dataset, folder, seed=0):
    """One 12×12 map per image of ``dataset`` (its blurred mask plus noise), saved as <folder>/<image_id>.npy."""
    rng = np.random.default_rng(seed)
    for index in range(len(dataset)):
        sample = dataset.load_sample(index)
        small = cv2.resize(sample.mask.astype(np.float64), (12, 12), interpolation=cv2.INTER_AREA)
        path = folder / f"{sample.image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, cv2.GaussianBlur(small, (0, 0), 1.5) + 0.3 * rng.random((12, 12)))


def test_evaluate_maps_reads_no_image(tmp_path, capsys):
    """evaluate-maps scores a wsol dataset whose images are gone to the numbers it gives with them."""
    import shutil

    from spg_core.cli import main
    from spg_core.data import SyntheticConfig, build_dataset, write_wsol

    root = write_wsol(tmp_path / "data", SyntheticConfig(image_size=64, num_classes=2, num_train=0, num_val=0,
                                                         num_test=8), splits=("test",), progress=False)
    _cam_like_maps(build_dataset("wsol", "test", data_root=root), tmp_path / "maps")

    def score(out, *data_flags):
        code = main(["evaluate-maps", "--maps", str(tmp_path / "maps"), "--format", "wsol", *data_flags,
                     "--split", "test", "--out", str(tmp_path / out)])
        assert code == 0, capsys.readouterr().err
        return json.loads((tmp_path / out / "metrics.json").read_text())

    with_images = score("with", "--data-root", str(root))
    assert {"maxboxacc", "maxboxacc_v2", "pxap"} <= set(with_images) and with_images["num_images"] == 8
    decoded = build_dataset("wsol", "test", data_root=root)  # the annotations of the decoded images, as before
    samples = [decoded.load_sample(i) for i in range(len(decoded))]
    reference, _, _ = E.evaluate_maps([(s.image_id, np.load(tmp_path / "maps" / f"{s.image_id}.npy")) for s in samples],
                                      {s.image_id: (s.boxes, s.size, s.mask, s.label) for s in samples},
                                      "wsolevaluation", 0.01, split="test")
    assert {k: with_images[k] for k in ("maxboxacc", "maxboxacc_v2", "pxap")} == {
        k: reference[k] for k in ("maxboxacc", "maxboxacc_v2", "pxap")}
    shutil.rmtree(root / "images")
    assert score("without", "--data-root", str(root)) == with_images  # masks, sizes and boxes from the metadata
    assert (tmp_path / "with" / "per_image.csv").read_text() == (tmp_path / "without" / "per_image.csv").read_text()
    # Box-form metadata needs no --data-root at all: the boxes, written out, score the same boxes.
    boxes = tmp_path / "box_metadata" / "test"
    shutil.copytree(root / "metadata" / "test", boxes)
    masks = build_dataset("wsol", "test", data_root=root, need_images=False)
    (boxes / "localization.txt").write_text("".join(
        f"{sample.image_id}," + ",".join(str(int(v)) for v in sample.boxes[0]) + "\n"
        for sample in (masks.load_sample(i, image=False) for i in range(len(masks)))))
    box_only = score("boxes", "--metadata-root", str(boxes.parent))
    assert {k: box_only[k] for k in ("maxboxacc", "maxboxacc_v2")} == {k: with_images[k] for k in ("maxboxacc",
                                                                                                  "maxboxacc_v2")}
    assert "pxap" not in box_only


def test_evaluate_maps_does_not_import_torch(tmp_path):
    """Scoring saved maps needs numpy, OpenCV and SciPy only: the process never loads torch."""
    import subprocess
    import sys
    from pathlib import Path

    metadata = tmp_path / "metadata" / "test"
    metadata.mkdir(parents=True)
    maps, gt = _rectangle_data(3)
    for name, lines in {"image_ids": [i for i, _ in maps], "class_labels": [f"{i},0" for i, _ in maps],
                        "image_sizes": [f"{i},{gt[i][1][0]},{gt[i][1][1]}" for i, _ in maps],
                        "localization": [f"{i}," + ",".join(str(int(v)) for v in gt[i][0][0]) for i, _ in maps]}.items():
        (metadata / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    (tmp_path / "maps").mkdir()
    for image_id, score in maps:
        np.save(tmp_path / "maps" / f"{image_id}.npy", score)
    script = ("import sys; from spg_core.cli import main; code = main(sys.argv[1:]); "
              "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script, "evaluate-maps", "--maps", str(tmp_path / "maps"),
                             "--format", "wsol", "--metadata-root", str(tmp_path / "metadata"), "--split", "test",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("no torch")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["maxboxacc"] == 100.0


def test_one_localizer_serves_many_threads_one_forward_at_a_time():
    """The app's sessions share one Localizer: concurrent predictions give each thread its own
    image's maps (those of a prediction made alone), and the model runs one forward at a time."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from spg_core.localize import Localizer
    from spg_core.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", 3, variant="spg", widths=(8, 16, 16)).eval()
    inside, most, guard = [0], [0], threading.Lock()
    forward = model.forward

    def counted(*args, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            return forward(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    model.forward = counted
    localizer = Localizer(model, 32, ["a", "b", "c"])
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (24 + i, 40 - i, 3), dtype=np.uint8)) for i in range(12)]
    alone = [localizer.predict(photo, class_index=i % 3) for i, photo in enumerate(photos)]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda item: localizer.predict(item[1], class_index=item[0] % 3), enumerate(photos)))
    assert most[0] == 1
    for a, b in zip(alone, together):
        assert a.class_index == b.class_index and set(a.maps) == set(b.maps)
        for name in a.maps:
            np.testing.assert_array_equal(a.maps[name], b.maps[name])


def test_outputs_computed_ahead_in_batches_give_the_maps_of_one_forward_each_and_run_no_forward():
    from PIL import Image

    from spg_core.localize import Localizer
    from spg_core.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", 3, variant="spg", widths=(8, 16, 16)).eval()
    localizer = Localizer(model, 32, ["a", "b", "c"])
    rng = np.random.default_rng(1)
    photos = [Image.fromarray(rng.integers(0, 256, (24 + i, 40 - i, 3), dtype=np.uint8)) for i in range(5)]
    ahead = localizer.forward_many(photos, batch_size=2)  # batches of 2, 2, 1
    assert len(ahead) == 5 and all(out["class_maps"].shape[0] == 1 for out in ahead)
    alone = [localizer.predict(photo) for photo in photos]
    calls = []
    forward = model.forward
    model.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    from_ahead = [localizer.predict(photo, outputs=out) for photo, out in zip(photos, ahead)]
    assert calls == []
    for a, b in zip(alone, from_ahead):
        assert a.class_index == b.class_index and set(a.maps) == set(b.maps) == {"attention", "b1", "b2", "fused", "c"}
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
        for name in a.maps:
            np.testing.assert_allclose(a.maps[name], b.maps[name], atol=1e-4)
    with pytest.raises(ValueError, match="batch_size=0"):
        localizer.forward_many(photos, batch_size=0)
