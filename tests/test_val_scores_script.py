"""scripts/val_scores.py: validation scores of runs, cached next to the checkpoint."""
import json
import subprocess
import sys
from pathlib import Path

from test_train import small_config
from spg_core.train import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "val_scores.py"


def test_val_scores_of_an_spg_and_a_plain_run_are_cached(tmp_path):
    runs = []
    for variant in ("spg", "plain"):
        config = small_config(tmp_path, variant=variant, epochs=1, guidance_warmup=0, replay_images=0,
                              out=str(tmp_path / variant))
        train(config, progress=False)
        runs.append(tmp_path / variant)
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, runs)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    spg, plain = (json.loads((run / "val_scores.json").read_text()) for run in runs)
    assert set(spg) == {"attention", "fused", "c"} and set(plain) == {"attention"}
    for scores in (*spg.values(), *plain.values()):
        assert 0.0 <= scores["gt_known_loc_oracle_tau"] <= 100.0 and 0.0 <= scores["maxboxacc_v2"] <= 100.0
    assert "attention" in done.stdout and str(runs[0]) in done.stdout
    # A second call reads the cache; a newer checkpoint makes it stale.
    (runs[1] / "val_scores.json").write_text(json.dumps({"attention": {**plain["attention"], "maxboxacc_v2": -1.0}}))
    again = subprocess.run([sys.executable, str(SCRIPT), str(runs[1])], capture_output=True, text=True, timeout=300)
    assert "-1.0" in again.stdout
