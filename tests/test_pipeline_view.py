"""The pipeline view's Python side (spg_app.pipeline_view), without a browser: what it sends (maps
as exact float32, masks as bits, the colour scale of spg_core.viz), what it checks, what it
returns, and that its frontend ships as package data. The browser half is tested against
spg_core in tests/test_pipeline_view_parity.py (slow)."""
from __future__ import annotations

import base64
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spg_app.pipeline_view import (
    FRONTEND,
    PipelineRun,
    build_args,
    colour_lut,
    decode_bits,
    decode_map,
    encode_bits,
    encode_image,
    encode_map,
    read_value,
    run_payload,
)

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = {"mask_a": (0.05, 0.7), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.7)}


def make_run(height=6, width=8, maps=("attention", "b2", "b1", "fused", "c"), **fields) -> PipelineRun:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    return PipelineRun("run", image, {name: rng.random((height, width), dtype=np.float32) for name in maps}, **fields)


def test_maps_travel_as_exact_little_endian_float32():
    rng = np.random.default_rng(1)
    score = rng.random((5, 7)).astype(np.float32)
    score[0, :4] = [0.0, 1.0, np.float32(0.7), np.nextafter(np.float32(0.7), np.float32(1))]
    text = encode_map(score)
    assert base64.b64decode(text) == score.astype("<f4").tobytes()
    back = decode_map(text, score.shape)
    assert back.dtype == np.float32 and back.tobytes() == score.tobytes()
    # a float64 map is cast once, to the float32 the library itself thresholds
    assert decode_map(encode_map(score.astype(np.float64)), score.shape).tobytes() == score.tobytes()


def test_masks_travel_as_bits_most_significant_first():
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 0] = mask[1, 2] = mask[2, 4] = True
    raw = base64.b64decode(encode_bits(mask))
    assert raw == bytes([0b10000001, 0b00000010])  # pixel 0 is the first byte's top bit (the JS reads it so)
    assert (decode_bits(encode_bits(mask), mask.shape) == mask).all()


def test_the_colour_scale_is_spg_core_viz():
    import cv2

    from spg_core.viz import colorize

    lut = np.array(colour_lut(), dtype=np.uint8).reshape(256, 3)
    jet = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0]
    assert (lut == jet).all()
    values = np.concatenate([np.random.default_rng(2).random(2000), [0, 1, 0.5, 1 / 255, 254 / 255]]).astype(np.float32)
    index = (np.clip(values, 0, 1) * np.float32(255)).astype(np.uint8)  # what spg_compute.js colorIndex computes
    assert (lut[index] == colorize(values[None])[0]).all()


def test_run_payload_holds_what_the_browser_draws():
    run = make_run(gt_boxes=np.array([[1.7, 0, 5, 4]]), object_region=np.ones((6, 8), bool),
                   gt_mask=np.eye(6, 8, dtype=bool), precedence="background")
    payload, key = run_payload(run)
    assert payload["width"] == 8 and payload["height"] == 6 and payload["precedence"] == "background"
    assert list(payload["maps"]) == ["attention", "b2", "b1", "fused", "c"]
    assert payload["gt_boxes"] == [[1, 0, 5, 4]]  # truncated like spg_core.boxes.iou's int64 cast
    assert (decode_bits(payload["gt_mask"], (6, 8)) == np.eye(6, 8, dtype=bool)).all()
    assert payload["image"].startswith("data:image/png;base64,")
    png = base64.b64decode(payload["image"].split(",", 1)[1])
    import io

    with Image.open(io.BytesIO(png)) as decoded:
        assert (np.asarray(decoded.convert("RGB")) == np.asarray(run.image)).all()  # lossless
    plain, plain_key = run_payload(make_run(maps=("attention",)))
    assert plain_key != key
    assert list(plain["maps"]) == ["attention"] and plain["gt_boxes"] is None and plain["object_region"] is None


def test_a_run_is_encoded_once_per_content():
    run = make_run()
    payload, key = run_payload(run)
    again = make_run()  # equal content, other objects
    assert run_payload(again) == (payload, key) and run_payload(again)[0] is payload
    again.maps["b1"] = again.maps["b1"].copy()
    again.maps["b1"][0, 0] = np.nextafter(again.maps["b1"][0, 0], np.float32(2))  # one bit of one map
    assert run_payload(again)[1] != key
    assert encode_image(run.image) == payload["image"]


@pytest.mark.parametrize("change, message", [
    (dict(maps={"attention": np.zeros((5, 8), np.float32)}), "shape"),
    (dict(maps={"mask_a": np.zeros((6, 8), np.float32)}), "unknown map"),
    (dict(object_region=np.zeros((8, 6), bool)), "object_region"),
    (dict(precedence="last"), "precedence"),
])
def test_run_payload_refuses_bad_input(change, message):
    run = make_run()
    for key, value in change.items():
        setattr(run, key, value)
    with pytest.raises(ValueError, match=message):
        run_payload(run)


def test_build_args_values_and_data_key():
    runs = [make_run(), make_run(maps=("attention",))]
    args = build_args(runs, THRESHOLDS, 0.5, 0.4)
    json.dumps(args)  # what Streamlit sends: plain JSON
    assert args["values"] == {"thresholds": {k: list(v) for k, v in THRESHOLDS.items()}, "tau": 0.5, "alpha": 0.4}
    assert [s["mask"] for s in args["data"]["stages"]] == ["mask_a", "mask_b2", "mask_fuse"]
    assert args["data"]["stages"][2]["source"] == "fused" and args["data"]["box_stage"] == "attention"
    assert len(args["data"]["lut"]) == 768
    # the data key follows the data, not the values
    assert build_args(runs, {**THRESHOLDS, "mask_a": (0.2, 0.9)}, 0.1, 0.9)["data_key"] == args["data_key"]
    other = make_run()
    other.maps["attention"] = other.maps["attention"] * np.float32(0.5)
    assert build_args([other], THRESHOLDS, 0.5, 0.4)["data_key"] != build_args([make_run()], THRESHOLDS, 0.5,
                                                                                0.4)["data_key"]


@pytest.mark.parametrize("thresholds, tau, alpha, box_stage, message", [
    ({"mask_a": (0.05, 0.7)}, 0.5, 0.5, "attention", "missing"),
    ({**THRESHOLDS, "mask_x": (0.1, 0.2)}, 0.5, 0.5, "attention", "unknown"),
    ({**THRESHOLDS, "mask_a": (0.1, 1.2)}, 0.5, 0.5, "attention", r"\[0, 1\]"),
    (THRESHOLDS, 1.5, 0.5, "attention", "tau"),
    (THRESHOLDS, 0.5, 0.5, "mask_a", "box_stage"),
])
def test_build_args_refuses_bad_values(thresholds, tau, alpha, box_stage, message):
    with pytest.raises(ValueError, match=message):
        build_args([make_run()], thresholds, tau, alpha, box_stage)


def test_build_args_needs_a_run():
    with pytest.raises(ValueError, match="at least one"):
        build_args([], THRESHOLDS, 0.5, 0.5)


def test_read_value_turns_the_release_into_tuples():
    raw = {"thresholds": {"mask_a": [0.05, 0.66], "mask_b2": [0.05, 0.5], "mask_fuse": [0.1, 0.7]}, "tau": 0.45,
           "alpha": 0.5, "nonce": 1765136000123001}
    value = read_value(raw)
    assert value == {"thresholds": {"mask_a": (0.05, 0.66), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.7)},
                     "tau": 0.45, "alpha": 0.5, "nonce": 1765136000123001}
    assert all(isinstance(v, tuple) for v in value["thresholds"].values())
    assert read_value(None) is None
    assert read_value({"thresholds": {"mask_a": [0.1, 0.2]}, "tau": 0.5, "alpha": 0.5, "nonce": 1}) is None
    assert read_value("garbage") is None


def test_the_component_renders_in_a_script_and_returns_none_before_a_release():
    from streamlit.testing.v1 import AppTest

    def script():
        import numpy as np
        import streamlit as st
        from PIL import Image

        from spg_app.pipeline_view import PipelineRun, pipeline_view

        run = PipelineRun("x", Image.new("RGB", (8, 6)), {"attention": np.zeros((6, 8), np.float32)})
        tau = st.session_state.get("tau", 0.5)
        value = pipeline_view([run], {"mask_a": (0.1, 0.7), "mask_b2": (0.05, 0.5), "mask_fuse": (0.1, 0.7)}, tau,
                              0.5, key="view")
        st.text(f"value {value}")

    app = AppTest.from_function(script).run(timeout=60)
    assert not app.exception
    assert app.text[0].value == "value None"
    element = app.get("component_instance")[0]
    assert element.proto.component_name.endswith("pipeline_view")
    assert json.loads(element.proto.json_args)["values"]["tau"] == 0.5
    first_id = element.proto.id
    app.session_state["tau"] = 0.25  # new values from the caller: same widget (the key is its identity)
    app.run(timeout=60)
    element = app.get("component_instance")[0]
    assert element.proto.id == first_id and json.loads(element.proto.json_args)["values"]["tau"] == 0.25


def test_the_frontend_ships_as_package_data():
    files = {path.name for path in FRONTEND.iterdir()}
    assert {"index.html", "pipeline_view.js", "spg_compute.js", "style.css"} <= files
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    for name in ("spg_compute.js", "pipeline_view.js", "style.css"):
        assert name in html
    for path in FRONTEND.iterdir():  # nothing fetched from the network at run time
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, path
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "frontend/*" in package_data["spg_app.pipeline_view"]
