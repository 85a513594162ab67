"""How a run's maps changed while it trained, from its training replay (RUN_DIR/replay.npz).

    python scripts/replay_curve.py RUN_DIR [RUN_DIR ...]

For every record (before training, after each epoch, a few times inside the first guided one)
and every stored map (attention A4, B2, B1, fused guidance, SPG-C): the percentage of the replay's
validation images (16 by default) whose largest-component box at the best τ of that record has
IoU ≥ 0.5 with the object's box, then the map's mean score on the object and on the background.
A trend on a few images, not a score: it shows when the guidance grew and whether it later
turned inside out (background above object), which the final checkpoint alone cannot.
"""
import argparse
from pathlib import Path

from spg_core.replay import REPLAY_FILE, load_replay
from spg_core.runs import resolve_run


def curve_table(run) -> str:
    folder = Path(run)
    if not (folder / REPLAY_FILE).is_file():
        try:
            folder = resolve_run(run)
        except FileNotFoundError:
            pass
    replay = load_replay(folder)
    if replay is None:
        raise SystemExit(f"{folder} has no training replay (replay.npz): train it with --replay-images 16")
    accuracy, means = replay.box_accuracy(), replay.object_background_means()
    names = replay.map_names
    lines = [f"{folder} ({len(replay.image_ids)} replay images): boxed % at the record's best τ · "
             "mean score object / background",
             "| epochs | " + " | ".join(names) + " | " + " | ".join(f"{n} obj / bg" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for r, epochs in enumerate(replay.epochs):
        boxed = ["—" if accuracy[n][r] != accuracy[n][r] else f"{100 * accuracy[n][r]:.0f}" for n in names]
        scores = ["—" if accuracy[n][r] != accuracy[n][r] else f"{means[n][r, 0]:.2f} / {means[n][r, 1]:.2f}"
                  for n in names]
        lines.append(f"| {epochs:.2f} | " + " | ".join(boxed) + " | " + " | ".join(scores) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (or shipped run names) trained with a replay")
    for run in parser.parse_args().runs:
        print(curve_table(run))
        print()


if __name__ == "__main__":
    main()
