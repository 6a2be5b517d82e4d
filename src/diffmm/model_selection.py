"""Splitters and scorers that plug interaction data into scikit-learn model selection.

A recommender's ``X`` is a table of interaction rows ``(user, item[, weight])``: a DataFrame or an
``(n, 2)`` / ``(n, 3)`` array. Splitting such a table the usual way (by shuffling rows across
users, or with ``KFold``) either holds out whole users, whom the model then cannot score, or
lets a duplicated interaction sit on both sides. :class:`UserHoldoutSplit` instead holds out
part of *each* user's interactions, keeps every copy of a ``(user, item)`` pair on one side, and
speaks the scikit-learn CV-splitter protocol, so it can be passed as ``cv=`` to
``GridSearchCV``, ``cross_validate`` and friends. :func:`make_ranking_scorer` turns the
estimators' ranking ``score`` into a ``scoring=`` callable.

Examples
--------
>>> import numpy as np
>>> from diffmm.model_selection import UserHoldoutSplit, train_test_split
>>> X = np.array([[u, i] for u in range(3) for i in range(5)])
>>> X_train, X_test = train_test_split(X, strategy="leave_n_out", random_state=0)
>>> len(X_train), len(X_test)
(12, 3)
>>> cv = UserHoldoutSplit(n_splits=3, test_size=0.4, random_state=0)
>>> [len(test) for _, test in cv.split(X)]
[6, 6, 6]
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._ids import IdMap
from ._validation import (
    Interval,
    Options,
    _is_dataframe,
    check_interactions,
    check_k,
    validate_params,
)

__all__ = ["UserHoldoutSplit", "make_ranking_scorer", "train_test_split"]

_STRATEGIES = ("random", "leave_n_out", "temporal")

_SPARSE_MESSAGE = (
    "X is a sparse users x items matrix. Splitting it by rows would hold out whole users "
    "(whom a recommender cannot score), not some of each user's interactions. Pass interaction "
    "rows instead: an (n, 2) array of (user, item) indices such as "
    "np.column_stack(matrix.nonzero()), or a DataFrame with user and item columns."
)


@dataclass(frozen=True)
class _Units:
    """Interaction rows grouped into units: the distinct (user, item) pairs.

    All copies of a pair form one unit and always land on the same side of a split.
    """

    row_unit: np.ndarray  # (n_rows,) unit index of every row
    unit_user: np.ndarray  # (n_units,) user code (0..n_users-1) of every unit
    counts: np.ndarray  # (n_users,) number of units per user
    recency: np.ndarray | None  # (n_units,) rank of the unit's latest row in time order


class UserHoldoutSplit:
    """Hold out part of every user's interactions, as a scikit-learn CV splitter.

    Each fold splits the *rows* of an interaction table into a training part and a test part
    such that

    * train and test partition the rows exactly (disjoint, together all rows);
    * every copy of a ``(user, item)`` pair is on the same side, so a duplicated interaction
      never leaks from training into test;
    * every user with test rows keeps at least ``min_train`` distinct training items (hence at
      least ``min_train`` training rows); users with too few interactions contribute no test
      rows and stay entirely in training.

    All counts below are over a user's *distinct items* (duplicate rows count once). The work
    is vectorised: there is no Python loop over users.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds. For ``"random"`` and ``"leave_n_out"`` the folds are independent
        repeated hold-outs (like ``ShuffleSplit``), so a row may be in the test part of several
        folds or of none. ``"temporal"`` is deterministic and needs ``n_splits=1``.
    strategy : {"random", "leave_n_out", "temporal"}, default="random"
        * ``"random"``: hold out a random fraction ``test_size`` of each user's items. The
          per-user count ``test_size * n_u`` is rounded *stochastically* (up with probability
          equal to its fractional part), so its expectation is exactly ``test_size * n_u`` and
          users with few items are represented in proportion; then it is capped at
          ``n_u - min_train``.
        * ``"leave_n_out"``: hold out exactly ``n_test`` random items of every user with at
          least ``n_test + min_train`` items; other users hold out none.
        * ``"temporal"``: hold out each user's most recent items by the ``timestamp_col``
          column, ``test_size * n_u`` of them rounded to the nearest integer (halves up) and
          capped at ``n_u - min_train``. A duplicated pair counts as recent as its latest row;
          ties in time are broken by row order (a later row is more recent). Hence every
          training row of a user is no later than any of that user's held-out pairs. Needs a
          DataFrame with a timestamp column.
    test_size : float in (0, 1), default=0.2
        Fraction of each user's items to hold out (``"random"`` and ``"temporal"``).
    n_test : int >= 1, default=1
        Number of items per user to hold out (``"leave_n_out"``).
    min_train : int >= 1, default=1
        Minimum number of distinct training items kept by every user who has test rows.
    random_state : int, numpy.random.Generator or None, default=None
        Controls the randomness. An int gives the same folds on every call of :meth:`split`,
        which is what ``GridSearchCV`` and fair model comparisons need; ``None`` or a
        ``Generator`` give different folds on each call. Pass an int for reproducible results.
        Unused by ``"temporal"``.
    user_col, item_col, timestamp_col : str, default="user", "item", "timestamp"
        Column names used when ``X`` is a DataFrame.

    See Also
    --------
    train_test_split : a single split, returning the two subsets of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 2]])
    >>> cv = UserHoldoutSplit(n_splits=2, strategy="leave_n_out", random_state=0)
    >>> cv.get_n_splits()
    2
    >>> for train, test in cv.split(X):
    ...     print(len(train), len(test))
    4 2
    4 2

    Use it as ``cv=`` with a ranking scorer:

    >>> from sklearn.model_selection import GridSearchCV
    >>> search = GridSearchCV(
    ...     model, {"n_layers": [1, 2]}, cv=cv, scoring=make_ranking_scorer("ndcg", k=10)
    ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        strategy: str = "random",
        test_size: float = 0.2,
        n_test: int = 1,
        min_train: int = 1,
        random_state: int | np.random.Generator | None = None,
        user_col: str = "user",
        item_col: str = "item",
        timestamp_col: str = "timestamp",
    ) -> None:
        self.n_splits = n_splits
        self.strategy = strategy
        self.test_size = test_size
        self.n_test = n_test
        self.min_train = min_train
        self.random_state = random_state
        self.user_col = user_col
        self.item_col = item_col
        self.timestamp_col = timestamp_col
        self._check_params()

    def _check_params(self) -> None:
        validate_params(
            {
                "n_splits": self.n_splits,
                "strategy": self.strategy,
                "test_size": self.test_size,
                "n_test": self.n_test,
                "min_train": self.min_train,
                "random_state": self.random_state,
            },
            {
                "n_splits": [Interval(numbers.Integral, 1, None)],
                "strategy": [Options(_STRATEGIES)],
                "test_size": [Interval(numbers.Real, 0, 1, closed="neither")],
                "n_test": [Interval(numbers.Integral, 1, None)],
                "min_train": [Interval(numbers.Integral, 1, None)],
                "random_state": [Interval(numbers.Integral, 0, None), np.random.Generator, None],
            },
        )
        if self.strategy == "temporal" and self.n_splits != 1:
            raise ValueError(
                f"strategy='temporal' always holds out the same (latest) interactions, so its "
                f"{self.n_splits} folds would all be identical; use n_splits=1."
            )

    def __repr__(self) -> str:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({args})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return the number of folds.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for compatibility with scikit-learn.

        Returns
        -------
        int
            ``n_splits``.

        Examples
        --------
        >>> UserHoldoutSplit(3).get_n_splits()
        3
        """
        return int(self.n_splits)

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generate row indices that split ``X`` into training and test parts.

        The input is validated before the first fold is generated.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2) or (n_interactions, 3)
            Interaction rows ``(user, item[, weight])``. A sparse users × items matrix is
            refused (splitting its rows would hold out whole users).
        y, groups : object
            Ignored; present for compatibility with scikit-learn.

        Yields
        ------
        train : ndarray of int
            Sorted positions of the training rows.
        test : ndarray of int
            Sorted positions of the test rows.

        Raises
        ------
        ValueError
            For a sparse matrix, for ``"temporal"`` without a timestamp column, and when a fold
            would have no test rows.

        Examples
        --------
        >>> X = [[0, 10], [0, 11], [0, 12], [1, 10], [1, 11]]
        >>> cv = UserHoldoutSplit(1, strategy="leave_n_out", random_state=0)
        >>> train, test = next(cv.split(X))
        >>> sorted(train.tolist() + test.tolist())
        [0, 1, 2, 3, 4]
        """
        self._check_params()
        units = self._units(X)
        return self._folds(units)

    def _units(self, X: Any) -> _Units:
        if sp.issparse(X):
            raise ValueError(_SPARSE_MESSAGE)
        temporal = self.strategy == "temporal"
        rows = check_interactions(
            X,
            user_col=self.user_col,
            item_col=self.item_col,
            weight_col=None,
            timestamp_col=self.timestamp_col if temporal else None,
            name="X",
        )
        user_map = IdMap.from_values(rows.users, what="user")
        item_map = IdMap.from_values(rows.items, what="item")
        user_code = user_map.index(rows.users)
        item_code = item_map.index(rows.items)
        pair_key = user_code * np.int64(len(item_map)) + item_code
        _, first_row, row_unit = np.unique(pair_key, return_index=True, return_inverse=True)
        row_unit = row_unit.reshape(-1)
        unit_user = user_code[first_row]
        counts = np.bincount(unit_user, minlength=len(user_map))

        recency = None
        if temporal:
            timestamps = rows.timestamps
            if timestamps is None:
                raise ValueError(
                    f"strategy='temporal' needs timestamps, but X has none: pass a DataFrame "
                    f"with a {self.timestamp_col!r} column (or set timestamp_col= to the column "
                    "that holds them). Arrays carry only (user, item[, weight])."
                )
            kind = timestamps.dtype.kind
            missing = (
                np.isnat(timestamps)
                if kind == "M"
                else ~np.isfinite(timestamps)
                if kind == "f"
                else np.zeros(len(timestamps), dtype=bool)
            )
            if missing.any():
                raise ValueError(
                    f"X[{self.timestamp_col!r}] has {int(missing.sum())} missing or infinite "
                    "timestamp(s); drop or fill those rows before a temporal split."
                )
            # A total order over rows: by time, ties by row position (stable sort).
            row_rank = np.empty(len(timestamps), dtype=np.int64)
            row_rank[np.argsort(timestamps, kind="stable")] = np.arange(len(timestamps))
            recency = np.full(len(unit_user), -1, dtype=np.int64)
            np.maximum.at(recency, row_unit, row_rank)
        return _Units(row_unit=row_unit, unit_user=unit_user, counts=counts, recency=recency)

    def _quota(self, counts: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Number of units each user holds out."""
        if self.strategy == "leave_n_out":
            eligible = counts >= self.n_test + self.min_train
            return np.where(eligible, self.n_test, 0).astype(np.int64)
        expected = self.test_size * counts
        if self.strategy == "random":
            assert rng is not None
            base = np.floor(expected)
            quota = base + (rng.random(len(counts)) < expected - base)
        else:  # temporal: nearest integer, halves up (with slack for float error)
            quota = np.floor(expected + 0.5 + 1e-9)
        return np.clip(quota.astype(np.int64), 0, np.maximum(counts - self.min_train, 0))

    def _folds(self, units: _Units) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        temporal = self.strategy == "temporal"
        rng = None if temporal else np.random.default_rng(self.random_state)
        n_units = len(units.unit_user)
        # Start of each user's block once units are sorted by user.
        starts = np.cumsum(units.counts) - units.counts
        for fold in range(self.n_splits):
            if temporal:
                assert units.recency is not None
                # Within each user, most recent first.
                order = np.lexsort((-units.recency, units.unit_user))
            else:
                assert rng is not None
                order = np.lexsort((rng.random(n_units), units.unit_user))
            quota = self._quota(units.counts, rng)
            sorted_user = units.unit_user[order]
            rank = np.arange(n_units) - starts[sorted_user]
            test_unit = np.empty(n_units, dtype=bool)
            test_unit[order] = rank < quota[sorted_user]
            test_row = test_unit[units.row_unit]
            if not test_row.any():
                raise ValueError(
                    f"Fold {fold} of {type(self).__name__} has no test rows: no user has enough "
                    f"interactions to hold any out (strategy={self.strategy!r}, "
                    f"test_size={self.test_size}, n_test={self.n_test}, "
                    f"min_train={self.min_train}; counts are of distinct items per user). Use a "
                    "larger test_size, a smaller min_train or n_test, or more data."
                )
            yield np.flatnonzero(~test_row), np.flatnonzero(test_row)


def train_test_split(
    X: Any,
    *,
    strategy: str = "random",
    test_size: float = 0.2,
    n_test: int = 1,
    min_train: int = 1,
    random_state: int | np.random.Generator | None = None,
    user_col: str = "user",
    item_col: str = "item",
    timestamp_col: str = "timestamp",
) -> tuple[Any, Any]:
    """Split interaction rows once into a training and a test table, per user.

    A one-shot :class:`UserHoldoutSplit` with ``n_splits=1``; see it for the strategies and
    guarantees (exact partition, duplicates kept together, ``min_train`` items per test user).

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_interactions, 2) or (n_interactions, 3)
        Interaction rows ``(user, item[, weight])``.
    strategy, test_size, n_test, min_train, random_state, user_col, item_col, timestamp_col
        As in :class:`UserHoldoutSplit`.

    Returns
    -------
    X_train, X_test : same type as X
        DataFrames are subset with ``.iloc`` (keeping their index); arrays are indexed; lists
        and other sequences come back as ndarrays. Rows keep their original order.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0]])
    >>> X_train, X_test = train_test_split(X, strategy="leave_n_out", random_state=0)
    >>> X_train.shape, X_test.shape
    ((4, 2), (2, 2))
    >>> sorted(X_test[:, 0].tolist())  # user 2 has a single item and keeps it for training
    [0, 1]
    """
    splitter = UserHoldoutSplit(
        1,
        strategy=strategy,
        test_size=test_size,
        n_test=n_test,
        min_train=min_train,
        random_state=random_state,
        user_col=user_col,
        item_col=item_col,
        timestamp_col=timestamp_col,
    )
    train, test = next(iter(splitter.split(X)))
    if _is_dataframe(X):
        return X.iloc[train], X.iloc[test]
    arr = np.asarray(X)
    return arr[train], arr[test]


class _RankingScorer:
    """Picklable ``scorer(estimator, X, y=None)`` calling ``estimator.score(X, metric, k)``."""

    def __init__(self, metric: str, k: int) -> None:
        self.metric = metric
        self.k = k

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        score = getattr(estimator, "score", None)
        if not callable(score):
            raise TypeError(
                f"{type(estimator).__name__} has no score method; a ranking scorer needs an "
                "estimator with score(X, y=None, *, metric=..., k=...)."
            )
        return float(score(X, metric=self.metric, k=self.k))

    def __repr__(self) -> str:
        return f"make_ranking_scorer({self.metric!r}, k={self.k})"


def _metric_names() -> frozenset[str] | None:
    """The metric names of :mod:`diffmm.metrics`, or ``None`` where that module is absent."""
    try:
        from .metrics import METRICS
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.endswith(".metrics"):
            return None
        raise
    return frozenset(METRICS)


def make_ranking_scorer(metric: str = "recall", k: int = 20) -> _RankingScorer:
    """Make a ``scoring=`` callable that evaluates a recommender's top-``k`` ranking.

    The scorer calls ``estimator.score(X, metric=metric, k=k)``: the estimator recommends
    ``k`` items to every user in the held-out rows ``X`` (masking that user's training items)
    and compares them with ``X``'s interactions. All metrics are higher-is-better, so the
    scorer suits ``GridSearchCV``, ``cross_validate`` and a ``scoring`` dict of several scorers.

    Parameters
    ----------
    metric : str, default="recall"
        A metric name from :data:`diffmm.metrics.METRICS` (``"recall"``, ``"precision"``,
        ``"ndcg"``, ``"hit_rate"``, ``"map"``, ``"mrr"``, ``"coverage"``).
    k : int >= 1, default=20
        Length of the recommendation lists.

    Returns
    -------
    callable
        ``scorer(estimator, X, y=None) -> float``; ``y`` is ignored. It pickles, so it works
        with ``n_jobs``.

    Examples
    --------
    >>> scorer = make_ranking_scorer("ndcg", k=10)
    >>> scorer
    make_ranking_scorer('ndcg', k=10)
    >>> scoring = {"recall@20": make_ranking_scorer(), "ndcg@10": scorer}
    >>> from sklearn.model_selection import cross_validate
    >>> cross_validate(
    ...     model, X, cv=UserHoldoutSplit(3, random_state=0), scoring=scoring
    ... )  # doctest: +SKIP
    """
    names = _metric_names()
    constraint = Options(names) if names is not None else str
    validate_params({"metric": metric}, {"metric": [constraint]})
    return _RankingScorer(metric, check_k(k))
