"""Run model selection on a Dask cluster, with torch capped to a few threads per worker.

scikit-learn's ``GridSearchCV``, ``RandomizedSearchCV`` and ``cross_validate`` parallelise their
fits with joblib, and joblib can hand those fits to a ``dask.distributed`` cluster. The same
search code then runs on one machine or on many, unchanged::

    with local_cluster_client(n_workers=2) as client, joblib.parallel_config(backend="dask"):
        search.fit(rows, modality_features=features)

Several fits running side by side must not each start one torch thread per core, or they
oversubscribe the machine and all run slower: :class:`TorchThreadsPlugin` caps torch (and the
OpenMP / MKL / OpenBLAS pools) on every worker, including workers that join later. It can also
give each worker its own GPU.

This module needs the optional ``dask`` extra (``pip install "diffmm[dask]"``) only when its
functions are called; importing it does not import dask.

Examples
--------
>>> import joblib
>>> from sklearn.model_selection import GridSearchCV
>>> from diffmm import DiffMMRecommender
>>> from diffmm.datasets import make_synthetic
>>> from diffmm.distributed import local_cluster_client
>>> from diffmm.model_selection import UserHoldoutSplit, make_ranking_scorer
>>> data = make_synthetic(n_users=80, n_items=60, random_state=0)
>>> search = GridSearchCV(
...     DiffMMRecommender(epochs=1, random_state=0),
...     {"contrastive_weight": [0.0, 0.01]},
...     cv=UserHoldoutSplit(n_splits=2, random_state=0),
...     scoring=make_ranking_scorer("ndcg", k=10),
...     n_jobs=-1,
... )
>>> with local_cluster_client(n_workers=2) as client:  # doctest: +SKIP
...     with joblib.parallel_config(backend="dask"):
...         search.fit(data.interaction_rows("train"), modality_features=data.features)
"""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["THREAD_ENV_VARS", "TorchThreadsPlugin", "limit_torch_threads", "local_cluster_client"]

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that size the native thread pools of processes a worker starts."""

_PLUGIN_NAME = "diffmm-torch-threads"


def _check_threads(n_threads: Any, name: str = "n_threads") -> int:
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {n_threads!r}.")
    if n_threads < 1:
        raise ValueError(f"{name} must be >= 1, got {n_threads}.")
    return int(n_threads)


@contextlib.contextmanager
def limit_torch_threads(n_threads: int = 1) -> Iterator[int]:
    """Run a block with ``torch.set_num_threads(n_threads)``, restoring the old count after.

    Use it around an in-process search to get the same floating-point reductions as workers
    capped by :class:`TorchThreadsPlugin` (torch's CPU kernels may sum in a different order
    with a different number of threads).

    Parameters
    ----------
    n_threads : int, default=1
        Intra-op threads torch may use inside the block.

    Yields
    ------
    int
        The thread count in effect.

    Examples
    --------
    >>> import torch
    >>> from diffmm.distributed import limit_torch_threads
    >>> before = torch.get_num_threads()
    >>> with limit_torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    n_threads = _check_threads(n_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield n_threads
    finally:
        torch.set_num_threads(before)


def _cuda_device_for(worker_name: Any, cuda_devices: Sequence[int | str]) -> str:
    """The GPU of the worker called ``worker_name``: its integer name picks a slot, round-robin."""
    if isinstance(worker_name, str) and worker_name.lstrip("-").isdigit():
        worker_name = int(worker_name)
    if isinstance(worker_name, bool) or not isinstance(worker_name, numbers.Integral):
        raise ValueError(
            f"cuda_devices needs integer worker names (LocalCluster numbers its workers 0, 1, "
            f"...; start others with `dask worker --name 0`), got worker name {worker_name!r}. "
            "Or start each worker with its own CUDA_VISIBLE_DEVICES instead."
        )
    return str(cuda_devices[int(worker_name) % len(cuda_devices)])


class TorchThreadsPlugin:
    """A Dask worker plugin that caps torch's threads (and optionally picks a GPU).

    Registered with ``client.register_plugin(TorchThreadsPlugin(1))``, it runs on every
    worker of the cluster, now and when workers join later. On each worker it

    * calls ``torch.set_num_threads(n_threads)``, so that each fit uses ``n_threads``
      cores: with ``threads_per_worker`` fits per worker, a worker then uses at most
      ``threads_per_worker * n_threads`` cores;
    * sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` to
      ``n_threads`` in the worker's environment, for any process the worker starts;
    * with ``cuda_devices``, sets ``CUDA_VISIBLE_DEVICES`` to one of them, so that the
      estimators' ``device="auto"`` (or ``"cuda"``) lands on that worker's own GPU.

    On teardown (the plugin is unregistered or the worker closes) the previous torch
    thread count and environment come back.

    Dask only registers subclasses of its ``WorkerPlugin``, so that this module imports
    without dask, instances are of a private subclass of both classes, made on first use.

    Register it before the cluster runs torch work, as :func:`local_cluster_client` does:
    torch fixes a thread's count the first time that thread runs torch code, so a task
    thread that has already fitted a model keeps its count when the plugin is registered
    again with another ``n_threads`` (threads started later, and every thread after
    ``client.restart()``, get the new one).

    Parameters
    ----------
    n_threads : int, default=1
        Torch intra-op threads per worker process.
    cuda_devices : sequence of int or str, optional
        GPUs to share out: the worker named ``i`` (``LocalCluster`` names its workers
        ``0, 1, ...``) gets ``cuda_devices[i % len(cuda_devices)]``. CUDA reads
        ``CUDA_VISIBLE_DEVICES`` once, when it is first used in a process, so register
        the plugin before the worker runs any CUDA work (right after the cluster starts);
        a worker that has already initialised CUDA warns and keeps its device. Untested
        on real GPUs by this package's test suite (it has none); on a GPU cluster,
        starting each worker with its own ``CUDA_VISIBLE_DEVICES`` (see the distributed
        docs page) is the robust alternative.

    Examples
    --------
    >>> from diffmm.distributed import TorchThreadsPlugin
    >>> plugin = TorchThreadsPlugin(n_threads=2)
    >>> plugin.n_threads, plugin.name
    (2, 'diffmm-torch-threads')
    >>> client.register_plugin(plugin)  # doctest: +SKIP
    >>> client.register_plugin(TorchThreadsPlugin(1, cuda_devices=[0, 1]))  # doctest: +SKIP
    """

    name = _PLUGIN_NAME
    idempotent = False  # registering again replaces the plugin (e.g. another n_threads)

    def __new__(cls, *args: Any, **kwargs: Any) -> TorchThreadsPlugin:
        # Dask only registers subclasses of its WorkerPlugin; subclass it on first use, so
        # that importing this module needs no dask.
        if cls is TorchThreadsPlugin:
            cls = _dask_plugin_class()
        return super().__new__(cls)

    def __init__(
        self, n_threads: int = 1, *, cuda_devices: Sequence[int | str] | None = None
    ) -> None:
        self.n_threads = _check_threads(n_threads)
        if cuda_devices is not None:
            if isinstance(cuda_devices, (str, bytes)) or not isinstance(cuda_devices, Sequence):
                raise TypeError(
                    "cuda_devices must be a sequence of GPU indices such as [0, 1], "
                    f"got {cuda_devices!r}."
                )
            cuda_devices = tuple(cuda_devices)
            if not cuda_devices:
                raise ValueError("cuda_devices is empty; give at least one GPU index.")
        self.cuda_devices = cuda_devices
        self._saved: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"TorchThreadsPlugin(n_threads={self.n_threads}, cuda_devices={self.cuda_devices!r})"

    def setup(self, worker: Any = None) -> None:
        """Cap the worker's threads (Dask calls this when the plugin is registered)."""
        names = list(THREAD_ENV_VARS)
        if self.cuda_devices is not None:
            names.append("CUDA_VISIBLE_DEVICES")
        self._saved = {
            "torch_threads": torch.get_num_threads(),
            "env": {var: os.environ.get(var) for var in names},
        }
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(self.n_threads)
        if self.cuda_devices is not None:
            device = _cuda_device_for(getattr(worker, "name", None), self.cuda_devices)
            if torch.cuda.is_initialized():
                warnings.warn(
                    f"CUDA is already initialised in worker {getattr(worker, 'name', '?')}; "
                    f"CUDA_VISIBLE_DEVICES={device} cannot take effect any more. Register "
                    "the plugin before running CUDA work on the cluster.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            os.environ["CUDA_VISIBLE_DEVICES"] = device
        torch.set_num_threads(self.n_threads)

    def teardown(self, worker: Any = None) -> None:
        """Restore the worker's previous thread settings (Dask calls this on removal)."""
        if self._saved is None:
            return
        torch.set_num_threads(self._saved["torch_threads"])
        for var, value in self._saved["env"].items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        self._saved = None


def _dask_plugin_class() -> type:
    """``TorchThreadsPlugin`` as a subclass of ``distributed.WorkerPlugin``, built once."""
    cls = globals().get("_DaskTorchThreadsPlugin")
    if cls is None:
        try:
            from distributed import WorkerPlugin
        except ImportError as exc:  # pragma: no cover - the test extra has dask
            raise ImportError(
                "TorchThreadsPlugin needs dask.distributed: pip install 'diffmm[dask]'."
            ) from exc
        # Module-level and named, so that it pickles by reference to the workers.
        cls = type(
            "_DaskTorchThreadsPlugin",
            (TorchThreadsPlugin, WorkerPlugin),
            {"__module__": __name__, "__doc__": TorchThreadsPlugin.__doc__},
        )
        globals()["_DaskTorchThreadsPlugin"] = cls
    return cls


def __getattr__(name: str) -> Any:
    # Unpickling a plugin on a worker looks its class up here before anything built it.
    if name == "_DaskTorchThreadsPlugin":
        return _dask_plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def local_cluster_client(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    torch_threads: int = 1,
    *,
    cuda_devices: Sequence[int | str] | None = None,
    timeout: float = 120,
    **cluster_kwargs: Any,
) -> Iterator[Client]:
    """Start a local Dask cluster of worker processes and yield a client connected to it.

    The cluster (a ``distributed.LocalCluster``) listens on the loopback interface only and
    has no dashboard; every worker gets a :class:`TorchThreadsPlugin`. The client is the
    default one while the block runs, so ``joblib.parallel_config(backend="dask")`` uses it.
    Cluster and client close when the block ends, also on errors.

    Parameters
    ----------
    n_workers : int, default=2
        Worker processes.
    threads_per_worker : int, default=1
        Tasks (fits) each worker runs at a time.
    torch_threads : int, default=1
        Torch threads per worker process (see :class:`TorchThreadsPlugin`). Keep
        ``n_workers * threads_per_worker * torch_threads`` at or below the number of cores.
    cuda_devices : sequence of int or str, optional
        Give worker ``i`` the GPU ``cuda_devices[i % len(cuda_devices)]``; see
        :class:`TorchThreadsPlugin`.
    timeout : float, default=120
        Seconds to wait for the workers to come up.
    **cluster_kwargs
        Passed to ``LocalCluster`` (e.g. ``memory_limit="4GiB"``); they override the
        defaults ``processes=True, host="127.0.0.1", dashboard_address=None``.

    Yields
    ------
    distributed.Client

    Examples
    --------
    >>> import joblib
    >>> from diffmm.distributed import local_cluster_client
    >>> with local_cluster_client(n_workers=2) as client:  # doctest: +SKIP
    ...     with joblib.parallel_config(backend="dask"):
    ...         search.fit(rows, modality_features=features)
    """
    from distributed import Client, LocalCluster

    n_workers = _check_threads(n_workers, "n_workers")
    threads_per_worker = _check_threads(threads_per_worker, "threads_per_worker")
    plugin = TorchThreadsPlugin(torch_threads, cuda_devices=cuda_devices)
    options: dict[str, Any] = {
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }
    options.update(cluster_kwargs)
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, **options
        ) as cluster,
        Client(cluster, timeout=timeout) as client,
    ):
        client.wait_for_workers(n_workers, timeout=timeout)
        client.register_plugin(plugin)
        yield client
