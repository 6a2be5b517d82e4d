"""New users (fold-in) and new items (cold start) without retraining."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from diffmm import DiffMMRecommender, UnknownIdError
from diffmm.datasets import make_synthetic
from diffmm.metrics import rank_items, recall_at_k

pd = pytest.importorskip("pandas")

PARAMS = {
    "denoiser_hidden_dims": (64,),
    "batch_size": 256,
    "learning_rate": 4e-3,  # four times the batch: the same progress in a quarter of the steps
    "denoiser_learning_rate": 4e-3,
    "epochs": 8,
    "contrastive": "main_modal",
    "random_state": 0,
}


@pytest.fixture(scope="module")
def planted():
    return make_synthetic(
        n_users=300, n_items=200, interactions_per_user=15, validation_fraction=0.0, random_state=4
    )


def _rows(matrix) -> np.ndarray:
    coo = sp.coo_matrix(matrix)
    return np.column_stack([coo.row, coo.col]).astype(np.int64)


@pytest.fixture(scope="module")
def held_out_users(planted):
    """10% of users out of training; their interactions split 80/20 into history/target."""
    rng = np.random.default_rng(0)
    held = rng.choice(planted.n_users, size=planted.n_users // 10, replace=False)
    keep = np.setdiff1d(np.arange(planted.n_users), held)
    rows = _rows(planted.train[keep])
    rows[:, 0] = keep[rows[:, 0]]
    coo = sp.coo_matrix(planted.train[held])
    target = rng.random(coo.nnz) < 0.2
    shape = (len(held), planted.n_items)
    history = sp.csr_matrix((coo.data[~target], (coo.row[~target], coo.col[~target])), shape)
    goal = sp.csr_matrix((coo.data[target], (coo.row[target], coo.col[target])), shape)
    has_both = (np.diff(history.indptr) > 0) & (np.diff(goal.indptr) > 0)
    model = DiffMMRecommender(**PARAMS).fit(rows, planted.features)
    return model, history[has_both], goal[has_both], rows


def test_fold_in_leaves_the_model_unchanged(held_out_users):
    model, history, _, _ = held_out_users
    before = {k: v.clone() for k, v in model.network_.state_dict().items()}
    denoisers = [{k: v.clone() for k, v in d.state_dict().items()} for d in model.denoisers_]
    factors = (model.user_factors_.copy(), model.item_factors_.copy())
    seen = model.interactions_.copy()
    for method in ("propagation", "denoiser"):
        model.recommend_new_users(history, n=5, method=method)
    for key, value in model.network_.state_dict().items():
        assert torch.equal(value, before[key]), key
    for denoiser, saved in zip(model.denoisers_, denoisers, strict=True):
        for key, value in denoiser.state_dict().items():
            assert torch.equal(value, saved[key]), key
    assert np.array_equal(model.user_factors_, factors[0])
    assert np.array_equal(model.item_factors_, factors[1])
    assert (model.interactions_ != seen).nnz == 0 and model.n_users_ == seen.shape[0]


def test_folded_in_users_beat_popularity(held_out_users):
    model, history, goal, rows = held_out_users
    pop = np.bincount(rows[:, 1], minlength=model.n_items_).astype(float)
    pop_top, _ = rank_items(np.broadcast_to(pop, history.shape), 20, exclude=history)
    ids, _ = model.recommend_new_users(history, n=20, method="propagation")
    ours = recall_at_k(ids, goal, 20)
    baseline = recall_at_k(pop_top, goal, 20)
    assert ours > 1.2 * baseline, (ours, baseline)


def test_denoiser_fold_in_beats_chance(held_out_users):
    # Weaker than propagation on this data (see the cold-start docs), but it must carry signal.
    model, history, goal, _ = held_out_users
    ids, _ = model.recommend_new_users(history, n=20, method="denoiser")
    chance = 20 / (model.n_items_ - np.diff(history.indptr).mean())
    assert recall_at_k(ids, goal, 20) > 1.5 * chance


def test_fold_in_excludes_history_and_accepts_raw_id_lists(held_out_users):
    model, history, _, _ = held_out_users
    lists = [history[u].indices.tolist() for u in range(3)]
    ids, scores = model.recommend_new_users(lists, n=10)
    ids_matrix, _ = model.recommend_new_users(history[:3], n=10)
    np.testing.assert_array_equal(ids, ids_matrix)
    for row, seen in zip(ids, lists, strict=True):
        assert not set(row) & set(seen)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_propagation_matches_the_formula(held_out_users):
    model, history, _, _ = held_out_users
    degrees = np.asarray(model.interactions_.sum(axis=0)).ravel()
    items = history[0].indices
    user = (model.item_factors_[items] / np.sqrt(degrees[items] + 1)[:, None]).sum(0)
    user /= np.sqrt(len(items) + 1)
    expected = np.argsort(-(model.item_factors_ @ user), kind="stable")
    expected = [i for i in expected if i not in set(items)][:5]
    ids, _ = model.recommend_new_users([items], n=5)
    np.testing.assert_array_equal(ids[0], expected)


def test_fold_in_bad_input(held_out_users):
    model, _, _, _ = held_out_users
    with pytest.raises(UnknownIdError, match=r"histories\[1\]"):
        model.recommend_new_users([[0, 1], [10_000]])
    with pytest.raises(ValueError, match="are empty"):
        model.recommend_new_users([[0], []])
    with pytest.raises(ValueError, match="method must be"):
        model.recommend_new_users([[0]], method="magic")
    with pytest.raises(TypeError, match="one array of raw item ids per new user"):
        model.recommend_new_users(42)


# -- new items ---------------------------------------------------------------------------------


def _frames(features, items):
    return {name: pd.DataFrame(values[items], index=items) for name, values in features.items()}


@pytest.fixture(scope="module")
def held_out_items(planted):
    rng = np.random.default_rng(1)
    held = rng.choice(planted.n_items, size=planted.n_items // 10, replace=False)
    rows = _rows(planted.train)
    target = np.isin(rows[:, 1], held)
    return held, rows[~target], rows[target]


def _cold_recall(model, target_rows, held, k=5) -> float:
    """Recall@k of the held-out interactions, ranking only the held-out (cold) items."""
    users = np.unique(target_rows[:, 0])
    ids, _ = model.recommend(users, n=k, items=held)
    index = {u: k for k, u in enumerate(users)}
    goal = sp.csr_matrix(
        (np.ones(len(target_rows)), ([index[u] for u in target_rows[:, 0]], target_rows[:, 1])),
        shape=(len(users), model.n_items_),
    )
    return recall_at_k(ids, goal, k)


def test_cold_items_are_recommended_when_features_say_so(planted, held_out_items):
    held, train_rows, target_rows = held_out_items
    all_items = np.arange(planted.n_items)
    model = DiffMMRecommender(**PARAMS).fit(train_rows, _frames(planted.features, all_items))
    assert model.n_items_ == planted.n_items  # cold items are in the catalogue
    chance = 5 / len(held)  # a random order of the cold items
    cold = _cold_recall(model, target_rows, held)
    assert cold > 1.5 * chance, (cold, chance)

    warm = np.setdiff1d(all_items, held)
    added = DiffMMRecommender(**PARAMS).fit(train_rows, _frames(planted.features, warm))
    added.add_items(_frames(planted.features, held))
    assert added.n_items_ == planted.n_items
    late = _cold_recall(added, target_rows, held)
    assert late > 1.5 * chance, (late, chance)


@pytest.fixture
def small_model(tiny_data):
    return DiffMMRecommender(
        epochs=1, denoiser_hidden_dims=(16,), embedding_dim=8, random_state=0
    ).fit(tiny_data.train, tiny_data.features)


def test_add_items_gives_the_encoder_output_of_an_isolated_item(small_model, tiny_data):
    new = {name: values[:3] * 0.5 for name, values in tiny_data.features.items()}
    before = small_model.n_items_
    small_model.add_items(new)
    assert small_model.n_items_ == before + 3
    np.testing.assert_array_equal(small_model.item_ids_[-3:], [before, before + 1, before + 2])
    net = small_model.network_
    weights = torch.softmax(net.fusion_weights.detach(), 0).numpy()
    fused = 0
    for m, name in enumerate(small_model.modalities_):
        projected = net.projections[m](torch.from_numpy(new[name])).detach().numpy()
        fused = fused + weights[m] * projected / np.linalg.norm(projected, axis=1, keepdims=True)
    expected = 2 * fused + 0.5 * fused / np.linalg.norm(fused, axis=1, keepdims=True)
    np.testing.assert_allclose(small_model.item_factors_[-3:], expected, rtol=1e-5, atol=1e-6)
    ids, _ = small_model.recommend([0], n=small_model.n_items_ - 20, exclude_seen=False)
    assert small_model.predict([[0, before + 1]]).shape == (1,)
    assert ids.shape[1] == small_model.n_items_ - 20


def test_add_items_then_save_and_load(small_model, tiny_data, tmp_path):
    small_model.add_items({n: v[:2] for n, v in tiny_data.features.items()})
    loaded = DiffMMRecommender.load(small_model.save(tmp_path / "m.diffmm"))
    np.testing.assert_array_equal(loaded.item_ids_, small_model.item_ids_)
    np.testing.assert_array_equal(loaded.recommend([1])[0], small_model.recommend([1])[0])
    ids, _ = loaded.recommend_new_users([[0, 1]], n=3, method="denoiser")
    assert np.all(ids < small_model.n_items_ - 2)  # the denoisers only know trained items


def test_add_items_bad_input(small_model, tiny_data):
    feats = tiny_data.features
    with pytest.raises(ValueError, match="fitted on"):
        small_model.add_items({"other": next(iter(feats.values()))[:2]})
    with pytest.raises(ValueError, match="columns"):
        small_model.add_items({n: v[:2, :3] for n, v in feats.items()})
    frames = {n: pd.DataFrame(v[:2], index=[0, 1]) for n, v in feats.items()}
    with pytest.raises(ValueError, match="already in the catalogue"):
        small_model.add_items(frames)
    with pytest.raises(ValueError, match="item_ids must have shape"):
        small_model.add_items({n: v[:2] for n, v in feats.items()}, item_ids=[1000])


def test_denoiser_fold_in_scores_are_the_reverse_process_on_the_histories(small_model):
    # Computed from the sparse history rows (as graph generation does); the reference runs the
    # reverse process on dense rows.
    from diffmm._inference import denoise_rows

    histories = [[0, 3, 5], [7], [1, 2, 4, 6, 8]]
    ids, scores = small_model.recommend_new_users(
        histories, n=10, method="denoiser", exclude_seen=False
    )
    dense = torch.zeros(len(histories), small_model.n_items_)
    for row, items in enumerate(histories):
        dense[row, items] = 1.0
    weights = torch.softmax(small_model.network_.fusion_weights.detach(), 0)
    expected = sum(
        weights[m] * denoise_rows(d, small_model._schedule(), dense)
        for m, d in enumerate(small_model.denoisers_)
    ).numpy()
    np.testing.assert_allclose(
        scores, np.take_along_axis(expected, ids, axis=1), rtol=1e-5, atol=1e-6
    )
