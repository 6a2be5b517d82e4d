"""Quick start: fit DiffMM on synthetic multi-modal data, evaluate it and recommend items.

The synthetic set has users, items and two item modalities ("visual", "acoustic") generated
from planted latent factors, with a per-user validation split. The script

1. fits ``DiffMMRecommender`` on the training interactions and the item features, using the
   validation interactions to keep the best epoch (early stopping);
2. compares its ranking metrics with a popularity baseline on the validation split;
3. prints the top items for a few users (their training items excluded).

Run it with the defaults (a minute or two on a laptop CPU) or small for a smoke test::

    python examples/quickstart.py
    python examples/quickstart.py --users 60 --items 40 --epochs 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from diffmm import DiffMMRecommender, PopularityRecommender
from diffmm.datasets import make_synthetic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit, evaluate and recommend with DiffMM.")
    parser.add_argument("--users", type=int, default=600, help="number of users (default 600)")
    parser.add_argument("--items", type=int, default=400, help="number of items (default 400)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="'auto' (default), 'cpu' or 'cuda'")
    args = parser.parse_args(argv)

    data = make_synthetic(n_users=args.users, n_items=args.items, random_state=args.seed)
    print(data)

    model = DiffMMRecommender(epochs=args.epochs, device=args.device, random_state=args.seed)
    start = time.perf_counter()
    # Interactions and features are data, so they go to fit; the validation split selects
    # the best epoch.
    model.fit(data.train, data.features, validation_data=data.validation)
    print(
        f"\nFitted in {time.perf_counter() - start:.1f} s on {model.device_}; kept epoch "
        f"{model.best_epoch_} of {len(model.history_)}."
    )
    print(f"Learned modality fusion weights: {model.fusion_weights_}")

    baseline = PopularityRecommender().fit(data.train, data.features)
    print(f"\n{'model':<12}" + "".join(f"{m:>12}" for m in ("recall@20", "ndcg@20")))
    for name, fitted in (("popularity", baseline), ("diffmm", model)):
        scores = fitted.evaluate(data.validation, metrics=("recall", "ndcg"), ks=(20,))
        print(f"{name:<12}{scores['recall@20']:>12.4f}{scores['ndcg@20']:>12.4f}")

    users = model.user_ids_[:3]
    item_ids, scores = model.recommend(users, n=5)  # raw ids; training items excluded
    print("\nTop 5 items per user:")
    for user, items, item_scores in zip(users, item_ids, scores, strict=True):
        shown = ", ".join(f"{i} ({s:.2f})" for i, s in zip(items, item_scores, strict=True))
        print(f"  user {user}: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
