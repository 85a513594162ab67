"""spg_core.viz: seed-mask colours, box colours and the plotly picture grid."""
import numpy as np
import pytest
from PIL import Image

from spg_core import viz
from spg_core.guidance import BACKGROUND, FOREGROUND, IGNORE

go = pytest.importorskip("plotly.graph_objects")


def test_mask_image_colours():
    mask = np.array([[FOREGROUND, BACKGROUND, IGNORE]], dtype=np.uint8)
    picture = np.asarray(viz.mask_image(mask))
    assert picture.shape == (1, 3, 3)
    assert picture[0, 0].tolist() == [255, 255, 255]  # foreground white
    assert picture[0, 1].tolist() == [0, 0, 0]  # background black
    assert picture[0, 2].tolist() == [viz.IGNORE_GREY] * 3  # ignored grey
    assert 0 < viz.IGNORE_GREY < 255


def test_draw_boxes_colours():
    image = Image.new("RGB", (40, 40), (255, 255, 255))
    out = np.asarray(viz.draw_boxes(image, pred_boxes=[[20, 20, 35, 35]], gt_boxes=[[2, 2, 15, 15]], width=1))
    assert tuple(out[2, 8]) == viz.GT_COLOR  # top edge of the GT box: red
    assert tuple(out[20, 28]) == viz.PRED_COLOR  # top edge of the predicted box: green
    assert tuple(out[8, 8]) == (255, 255, 255)  # inside a box: untouched
    assert np.asarray(image).min() == 255  # the input picture is not drawn on


def test_picture_grid():
    pictures = [Image.new("RGB", (16, 12), colour) for colour in ("red", "green", "blue")]
    pictures.append(np.zeros((12, 16, 3), dtype=np.uint8))  # arrays work as well as PIL images
    fig = viz.picture_grid(pictures, ["a", "b", "c", "d"], cols=2)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 4
    assert sorted(a.text for a in fig.layout.annotations) == ["a", "b", "c", "d"]
    assert fig.layout.height == 50 + 200 * 2  # two rows
    # Compact: each picture is embedded as a JPEG data URI, not as a z array of pixel values.
    assert all(trace.source.startswith("data:image/jpeg;base64,") for trace in fig.data)
    assert all(trace.z is None for trace in fig.data)

    one_row = viz.picture_grid(pictures[:3], height=260)
    assert one_row.layout.height == 260
    assert all(a.text == "" for a in one_row.layout.annotations)  # no titles given
    with pytest.raises(ValueError):
        viz.picture_grid(pictures, ["only one title"])


# ----------------------------------------------------------------------------- static copies (matplotlib)
def png_pixels(data: bytes) -> np.ndarray:
    import io

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def has_colour(pixels: np.ndarray, rgb, tolerance=40) -> bool:
    return bool((np.abs(pixels.astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).any())


def test_static_png_draws_lines_bars_and_titles_without_a_browser():
    pytest.importorskip("matplotlib")
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("lines", "bars"))
    fig.add_trace(go.Scatter(x=[0, 1, 2], y=[0, 2, 1], line=dict(color="#d62728", width=4), name="red"), row=1, col=1)
    fig.add_trace(go.Bar(x=["a", "b"], y=[3, 1], marker_color="#1f77b4", name="blue"), row=1, col=2)
    fig.add_vline(x=1, line_color="#2ca02c", row=1, col=1)
    fig.update_layout(width=600, height=300, title="a figure")
    pixels = png_pixels(viz.static_png(fig))
    assert 500 <= pixels.shape[1] <= 700 and 250 <= pixels.shape[0] <= 400  # about the layout's size
    for colour in ((214, 39, 40), (31, 119, 180), (44, 160, 44)):  # the line, the bars, the vertical line
        assert has_colour(pixels, colour), colour


def test_static_png_reads_the_typed_arrays_of_a_figure_dict():
    """plotly ≥ 6 writes numpy arrays into a figure's dict as base64 typed arrays: what a renderer
    gets. A heat map drawn from them is not blank."""
    pytest.importorskip("matplotlib")
    px = pytest.importorskip("plotly.express")
    z = np.linspace(0, 1, 30).reshape(5, 6)
    fig = px.imshow(z, x=[str(v) for v in range(6)], y=[str(v) for v in range(5)], zmin=0, zmax=1,
                    color_continuous_scale="Viridis", text_auto=".1f")
    as_dict = fig.to_dict()
    assert isinstance(as_dict["data"][0]["z"], dict) and "bdata" in as_dict["data"][0]["z"]
    pixels = png_pixels(viz.static_png(as_dict))
    assert has_colour(pixels, (68, 1, 84)) and has_colour(pixels, (253, 231, 37))  # Viridis's two ends


def test_static_png_of_a_picture_grid_shows_the_pictures():
    pytest.importorskip("matplotlib")
    colours = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    fig = viz.picture_grid([Image.new("RGB", (24, 24), c) for c in colours], ["r", "g", "b"])
    pixels = png_pixels(viz.static_png(fig.to_dict()))
    assert all(has_colour(pixels, c, tolerance=30) for c in colours)  # JPEG-embedded: near, not exact


def test_use_static_copies_puts_json_and_png_in_one_output(monkeypatch):
    pytest.importorskip("matplotlib")
    pio = pytest.importorskip("plotly.io")
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)  # restored after the test
    viz.use_static_copies()
    assert pio.renderers.default == f"plotly_mimetype+{viz.STATIC_RENDERER}"
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    bundle = pio.renderers._build_mime_bundle(fig.to_dict())
    assert set(bundle) == {"application/vnd.plotly.v1+json", "image/png"}
    import base64

    png_pixels(base64.b64decode(bundle["image/png"]))


def test_a_figure_the_copier_cannot_draw_still_shows(monkeypatch):
    pio = pytest.importorskip("plotly.io")
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)

    def broken(fig_dict):
        raise ValueError("a trace type it does not know")

    monkeypatch.setattr(viz, "static_bundle", broken)
    viz.use_static_copies()
    with pytest.warns(UserWarning, match="no static copy"):
        bundle = pio.renderers._build_mime_bundle(go.Figure(go.Scatter(x=[0], y=[0])).to_dict())
    assert set(bundle) == {"application/vnd.plotly.v1+json"}
