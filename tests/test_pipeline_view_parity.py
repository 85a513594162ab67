"""The pipeline view's browser code agrees with spg_core bit for bit.

1. ``spg_app/pipeline_view/frontend/spg_compute.js`` loaded in headless Chromium is run on the
   float32 maps of 54 images of the shipped runs (9 of each run's own test split, maps from
   ``Localizer.predict``), on quantised copies of some of them (values k/100, so pixels equal
   the thresholds and ``>`` vs ``>=`` matters) and on made-up maps (flat ones, a nearly flat low
   one where the fallback threshold falls under δ_l, exactly 30 pixels above δ_h, components of
   equal size): for each guided stage ≥ 20 (δ_l, δ_h) pairs (δ_l ≥ δ_h ones included, both
   sides through ``clean_thresholds``) under both precedences, and ≥ 20 τ per map (some exactly
   equal to a pixel's normalised value). Every seed pixel, the fallback flag, every statistic,
   every box and its IoU are compared with ``spg_app.thresholds.stage_seeds`` / ``box_view`` (the
   ``spg_core`` calls the app makes per slider move): 0 differences.
2. The same comparisons FAIL when one comparison or the fallback rule is changed, in the JS (a
   mutated copy of the file) or in spg_core (a mutated copy of ``seed_mask`` /
   ``normalized_component_boxes`` monkeypatched in): each mutation must show differences.
3. The real component, in a Streamlit page (tests/pipeline_view_harness.py, ``streamlit run`` on
   a free port): δ and τ moved with the keyboard; the seed pictures' canvas pixels and the box
   drawn equal spg_core's for the maps the component holds, and the release reaches Python.

Needs Debian's Chromium at /usr/bin/chromium; skipped without it. Marked slow (~1–2 min).
"""
from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from spg_app.testing import CHROMIUM, app_server

ROOT = Path(__file__).resolve().parents[1]
COMPUTE_JS = ROOT / "spg_app" / "pipeline_view" / "frontend" / "spg_compute.js"
HARNESS = ROOT / "tests" / "pipeline_view_harness.py"
IMAGES_PER_RUN = 9
STAGE_SOURCES = {"mask_a": "attention", "mask_b2": "b2", "mask_fuse": "fused"}

# (δ_l, δ_h) pairs tried on every stage: the presets' values, the slider's ends, δ_l ≥ δ_h (cleaned
# on both sides), values Python's round(x, 4) must round like JS (exact ties at odd multiples of
# 1/32, long fractions), pairs that make the fallback fire on most maps (δ_h near 1) and pairs
# where its threshold 0.7·max falls under δ_l.
PAIRS = [(0.1, 0.7), (0.05, 0.7), (0.05, 0.5), (0.01, 0.7), (0.1, 0.5), (0.0, 1.0), (0.0, 0.01), (0.3, 0.31),
         (0.5, 0.5), (0.7, 0.3), (1.0, 1.0), (0.99, 0.99), (0.2, 0.2), (0.0, 0.0), (0.03125, 0.09375),
         (0.15625, 0.84375), (0.123456789, 0.87654321), (0.9, 0.999), (0.95, 0.99), (0.65, 0.95), (0.5, 0.51),
         (0.25, 0.75), (0.8, 0.9), (0.4, 0.6)]
TAUS = [0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
        0.85, 0.9, 0.95, 0.99, 1.0]
PRECEDENCES = ("foreground", "background")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no Chromium at /usr/bin/chromium (apt-get install chromium) for the browser test")]


# ----------------------------------------------------------------------------- the cases
@dataclasses.dataclass
class Case:
    """One image: its float32 maps (any subset of the score maps), object region, GT boxes."""

    name: str
    maps: dict
    region: np.ndarray | None
    boxes: np.ndarray | None
    pairs: list = dataclasses.field(default_factory=lambda: list(PAIRS))


def shipped_cases() -> list[Case]:
    """IMAGES_PER_RUN images of each shipped run's own test split, maps by Localizer.predict."""
    import torch

    from spg_core.config import TrainConfig, load_config_file
    from spg_core.data.settings import DataSettings
    from spg_core.localize import Localizer
    from spg_core.runs import resolve_run, shipped_runs
    from spg_core.sweeps import object_mask

    torch.set_num_threads(1)
    cases = []
    for run in shipped_runs():
        localizer = Localizer.from_run(run)
        config = TrainConfig.from_dict(load_config_file(resolve_run(run) / "config.yaml"))
        dataset = DataSettings.from_flags(config).dataset("test")
        samples = [dataset.load_sample(i) for i in range(0, 7 * IMAGES_PER_RUN, 7)]
        outputs = localizer.forward_many([s.image for s in samples])
        for index, (sample, output) in enumerate(zip(samples, outputs)):
            maps = localizer.predict(sample.image, outputs=output).maps
            region = object_mask(sample.mask, sample.boxes, (sample.image.height, sample.image.width))
            cases.append(Case(f"{run}#{7 * index}", maps, region, np.asarray(sample.boxes)))
    return cases


def quantised(case: Case) -> Case:
    """The maps rounded to k/100 in float32: many pixels equal a threshold after its float32 cast."""
    maps = {name: (np.round(m.astype(np.float64) * 100) / 100).astype(np.float32) for name, m in case.maps.items()}
    return Case(case.name + " quantised", maps, case.region, case.boxes)


def made_up_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    h, w = 40, 48
    region = np.zeros((h, w), dtype=bool)
    region[8:30, 10:36] = True
    boxes = np.array([[10, 8, 35, 29]])
    cases = []

    def add(name, score, pairs=()):
        score = np.asarray(score, dtype=np.float32)
        cases.append(Case(name, {n: score for n in ("attention", "b2", "fused")}, region, boxes,
                          list(PAIRS) + list(pairs)))

    add("flat 0.5", np.full((h, w), 0.5))
    add("flat 0", np.zeros((h, w)))
    add("flat 1", np.ones((h, w)))
    # nearly flat and low: 0.7·max = 0.056 < δ_l = 0.1, so precedence decides most pixels
    add("low flat", 0.06 + 0.02 * rng.random((h, w)), [(0.1, 0.7), (0.07, 0.5), (0.0779, 0.9)])
    # exactly 30 pixels above 0.7 (at 0.8): the fallback does not fire at δ_h = 0.7; at δ_h = 0.8,
    # 0 pixels are strictly above, so it fires (it would not with >=)
    exact30 = (np.round(rng.random((h, w)) * 70) / 100).astype(np.float32)
    exact30.ravel()[rng.choice(h * w, 30, replace=False)] = np.float32(0.8)
    add("exactly 30 above", exact30, [(0.1, 0.7), (0.1, 0.8), (0.7, 0.8), (0.69, 0.7)])
    # 29 pixels above: fires at 0.7
    exact29 = exact30.copy()
    exact29[exact29 == np.float32(0.8)] = np.float32(0.7)
    exact29.ravel()[np.flatnonzero(exact30 == np.float32(0.8))[:29]] = np.float32(0.8)
    add("exactly 29 above", exact29, [(0.1, 0.7), (0.1, 0.8), (0.69, 0.7)])
    # components of equal size: ties go to the one met first in raster order
    ties = 0.2 * rng.random((h, w))
    ties[5:10, 30:35] = 1.0   # first in raster order (row 5)
    ties[20:25, 2:7] = 1.0    # same size, later
    v_shape = np.zeros((h, w))
    for i in range(8):         # a V whose arms start in row 0 at x=0 and x=14, with a blob between
        v_shape[i, i] = v_shape[i, 14 - i] = 1.0
    v_shape[0:3, 6:9] = 1.0     # 9 pixels, first pixel at row 0 between the arms; the V has 15
    v_shape[30:35, 30:33] = 1.0  # 15 pixels, later: ties with the V
    add("equal components", ties)
    add("v shape", v_shape)
    add("noise", rng.random((h, w)))  # many small components at high τ: ties everywhere
    add("few pixels", np.pad(rng.random((4, 5)), ((10, 26), (20, 23))))
    return cases


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    shipped = shipped_cases()
    assert len(shipped) >= 50
    return shipped + [quantised(case) for case in shipped[::4]] + made_up_cases()


def taus_of(score: np.ndarray) -> list[float]:
    """TAUS and 4 values equal to a pixel's normalised value (float64, as minmax_numpy gives it)."""
    from spg_core.boxes import minmax_numpy

    normalised = np.unique(minmax_numpy(score))
    picks = normalised[np.linspace(0, len(normalised) - 1, 6).astype(int)[1:-1]] if len(normalised) > 2 else []
    return TAUS + [float(v) for v in picks]


# ----------------------------------------------------------------------------- the two sides
def python_side(case: Case) -> dict:
    """What spg_core says (through the app's per-move calls): seeds, fallback, stats, boxes, IoU."""
    from spg_app.thresholds import box_view, clean_thresholds, stage_seeds
    from spg_core.guidance import PRESETS
    from spg_core.localize import StageMaps

    maps = StageMaps(None, np.ones(1), 0, ["x"], case.maps)
    seeds = {}
    for stage, source in STAGE_SOURCES.items():
        if source not in case.maps:
            continue
        for precedence in PRECEDENCES:
            base = dataclasses.replace(PRESETS["paper"], precedence=precedence)
            for low, high in case.pairs:
                clean = clean_thresholds(low, high)
                result = stage_seeds(maps, base.replace(stage, delta_low=clean[0], delta_high=clean[1]), stage,
                                     case.region)
                seeds[(stage, precedence, low, high)] = (clean, result.mask, result.fallback, result.stats)
    boxes = {}
    for name, score in case.maps.items():
        for tau in taus_of(score):
            box, iou = box_view(maps, tau, case.boxes, box_stage=name)
            boxes[(name, tau)] = (tuple(box), iou)
    return {"seeds": seeds, "boxes": boxes}


JS_BATCH = """
(batch) => {
  const S = window.SPGCompute;
  const bytes = (b64) => { const t = atob(b64); const out = new Uint8Array(t.length);
    for (let i = 0; i < t.length; i++) out[i] = t.charCodeAt(i); return out; };
  const floats = (b64) => new Float32Array(bytes(b64).buffer);
  const bits = (b64, n) => { const p = bytes(b64); const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (p[i >> 3] >> (7 - (i & 7))) & 1; return out; };
  const pack = (mask) => {  // 2 bits a pixel: 0 bg, 1 fg, 2 ignored, 4 to a byte
    const out = new Uint8Array(Math.ceil(mask.length / 4));
    for (let i = 0; i < mask.length; i++) {
      const code = mask[i] === 0 ? 0 : (mask[i] === 1 ? 1 : (mask[i] === 255 ? 2 : 3));
      out[i >> 2] |= code << (2 * (i & 3));
    }
    let text = ""; for (let i = 0; i < out.length; i++) text += String.fromCharCode(out[i]); return btoa(text);
  };
  const num = (v) => (v === undefined ? null : (v !== v ? "NaN" : v));
  const region = batch.region ? bits(batch.region, batch.w * batch.h) : null;
  const result = {seeds: [], boxes: []};
  for (const item of batch.seeds) {
    const map = floats(batch.maps[item.source]);
    for (const [low, high, precedence] of item.cases) {
      const clean = S.cleanThresholds(low, high);
      const r = S.seedMask(map, clean[0], clean[1], precedence);
      const s = S.seedStatistics(r.mask, region);
      result.seeds.push([clean, pack(r.mask), r.fallback,
        [s.foreground, s.background, s.ignored, num(s.foreground_precision), num(s.background_precision)]]);
    }
  }
  for (const [name, taus] of batch.boxes) {
    const map = floats(batch.maps[name]);
    for (const tau of taus) {
      const box = S.largestComponentBox(map, batch.w, batch.h, tau);
      result.boxes.push([box, num(S.bestIou(box, batch.gt))]);
    }
  }
  return result;
}
"""


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def js_side(page, case: Case) -> dict:
    """The same calls in the browser, one page.evaluate per image."""
    from spg_app.pipeline_view import encode_bits, encode_map

    height, width = next(iter(case.maps.values())).shape
    seed_items, keys = [], []
    for stage, source in STAGE_SOURCES.items():
        if source not in case.maps:
            continue
        item = {"source": source, "cases": []}
        for precedence in PRECEDENCES:
            for low, high in case.pairs:
                item["cases"].append([low, high, precedence])
                keys.append((stage, precedence, low, high))
        seed_items.append(item)
    box_items, box_keys = [], []
    for name, score in case.maps.items():
        taus = taus_of(score)
        box_items.append([name, taus])
        box_keys += [(name, tau) for tau in taus]
    batch = {"w": width, "h": height, "maps": {n: encode_map(m) for n, m in case.maps.items()},
             "region": encode_bits(case.region) if case.region is not None else None,
             "gt": np.asarray(case.boxes).astype(np.int64).tolist() if case.boxes is not None else None,
             "seeds": seed_items, "boxes": box_items}
    raw = page.evaluate(JS_BATCH, batch)
    n = height * width
    seeds = {}
    for key, (clean, packed, fallback, stats) in zip(keys, raw["seeds"]):
        codes = np.unpackbits(np.frombuffer(base64.b64decode(packed), dtype=np.uint8), bitorder="little")
        codes = (codes[0::2] + 2 * codes[1::2])[:n]
        mask = np.array([0, 1, 255, 7], dtype=np.uint8)[codes].reshape(height, width)
        seeds[key] = (tuple(clean), mask, fallback, [float(v) if v is not None else None for v in stats])
    boxes = {key: (tuple(box), None if iou is None else float(iou)) for key, (box, iou) in zip(box_keys, raw["boxes"])}
    return {"seeds": seeds, "boxes": boxes}


def same_number(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (np.isnan(a) and np.isnan(b)) or a == b  # exact: no tolerance


def differences(python: dict, js: dict) -> dict:
    """Counts of disagreements: seed pixels, cleaned thresholds, fallback flags, statistics, boxes, IoUs."""
    count = {"pixels": 0, "clean": 0, "fallback": 0, "stats": 0, "boxes": 0, "iou": 0, "first": None}
    assert python["seeds"].keys() == js["seeds"].keys() and python["boxes"].keys() == js["boxes"].keys()
    for key, (clean, mask, fallback, stats) in python["seeds"].items():
        j_clean, j_mask, j_fallback, j_stats = js["seeds"][key]
        wrong = int((mask != j_mask).sum())
        count["pixels"] += wrong
        count["clean"] += tuple(clean) != j_clean
        count["fallback"] += bool(fallback) != bool(j_fallback)
        keys = ("foreground", "background", "ignored", "foreground_precision", "background_precision")
        py_stats = [stats.get(k) for k in keys]
        count["stats"] += sum(not same_number(a, b) for a, b in zip(py_stats, j_stats))
        if count["first"] is None and (wrong or tuple(clean) != j_clean or bool(fallback) != bool(j_fallback)):
            count["first"] = ("seeds", key, wrong, clean, j_clean, fallback, j_fallback)
    for key, (box, iou) in python["boxes"].items():
        j_box, j_iou = js["boxes"][key]
        count["boxes"] += tuple(int(v) for v in box) != tuple(j_box)
        count["iou"] += not same_number(iou, j_iou)
        if count["first"] is None and tuple(int(v) for v in box) != tuple(j_box):
            count["first"] = ("box", key, box, j_box)
    return count


def total(count: dict) -> int:
    return sum(v for k, v in count.items() if k != "first")


# ----------------------------------------------------------------------------- the browser
from test_app_browser import browser  # noqa: E402,F401,F811  (the module-scoped Chromium fixture)


def compute_page(browser, source: str):  # noqa: F811
    page = browser.new_page()
    page.set_content("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>")
    page.add_script_tag(content=source)
    assert page.evaluate("typeof window.SPGCompute.seedMask") == "function"
    return page


_PYTHON: dict[str, dict] = {}  # case name -> the unmutated sides' results, reused by the mutation tests
_JS: dict[str, dict] = {}


def python_reference(case: Case) -> dict:
    if case.name not in _PYTHON:
        _PYTHON[case.name] = python_side(case)
    return _PYTHON[case.name]


def js_reference(page, case: Case) -> dict:
    if case.name not in _JS:
        _JS[case.name] = js_side(page, case)
    return _JS[case.name]


def compare(page, cases: list[Case], python=python_reference, js=js_reference, stop_at_first: bool = False) -> dict:
    """Differences summed over ``cases`` (``stop_at_first``: up to the first case that has some)."""
    count = {"pixels": 0, "clean": 0, "fallback": 0, "stats": 0, "boxes": 0, "iou": 0, "first": None}
    compared = {"masks": 0, "pixels": 0, "boxes": 0}
    for case in cases:
        found = differences(python(case), js(page, case))
        for key in count:
            if key == "first":
                count["first"] = count["first"] or (found["first"] and (case.name, found["first"]))
            else:
                count[key] += found[key]
        compared["masks"] += sum(len(case.pairs) * 2 for s in STAGE_SOURCES.values() if s in case.maps)
        compared["pixels"] += sum(len(case.pairs) * 2 * m.size for s, m in case.maps.items()
                                  if s in STAGE_SOURCES.values())
        compared["boxes"] += sum(len(taus_of(m)) for m in case.maps.values())
        if stop_at_first and total(found):
            break
    count["compared"] = compared
    return count


def test_js_rules_agree_with_spg_core_bit_for_bit(browser, cases):  # noqa: F811
    started = time.perf_counter()
    page = compute_page(browser, COMPUTE_JS.read_text(encoding="utf-8"))
    count = compare(page, cases)
    page.close()
    compared = count.pop("compared")
    print(f"\n{len(cases)} images: {compared['masks']} seed masks ({compared['pixels']} pixels) and "
          f"{compared['boxes']} boxes compared in {time.perf_counter() - started:.1f} s; differences {count}")
    assert compared["masks"] >= 50 * 20 and compared["boxes"] >= 50 * 20
    assert total(count) == 0, count


def test_the_cases_reach_the_rules_edges(cases):
    """The cases do exercise what the mutations below change: fallbacks firing and not, both
    seeds claiming a pixel, δ_l ≥ δ_h, pixels equal to a threshold."""
    from spg_app.thresholds import clean_thresholds
    from spg_core.guidance import seed_mask

    fired = not_fired = claimed_twice = equal = 0
    for case in cases[::4]:
        score = case.maps["attention"]
        for low, high in case.pairs:
            low, high, _ = clean_thresholds(low, high)
            _, fire = seed_mask(score, low, high, return_fallback=True)
            fired += bool(fire)
            not_fired += not fire
            equal += int((score == np.float32(high)).sum() + (score == np.float32(low)).sum())
            if fire:
                claimed_twice += int(((score < np.float32(low)) & (score > np.float32(0.7) * score.max())).sum())
    assert fired and not_fired and claimed_twice and equal
    assert clean_thresholds(0.7, 0.3)[2] and clean_thresholds(1.0, 1.0) == (0.99, 1.0, True)


# ----------------------------------------------------------------------------- mutations
JS_MUTATIONS = {
    "fallback count > becomes >=": ("if (v > hi) above++;", "if (v >= hi) above++;"),
    "foreground > becomes >=": ("mask[i] = (v > hi) ? FOREGROUND : ((v < lo) ? BACKGROUND : IGNORE);",
                                "mask[i] = (v >= hi) ? FOREGROUND : ((v < lo) ? BACKGROUND : IGNORE);"),
    "background < becomes <=": ("mask[i] = (v > hi) ? FOREGROUND : ((v < lo) ? BACKGROUND : IGNORE);",
                                "mask[i] = (v > hi) ? FOREGROUND : ((v <= lo) ? BACKGROUND : IGNORE);"),
    "fallback fires at <= 30": ("var fired = above < minPixels;", "var fired = above <= minPixels;"),
    "fallback ratio 0.75": ("var FALLBACK_RATIO = 0.7;", "var FALLBACK_RATIO = 0.75;"),
    "precedence swapped": ('if (precedence === "foreground") {', 'if (precedence !== "foreground") {'),
    "thresholds not cast to float32": ("var lo = Math.fround(deltaLow);", "var lo = deltaLow;"),
    "box >= tau becomes >": ("/ span >= tau) ? 1 : 0;", "/ span > tau) ? 1 : 0;"),
    "box 4-connected": ("if (keep[q] && !labels[q])", "if (keep[q] && !labels[q] && (dx === 0 || dy === 0))"),
    "box ties to the last": ("if (size > bestSize)", "if (size >= bestSize)"),
    "round half up": ("n = below % 2 === 0 ? below : below + 1;", "n = below + 1;"),
}


def edge_cases(cases: list[Case]) -> list[Case]:
    """The made-up maps, then quantised and shipped images: where mutations show, smallest first
    (a mutation test stops at the first case that shows it)."""
    return ([c for c in cases if "#" not in c.name] + [c for c in cases if "quantised" in c.name][:4]
            + [c for c in cases if "#" in c.name and "quantised" not in c.name][:3])


@pytest.mark.parametrize("mutation", sorted(JS_MUTATIONS))
def test_a_changed_js_rule_is_caught(browser, cases, mutation):  # noqa: F811
    old, new = JS_MUTATIONS[mutation]
    source = COMPUTE_JS.read_text(encoding="utf-8")
    assert source.count(old) == 1, f"the mutation's target {old!r} is not in spg_compute.js exactly once"
    page = compute_page(browser, source.replace(old, new))
    count = compare(page, edge_cases(cases), js=js_side, stop_at_first=True)  # spg_core's side: the reference
    page.close()
    count.pop("compared")
    assert total(count) > 0, f"the parity check does not notice {mutation!r}"


def mutated(module, name: str, old: str, new: str):
    """``module.name`` recompiled from its source with ``old`` replaced by ``new`` (exactly once)."""
    source = inspect.getsource(getattr(module, name))
    assert source.count(old) == 1, f"{old!r} is not in {module.__name__}.{name} exactly once"
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), f"<mutated {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


PY_MUTATIONS = {
    "fallback count > becomes >=": ("guidance", "seed_mask", "(flat > high).sum", "(flat >= high).sum"),
    "foreground > becomes >=": ("guidance", "seed_mask", "flat > high.expand_as(flat)", "flat >= high.expand_as(flat)"),
    "background < becomes <=": ("guidance", "seed_mask", "flat < delta_low", "flat <= delta_low"),
    "fallback fires at <= 30": ("guidance", "seed_mask", ") < min_pixels", ") <= min_pixels"),
    "box >= tau becomes >": ("boxes", "normalized_component_boxes", "normalized >= tau", "normalized > tau"),
}


@pytest.mark.parametrize("mutation", sorted(PY_MUTATIONS))
def test_a_changed_spg_core_rule_is_caught(browser, cases, monkeypatch, mutation):  # noqa: F811
    import spg_core.boxes
    import spg_core.guidance

    module_name, name, old, new = PY_MUTATIONS[mutation]
    module = {"guidance": spg_core.guidance, "boxes": spg_core.boxes}[module_name]
    page = compute_page(browser, COMPUTE_JS.read_text(encoding="utf-8"))
    monkeypatch.setattr(module, name, mutated(module, name, old, new))
    count = compare(page, edge_cases(cases), python=python_side, stop_at_first=True)  # the JS side: the reference
    page.close()
    count.pop("compared")
    assert total(count) > 0, f"the parity check does not notice {mutation!r} in spg_core"


# ----------------------------------------------------------------------------- the real component
@pytest.fixture(scope="module")
def harness():
    """`streamlit run tests/pipeline_view_harness.py` on a free port (as tests/test_app_browser.py)."""
    with app_server(script=HARNESS, timeout=120) as url:
        yield url


READ_COMPONENT = """
() => {
  const st = window.__spgView.state, run = st.runs[0];
  const b64 = (array) => { const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    let text = ""; for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]); return btoa(text); };
  const maps = {}; for (const name in run.maps) maps[name] = b64(run.maps[name]);
  const seeds = {};
  for (const stage of ["mask_a", "mask_b2", "mask_fuse"]) {
    const pic = document.querySelector('[role="img"][aria-label="' + st.stages[stage].title + ' seeds"]');
    const canvas = pic && pic.querySelector("canvas.base");
    if (!canvas) continue;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const codes = new Uint8Array(data.length / 4);  // white fg, black bg, grey 128 ignored; anything else 7
    for (let i = 0; i < codes.length; i++) {
      const r = data[4 * i], g = data[4 * i + 1], b = data[4 * i + 2];
      codes[i] = (r === 255 && g === 255 && b === 255) ? 1 : (r === 0 && g === 0 && b === 0) ? 0
        : (r === 128 && g === 128 && b === 128) ? 255 : 7;
    }
    seeds[stage] = b64(codes);
  }
  const heatCanvas = document.querySelector('[role="img"][aria-label="Attention map (A4)"] canvas.heat');
  const heat = heatCanvas.getContext("2d").getImageData(0, 0, heatCanvas.width, heatCanvas.height).data;
  const rgb = new Uint8Array(heat.length / 4 * 3);
  for (let i = 0, j = 0; i < heat.length; i += 4, j += 3) { rgb[j] = heat[i]; rgb[j + 1] = heat[i + 1]; rgb[j + 2] = heat[i + 2]; }
  return {w: run.w, h: run.h, precedence: run.precedence, maps: maps, seeds: seeds, heat: b64(rgb),
          box: st.views.box[0].result.box, iou: st.views.box[0].result.iou,
          values: st.values, stats: window.__spgStats};
}
"""


def component_frame(page):
    for frame in page.frames:
        if "pipeline_view" in frame.url:
            return frame
    raise AssertionError(f"no pipeline_view frame among {[f.url for f in page.frames]}")


def press(locator, key: str, times: int) -> None:
    locator.focus()
    for _ in range(times):
        locator.press(key)


def released_values(page, expected: dict, timeout: float = 30) -> dict:
    """The values the harness printed once Python has them (or the last ones seen)."""
    deadline, seen = time.time() + timeout, None
    while time.time() < deadline:
        text = page.get_by_text(re.compile(r"^released \{")).first.inner_text()
        seen = json.loads(text[len("released "):])
        if seen == expected:
            break
        time.sleep(0.2)
    return seen


def test_the_component_draws_spg_core_seeds_and_box(harness, browser):  # noqa: F811
    """Keyboard moves of δ and τ: each seed canvas equals spg_core's mask, the box equals
    box_view's, on the float32 maps the component holds, and the A4 colours are viz.colorize's;
    the released values reach Python; values the caller passes (a preset reset) are shown."""
    from spg_app.pipeline_view import decode_map
    from spg_app.thresholds import box_view, stage_seeds
    from spg_core.config import TrainConfig, load_config_file
    from spg_core.data.settings import DataSettings
    from spg_core.guidance import get_preset
    from spg_core.localize import StageMaps
    from spg_core.runs import resolve_run
    from spg_core.sweeps import object_mask
    from spg_core.viz import colorize

    config = TrainConfig.from_dict(load_config_file(resolve_run("synthetic-spg") / "config.yaml"))
    dataset = DataSettings.from_flags(config).dataset("test")
    preset = get_preset(config.preset)
    # per image: (slider, key, presses); the last image drives Mask-fuse's δ_h to 1.0, where the fallback fires
    moves = {0: [("Mask-A δ_h", "ArrowLeft", 4), ("Mask-A δ_l", "ArrowRight", 3), ("τ", "ArrowRight", 6)],
             5: [("Mask-B2 δ_l", "ArrowRight", 50), ("Mask-B2 δ_h", "ArrowLeft", 3), ("τ", "ArrowLeft", 20)],
             11: [("Mask-fuse δ_h", "End", 1), ("Mask-fuse δ_l", "ArrowRight", 2), ("Mask-A δ_l", "End", 1),
                  ("τ", "Home", 1)]}
    fallback_seen = False
    for index, steps in moves.items():
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{harness}/?image={index}")
        frame = page.frame_locator("iframe[title*='pipeline_view']")
        frame.get_by_role("img", name="Mask-A seeds", exact=True).wait_for(timeout=120_000)
        for name, key, times in steps:
            press(frame.get_by_role("slider", name=name, exact=True), key, times)
        state = component_frame(page).evaluate("() => window.__spgView.state.values")
        expected = {"alpha": state["alpha"], "tau": state["tau"], "thresholds": state["thresholds"]}
        assert released_values(page, expected) == expected, "the released values did not reach Python"
        page.wait_for_timeout(300)
        seen = component_frame(page).evaluate(READ_COMPONENT)

        sample = dataset.load_sample(index)
        shape = (seen["h"], seen["w"])
        assert shape == (sample.image.height, sample.image.width)
        maps = StageMaps(None, np.ones(1), 0, ["x"], {n: decode_map(m, shape) for n, m in seen["maps"].items()})
        region = object_mask(sample.mask, sample.boxes, shape)
        thresholds = seen["values"]["thresholds"]
        chosen = preset.with_thresholds({stage: tuple(pair) for stage, pair in thresholds.items()})
        assert chosen.precedence == seen["precedence"]
        for stage, packed in seen["seeds"].items():
            drawn = np.frombuffer(base64.b64decode(packed), dtype=np.uint8).reshape(shape)
            reference = stage_seeds(maps, chosen, stage, region)
            fallback_seen |= reference.fallback
            assert (drawn == reference.mask).all(), f"image {index}: {stage} drawn differs in " \
                f"{int((drawn != reference.mask).sum())} pixels at {thresholds[stage]}"
        heat = np.frombuffer(base64.b64decode(seen["heat"]), dtype=np.uint8).reshape(*shape, 3)
        assert (heat == colorize(maps.maps["attention"])).all(), "the A4 colours are not spg_core.viz.colorize's"
        box, iou = box_view(maps, seen["values"]["tau"], sample.boxes)
        assert tuple(seen["box"]) == box and same_number(iou, seen["iou"])
        page.close()
    assert fallback_seen, "no image made the fallback fire"

    # a value the caller passes (the harness's preset reset) is what the sliders then show
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{harness}/?image=3")
    frame = page.frame_locator("iframe[title*='pipeline_view']")
    thumb = frame.get_by_role("slider", name="Mask-A δ_h", exact=True)
    thumb.wait_for(timeout=120_000)
    press(thumb, "ArrowLeft", 10)
    moved = round(preset.mask_a.delta_high - 0.1, 2)
    deadline = time.time() + 30
    while float(thumb.input_value()) != moved and time.time() < deadline:
        time.sleep(0.1)
    page.get_by_text(re.compile(r"^released .*\[0\.05, " + re.escape(str(moved)) + r"\]")).wait_for(timeout=30_000)
    page.get_by_role("button", name="Reset to the preset").click()
    deadline = time.time() + 30
    while float(thumb.input_value()) != preset.mask_a.delta_high and time.time() < deadline:
        time.sleep(0.1)
    assert float(thumb.input_value()) == preset.mask_a.delta_high, "the reset values were not shown"
    page.close()
