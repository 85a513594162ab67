"""Validation scores of trained runs: what a setting is chosen on (never the test split).

    python scripts/val_scores.py RUN_DIR [RUN_DIR ...]

For every map a run has (SPG: the attention map A4, the fused guidance and SPG-C; SPG-plain: A4)
on the run's own validation split: Top-1 classification, GT-known Loc at the τ that is best on
that same split (labelled oracle: a selection figure, not a result to report as a test score)
and wsolevaluation's MaxBoxAccV2 (τ-free). Cached in RUN_DIR/val_scores.json next to the
checkpoint, so comparing many runs costs one evaluation each.
"""
import argparse
import json
from pathlib import Path

from spg_core.data.settings import DataSettings
from spg_core.evaluate import evaluate
from spg_core.runs import load_run, resolve_run

CACHE = "val_scores.json"


def val_scores(run) -> dict:
    """{map: {"classification_top1", "gt_known_loc_oracle_tau", "maxboxacc_v2"}} on the run's val split."""
    folder = resolve_run(run)
    cache = folder / CACHE
    checkpoint_time = (folder / "checkpoint.pt").stat().st_mtime
    if cache.exists() and cache.stat().st_mtime >= checkpoint_time:
        return json.loads(cache.read_text())
    model, config, _ = load_run(folder)
    val = DataSettings.from_config(config).dataset("val")
    stages = ("attention",) if config.variant == "plain" else ("attention", "fused", "c")
    out = {}
    for stage in stages:
        if stage == "c" and model.spg_c is None:
            continue
        paper, _, _ = evaluate(model, val, protocol="paper", tau="oracle", map_stage=stage)
        fair, _, _ = evaluate(model, val, protocol="wsolevaluation", map_stage=stage)
        out[stage] = {"classification_top1": paper["classification_top1"],
                      "gt_known_loc_oracle_tau": paper["gt_known_loc"], "maxboxacc_v2": fair["maxboxacc_v2"]}
    cache.write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run in args.runs:
        scores = val_scores(run)
        cells = " · ".join(f"{stage} {s['gt_known_loc_oracle_tau']:.1f} / {s['maxboxacc_v2']:.1f}"
                           for stage, s in scores.items())
        print(f"{run}: GT-known (oracle τ) / MaxBoxAccV2 on val — {cells}")


if __name__ == "__main__":
    main()
