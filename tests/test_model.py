"""Tests for :mod:`diffmm._model` against dense float64 NumPy references (SPEC §2, §5)."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch

import diffmm._model as model_module
from diffmm._graph import bipartite_adjacency, drop_edges, top_k_graph
from diffmm._inference import denoise_rows
from diffmm._model import (
    Denoiser,
    DiffMMNetwork,
    ModalityProjection,
    NetworkConfig,
    TimeEmbedding,
    propagate,
)
from diffmm.diffusion import DiffusionSchedule, q_sample, reverse_step

# ---------------------------------------------------------------------------
# Independent float64 references, written from the SPEC formulas.
# ---------------------------------------------------------------------------


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def ref_sinusoid(t: np.ndarray, dim: int) -> np.ndarray:
    """SPEC §2: cos half then sin half, frequencies exp(−ln(10000)·k/(dim/2))."""
    half = dim // 2
    k = np.arange(half, dtype=np.float64)
    freqs = np.exp(-math.log(10000.0) * k / half)
    angles = np.asarray(t, dtype=np.float64)[:, None] * freqs[None, :]
    emb = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros((len(t), 1))], axis=1)
    return emb


def ref_linear(x: np.ndarray, layer: torch.nn.Linear) -> np.ndarray:
    return x @ np64(layer.weight).T + np64(layer.bias)


def ref_time_embedding(module: TimeEmbedding, t: np.ndarray) -> np.ndarray:
    return ref_linear(ref_sinusoid(t, module.dim), module.linear)


def ref_mlp(denoiser: Denoiser, h: np.ndarray) -> np.ndarray:
    """Linear → tanh → … → Linear, tanh between all layers, none after the last."""
    layers = list(denoiser.layers)
    for index, layer in enumerate(layers):
        h = ref_linear(h, layer)
        if index < len(layers) - 1:
            h = np.tanh(h)
    return h


def ref_denoiser_eval(denoiser: Denoiser, x_t: np.ndarray, t: np.ndarray, normalize: bool):
    if normalize:
        x_t = x_t / np.linalg.norm(x_t, axis=1, keepdims=True)
    h = np.concatenate([x_t, ref_time_embedding(denoiser.time_embedding, t)], axis=1)
    return ref_mlp(denoiser, h)


def leaky_relu(x: np.ndarray, slope: float = 0.2) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


def ref_projection(proj: ModalityProjection, features: np.ndarray) -> np.ndarray:
    if proj.kind == "linear":
        return ref_linear(features, proj.linear)
    return leaky_relu(features @ np64(proj.weight), 0.2)


def l2_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def softmax(w: np.ndarray) -> np.ndarray:
    e = np.exp(w - w.max())
    return e / e.sum()


def ref_propagate(a: np.ndarray, x: np.ndarray, n_layers: int) -> np.ndarray:
    total, cur = x.copy(), x.copy()
    for _ in range(n_layers):
        cur = a @ cur
        total = total + cur
    return total


def ref_network(net: DiffMMNetwork, a: np.ndarray, graphs: list[np.ndarray] | None):
    """SPEC §5 on dense float64 matrices."""
    cfg = net.config
    e_u, e_i = np64(net.user_embedding), np64(net.item_embedding)
    e = np.vstack([e_u, e_i])
    n_users = e_u.shape[0]
    s = softmax(np64(net.fusion_weights))
    h0 = np.zeros_like(e)
    views = []
    for m, proj in enumerate(net.projections):
        phi = ref_projection(proj, np64(net.modality_features(m)))
        p = np.vstack([e_u, l2_rows(phi)])  # P_m
        h = a @ p
        h = h + a @ np.vstack([h[:n_users], e_i])
        if graphs is not None:
            h = h + cfg.generated_graph_weight * (graphs[m] @ e)
        h0 = h0 + s[m] * h
        g = a if graphs is None else graphs[m]
        views.append(ref_propagate(a, g @ p, cfg.n_layers))
    out = ref_propagate(a, h0, cfg.n_layers) + cfg.residual_weight * l2_rows(h0)
    return out, views


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# TimeEmbedding
# ---------------------------------------------------------------------------


def test_time_embedding_default_frequencies_by_hand():
    module = TimeEmbedding(10, generator=gen(0))
    expected = np.exp(-np.log(10000.0) * np.arange(5) / 5)
    np.testing.assert_allclose(expected[:2], [1.0, 10000 ** (-0.2)])
    np.testing.assert_allclose(np64(module.freqs), expected, rtol=1e-6)


@pytest.mark.parametrize("dim", [10, 8, 7])
def test_time_embedding_sinusoid_is_cos_then_sin(dim):
    module = TimeEmbedding(dim, generator=gen(0))
    # Identity linear layer exposes the raw sinusoid.
    with torch.no_grad():
        module.linear.weight.copy_(torch.eye(dim))
        module.linear.bias.zero_()
    t = np.array([0, 1, 2, 4, 37, 999])
    out = np64(module(torch.as_tensor(t)))
    np.testing.assert_allclose(out, ref_sinusoid(t, dim), atol=2e-5)
    # t = 0: cos half all ones, sin half all zeros.
    half = dim // 2
    np.testing.assert_allclose(out[0, :half], 1.0)
    np.testing.assert_allclose(out[0, half:], 0.0)
    # t = 1, k = 0 has frequency 1.
    assert out[1, 0] == pytest.approx(math.cos(1.0), abs=1e-6)
    assert out[1, half] == pytest.approx(math.sin(1.0), abs=1e-6)


def test_time_embedding_includes_linear_layer():
    module = TimeEmbedding(10, generator=gen(3))
    assert (module.linear.in_features, module.linear.out_features) == (10, 10)
    t = np.array([0, 1, 3, 4])
    np.testing.assert_allclose(
        np64(module(torch.as_tensor(t))), ref_time_embedding(module, t), atol=1e-5
    )


# ---------------------------------------------------------------------------
# Denoiser
# ---------------------------------------------------------------------------


def test_denoiser_default_layer_sizes():
    d = Denoiser(12, generator=gen(0))
    sizes = [(layer.in_features, layer.out_features) for layer in d.layers]
    assert sizes == [(22, 1000), (1000, 12)]
    assert d.dropout == 0.5
    assert d.normalize_input is False
    assert d.time_embedding.dim == 10


def test_denoiser_custom_layer_sizes_and_output_shape():
    d = Denoiser(12, (32, 16), generator=gen(0)).eval()
    sizes = [(layer.in_features, layer.out_features) for layer in d.layers]
    assert sizes == [(22, 32), (32, 16), (16, 12)]
    out = d(torch.rand(5, 12), torch.tensor([0, 1, 2, 3, 4]))
    assert out.shape == (5, 12)


@pytest.mark.parametrize("hidden", [(16,), (32, 16), ()])
@pytest.mark.parametrize("normalize", [False, True])
def test_denoiser_eval_matches_reference(hidden, normalize):
    n_items = 9
    d = Denoiser(n_items, hidden, normalize_input=normalize, generator=gen(1)).eval()
    rng = np.random.default_rng(0)
    x_t = rng.normal(size=(6, n_items)) * 2.0
    t = np.array([0, 1, 2, 3, 4, 2])
    out = np64(d(torch.as_tensor(x_t, dtype=torch.float32), torch.as_tensor(t)))
    np.testing.assert_allclose(out, ref_denoiser_eval(d, x_t, t, normalize), atol=2e-5, rtol=1e-5)


def test_denoiser_no_activation_after_last_layer():
    # With a large last-layer bias the output leaves [-1, 1]: no tanh after the last layer.
    d = Denoiser(5, (8,), generator=gen(2)).eval()
    with torch.no_grad():
        d.layers[-1].bias.fill_(3.0)
    out = d(torch.zeros(2, 5), torch.tensor([0, 1]))
    assert float(out.detach().min()) > 1.0


def test_denoiser_eval_is_deterministic():
    d = Denoiser(10, (16,), generator=gen(0)).eval()
    x = torch.rand(4, 10)
    t = torch.tensor([0, 1, 2, 3])
    a = d(x, t, generator=gen(1))
    b = d(x, t, generator=gen(2))
    c = d(x, t)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_denoiser_train_mode_dropout_reproducible_with_generator():
    d = Denoiser(40, (16,), generator=gen(0)).train()
    x = torch.rand(8, 40) + 0.1
    t = torch.arange(8) % 5
    a = d(x, t, generator=gen(5))
    b = d(x, t, generator=gen(5))
    c = d(x, t, generator=gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.allclose(a, d.eval()(x, t))


def test_denoiser_dropout_acts_on_x_t_only():
    n_items, keep = 200, 0.5
    d = Denoiser(n_items, (16,), generator=gen(0))
    x = torch.rand(32, n_items) + 0.5  # strictly positive
    t = torch.arange(32) % 5
    before = x.clone()
    out = d.train()(x, t, generator=gen(3))
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # the input is not masked in place
    # The mask is the generator's first uniform draw over x's shape: entry kept when < keep.
    kept = np64(torch.rand(x.shape, generator=gen(3))) < keep
    frac = 1.0 - kept.mean()
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / kept.size)
    # Inverted dropout on x only; the time embedding enters untouched; then the plain MLP.
    x_part = np.where(kept, np64(x) / keep, 0.0)
    t_part = ref_time_embedding(d.time_embedding, np64(t))
    h = np.concatenate([x_part, t_part], axis=1)
    np.testing.assert_allclose(np64(out), ref_mlp(d, h), atol=2e-5)


def test_denoiser_sparse_input_equals_dense():
    d = Denoiser(30, (16,), generator=gen(0)).eval()
    rng = np.random.default_rng(0)
    x = torch.as_tensor((rng.random((7, 30)) < 0.1).astype(np.float32))
    t = torch.tensor([4, 4, 4, 4, 4, 4, 4])
    with torch.no_grad():
        dense = d(x, t)
        sparse = d(x.to_sparse_csr(), t)
    np.testing.assert_allclose(np64(sparse), np64(dense), atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("sampling_noise", [False, True])
def test_denoise_rows_runs_the_reverse_chain_without_touching_its_input(sampling_noise, sparse):
    schedule = DiffusionSchedule(steps=4, noise_scale=0.1)
    gen = torch.Generator().manual_seed(5)
    d = Denoiser(9, (6,), generator=gen)
    x0 = (torch.rand(5, 9, generator=gen) < 0.3).float()
    kept = x0.clone()
    noise = torch.randn(4, 5, 9, generator=gen)
    draws = iter(noise)

    got = denoise_rows(
        d,
        schedule,
        x0.to_sparse_csr() if sparse else x0,
        sampling_noise=sampling_noise,
        randn=lambda shape: next(draws),
    )

    torch.testing.assert_close(x0, kept, rtol=0, atol=0)
    assert d.training  # the mode is restored
    x = x0
    with torch.no_grad():
        d.eval()
        for k, step in enumerate(reversed(range(schedule.steps))):
            t = torch.full((5,), step)
            x = reverse_step(schedule, d(x, t), x, t, noise[k] if sampling_noise else None)
    torch.testing.assert_close(got, x, rtol=1e-6, atol=1e-6)  # sparse first product: ~1 ulp


@pytest.mark.parametrize("sampling_noise", [False, True])
def test_denoise_rows_from_noised_rows_reads_sparse_rows_as_dense(sampling_noise):
    schedule = DiffusionSchedule(steps=4, noise_scale=0.1)
    gen = torch.Generator().manual_seed(6)
    d = Denoiser(9, (6,), generator=gen)
    x0 = (torch.rand(5, 9, generator=gen) < 0.3).float()
    noise = torch.randn(5, 5, 9, generator=gen)
    results = []
    for rows in (x0, x0.to_sparse_csr()):
        draws = iter(noise)
        results.append(
            denoise_rows(
                d,
                schedule,
                rows,
                sampling_steps=2,
                sampling_noise=sampling_noise,
                randn=lambda shape, draws=draws: next(draws),
            )
        )
    torch.testing.assert_close(results[1], results[0])
    # The chain starts from q_sample at step 1, with the first draw as its noise.
    x = q_sample(schedule, x0, torch.full((5,), 1), noise[0])
    with torch.no_grad():
        d.eval()
        for k, step in enumerate(reversed(range(schedule.steps)), start=1):
            t = torch.full((5,), step)
            x = reverse_step(schedule, d(x, t), x, t, noise[k] if sampling_noise else None)
    torch.testing.assert_close(results[0], x)


def test_denoiser_gradients_match_the_concatenated_layer():
    # Splitting the first layer into data and time blocks changes no gradient.
    d = Denoiser(20, (8,), generator=gen(0)).train()
    x, t = torch.rand(5, 20), torch.tensor([0, 1, 2, 3, 4])
    d(x, t, generator=gen(1)).pow(2).sum().backward()
    kept = torch.rand(x.shape, generator=gen(1)) < 0.5
    h = torch.cat([x * kept / 0.5, d.time_embedding(t)], dim=-1)
    weight = d.layers[0].weight.detach().clone().requires_grad_(True)
    out = torch.nn.functional.linear(h, weight, d.layers[0].bias)
    out = d.layers[1](torch.tanh(out))
    grad = torch.autograd.grad(out.pow(2).sum(), weight)[0]
    np.testing.assert_allclose(np64(d.layers[0].weight.grad), np64(grad), rtol=1e-5, atol=1e-6)


def test_split_linear_gradcheck():
    # The first layer's function, every input differentiable, with the dropout scale.
    g = gen(2)
    x = torch.randn(4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    emb = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(5, 9, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)

    def layer(x, emb, weight, bias):
        return model_module._SplitLinear.apply(x, emb, weight, bias, 2.0, torch.float64)

    assert torch.autograd.gradcheck(layer, (x, emb, weight, bias))
    expected = torch.nn.functional.linear(torch.cat([2.0 * x, emb], dim=-1), weight, bias)
    torch.testing.assert_close(layer(x, emb, weight, bias), expected)


def test_split_linear_in_bf16_is_f_linear_of_the_concatenation_under_autocast():
    g = gen(3)
    x = torch.rand(16, 40, generator=g)
    emb = torch.randn(16, 10, generator=g, requires_grad=True)
    layer = torch.nn.Linear(50, 12)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(12, 50, generator=g) / 50**0.5)
        layer.bias.copy_(torch.randn(12, generator=g))
    got = model_module._SplitLinear.apply(x, emb, layer.weight, layer.bias, 2.0, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.nn.functional.linear(
            torch.cat([2.0 * x, emb], dim=-1), layer.weight, layer.bias
        )
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)
    (got_w, got_e), (exp_w, exp_e) = (
        torch.autograd.grad(out.float().pow(2).sum(), (layer.weight, emb))
        for out in (got, expected)
    )
    assert got_w.dtype == got_e.dtype == torch.float32  # gradients in the parameters' dtype
    torch.testing.assert_close(got_w, exp_w, rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(got_e, exp_e, rtol=3e-2, atol=3e-2)


def test_denoiser_zero_dropout_train_equals_eval():
    d = Denoiser(10, (16,), dropout=0.0, generator=gen(0))
    x, t = torch.rand(3, 10), torch.tensor([0, 2, 4])
    assert torch.equal(d.train()(x, t), d.eval()(x, t))


def test_denoiser_init_statistics():
    n_items = 300
    d = Denoiser(n_items, (1000,), generator=gen(0))
    for layer in d.layers:
        w = np64(layer.weight)
        std = math.sqrt(2.0 / (layer.in_features + layer.out_features))
        assert abs(w.mean()) < 5 * std / math.sqrt(w.size)
        assert w.std() == pytest.approx(std, rel=0.02)
        # Normal, not uniform: excess kurtosis ≈ 0 (uniform would give −1.2).
        kurt = np.mean((w - w.mean()) ** 4) / w.var() ** 2
        assert kurt == pytest.approx(3.0, abs=0.1)
        b = np64(layer.bias)
        assert b.std() == pytest.approx(0.001, rel=0.15)
        assert abs(b.mean()) < 5 * 0.001 / math.sqrt(b.size)


def test_denoiser_same_generator_seed_same_weights():
    a = Denoiser(20, (8,), generator=gen(4)).state_dict()
    b = Denoiser(20, (8,), generator=gen(4)).state_dict()
    c = Denoiser(20, (8,), generator=gen(5)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------------------
# ModalityProjection
# ---------------------------------------------------------------------------


def test_projection_linear_has_bias_and_matches_reference():
    proj = ModalityProjection(6, 4, "linear", generator=gen(0))
    params = dict(proj.named_parameters())
    assert set(params) == {"linear.weight", "linear.bias"}
    assert params["linear.weight"].shape == (4, 6)
    assert params["linear.bias"].shape == (4,)
    feats = np.random.default_rng(0).normal(size=(5, 6))
    out = np64(proj(torch.as_tensor(feats, dtype=torch.float32)))
    np.testing.assert_allclose(out, ref_projection(proj, feats), atol=1e-5)
    # No activation: negative outputs pass through unchanged, zero input gives the bias.
    assert (out < -0.05).any()
    np.testing.assert_allclose(
        np64(proj(torch.zeros(2, 6))), np.tile(np64(proj.linear.bias), (2, 1)), atol=1e-7
    )


def test_projection_matrix_is_bias_free_leaky_relu():
    proj = ModalityProjection(6, 4, "matrix", generator=gen(0))
    params = list(proj.parameters())
    assert len(params) == 1 and params[0].shape == (6, 4)
    feats = np.random.default_rng(1).normal(size=(50, 6))
    out = np64(proj(torch.as_tensor(feats, dtype=torch.float32)))
    pre = feats @ np64(proj.weight)
    np.testing.assert_allclose(out, leaky_relu(pre, 0.2), atol=1e-5)
    neg = pre < -1e-3
    assert neg.any()
    np.testing.assert_allclose(out[neg], 0.2 * pre[neg], atol=1e-5)
    assert float(proj(torch.zeros(3, 6)).detach().abs().max()) == 0.0  # no bias


def test_projection_matrix_xavier_uniform_init():
    in_dim, out_dim = 200, 64
    w = np64(ModalityProjection(in_dim, out_dim, "matrix", generator=gen(0)).weight)
    bound = math.sqrt(6.0 / (in_dim + out_dim))
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.98 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3.0), rel=0.03)


def test_projection_default_kind_is_matrix_and_unknown_kind_rejected():
    assert ModalityProjection(3, 2, generator=gen(0)).kind == "matrix"
    with pytest.raises(ValueError):
        ModalityProjection(3, 2, "mlp")


# ---------------------------------------------------------------------------
# propagate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_propagate_matches_reference(n_layers):
    rng = np.random.default_rng(2)
    r = (rng.random((4, 5)) < 0.4).astype(float)
    users, items = np.nonzero(r)
    a = bipartite_adjacency(torch.as_tensor(users), torch.as_tensor(items), 4, 5)
    x = rng.normal(size=(9, 3))
    out = propagate(a, torch.as_tensor(x, dtype=torch.float32), n_layers)
    np.testing.assert_allclose(np64(out), ref_propagate(np64(a.to_dense()), x, n_layers), atol=1e-5)


# ---------------------------------------------------------------------------
# DiffMMNetwork
# ---------------------------------------------------------------------------

N_USERS, N_ITEMS, DIM = 6, 8, 5
FEATURE_DIMS = (7, 4, 3)


def make_setup(n_modalities: int, n_layers: int, projection: str, seed: int = 0, **cfg_kwargs):
    rng = np.random.default_rng(seed)
    r = (rng.random((N_USERS, N_ITEMS)) < 0.3).astype(float)
    r[0, 0] = 1.0
    users, items = np.nonzero(r)
    a = bipartite_adjacency(torch.as_tensor(users), torch.as_tensor(items), N_USERS, N_ITEMS)
    dims = FEATURE_DIMS[:n_modalities]
    features = [torch.as_tensor(rng.normal(size=(N_ITEMS, d)), dtype=torch.float32) for d in dims]
    cfg = NetworkConfig(
        n_users=N_USERS,
        n_items=N_ITEMS,
        feature_dims=dims,
        embedding_dim=DIM,
        projection=projection,
        n_layers=n_layers,
        **cfg_kwargs,
    )
    net = DiffMMNetwork(cfg, features, generator=gen(seed))
    graphs = []
    for m in range(n_modalities):
        top = torch.as_tensor(rng.integers(0, N_ITEMS, size=(N_USERS, 2)))
        g = top_k_graph(torch.arange(N_USERS), top, N_USERS, N_ITEMS)
        graphs.append(drop_edges(g, 0.5 if m % 2 == 0 else 1.0, gen(100 + m)))
    return net, a, graphs


def test_network_config_defaults_follow_spec():
    cfg = NetworkConfig(n_users=2, n_items=3, feature_dims=(4,))
    assert cfg.embedding_dim == 64
    assert cfg.projection == "matrix"
    assert cfg.n_layers == 1
    assert cfg.generated_graph_weight == pytest.approx(0.2)
    assert cfg.residual_weight == pytest.approx(0.5)


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_network_fusion_weights_init(n_modalities):
    net, _, _ = make_setup(n_modalities, 1, "matrix")
    w = np64(net.fusion_weights)
    np.testing.assert_allclose(w, np.full(n_modalities, 1.0 / n_modalities), rtol=1e-6)
    assert net.fusion_weights.requires_grad
    assert net.n_modalities == n_modalities


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
@pytest.mark.parametrize("n_layers", [0, 1, 2])
@pytest.mark.parametrize("use_graphs", [False, True])
@pytest.mark.parametrize("projection", ["matrix", "linear"])
def test_network_forward_matches_dense_reference(n_modalities, n_layers, use_graphs, projection):
    net, a, graphs = make_setup(
        n_modalities,
        n_layers,
        projection,
        seed=n_modalities + 10 * n_layers,
        generated_graph_weight=0.3,
        residual_weight=0.7,
    )
    # Non-uniform fusion weights so that the softmax matters.
    with torch.no_grad():
        net.fusion_weights.copy_(torch.tensor([0.4, -1.1, 2.0][:n_modalities]))
    out, views = net(a, graphs if use_graphs else None, with_views=True)
    dense_graphs = [np64(g.to_dense()) for g in graphs] if use_graphs else None
    ref_out, ref_views = ref_network(net, np64(a.to_dense()), dense_graphs)
    assert out.shape == (N_USERS + N_ITEMS, DIM)
    np.testing.assert_allclose(np64(out), ref_out, atol=2e-5, rtol=1e-5)
    assert len(views) == n_modalities
    for view, ref_view in zip(views, ref_views, strict=True):
        assert view.shape == (N_USERS + N_ITEMS, DIM)
        np.testing.assert_allclose(np64(view), ref_view, atol=2e-5, rtol=1e-5)
    # Without with_views the output is the same and no views are returned.
    out2, views2 = net(a, graphs if use_graphs else None)
    assert views2 == []
    torch.testing.assert_close(out2, out)


def test_network_generated_graph_term_has_weight_lambda_adj():
    net, a, graphs = make_setup(2, 1, "matrix", generated_graph_weight=0.0)
    out_without, _ = net(a, None)
    out_zero_weight, views = net(a, graphs, with_views=True)
    torch.testing.assert_close(out_zero_weight, out_without)
    # ... but the views still use G_m (not A) when graphs are given.
    _, views_a = net(a, None, with_views=True)
    assert not torch.allclose(views[0], views_a[0])


def test_network_gradient_reaches_all_parameters():
    net, a, graphs = make_setup(3, 2, "linear")
    with torch.no_grad():
        net.fusion_weights.copy_(torch.tensor([0.1, 0.5, -0.3]))
    out, views = net(a, graphs, with_views=True)
    g = gen(9)
    loss = (out * torch.randn(out.shape, generator=g)).sum()
    loss = loss + sum((v * torch.randn(v.shape, generator=g)).sum() for v in views)
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert float(param.grad.abs().max()) > 0, name
    # Fusion weights get gradient from the main output alone.
    net.zero_grad()
    out, _ = net(a, graphs)
    (out * torch.randn(out.shape, generator=gen(10))).sum().backward()
    assert float(net.fusion_weights.grad.abs().max()) > 0
    # The user/item embeddings and every projection get gradient from the main output, too.
    for name, param in net.named_parameters():
        assert float(param.grad.abs().max()) > 0, name


def test_network_gradient_without_graphs_matrix_projection():
    net, a, _ = make_setup(2, 1, "matrix")
    out, views = net(a, None, with_views=True)
    (out.pow(2).sum() + views[1].sum()).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and float(param.grad.abs().max()) > 0, name


def test_network_is_index_based_no_modality_names():
    source = inspect.getsource(model_module)
    for word in ("visual", "acoustic", "textual", "image", "audio", "text", "tiktok", "v_feat"):
        assert not re.search(rf"\b{word}\b", source, flags=re.IGNORECASE), word


def test_network_permuting_modalities_permutes_nothing_else():
    # The encoder treats modalities symmetrically: reordering features, projections, fusion
    # weights and graphs together leaves the output unchanged and permutes the views.
    net, a, graphs = make_setup(3, 1, "linear")
    with torch.no_grad():
        net.fusion_weights.copy_(torch.tensor([0.3, -0.2, 1.0]))
    perm = [2, 0, 1]
    cfg = net.config
    cfg_p = NetworkConfig(
        n_users=cfg.n_users,
        n_items=cfg.n_items,
        feature_dims=tuple(cfg.feature_dims[p] for p in perm),
        embedding_dim=cfg.embedding_dim,
        projection=cfg.projection,
        n_layers=cfg.n_layers,
    )
    net_p = DiffMMNetwork(cfg_p, [net.modality_features(p) for p in perm], generator=gen(77))
    with torch.no_grad():
        net_p.user_embedding.copy_(net.user_embedding)
        net_p.item_embedding.copy_(net.item_embedding)
        for new, old in enumerate(perm):
            net_p.projections[new].load_state_dict(net.projections[old].state_dict())
        net_p.fusion_weights.copy_(net.fusion_weights[perm])
    out, views = net(a, graphs, with_views=True)
    out_p, views_p = net_p(a, [graphs[p] for p in perm], with_views=True)
    torch.testing.assert_close(out_p, out, atol=1e-5, rtol=1e-5)
    for new, old in enumerate(perm):
        torch.testing.assert_close(views_p[new], views[old])


def test_network_same_seed_same_parameters():
    a = make_setup(3, 1, "linear", seed=5)[0].state_dict()
    b = make_setup(3, 1, "linear", seed=5)[0].state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rng = np.random.default_rng(0)
    feats = [torch.as_tensor(rng.normal(size=(N_ITEMS, 3)), dtype=torch.float32)]
    cfg = NetworkConfig(N_USERS, N_ITEMS, (3,), embedding_dim=DIM)
    n1 = DiffMMNetwork(cfg, feats, generator=gen(1))
    n2 = DiffMMNetwork(cfg, feats, generator=gen(2))
    assert not torch.equal(n1.user_embedding, n2.user_embedding)


def test_network_embeddings_xavier_uniform():
    cfg = NetworkConfig(n_users=300, n_items=200, feature_dims=(3,))
    net = DiffMMNetwork(cfg, [torch.zeros(200, 3)], generator=gen(0))
    for table, rows in ((net.user_embedding, 300), (net.item_embedding, 200)):
        w = np64(table)
        bound = math.sqrt(6.0 / (rows + 64))
        assert w.shape == (rows, 64)
        assert np.abs(w).max() <= bound
        assert w.std() == pytest.approx(bound / math.sqrt(3.0), rel=0.03)


def test_network_rejects_mismatched_features():
    cfg = NetworkConfig(N_USERS, N_ITEMS, (3, 4), embedding_dim=DIM)
    with pytest.raises(ValueError):
        DiffMMNetwork(cfg, [torch.zeros(N_ITEMS, 3)])


def test_cast_once_gives_the_same_chain_and_leaves_nothing_behind():
    # Graph generation casts the denoiser's weights to the matmul dtype once per phase; the
    # chain is the same as casting them at every call, and the copies go with the block.
    gen = torch.Generator().manual_seed(0)
    denoiser = Denoiser(12, (8,), generator=gen).eval()
    rows = (torch.rand(5, 12, generator=gen) < 0.3).float().to_sparse_csr()
    schedule = DiffusionSchedule()
    with torch.no_grad():
        plain = denoise_rows(denoiser, schedule, rows, matmul_dtype=torch.bfloat16)
        with denoiser.cast_once(torch.bfloat16):
            weight, bias = denoiser._weights(denoiser.layers[1])
            assert weight.dtype == bias.dtype == torch.bfloat16
            once = denoise_rows(denoiser, schedule, rows, matmul_dtype=torch.bfloat16)
    assert torch.equal(plain, once)
    assert denoiser._cast is None
    assert denoiser._weights(denoiser.layers[1])[0] is denoiser.layers[1].weight
    # Nothing to cast in the weights' own dtype, and never where gradients are computed:
    # training changes the weights at every step.
    for dtype, grad in ((torch.float32, False), (torch.bfloat16, True)):
        with torch.set_grad_enabled(grad), denoiser.cast_once(dtype):
            assert denoiser._cast is None
