"""The pieces of benchmarks/gpu_check.sh written in Python: the machine's description, the app's
server forward, and the report that assembles every step's JSON into one Markdown file.

    python benchmarks/gpu_report.py env --out WORK/env.json
    python benchmarks/gpu_report.py app-forward --images 1000 --device cuda --out WORK/app_forward.json
    python benchmarks/gpu_report.py write --work WORK --out benchmarks/reports/gpu.md --command "..."

``write`` needs neither torch nor a GPU: it reads what the steps left in WORK (steps.tsv, the
JSON files named below, the logs of failed steps) and writes every figure it finds, a missing
or failed step as such, and whether each goal is met. The recorded CPU runs the teaching runs are
compared with are read from results/teaching/results.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Goals (H100, bf16): SPG Inception-v3 at 224 training images/s, SPG/SPG-plain
# training-time and inference-time ratios.
TRAIN_RATE_GOAL = 3000.0
TRAIN_RATIO_GOAL = 1.3
INFERENCE_RATIO_GOAL = 1.05
PAPER_TEST_MS = {"spg": 15.8, "plain": 15.1}  # paper §4: ms per image at test

BACKBONES = ("inception_v3", "lite0_cut")
VARIANTS = ("spg", "plain")
# (variant, map) of the teaching evaluations: folder WORK/teaching/eval-<variant>-<map>
TEACHING_EVALS = (("spg", "attention"), ("spg", "fused"), ("plain", "attention"))
# The recorded CPU runs (make results: configs/teaching.yaml on its own premise-holds generator).
RECORDED_MODELS = {"spg": "spg [premise-holds]", "plain": "plain [premise-holds]"}
METRICS = (("classification_top1", "Top-1 Cls"), ("gt_known_loc", "GT-known Loc"), ("top1_loc", "Top-1 Loc"))


# ----------------------------------------------------------------------------- env
def machine_info(toy: bool) -> dict:
    import torch

    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
        "toy": toy,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(card=torch.cuda.get_device_name(0), gpu_memory_gib=props.total_memory / 2**30,
                    multiprocessors=props.multi_processor_count, cuda_version=torch.version.cuda,
                    bf16=torch.cuda.is_bf16_supported())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if smi.returncode == 0:
            info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# ----------------------------------------------------------------------------- app-forward
def app_forward(run: str, images: int, batch_size: int, device: str, threads: int | None,
                compare_cpu: bool) -> dict:
    """What the app's server does at start for its default run (spg_app.loaders.fill_outputs_ahead,
    without streamlit): the first ``images`` images of the run's test split, loaded, then
    ``Localizer.forward_many`` in batches of ``batch_size``. Times the loading and the forward
    apart; with ``compare_cpu`` also the same forward on the CPU, and the largest logit difference."""
    import torch

    from spg_core.data.settings import DataSettings
    from spg_core.localize import Localizer
    from spg_core.runs import load_run
    from spg_core.train import resolve_device

    if threads:
        torch.set_num_threads(threads)
    target = resolve_device(device)

    def sync():
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    model, config, info = load_run(run, "cpu")
    dataset = DataSettings.from_flags(config).dataset("test")  # the split serve.warm_default_run fills
    count = min(int(images), len(dataset))
    start = time.perf_counter()
    pictures = [dataset.load_sample(i).image for i in range(count)]
    load_seconds = time.perf_counter() - start
    localizer = Localizer(model, config.image_size, info["class_names"], target, config.preset)
    localizer.forward_many(pictures[:batch_size], batch_size)  # warm-up: kernels, cudnn, allocator
    sync()
    start = time.perf_counter()
    outputs = localizer.forward_many(pictures, batch_size)
    sync()
    forward_seconds = time.perf_counter() - start
    result = {
        "run": str(run), "device": str(target), "images": count, "batch_size": batch_size,
        "image_size": config.image_size, "backbone": config.backbone, "variant": config.variant,
        "threads": torch.get_num_threads(),
        "card": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
        "load_seconds": load_seconds, "forward_seconds": forward_seconds,
        "images_per_s": count / forward_seconds,
        "images_per_s_with_loading": count / (load_seconds + forward_seconds),
    }
    if compare_cpu and target.type != "cpu":
        cpu = Localizer(load_run(run, "cpu")[0], config.image_size, info["class_names"], "cpu", config.preset)
        cpu.forward_many(pictures[:batch_size], batch_size)
        start = time.perf_counter()
        cpu_outputs = cpu.forward_many(pictures, batch_size)
        cpu_seconds = time.perf_counter() - start
        result["cpu_images_per_s"] = count / cpu_seconds
        result["max_abs_logit_difference_vs_cpu"] = max(
            float((a["logits"] - b["logits"]).abs().max()) for a, b in zip(outputs, cpu_outputs))
    return result


# ----------------------------------------------------------------------------- write
def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_steps(work: Path) -> dict[str, dict]:
    """steps.tsv: one line per step, name TAB exit status TAB seconds TAB cap (seconds)."""
    steps: dict[str, dict] = {}
    path = work / "steps.tsv"
    if not path.is_file():
        return steps
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        name, rc, seconds, cap = parts[:4]
        steps[name] = {"rc": rc, "seconds": float(seconds) if seconds else None, "cap": cap}
    return steps


def step_state(step: dict | None) -> str:
    if step is None:
        return "not run"
    rc = step["rc"]
    if rc == "0":
        return "ok"
    if rc == "skipped":
        return "skipped (the time budget was spent)"
    if rc in ("124", "137"):
        return f"**timed out** (cap {step['cap']} s)"
    return f"**failed** (exit status {rc})"


def fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def verdict(value, goal: float, at_least: bool, applies: bool) -> str:
    if value is None:
        return "not measured"
    if not applies:
        return "n/a (toy sizes or no GPU)"
    met = value >= goal if at_least else value <= goal
    return "met" if met else "**not met**"


def log_tail(work: Path, name: str, lines: int = 15) -> str:
    path = work / "logs" / f"{name}.log"
    if not path.is_file():
        return "(no log)"
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(tail) if tail else "(empty log)"


def bench_section(work: Path, steps: dict) -> tuple[list[str], dict]:
    lines = ["## 1. Training and inference throughput (benchmarks/bench_train.py)", ""]
    benches = {name: read_json(work / f"bench_{name}.json") for name in BACKBONES}
    for name in BACKBONES:
        bench = benches[name]
        state = step_state(steps.get(f"bench_{name}"))
        if not bench:
            lines += [f"`{name}`: no figures ({state}).", ""]
            continue
        lines += [f"`{name}` at {bench['image_size']} px, batch {bench['batch_size']}, {bench['precision']}, "
                  f"channels_last {str(bench['channels_last']).lower()}, on {bench['device']} "
                  f"(step {state}):", ""]
        lines += ["| | SPG | SPG-plain | SPG / plain |", "|---|---|---|---|"]
        spg, plain = bench.get("spg", {}), bench.get("plain", {})

        def row(title, key, digits=1, scale=1.0, ratio=None, spg=spg, plain=plain):
            a, b = spg.get(key), plain.get(key)
            a = a * scale if a is not None else None
            b = b * scale if b is not None else None
            r = ratio if ratio is not None else (a / b if a is not None and b else None)
            return f"| {title} | {fmt(a, digits)} | {fmt(b, digits)} | {fmt(r, 3)} |"

        lines += [
            row("training images/s", "train_images_per_s"),
            row("training ms per image", "train_ms_per_image", 3,
                ratio=bench.get("train_time_ratio_spg_over_plain")),
            row("inference images/s", "inference_images_per_s"),
            row("inference ms per image (paper at test: 15.8 vs 15.1)", "inference_ms_per_image", 3,
                ratio=bench.get("inference_time_ratio_spg_over_plain")),
            row("training peak GPU memory (GiB)", "train_peak_memory_gib", 2),
            row("inference peak GPU memory (GiB)", "inference_peak_memory_gib", 2),
            row("training GFLOP per image", "train_flops_per_image", 1, 1e-9),
            row("inference GFLOP per image", "inference_flops_per_image", 1, 1e-9),
            row("training TFLOP/s", "train_tflops_per_s", 2),
            row(f"training FLOP rate / bf16 peak ({fmt(bench.get('bf16_peak_tflops'), 1)} TFLOP/s)",
                "train_fraction_of_bf16_peak", 3),
        ]
        lines.append("")
    profile = work / "profile_inception_v3.txt"
    if profile.is_file():
        lines += ["The operator profile of a few SPG Inception-v3 training steps is in "
                  f"`{profile.name}` beside the JSON files; its top rows:", "", "```"]
        lines += profile.read_text(errors="replace").splitlines()[:18]
        lines += ["```", ""]
    return lines, benches


def app_section(work: Path, steps: dict) -> list[str]:
    lines = ["## 2. The app's server forward (the default run's outputs computed ahead)", ""]
    app = read_json(work / "app_forward.json")
    if not app:
        return lines + [f"No figures ({step_state(steps.get('app_forward'))}).", ""]
    lines += [f"Run `{app['run']}` ({app['backbone']}, {app['variant']}, {app['image_size']} px), the first "
              f"{app['images']} images of its test split, `Localizer.forward_many` in batches of "
              f"{app['batch_size']} on {app['card']} ({app['device']}), as `spg_app.loaders.fill_outputs_ahead` "
              "runs it at server start:", "",
              "| figure | value |", "|---|---|",
              f"| forward images/s (images loaded before) | {fmt(app.get('images_per_s'))} |",
              f"| images/s with generating the images | {fmt(app.get('images_per_s_with_loading'))} |",
              f"| generating the images (s) | {fmt(app.get('load_seconds'), 2)} |"]
    if "cpu_images_per_s" in app:
        lines += [f"| the same forward on this machine's CPU, images/s ({app['threads']} threads) | "
                  f"{fmt(app['cpu_images_per_s'])} |",
                  f"| largest logit difference, device vs CPU | {app['max_abs_logit_difference_vs_cpu']:.2e} |"]
    return lines + [""]


def recorded_cpu_runs() -> dict:
    """{variant: {"seeds": {seed: metrics}}} of the recorded CPU runs (attention map)."""
    recorded = read_json(ROOT / "results" / "teaching" / "results.json") or []
    out: dict = {}
    for entry in recorded:
        for variant, model in RECORDED_MODELS.items():
            if entry.get("model") == model:
                out.setdefault(variant, {})[entry.get("map")] = entry.get("seeds", {})
    return out


def teaching_section(work: Path, steps: dict, toy: bool) -> list[str]:
    lines = ["## 3. The teaching recipe (configs/teaching.yaml), SPG and SPG-plain", ""]
    teaching = work / "teaching"
    settings = read_json(teaching / "settings.json") or {}
    if settings:
        lines += [f"Trained with `{settings.get('flags', '')}`.", ""]
    lines += ["| variant | training | epochs | training images | training s | images/s |", "|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        history = []
        path = teaching / variant / "history.jsonl"
        if path.is_file():
            history = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        images = sum(h.get("images", 0) for h in history)
        seconds = sum(h.get("seconds", 0.0) for h in history)
        lines.append(f"| {variant} | {step_state(steps.get(f'train_{variant}'))} | {len(history)} | {images} | "
                     f"{fmt(seconds if history else None, 1)} | {fmt(images / seconds if seconds else None)} |")
    lines += ["", "Test split, τ chosen on the validation split (`python -m spg_core evaluate`, paper protocol), "
              "beside the recorded CPU runs (results/teaching/results.json, `[premise-holds]`, "
              f"seed {settings.get('seed', 0)} and the mean of all recorded seeds):", ""]
    recorded = recorded_cpu_runs()
    seed = str(settings.get("seed", 0))
    lines += ["| variant | map | evaluation | " + " | ".join(f"{t} (this run / CPU seed {seed} / CPU mean)"
                                                            for _, t in METRICS) + " | τ |",
              "|---|---|---|" + "---|" * len(METRICS) + "---|"]
    for variant, stage in TEACHING_EVALS:
        name = f"eval_{variant}_{stage}"
        metrics = read_json(teaching / f"eval-{variant}-{stage}" / "metrics.json") or {}
        seeds = recorded.get(variant, {}).get(stage, {})
        cells = []
        for key, _ in METRICS:
            ours = metrics.get(key)
            cpu_seed = seeds.get(seed, {}).get(key)
            values = [m[key] for m in seeds.values() if key in m]
            mean = sum(values) / len(values) if values else None
            cells.append(f"{fmt(ours)} / {fmt(cpu_seed)} / {fmt(mean)}")
        lines.append(f"| {variant} | {stage} | {step_state(steps.get(name))} | " + " | ".join(cells)
                     + f" | {fmt(metrics.get('tau'), 2)} |")
    if toy:
        lines += ["", "Toy sizes: these runs are far smaller than the recorded ones, so their scores are not "
                  "comparable; the table only shows that the steps run."]
    return lines + [""]


def tests_section(work: Path, steps: dict) -> list[str]:
    lines = ["## 4. The CUDA-only tests", ""]
    counts = read_json(work / "cuda_tests.json")
    state = step_state(steps.get("cuda_tests"))
    if not counts:
        return lines + [f"No result ({state}).", ""]
    lines += [f"`{counts.get('command', '')}`: {counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
              f"{counts.get('errors', 0)} errors, {counts.get('skipped', 0)} skipped (step {state})."]
    for case in counts.get("cases", []):
        lines.append(f"- `{case['name']}`: {case['outcome']}" + (f" ({case['message']})" if case.get("message") else ""))
    return lines + [""]


def junit_counts(path: Path, command: str) -> dict | None:
    """Counts and per-test outcomes of a pytest --junitxml file."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts = {"command": command, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "cases": []}
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for child, name in (("failure", "failed"), ("error", "errors"), ("skipped", "skipped")):
            found = case.find(child)
            if found is not None:
                outcome = name
                message = (found.get("message") or "").strip().splitlines()[:1]
                message = message[0][:200] if message else ""
                break
        counts[outcome] += 1
        counts["cases"].append({"name": f"{case.get('classname', '')}::{case.get('name', '')}",
                                "outcome": outcome, "message": message})
    return counts


def goals_section(benches: dict, gpu: bool) -> list[str]:
    inception = benches.get("inception_v3") or {}
    full_size = (inception.get("image_size") == 224 and inception.get("batch_size") == 64
                 and inception.get("precision") == "bfloat16")
    applies = gpu and full_size
    rate = (inception.get("spg") or {}).get("train_images_per_s")
    train_ratio = inception.get("train_time_ratio_spg_over_plain")
    infer_ratio = inception.get("inference_time_ratio_spg_over_plain")
    return ["## Goals (H100, bf16, Inception-v3 at 224, batch 64)", "",
            "| goal | measured | verdict |", "|---|---|---|",
            f"| SPG training ≥ {TRAIN_RATE_GOAL:.0f} images/s | {fmt(rate)} | "
            f"{verdict(rate, TRAIN_RATE_GOAL, True, applies)} |",
            f"| SPG / SPG-plain training time ≤ {TRAIN_RATIO_GOAL} | {fmt(train_ratio, 3)} | "
            f"{verdict(train_ratio, TRAIN_RATIO_GOAL, False, applies)} |",
            f"| SPG / SPG-plain inference time ≤ {INFERENCE_RATIO_GOAL} | {fmt(infer_ratio, 3)} | "
            f"{verdict(infer_ratio, INFERENCE_RATIO_GOAL, False, applies)} |", ""]


def write_report(work: Path, out: Path, command: str) -> str:
    work = Path(work)
    env = read_json(work / "env.json") or {}
    steps = read_steps(work)
    toy = bool(env.get("toy"))
    gpu = bool(env.get("cuda"))
    card = env.get("card") or "cpu"
    title = f"{card} (toy)" if toy else card
    lines = [f"# GPU check: {title}", "",
             "Written by `benchmarks/gpu_check.sh` through `benchmarks/gpu_report.py write`.", "",
             "| | |", "|---|---|",
             f"| card | {title} |",
             f"| date | {env.get('date', '—')} |",
             f"| machine | {env.get('host', '—')}: {env.get('cpu_count', '—')} CPU cores, {env.get('platform', '—')} |",
             f"| software | Python {env.get('python', '—')}, torch {env.get('torch', '—')}"
             + (f", CUDA {env['cuda_version']}" if env.get("cuda_version") else "") + " |"]
    if env.get("nvidia_smi"):
        lines.append(f"| nvidia-smi | {env['nvidia_smi']} |")
    lines += [f"| command | `{command}` |", f"| scratch folder | `{work}` |", ""]
    if toy:
        lines += ["**Toy sizes** (`GPU_CHECK_TOY=1`): every figure below comes from tiny batches, images and "
                  "step counts, only to show that each step runs; none is a measurement.", ""]
    lines += ["## Steps", "", "| step | state | seconds | cap (s) |", "|---|---|---|---|"]
    for name, step in steps.items():
        lines.append(f"| {name} | {step_state(step)} | {fmt(step['seconds'], 1)} | {step['cap']} |")
    lines.append("")
    section, benches = bench_section(work, steps)
    lines += goals_section(benches, gpu) + section
    lines += app_section(work, steps) + teaching_section(work, steps, toy) + tests_section(work, steps)
    failed = [name for name, step in steps.items() if step["rc"] != "0"]
    if failed:
        lines += ["## Logs of the steps that did not finish", ""]
        for name in failed:
            lines += [f"`{name}` (logs/{name}.log, last lines):", "", "```", log_tail(work, name), "```", ""]
    text = "\n".join(lines).rstrip() + "\n"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env", help="describe the machine (JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--toy", action="store_true")
    p = sub.add_parser("app-forward", help="the app's server forward on the default run's test split (JSON)")
    p.add_argument("--run", default="synthetic-spg")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-compare-cpu", dest="compare_cpu", action="store_false")
    p.add_argument("--out", required=True)
    p = sub.add_parser("junit", help="counts of a pytest --junitxml file (JSON)")
    p.add_argument("xml")
    p.add_argument("--pytest-command", default="", help="the pytest command line, shown in the report")
    p.add_argument("--out", required=True)
    p = sub.add_parser("write", help="assemble WORK's JSON files into the Markdown report")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--command", dest="run_command", default="bash benchmarks/gpu_check.sh")
    args = parser.parse_args(argv)
    if args.command == "env":
        result = machine_info(args.toy)
    elif args.command == "app-forward":
        result = app_forward(args.run, args.images, args.batch_size, args.device, args.threads, args.compare_cpu)
    elif args.command == "junit":
        result = junit_counts(Path(args.xml), args.pytest_command)
        if result is None:
            print(f"{args.xml}: no readable junit XML", file=sys.stderr)
            return 1
    else:
        write_report(Path(args.work), Path(args.out), args.run_command)
        print(f"wrote {args.out}")
        return 0
    text = json.dumps(result, indent=2)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
