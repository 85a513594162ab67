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
