import json

from spg_app.runs import DEFAULT_TAU, default_tau


def test_default_tau_reads_shipped_and_flat_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"paper": {"tau": 0.08}, "wsolevaluation": {}}))
    assert default_tau(tmp_path) == 0.08
    (tmp_path / "metrics.json").write_text(json.dumps({"tau": 0.3}))
    assert default_tau(tmp_path) == 0.3
    (tmp_path / "metrics.json").write_text(json.dumps({"protocol": "wsolevaluation"}))
    assert default_tau(tmp_path) == DEFAULT_TAU


def test_paired_run_names_the_other_half_of_a_pair():
    from spg_app.runs import paired_run

    assert paired_run("synthetic-spg") == "synthetic-plain" and paired_run("synthetic-plain") == "synthetic-spg"
    assert paired_run("premise-fails-plain") == "premise-fails-spg"
    for name in (None, "", "-spg", "my-run", "__current__"):
        assert paired_run(name) is None
