"""The recommender API shared by every estimator: id mapping, recommend, predict, score.

Subclasses implement how to learn (``_fit``) and how to score (``_score_block`` for full
rows over the catalogue, ``_score_pairs`` for single user–item pairs); everything that deals
with raw ids, masking, top-n and evaluation lives here once.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import metrics as _metrics
from ._errors import InvalidInputError, NonFiniteLossError
from ._evaluation import evaluate_scorer
from ._ids import IdMap
from ._persistence import FileState, ModelFileError, read_archive, write_archive
from ._ranking import long_frame, reusing_block, top_n
from ._validation import (
    binarize,
    check_interactions,
    check_k,
    interaction_matrix,
    resolve_universes,
    validate_params,
)

__all__ = ["BaseRecommender"]


class BaseRecommender(BaseEstimator):
    """Base class of the package's recommenders (not for direct use).

    Subclasses define ``_parameter_constraints`` (validated at the top of :meth:`fit`),
    ``_fit(matrix, features, validation)``, ``_score_block(user_indices)`` returning an array
    of shape (len(user_indices), n_items) and ``_score_pairs(user_indices, item_indices)``.
    """

    _parameter_constraints: dict[str, list] = {
        "user_col": [str],
        "item_col": [str],
        "weight_col": [str, None],
    }
    _requires_features: bool = False

    # -- fitting ---------------------------------------------------------------------------

    def _read(self, X: Any, name: str):
        return check_interactions(
            X,
            user_col=self.user_col,
            item_col=self.item_col,
            weight_col=self.weight_col,
            timestamp_col=None,
            name=name,
        )

    def _transaction(self, fit: Any) -> Any:
        """Run ``fit(estimator)`` on a fresh estimator with this one's parameters, then adopt
        its fitted state; if ``fit`` raises, this estimator is left exactly as it was.

        A :class:`NonFiniteLossError` raised after some epochs carries the model with the
        best weights so far as ``exc.model``.
        """
        candidate = type(self)(**self.get_params(deep=False))
        try:
            fit(candidate)
        except NonFiniteLossError as exc:
            if exc.snapshot is not None:
                exc.model = candidate
            raise
        for key in [k for k in vars(self) if _is_fitted_attribute(k)]:
            delattr(self, key)
        for key, value in vars(candidate).items():
            if _is_fitted_attribute(key):
                setattr(self, key, value)
        return self

    def _validate_params(self) -> None:
        constraints: dict[str, list] = {}
        for klass in reversed(type(self).__mro__):
            constraints.update(getattr(klass, "_parameter_constraints", {}))
        validate_params(self.get_params(deep=False), constraints)

    def _prepare_fit(
        self, interactions: Any, modality_features: Any, *, copy_features: bool = True
    ) -> dict[str, np.ndarray]:
        """Validate inputs, set the id maps and training matrices; return aligned features."""
        self._validate_params()
        rows = self._read(interactions, "interactions")
        users, items, features = resolve_universes(
            rows,
            modality_features,
            require_features=self._requires_features,
            copy_features=copy_features,
        )
        matrix, weights = interaction_matrix(rows, users, items)
        self._users = users
        self._items = items
        self.user_ids_ = users.ids
        self.item_ids_ = items.ids
        self.n_users_ = len(users)
        self.n_items_ = len(items)
        self.interactions_ = matrix
        self.interaction_weights_ = weights
        return features

    def _held_out_matrix(self, X: Any, name: str) -> sp.csr_matrix:
        """Held-out interactions as a binary matrix over the fitted universes."""
        rows = self._read(X, name)
        if rows.shape is not None and rows.shape != (self.n_users_, self.n_items_):
            raise InvalidInputError(
                f"{name} is a matrix of shape {rows.shape}, but the model was fitted on "
                f"{self.n_users_} users x {self.n_items_} items."
            )
        known = self._items.contains(rows.items)
        if np.all(known) or not np.any(known):  # none known: ids of the wrong kind, so raise
            matrix, _ = interaction_matrix(rows, self._users, self._items, name=name)
            return matrix
        # Items the model was not fitted on (e.g. seen only in a CV test fold) cannot be
        # recommended but stay relevant: they get columns past the catalogue and count as misses.
        users = self._users.index(rows.users, name=f"{name} user ids")
        items = np.empty(len(rows), dtype=np.int64)
        items[known] = self._items.index(rows.items[known])
        unseen = IdMap.from_values(rows.items[~known], what="item")
        items[~known] = self.n_items_ + unseen.index(rows.items[~known])
        keep = rows.weights > 0 if rows.weights is not None else slice(None)
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32)[keep], (users[keep], items[keep])),
            shape=(self.n_users_, self.n_items_ + len(unseen)),
        )
        return binarize(matrix)

    # -- persistence -------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        """Fitted attributes to save; subclasses extend it."""
        return {
            "user_ids_": self.user_ids_,
            "item_ids_": self.item_ids_,
            "interactions": {
                "indptr": self.interactions_.indptr,
                "indices": self.interactions_.indices,
                "shape": self.interactions_.shape,
            },
            "interaction_weights": self.interaction_weights_.data,
        }

    def _set_fitted_state(self, state: FileState) -> None:
        """Set the fitted attributes from a file's state, checking that its parts agree."""
        self._users = _id_map(state, "user_ids_", "user")
        self._items = _id_map(state, "item_ids_", "item")
        self.user_ids_ = self._users.ids
        self.item_ids_ = self._items.ids
        self.n_users_ = len(self._users)
        self.n_items_ = len(self._items)
        parts = state.sub("interactions")
        shape = (self.n_users_, self.n_items_)
        stored = parts.ints("shape", 2)
        if stored != list(shape):
            raise state.error(f"the interactions have shape {stored}, the id maps {shape}")
        indptr = parts.array("indptr", ndim=1, kinds="iu", shape=(self.n_users_ + 1,))
        indices = parts.array("indices", ndim=1, kinds="iu", non_negative=True)
        weights = state.array(
            "interaction_weights", ndim=1, kinds="f", shape=(len(indices),), finite=True
        )
        if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
            raise state.error("the interactions' row pointers are not a CSR matrix's")
        if indices.size and indices.max() >= self.n_items_:
            raise state.error("the interactions refer to items beyond the item ids")
        self.interactions_ = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape
        )
        self.interaction_weights_ = sp.csr_matrix((weights, indices, indptr), shape=shape)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted model to one file that loads without executing code.

        Arrays go to safetensors and everything else (hyper-parameters, id mappings, modality
        names, history, package and format versions) to JSON, inside one zip archive written
        atomically: a crash mid-save never leaves a half-written file at ``path``.

        Parameters
        ----------
        path : str or path-like
            Target file (conventionally ``*.diffmm``); its folder must exist.

        Returns
        -------
        Path
            The written path.

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np
        >>> from diffmm import PopularityRecommender
        >>> model = PopularityRecommender().fit(np.array([[0, 0], [1, 1], [1, 0]]))
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.diffmm"
        >>> _ = model.save(path)
        >>> PopularityRecommender.load(path).recommend([1], n=1, exclude_seen=False)[0]
        array([[0]])
        """
        check_is_fitted(self)
        tree = {
            "class": type(self).__name__,
            # A Generator random_state and callbacks (code) are not stored.
            "params": {
                k: (None if isinstance(v, np.random.Generator) or k == "callbacks" else v)
                for k, v in self.get_params(deep=False).items()
            },
            "fitted": self._fitted_state(),
        }
        return write_archive(path, tree, kind="model")

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Load a model written by :meth:`save` (on the CPU; no code is executed).

        The file's hyper-parameters are checked as ``fit`` checks them, and its parts (id
        maps, interactions, factors, network weights) must agree with each other. A
        ``checkpoint_dir`` is not restored: a loaded model that is cloned and fitted again
        writes no checkpoints unless told where.

        Raises :class:`diffmm.ModelFileError` for a corrupted or inconsistent file, a file of
        another kind or a format newer than this version of the package reads.
        """
        tree, _ = read_archive(path, kind="model")
        found = tree.get("class") if isinstance(tree, dict) else None
        if not isinstance(found, str) or found != cls.__name__:
            raise ModelFileError(
                f"{path} holds a {found}, not a {cls.__name__}; load it with that class."
            )
        content = FileState(tree, str(path))
        params = dict(content.value("params", dict))
        known = cls().get_params(deep=False)
        unknown = sorted(set(params) - set(known), key=str)
        if unknown:
            raise ModelFileError(
                f"{path} has settings this {cls.__name__} does not know: {unknown}"
            )
        if "checkpoint_dir" in known:
            params["checkpoint_dir"] = None
        model = cls(**params)
        try:
            model._validate_params()
        except InvalidInputError as exc:
            raise ModelFileError(f"{path} holds settings that fit would refuse: {exc}") from None
        model._set_fitted_state(content.sub("fitted"))
        return model

    # -- scoring hooks -----------------------------------------------------------------------

    def _score_block(
        self, user_indices: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:  # pragma: no cover
        """Scores of these users for every item; may write them into ``out`` (scratch)."""
        raise NotImplementedError

    def _score_pairs(
        self, user_indices: np.ndarray, item_indices: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # -- public API --------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """Score each (user, item) row.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_pairs, 2) or sparse matrix
            User and item ids, in any form :meth:`fit` accepts; weights are ignored.

        Returns
        -------
        ndarray of shape (n_pairs,)
            The model's score for each pair (higher means more recommended). For a sparse
            matrix, pairs are its stored entries in row-major order.
        """
        check_is_fitted(self)
        rows = self._read(X, "X")
        users = self._users.index(rows.users, name="X user ids")
        items = self._items.index(rows.items, name="X item ids")
        return np.asarray(self._score_pairs(users, items), dtype=np.float64)

    def recommend(
        self,
        users: Any,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude_items: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """Top-``n`` items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,) or a single id
            Raw user ids the model was fitted on.
        n : int, default=10
            Number of items per user. Larger than the number of candidate items, it is clipped
            to that number with a warning.
        exclude_seen : bool, default=True
            Leave out each user's training items.
        items : array-like, optional
            Restrict the candidates to these raw item ids.
        exclude_items : array-like, optional
            Never recommend these raw item ids.
        batch_size : int, default=1024
            Users scored at a time; memory use is ``batch_size x n_items`` floats.
        as_frame : bool, default=False
            Return a long pandas DataFrame instead (needs pandas).

        Returns
        -------
        item_ids : ndarray of shape (n_users, n)
            Raw item ids. Where a user had fewer than ``n`` candidate items left after the
            exclusions, the list is padded with an id that is never an item's: ``-1`` for
            integer ids, ``""`` for string ids, ``None`` for ids of mixed types.
        scores : ndarray of shape (n_users, n)
            Their scores; ``-inf`` at padding.
        frame : DataFrame
            With ``as_frame=True``, instead of the two arrays: one row per recommendation,
            columns ``user`` and ``item`` (raw ids, of the ids' dtype), ``rank`` (int64, 1 for
            the best) and ``score`` (float64), in the order of ``users`` then rank; padding is
            left out.

        Examples
        --------
        >>> import numpy as np
        >>> from diffmm import PopularityRecommender
        >>> model = PopularityRecommender().fit(np.array([[0, 0], [1, 0], [1, 1], [2, 2]]))
        >>> model.recommend([2], n=2)
        (array([[0, 1]]), array([[2., 1.]]))
        >>> model.recommend([2], n=2, as_frame=True)  # doctest: +SKIP
           user  item  rank  score
        0     2     0     1    2.0
        1     2     1     2    1.0
        """
        check_is_fitted(self)
        user_idx = self._users.index(_as_list(users), name="users")
        if user_idx.size == 0:
            raise InvalidInputError("users is empty; pass at least one user id.")
        exclude = self.interactions_[user_idx] if exclude_seen else None
        ids, scores = self._rank(
            self._chunk_scorer(user_idx),
            len(user_idx),
            n,
            exclude=exclude,
            items=items,
            exclude_items=exclude_items,
            batch_size=batch_size,
        )
        if as_frame:
            return long_frame(self._users.ids[user_idx], ids, scores, ("user", "item"))
        return ids, scores

    def _rank(
        self,
        score_rows: Any,
        n_rows: int,
        n: int,
        *,
        exclude: sp.csr_matrix | None,
        items: Any,
        exclude_items: Any,
        batch_size: int,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` raw item ids and scores for ``n_rows`` rows of ``score_rows(rows)``."""
        return top_n(
            score_rows,
            n_rows,
            n,
            self._items,
            exclude=exclude,
            wanted=items,
            unwanted=exclude_items,
            allowed=allowed,
            batch_size=batch_size,
            stacklevel=3,
        )

    def _chunk_scorer(self, user_idx: np.ndarray) -> Any:
        """``score(rows)``: the scores of ``user_idx[rows]``, written into one reused block."""
        return reusing_block(lambda rows, out: self._score_block(user_idx[rows], out=out))

    def _evaluate_matrix(
        self, held_out: sp.csr_matrix, metrics: tuple[str, ...], ks: tuple[int, ...]
    ) -> dict[str, float]:
        """Rank for users with held-out items (training items masked) and compute metrics."""
        scores = self._chunk_scorer(np.arange(self.n_users_))
        return evaluate_scorer(scores, self.interactions_, held_out, metrics, ks)

    def evaluate(
        self,
        X: Any,
        *,
        metrics: tuple[str, ...] = ("recall", "ndcg", "precision"),
        ks: tuple[int, ...] = (10, 20),
        as_frame: bool = False,
    ) -> Any:
        """Ranking metrics of the recommendations against held-out interactions.

        Each user with at least one held-out interaction is ranked over the full catalogue with
        their training items excluded (model page §7).

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_interactions, 2) or sparse matrix
            Held-out interactions of users the model knows. Items the model was not fitted on
            count as relevant items that were not recommended.
        metrics : tuple of str
            Names from :data:`diffmm.metrics.METRICS`.
        ks : tuple of int
            Cut-offs.
        as_frame : bool, default=False
            Return a pandas DataFrame of the metrics alone (needs pandas).

        Returns
        -------
        dict
            ``{"recall@20": ..., ..., "n_users_evaluated": ..., "n_users_skipped": ...}``:
            every metric at every cut-off, then how many users were evaluated (those with
            held-out items) and skipped.
        frame : DataFrame
            With ``as_frame=True``: one row per metric and cut-off, columns ``metric`` (str),
            ``k`` (int64) and ``value`` (float64); the two counts are in ``frame.attrs``.
        """
        check_is_fitted(self)
        if isinstance(ks, numbers.Integral):
            ks = (ks,)
        if isinstance(metrics, str):
            metrics = (metrics,)
        ks = tuple(check_k(k, name="ks") for k in ks)
        if not ks:
            raise InvalidInputError("ks is empty; pass at least one cut-off, e.g. ks=(10, 20).")
        for metric in metrics:
            _metrics.get_metric(metric)
        result = self._evaluate_matrix(self._held_out_matrix(X, "X"), tuple(metrics), ks)
        if not as_frame:
            return result
        import pandas as pd

        rows = [(m, k, float(result[f"{m}@{k}"])) for m in metrics for k in ks]
        frame = pd.DataFrame(rows, columns=["metric", "k", "value"]).astype({"k": np.int64})
        frame.attrs = {k: v for k, v in result.items() if k.startswith("n_users")}
        return frame

    def score(self, X: Any, y: Any = None, *, metric: str = "recall", k: int = 20) -> float:
        """A ranking metric (default Recall@20) of the recommendations on held-out ``X``.

        Higher is better, so this works as the default scorer of scikit-learn's model
        selection. ``y`` is ignored.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_interactions, 2) or sparse matrix
            Held-out interactions of users the model knows. Items the model was not fitted on
            count as relevant items that were not recommended.
        y : None
            Ignored.
        metric : str, default="recall"
            A name from :data:`diffmm.metrics.METRICS`.
        k : int, default=20
            The cut-off.

        Returns
        -------
        float
        """
        check_is_fitted(self)
        k = check_k(k, name="k")
        _metrics.get_metric(metric)
        result = self._evaluate_matrix(self._held_out_matrix(X, "X"), (metric,), (k,))
        return float(result[f"{metric}@{k}"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags


def _id_map(state: FileState, key: str, what: str) -> IdMap:
    ids = state.array(key, ndim=1, kinds="iuUO")
    if ids.dtype.kind in "iu" and ids.size and ids.min() < 0:
        raise state.error(f"the {what} ids hold negative numbers")
    try:
        return IdMap(ids, what=what)
    except InvalidInputError as exc:
        raise state.error(f"the {what} ids: {exc}") from None


def _is_fitted_attribute(name: str) -> bool:
    """Fitted state: scikit-learn's ``name_`` convention, and the id maps behind the ids."""
    return (name.endswith("_") and not name.startswith("__")) or name in ("_users", "_items")


def _as_list(ids: Any) -> Any:
    """A single id as a list of one; anything else as it is (``IdMap.index`` checks it)."""
    if isinstance(ids, (str, bytes)):
        return [ids]
    try:
        return [ids] if np.ndim(ids) == 0 else ids
    except ValueError:  # ragged nested sequences: IdMap.index says so
        return ids
