"""New users and new items without retraining: the evaluation protocol of issue 8.

Users: a random 10% of users is held out entirely (all their interactions) from training. Each
held-out user's interactions are split 80/20 at random; the model folds them in from the 80%
(``recommend_new_users``, both methods) and is scored on the 20% (Recall@20, NDCG@20). Baselines:
popularity, and refitting from scratch with the held-out users' 80% added to training.

Items: a random 10% of items is held out entirely: all their training interactions are removed.
We measure how many of those removed interactions come back in the users' top 20 over the full
catalogue (training items masked): with the items known at fit time as cold items (features, no
interactions), with the items added after fit through ``add_items`` (trained without them), and
with popularity (which can never rank them).

Run::

    python benchmarks/cold_start.py --data synthetic
    python benchmarks/cold_start.py --data tiktok --epochs 20

Results are printed as a markdown table and written to
``benchmarks/results/cold_start_<data>.json``. On TikTok, "interactions" are the union of the
train and validation splits (the test split is kept aside and never read).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from diffmm import DiffMMRecommender, PopularityRecommender
from diffmm.datasets import load_tiktok, make_synthetic
from diffmm.metrics import ndcg_at_k, rank_items, recall_at_k

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _rows(matrix: sp.spmatrix) -> np.ndarray:
    coo = sp.coo_matrix(matrix)
    return np.column_stack([coo.row, coo.col]).astype(np.int64)


def _frames(features: dict[str, np.ndarray], items: np.ndarray) -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame(values[items], index=items) for name, values in features.items()}


def _metrics(model, rows: np.ndarray) -> dict[str, float]:
    result = model.evaluate(rows, metrics=("recall", "ndcg"), ks=(20,))
    return {"recall@20": result["recall@20"], "ndcg@20": result["ndcg@20"]}


def _fold_in_metrics(ids: np.ndarray, users: np.ndarray, target: sp.csr_matrix) -> dict:
    """Recall/NDCG@20 of per-user top lists (raw item ids = indices) against target rows."""
    held = target[users]
    return {"recall@20": recall_at_k(ids, held, 20), "ndcg@20": ndcg_at_k(ids, held, 20)}


def user_protocol(matrix, features, params, rng) -> list[dict]:
    n_users = matrix.shape[0]
    active = np.flatnonzero(np.diff(matrix.indptr) >= 2)
    held = rng.choice(active, size=max(1, len(active) // 10), replace=False)
    keep = np.setdiff1d(np.arange(n_users), held)
    coo = sp.coo_matrix(matrix[held])
    to_target = rng.random(coo.nnz) < 0.2
    # At least one fold-in and one target item per held-out user.
    order = np.lexsort((rng.random(coo.nnz), coo.row))
    first = np.r_[True, coo.row[order][1:] != coo.row[order][:-1]]
    last = np.r_[coo.row[order][1:] != coo.row[order][:-1], True]
    to_target[order[first]] = False
    to_target[order[last]] = True
    shape = (len(held), matrix.shape[1])
    history = sp.csr_matrix(
        (coo.data[~to_target], (coo.row[~to_target], coo.col[~to_target])), shape
    )
    target = sp.csr_matrix((coo.data[to_target], (coo.row[to_target], coo.col[to_target])), shape)
    train_rows = _rows(matrix[keep])
    train_rows[:, 0] = keep[train_rows[:, 0]]
    results = []

    start = time.perf_counter()
    popularity = PopularityRecommender().fit(train_rows, features)
    scores = np.broadcast_to(popularity.popularity_, history.shape)
    ids, _ = rank_items(scores, 20, exclude=history)
    results.append(
        {
            "method": "popularity",
            **_fold_in_metrics(ids, np.arange(len(held)), target),
            "seconds": time.perf_counter() - start,
        }
    )

    start = time.perf_counter()
    model = DiffMMRecommender(**params).fit(train_rows, features)
    fit_seconds = time.perf_counter() - start
    for method in ("propagation", "denoiser"):
        start = time.perf_counter()
        ids, _ = model.recommend_new_users(history, n=20, method=method)
        results.append(
            {
                "method": f"fold-in ({method})",
                **_fold_in_metrics(ids, np.arange(len(held)), target),
                "seconds": time.perf_counter() - start,
                "fit_seconds": fit_seconds,
            }
        )

    start = time.perf_counter()
    refit_rows = np.vstack(
        [train_rows, np.column_stack([held[history.tocoo().row], history.tocoo().col])]
    )
    refit = DiffMMRecommender(**params).fit(refit_rows, features)
    ids, _ = refit.recommend(held, n=20)
    results.append(
        {
            "method": "refit from scratch",
            **_fold_in_metrics(ids, np.arange(len(held)), target),
            "seconds": time.perf_counter() - start,
        }
    )
    return results


def item_protocol(matrix, features, params, rng) -> list[dict]:
    n_items = matrix.shape[1]
    held = rng.choice(n_items, size=max(1, n_items // 10), replace=False)
    warm = np.setdiff1d(np.arange(n_items), held)
    rows = _rows(matrix)
    is_held = np.isin(rows[:, 1], held)
    train_rows, target_rows = rows[~is_held], rows[is_held]
    known_users = np.unique(train_rows[:, 0])
    target_rows = target_rows[np.isin(target_rows[:, 0], known_users)]
    results = []

    start = time.perf_counter()
    popularity = PopularityRecommender().fit(train_rows, _frames(features, np.arange(n_items)))
    results.append(
        {
            "method": "popularity",
            **_metrics(popularity, target_rows),
            "seconds": time.perf_counter() - start,
        }
    )

    start = time.perf_counter()
    cold_at_fit = DiffMMRecommender(**params).fit(train_rows, _frames(features, np.arange(n_items)))
    results.append(
        {
            "method": "cold at fit time (features, no interactions)",
            **_metrics(cold_at_fit, target_rows),
            "seconds": time.perf_counter() - start,
        }
    )

    start = time.perf_counter()
    added = DiffMMRecommender(**params).fit(train_rows, _frames(features, warm))
    added.add_items(_frames(features, held))
    results.append(
        {
            "method": "added after fit (add_items)",
            **_metrics(added, target_rows),
            "seconds": time.perf_counter() - start,
        }
    )

    # Chance level: a random ranking of the full catalogue.
    n_candidates = (
        n_items
        - np.diff(
            sp.csr_matrix(
                (np.ones(len(train_rows)), (train_rows[:, 0], train_rows[:, 1])), shape=matrix.shape
            ).indptr
        ).mean()
    )
    results.append(
        {
            "method": "random ranking (expected recall)",
            "recall@20": 20 / n_candidates,
            "ndcg@20": float("nan"),
            "seconds": 0.0,
        }
    )
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["synthetic", "tiktok"], default="synthetic")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=600, help="synthetic users")
    parser.add_argument("--items", type=int, default=400, help="synthetic items")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.data == "tiktok":
        data = load_tiktok(ROOT.parent / "shared" / "data" / "tiktok")
        matrix = (data.train + data.validation).tocsr()
        params = {**DiffMMRecommender.from_preset("tiktok").get_params(), "epochs": args.epochs}
    else:
        data = make_synthetic(
            n_users=args.users, n_items=args.items, random_state=args.seed, validation_fraction=0.0
        )
        matrix = data.train
        params = {
            "epochs": args.epochs,
            "denoiser_hidden_dims": (256,),
            "batch_size": 128,
            "contrastive": "main_modal",
        }
    matrix.data[:] = 1.0
    params = {**params, "random_state": args.seed}
    report = {
        "data": args.data,
        "shape": list(matrix.shape),
        "interactions": int(matrix.nnz),
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
        "new_users": user_protocol(matrix, data.features, params, rng),
        "new_items": item_protocol(matrix, data.features, params, rng),
    }
    for section in ("new_users", "new_items"):
        print(f"\n### {section.replace('_', ' ')} ({args.data}, {args.epochs} epochs)\n")
        print("| method | Recall@20 | NDCG@20 | seconds |\n| --- | --- | --- | --- |")
        for row in report[section]:
            print(
                f"| {row['method']} | {row['recall@20']:.4f} | {row['ndcg@20']:.4f} | "
                f"{row['seconds']:.1f} |"
            )
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"cold_start_{args.data}.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
