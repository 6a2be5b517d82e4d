"""The epoch loop's building blocks: negative sampling, graph generation, the loss schedule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from diffmm import losses
from diffmm._compute import _malloc_trim, release_free_memory
from diffmm._diffusion_phases import DiffusionConfig, DiffusionPhases
from diffmm._graph import adjacency_from_matrix
from diffmm._inference import denoise_rows
from diffmm._model import Denoiser, DiffMMNetwork, LightGCNNetwork, NetworkConfig
from diffmm._objectives import DiffMMObjective, LightGCNObjective
from diffmm._training import Trainer, TrainingConfig, sample_negatives
from diffmm.diffusion import DiffusionSchedule
from test_losses import ref_info_nce_stable  # SPEC §6 in NumPy float64


@st.composite
def interaction_matrices(draw):
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(2, 15))
    density = draw(st.floats(0.0, 0.9))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = False  # one free item each
    return sp.csr_matrix(dense.astype(np.float32)), seed


@settings(max_examples=60, deadline=None)
@given(interaction_matrices())
def test_negatives_are_never_positives(data):
    matrix, seed = data
    users = np.repeat(np.arange(matrix.shape[0]), 5)
    negatives = sample_negatives(matrix, users, np.random.default_rng(seed))
    assert negatives.shape == users.shape
    assert np.all((negatives >= 0) & (negatives < matrix.shape[1]))
    assert not np.any(np.asarray(matrix[users, negatives]).ravel())


def test_negatives_are_uniform_over_non_interacted_items():
    matrix = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 1, 0, 0]], dtype=np.float32))
    users = np.zeros(50_000, dtype=np.int64)
    negatives = sample_negatives(matrix, users, np.random.default_rng(0))
    allowed = np.flatnonzero(matrix.toarray()[0] == 0)
    counts = np.bincount(negatives, minlength=8)
    assert counts[matrix.indices].sum() == 0
    assert stats.chisquare(counts[allowed]).pvalue > 1e-3


def test_negatives_reproducible_and_user_with_every_item_rejected():
    matrix = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    users = np.array([0, 1, 1, 0])
    a = sample_negatives(matrix, users, np.random.default_rng(5))
    b = sample_negatives(matrix, users, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    full = sp.csr_matrix(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="every item"):
        sample_negatives(full, np.array([0]), np.random.default_rng(0))


_OBJECTIVE_DEFAULTS = {
    "l2_weight": 1e-5,
    "contrastive": "modal_modal",
    "contrastive_weight": 1e-2,
    "temperature": 0.5,
}


def _trainer(matrix, batch_size=7, evaluate=None, **settings):
    """A DiffMM trainer on small random features; ``settings`` go where each one belongs."""
    n_users, n_items = matrix.shape
    gen = torch.Generator().manual_seed(0)
    features = [torch.randn(n_items, 6, generator=gen), torch.randn(n_items, 4, generator=gen)]
    network = DiffMMNetwork(NetworkConfig(n_users, n_items, (6, 4), embedding_dim=8), features)
    denoisers = [Denoiser(n_items, (16,), generator=gen) for _ in features]
    rng = np.random.default_rng(0)
    diffusion_keys = {"alignment_weight", "graph_top_k", "edge_keep_rate", "precision"}
    diffusion = DiffusionPhases(
        network,
        denoisers,
        DiffusionSchedule(),
        matrix,
        DiffusionConfig(
            batch_size=batch_size, **{k: v for k, v in settings.items() if k in diffusion_keys}
        ),
        device=torch.device("cpu"),
        rng=rng,
        generator=torch.Generator().manual_seed(1),
    )
    objective = DiffMMObjective(
        network,
        adjacency_from_matrix(matrix),
        diffusion,
        **{k: settings.get(k, v) for k, v in _OBJECTIVE_DEFAULTS.items()},
    )
    loop = {k: v for k, v in settings.items() if k in {"epochs", "patience", "eval_every"}}
    return Trainer(
        objective,
        matrix,
        TrainingConfig(batch_size=batch_size, **loop),
        device=torch.device("cpu"),
        rng=rng,
        diffusion=diffusion,
        evaluate=evaluate,
    )


@pytest.fixture
def matrix():
    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((30, 20)) < 0.2).astype(np.float32))


@pytest.mark.parametrize("k", [1, 3])
def test_generated_graphs_connect_each_user_to_k_items(matrix, k):
    trainer = _trainer(matrix, graph_top_k=k, edge_keep_rate=1.0)
    graphs = trainer.diffusion.generate_graphs()
    assert len(graphs) == 2
    n_users = matrix.shape[0]
    for graph in graphs:
        dense = graph.to_dense().numpy()
        block = dense[:n_users, n_users:]
        assert np.all((block > 0).sum(axis=1) == k)  # SPEC §4: top-k edges per user
        np.testing.assert_allclose(dense, dense.T, rtol=1e-6)
        assert np.all(np.diag(dense) > 0)  # self-loops
        assert np.all(dense[:n_users, :n_users][~np.eye(n_users, dtype=bool)] == 0)


@pytest.mark.parametrize("k", [1, 3])
def test_generated_edges_are_each_users_top_k_denoised_items(matrix, k):
    # Batches of 7 over 30 users (the last one partial), against one chain over all users.
    trainer = _trainer(matrix, graph_top_k=k, edge_keep_rate=1.0)
    n_users = matrix.shape[0]
    rows = torch.as_tensor(matrix.toarray())
    for denoiser, graph in zip(
        trainer.diffusion.denoisers, trainer.diffusion.generate_graphs(), strict=True
    ):
        denoised = denoise_rows(denoiser, trainer.diffusion.schedule, rows)
        expected = torch.zeros_like(rows, dtype=torch.bool)
        expected.scatter_(1, torch.topk(denoised, k, dim=-1).indices, True)
        block = graph.to_dense()[:n_users, n_users:] > 0
        assert torch.equal(block, expected)


def test_generation_uses_the_denoiser_output(matrix):
    # A denoiser that always predicts item 4 makes every user's top-1 item 4.
    trainer = _trainer(matrix, edge_keep_rate=1.0)
    for denoiser in trainer.diffusion.denoisers:
        last = denoiser.layers[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(-10.0)
            last.bias[4] = 10.0
    for graph in trainer.diffusion.generate_graphs():
        block = graph.to_dense().numpy()[: matrix.shape[0], matrix.shape[0] :]
        assert np.all(block[:, 4] > 0) and np.all(np.delete(block, 4, axis=1) == 0)


def test_denoiser_epoch_reduces_diffusion_loss(matrix):
    trainer = _trainer(matrix)
    first = trainer.diffusion.train_denoisers()["loss_diffusion"]
    for _ in range(15):
        last = trainer.diffusion.train_denoisers()["loss_diffusion"]
    assert last < first


def test_recommender_epoch_updates_only_the_recommender(matrix):
    trainer = _trainer(matrix, contrastive="main_modal")
    before = [p.detach().clone() for p in trainer.diffusion.denoisers[0].parameters()]
    emb = trainer.network.user_embedding.detach().clone()
    trainer.diffusion.generate_graphs()
    losses = trainer.recommender_epoch()
    assert set(losses) == {"loss_bpr", "loss_l2", "loss_contrastive"}
    assert losses["loss_contrastive"] > 0
    assert not torch.equal(emb, trainer.network.user_embedding)
    for a, b in zip(before, trainer.diffusion.denoisers[0].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("scheme", ["main_modal", "modal_modal"])
def test_contrastive_term_is_the_spec_formula(matrix, scheme):
    # One batch of every interaction: the epoch's loss is the SPEC §6 InfoNCE sum over the
    # scheme's pairs, on the batch's users (user rows) and positive items (item rows).
    trainer = _trainer(matrix, batch_size=matrix.nnz, contrastive=scheme, edge_keep_rate=1.0)
    graphs = trainer.diffusion.generate_graphs()
    with torch.no_grad():
        output, views = trainer.network(trainer.objective.adjacency, graphs, with_views=True)
    output, views = output.double().numpy(), [v.double().numpy() for v in views]
    n_users = matrix.shape[0]
    users, items = trainer.train_users, trainer.train_items
    pairs = [(output, z) for z in views] if scheme == "main_modal" else [(views[0], views[1])]
    tau = trainer.objective.temperature
    expected = sum(
        ref_info_nce_stable(x[:n_users], y[:n_users], users, tau)
        + ref_info_nce_stable(x[n_users:], y[n_users:], items, tau)
        for x, y in pairs
    )
    record = trainer.recommender_epoch()
    assert record["loss_contrastive"] == pytest.approx(float(expected), rel=1e-5)


def test_batch_l2_is_lightgcns_term(matrix):
    # LightGCN: λ·(‖e_u‖² + ‖e_i‖² + ‖e_j‖²)/(2B) over the batch's rows, not the tables.
    network = LightGCNNetwork(*matrix.shape, embedding_dim=8, generator=torch.Generator())
    trainer = Trainer(
        LightGCNObjective(network, adjacency_from_matrix(matrix, self_loops=False), l2_weight=1.0),
        matrix,
        TrainingConfig(batch_size=matrix.nnz),
        device=torch.device("cpu"),
        rng=np.random.default_rng(0),
    )
    users_emb = trainer.network.user_embedding.detach().clone()
    items_emb = trainer.network.item_embedding.detach().clone()
    rng_state = trainer.rng.bit_generator.state
    negatives = sample_negatives(trainer.matrix, trainer.train_users, np.random.default_rng(0))
    trainer.rng.bit_generator.state = rng_state
    record = trainer.recommender_epoch()
    expected = (
        users_emb[trainer.train_users].pow(2).sum()
        + items_emb[trainer.train_items].pow(2).sum()
        + items_emb[negatives].pow(2).sum()
    ) / (2 * matrix.nnz)
    assert record["loss_l2"] == pytest.approx(float(expected), rel=1e-5)
    tables = _trainer(matrix, batch_size=matrix.nnz, l2_weight=1.0, contrastive=None)
    with torch.no_grad():
        full = (
            tables.network.user_embedding.pow(2).sum() + tables.network.item_embedding.pow(2).sum()
        )
    assert tables.recommender_epoch()["loss_l2"] == pytest.approx(float(full), rel=1e-5)


def test_free_memory_release_is_a_no_op_without_glibc(monkeypatch):
    _malloc_trim.cache_clear()
    try:

        def no_library(name):
            raise OSError("no C library here")

        monkeypatch.setattr("diffmm._compute.ctypes.CDLL", no_library)
        assert _malloc_trim() is None
        release_free_memory()  # nothing to call: returns quietly
    finally:
        monkeypatch.undo()
        _malloc_trim.cache_clear()
    release_free_memory()  # with the real C library (glibc here: malloc_trim)


def test_free_memory_goes_back_after_each_phase_and_after_the_snapshot(matrix, monkeypatch):
    # Three phases, then the epoch's snapshot (which may free the one it replaces): four
    # releases per epoch, the last once the epoch is committed.
    trainer = _trainer(matrix, epochs=2, evaluate=lambda users, items: 0.0)
    seen = []
    monkeypatch.setattr(
        "diffmm._training.release_free_memory",
        lambda: seen.append(trainer_result.epoch if trainer_result else None),
    )
    trainer_result = None
    original = Trainer._epoch

    def epoch(self, result):
        nonlocal trainer_result
        trainer_result = result
        original(self, result)

    monkeypatch.setattr(Trainer, "_epoch", epoch)
    trainer.run()
    assert seen == [0, 0, 0, 1, 1, 1, 1, 2]


def test_draws_into_buffers_equal_fresh_draws(matrix):
    # The CPU path draws into reused buffers, the CUDA path into fresh tensors: same numbers.
    phases = _trainer(matrix, batch_size=12).diffusion
    batches = [np.arange(0, 12), np.arange(12, 24), np.arange(24, 30)]  # a short last batch
    state = phases.generator.get_state()
    fresh = [tuple(x.clone() for x in item) for item in phases._draws(batches)]
    phases.generator.set_state(state)
    shape = (12, phases.n_items)
    buffers = [(torch.empty(shape), torch.empty(shape)) for _ in range(2)]
    drawn = [tuple(x.clone() for x in item) for item in phases._draws(batches, buffers)]
    assert len(fresh) == len(drawn) == len(batches) * len(phases.denoisers)
    for a, b in zip(fresh, drawn, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert drawn[-1][1].shape == (6, phases.n_items)


@pytest.mark.parametrize("scheme", ["main_modal", "modal_modal"])
def test_contrastive_pairs_over_three_views_are_info_nce_terms(scheme):
    # A view that is the first of one pair and the second of another (modal_modal over
    # three modalities) is normalised once as a second: the value and every gradient are
    # those of the plain sum of info_nce over the pairs.
    n_users, n_items, dim = 9, 7, 5
    gen = torch.Generator().manual_seed(0)
    features = [torch.randn(n_items, 3, generator=gen) for _ in range(3)]
    network = DiffMMNetwork(NetworkConfig(n_users, n_items, (3, 3, 3), embedding_dim=dim), features)
    objective = DiffMMObjective(
        network, None, None, **{**_OBJECTIVE_DEFAULTS, "contrastive": scheme}
    )
    users, items = torch.tensor([0, 4, 4, 8]), torch.tensor([6, 1, 1, 2])
    base = [torch.randn(n_users + n_items, dim, generator=gen) for _ in range(4)]
    tau = objective.temperature

    def leaves():
        return [t.clone().requires_grad_() for t in base]

    output, *views = got = leaves()
    value = objective._contrastive(output, views, users, items)
    value.backward()
    output, *views = want = leaves()
    if scheme == "main_modal":
        pairs = [(output, z) for z in views]
    else:
        pairs = [(views[a], views[b]) for a, b in [(0, 1), (0, 2), (1, 2)]]
    expected = sum(
        losses.info_nce(x[:n_users], y[:n_users], users, tau)
        + losses.info_nce(x[n_users:], y[n_users:], items, tau)
        for x, y in pairs
    )
    expected.backward()
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    for a, b in zip(got, want, strict=True):
        if b.grad is None:
            assert a.grad is None or not a.grad.any()
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
