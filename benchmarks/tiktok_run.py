"""Train DiffMM on the real TikTok data with a preset and report per-epoch phases and accuracy.

Selection uses the validation split only (the test split is kept aside and never read).
Each epoch's record (losses, seconds per phase, validation Recall@20) is appended to a JSON-lines
file as soon as the epoch ends, so a long run can be followed (``tail -f``) and a partial run
still reports.

Run::

    python benchmarks/tiktok_run.py --preset tiktok --seed 0

Prints the median seconds per phase and the best validation Recall@20 / NDCG@20.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from diffmm import DiffMMRecommender
from diffmm.datasets import load_tiktok

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("seconds_denoiser", "seconds_generation", "seconds_recommender", "seconds_evaluation")


class _JsonLines(logging.Handler):
    """Appends each of the "diffmm" logger's per-epoch lines to a file as it happens."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        with self.path.open("a") as out:
            entry = getattr(record, "diffmm_record", {"message": record.getMessage()})
            out.write(json.dumps({"time": time.time(), **entry}) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiktok")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tiktok")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    data = load_tiktok(args.data)
    overrides = {"random_state": args.seed, "patience": args.patience}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    model = DiffMMRecommender.from_preset(args.preset, **overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"tiktok_{args.preset}_seed{args.seed}.log.jsonl"
    log_path.unlink(missing_ok=True)
    logger = logging.getLogger("diffmm")
    logger.setLevel(logging.INFO)
    logger.addHandler(_JsonLines(log_path))
    start = time.perf_counter()
    model.fit(data.train, data.features, validation_data=data.validation)
    seconds = time.perf_counter() - start
    metrics = model.evaluate(data.validation, metrics=("recall", "ndcg", "precision"), ks=(10, 20))
    report = {
        "preset": args.preset,
        "seed": args.seed,
        "best_epoch": model.best_epoch_,
        "epochs_run": len(model.history_),
        "stopped_early": model.stopped_early_,
        "seconds_total": seconds,
        "median_seconds": {
            p: statistics.median(r[p] for r in model.history_ if p in r) for p in PHASES
        },
        "validation": metrics,
        "history": model.history_,
    }
    (args.out / f"tiktok_{args.preset}_seed{args.seed}.json").write_text(
        json.dumps(report, indent=1)
    )
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=1))
    return report


if __name__ == "__main__":
    main()
