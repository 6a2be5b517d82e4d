"""The opt-in options beyond the published model: each does what it claims, defaults unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from diffmm import DiffMMRecommender, LightGCNRecommender
from diffmm._graph import adjacency_from_matrix, item_knn_graph
from diffmm._model import DiffMMNetwork, NetworkConfig
from diffmm._objectives import hardest_negatives
from diffmm._training import (
    Trainer,
    TrainingConfig,
    learning_rate_at,
    sample_negatives,
    sample_pairs,
)
from diffmm.plotting import generated_graph_stats

FAST = {"denoiser_hidden_dims": (32,), "embedding_dim": 16, "batch_size": 128, "random_state": 0}


def skewed_matrix(seed: int = 0) -> sp.csr_matrix:
    """Users with very different numbers of items: 1 heavy user, many light ones."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((40, 60), dtype=np.float32)
    dense[0, :50] = 1  # one heavy user
    for u in range(1, 40):
        dense[u, rng.choice(60, size=1 + u % 3, replace=False)] = 1
    return sp.csr_matrix(dense)


# -- sampling ----------------------------------------------------------------------------------


def test_balanced_sampling_draws_users_uniformly():
    matrix = skewed_matrix()
    users, items = sample_pairs(matrix, 40_000, 1.0, np.random.default_rng(0))
    counts = np.bincount(users, minlength=40)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over users, heavy user included
    assert np.all(np.asarray(matrix[users, items]).ravel() == 1)  # each item is the user's


def test_unbalanced_draws_follow_the_interactions():
    matrix = skewed_matrix()
    users, _ = sample_pairs(matrix, 40_000, 0.0, np.random.default_rng(0))
    expected = np.diff(matrix.indptr) / matrix.nnz * 40_000
    assert stats.chisquare(np.bincount(users, minlength=40), expected).pvalue > 1e-3


def test_excluded_items_are_never_negatives():
    matrix = skewed_matrix()
    excluded = np.zeros(60, dtype=bool)
    excluded[50:] = True  # items 50..59
    users = np.repeat(np.arange(1, 40), 200)
    negatives = sample_negatives(matrix, users, np.random.default_rng(0), excluded=excluded)
    assert not excluded[negatives].any()
    assert not np.asarray(matrix[users, negatives]).any()
    # The heavy user has 50 items and the other 10 are excluded: nothing is left to draw.
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(matrix, np.array([0]), np.random.default_rng(0), excluded=excluded)


def test_hardest_negative_is_the_best_scoring_candidate():
    users_out = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items_out = torch.tensor([[0.1, 0.0], [0.9, 0.0], [0.0, 0.5], [0.0, 2.0]])
    candidates = torch.tensor([[0, 1, 2], [0, 2, 3]])
    picked = hardest_negatives(users_out, items_out, torch.tensor([0, 1]), candidates)
    assert picked.tolist() == [1, 3]
    one = torch.tensor([2, 0])
    assert hardest_negatives(users_out, items_out, torch.tensor([0, 1]), one) is one


def test_training_draws_k_candidates_per_pair(tiny_data, monkeypatch):
    seen = []
    real = Trainer._epoch_triples

    def spy(self):
        triples = real(self)
        seen.append(triples.shape[0])
        return triples

    monkeypatch.setattr(Trainer, "_epoch_triples", spy)
    DiffMMRecommender(epochs=1, negative_candidates=3, **FAST).fit(
        tiny_data.train, tiny_data.features
    )
    assert seen == [2 + 3]  # user, item, three candidates


@pytest.mark.parametrize("model", ["diffmm", "lightgcn"])
def test_neutral_sampling_options_compute_the_default_model(tiny_data, model):
    make = {
        "diffmm": lambda **p: DiffMMRecommender(epochs=2, **FAST, **p),
        "lightgcn": lambda **p: LightGCNRecommender(
            epochs=2, embedding_dim=16, random_state=0, **p
        ),
    }[model]
    default = make().fit(tiny_data.train, tiny_data.features)
    neutral = make(user_balance=0.0, negative_candidates=1).fit(tiny_data.train, tiny_data.features)
    np.testing.assert_array_equal(default.item_factors_, neutral.item_factors_)
    balanced = make(user_balance=1.0).fit(tiny_data.train, tiny_data.features)
    assert not np.array_equal(default.item_factors_, balanced.item_factors_)


# -- learning-rate schedule ---------------------------------------------------------------


def test_cosine_schedule_decays_from_the_rate_towards_zero():
    config = TrainingConfig(epochs=4, learning_rate=0.01, learning_rate_schedule="cosine")
    rates = [learning_rate_at(config, e) for e in range(1, 5)]
    np.testing.assert_allclose(
        rates, [0.01, 0.01 * (1 + 2**-0.5) / 2, 0.005, 0.01 * (1 - 2**-0.5) / 2]
    )
    constant = dataclasses.replace(config, learning_rate_schedule="constant")
    assert [learning_rate_at(constant, e) for e in range(1, 5)] == [0.01] * 4


@pytest.mark.parametrize("model", ["diffmm", "lightgcn"])
def test_the_optimiser_steps_with_the_scheduled_rate(tiny_data, monkeypatch, model):
    used = []
    real = Trainer.recommender_epoch

    def spy(self):
        used.append([group["lr"] for group in self.optimizer.param_groups])
        return real(self)

    monkeypatch.setattr(Trainer, "recommender_epoch", spy)
    make = DiffMMRecommender if model == "diffmm" else LightGCNRecommender
    params = FAST if model == "diffmm" else {"embedding_dim": 16, "random_state": 0}
    fitted = make(epochs=3, learning_rate=0.01, learning_rate_schedule="cosine", **params).fit(
        tiny_data.train, tiny_data.features
    )
    expected = [0.01, 0.0075, 0.0025]
    for rates, rate in zip(used, expected, strict=True):  # every parameter group
        assert rates == pytest.approx([rate] * len(rates))
    assert [h["learning_rate"] for h in fitted.history_] == pytest.approx(expected)
    used.clear()
    default = make(epochs=2, learning_rate=0.01, **params).fit(tiny_data.train, tiny_data.features)
    assert used == [[0.01] * len(used[0])] * 2 and "learning_rate" not in default.history_[0]


# -- cold items ----------------------------------------------------------------------------


def _with_cold_items(data, n_cold=10):
    """The training matrix without any interaction of the last ``n_cold`` items."""
    train = data.train.tolil(copy=True)
    train[:, -n_cold:] = 0
    return sp.csr_matrix(train), np.arange(data.n_items - n_cold, data.n_items)


def test_cold_items_are_never_negatives(tiny_data, monkeypatch):
    train, cold = _with_cold_items(tiny_data)
    drawn = []
    real = Trainer._negatives

    def spy(self, users):
        negatives = real(self, users)
        drawn.append(negatives)
        return negatives

    monkeypatch.setattr(Trainer, "_negatives", spy)
    DiffMMRecommender(epochs=2, cold_items="features", **FAST).fit(train, tiny_data.features)
    assert drawn and not np.isin(np.concatenate(drawn), cold).any()
    drawn.clear()
    DiffMMRecommender(epochs=2, **FAST).fit(train, tiny_data.features)
    assert np.isin(np.concatenate(drawn), cold).any()  # by default they are


def test_cold_items_are_represented_by_their_features(tiny_data):
    train, cold = _with_cold_items(tiny_data)
    model = DiffMMRecommender(epochs=2, cold_items="features", generate_graphs=False, **FAST)
    model.fit(train, tiny_data.features)
    features = [torch.from_numpy(tiny_data.features[m][cold]) for m in model.modalities_]
    expected = model.network_.encode_new_items(features).numpy()
    np.testing.assert_allclose(model.item_factors_[cold], expected, rtol=1e-5, atol=1e-6)


# -- generated graphs ----------------------------------------------------------------------


def test_undropped_graphs_are_used_for_scoring(tiny_data):
    params = {"epochs": 2, "edge_keep_rate": 0.5, "graph_top_k": 2, **FAST}
    n_users = tiny_data.n_users
    dropped = DiffMMRecommender(**params).fit(tiny_data.train, tiny_data.features)
    whole = DiffMMRecommender(score_undropped_graphs=True, **params)
    whole.fit(tiny_data.train, tiny_data.features)
    for graph in whole.generated_graphs_:  # every user keeps both edges
        assert np.all(graph[:n_users, n_users:].getnnz(axis=1) == 2)
    assert any(np.any(g[:n_users, n_users:].getnnz(axis=1) < 2) for g in dropped.generated_graphs_)
    # Training is the same (the option changes only what is scored): the same weights.
    for a, b in zip(dropped.network_.parameters(), whole.network_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not np.array_equal(dropped.user_factors_, whole.user_factors_)


def test_generation_can_propose_only_new_items(tiny_data):
    params = {"epochs": 2, "score_undropped_graphs": True, "graph_top_k": 3, **FAST}
    plain = DiffMMRecommender(**params).fit(tiny_data.train, tiny_data.features)
    new = DiffMMRecommender(generation_excludes_seen=True, **params)
    new.fit(tiny_data.train, tiny_data.features)
    for name, row in generated_graph_stats(new, tiny_data.validation).items():
        assert row["training_share"] == 0.0, name
        assert row["n_edges"] == 3 * tiny_data.n_users
    shares = [
        r["training_share"] for r in generated_graph_stats(plain, tiny_data.validation).values()
    ]
    assert max(shares) > 0  # by default the denoisers re-pick training items too


# -- the item–item graph -------------------------------------------------------------------


def test_item_knn_graph_links_each_item_to_its_most_similar_items():
    rng = np.random.default_rng(0)
    a, b = (torch.from_numpy(rng.normal(size=(30, d)).astype(np.float32)) for d in (5, 7))
    graph = item_knn_graph([a, b], k=4).to_dense()
    torch.testing.assert_close(graph.sum(1), torch.ones(30))
    assert torch.all(torch.diagonal(graph) == 0.25)  # itself, in both modalities
    cosine = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(a, dim=1).T
    top = set(torch.topk(cosine[3], 4).indices.tolist())
    linked = set(torch.nonzero(graph[3]).ravel().tolist())
    assert top <= linked  # modality a's neighbours are among item 3's links
    # Against another item set: rows are the queries, columns the keys.
    assert item_knn_graph([a[:6], b[:6]], [a, b], k=3).shape == (6, 30)


def test_item_graph_adds_its_weighted_term_to_the_items_only(tiny_data):
    base = {"epochs": 1, "item_knn": 5, **FAST}
    off = DiffMMRecommender(item_graph_weight=0.0, **base).fit(tiny_data.train, tiny_data.features)
    default = DiffMMRecommender(**{**base, "item_knn": 0}).fit(tiny_data.train, tiny_data.features)
    # A zero weight adds exactly nothing: the default model, bit for bit.
    np.testing.assert_array_equal(off.item_factors_, default.item_factors_)
    # In the encoder: the items' outputs get the weighted mean of their neighbours' IDs.
    features = [torch.from_numpy(tiny_data.features[m]) for m in tiny_data.modalities]
    config = NetworkConfig(
        tiny_data.n_users,
        tiny_data.n_items,
        tuple(f.shape[1] for f in features),
        embedding_dim=8,
        item_knn=5,
        item_graph_weight=0.7,
    )
    network = DiffMMNetwork(config, features, generator=torch.Generator().manual_seed(0))
    adjacency = adjacency_from_matrix(tiny_data.train)
    with torch.no_grad():
        with_term = network(adjacency, None)[0]
        network.config = dataclasses.replace(config, item_graph_weight=0.0)
        without = network(adjacency, None)[0]
        term = network.item_graph @ network.item_embedding
    n_users = tiny_data.n_users
    torch.testing.assert_close(with_term[:n_users], without[:n_users], rtol=0, atol=0)
    torch.testing.assert_close(
        with_term[n_users:] - without[n_users:], 0.7 * term, atol=1e-5, rtol=0
    )
