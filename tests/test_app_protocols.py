"""The Dataset page's protocol switchboard (spg_app.protocol_panel), driven headless with AppTest
on a tiny run of tests/app_runs.py that has a val split to choose τ on."""
from __future__ import annotations


import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from test_app import start  # noqa: E402

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_tiny_run(tmp_path_factory.mktemp("protocol-runs") / "tiny-spg", "spg", num_val=8)


def shown(at: AppTest) -> tuple[str, dict]:
    """The switchboard's label line and its table's first row."""
    label = next(m.value for m in at.markdown if m.value.startswith("**"))
    table = next(frame.value for frame in at.dataframe if "value (%)" in frame.value.columns)
    return label, table.iloc[0].to_dict()


def test_switches_change_the_label_and_the_numbers(run):
    at = start(run, page="dataset", eval_n=12)
    at.button(key="protocol_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    label, row = shown(at)
    assert label.startswith("**paper/CAM GT-known Loc**") and "held-out" in label
    assert row["protocol"] == "paper/CAM GT-known Loc" and row["images"] == 12
    assert "val" in row["τ from"] and "val @ IoU 50 (%)" in row
    seen = {(label, row["value (%)"])}

    at.radio(key="protocol_tau").set_value("oracle").run()
    label, row = shown(at)
    assert label.startswith("**custom**") and "oracle" in label
    assert any("upper bound" in w.value for w in at.warning)
    assert "oracle" in row["τ from"]

    at.radio(key="protocol_iou_set").set_value("0.3/0.5/0.7").run()
    label, row = shown(at)
    # One switch from MaxBoxAccV2 now: named after it, with what differs.
    assert "MaxBoxAccV2 with the largest component" in label and "upper bound" in label
    assert {"IoU 30 (%)", "IoU 70 (%)", "τ @ IoU 70"} <= set(row)
    seen.add((label, row["value (%)"]))

    at.radio(key="protocol_box_rule").set_value("all_contours").run()
    label, row = shown(at)
    assert label.startswith("**wsolevaluation MaxBoxAccV2**")
    assert not any("upper bound" in w.value for w in at.warning)  # WE's own definition, said as such
    seen.add((label, row["value (%)"]))
    assert len({value for _, value in seen}) >= 2, seen  # the numbers move, not only the label

    at.button(key="protocol_preset_maxboxacc").click().run()
    assert at.radio(key="protocol_box_rule").value == "largest_contour"
    assert at.radio(key="protocol_iou_set").value == "0.5"
    label, row = shown(at)
    assert label.startswith("**wsolevaluation MaxBoxAcc**")
    assert len(at.get("plotly_chart")) >= 1
    assert not at.exception, [e.message for e in at.exception]


def test_protocol_figure_draws_each_iou_its_val_curve_and_its_tau():
    import numpy as np

    from spg_app.figures import protocol_figure
    from spg_core import protocol_options as P

    rng = np.random.default_rng(0)
    gt = {f"{s}{i}": (np.array([[10, 10, 60, 50]]), (80, 70)) for s in "tv" for i in range(4)}
    report, held_out = (P.MapSet.from_maps([(f"{s}{i}", rng.random((7, 7))) for i in range(4)],
                                           {k: v for k, v in gt.items() if k.startswith(s)}, split)
                        for s, split in (("t", "test"), ("v", "val")))
    result = P.score_protocol(report, P.ProtocolOptions(iou_set=(0.3, 0.5, 0.7)), held_out)
    fig = protocol_figure([("run", result)])
    assert len(fig.data) == 3 * 3  # per IoU: the test curve, the val curve, the chosen τ
    markers = [trace for trace in fig.data if trace.mode == "markers"]
    assert [m.x[0] for m in markers] == [e["tau"] for e in result["per_iou"]]
    assert "custom" in fig.layout.title.text
