"""``benchmarks/speed.py --quick`` runs end to end and writes the promised JSON and markdown.

No timing is asserted: only that every measurement is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "speed.py"


def test_speed_quick_writes_results(tmp_path):
    # One thread per process: the data are tiny and the test machine has few cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--quick", "--device", "cpu", "--threads", "1", "--label", "smoke"]
    args += ["--precision", "fp32,bf16"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "| scenario | device | precision |" in result.stdout

    report = json.loads((tmp_path / "speed_smoke.json").read_text())
    assert (tmp_path / "speed_smoke.md").read_text().startswith("# Speed and memory: smoke")
    assert {"label", "created", "command", "machine", "scenarios"} <= set(report)
    assert {"cpu", "torch", "cuda_device", "logical_cpus", "kind"} <= set(report["machine"])
    assert report["machine"]["kind"] in result.stdout
    scenario, bf16 = report["scenarios"]
    assert (scenario["precision"], bf16["precision"]) == ("fp32", "bf16")
    # Each phase against its own floor, from rates measured in the same process.
    for run in (scenario, bf16):
        assert set(run["floors"]) == {"fp32", "bf16"}
        floors = run["floors"][run["precision"]]
        assert all(floors[p] > 0 for p in ("denoiser", "generation", "recommender", "epoch"))
        assert floors["epoch"] == pytest.approx(
            floors["denoiser"] + floors["generation"] + floors["recommender"]
        )
        seconds = run["seconds"]
        assert run["over_floor"]["recommender"] == pytest.approx(
            seconds["recommender"] / floors["recommender"]
        )
        rec = run["recommender_floor"]
        assert rec["seconds"] == pytest.approx(rec["contrastive_seconds"] + rec["sparse_seconds"])
        # At least one pair of contrastive views over the two modalities.
        assert rec["contrastive"]["pairs"] >= 1
        assert rec["contrastive"]["sides"]["users"]["gflop_per_epoch"] > 0
    assert "## Each phase against its floor" in result.stdout
    assert "Recommender step from run to run" in result.stdout
    assert scenario["scenario"] == "quick"
    assert scenario["threads"] == 1
    assert scenario["epochs_run"] == 2 and "warm-up" in scenario["epochs_note"]
    phases = {"denoiser", "generation", "recommender", "evaluation", "total"}
    assert set(scenario["seconds"]) == phases
    assert all(v is not None and v >= 0 for v in scenario["seconds"].values())
    assert set(scenario["efficiency"]) == {"denoiser", "generation"}
    # T forward passes per user and modality, less the first step's dense data block (the
    # first reverse step multiplies the sparse interaction rows).
    hidden = scenario["matmul"]["layers"][0][1]
    first_block = 2 * scenario["items"] * hidden
    expected = (5 * scenario["flops"]["forward_per_user"] - first_block) * 200 * 2
    assert scenario["flops"]["generation"] == expected
    assert scenario["matmul"]["fp32"]["gflops_per_s"] > 0
    assert "bf16" in scenario["matmul"]
    assert {
        "recommend_users_per_s",
        "bare_users_per_s",
        "recommend_over_bare",
    } <= set(scenario["recommend"])
    memory = scenario["memory"]
    assert {"rss_before_training_gb", "peak_rss_fit_gb", "gpu_peak_allocated_gb"} <= set(memory)
    assert memory["gpu_peak_allocated_gb"] is None
    estimate = memory["estimate"]
    assert {"parameters_adam_snapshots", "graphs", "dense_peak"} <= set(estimate["parts_gb"])
    assert estimate["model_gb"] > 0


@pytest.mark.parametrize("contrastive", ["main_modal", "modal_modal", None])
def test_recommender_floor_counts_the_encoders_sparse_products(speed, monkeypatch, contrastive):
    # The floor prices the entries the encoder multiplies per batch: count them in a real
    # forward pass (every spmm the network calls) and compare.
    import torch

    import diffmm._model as model_module
    from diffmm import DiffMMRecommender
    from diffmm._graph import adjacency_from_matrix
    from diffmm._sparse import csr_rows
    from diffmm.datasets import make_synthetic

    data = make_synthetic(n_users=40, n_items=30, random_state=0)
    model = DiffMMRecommender(
        epochs=1,
        batch_size=16,
        denoiser_hidden_dims=(8,),
        embedding_dim=4,
        random_state=0,
        contrastive=contrastive,
        device="cpu",
    ).fit(data.train, data.features)
    floor = speed.recommender_floor(model, data.train, torch.device("cpu"))

    entries = []
    original = model_module.spmm

    def counting(matrix, dense, *args, **kwargs):
        entries.append(int(matrix.values().numel()))
        return original(matrix, dense, *args, **kwargs)

    monkeypatch.setattr(model_module, "spmm", counting)
    graphs = [csr_rows(g) for g in model.generated_graphs_]
    with torch.no_grad():
        model.network_(adjacency_from_matrix(model.interactions_), graphs, with_views=True)
    pairs = floor["contrastive"]["pairs"]
    if not pairs:  # no contrastive views: the step does not build them
        view_entries = sum(graph.values().numel() for graph in graphs)
        view_entries += len(graphs) * model.network_.config.n_layers * entries[0]
        assert floor["sparse"]["entries_per_batch_forward"] == sum(entries) - view_entries
    else:
        assert floor["sparse"]["entries_per_batch_forward"] == sum(entries)
    expected_pairs = {"main_modal": 2, "modal_modal": 1, None: 0}[contrastive]
    assert pairs == expected_pairs
    distinct_users, distinct_items = speed._distinct_per_batch(data.train, 16)
    assert len(distinct_users) == floor["batches"] == -(-data.train.nnz // 16)
    assert distinct_users.max() <= 16 and distinct_items.max() <= 16
