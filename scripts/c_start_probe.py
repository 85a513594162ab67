"""What SPG-C's first steps do to the classifier: switch the guidance on from a trained SPG-plain run.

    python -m spg_core train --config configs/teaching_lite0.yaml --variant plain --epochs 4 --lr-step 6 --out runs/plain-e4
    python scripts/c_start_probe.py runs/plain-e4 --c-init xavier  # the reference codes' start
    python scripts/c_start_probe.py runs/plain-e4 --c-init zero    # the library default
    python scripts/c_start_probe.py runs/plain-e4 --no-c           # B1 and B2 only

Builds the SPG model of the run's backbone, loads the SPG-plain weights (B and C stay new), and
trains STEPS steps of Algorithm 1 on the run's own training data at the run's learning rates,
printing the training accuracy and every loss term per window of 10 steps. A classifier that
survives the switch keeps its accuracy; one that does not falls towards chance
(docs/teaching_recipe.md, "SPG-C's first steps").
"""
import argparse

import torch
from torch.utils.data import DataLoader

from spg_core.checkpoint import read_checkpoint
from spg_core.config import TrainConfig
from spg_core.data import collate
from spg_core.data.settings import DataSettings
from spg_core.guidance import get_preset, self_produced_guidance
from spg_core.losses import spg_loss
from spg_core.models import build_model
from spg_core.runs import resolve_run
from spg_core.train import build_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="an SPG-plain RUN_DIR (its checkpoint.pt and config)")
    parser.add_argument("--c-init", choices=("zero", "xavier"), default="zero")
    parser.add_argument("--no-c", action="store_true", help="leave SPG-C's loss out")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    state = read_checkpoint(resolve_run(args.run) / "checkpoint.pt")
    config = TrainConfig.from_dict(state["config"])
    if config.variant != "plain":
        raise SystemExit(f"{args.run} is a {config.variant!r} run; the probe starts from an SPG-plain one")
    # SPG-C as it was probed (docs/teaching_recipe.md): reading A3 directly unless the run says otherwise
    model = build_model(config.backbone, state["num_classes"], variant="spg", c_init=args.c_init,
                        **{"c_input_norm": False, **config.model_options})
    model.load_state_dict(state["model"], strict=False)  # B and C are not in a plain checkpoint
    model.train()
    optimizer, _ = build_optimizer(model, config)
    train_set = DataSettings.from_config(config).dataset("train", train=True)  # as the trainer builds it
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(args.seed))
    preset = get_preset(config.preset)
    window: dict[str, list[float]] = {}
    print(f"plain run after epoch {state['epoch']}; SPG-C start {args.c_init}" + (", no SPG-C loss" if args.no_c else ""))
    for step, batch in enumerate(loader):
        if step >= args.steps:
            break
        outputs = model(batch["image"], with_guidance=True)
        guidance = self_produced_guidance(outputs, batch["label"], preset, mask_size=config.resolved_mask_size())
        if args.no_c:
            guidance.pop("mask_fuse")
        losses = spg_loss(outputs, batch["label"], guidance, config.bce_balance)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        window.setdefault("accuracy", []).append(float((outputs["logits"].argmax(1) == batch["label"]).float().mean()))
        for name, value in losses.items():
            window.setdefault(name, []).append(float(value.detach()))
        if (step + 1) % args.window == 0:
            means = {name: sum(values) / len(values) for name, values in window.items()}
            print(f"steps {step + 2 - args.window}-{step + 1}: training accuracy {100 * means.pop('accuracy'):.1f} %, "
                  + ", ".join(f"{name} {value:.3f}" for name, value in means.items()), flush=True)
            window = {}


if __name__ == "__main__":
    main()
