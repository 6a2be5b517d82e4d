"""Baseline recommenders with the same API and evaluation as :class:`DiffMMRecommender`."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender

__all__ = ["PopularityRecommender"]


class PopularityRecommender(BaseRecommender):
    """Recommend the items with the most training interactions to everyone.

    Ties are broken by the lower item index. Item features, when given to :meth:`fit`, only
    define the item universe (cold items get popularity 0).

    Parameters
    ----------
    user_col, item_col : str, default="user", "item"
        Column names when interactions come as a DataFrame.
    weight_col : str or None, default="weight"
        Weight column of DataFrame input, used when present (weights are binarised).

    Attributes
    ----------
    popularity_ : ndarray of shape (n_items,)
        Number of distinct training users of each item.
    user_ids_, item_ids_ : ndarray
        Raw ids of the fitted users and items, by index.

    Examples
    --------
    >>> import numpy as np
    >>> from diffmm.baselines import PopularityRecommender
    >>> X = np.array([[0, 0], [1, 0], [1, 1], [2, 2]])
    >>> model = PopularityRecommender().fit(X)
    >>> model.recommend([2], n=2)[0]
    array([[0, 1]])
    """

    def __init__(
        self, *, user_col: str = "user", item_col: str = "item", weight_col: str | None = "weight"
    ) -> None:
        self.user_col = user_col
        self.item_col = item_col
        self.weight_col = weight_col

    def fit(self, interactions: Any, modality_features: Any = None) -> PopularityRecommender:
        """Count each item's training users.

        Parameters
        ----------
        interactions : DataFrame, array-like of shape (n_interactions, 2 or 3) or sparse matrix
            Training interactions.
        modality_features : mapping, optional
            Only used to define the item universe.

        Returns
        -------
        self
        """
        self._prepare_fit(interactions, modality_features)
        self.popularity_ = np.asarray(self.interactions_.sum(axis=0), dtype=np.float64).ravel()
        return self

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "popularity_": self.popularity_}

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        super()._set_fitted_state(state)
        self.popularity_ = np.asarray(state["popularity_"], dtype=np.float64)

    def _score_block(self, user_indices: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return np.broadcast_to(self.popularity_, (len(user_indices), self.n_items_)).copy()

    def _score_pairs(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        return self.popularity_[item_indices]
