"""Reproduce the results tables (docs/results.md) on the teaching benchmark (CPU).

    make results                                    # = python scripts/results.py
    python scripts/results.py                       # SPG and SPG-plain seeds 0 1 2, ablations seed 0
    python scripts/results.py --variants spg plain --seeds 0
    python scripts/results.py --table-only          # re-evaluate existing runs only

Every variant gets the same data, epochs, seed and budget (configs/synthetic_tiny.yaml). τ is
chosen on the validation split and applied to the test split; MaxBoxAccV2 is the
wsolevaluation number (its own τ sweep, threshold-free by definition). Runs that already exist
are resumed, not retrained, and their scores are cached in RUN_DIR/scores.json. Each number's
GT-known Loc range within τ ± 0.02 is listed: a wide range marks a knife-edge τ. Writes
results/results.json and results/results.md (--out), the latter with SPG's paired gain over
SPG-plain (same seed) per map.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from spg_core.config import TrainConfig, load_config_file
from spg_core.evaluate import own_benchmark_metrics
from spg_core.train import epochs_done, train

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("plain", "spg", "no-cascade", "no-share", "no-c")
SCORES_VERSION = 2  # cached scores of another version are recomputed (2: τ window without τ = 0)
MAIN_VARIANTS = ("plain", "spg")  # these get --seeds; the ablations get --ablation-seeds
# A generator setting the models never trained on: every part on the top rim and heavier clutter.
SHIFTED = {"part_position": "top", "clutter": 1.0, "seed": 7}
COLUMNS = [("classification_top1", "Top-1 Cls"), ("gt_known_loc", "GT-known Loc"), ("top1_loc", "Top-1 Loc"),
           ("maxboxacc_v2", "MaxBoxAccV2")]


def run_config(base: dict, variant: str, seed: int, runs_root: Path) -> TrainConfig:
    return TrainConfig.from_dict({**base, "variant": variant, "seed": seed, "out": str(runs_root / f"{variant}-s{seed}")})


def score(run_dir: Path, stage: str = "attention", shifted: bool = False) -> dict:
    """The table's numbers for one run and map, cached in RUN_DIR/scores.json (recomputed when
    the checkpoint is newer than the cache)."""
    cache_file, key = run_dir / "scores.json", stage + (" shifted" if shifted else "")
    cache = {}
    if cache_file.is_file() and cache_file.stat().st_mtime >= (run_dir / "checkpoint.pt").stat().st_mtime:
        cache = json.loads(cache_file.read_text())
    if cache.get(key, {}).get("version") != SCORES_VERSION:
        both = own_benchmark_metrics(run_dir, stage, SHIFTED if shifted else None)
        paper, fair = both["paper"], both["wsolevaluation"]
        cache[key] = {**{k: paper[k] for k in ("classification_top1", "gt_known_loc", "top1_loc", "tau",
                                               "gt_known_loc_tau_window")},
                      "maxboxacc_v2": fair["maxboxacc_v2"], "maxboxacc_v2_per_iou": fair["maxboxacc_v2_per_iou"],
                      "version": SCORES_VERSION}
        cache_file.write_text(json.dumps(cache, indent=2))
    return cache[key]


def mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def table(results: dict) -> str:
    lines = ["| model | map | seeds | " + " | ".join(title for _, title in COLUMNS)
             + " | τ (val) | GT-known within τ ± 0.02 |",
             "|---|---|---|" + "---|" * len(COLUMNS) + "---|---|"]
    for (name, stage), per_seed in results.items():
        cells = [mean_spread([m[key] for m in per_seed.values()]) for key, _ in COLUMNS]
        taus = ", ".join(f"{m['tau']:.2f}" for m in per_seed.values())
        windows = ", ".join(f"{w['min']:.1f}–{w['max']:.1f}" if w else "—"
                            for w in (m.get("gt_known_loc_tau_window") for m in per_seed.values()))
        lines.append(f"| {name} | {stage} | {len(per_seed)} | " + " | ".join(cells) + f" | {taus} | {windows} |")
    return "\n".join(lines)


def gains(results: dict) -> str:
    """SPG minus SPG-plain (attention map, same seed), per SPG map and benchmark: mean ± spread.
    Models are named variant + suffix; each suffix (" (shifted benchmark)", " [premise-holds]", ...)
    is one benchmark, the empty one the config's own."""
    lines = ["| SPG map | benchmark | seeds | GT-known Loc gain | MaxBoxAccV2 gain |", "|---|---|---|---|---|"]
    suffixes = [name[len("plain"):] for name, stage in results if name.startswith("plain") and stage == "attention"]
    for suffix in sorted(set(suffixes), key=suffixes.index):
        benchmark = {"": "default", " (shifted benchmark)": "shifted"}.get(suffix, suffix.strip(" []()"))
        plain = results.get(("plain" + suffix, "attention"), {})
        for stage in ("attention", "fused", "c"):
            spg = results.get(("spg" + suffix, stage), {})
            seeds = sorted(set(plain) & set(spg))
            if not seeds:
                continue
            cells = [mean_spread([spg[s][key] - plain[s][key] for s in seeds]) for key in ("gt_known_loc", "maxboxacc_v2")]
            lines.append(f"| {stage} | {benchmark} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def keep_recorded(results: dict, recorded_file: Path) -> list[str]:
    """Add to ``results`` the scores in ``recorded_file`` (a results.json written before) of the
    runs this invocation did not score: run folders no longer on this machine, or seeds not asked
    for this time. Returns "model / map / seed" of each score kept; the table keeps the earlier
    file's order, new models after it."""
    if not recorded_file.is_file():
        return []
    merged: dict = {}
    kept = []
    for entry in json.loads(recorded_file.read_text()):
        key = (entry["model"], entry["map"])
        for seed, metrics in entry["seeds"].items():
            if int(seed) not in results.get(key, {}):
                merged.setdefault(key, {})[int(seed)] = metrics
                kept.append(f"{key[0]} / {key[1]} / seed {seed}")
            else:
                merged.setdefault(key, {})
    for key, per_seed in results.items():
        merged.setdefault(key, {}).update(per_seed)
    results.clear()
    results.update({key: dict(sorted(per_seed.items())) for key, per_seed in merged.items()})
    return kept


def main() -> None:
    from spg_core.data.synthetic import BENCHMARK_VARIANTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "synthetic_tiny.yaml"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of SPG and SPG-plain")
    parser.add_argument("--ablation-seeds", nargs="+", type=int, default=[0], help="seeds of the ablations")
    parser.add_argument("--benchmarks", nargs="+", choices=sorted(BENCHMARK_VARIANTS), default=None,
                        help="named benchmark variants to train and score on (default: the config's own "
                             "generator settings, plus the shifted benchmark)")
    parser.add_argument("--ablation-benchmarks", nargs="+", choices=sorted(BENCHMARK_VARIANTS), default=None,
                        help="benchmarks the ablations run on (default: the first of --benchmarks)")
    parser.add_argument("--runs-root", default=str(ROOT / "results" / "runs"))
    parser.add_argument("--out", default=str(ROOT / "results"))
    parser.add_argument("--table-only", action="store_true", help="evaluate existing runs, train nothing")
    parser.add_argument("--keep-recorded", action="store_true",
                        help="keep the scores OUT/results.json already holds for runs not scored this time (run "
                             "folders that are gone, seeds not asked for); results.md lists them")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. threads=1 (the tables' runs: the thread count changes a "
                             "run's floating-point sums and so what it learns; compare runs trained alike)")
    args = parser.parse_args()
    base = load_config_file(args.config)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r} must look like KEY=VALUE")
        base[key.replace("-", "_")] = yaml.safe_load(value)
    runs_root = Path(args.runs_root)
    # (suffix of the model names, runs folder, generator options over the config's, score shifted?)
    benchmarks = [("", runs_root, {}, True)]
    if args.benchmarks:
        benchmarks = [(f" [{name}]", runs_root / name, BENCHMARK_VARIANTS[name], False) for name in args.benchmarks]
    ablation_benchmarks = set(args.ablation_benchmarks or (args.benchmarks or [])[:1])
    results: dict = {}
    for suffix, folder, options, with_shifted in benchmarks:
        config_values = {**base, "synthetic": {**base.get("synthetic", {}), **options}}
        for variant in args.variants:
            main_variant = variant in MAIN_VARIANTS
            if not main_variant and args.benchmarks and suffix.strip(" []") not in ablation_benchmarks:
                continue
            for seed in (args.seeds if main_variant else args.ablation_seeds):
                config = run_config(config_values, variant, seed, folder)
                if not args.table_only and epochs_done(config.out) < config.epochs:
                    train(config, resume=True)
                if epochs_done(config.out) < config.epochs:
                    why = f"not trained to {config.epochs} epochs" if Path(config.out).is_dir() else "no such run folder"
                    print(f"skipping {config.out}: {why}", file=sys.stderr)
                    continue
                stages = ["attention"] + (["fused", "c"] if variant == "spg" else [])
                for stage in stages:
                    for shifted in (False, True) if with_shifted else (False,):
                        name = variant + suffix + (" (shifted benchmark)" if shifted else "")
                        metrics = score(Path(config.out), stage, shifted)
                        results.setdefault((name, stage), {})[seed] = metrics
                        print(name, stage, seed, json.dumps(metrics), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kept = keep_recorded(results, out / "results.json") if args.keep_recorded else []
    (out / "results.json").write_text(json.dumps(
        [{"model": n, "map": s, "seeds": {str(k): v for k, v in m.items()}} for (n, s), m in results.items()],
        indent=2))
    paired = gains(results)
    text = table(results) + ("\n\nSPG − SPG-plain, paired by seed:\n\n" + paired if paired else "")
    if kept:
        text += ("\n\nScores kept from the previous results.json (`--keep-recorded`; their runs were not scored "
                 "this time): " + "; ".join(kept) + ".")
    (out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
