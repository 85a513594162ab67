"""benchmarks/gpu_check.sh and its report writer benchmarks/gpu_report.py: the report
from fake step outputs (fast), and the whole script at toy sizes on the CPU (minutes: only with
SPG_GPU_CHECK_TOY=1)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRITER = ROOT / "benchmarks" / "gpu_report.py"
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


@pytest.fixture(scope="module")
def gpu_report():
    spec = importlib.util.spec_from_file_location("gpu_report", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(spg_rate: float, plain_rate: float, spg_infer: float, plain_infer: float) -> dict:
    def variant(train, infer, flops):
        return {"train_images_per_s": train, "train_ms_per_image": 1000 / train, "inference_images_per_s": infer,
                "inference_ms_per_image": 1000 / infer, "train_peak_memory_gib": 20.5,
                "inference_peak_memory_gib": 6.25, "train_flops_per_image": flops, "inference_flops_per_image": 4e10,
                "train_tflops_per_s": flops * train / 1e12, "train_fraction_of_bf16_peak": flops * train / 1e12 / 989.4}

    return {"backbone": "inception_v3", "image_size": 224, "batch_size": 64, "device": "NVIDIA H100 80GB HBM3",
            "precision": "bfloat16", "threads": 16, "channels_last": True, "bf16_peak_tflops": 989.4,
            "spg": variant(spg_rate, spg_infer, 1.9e11), "plain": variant(plain_rate, plain_infer, 1.2e11),
            "train_time_ratio_spg_over_plain": plain_rate / spg_rate,
            "inference_time_ratio_spg_over_plain": plain_infer / spg_infer}


def fake_work(work: Path, toy: bool = False) -> None:
    """What gpu_check.sh leaves in its scratch folder, with made-up figures; lite0_cut failed."""
    (work / "logs").mkdir(parents=True)
    (work / "env.json").write_text(json.dumps({
        "date": "2026-12-07 12:00 UTC", "host": "gpu-box", "platform": "Linux", "python": "3.12.3",
        "torch": "2.11.0", "cpu_count": 16, "cuda": not toy, "toy": toy,
        **({} if toy else {"card": "NVIDIA H100 80GB HBM3", "cuda_version": "13.0"})}))
    (work / "steps.tsv").write_text("env\t0\t3.1\t30\nbench_inception_v3\t0\t41.5\t75\n"
                                    "bench_lite0_cut\t124\t75.0\t75\napp_forward\t0\t9.0\t45\n"
                                    "train_spg\t0\t70.2\t150\ntrain_plain\t0\t61.0\t150\ncuda_tests\t0\t20.0\t60\n"
                                    "eval_spg_attention\t0\t15.0\t45\neval_spg_fused\t0\t15.0\t45\n"
                                    "eval_plain_attention\t1\t2.0\t45\n")
    (work / "logs" / "bench_lite0_cut.log").write_text("warming up\nstill warming up\n")
    (work / "logs" / "eval_plain_attention.log").write_text("Traceback ...\nValueError: no checkpoint\n")
    (work / "bench_inception_v3.json").write_text(json.dumps(bench(2000.0, 2500.0, 9000.0, 9100.0)))
    (work / "app_forward.json").write_text(json.dumps({
        "run": "synthetic-spg", "device": "cuda", "images": 1000, "batch_size": 64, "image_size": 96,
        "backbone": "tiny", "variant": "spg", "threads": 16, "card": "NVIDIA H100 80GB HBM3", "load_seconds": 1.5,
        "forward_seconds": 0.25, "images_per_s": 4000.0, "images_per_s_with_loading": 571.4,
        "cpu_images_per_s": 800.0, "max_abs_logit_difference_vs_cpu": 3e-5}))
    teaching = work / "teaching"
    for variant, images in (("spg", 3000), ("plain", 3000)):
        (teaching / variant).mkdir(parents=True)
        (teaching / variant / "history.jsonl").write_text(
            "".join(json.dumps({"epoch": e, "images": images, "seconds": 6.0}) + "\n" for e in range(1, 9)))
    (teaching / "settings.json").write_text(json.dumps({"flags": "python -m spg_core train ...", "seed": 0}))
    (teaching / "eval-spg-attention").mkdir()
    (teaching / "eval-spg-attention" / "metrics.json").write_text(json.dumps(
        {"classification_top1": 60.1, "gt_known_loc": 51.25, "top1_loc": 20.0, "tau": 0.62}))
    (work / "cuda_tests.json").write_text(json.dumps({
        "command": "python -m pytest tests/test_distributed.py -k cuda", "passed": 2, "failed": 0, "errors": 0,
        "skipped": 0, "cases": [{"name": "tests.test_distributed::test_cuda_evaluation_matches_cpu",
                                 "outcome": "passed", "message": ""}]}))


def test_report_has_every_figure_and_the_goals(gpu_report, tmp_path):
    work = tmp_path / "work"
    fake_work(work)
    out = tmp_path / "reports" / "gpu.md"
    text = gpu_report.write_report(work, out, "bash benchmarks/gpu_check.sh")
    assert out.read_text() == text
    assert text.startswith("# GPU check: NVIDIA H100 80GB HBM3\n")
    assert "| date | 2026-12-07 12:00 UTC |" in text and "gpu-box: 16 CPU cores" in text
    assert "| command | `bash benchmarks/gpu_check.sh` |" in text
    # Throughput: rates, ratios, memory, FLOPs and the fraction of the bf16 peak.
    assert "| training images/s | 2,000.0 | 2,500.0 |" in text
    assert "| training ms per image | 0.500 | 0.400 | 1.250 |" in text
    assert "| training peak GPU memory (GiB) | 20.50 | 20.50 |" in text
    assert "| training GFLOP per image | 190.0 | 120.0 |" in text
    assert "| training FLOP rate / bf16 peak (989.4 TFLOP/s) | 0.384 |" in text
    # Goals: 2000 < 3000 missed, 1.25 <= 1.3 met, 9100/9000 = 1.011 <= 1.05 met.
    assert "| SPG training ≥ 3000 images/s | 2,000.0 | **not met** |" in text
    assert "| SPG / SPG-plain training time ≤ 1.3 | 1.250 | met |" in text
    assert "| SPG / SPG-plain inference time ≤ 1.05 | 1.011 | met |" in text
    # A timed-out step and a failed one are recorded, with their logs; the rest still reported.
    assert "| bench_lite0_cut | **timed out** (cap 75 s) |" in text
    assert "`lite0_cut`: no figures (**timed out** (cap 75 s))." in text
    assert "| eval_plain_attention | **failed** (exit status 1) |" in text
    assert "ValueError: no checkpoint" in text and "still warming up" in text
    # The app's forward, the teaching runs against the recorded CPU runs, the CUDA tests.
    assert "| forward images/s (images loaded before) | 4,000.0 |" in text
    assert "| spg | ok | 8 | 24000 | 48.0 | 500.0 |" in text
    assert "| spg | attention | ok | 60.1 / " in text and "| plain | attention | **failed** (exit status 1) | — / " in text
    assert "2 passed, 0 failed, 0 errors, 0 skipped" in text
    assert "(toy)" not in text


def test_toy_report_says_toy_and_judges_no_goal(gpu_report, tmp_path):
    work = tmp_path / "work"
    fake_work(work, toy=True)
    text = gpu_report.write_report(work, tmp_path / "gpu-toy.md", "GPU_CHECK_TOY=1 bash benchmarks/gpu_check.sh")
    assert text.startswith("# GPU check: cpu (toy)\n")
    assert "**Toy sizes**" in text
    assert text.count("n/a (toy sizes or no GPU)") == 3 and "**not met**" not in text


def test_junit_counts(gpu_report, tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="t" name="a"/>'
                   '<testcase classname="t" name="b"><skipped message="needs a CUDA GPU"/></testcase>'
                   '<testcase classname="t" name="c"><failure message="assert 1 == 2&#10;more"/></testcase>'
                   '</testsuite></testsuites>')
    counts = gpu_report.junit_counts(xml, "pytest")
    assert (counts["passed"], counts["skipped"], counts["failed"]) == (1, 1, 1)
    assert counts["cases"][2] == {"name": "t::c", "outcome": "failed", "message": "assert 1 == 2"}
    assert gpu_report.junit_counts(tmp_path / "missing.xml", "pytest") is None


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SPG_GPU_CHECK_TOY") != "1",
                    reason="the whole script at toy sizes takes minutes of CPU: SPG_GPU_CHECK_TOY=1 to run it")
def test_toy_run_end_to_end(tmp_path):
    """GPU_CHECK_TOY=1 bash benchmarks/gpu_check.sh runs every step at toy sizes (2-core CPU: ~3 min
    idle, ~7 min under other load)."""
    report = tmp_path / "gpu-toy.md"
    env = {**os.environ, "GPU_CHECK_TOY": "1", "GPU_CHECK_WORK": str(tmp_path / "work"),
           "GPU_CHECK_REPORT": str(report), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert "(toy)" in text and "**Toy sizes**" in text
    steps = (tmp_path / "work" / "steps.tsv").read_text().splitlines()
    assert len(steps) == 10 and all(line.split("\t")[1] == "0" for line in steps), steps
