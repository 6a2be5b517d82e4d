"""Time the training phases of two source trees side by side, alternating fresh processes.

A change's speed is measured against the code before it, on the same machine in the same
minutes: each round runs the baseline tree and this one, each in its own process with
``PYTHONPATH`` pointing at its ``src`` (the baseline first in odd rounds and second in even
ones, so that a drift of the machine favours neither), fitting the TikTok preset for a few
epochs, and records every phase's seconds per epoch (the first epoch, a warm-up, is left
out). The
report gives each phase's per-round medians, the paired difference per round and its mean,
and both processes' peak resident memory. Make the baseline tree with, for example::

    mkdir -p /tmp/base && git archive HEAD~1 src | tar -x -C /tmp/base

Run::

    python benchmarks/side_by_side.py --baseline /tmp/base/src --precision bf16 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("denoiser", "generation", "recommender")

# One fit in a child process; prints one JSON line (phase seconds per epoch, peak RSS).
CHILD = """
import json, resource, sys
import torch
from diffmm import DiffMMRecommender
from diffmm.datasets import load_tiktok
path, precision, epochs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
data = load_tiktok(path)
model = DiffMMRecommender.from_preset(
    "tiktok", epochs=epochs, device="cpu", random_state=0, precision=precision, patience=None
)
model.fit(data.train, data.features, validation_data=data.validation)
phases = ("denoiser", "generation", "recommender")
seconds = {p: [r["seconds_" + p] for r in model.history_[1:]] for p in phases}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_rss_gb": peak / 1e9}))
"""


def run(src: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, "-c", CHILD, str(args.tiktok_path), args.precision]
    command += [str(args.epochs), str(args.threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the fit with {src} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline's src folder")
    parser.add_argument("--candidate", type=Path, default=ROOT / "src", help="default: ./src")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tiktok-path", type=Path, default=ROOT.parent / "shared" / "data" / "tiktok"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is a warm-up)")
    rounds = []
    for index in range(1, args.rounds + 1):
        if index % 2:
            base, new = run(args.baseline, args), run(args.candidate, args)
        else:
            new, base = run(args.candidate, args), run(args.baseline, args)
        rounds.append({"baseline": base, "candidate": new})
        cells = []
        for p in PHASES:
            b, c = (statistics.median(r["seconds"][p]) for r in (base, new))
            cells.append(f"{p} {b:.2f} -> {c:.2f} s")
        print(f"round {index}: " + "; ".join(cells), flush=True)
    print(f"\n{args.precision}, {args.rounds} rounds, epochs 2-{args.epochs} (medians per round)")
    print("| phase | baseline s | candidate s | paired difference per round | mean |")
    print("|---|---|---|---|---|")
    summary = {}
    for p in PHASES:
        base = [statistics.median(r["baseline"]["seconds"][p]) for r in rounds]
        new = [statistics.median(r["candidate"]["seconds"][p]) for r in rounds]
        diffs = [c - b for b, c in zip(base, new, strict=True)]
        mean = statistics.fmean(diffs)
        summary[p] = {"baseline": base, "candidate": new, "differences": diffs}
        print(
            f"| {p} | {', '.join(f'{v:.2f}' for v in base)} | {', '.join(f'{v:.2f}' for v in new)} "
            f"| {', '.join(f'{d:+.2f}' for d in diffs)} | {mean:+.2f} s "
            f"({100 * mean / statistics.fmean(base):+.0f}%) |"
        )
    peaks = {k: [r[k]["peak_rss_gb"] for r in rounds] for k in ("baseline", "candidate")}
    listed = (f"{k} {', '.join(f'{v:.2f}' for v in values)}" for k, values in peaks.items())
    print("peak RSS GB: " + "; ".join(listed))
    report = {"precision": args.precision, "rounds": rounds, "summary": summary, "peaks": peaks}
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
