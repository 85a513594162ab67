"""Training and inference throughput of SPG vs SPG-plain (images/s) and their ratios.

    python benchmarks/bench_train.py --backbone tiny --image-size 96 --batch-size 32 --device cpu
    python benchmarks/bench_train.py --backbone inception_v3 --image-size 224 --batch-size 64 \
        --device cuda --amp bf16 --json out.json --profile profile.txt

A training step is the real one of Algorithm 1 (forward, self-produced guidance, CE + three
masked BCE losses, backward, SGD step); inference is a forward pass without B and C, so the
SPG / plain inference ratio should be ~1.0 (the paper reports 15.8 ms vs 15.1 ms).

The weights are random (``build_model`` never downloads; the speed does not depend on them).
Besides images/s it reports, per variant, the peak GPU memory of training and of inference, the
FLOPs of one image's training step and forward (``torch.utils.flop_counter.FlopCounterMode``,
one untimed step; the counter counts matrix products and convolutions only) and so the training
FLOP rate, and on a known card that rate as a fraction of the card's dense bf16 peak
(``--peak-tflops`` overrides it). ``--json`` also writes the printed JSON to a file;
``--profile`` writes torch.profiler's table of a few SPG training steps (what explains a miss).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from spg_core.guidance import get_preset, self_produced_guidance
from spg_core.losses import spg_loss
from spg_core.models import build_model
from spg_core.train import autocast, resolve_amp, resolve_device


# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's data sheets, matched in
# order against torch.cuda.get_device_name (the first name contained in it wins).
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),   # SXM5, e.g. "NVIDIA H100 80GB HBM3"
    ("H200", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)


def bf16_peak_tflops(device_name: str) -> float | None:
    for name, peak in BF16_PEAK_TFLOPS:
        if name in device_name:
            return peak
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step) -> int:
    """FLOPs of one call of ``step`` (matrix products and convolutions, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


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
    peaks = []
    for name, step, mode in (("train", train_step, True), ("inference", infer_step, False)):
        model.train(mode)
        if device.type == "cuda":
            peaks.append(torch.cuda.max_memory_allocated(device))
            torch.cuda.reset_peak_memory_stats(device)
        if args.flops:
            result[f"{name}_flops_per_image"] = count_flops(step) / args.batch_size
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
        result[f"{name}_ms_per_image"] = 1000 * seconds / (args.steps * args.batch_size)
        if device.type == "cuda":
            result[f"{name}_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if device.type == "cuda":
        peaks.append(torch.cuda.max_memory_allocated(device))
        result["peak_memory_gib"] = max(peaks) / 2**30  # over both phases, as before
    if args.flops:
        result["train_tflops_per_s"] = result["train_flops_per_image"] * result["train_images_per_s"] / 1e12
    if args.profile and variant == "spg":
        model.train(True)
        write_profile(args.profile, train_step, device, args)
    return result


def write_profile(path: str, step, device: torch.device, args) -> None:
    """torch.profiler's table of ``args.profile_steps`` SPG training steps, slowest operators first."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    header = (f"SPG training, {args.backbone} at {args.image_size} px, batch {args.batch_size}, "
              f"{args.profile_steps} steps on {device.type}; sorted by {sort_by}\n\n")
    try:
        with profile(activities=activities, record_shapes=False) as prof:
            for _ in range(args.profile_steps):
                step()
            synchronize(device)
        text = prof.key_averages().table(sort_by=sort_by, row_limit=args.profile_rows)
    except Exception as error:  # a profiler that fails here must not cost the measured figures
        text = f"the profiler failed: {type(error).__name__}: {error}"
    with open(path, "w") as handle:
        handle.write(header + text + "\n")


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
    parser.add_argument("--no-flops", dest="flops", action="store_false",
                        help="skip counting FLOPs (one untimed step per phase and variant)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the card's dense bf16 peak in TFLOP/s (default: looked up from the card's name)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the printed JSON to FILE")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write torch.profiler's operator table of a few SPG training steps to FILE")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--profile-rows", type=int, default=25)
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
    if args.flops:
        ratios["train_flops_ratio_spg_over_plain"] = (results["spg"]["train_flops_per_image"]
                                                      / results["plain"]["train_flops_per_image"])
        peak = args.peak_tflops or (bf16_peak_tflops(header["device"]) if device.type == "cuda" else None)
        header["bf16_peak_tflops"] = peak
        if peak:
            for variant in results.values():
                variant["train_fraction_of_bf16_peak"] = variant["train_tflops_per_s"] / peak
    text = json.dumps({**header, **results, **ratios}, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
