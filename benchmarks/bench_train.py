"""Training and inference throughput of SPG vs SPG-plain (images/s) and their ratios.

    python benchmarks/bench_train.py --backbone tiny --image-size 96 --batch-size 32 --device cpu
    python benchmarks/bench_train.py --backbone inception_v3 --image-size 224 --batch-size 64 \
        --device cuda --amp bf16

A training step is the real one of Algorithm 1 (forward, self-produced guidance, CE + three
masked BCE losses, backward, SGD step); inference is a forward pass without B and C, so the
SPG / plain inference ratio should be ~1.0 (the paper reports 15.8 ms vs 15.1 ms).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from spg_core.guidance import get_preset, self_produced_guidance
from spg_core.losses import spg_loss
from spg_core.models import build_model
from spg_core.train import autocast, resolve_amp, resolve_device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args, variant: str, device: torch.device, amp_dtype) -> dict:
    torch.manual_seed(0)
    model = build_model(args.backbone, args.num_classes, variant=variant).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    preset = get_preset("paper")
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def train_step():
        with autocast(device, amp_dtype):
            outputs = model(x, with_guidance=variant != "plain")
        guidance = None
        if variant != "plain":
            guidance = self_produced_guidance(outputs, y, preset, mask_size=args.mask_size or args.image_size)
        loss = spg_loss(outputs, y, guidance)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def infer_step():
        with autocast(device, amp_dtype):
            model(x, with_guidance=False)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = {}
    for name, step, mode in (("train", train_step, True), ("inference", infer_step, False)):
        model.train(mode)
        for _ in range(args.warmup):
            step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
        seconds = time.perf_counter() - start
        result[f"{name}_images_per_s"] = args.batch_size * args.steps / seconds
        result[f"{name}_ms_per_batch"] = 1000 * seconds / args.steps
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--mask-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", help="auto | bf16 | fp16 | off")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = resolve_amp(args.amp, device)
    results = {variant: measure(args, variant, device, amp_dtype) for variant in ("spg", "plain")}
    header = {
        "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
        "threads": torch.get_num_threads(), "channels_last": args.channels_last,
    }
    ratios = {
        "train_time_ratio_spg_over_plain": results["plain"]["train_images_per_s"] / results["spg"]["train_images_per_s"],
        "inference_time_ratio_spg_over_plain": results["plain"]["inference_images_per_s"]
        / results["spg"]["inference_images_per_s"],
    }
    print(json.dumps({**header, **results, **ratios}, indent=2))


if __name__ == "__main__":
    main()
