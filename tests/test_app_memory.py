"""A long session must not leak: 200 threshold-slider moves leave the process RSS flat.

Each move reruns the whole script on cached maps (new seed masks, pictures, PNG bytes, media
files, a dataframe). Anything kept per move — pictures piling up in the media store, cached
maps copied into a growing cache, session-state keys minted per image — would show here.
"""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from test_app import release  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
WARM_UP = 30
MOVES = 200
MAX_GROWTH = 0.05


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def growth_over_moves(move) -> float:
    """RSS growth over MOVES calls of ``move(step)``, after WARM_UP of them."""
    for step in range(WARM_UP):
        move(step)
    before = rss()
    for step in range(MOVES):
        move(step)
    after = rss()
    print(f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB after {MOVES} moves "
          f"({100 * (after - before) / before:+.2f}%)")
    return (after - before) / before


@pytest.mark.slow
def test_slider_moves_keep_memory_flat(tmp_path):
    run = write_tiny_run(tmp_path / "tiny-spg")
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception, [e.message for e in at.exception]

    def move(step: int) -> None:
        low = 0.05 + 0.01 * (step % 30)  # 30 distinct masks, revisited: a cache keyed per move would grow
        release(at, mask_a=(round(low, 2), 0.7))
        assert not at.exception, [e.message for e in at.exception]

    growth = growth_over_moves(move)
    assert growth < MAX_GROWTH, f"RSS grew {100 * growth:.1f}% over {MOVES} slider moves"


@pytest.mark.slow
def test_replay_moves_keep_memory_flat(tmp_path):
    from spg_core.replay import load_replay
    from spg_core.train import train
    from test_train import small_config

    config = small_config(tmp_path, guidance_warmup=1, epochs=2, max_steps_per_epoch=4, replay_images=3)
    train(config, progress=False)
    records = len(load_replay(tmp_path / "run"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(tmp_path / "run")
    at.session_state["page_request"] = "training"
    at.run()
    assert not at.exception, [e.message for e in at.exception]

    def move(step: int) -> None:
        at.select_slider(key="replay_record").set_value(step % records).run()
        assert not at.exception, [e.message for e in at.exception]

    growth = growth_over_moves(move)
    assert growth < MAX_GROWTH, f"RSS grew {100 * growth:.1f}% over {MOVES} replay-slider moves"
