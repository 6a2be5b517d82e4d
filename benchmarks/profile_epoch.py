"""Profile DiffMM training epochs on the TikTok data with ``torch.profiler`` (a diagnostic).

Prints, per training phase (``diffmm.denoiser``, ``diffmm.generation``, ``diffmm.recommender``),
its CPU and device time per epoch, then the operators that take the most device (or CPU) time
and how many kernels were launched: on a GPU the recommender step is launch-bound when the
kernel count times a few microseconds approaches its time.

Run::

    python benchmarks/profile_epoch.py --device cuda --epochs 2 --out profile.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from diffmm import DiffMMRecommender
from diffmm.datasets import load_tiktok

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("diffmm.denoiser", "diffmm.generation", "diffmm.recommender")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--preset", default="tiktok")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "tiktok"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    data = load_tiktok(args.path)
    settings = {"device": args.device, "random_state": 0, "precision": args.precision}
    # One warm-up epoch outside the profiler (allocator, cuBLAS/cuSPARSE handles, kernels).
    DiffMMRecommender.from_preset(args.preset, epochs=1, **settings).fit(data.train, data.features)
    model = DiffMMRecommender.from_preset(args.preset, epochs=args.epochs, **settings)
    activities = [ProfilerActivity.CPU]
    on_gpu = torch.device(args.device).type == "cuda"
    if on_gpu:
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        model.fit(data.train, data.features)
    events = prof.key_averages()
    device_key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    lines = [f"{args.epochs} epoch(s), {args.preset}, {args.precision}, {args.device}", ""]
    lines.append("phase | CPU s/epoch | device s/epoch")
    for event in events:
        if event.key in PHASES:
            device = getattr(event, "device_time_total", 0.0) / 1e6 / args.epochs
            cpu = event.cpu_time_total / 1e6 / args.epochs
            lines.append(f"{event.key} | {cpu:.3f} | {device:.3f}")
    launches = sum(e.count for e in events if "LaunchKernel" in e.key or "cudaLaunch" in e.key)
    lines.append(f"kernel launches per epoch: {launches / args.epochs:.0f}")
    lines.append("")
    lines.append(events.table(sort_by=device_key, row_limit=30, max_name_column_width=60))
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
