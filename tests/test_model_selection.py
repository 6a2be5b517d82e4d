"""Tests for diffmm.model_selection: per-user hold-out splitters and ranking scorers."""

from __future__ import annotations

import math
import pickle
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, cross_validate

from diffmm.model_selection import UserHoldoutSplit, make_ranking_scorer, train_test_split

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@st.composite
def interaction_tables(draw, max_users: int = 8, max_items: int = 12, max_per_user: int = 15):
    """Random (n, 2) interaction arrays, users interleaved; duplicate pairs are common."""
    n_items = draw(st.integers(1, max_items))
    per_user = draw(
        st.lists(
            st.lists(st.integers(0, n_items - 1), min_size=1, max_size=max_per_user),
            min_size=1,
            max_size=max_users,
        )
    )
    # Non-contiguous user ids.
    rows = [(3 * u + 1, i) for u, items in enumerate(per_user) for i in items]
    rows = draw(st.permutations(rows))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def folds_or_none(cv: UserHoldoutSplit, X) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """All folds, or None when the data is too small to hold anything out."""
    try:
        return list(cv.split(X))
    except ValueError as exc:
        assert "no test rows" in str(exc)
        return None


def distinct_items(X: np.ndarray, rows: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for u, i in X[rows, :2].tolist():
        out[u].add(i)
    return out


def check_fold(X: np.ndarray, train: np.ndarray, test: np.ndarray, min_train: int) -> None:
    n = len(X)
    # An exact partition of the rows, both parts sorted.
    assert train.dtype.kind == "i" and test.dtype.kind == "i"
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    # No (user, item) pair on both sides.
    train_pairs = {tuple(p) for p in X[train, :2].tolist()}
    test_pairs = {tuple(p) for p in X[test, :2].tolist()}
    assert not train_pairs & test_pairs
    # Every test user keeps at least min_train distinct training items.
    train_items = distinct_items(X, train)
    for user in set(X[test, 0].tolist()):
        assert len(train_items[user]) >= min_train


def per_user_counts(X: np.ndarray) -> dict[int, int]:
    return {u: len(items) for u, items in distinct_items(X, np.arange(len(X))).items()}


# ---------------------------------------------------------------------------------------------
# Invariants (property-based)
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(
    X=interaction_tables(),
    strategy=st.sampled_from(["random", "leave_n_out"]),
    test_size=st.floats(0.05, 0.95),
    n_test=st.integers(1, 3),
    min_train=st.integers(1, 3),
    n_splits=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_folds_partition_rows_without_leakage(
    X, strategy, test_size, n_test, min_train, n_splits, seed
):
    cv = UserHoldoutSplit(
        n_splits,
        strategy=strategy,
        test_size=test_size,
        n_test=n_test,
        min_train=min_train,
        random_state=seed,
    )
    folds = folds_or_none(cv, X)
    if folds is None:
        return
    assert len(folds) == n_splits == cv.get_n_splits(X)
    for train, test in folds:
        assert len(test) > 0
        check_fold(X, train, test, min_train)


@SETTINGS
@given(X=interaction_tables(), n_test=st.integers(1, 3), min_train=st.integers(1, 3))
def test_leave_n_out_holds_out_exactly_n_test_per_eligible_user(X, n_test, min_train):
    cv = UserHoldoutSplit(
        2, strategy="leave_n_out", n_test=n_test, min_train=min_train, random_state=0
    )
    counts = per_user_counts(X)
    eligible = {u for u, m in counts.items() if m >= n_test + min_train}
    if not eligible:
        with pytest.raises(ValueError, match="no test rows"):
            cv.split(X).__next__()
        return
    for train, test in cv.split(X):
        check_fold(X, train, test, min_train)
        held = distinct_items(X, test)
        assert set(held) == eligible
        assert all(len(held[u]) == n_test for u in eligible)


@SETTINGS
@given(
    X=interaction_tables(),
    test_size=st.floats(0.05, 0.95),
    min_train=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_holds_out_rounded_fraction_per_user(X, test_size, min_train, seed):
    cv = UserHoldoutSplit(2, test_size=test_size, min_train=min_train, random_state=seed)
    folds = folds_or_none(cv, X)
    if folds is None:
        return
    counts = per_user_counts(X)
    for _, test in folds:
        held = distinct_items(X, test)
        for user, m in counts.items():
            expected = test_size * m
            cap = max(m - min_train, 0)
            allowed = {min(math.floor(expected + 1e-9), cap), min(math.ceil(expected - 1e-9), cap)}
            assert len(held.get(user, ())) in allowed


@SETTINGS
@given(X=interaction_tables(), strategy=st.sampled_from(["random", "leave_n_out"]))
def test_same_int_seed_gives_identical_folds(X, strategy):
    cv = UserHoldoutSplit(3, strategy=strategy, test_size=0.5, random_state=42)
    first = folds_or_none(cv, X)
    if first is None:
        return
    again = list(cv.split(X))
    other = list(UserHoldoutSplit(3, strategy=strategy, test_size=0.5, random_state=42).split(X))
    for a, b, c in zip(first, again, other, strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])


@SETTINGS
@given(
    X=interaction_tables(),
    timestamp_range=st.integers(1, 20),
    test_size=st.floats(0.05, 0.95),
    min_train=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_temporal_holds_out_latest_pairs(X, timestamp_range, test_size, min_train, seed):
    pd = pytest.importorskip("pandas")
    # Few distinct timestamps, so ties are common.
    ts = np.random.default_rng(seed).integers(0, timestamp_range, len(X))
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "timestamp": ts})
    cv = UserHoldoutSplit(1, strategy="temporal", test_size=test_size, min_train=min_train)
    folds = folds_or_none(cv, df)
    counts = per_user_counts(X)
    if folds is None:
        assert all(
            min(math.floor(test_size * m + 0.5), m - min_train) <= 0 for m in counts.values()
        )
        return
    ((train, test),) = folds
    check_fold(X, train, test, min_train)
    # Recency of a pair: its latest row by (timestamp, row position).
    recency: dict[tuple[int, int], tuple[int, int]] = {}
    for row, (u, i) in enumerate(X.tolist()):
        recency[(u, i)] = max(recency.get((u, i), (-1, -1)), (int(ts[row]), row))
    test_rows = set(test.tolist())
    held = distinct_items(X, test)
    for user, m in counts.items():
        expected = min(math.floor(test_size * m + 0.5 + 1e-9), max(m - min_train, 0))
        assert len(held.get(user, ())) == expected
        train_keys = [recency[(user, i)] for i in distinct_items(X, train).get(user, ())]
        test_keys = [recency[(user, i)] for i in held.get(user, ())]
        if train_keys and test_keys:
            assert max(train_keys) < min(test_keys)
    # So no training row of a test user is later than that user's held-out pairs.
    for row in train.tolist():
        u, i = X[row]
        if held.get(u):
            assert all(ts[row] <= recency[(u, j)][0] for j in held[u])
    assert test_rows.isdisjoint(train.tolist())


@SETTINGS
@given(
    X=interaction_tables(),
    strategy=st.sampled_from(["random", "leave_n_out"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dataframe_ndarray_and_list_inputs_give_the_same_folds(X, strategy, seed):
    pd = pytest.importorskip("pandas")
    cv = UserHoldoutSplit(2, strategy=strategy, test_size=0.5, random_state=seed)
    from_array = folds_or_none(cv, X)
    if from_array is None:
        return
    df = pd.DataFrame({"u": X[:, 0], "i": X[:, 1]}, index=np.arange(len(X)) * 7 + 3)
    cv_df = UserHoldoutSplit(
        2, strategy=strategy, test_size=0.5, random_state=seed, user_col="u", item_col="i"
    )
    for other in (list(cv_df.split(df)), list(cv.split(X.tolist()))):
        for a, b in zip(from_array, other, strict=True):
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# ---------------------------------------------------------------------------------------------
# Specific behaviour
# ---------------------------------------------------------------------------------------------


def many_users(n_users: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(10, 31, n_users)
    users = np.repeat(np.arange(n_users), sizes)
    items = np.concatenate([rng.choice(100, s, replace=False) for s in sizes])
    return np.column_stack([users, items])


def test_duplicate_pairs_stay_together():
    # User 0 has items 0..4, each three times; user 1 has item 7 twice and item 8 once.
    X = np.array([[0, i] for i in range(5)] * 3 + [[1, 7], [1, 8], [1, 7]])
    for seed in range(20):
        train, test = next(
            UserHoldoutSplit(1, strategy="leave_n_out", n_test=2, random_state=seed).split(X)
        )
        check_fold(X, train, test, 1)
        # Two of user 0's items, with all three copies each, and none of user 1's
        # (two distinct items < n_test + min_train = 3).
        assert len(test) == 6
        assert set(X[test, 0].tolist()) == {0}


def test_different_seeds_and_folds_differ():
    X = many_users()
    a = list(UserHoldoutSplit(3, random_state=0).split(X))
    b = list(UserHoldoutSplit(3, random_state=1).split(X))
    assert not np.array_equal(a[0][1], b[0][1])
    # Folds of one split are independent draws.
    assert not np.array_equal(a[0][1], a[1][1])
    assert not np.array_equal(a[1][1], a[2][1])


def test_random_fraction_is_close_to_test_size():
    X = many_users()
    for test_size in (0.1, 0.25, 0.5):
        for train, test in UserHoldoutSplit(3, test_size=test_size, random_state=3).split(X):
            # Stochastic rounding: the expected count is exactly test_size * n (no caps bind).
            assert abs(len(test) / len(X) - test_size) < 0.02
            check_fold(X, train, test, 1)


def test_none_and_generator_random_state_draw_new_folds_each_call():
    X = many_users()
    for random_state in (None, np.random.default_rng(0)):
        cv = UserHoldoutSplit(1, random_state=random_state)
        first = next(cv.split(X))[1]
        second = next(cv.split(X))[1]
        assert not np.array_equal(first, second)
    # Equal generators give equal folds.
    a = next(UserHoldoutSplit(1, random_state=np.random.default_rng(5)).split(X))[1]
    b = next(UserHoldoutSplit(1, random_state=np.random.default_rng(5)).split(X))[1]
    assert np.array_equal(a, b)


def test_string_ids_and_weight_column():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "user": ["ann", "ann", "ann", "bob", "bob", "cy"],
            "item": ["x", "y", "z", "x", "y", "x"],
            "weight": [1.0, 2.0, 1.0, 1.0, 5.0, 1.0],
        }
    )
    train, test = train_test_split(df, strategy="leave_n_out", random_state=0)
    assert isinstance(train, pd.DataFrame) and isinstance(test, pd.DataFrame)
    assert sorted(test["user"]) == ["ann", "bob"]
    assert len(train) == 4 and "cy" in set(train["user"])
    assert list(train.columns) == list(df.columns)


def test_temporal_with_datetimes_and_ties():
    pd = pytest.importorskip("pandas")
    day = np.datetime64("2024-01-01")
    df = pd.DataFrame(
        {
            "user": [0, 0, 0, 0, 1, 1],
            "item": [1, 2, 3, 4, 1, 2],
            "when": [day + 3, day + 1, day + 3, day, day, day],
        }
    )
    train, test = train_test_split(df, strategy="temporal", test_size=0.5, timestamp_col="when")
    # User 0: the two latest are items 1 and 3 (tied in time). User 1: a tie, broken by
    # row order, so the later row (item 2) is the more recent one.
    assert sorted(map(tuple, test[["user", "item"]].to_numpy().tolist())) == [
        (0, 1),
        (0, 3),
        (1, 2),
    ]
    assert len(train) == 3


def test_temporal_is_deterministic_and_ignores_random_state():
    pd = pytest.importorskip("pandas")
    X = many_users(30)
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "timestamp": np.arange(len(X))[::-1]})
    a = next(UserHoldoutSplit(1, strategy="temporal", random_state=0).split(df))
    b = next(UserHoldoutSplit(1, strategy="temporal", random_state=1).split(df))
    assert np.array_equal(a[1], b[1])


def test_train_test_split_returns_subsets_of_the_input_type():
    X = many_users(20)
    cv = UserHoldoutSplit(1, test_size=0.3, random_state=7)
    train_idx, test_idx = next(cv.split(X))
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=7)
    assert isinstance(X_train, np.ndarray)
    assert np.array_equal(X_train, X[train_idx]) and np.array_equal(X_test, X[test_idx])
    L_train, L_test = train_test_split(X.tolist(), test_size=0.3, random_state=7)
    assert isinstance(L_train, np.ndarray) and np.array_equal(L_test, X_test)


def test_train_test_split_dataframe_keeps_index():
    pd = pytest.importorskip("pandas")
    X = many_users(20)
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1]}, index=[f"r{i}" for i in range(len(X))])
    train, test = train_test_split(df, random_state=0)
    assert train.index.is_unique and set(train.index).isdisjoint(test.index)
    assert len(train) + len(test) == len(df)
    assert df.loc[test.index].equals(test)


def test_weights_column_of_an_array_is_kept():
    X = np.array([[0, 0, 1.0], [0, 1, 3.0], [1, 0, 2.0], [1, 1, 1.0]])
    train, test = train_test_split(X, strategy="leave_n_out", random_state=0)
    assert train.shape == (2, 3) and test.shape == (2, 3)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_sparse_matrix_is_refused():
    matrix = sp.random(5, 6, density=0.5, format="csr", random_state=0)
    with pytest.raises(ValueError, match="would hold out whole users"):
        UserHoldoutSplit(1).split(matrix)
    with pytest.raises(ValueError, match=r"np\.column_stack\(matrix\.nonzero\(\)\)"):
        train_test_split(matrix)


def test_temporal_without_timestamps_is_refused():
    X = many_users(5)
    with pytest.raises(ValueError, match="needs timestamps"):
        UserHoldoutSplit(1, strategy="temporal").split(X)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "time": 0})
    with pytest.raises(ValueError, match="'timestamp' column"):
        train_test_split(df, strategy="temporal")
    train_test_split(df, strategy="temporal", timestamp_col="time")  # named: fine


def test_temporal_with_missing_timestamps_is_refused():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 0], "timestamp": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="missing or infinite"):
        train_test_split(df, strategy="temporal")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"test_size": 0.0}, r"'test_size' parameter must be a float in the range \(0, 1\)"),
        ({"test_size": 1.0}, "'test_size' parameter"),
        ({"test_size": 1.5}, "'test_size' parameter"),
        ({"test_size": float("nan")}, "'test_size' parameter"),
        ({"test_size": "0.2"}, "'test_size' parameter"),
        ({"n_splits": 0}, "'n_splits' parameter must be an int in the range"),
        ({"n_splits": 2.0}, "'n_splits' parameter"),
        ({"strategy": "kfold"}, "'strategy' parameter must be one of .*'leave_n_out'"),
        ({"n_test": 0}, "'n_test' parameter"),
        ({"min_train": 0}, "'min_train' parameter"),
        ({"random_state": -1}, "'random_state' parameter"),
        ({"random_state": "seed"}, "'random_state' parameter"),
        ({"strategy": "temporal", "n_splits": 3}, "would all be identical; use n_splits=1"),
    ],
)
def test_bad_parameters_are_refused(params, match):
    params = {"n_splits": 2, **params}
    with pytest.raises(ValueError, match=match):
        UserHoldoutSplit(**params)


def test_parameters_are_rechecked_at_split_time():
    cv = UserHoldoutSplit(2)
    cv.test_size = 2.0
    with pytest.raises(ValueError, match="'test_size' parameter"):
        cv.split(many_users(5))


def test_no_test_rows_is_explained():
    X = np.array([[0, 0], [1, 0], [2, 1], [2, 1]])  # every user has one distinct item
    with pytest.raises(ValueError, match=r"no test rows.*min_train=1"):
        train_test_split(X, strategy="leave_n_out")


def test_bad_interactions_are_reported_by_the_shared_checks():
    with pytest.raises(ValueError, match="shape"):
        UserHoldoutSplit(1).split(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="empty"):
        UserHoldoutSplit(1).split(np.zeros((0, 2)))


def test_get_n_splits_and_repr():
    cv = UserHoldoutSplit(4, strategy="leave_n_out", n_test=2, random_state=3)
    assert cv.get_n_splits() == cv.get_n_splits(np.zeros((3, 2)), None, None) == 4
    text = repr(cv)
    assert text.startswith("UserHoldoutSplit(n_splits=4, strategy='leave_n_out'")
    assert "n_test=2" in text and "random_state=3" in text and "timestamp_col='timestamp'" in text


# ---------------------------------------------------------------------------------------------
# Scorers and scikit-learn integration
# ---------------------------------------------------------------------------------------------


class MostPopular(BaseEstimator):
    """Recommends the most popular unseen items, skipping the ``skip`` most popular."""

    def __init__(self, skip: int = 0):
        self.skip = skip

    def fit(self, X, y=None):
        X = np.asarray(X)
        items, counts = np.unique(X[:, 1], return_counts=True)
        self.ranking_ = items[np.argsort(-counts, kind="stable")][self.skip :]
        self.seen_ = {u: set(X[X[:, 0] == u, 1].tolist()) for u in np.unique(X[:, 0])}
        return self

    def score(self, X, y=None, *, metric="recall", k=20):
        X = np.asarray(X)
        values = []
        for user in np.unique(X[:, 0]):
            truth = set(X[X[:, 0] == user, 1].tolist())
            recs = [i for i in self.ranking_.tolist() if i not in self.seen_.get(user, ())][:k]
            hits = len(truth & set(recs))
            if metric == "recall":
                values.append(hits / min(k, len(truth)))
            elif metric == "hit_rate":
                values.append(float(hits > 0))
            else:
                raise ValueError(metric)
        return float(np.mean(values))


class RecordingEstimator:
    def __init__(self, value=0.25):
        self.value = value
        self.calls = []

    def score(self, X, y=None, *, metric="recall", k=20):
        self.calls.append((X, y, metric, k))
        return np.float32(self.value)


def popular_data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 41)
    rows = [[u, i] for u in range(60) for i in rng.choice(40, 12, replace=False, p=p / p.sum())]
    return np.array(rows)


def test_scorer_calls_estimator_score_with_metric_and_k():
    scorer = make_ranking_scorer("ndcg", k=7)
    est = RecordingEstimator(0.25)
    X = np.array([[0, 1]])
    result = scorer(est, X)
    assert result == 0.25 and type(result) is float
    assert len(est.calls) == 1
    X_seen, y_seen, metric, k = est.calls[0]
    assert X_seen is X and y_seen is None and metric == "ndcg" and k == 7
    scorer(est, X, np.ones(1))  # y is accepted and ignored
    assert est.calls[-1][1:] == (None, "ndcg", 7)


def test_scorer_defaults_repr_and_pickle():
    scorer = make_ranking_scorer()
    assert (scorer.metric, scorer.k) == ("recall", 20)
    assert repr(make_ranking_scorer("ndcg", k=20)) == "make_ranking_scorer('ndcg', k=20)"
    clone = pickle.loads(pickle.dumps(make_ranking_scorer("map", k=5)))
    assert repr(clone) == "make_ranking_scorer('map', k=5)"


@pytest.mark.parametrize(
    "metric", ["recall", "precision", "ndcg", "hit_rate", "map", "mrr", "coverage"]
)
def test_scorer_accepts_every_metric_name(metric):
    assert make_ranking_scorer(metric, k=3).metric == metric


def test_scorer_rejects_bad_metric_and_k():
    with pytest.raises(ValueError, match=r"'metric' parameter must be one of .*'ndcg'"):
        make_ranking_scorer("auc")
    with pytest.raises(ValueError, match="'metric' parameter"):
        make_ranking_scorer(None)
    with pytest.raises(ValueError, match="k must be >= 1"):
        make_ranking_scorer("recall", k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        make_ranking_scorer("recall", k=2.5)
    with pytest.raises(TypeError, match="no score method"):
        make_ranking_scorer()(object(), np.array([[0, 1]]))


def test_cross_validate_with_splitter_and_scorers():
    X = popular_data()
    cv = UserHoldoutSplit(3, test_size=0.25, random_state=0)
    result = cross_validate(
        MostPopular(), X, cv=cv, scoring=make_ranking_scorer("recall", k=5), return_indices=True
    )
    assert result["test_score"].shape == (3,)
    assert np.all((0 <= result["test_score"]) & (result["test_score"] <= 1))
    for (train, test), train_cv, test_cv in zip(
        cv.split(X), result["indices"]["train"], result["indices"]["test"], strict=True
    ):
        assert np.array_equal(train, train_cv) and np.array_equal(test, test_cv)
    # Scores equal fitting and scoring by hand.
    train, test = next(cv.split(X))
    expected = MostPopular().fit(X[train]).score(X[test], metric="recall", k=5)
    assert result["test_score"][0] == pytest.approx(expected)

    multi = cross_validate(
        MostPopular(),
        X,
        cv=cv,
        scoring={
            "recall@5": make_ranking_scorer("recall", k=5),
            "hit@10": make_ranking_scorer("hit_rate", k=10),
        },
    )
    assert np.allclose(multi["test_recall@5"], result["test_score"])
    assert np.all(multi["test_hit@10"] >= 0)


def test_grid_search_with_splitter_and_scorer():
    pd = pytest.importorskip("pandas")
    X = popular_data()
    search = GridSearchCV(
        MostPopular(),
        {"skip": [0, 10]},
        cv=UserHoldoutSplit(2, strategy="leave_n_out", n_test=3, random_state=0),
        scoring=make_ranking_scorer("recall", k=5),
    )
    search.fit(X)
    # Recommending the most popular items beats skipping them on popularity-skewed data.
    assert search.best_params_ == {"skip": 0}
    assert {"split0_test_score", "split1_test_score"} <= set(search.cv_results_)
    # DataFrame input works too (the dummy estimator reads columns 0 and 1).
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1]})
    assert len(list(UserHoldoutSplit(2, random_state=0).split(df))) == 2
