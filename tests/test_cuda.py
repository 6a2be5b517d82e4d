"""CUDA-specific paths (skipped without a CUDA device): generators, sparse ops, autocast.

Run on a GPU machine with ``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffmm import DiffMMRecommender
from diffmm._graph import adjacency_from_matrix, drop_edges
from diffmm._model import DiffMMNetwork

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _model(**params):
    base = dict(epochs=2, denoiser_hidden_dims=(32,), embedding_dim=16, random_state=0)
    return DiffMMRecommender(**{**base, "device": "cuda", **params})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_on_cuda(tiny_data, precision):
    model = _model(precision=precision, edge_keep_rate=0.5)
    model.fit(tiny_data.train, tiny_data.features, validation_data=tiny_data.validation)
    assert model.device_.type == "cuda"
    assert np.isfinite(model.user_factors_).all()
    assert all(r["seconds_recommender"] > 0 for r in model.history_)
    ids, _ = model.recommend([0, 1], n=5)
    assert ids.shape == (2, 5)


def test_cuda_and_cpu_encoders_agree(tiny_data):
    model = _model(epochs=1).fit(tiny_data.train, tiny_data.features)
    cpu_net = model.network_
    gpu_net = DiffMMNetwork(
        cpu_net.config, [cpu_net.modality_features(m) for m in range(cpu_net.n_modalities)]
    )
    gpu_net.load_state_dict(cpu_net.state_dict())
    gpu_net = gpu_net.cuda()
    adj_cpu = adjacency_from_matrix(model.interactions_)
    adj_gpu = adjacency_from_matrix(model.interactions_, "cuda")
    np.testing.assert_allclose(
        adj_gpu.to_dense().cpu().numpy(), adj_cpu.to_dense().numpy(), rtol=1e-6, atol=1e-7
    )
    with torch.no_grad():
        out_cpu, _ = cpu_net(adj_cpu, None)
        out_gpu, _ = gpu_net(adj_gpu, None)
    np.testing.assert_allclose(out_gpu.cpu().numpy(), out_cpu.numpy(), rtol=1e-4, atol=1e-5)


def test_drop_edges_with_a_cuda_generator():
    graph = adjacency_from_matrix(np.eye(50, 40), "cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    dropped = drop_edges(graph, 0.5, generator)
    assert dropped.device.type == "cuda"
    assert 0 < dropped.values().numel() < graph.values().numel()
    np.testing.assert_allclose(dropped.values().cpu().numpy() * 0.5 <= 1.0, True)


def test_checkpoint_and_resume_on_cuda(tmp_path, tiny_data):
    first = _model(epochs=2, checkpoint_dir=tmp_path).fit(tiny_data.train, tiny_data.features)
    resumed = _model(epochs=3, checkpoint_dir=tmp_path)
    resumed.fit(tiny_data.train, tiny_data.features, resume_from=tmp_path)
    assert len(resumed.history_) == 3
    assert resumed.history_[:2] == first.history_[:2]


def test_new_users_and_saving_after_a_cuda_fit(tmp_path, tiny_data):
    model = _model().fit(tiny_data.train, tiny_data.features)
    for method in ("propagation", "denoiser"):
        ids, _ = model.recommend_new_users([[0, 3, 5], [7]], n=4, method=method)
        assert ids.shape == (2, 4)
    loaded = DiffMMRecommender.load(model.save(tmp_path / "model.diffmm"))
    np.testing.assert_array_equal(loaded.recommend([0])[0], model.recommend([0])[0])


def test_lightgcn_on_cuda(tiny_data):
    baselines = pytest.importorskip("diffmm.baselines")
    if not hasattr(baselines, "LightGCNRecommender"):
        pytest.skip("no LightGCN baseline")
    model = baselines.LightGCNRecommender(epochs=2, device="cuda", random_state=0)
    model.fit(tiny_data.train, validation_data=tiny_data.validation)
    assert np.isfinite(model.user_factors_).all()
