"""Tests for diffmm.baselines: popularity exercises the shared BaseRecommender API, LightGCN
the shared training plumbing."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.utils import estimator_checks

from diffmm import ModelFileError, PopularityRecommender, UnknownIdError
from diffmm._graph import adjacency_from_matrix
from diffmm._model import LightGCNNetwork
from diffmm.baselines import LightGCNRecommender
from diffmm.datasets import make_synthetic
from diffmm.metrics import evaluate as evaluate_metrics
from diffmm.metrics import ndcg_at_k, recall_at_k
from diffmm.model_selection import UserHoldoutSplit, make_ranking_scorer

# Users 0..3, items 0..2. Item 0 has 3 users, item 1 has 2, item 2 has 1; the duplicate row
# (1, 0) must count once.
X = np.array([[0, 0], [1, 0], [1, 1], [2, 2], [2, 0], [3, 1], [1, 0]])
POPULARITY = [3.0, 2.0, 1.0]
TRAIN_ITEMS = {0: {0}, 1: {0, 1}, 2: {0, 2}, 3: {1}}


@pytest.fixture(scope="module")
def model() -> PopularityRecommender:
    return PopularityRecommender().fit(X)


@pytest.fixture(scope="module")
def synthetic():
    ds = make_synthetic(n_users=40, n_items=30, interactions_per_user=6, random_state=0)
    return ds


def hand_ranking(popularity, seen: set, n: int) -> list[int]:
    """Item indices by popularity (ties: lower index first), seen items left out."""
    order = sorted(range(len(popularity)), key=lambda i: (-popularity[i], i))
    return [i for i in order if i not in seen][:n]


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


def _sparse(fmt):
    return sp.coo_matrix((np.ones(len(X)), (X[:, 0], X[:, 1])), shape=(4, 3)).asformat(fmt)


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        pytest.param(lambda: X.copy(), {}, id="ndarray"),
        pytest.param(lambda: X.tolist(), {}, id="list"),
        pytest.param(lambda: np.column_stack([X, np.arange(1, 8) / 2]), {}, id="weights"),
        pytest.param(lambda: pd.DataFrame(X, columns=["user", "item"]), {}, id="dataframe"),
        pytest.param(
            lambda: pd.DataFrame(X, columns=["u", "i"]).assign(w=5.0),
            {"user_col": "u", "item_col": "i", "weight_col": "w"},
            id="dataframe-named-columns",
        ),
        pytest.param(lambda: _sparse("coo"), {}, id="coo"),
        pytest.param(lambda: _sparse("csr"), {}, id="csr"),
        pytest.param(lambda: _sparse("csc"), {}, id="csc"),
    ],
)
def test_fit_forms_give_the_same_popularity(make, kwargs):
    data = make()
    before = data.copy() if hasattr(data, "copy") else list(data)
    model = PopularityRecommender(**kwargs).fit(data)
    np.testing.assert_array_equal(model.popularity_, POPULARITY)
    np.testing.assert_array_equal(model.user_ids_, [0, 1, 2, 3])
    np.testing.assert_array_equal(model.item_ids_, [0, 1, 2])
    assert model.n_users_ == 4 and model.n_items_ == 3
    # Binarised training matrix; the caller's data is untouched and not shared.
    np.testing.assert_array_equal(
        model.interactions_.toarray(), [[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0]]
    )
    if isinstance(data, pd.DataFrame):
        assert data.equals(before)
    elif sp.issparse(data):
        assert (data != before).nnz == 0
        assert not np.shares_memory(model.interactions_.data, data.data)
    else:
        np.testing.assert_array_equal(np.asarray(data), np.asarray(before))


def test_fit_keeps_raw_ids():
    df = pd.DataFrame({"user": ["bob", "al", "al", "cy"], "item": [30, 10, 30, 20]})
    model = PopularityRecommender().fit(df)
    assert model.user_ids_.tolist() == ["al", "bob", "cy"]
    assert model.item_ids_.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(model.popularity_, [1, 1, 2])


def test_sparse_fit_keeps_empty_rows_and_columns():
    m = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]))
    model = PopularityRecommender().fit(m)
    assert model.n_users_ == 3 and model.n_items_ == 4
    np.testing.assert_array_equal(model.popularity_, [2, 1, 0, 0])


def test_cold_items_from_feature_dataframes():
    features = {"v": pd.DataFrame(np.eye(4), index=["d", "c", "b", "a"])}
    df = pd.DataFrame({"user": ["u", "w", "w"], "item": ["b", "b", "a"]})
    model = PopularityRecommender().fit(df, features)
    assert model.item_ids_.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(model.popularity_, [1, 2, 0, 0])
    items, scores = model.recommend(["u"], n=3)
    assert items.tolist() == [["a", "c", "d"]] and scores.tolist() == [[1.0, 0.0, 0.0]]
    np.testing.assert_array_equal(model.predict([["u", "c"], ["w", "b"]]), [0.0, 2.0])


def test_fit_validates_parameters():
    with pytest.raises(ValueError, match=r"The 'weight_col' parameter must be str or None; got 3"):
        PopularityRecommender(weight_col=3).fit(X)
    with pytest.raises(ValueError, match=r"The 'user_col' parameter must be str; got None"):
        PopularityRecommender(user_col=None).fit(X)


def test_fit_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^interactions is empty"):
        PopularityRecommender().fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match=r"^interactions has no column\(s\) \['user'\]"):
        PopularityRecommender().fit(pd.DataFrame({"uid": [0], "item": [1]}))


# ---------------------------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------------------------


def test_recommend_best_first_excluding_seen(model):
    items, scores = model.recommend([3, 0], n=2)
    assert items.tolist() == [[0, 2], [1, 2]]
    assert scores.tolist() == [[3.0, 1.0], [2.0, 1.0]]
    assert items.dtype.kind == "i" and scores.dtype == np.float64
    for user, row in zip([3, 0], items.tolist(), strict=True):
        assert row == hand_ranking(POPULARITY, TRAIN_ITEMS[user], 2)


def test_recommend_including_seen(model):
    items, scores = model.recommend([1], n=3, exclude_seen=False)
    assert items.tolist() == [[0, 1, 2]] and scores.tolist() == [[3.0, 2.0, 1.0]]


def test_recommend_single_id_and_order_of_users(model):
    items, _ = model.recommend(2, n=1)
    assert items.tolist() == [[1]]
    items, _ = model.recommend([2, 3, 2], n=1)
    assert items.tolist() == [[1], [0], [1]]


def test_recommend_restricted_candidates(model):
    items, scores = model.recommend([3], n=2, items=[2, 0], exclude_seen=False)
    assert items.tolist() == [[0, 2]] and scores.tolist() == [[3.0, 1.0]]
    items, scores = model.recommend([0], n=2, items=[1, 2, 1])
    assert items.tolist() == [[1, 2]]
    items, scores = model.recommend([3], n=2, exclude_items=[0])
    assert items[0, 0] == 2  # 1 is seen and 0 excluded, so the second place is padding
    assert scores.tolist() == [[1.0, -np.inf]]
    items, _ = model.recommend([0], n=1, exclude_items=[1], exclude_seen=False)
    assert items.tolist() == [[0]]
    with pytest.raises(ValueError, match="No candidate items are left"):
        model.recommend([0], items=[1], exclude_items=[1])
    with pytest.raises(UnknownIdError, match=r"^items: 1 unknown item\(s\) \(9\)"):
        model.recommend([0], items=[9])
    with pytest.raises(UnknownIdError, match=r"^exclude_items: 1 unknown item\(s\) \(7\)"):
        model.recommend([0], exclude_items=[7])


def test_recommend_clips_n_with_a_warning_and_pads(model):
    with pytest.warns(UserWarning, match=r"n=10 is larger than the 3 candidate items; returning 3"):
        items, scores = model.recommend([0, 1], n=10)
    assert items.shape == (2, 3) and scores.shape == (2, 3)
    # User 0 saw 1 item and user 1 saw 2: their rows end in -inf padding.
    assert scores[0].tolist() == [2.0, 1.0, -np.inf]
    assert scores[1].tolist() == [1.0, -np.inf, -np.inf]
    assert items[0, :2].tolist() == [1, 2] and items[1, 0] == 2
    with pytest.warns(UserWarning, match=r"n=5 is larger than the 2 candidate items"):
        items, _ = model.recommend([0], n=5, items=[0, 2], exclude_seen=False)
    assert items.tolist() == [[0, 2]]


def test_recommend_no_warning_when_n_fits(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.recommend([0], n=3)


def test_recommend_bad_arguments(model):
    with pytest.raises(UnknownIdError, match=r"^users: 2 unknown user\(s\) \(7, 9\)"):
        model.recommend([0, 7, 9])
    with pytest.raises(UnknownIdError, match=r"unknown user\(s\) \('0'\)"):
        model.recommend(["0"])
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0\."):
        model.recommend([0], n=0)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got -2\."):
        model.recommend([0], n=-2)
    with pytest.raises(TypeError, match=r"^n must be an integer >= 1, got 2\.5\."):
        model.recommend([0], n=2.5)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1"):
        model.recommend([0], batch_size=0)
    with pytest.raises(ValueError, match=r"users is empty"):
        model.recommend([])
    with pytest.raises(ValueError, match=r"users must be a 1-D array"):
        model.recommend([[0, 1]])


def test_recommend_batches_agree(synthetic):
    model = PopularityRecommender().fit(synthetic.train)
    users = np.arange(synthetic.n_users)
    a = model.recommend(users, n=7, batch_size=3)
    b = model.recommend(users, n=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    pop = model.popularity_.tolist()
    for u in users[:10]:
        seen = set(synthetic.train[u].indices.tolist())
        assert a[0][u].tolist() == hand_ranking(pop, seen, 7)


def test_string_ids_round_trip():
    df = pd.DataFrame(
        {
            "user": ["ann", "ben", "ben", "cat", "cat", "cat"],
            "item": ["x", "x", "y", "x", "y", "z"],
        }
    )
    model = PopularityRecommender().fit(df)
    assert model.user_ids_.tolist() == ["ann", "ben", "cat"]
    assert model.item_ids_.tolist() == ["x", "y", "z"]
    items, scores = model.recommend(["ann", "ben"], n=2)
    assert items.dtype.kind == "U"
    assert items[0].tolist() == ["y", "z"] and items[1, 0] == "z"
    assert scores.tolist() == [[2.0, 1.0], [1.0, -np.inf]]
    items, _ = model.recommend("cat", n=2, exclude_seen=False, exclude_items=["y"])
    assert items.tolist() == [["x", "z"]]
    items, _ = model.recommend(np.array(["ben"], dtype=object), n=1, items=["z", "y"])
    assert items.tolist() == [["z"]]
    np.testing.assert_array_equal(
        model.predict(pd.DataFrame({"user": ["ann"], "item": ["z"]})), [1]
    )
    with pytest.raises(UnknownIdError, match=r"unknown user\(s\) \('dan'\)"):
        model.recommend(["dan"])


def test_mixed_type_ids_round_trip():
    rows = [("u1", 10), ("u1", 11), (5, 11), (5, "b")]
    model = PopularityRecommender().fit(rows)
    assert sorted(model.item_ids_.tolist(), key=str) == [10, 11, "b"]
    items, scores = model.recommend(["u1"], n=1)
    assert items.tolist() == [["b"]] and scores.tolist() == [[1.0]]
    items, _ = model.recommend([5], n=1)
    assert items.tolist() == [[10]]


# ---------------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------------


def test_predict(model):
    pairs = np.array([[0, 0], [3, 2], [1, 1], [2, 0]])
    np.testing.assert_array_equal(model.predict(pairs), [3.0, 1.0, 2.0, 3.0])
    df = pd.DataFrame(pairs, columns=["user", "item"]).assign(weight=0.5)
    np.testing.assert_array_equal(model.predict(df), [3.0, 1.0, 2.0, 3.0])
    assert model.predict(pairs).dtype == np.float64


def test_predict_unknown_ids(model):
    with pytest.raises(UnknownIdError, match=r"^X item ids: 1 unknown item\(s\) \(7\)"):
        model.predict([[0, 7]])
    with pytest.raises(UnknownIdError, match=r"^X user ids: 1 unknown user\(s\) \(8\)"):
        model.predict([[8, 0]])
    with pytest.raises(ValueError, match=r"^X is empty"):
        model.predict(np.empty((0, 2)))


# ---------------------------------------------------------------------------------------------
# score and evaluate
# ---------------------------------------------------------------------------------------------


def _hand_top(model, users, k):
    pop = model.popularity_.tolist()
    train = model.interactions_.tocsr()
    rows = [hand_ranking(pop, set(train[u].indices.tolist()), k) for u in users]
    return np.array([r + [-1] * (k - len(r)) for r in rows], dtype=np.int64)


def test_score_is_recall_at_20_by_hand(synthetic):
    model = PopularityRecommender().fit(synthetic.train)
    held = synthetic.validation
    users = np.flatnonzero(held.getnnz(axis=1))
    expected = recall_at_k(_hand_top(model, users, 20), held[users], k=20)
    assert 0 < expected < 1
    assert model.score(held) == pytest.approx(expected)
    rows = synthetic.interaction_rows("validation")
    assert model.score(rows) == pytest.approx(expected)
    ndcg = ndcg_at_k(_hand_top(model, users, 5), held[users], k=5)
    assert model.score(rows, metric="ndcg", k=5) == pytest.approx(ndcg)


def test_evaluate_dict(synthetic):
    model = PopularityRecommender().fit(synthetic.train)
    held = synthetic.validation.tolil()
    held[:5] = 0  # five users without held-out items are skipped
    held = held.tocsr()
    held.eliminate_zeros()
    users = np.flatnonzero(held.getnnz(axis=1))
    result = model.evaluate(held)
    assert set(result) == {
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "precision@10",
        "precision@20",
        "n_users_evaluated",
        "n_users_skipped",
    }
    assert result["n_users_evaluated"] == len(users)
    assert result["n_users_skipped"] == model.n_users_ - len(users) >= 5
    expected = evaluate_metrics(_hand_top(model, users, 20), held[users], ks=(10, 20))
    for key, value in expected.items():
        if "@" in key:
            assert result[key] == pytest.approx(value)
    assert result["recall@20"] == pytest.approx(model.score(held))
    single = model.evaluate(held, metrics="ndcg", ks=5)
    assert set(single) == {"ndcg@5", "n_users_evaluated", "n_users_skipped"}


def test_evaluate_bad_arguments(model):
    with pytest.raises(ValueError, match=r"unknown metric 'nope'; allowed names are: recall"):
        model.evaluate([[0, 1]], metrics=("nope",))
    with pytest.raises(ValueError, match=r"^ks must be >= 1, got 0\."):
        model.evaluate([[0, 1]], ks=(0,))
    with pytest.raises(ValueError, match="ks is empty"):
        model.evaluate([[0, 1]], ks=())
    with pytest.raises(ValueError, match=r"^k must be >= 1"):
        model.score([[0, 1]], k=0)
    with pytest.raises(UnknownIdError, match=r"^X user ids: 1 unknown user\(s\) \(9\)"):
        model.score([[9, 1]])
    with pytest.raises(ValueError, match=r"X is a matrix of shape \(2, 2\), but the model"):
        model.score(sp.csr_matrix(np.eye(2)))


def test_unseen_held_out_items_count_as_misses():
    model = PopularityRecommender().fit([[0, 0], [0, 1], [1, 1]])
    # User 1 saw item 1, so gets item 0 first; item 5 was never seen in training.
    held = [[1, 0], [1, 5], [0, 7]]
    # User 1: 1 hit of 2 relevant; user 0: has seen everything, 0 of 1.
    assert model.score(held) == pytest.approx((0.5 + 0.0) / 2)
    result = model.evaluate(held, metrics=("recall", "precision", "coverage"), ks=(1, 2))
    assert result["recall@1"] == pytest.approx(0.25)
    assert result["precision@1"] == pytest.approx(0.5)
    assert result["coverage@2"] == pytest.approx(0.5)  # 1 of the model's 2 items is shown
    assert result["n_users_evaluated"] == 2
    # Ids of another kind altogether are still reported, not silently scored as zero.
    with pytest.raises(UnknownIdError, match=r"X item ids: 1 unknown item\(s\) \('a'\)"):
        model.score([[1, "a"]])


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.predict(X),
        lambda m: m.recommend([0]),
        lambda m: m.score(X),
        lambda m: m.evaluate(X),
    ],
)
def test_not_fitted(call):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        call(PopularityRecommender())


# ---------------------------------------------------------------------------------------------
# scikit-learn conformance
# ---------------------------------------------------------------------------------------------


def test_get_set_params_and_clone(model):
    assert model.get_params() == {"user_col": "user", "item_col": "item", "weight_col": "weight"}
    est = PopularityRecommender(user_col="u")
    assert est.set_params(item_col="i", weight_col=None) is est
    assert est.get_params() == {"user_col": "u", "item_col": "i", "weight_col": None}
    est.fit(pd.DataFrame({"u": [1, 2], "i": [3, 3], "weight": [-1.0, -2.0]}))  # weight unused
    np.testing.assert_array_equal(est.popularity_, [2.0])
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "popularity_")
    assert "popularity_" not in vars(PopularityRecommender())  # __init__ only stores params
    with pytest.raises(ValueError, match="Invalid parameter 'alpha'"):
        est.set_params(alpha=1)


def test_pickle_round_trip_gives_identical_recommendations():
    df = pd.DataFrame({"user": ["a", "b", "b", "c"], "item": ["x", "x", "y", "z"]})
    model = PopularityRecommender().fit(df)
    again = pickle.loads(pickle.dumps(model))
    users = ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for a, b in zip(model.recommend(users, n=3), again.recommend(users, n=3), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict([["a", "z"]]), model.predict([["a", "z"]]))
    assert again.score([["a", "y"]]) == model.score([["a", "y"]]) == 1.0


@pytest.fixture(scope="module")
def cv_rows(synthetic):
    return synthetic.interaction_rows("train")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cross_validate_and_grid_search(cv_rows, n_jobs):
    cv = UserHoldoutSplit(n_splits=3, random_state=0)
    scorer = make_ranking_scorer("ndcg", k=10)
    result = cross_validate(
        PopularityRecommender(), cv_rows, cv=cv, scoring=scorer, n_jobs=n_jobs, error_score="raise"
    )
    # Each fold's score is what a hand-run fit/score on that fold gives.
    expected = []
    for train, test in cv.split(cv_rows):
        fold = PopularityRecommender().fit(cv_rows[train])
        expected.append(fold.score(cv_rows[test], metric="ndcg", k=10))
    np.testing.assert_allclose(result["test_score"], expected)
    assert np.all((0 < result["test_score"]) & (result["test_score"] < 1))

    search = GridSearchCV(
        PopularityRecommender(),
        {"weight_col": [None, "weight"]},
        cv=cv,
        scoring=scorer,
        n_jobs=n_jobs,
        error_score="raise",
    )
    search.fit(cv_rows)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], np.mean(expected))
    assert search.best_params_ == {"weight_col": None}
    np.testing.assert_array_equal(
        search.best_estimator_.popularity_, PopularityRecommender().fit(cv_rows).popularity_
    )


def test_cross_validate_default_score_is_recall_at_20(cv_rows):
    cv = UserHoldoutSplit(n_splits=2, random_state=1)
    result = cross_validate(PopularityRecommender(), cv_rows, cv=cv, error_score="raise")
    expected = [
        PopularityRecommender().fit(cv_rows[tr]).score(cv_rows[te]) for tr, te in cv.split(cv_rows)
    ]
    np.testing.assert_allclose(result["test_score"], expected)


# ---------------------------------------------------------------------------------------------
# LightGCNRecommender
# ---------------------------------------------------------------------------------------------

LIGHTGCN_FAST = {"embedding_dim": 16, "batch_size": 256, "epochs": 2, "random_state": 0}


def small_lightgcn(**params) -> LightGCNRecommender:
    return LightGCNRecommender(**{**LIGHTGCN_FAST, **params})


def dense_lightgcn_adjacency(r: np.ndarray) -> np.ndarray:
    """``D^-1/2 B D^-1/2`` of the bipartite graph of ``r`` in float64, without self-loops."""
    r = (np.asarray(r) != 0).astype(np.float64)
    n_users, n_items = r.shape
    b = np.zeros((n_users + n_items,) * 2)
    b[:n_users, n_users:] = r
    b[n_users:, :n_users] = r.T
    d = b.sum(axis=1)
    d_inv_sqrt = np.divide(1.0, np.sqrt(d), out=np.zeros_like(d), where=d > 0)
    return d_inv_sqrt[:, None] * b * d_inv_sqrt[None, :]


def to_dense(graph: torch.Tensor) -> np.ndarray:
    return graph.to_dense().double().numpy()


def dense_layer_mean(a: np.ndarray, e: np.ndarray, n_layers: int) -> np.ndarray:
    layers = [e]
    for _ in range(n_layers):
        layers.append(a @ layers[-1])
    return np.mean(layers, axis=0)


@pytest.fixture(scope="module")
def lightgcn(tiny_data) -> LightGCNRecommender:
    return small_lightgcn(epochs=3).fit(tiny_data.train, validation_data=tiny_data.validation)


@pytest.mark.parametrize(
    "check_name",
    [
        "check_no_attributes_set_in_init",
        "check_get_params_invariance",
        "check_set_params",
        "check_parameters_default_constructible",
    ],
)
def test_lightgcn_sklearn_api_checks(check_name):
    getattr(estimator_checks, check_name)("LightGCNRecommender", LightGCNRecommender())


def test_lightgcn_get_params_and_clone(lightgcn):
    params = LightGCNRecommender().get_params()
    assert params["embedding_dim"] == 64 and params["n_layers"] == 3
    assert params["device"] == "auto" and params["patience"] == 10
    assert vars(LightGCNRecommender()) == params  # __init__ only stores its arguments
    twin = clone(lightgcn)
    assert twin.get_params() == lightgcn.get_params()
    assert not hasattr(twin, "user_factors_")
    with pytest.raises(NotFittedError):
        twin.recommend([0])
    est = LightGCNRecommender()
    assert est.set_params(n_layers=1, learning_rate=0.01) is est
    assert est.n_layers == 1 and est.learning_rate == 0.01


def test_lightgcn_is_exported():
    import diffmm.baselines

    assert "LightGCNRecommender" in diffmm.baselines.__all__


def test_lightgcn_fit_and_recommend_shapes(lightgcn, tiny_data):
    n_users, n_items = tiny_data.train.shape
    assert lightgcn.user_factors_.shape == (n_users, 16)
    assert lightgcn.item_factors_.shape == (n_items, 16)
    assert lightgcn.user_factors_.dtype == np.float32
    assert lightgcn.device_ == torch.device("cpu") and lightgcn.device == "auto"
    assert [r["epoch"] for r in lightgcn.history_] == [1, 2, 3]
    assert 1 <= lightgcn.best_epoch_ <= 3 and not lightgcn.stopped_early_
    users = np.arange(10)
    items, scores = lightgcn.recommend(users, n=5)
    assert items.shape == scores.shape == (10, 5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    for u in users:
        assert not set(items[u]) & set(tiny_data.train[u].indices)
    pairs = np.column_stack([np.repeat(users, 5), items.ravel()])
    np.testing.assert_allclose(lightgcn.predict(pairs), scores.ravel(), rtol=1e-5)
    result = lightgcn.evaluate(tiny_data.validation, ks=(5,))
    assert 0 < result["recall@5"] <= 1
    assert 0 <= lightgcn.score(tiny_data.validation) <= 1


def test_lightgcn_training_lowers_bpr_loss(tiny_data):
    model = small_lightgcn(epochs=8, batch_size=128, learning_rate=1e-2).fit(tiny_data.train)
    bpr = [r["loss_bpr"] for r in model.history_]
    assert bpr[0] > 0.6  # near log 2 at the start
    assert bpr[-1] < 0.8 * bpr[0], bpr
    assert np.sum(np.diff(bpr) < 0) >= 6, bpr
    # The shared Trainer ran the recommender step only: no diffusion, no contrastive loss.
    record = model.history_[-1]
    assert record["loss_contrastive"] == 0.0 and record["loss_l2"] > 0
    assert "seconds_denoiser" not in record and "fusion_weights" not in record
    assert model.best_epoch_ == 8  # without validation data the last epoch is kept


def test_lightgcn_beats_popularity_on_planted_data():
    data = make_synthetic(n_users=200, n_items=150, interactions_per_user=15, random_state=0)
    popularity = PopularityRecommender().fit(data.train).score(data.validation)
    model = LightGCNRecommender(
        embedding_dim=32, epochs=10, batch_size=256, learning_rate=1e-2, random_state=0
    ).fit(data.train)
    recall = model.score(data.validation)
    assert recall > 1.15 * popularity, (recall, popularity)


def test_lightgcn_network_averages_layers_like_a_dense_reference():
    r = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=float)  # user 2, item 3 cold
    network = LightGCNNetwork(3, 4, embedding_dim=5, n_layers=3, generator=torch.Generator())
    output = network(adjacency_from_matrix(sp.csr_matrix(r), self_loops=False))
    e = torch.cat([network.user_embedding, network.item_embedding]).detach().double().numpy()
    expected = dense_layer_mean(dense_lightgcn_adjacency(r), e, 3)
    np.testing.assert_allclose(output.detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)
    # Isolated nodes keep E / (L + 1).
    np.testing.assert_allclose(expected[2], e[2] / 4)
    # n_layers=0 is the embedding table itself.
    network.n_layers = 0
    output = network(adjacency_from_matrix(sp.csr_matrix(r), self_loops=False))
    np.testing.assert_allclose(output.detach().double().numpy(), e, rtol=1e-6)


def test_lightgcn_initialisation_is_seeded_xavier():
    a = LightGCNNetwork(30, 20, embedding_dim=8, generator=torch.Generator().manual_seed(1))
    b = LightGCNNetwork(30, 20, embedding_dim=8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.user_embedding, b.user_embedding)
    bound = np.sqrt(6.0 / (30 + 8))
    assert float(a.user_embedding.detach().abs().max()) <= bound
    assert float(a.user_embedding.detach().abs().max()) > 0.8 * bound


def test_lightgcn_factors_use_the_graph_without_self_loops(lightgcn, tiny_data):
    e = torch.cat([lightgcn.network_.user_embedding, lightgcn.network_.item_embedding])
    e = e.detach().double().numpy()
    r = lightgcn.interactions_.toarray()
    factors = np.vstack([lightgcn.user_factors_, lightgcn.item_factors_])
    expected = dense_layer_mean(dense_lightgcn_adjacency(r), e, lightgcn.n_layers)
    np.testing.assert_allclose(factors, expected, rtol=1e-4, atol=1e-5)
    # DiffMM's graph, with self-loops, would give other factors.
    with_loops = to_dense(adjacency_from_matrix(lightgcn.interactions_))
    assert not np.allclose(factors, dense_layer_mean(with_loops, e, lightgcn.n_layers), atol=1e-4)


def test_lightgcn_best_epoch_is_restored(tiny_data):
    model = small_lightgcn(epochs=4, patience=None, learning_rate=1e-2)
    model.fit(tiny_data.train, validation_data=tiny_data.validation)
    scores = [r["validation_score"] for r in model.history_]
    assert len(scores) == 4
    assert model.best_epoch_ == int(np.argmax(scores)) + 1
    assert model.score(tiny_data.validation) == pytest.approx(max(scores))


def test_lightgcn_early_stopping_restores_the_best_epoch(tiny_data, monkeypatch):
    # A validation score that peaks at epoch 2 stops training after `patience` more epochs.
    calls = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0])
    monkeypatch.setattr(
        LightGCNRecommender,
        "_validation_scorer",
        lambda self, matrix, held_out: lambda users, items: next(calls),
    )
    model = small_lightgcn(epochs=10, patience=2)
    model.fit(tiny_data.train, validation_data=tiny_data.validation)
    assert len(model.history_) == 4
    assert model.stopped_early_ and model.best_epoch_ == 2
    # The kept weights are epoch 2's: the same as a run that stopped there (evaluation draws
    # no random numbers).
    monkeypatch.undo()
    two_epochs = small_lightgcn(epochs=2).fit(tiny_data.train)
    np.testing.assert_array_equal(model.user_factors_, two_epochs.user_factors_)
    np.testing.assert_array_equal(model.item_factors_, two_epochs.item_factors_)


def test_lightgcn_patience_needs_validation_data(tiny_data):
    model = small_lightgcn(epochs=3, patience=1).fit(tiny_data.train)
    assert len(model.history_) == 3 and not model.stopped_early_


def test_lightgcn_same_random_state_same_model(tiny_data):
    a = small_lightgcn().fit(tiny_data.train)
    b = small_lightgcn().fit(tiny_data.train)
    c = small_lightgcn(random_state=1).fit(tiny_data.train)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_lightgcn_save_load_gives_identical_scores(lightgcn, tiny_data, tmp_path):
    path = lightgcn.save(tmp_path / "lightgcn.diffmm")
    loaded = LightGCNRecommender.load(path)
    assert loaded.get_params() == lightgcn.get_params()
    users = np.arange(tiny_data.n_users)
    for a, b in zip(loaded.recommend(users, n=10), lightgcn.recommend(users, n=10), strict=True):
        np.testing.assert_array_equal(a, b)
    pairs = tiny_data.interaction_rows("validation")[:, :2]
    np.testing.assert_array_equal(loaded.predict(pairs), lightgcn.predict(pairs))
    assert loaded.score(tiny_data.validation) == lightgcn.score(tiny_data.validation)
    assert loaded.history_ == lightgcn.history_
    assert loaded.best_epoch_ == lightgcn.best_epoch_
    assert loaded.stopped_early_ == lightgcn.stopped_early_
    for key, value in lightgcn.network_.state_dict().items():
        assert torch.equal(loaded.network_.state_dict()[key], value)
    with pytest.raises(ModelFileError, match="holds a LightGCNRecommender"):
        PopularityRecommender.load(path)
    again = pickle.loads(pickle.dumps(lightgcn))
    np.testing.assert_array_equal(again.predict(pairs), lightgcn.predict(pairs))


def test_lightgcn_fit_on_each_device_unpickles_on_cpu(tiny_data, torch_device):
    model = small_lightgcn(epochs=1, device=torch_device)
    model.fit(tiny_data.train, validation_data=tiny_data.validation)
    assert model.device_.type == torch_device and model.device == torch_device
    loaded = pickle.loads(pickle.dumps(model))
    assert all(p.device.type == "cpu" for p in loaded.network_.parameters())
    np.testing.assert_array_equal(loaded.recommend([0, 1])[0], model.recommend([0, 1])[0])


def test_lightgcn_unavailable_cuda_is_a_clear_error(tiny_data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        small_lightgcn(device="cuda").fit(tiny_data.train)


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("n_layers", -1, r"'n_layers' parameter must be an int in the range \[0, inf\]; got -1"),
        ("embedding_dim", 0, r"'embedding_dim' parameter must be an int in the range \[1, inf\]"),
        ("epochs", 1.5, r"'epochs' parameter must be an int in the range \[1, inf\]; got 1.5"),
        ("learning_rate", 0.0, r"'learning_rate' parameter must be a float in the range \(0"),
        ("l2_weight", -1e-3, r"'l2_weight' parameter must be a float in the range \[0"),
        ("patience", 0, r"'patience' parameter must be an int in the range \[1, inf\] or None"),
        ("early_stopping_metric", "auc", r"'early_stopping_metric' parameter must be one of"),
        ("device", "gpu0", r"'device' parameter must be 'auto', a device string"),
        ("random_state", -3, r"'random_state' parameter must be an int in the range \[0"),
        ("weight_col", 3, r"'weight_col' parameter must be str or None; got 3"),
    ],
)
def test_lightgcn_invalid_hyper_parameters(tiny_data, param, value, message):
    with pytest.raises(ValueError, match=message):
        small_lightgcn(**{param: value}).fit(tiny_data.train)


def test_lightgcn_fit_does_not_mutate_the_input(tiny_data):
    matrix = tiny_data.train.copy()
    before = matrix.copy()
    rows = tiny_data.interaction_rows("train")
    rows_before = rows.copy()
    frame = pd.DataFrame({"user": rows[:, 0], "item": rows[:, 1]})
    frame_before = frame.copy()
    validation = tiny_data.validation.copy()
    validation_before = validation.copy()
    model = small_lightgcn(epochs=1).fit(matrix, validation_data=validation)
    small_lightgcn(epochs=1).fit(rows)
    small_lightgcn(epochs=1).fit(frame)
    assert (matrix != before).nnz == 0 and (validation != validation_before).nnz == 0
    assert not np.shares_memory(model.interactions_.data, matrix.data)
    np.testing.assert_array_equal(rows, rows_before)
    assert frame.equals(frame_before)
    assert model.get_params() == small_lightgcn(epochs=1).get_params()


def test_lightgcn_cold_items_from_feature_frames(tiny_data):
    rows = tiny_data.interaction_rows("train")
    n_items = tiny_data.n_items
    features = {"v": pd.DataFrame(np.zeros((n_items + 2, 3)), index=np.arange(n_items + 2))}
    model = small_lightgcn(epochs=1).fit(rows, features)
    assert model.n_items_ == n_items + 2
    items, _ = model.recommend([0], n=n_items + 2 - len(tiny_data.train[0].indices))
    assert {n_items, n_items + 1} <= set(items[0].tolist())
