"""Multi-process training through PyTorch's own launcher (gloo on CPU) and the CUDA path."""
import subprocess
import sys

import pytest
import torch

from spg_core.runs import load_run

pytestmark = pytest.mark.slow

TRAIN = ["train", "--backbone", "tiny", "--image-size", "64", "--synthetic-classes", "2",
         "--synthetic-train", "48", "--synthetic-val", "8", "--synthetic-test", "8", "--batch-size", "8",
         "--device", "cpu", "--threads", "1", "--max-steps-per-epoch", "2", "--guidance-warmup", "1"]


def torchrun(args, timeout=240):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "spg_core", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_torchrun_two_processes_gloo_and_resume(tmp_path):
    run = tmp_path / "run"
    first = torchrun([*TRAIN, "--epochs", "1", "--out", str(run)])
    assert first.returncode == 0, first.stderr[-3000:]
    model, config, info = load_run(run)  # same checkpoint format as single-process runs
    assert info["epoch"] == 1 and config.variant == "spg"
    second = torchrun([*TRAIN, "--epochs", "2", "--resume", "--out", str(run)])
    assert second.returncode == 0, second.stderr[-3000:]
    _, _, info = load_run(run)
    assert info["epoch"] == 2
    history = info["history"]
    # Counters are summed over both ranks: 2 steps x batch 8 x 2 processes.
    assert history[-1]["images"] == 32
    assert [h["guidance"] for h in history] == [False, True]
    # Only rank 0 wrote: one checkpoint, its replay, no stray temporary files.
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.yaml", "history.jsonl", "replay.npz"]
    from spg_core.replay import load_replay

    epochs = load_replay(run).epochs
    assert epochs[0] == 0 and epochs[-1] == 2 and (epochs[1:] > epochs[:-1]).all()  # resumed: no gap, no repeat


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_step_with_amp(tmp_path):
    from spg_core.config import TrainConfig
    from spg_core.train import train

    config = TrainConfig(format="synthetic", synthetic={"num_classes": 2, "num_train": 32, "num_val": 8,
                                                        "num_test": 8}, image_size=64, backbone="tiny",
                         epochs=1, batch_size=16, device="cuda", amp="auto", out=str(tmp_path / "run"))
    summary = train(config, progress=False)
    assert summary["images"] == 32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_evaluation_matches_cpu():
    from spg_core.models import build_model

    model = build_model("tiny", 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cpu = model(x)["class_maps"]
        gpu = model.cuda()(x.cuda())["class_maps"].cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3)
