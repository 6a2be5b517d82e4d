"""Command line: ``diffmm demo`` (the README's main job).

Run ``diffmm --help`` or ``python -m diffmm --help``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from .baselines import PopularityRecommender
    from .datasets import make_synthetic
    from .estimator import DiffMMRecommender

    data = make_synthetic(
        n_users=args.users, n_items=args.items, random_state=args.seed, validation_fraction=0.2
    )
    print(f"Data: {data}")
    models = {
        "popularity": PopularityRecommender(),
        "diffmm": DiffMMRecommender(
            epochs=args.epochs,
            denoiser_hidden_dims=(256,),
            batch_size=256,
            random_state=args.seed,
            verbose=args.verbose,
        ),
    }
    ks = (10, 20)
    print(
        f"\n{'model':<12} {'seconds':>8} "
        + " ".join(f"{m + '@' + str(k):>12}" for m in ("recall", "ndcg") for k in ks)
    )
    fitted = {}
    for name, model in models.items():
        start = time.perf_counter()
        if name == "diffmm":
            model.fit(data.train, data.features, validation_data=data.validation)
        else:
            model.fit(data.train, data.features)
        seconds = time.perf_counter() - start
        result = model.evaluate(data.validation, metrics=("recall", "ndcg"), ks=ks)
        fitted[name] = model
        values = " ".join(f"{result[f'{m}@{k}']:>12.4f}" for m in ("recall", "ndcg") for k in ks)
        print(f"{name:<12} {seconds:>8.1f} {values}")
    model = fitted["diffmm"]
    print(f"\nBest epoch {model.best_epoch_}; fusion weights {model.fusion_weights_}")
    users = model.user_ids_[:3]
    ids, scores = model.recommend(users, n=5)
    print("\nSample recommendations (top 5, training items excluded):")
    for user, row, row_scores in zip(users, ids, scores, strict=True):
        shown = ", ".join(f"{i} ({s:.2f})" for i, s in zip(row, row_scores, strict=True))
        print(f"  user {user}: {shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffmm", description="DiffMM multi-modal diffusion recommender."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit, evaluate and recommend on the embedded synthetic data set",
        description="Fit DiffMM and a popularity baseline on synthetic multi-modal data, "
        "print validation metrics and sample recommendations.",
    )
    demo.add_argument("--users", type=int, default=600, help="number of users (default 600)")
    demo.add_argument("--items", type=int, default=400, help="number of items (default 400)")
    demo.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--verbose", action="store_true", help="show a progress bar")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
