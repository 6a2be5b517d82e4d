"""Micro-benchmark: the denoiser phase with its random draws made in line against ahead.

The denoiser phase draws each batch and modality's diffusion noise and input-dropout mask from
torch's CPU generator, one serial stream. The trainer makes them one item ahead in a worker
thread (:class:`diffmm._prefetch.Prefetch`). This script fits one epoch (TikTok's SPEC
settings on the real data when present, else a synthetic set of the same shape), then runs the
trainer's denoiser phase again and again, alternating the two ways (in line, ahead, ahead, in
line, ...) in this one process so that load from other processes hits both alike, and
reports the medians and their ratio. Both ways draw the same numbers, so the denoisers'
weights after one phase each way from the same state are checked to be identical (on one
thread, where torch's products are bit-reproducible).

Run::

    python benchmarks/micro_draws_ahead.py --precision fp32 --pairs 6
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

import diffmm._training as training
from diffmm import DiffMMRecommender
from diffmm.datasets import load_tiktok, make_synthetic

TIKTOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktok"


class InLine:
    """The draws made by the training thread itself, as before they were made ahead."""

    def __init__(self, source):
        self.source = source

    def __next__(self):
        return next(self.source)

    def close(self) -> None:
        self.source.close()


def _trainer(precision: str, tiktok_path: Path) -> training.Trainer:
    if (tiktok_path / "trnMat.pkl").exists():
        data = load_tiktok(tiktok_path)
    else:
        print(f"(no TikTok data at {tiktok_path}: a synthetic set of the same shape)")
        data = make_synthetic(
            n_users=9308,
            n_items=6710,
            interactions_per_user=7,
            modality_dims={"visual": 128, "acoustic": 128},
            random_state=0,
        )
    captured = {}
    run = training.Trainer.run

    def capture(self, *args, **kwargs):
        captured["trainer"] = self
        return run(self, *args, **kwargs)

    training.Trainer.run = capture
    try:
        model = DiffMMRecommender.from_preset(
            "tiktok", epochs=1, random_state=0, precision=precision, device="cpu"
        )
        model.fit(data.train, data.features)
    finally:
        training.Trainer.run = run
    return captured["trainer"]


def _phase(trainer: training.Trainer, way: type) -> float:
    training.Prefetch, real = way, training.Prefetch
    try:
        start = time.perf_counter()
        trainer.denoiser_epoch()
        return time.perf_counter() - start
    finally:
        training.Prefetch = real


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--pairs", type=int, default=6, help="alternating pairs of phases")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--tiktok-path", type=Path, default=TIKTOK)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = _trainer(args.precision, args.tiktok_path)
    ways = {"in line": InLine, "ahead": training.Prefetch}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for pair in range(args.pairs):
        order = list(ways) if pair % 2 == 0 else list(ways)[::-1]
        for name in order:
            seconds[name].append(_phase(trainer, ways[name]))
    # Same draws either way: from one state, both ways must end with the same weights. On one
    # thread: with more, torch's CPU products are not bit-reproducible from run to run.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    state = (
        trainer.generator.get_state(),
        copy.deepcopy(trainer.rng.bit_generator.state),
        [copy.deepcopy(d.state_dict()) for d in trainer.denoisers],
        [copy.deepcopy(o.state_dict()) for o in trainer.denoiser_optimizers],
    )
    weights = []
    for way in ways.values():
        trainer.generator.set_state(state[0])
        trainer.rng.bit_generator.state = state[1]
        for d, w in zip(trainer.denoisers, state[2], strict=True):
            d.load_state_dict(w)
        for o, w in zip(trainer.denoiser_optimizers, state[3], strict=True):
            o.load_state_dict(copy.deepcopy(w))  # it may keep (and update) w's tensors
        _phase(trainer, way)
        weights.append([copy.deepcopy(d.state_dict()) for d in trainer.denoisers])
    torch.set_num_threads(threads)
    identical = all(torch.equal(a[k], b[k]) for a, b in zip(*weights, strict=True) for k in a)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        f"denoiser phase, {args.precision}, {torch.get_num_threads()} threads, "
        f"{args.pairs} alternating pairs (seconds):"
    )
    for name, values in seconds.items():
        print(f"  {name:8s} median {medians[name]:.3f}  [{', '.join(f'{v:.2f}' for v in values)}]")
    faster = sum(a < b for a, b in zip(seconds["ahead"], seconds["in line"], strict=True))
    ratio = medians["ahead"] / medians["in line"]
    print(f"  ahead / in line: {ratio:.3f}; ahead faster in {faster} of {args.pairs} pairs")
    print(f"  identical weights after one phase each way (on one thread): {identical}")
    if not identical:
        raise SystemExit("the two ways gave different weights")
    return {**medians, "ratio": ratio, "identical": identical}


if __name__ == "__main__":
    main()
