import json

from spg_app.runs import DEFAULT_TAU, default_tau


def test_default_tau_reads_shipped_and_flat_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"paper": {"tau": 0.08}, "wsolevaluation": {}}))
    assert default_tau(tmp_path) == 0.08
    (tmp_path / "metrics.json").write_text(json.dumps({"tau": 0.3}))
    assert default_tau(tmp_path) == 0.3
    (tmp_path / "metrics.json").write_text(json.dumps({"protocol": "wsolevaluation"}))
    assert default_tau(tmp_path) == DEFAULT_TAU
