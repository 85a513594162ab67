"""scripts/seed_analysis.py on a run trained from files (wsolevaluation layout, GT masks)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spg_core.config import TrainConfig
from spg_core.data.synthetic import SyntheticConfig, write_wsol
from spg_core.train import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "seed_analysis.py"


@pytest.mark.slow
def test_seed_analysis_reads_a_wsol_run_with_masks(tmp_path):
    data = write_wsol(tmp_path / "data", SyntheticConfig(image_size=64, num_classes=2, num_train=16, num_val=8,
                                                         num_test=4, part_look="mark"), progress=False)
    run = tmp_path / "run"
    train(TrainConfig(format="wsol", data_root=str(data), metadata_root=str(data / "metadata"), image_size=64,
                      backbone="tiny", variant="spg", epochs=1, batch_size=8, guidance_warmup=0, device="cpu",
                      amp="off", threads=1, out=str(run)), progress=False)
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--split", "val", "--limit", "8"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["images"] == 8 and report["object_from"] == "masks"
    assert set(report["stages"]) == {"mask_a", "mask_b2", "mask_fuse"}
    assert 0.0 < report["object_fraction_of_image"] < 1.0
    health = report["spg_c_health"]
    assert health["images"] == 8 and 0.0 <= health["hidden_relus_firing"] <= 1.0
    assert health["a3_max"] >= health["a3_mean"] >= 0.0  # A3 ends in a ReLU
    assert 0.0 < health["sigmoid_on_background"] < 1.0


def test_spg_c_health_sees_a_dead_spg_c():
    import torch

    from spg_core.models import build_model

    sys.path.insert(0, str(SCRIPT.parent))
    from seed_analysis import spg_c_health

    model = build_model("tiny", 2, "spg").eval()
    dataset = [{"image": torch.rand(3, 32, 32), "boxes": np.array([[4, 4, 20, 20]], np.float32)} for _ in range(3)]
    alive = spg_c_health(model, dataset)
    torch.nn.init.constant_(model.spg_c[-2][0].bias, -1e6)  # every hidden ReLU (the conv before the 1×1) off
    dead = spg_c_health(model, dataset)
    assert alive["hidden_relus_firing"] > 0.1 and dead["hidden_relus_firing"] == 0.0
    assert dead["sigmoid_on_object_boxes"] == dead["sigmoid_on_background"]  # a constant map
    assert spg_c_health(build_model("tiny", 2, "no-c").eval(), dataset) is None
