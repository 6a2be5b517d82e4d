"""Model selection on a real dask.distributed cluster equals the same search in-process.

The cluster is a ``LocalCluster`` of two worker processes on the loopback interface (no mocks):
the scheduler and the workers talk over TCP on 127.0.0.1, fits are pickled to the workers and
scores come back the way they would from a remote cluster.
"""

from __future__ import annotations

import concurrent.futures
import doctest
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from diffmm import DiffMMRecommender
from diffmm.datasets import make_synthetic
from diffmm.distributed import limit_torch_threads
from diffmm.model_selection import UserHoldoutSplit, make_ranking_scorer

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from diffmm.distributed import TorchThreadsPlugin, local_cluster_client  # noqa: E402

N_WORKERS = 2
TIMEOUT = 300  # seconds; a hung cluster fails the test instead of stalling CI


def _torch_threads() -> int:
    return torch.get_num_threads()


def _thread_env() -> tuple[int, str | None, str | None]:
    return (
        torch.get_num_threads(),
        os.environ.get("OMP_NUM_THREADS"),
        os.environ.get("MKL_NUM_THREADS"),
    )


def _thread_env_in_new_thread() -> tuple[int, str | None, str | None]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_thread_env).result()


def _on_every_worker(client, fn) -> set:
    """``fn``'s results, run as a task (in a worker's task thread) on each worker."""
    futures = [client.submit(fn, pure=False, workers=[addr]) for addr in client.run(os.getpid)]
    return {f.result(timeout=60) for f in futures}


def _cuda_visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one task thread each, torch capped to one thread per worker."""
    with local_cluster_client(
        n_workers=N_WORKERS, threads_per_worker=1, torch_threads=1, timeout=120
    ) as client:
        yield client
    # Leaving the block closed both the client and the cluster (scheduler and workers).
    assert client.status == "closed"


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=80, n_items=60, random_state=0)


def _search(n_jobs: int) -> GridSearchCV:
    return GridSearchCV(
        DiffMMRecommender(
            epochs=1,
            denoiser_hidden_dims=(16,),
            embedding_dim=8,
            batch_size=128,
            random_state=0,
        ),
        {"contrastive_weight": [0.0, 0.01], "n_layers": [1, 2]},
        cv=UserHoldoutSplit(n_splits=2, random_state=0),
        scoring=make_ranking_scorer("ndcg", k=10),
        n_jobs=n_jobs,
    )


def _with_timeout(fn, *args):
    """Run ``fn`` in a thread and fail (rather than hang) if it takes longer than TIMEOUT."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(fn, *args)
        try:
            return future.result(timeout=TIMEOUT)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"the search did not finish within {TIMEOUT} s")


def test_grid_search_on_cluster_equals_in_process(client, data):
    rows = data.interaction_rows("train")
    features = data.features
    rows_before = rows.copy()

    def in_process() -> tuple[GridSearchCV, float]:
        start = time.perf_counter()
        with limit_torch_threads(1):  # the workers' thread count: identical float reductions
            search = _search(n_jobs=1).fit(rows, modality_features=features)
        return search, time.perf_counter() - start

    def on_cluster() -> tuple[GridSearchCV, float]:
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            search = _search(n_jobs=-1).fit(rows, modality_features=features)
        return search, time.perf_counter() - start

    local, local_seconds = _with_timeout(in_process)
    remote, remote_seconds = _with_timeout(on_cluster)
    n_fits = len(local.cv_results_["params"]) * local.n_splits_ + 1
    print(
        f"\nGridSearchCV, {n_fits} fits: in-process {local_seconds:.2f} s, "
        f"LocalCluster({N_WORKERS} workers) {remote_seconds:.2f} s"
    )

    # The fits really ran on the workers: the cluster's scheduler saw tasks.
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes)) > 0

    assert remote.best_params_ == local.best_params_
    assert remote.best_index_ == local.best_index_
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], rtol=1e-12)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    np.testing.assert_allclose(
        remote.best_estimator_.item_factors_, local.best_estimator_.item_factors_, rtol=1e-6
    )
    np.testing.assert_array_equal(rows, rows_before)


def test_workers_cap_torch_threads(client):
    # Every worker reports one torch thread, on its event loop (client.run) and in a task thread.
    assert set(client.run(_torch_threads).values()) == {1}
    assert _on_every_worker(client, _thread_env) == {(1, "1", "1")}

    # Dask already starts worker processes with OMP_NUM_THREADS=1; show that the plugin itself
    # sets the count by registering it with 2 threads, then back with 1. Torch keeps a thread's
    # count once that thread has run torch code, so the new count shows on the event loop (where
    # the plugin ran) and in threads started from now on.
    try:
        client.register_plugin(TorchThreadsPlugin(2))
        assert set(client.run(_torch_threads).values()) == {2}
        assert _on_every_worker(client, _thread_env_in_new_thread) == {(2, "2", "2")}
    finally:
        client.register_plugin(TorchThreadsPlugin(1))
    assert set(client.run(_torch_threads).values()) == {1}
    assert _on_every_worker(client, _thread_env_in_new_thread) == {(1, "1", "1")}


def test_cuda_devices_are_shared_out_by_worker_name(client):
    # Only the environment variable is checked: this machine has no GPU.
    try:
        client.register_plugin(TorchThreadsPlugin(1, cuda_devices=[3, 5]))
        by_worker = client.run(_cuda_visible_devices)
        names = {addr: info["name"] for addr, info in client.scheduler_info()["workers"].items()}
        assert {names[addr]: dev for addr, dev in by_worker.items()} == {0: "3", 1: "5"}
    finally:
        client.unregister_worker_plugin(TorchThreadsPlugin.name)
        client.register_plugin(TorchThreadsPlugin(1))
    # Unregistering restored the environment.
    assert set(client.run(_cuda_visible_devices).values()) == {None}


def test_plugin_is_a_dask_worker_plugin():
    plugin = TorchThreadsPlugin(3)
    assert isinstance(plugin, distributed.WorkerPlugin) and isinstance(plugin, TorchThreadsPlugin)
    assert repr(plugin) == "TorchThreadsPlugin(n_threads=3, cuda_devices=None)"


def test_limit_torch_threads_restores():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), limit_torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=">= 1"), limit_torch_threads(0):
        pass
    with pytest.raises(TypeError, match="integer"):
        TorchThreadsPlugin(1.5)
    with pytest.raises(ValueError, match="empty"):
        TorchThreadsPlugin(1, cuda_devices=[])


def test_module_imports_without_dask():
    code = (
        "import sys\n"
        "import diffmm.distributed\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_docstring_examples_run():
    import diffmm.distributed as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
