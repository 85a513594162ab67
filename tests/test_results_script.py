"""scripts/results.py: the table and SPG's paired gain over SPG-plain (no training here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "results.py"


@pytest.fixture(scope="module")
def results_script():
    spec = importlib.util.spec_from_file_location("results_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics(gt_known: float, maxbox: float, tau: float = 0.2) -> dict:
    return {"classification_top1": 100.0, "gt_known_loc": gt_known, "top1_loc": gt_known, "tau": tau,
            "maxboxacc_v2": maxbox}


def test_gain_is_paired_by_seed_and_skips_unpaired_seeds(results_script):
    results = {
        ("plain", "attention"): {0: metrics(10.0, 30.0), 1: metrics(20.0, 40.0)},
        ("spg", "attention"): {0: metrics(13.0, 29.0), 1: metrics(21.0, 44.0), 2: metrics(90.0, 90.0)},
        ("spg", "fused"): {0: metrics(15.0, 25.0)},
    }
    text = results_script.gains(results)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    # seed 2 has no SPG-plain partner and must not enter the mean: gains 3 and 1 -> 2.0 ± 1.0
    assert rows["attention"] == "| attention | default | 2 | 2.0 ± 1.0 | 1.5 ± 2.5 |"
    assert rows["fused"] == "| fused | default | 1 | 5.0 | -5.0 |"
    assert "shifted" not in text


def test_no_gain_table_without_both_models(results_script):
    assert results_script.gains({("spg", "attention"): {0: metrics(1.0, 2.0)}}) == ""


def test_table_reports_mean_and_spread_over_seeds(results_script):
    line = results_script.table({("spg", "attention"): {0: metrics(10.0, 30.0, 0.1), 1: metrics(14.0, 34.0, 0.3)}})
    assert "| spg | attention | 2 | 100.0 ± 0.0 | 12.0 ± 2.0 | 12.0 ± 2.0 | 32.0 ± 2.0 | 0.10, 0.30 | —, — |" in line


def test_table_lists_each_seeds_tau_window(results_script):
    windowed = {**metrics(30.0, 30.0), "gt_known_loc_tau_window": {"tau_low": 0.0, "tau_high": 0.04, "min": 0.0,
                                                                  "max": 33.8}}
    line = results_script.table({("spg", "fused"): {0: windowed, 1: metrics(14.0, 34.0)}})
    assert line.endswith("| 0.20, 0.20 | 0.0–33.8, — |")



def test_gain_per_named_benchmark(results_script):
    results = {
        ("plain [premise-holds]", "attention"): {0: metrics(10.0, 30.0)},
        ("spg [premise-holds]", "attention"): {0: metrics(25.0, 33.0)},
        ("plain [part-inside]", "attention"): {0: metrics(40.0, 50.0)},
        ("spg [part-inside]", "attention"): {0: metrics(38.0, 49.0)},
    }
    lines = results_script.gains(results).splitlines()[2:]
    assert lines == ["| attention | premise-holds | 1 | 15.0 | 3.0 |", "| attention | part-inside | 1 | -2.0 | -1.0 |"]


def test_keep_recorded_adds_only_the_scores_not_measured_again(results_script, tmp_path):
    import json

    recorded = tmp_path / "results.json"
    recorded.write_text(json.dumps([
        {"model": "plain [premise-holds]", "map": "attention", "seeds": {"0": metrics(10.0, 30.0), "1": metrics(12.0, 31.0)}},
        {"model": "spg [premise-holds]", "map": "attention", "seeds": {"0": metrics(25.0, 33.0)}},
    ]))
    results = {("plain [premise-holds]", "attention"): {1: metrics(50.0, 50.0)},
               ("plain [part-inside]", "attention"): {0: metrics(40.0, 50.0)}}
    kept = results_script.keep_recorded(results, recorded)
    assert kept == ["plain [premise-holds] / attention / seed 0", "spg [premise-holds] / attention / seed 0"]
    # the seed measured now wins over the recorded one; the earlier file's order first, new models after
    assert list(results) == [("plain [premise-holds]", "attention"), ("spg [premise-holds]", "attention"),
                             ("plain [part-inside]", "attention")]
    assert results[("plain [premise-holds]", "attention")][1]["gt_known_loc"] == 50.0
    assert results[("plain [premise-holds]", "attention")][0]["gt_known_loc"] == 10.0
    assert list(results[("plain [premise-holds]", "attention")]) == [0, 1]
    assert results_script.keep_recorded(results, tmp_path / "missing.json") == []


def test_table_only_names_why_a_run_is_skipped(results_script, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    (runs / "premise-holds" / "plain-s0").mkdir(parents=True)  # a folder without a checkpoint
    monkeypatch.setattr("sys.argv", ["results.py", "--config", str(SCRIPT.parents[1] / "configs" / "teaching.yaml"),
                                     "--benchmarks", "premise-holds",
                                     "--variants", "plain", "--seeds", "0", "1", "--runs-root", str(runs),
                                     "--out", str(tmp_path / "out"), "--table-only"])
    results_script.main()
    err = capsys.readouterr().err
    assert f"skipping {runs / 'premise-holds' / 'plain-s0'}: not trained to 8 epochs" in err
    assert f"skipping {runs / 'premise-holds' / 'plain-s1'}: no such run folder" in err
