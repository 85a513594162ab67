"""Package a trained synthetic-benchmark run as an embedded default (spg_core/checkpoints/NAME).

    python scripts/ship_run.py results/runs/spg-s0 synthetic-spg
    python scripts/ship_run.py --showcase-only synthetic-spg    # only (re)write metrics.json's showcase_index
    python scripts/ship_run.py --evaluation-only synthetic-spg  # only (re)write evaluation.json.gz (any RUN_DIR too)

Writes a slim checkpoint.pt (weights, config, class names, history; no optimiser state, so it
stays small), config.yaml, the run's training replay (replay.npz) if it has one, metrics.json
(both protocols on the run's own test split, τ from val) — tests/test_shipped_runs.py re-evaluates
and checks metrics.json to 0.1 points — and evaluation.json.gz, the results the app's Dataset and
Failure triage pages open with (``spg_app.precomputed``: computed by the pages' own functions at
their default settings, for this checkpoint).
"""
import json
import shutil
import sys
from pathlib import Path


from spg_app.precomputed import write_evaluation
from spg_core.checkpoint import atomic_save, read_checkpoint
from spg_core.config import TrainConfig, save_config
from spg_core.data.settings import DataSettings
from spg_core.evaluate import evaluate, own_benchmark_metrics
from spg_core.replay import REPLAY_FILE
from spg_core.runs import SHIPPED_DIR, load_run

KEEP = ("model", "epoch", "config", "num_classes", "class_names", "history")


def showcase_index(run, tau: float, limit: int = 200) -> int | None:
    """The test image (of the first ``limit``) on which the guidance visibly grows: correctly
    classified, its attention box overlapping the object (IoU > 0.1), and the largest gain in box
    IoU from the attention map to the fused guidance map (both at the run's τ). What the app's
    explore page opens on. None for SPG-plain."""
    model, config, _ = load_run(run)
    if model.variant == "plain":
        return None
    test = DataSettings.from_config(config).with_synthetic(num_test=limit).dataset("test")
    rows = {stage: evaluate(model, test, tau=tau, map_stage=stage, progress=False)[1] for stage in ("attention", "fused")}
    gains = [(fused["iou"] - attention["iou"], index) for index, (attention, fused)
             in enumerate(zip(rows["attention"], rows["fused"]))
             if attention["prediction"] == attention["label"] and attention["iou"] > 0.1]
    return max(gains)[1] if gains else None


def main(run_dir: str, name: str) -> None:
    state = read_checkpoint(Path(run_dir) / "checkpoint.pt")
    state["config"]["out"] = f"spg_core/checkpoints/{name}"
    target = SHIPPED_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    atomic_save({k: state[k] for k in KEEP}, target / "checkpoint.pt")
    save_config(TrainConfig.from_dict(state["config"]), target / "config.yaml")
    replay = Path(run_dir) / REPLAY_FILE
    if replay.is_file():  # the training replay travels with the run (the app's Training page)
        shutil.copyfile(replay, target / REPLAY_FILE)
    metrics = own_benchmark_metrics(target)
    metrics["command"] = f"python scripts/ship_run.py {run_dir} {name}"
    metrics["showcase_index"] = showcase_index(target, metrics["paper"]["tau"])
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_evaluation(target, command=f"python scripts/ship_run.py --evaluation-only {name}")  # needs metrics.json's τ
    size = (target / "checkpoint.pt").stat().st_size / 2**20
    print(f"shipped {run_dir} as {target} ({size:.1f} MB)")
    print(json.dumps({k: metrics["paper"].get(k) for k in ("classification_top1", "gt_known_loc", "top1_loc", "tau")}))


def write_showcase(name: str) -> None:
    path = SHIPPED_DIR / name / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["showcase_index"] = showcase_index(SHIPPED_DIR / name, metrics["paper"]["tau"])
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{name}: showcase_index {metrics['showcase_index']}")


if __name__ == "__main__":
    if sys.argv[1] == "--showcase-only":
        write_showcase(sys.argv[2])
    elif sys.argv[1] == "--evaluation-only":
        write_evaluation(sys.argv[2], command=f"python scripts/ship_run.py --evaluation-only {sys.argv[2]}")
    else:
        main(*sys.argv[1:3])
