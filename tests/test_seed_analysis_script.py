"""scripts/seed_analysis.py on a run trained from files (wsolevaluation layout, GT masks)."""
import json
import subprocess
import sys
from pathlib import Path

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
