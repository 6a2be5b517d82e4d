"""Offline evaluation: rank every user with held-out items, then measure the rankings.

Pure functions of a scorer and the data; used by the recommenders' ``evaluate`` / ``score``
and, with the factors of each epoch, by training's validation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import scipy.sparse as sp

from . import metrics as _metrics
from ._errors import InvalidInputError
from ._ranking import factor_scores, rank, reusing_block

__all__ = ["MAX_PADDED_K", "evaluate_scorer", "factor_validation"]

# Cut-offs beyond the catalogue are exact (the ranking is padded with "no item"), up to this
# size; larger ones are refused instead of allocating n_users x k.
MAX_PADDED_K = 10_000


def evaluate_scorer(
    score_rows: Callable[[np.ndarray], np.ndarray],
    seen: sp.csr_matrix,
    held_out: sp.csr_matrix,
    metrics: tuple[str, ...],
    ks: tuple[int, ...],
) -> dict[str, float]:
    """Rank users with held-out items (their ``seen`` items masked) and compute metrics.

    Parameters
    ----------
    score_rows : callable
        ``score_rows(user_indices)``: scores of these users for every item, of shape
        (len(user_indices), n_items); the block may be overwritten.
    seen : csr_matrix of shape (n_users, n_items)
        Items never recommended to a user (the training items).
    held_out : csr_matrix of shape (n_users, n_items + n_unseen)
        The items to find; columns past ``n_items`` are items the model cannot recommend.
    """
    held_out = sp.csr_matrix(held_out)
    n_users, n_items = seen.shape
    user_idx = np.flatnonzero(np.diff(held_out.indptr) > 0)
    if user_idx.size == 0:
        raise InvalidInputError("The held-out interactions contain no user with an item to find.")
    max_k = max(ks)
    if max_k > max(n_items, MAX_PADDED_K):
        raise InvalidInputError(
            f"k={max_k} is larger than the {n_items} items in the catalogue; use a "
            f"cut-off of at most {max(n_items, MAX_PADDED_K)}."
        )
    top, _ = rank(
        score_rows,
        min(max_k, n_items),
        exclude=seen,
        users=user_idx,
        chunk_size=1024,
        owned_blocks=True,  # fresh or scratch blocks: masked in place
    )
    if top.shape[1] < max_k:  # a catalogue smaller than k: pad as "no item here"
        top = np.pad(top, ((0, 0), (0, max_k - top.shape[1])), constant_values=-1)
    result = _metrics.evaluate(top, held_out[user_idx], metrics=metrics, ks=ks)
    if "coverage" in metrics and held_out.shape[1] != n_items:  # unseen-item columns
        for k in ks:
            result[f"coverage@{k}"] = _metrics.catalogue_coverage_at_k(top, n_items, k)
    result["n_users_skipped"] = int(n_users - user_idx.size)
    return result


def factor_validation(
    seen: sp.csr_matrix, held_out: sp.csr_matrix, metric: str, k: int
) -> Callable[[np.ndarray, np.ndarray], float]:
    """``score(user_factors, item_factors)``: ``metric@k`` of dot-product scores on held_out."""

    def score(user_factors: np.ndarray, item_factors: np.ndarray) -> float:
        scorer = reusing_block(partial(factor_scores, user_factors, item_factors))
        return evaluate_scorer(scorer, seen, held_out, (metric,), (k,))[f"{metric}@{k}"]

    return score
