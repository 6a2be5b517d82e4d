"""Tables for practitioners: long DataFrames of recommendations and metrics; similar items."""

from __future__ import annotations

import numpy as np
import pytest

from diffmm import DiffMMRecommender, LightGCNRecommender, PopularityRecommender
from diffmm.datasets import make_synthetic

pd = pytest.importorskip("pandas")

PLANTED = make_synthetic(n_users=200, n_items=120, random_state=0)


@pytest.fixture(scope="module")
def model():
    return DiffMMRecommender(epochs=5, random_state=0, denoiser_hidden_dims=(32,)).fit(
        PLANTED.train, PLANTED.features
    )


def test_recommend_frame_has_the_documented_columns_and_the_arrays_values(model):
    ids, scores = model.recommend([3, 1], n=4)
    frame = model.recommend([3, 1], n=4, as_frame=True)
    assert list(frame.columns) == ["user", "item", "rank", "score"]
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "int64", "float64"]
    assert frame["user"].tolist() == [3] * 4 + [1] * 4
    assert frame["rank"].tolist() == [1, 2, 3, 4] * 2
    np.testing.assert_array_equal(frame["item"].to_numpy(), ids.ravel())
    np.testing.assert_allclose(frame["score"].to_numpy(), scores.ravel())


def test_frames_keep_string_ids_and_leave_out_padding():
    rows = np.array([["u1", "a"], ["u1", "b"], ["u2", "b"], ["u2", "c"]], dtype=object)
    model = PopularityRecommender().fit(rows)
    frame = model.recommend(["u1"], n=3, as_frame=True)  # only "c" is left for u1
    assert frame.to_dict("list") == {"user": ["u1"], "item": ["c"], "rank": [1], "score": [1.0]}


def test_new_user_frame_numbers_the_histories(model):
    frame = model.recommend_new_users([[0, 1], [5]], n=3, as_frame=True)
    assert list(frame.columns) == ["user", "item", "rank", "score"]
    assert frame["user"].tolist() == [0, 0, 0, 1, 1, 1]
    assert not set(frame.loc[frame["user"] == 0, "item"]) & {0, 1}  # seen items left out


def test_evaluate_frame_separates_metrics_from_counts(model):
    as_dict = model.evaluate(PLANTED.validation, metrics=("recall", "ndcg"), ks=(5, 10))
    frame = model.evaluate(
        PLANTED.validation, metrics=("recall", "ndcg"), ks=(5, 10), as_frame=True
    )
    assert list(frame.columns) == ["metric", "k", "value"]
    assert pd.api.types.is_string_dtype(frame["metric"])
    assert [str(t) for t in frame.dtypes[1:]] == ["int64", "float64"]
    assert len(frame) == 4
    for row in frame.itertuples():
        assert row.value == as_dict[f"{row.metric}@{row.k}"]
    assert frame.attrs == {
        "n_users_evaluated": as_dict["n_users_evaluated"],
        "n_users_skipped": as_dict["n_users_skipped"],
    }


def test_similar_items_are_by_cosine_and_never_the_item_itself(model):
    ids, scores = model.similar_items([5, 9], n=6)
    unit = model.item_factors_ / np.linalg.norm(model.item_factors_, axis=1, keepdims=True)
    for row, item in enumerate([5, 9]):
        cosine = unit @ unit[item]
        cosine[item] = -np.inf
        np.testing.assert_array_equal(ids[row], np.argsort(-cosine, kind="stable")[:6])
        np.testing.assert_allclose(scores[row], cosine[ids[row]], rtol=1e-5)


def test_similar_items_honour_the_filters(model):
    ids, _ = model.similar_items([5], n=3, candidates=[1, 2, 3, 5, 6], exclude=[2])
    assert set(ids[0]) <= {1, 3, 6}
    frame = model.similar_items([5], n=3, as_frame=True)
    assert list(frame.columns) == ["item", "similar_item", "rank", "score"]
    users = model.similar_users([0, 4], n=5, as_frame=True)
    assert list(users.columns) == ["user", "similar_user", "rank", "score"]
    assert not (users["user"] == users["similar_user"]).any()


def test_an_items_own_features_find_it_on_planted_data(model):
    # A new item with the features of item i (add_items) has item i among its most similar.
    ranks = []
    for item in range(0, 120, 10):
        copy = DiffMMRecommender(**model.get_params())
        copy.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
        copy._users, copy._items = model._users, model._items
        copy.add_items({m: f[item : item + 1] for m, f in PLANTED.features.items()})
        ids, _ = copy.similar_items([120], n=120)
        ranks.append(int(np.flatnonzero(ids[0] == item)[0]))
    assert np.median(ranks) <= 5 and max(ranks) < 60, ranks  # chance: median 60


def test_similar_items_share_the_planted_clusters():
    model = LightGCNRecommender(epochs=20, random_state=0).fit(PLANTED.train)
    clusters = PLANTED.info["item_clusters"]
    ids, _ = model.similar_items(np.arange(120), n=5)
    same = (clusters[ids] == clusters[:, None]).mean()
    chance = np.mean([(clusters == c).mean() for c in clusters])
    assert same > 2 * chance, (same, chance)
