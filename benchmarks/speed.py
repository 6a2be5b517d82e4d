"""Speed and memory of DiffMM training and recommendation, per phase and per scenario.

Run::

    python benchmarks/speed.py                      # tiktok, sports, large on the default device
    python benchmarks/speed.py --scenarios sports --device cpu --threads 16
    python benchmarks/speed.py --device cuda --precision bf16 --label h100-bf16
    python benchmarks/speed.py --quick              # a tiny synthetic run (smoke test, seconds)
    python benchmarks/speed.py --scenarios tiktok --precision fp32,bf16 --rounds 2
                                                    # both precisions, alternating, twice each

Prints a markdown table and writes ``benchmarks/results/speed_<label>.json`` and ``.md``
(``--out`` changes the folder; the label defaults to the device, e.g. ``cpu-16t`` or
``cuda-nvidia-h100-80gb-hbm3``).

Scenarios
---------
``tiktok``
    The real TikTok data (``diffmm.datasets.load_tiktok``; skipped when absent) with the
    ``"tiktok"`` preset and its validation split.
``sports``
    Synthetic data at Amazon-Sports scale: 35,598 users, 18,357 items, 219,883 training
    interactions (``make_synthetic``, seed 0, with a mean of 8 interactions per user, 10%
    validation and 10% test per user as in the usual 8:1:1 split), modalities of 4,096 (image)
    and 1,024 (text) dimensions, with the ``"amazon-sports"`` preset.
``large``
    Twice the users and twice the items of ``sports`` (same interactions per user, same
    modalities and preset), to show how the cost grows: the denoisers' cost grows with
    users × items, so about 4× ``sports``.

Each scenario runs in its own process, so its peak resident memory (``ru_maxrss``) is its own.
Synthetic data are generated beforehand by the parent process and read from ``.npy`` files:
the generator's float64 temporaries (about 1.5 GB for ``sports``) would otherwise set the peak.

What is measured
----------------
*Seconds per phase* come from the estimator's ``history_`` (``seconds_denoiser``,
``seconds_generation``, ``seconds_recommender``, ``seconds_evaluation``); each is the median over
the measured epochs. With more than one epoch the first is a warm-up and is left out; with one
epoch that epoch (warm-up included) is all there is. *Total* is the median of the per-epoch sums.
On CUDA the trainer synchronises at the end of each phase, so queued GPU work is counted in the
phase that queued it.

*Recommend throughput*: ``model.recommend(all fitted users, n=20)`` over the full catalogue
(training items excluded), in users per second, next to a bare torch baseline on the same
fitted factors and the same threads (``user_factors_ @ item_factors_.T`` in chunks of 1,024
users, then ``torch.topk(k=20)``, no masking, on the CPU like ``recommend``); ``rec/bare`` is
recommend's time over the baseline's.

*Dense matmul throughput* of this machine for the denoiser's own shapes: ``F.linear`` of a
(B, n_in) input with an (n_out, n_in) weight for every layer of the denoiser (by default
(B, I+10) → 1000 and (B, 1000) → I, B = min(batch_size, users) = 1,024), in fp32 and bf16,
after warm-ups, median of timed repeats; the layers' combined rate is their total FLOPs over
their total time.

FLOP model
----------
One denoiser forward pass for one user costs ``F = 2·Σ_l n_in,l·n_out,l``; with one hidden
layer of ``h`` units and a time embedding of ``τ`` (10) that is ``F = 2·((I+τ)·h + h·I)``
(the τ×τ time-embedding layer and the biases are left out). Per epoch, over ``U`` users and
``M`` modalities:

* denoiser training = ``2.5·F·U·M``: the forward pass (1), the weight gradients (1) and the input
  gradients of every layer but the first (0.5 with one hidden layer; the first layer's input is
  data and needs no gradient, and the denoiser splits that layer into a data block and a time
  block so that autograd computes none);
* graph generation = ``T·F·U·M − 2·I·h·U·M`` (``T`` = ``diffusion_steps`` forward passes per
  user; with ``sampling_steps = 0`` the first step's input is the sparse interaction row, so its
  first-layer data block costs only the row's stored entries and is not counted).

*Efficiency* of a phase = its FLOPs / its seconds / the measured combined matmul rate (bf16's
when ``--precision bf16``, else fp32's). The FLOPs leave out the alignment loss (products of
B × I rows with I × D embeddings, a few per cent more), the Adam steps, building dense rows
from the sparse matrix and the top-k: their time counts against the efficiency.

*Floors*: what each phase's matrix products need at this machine's rates, measured in the
same process (so a slow day of the machine moves the floor with the phase). Denoiser and
generation: their FLOPs (above) at the denoisers' matmul rate, in fp32 and in bf16. The
recommender step computes in fp32 in both precisions: InfoNCE's three products per block of
rows (``6·D·(u_b·U + i_b·I)`` FLOPs per batch and view pair, ``u_b`` and ``i_b`` the batch's
distinct users and items, counted on a shuffled epoch), at the rate of those products timed
at one block's shape, plus the encoder's sparse products with ``A`` and the generated graphs,
forward and backward, priced per stored entry from one timed ``A·X``. The epoch floor is the
three phases' sum. Each phase is reported as measured / floor; the project's targets are
stated as such ratios, so that both CPU kinds (and a GPU) are held to the same standard.
The report names the CPU kind (vendor and the AVX-512 BF16 / AMX features that set the
rates). ``--precision fp32,bf16 --rounds N`` runs both precisions alternately, N times each
in fresh processes, and tabulates the recommender step's run-to-run spread and its bf16 /
fp32 ratio.

Memory estimate
---------------
The expected peak, from the fitted model's sizes (4 bytes per float; ``P`` = number of
parameters, ``B`` = denoiser batch rows, ``D`` = embedding size)::

    RSS before training                      (measured: Python, torch, the data)
  + 5·4·(P_network + P_denoisers)            weights, Adam's two moments and two weight
                                             copies (the best epoch's and, while a new
                                             best is being copied, the next)
  + 4·(P_network + max_m P_denoiser_m)       gradients (each denoiser is stepped right
                                             after its own backward)
  + 12·(nnz(A) + 2·Σ_m nnz(G_m))             CSR graphs (float32 value + int64 column):
                                             adjacency, generated graphs of two epochs
  + 64·nnz(R)                                interaction bookkeeping (copies, negatives, order)
  + max(dense denoiser batch, dense recommender step), where
        denoiser:    4·B·I·6                 for the one modality at work (one at a
                                             time): x_t (in the noise's memory), the first
                                             layer's input (in the dropout draw's memory,
                                             kept for the backward), the output and
                                             x̂0 − x0 (kept); in the backward pass the
                                             loss gradient takes the output's place (x0
                                             itself stays sparse); and the next noise and
                                             dropout draw, drawn ahead (on the CPU)
        recommender: 4·(U+I)·D·(12·M + 8)    full-graph forward activations kept for backward
                   + pairs·4·D·(U + I + 2·B) InfoNCE's gradients, kept from its forward
                                             pass to its backward, per view pair
                   + min(8 MB, 4·B·max(U, I)) one block of InfoNCE's exponentials

The features are not in the sum: training reads the caller's arrays (which the RSS before
training holds), and the estimator's own copy (``copy_features=True``) is taken after
training, once Adam's moments (8 bytes per parameter) are gone.

It counts live tensors, in fp32 (with ``--precision bf16`` some dense temporaries are
half that size). On the CPU, glibc's allocator keeps some freed blocks (those under its
mmap threshold, which rises to 32 MB after the first large free) in its heap, where small
allocations split them; the trainer returns the free pages to the system at the end of each
phase (``malloc_trim``), but within a phase the measured peak can still pass the estimate
by some per cent. On CUDA the same sum without the first line estimates the GPU's peak
allocation (``torch.cuda.max_memory_allocated``), shown as "GPU peak GB".
"""

from __future__ import annotations

import argparse
import datetime
import functools
import inspect
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from diffmm.losses import INFO_NCE_BLOCK_BYTES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PHASES = ("denoiser", "generation", "recommender", "evaluation")
TOP_N = 20
CHUNK = 1024  # users per block, as recommend()'s default batch_size
GB = 1e9

# Synthetic scenarios: make_synthetic arguments and the estimator preset.
SYNTHETIC: dict[str, dict[str, Any]] = {
    "sports": {
        "data": {
            "n_users": 35_598,
            "n_items": 18_357,
            "interactions_per_user": 8,
            "validation_fraction": 0.1,
            "test_fraction": 0.1,
            "modality_dims": {"image": 4096, "text": 1024},
        },
        "preset": "amazon-sports",
        "params": {},
    },
    "large": {
        "data": {
            "n_users": 2 * 35_598,
            "n_items": 2 * 18_357,
            "interactions_per_user": 8,
            "validation_fraction": 0.1,
            "test_fraction": 0.1,
            "modality_dims": {"image": 4096, "text": 1024},
        },
        "preset": "amazon-sports",
        "params": {},
    },
    "quick": {
        "data": {
            "n_users": 200,
            "n_items": 120,
            "interactions_per_user": 8,
            "validation_fraction": 0.2,
            "modality_dims": {"image": 32, "text": 16},
        },
        "preset": None,
        "params": {"denoiser_hidden_dims": (64,), "embedding_dim": 16},
    },
}
DEFAULT_SCENARIOS = ("tiktok", "sports", "large")
DEFAULT_EPOCHS = {"tiktok": 3, "sports": 1, "large": 1, "quick": 2}


# -- measurements ------------------------------------------------------------------------------


def _current_rss() -> int | None:
    """Resident set size now, in bytes (Linux only)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int | None:
    """Peak resident set size of this process so far, in bytes (``ru_maxrss``)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(
    fn: Callable[[], object],
    device: torch.device,
    *,
    warmups: int = 2,
    repeats: int = 5,
    budget_s: float = 5.0,
) -> dict[str, float | int]:
    """Median seconds of ``fn()`` over up to ``repeats`` timed calls after ``warmups``.

    Calls stop once ``budget_s`` is spent (at least one timed call is made); a first warm-up
    slower than the budget is itself the measurement, so very slow cases stay bounded.
    """

    def once() -> float:
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start

    times: list[float] = []
    if warmups == 0:
        times.append(once())
    else:
        first = once()
        if first > budget_s:
            return {"seconds": first, "repeats": 1, "cold": True}
        for _ in range(warmups - 1):
            once()
    while len(times) < repeats and (not times or sum(times) < budget_s):
        times.append(once())
    return {"seconds": statistics.median(times), "repeats": len(times), "cold": False}


def denoiser_layers(
    n_items: int, hidden_dims: tuple[int, ...], time_dim: int
) -> list[tuple[int, int]]:
    """(n_in, n_out) of every linear layer of a denoiser (time embedding left out)."""
    sizes = [n_items + time_dim, *hidden_dims, n_items]
    return list(itertools.pairwise(sizes))


def forward_flops(layers: list[tuple[int, int]]) -> int:
    """FLOPs of one denoiser forward pass for one user: ``2·Σ n_in·n_out``."""
    return 2 * sum(a * b for a, b in layers)


def matmul_rates(
    layers: list[tuple[int, int]], batch: int, device: torch.device
) -> dict[str, dict[str, Any]]:
    """GFLOP/s of ``F.linear`` for each layer's shape, in fp32 and bf16 (where it runs)."""
    rates: dict[str, dict[str, Any]] = {}
    generator = torch.Generator(device=device).manual_seed(0)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        per_layer = []
        try:
            for n_in, n_out in layers:
                x = torch.randn(batch, n_in, generator=generator, device=device).to(dtype)
                w = torch.randn(n_out, n_in, generator=generator, device=device).to(dtype)
                b = torch.randn(n_out, generator=generator, device=device).to(dtype)
                timing = _timed(lambda x=x, w=w, b=b: F.linear(x, w, b), device)
                flops = 2 * batch * n_in * n_out
                per_layer.append(
                    {
                        "shape": f"({batch}, {n_in}) -> {n_out}",
                        "gflop": flops / 1e9,
                        **timing,
                        "gflops_per_s": flops / timing["seconds"] / 1e9,
                    }
                )
                del x, w, b
        except (RuntimeError, TypeError) as exc:  # a dtype this build or device lacks
            rates[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        total_flops = sum(layer["gflop"] for layer in per_layer)
        total_seconds = sum(layer["seconds"] for layer in per_layer)
        rates[name] = {"layers": per_layer, "gflops_per_s": total_flops / total_seconds}
    return rates


def recommend_throughput(model: Any) -> dict[str, float]:
    """Users/s of ``model.recommend`` (all users, top 20) and of a bare torch top-k."""
    users = model.user_ids_
    n_users = len(users)
    model.recommend(users[: min(n_users, 256)], n=TOP_N)  # warm-up
    rec = _timed(lambda: model.recommend(users, n=TOP_N), torch.device("cpu"), warmups=0)
    user_factors = torch.from_numpy(model.user_factors_)
    item_factors = torch.from_numpy(model.item_factors_)
    k = min(TOP_N, item_factors.shape[0])

    def bare() -> None:
        for start in range(0, n_users, CHUNK):
            torch.topk(user_factors[start : start + CHUNK] @ item_factors.T, k, dim=1)

    base = _timed(bare, torch.device("cpu"), warmups=1)
    return {
        "users": n_users,
        "recommend_seconds": rec["seconds"],
        "recommend_users_per_s": n_users / rec["seconds"],
        "bare_seconds": base["seconds"],
        "bare_users_per_s": n_users / base["seconds"],
        "recommend_over_bare": rec["seconds"] / base["seconds"],
    }


def _distinct_per_batch(train: sp.csr_matrix, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct users and distinct positive items in each batch of a shuffled epoch.

    The trainer shuffles the training interactions once per epoch and cuts them into batches;
    InfoNCE compares each batch's distinct users (items) with all users (items). Shuffled with
    a fixed seed here: the counts, not the order, set the work.
    """
    coo = train.tocoo()
    order = np.random.default_rng(0).permutation(coo.nnz)
    users, items = coo.row[order], coo.col[order]
    starts = range(0, coo.nnz, batch)
    distinct_users = np.array([np.unique(users[s : s + batch]).size for s in starts])
    distinct_items = np.array([np.unique(items[s : s + batch]).size for s in starts])
    return distinct_users, distinct_items


def _contrastive_pairs(params: dict[str, Any], n_modalities: int) -> int:
    if params["contrastive"] is None or params["contrastive_weight"] <= 0:
        return 0
    if params["contrastive"] == "main_modal":
        return n_modalities
    return n_modalities * (n_modalities - 1) // 2


def recommender_floor(model: Any, train: sp.csr_matrix, device: torch.device) -> dict[str, Any]:
    """The seconds the recommender step's products need at this machine's measured rates.

    The step's arithmetic is InfoNCE's three products per block of rows (the similarities
    ``x·yᵀ`` of the batch's distinct nodes with all nodes, then the two gradients ``E·y`` and
    ``Eᵀ·x``), ``6·D·(u_b·U + i_b·I)`` FLOPs per batch and view pair, and the encoder's
    sparse products with ``A`` and the generated graphs ``G_m``, forward and backward. Both
    run in fp32 whatever ``precision`` says. Each is timed here at its own shape: the three
    products on one block of rows (as ``diffmm.losses`` cuts them) against all users and
    against all items, and one product ``A·X`` with X of shape (U+I, D), whose seconds per
    stored entry price every sparse product by its number of entries. What the floor leaves
    out (normalisation, the exponentials, BPR, Adam, the elementwise work of the backward
    pass) is what a faster step must fuse or drop.
    """
    from diffmm._graph import adjacency_from_matrix

    params = model.get_params()
    dim, batch = params["embedding_dim"], params["batch_size"]
    n_users, n_items = train.shape
    n_modalities = len(model.modalities_)
    pairs = _contrastive_pairs(params, n_modalities)
    distinct_users, distinct_items = _distinct_per_batch(train, batch)
    generator = torch.Generator(device=device).manual_seed(0)

    contrastive: dict[str, Any] = {"pairs": pairs, "sides": {}}
    contrastive_seconds = 0.0
    for side, n_nodes, distinct in (
        ("users", n_users, distinct_users),
        ("items", n_items, distinct_items),
    ):
        block = max(1, min(INFO_NCE_BLOCK_BYTES // (4 * n_nodes), int(distinct.max())))
        x = torch.randn(block, dim, generator=generator, device=device)
        y = torch.randn(n_nodes, dim, generator=generator, device=device)
        e = torch.empty(block, n_nodes, device=device)
        gx, gy = torch.empty(block, dim, device=device), torch.empty(n_nodes, dim, device=device)

        def products(x=x, y=y, e=e, gx=gx, gy=gy) -> None:
            torch.mm(x, y.T, out=e)
            torch.mm(e, y, out=gx)
            torch.mm(e.T, x, out=gy)

        timing = _timed(products, device, repeats=9)
        rate = 6 * dim * block * n_nodes / timing["seconds"]
        flops = pairs * 6 * dim * n_nodes * float(distinct.sum())
        contrastive_seconds += flops / rate
        contrastive["sides"][side] = {
            "block_rows": block,
            "mean_distinct_per_batch": float(distinct.mean()),
            "gflop_per_epoch": flops / 1e9,
            "gflops_per_s": rate / 1e9,
        }
        del x, y, e, gx, gy

    adjacency = adjacency_from_matrix(model.interactions_, device)
    dense = torch.randn(adjacency.shape[1], dim, generator=generator, device=device)
    out = torch.empty(adjacency.shape[0], dim, device=device)
    if device.type == "cpu":
        timing = _timed(lambda: torch.addmm(out, adjacency, dense, beta=0, out=out), device)
    else:
        timing = _timed(lambda: adjacency @ dense, device)
    nnz_a = int(adjacency.values().numel())
    per_entry = timing["seconds"] / nnz_a
    layers = params["n_layers"]
    graphs = getattr(model, "generated_graphs_", None)
    # Entries multiplied per batch, forward: per modality two products with A (the user and
    # item halves), one with G_m, and for the contrastive view G_m then L with A; then L
    # products of the fused embedding with A. The backward pass multiplies the same again.
    nnz_g = [int(g.nnz) for g in graphs] if graphs is not None else [nnz_a] * n_modalities
    per_batch = layers * nnz_a
    for nnz in nnz_g:
        per_batch += 2 * nnz_a + (nnz if graphs is not None else 0)
        if pairs:
            per_batch += nnz + layers * nnz_a
    n_batches = len(distinct_users)
    sparse_seconds = 2 * n_batches * per_batch * per_entry
    return {
        "seconds": contrastive_seconds + sparse_seconds,
        "contrastive_seconds": contrastive_seconds,
        "sparse_seconds": sparse_seconds,
        "batches": n_batches,
        "contrastive": contrastive,
        "sparse": {
            "adjacency_nnz": nnz_a,
            "generated_nnz": nnz_g if graphs is not None else None,
            "seconds_per_adjacency_product": timing["seconds"],
            "entries_per_batch_forward": per_batch,
        },
    }


def phase_floors(
    flops: dict[str, float], rates: dict[str, dict[str, Any]], recommender: dict[str, Any]
) -> dict[str, dict[str, float | None]]:
    """Each phase's floor in seconds, for fp32 and for bf16 denoisers, from measured rates.

    The denoiser and generation floors are their FLOPs at the matmul rate of the denoisers'
    own shapes in that precision; the recommender's is the same in both (it computes in
    fp32); the epoch's is their sum (evaluation, a fraction of a second, is left out).
    """
    floors: dict[str, dict[str, float | None]] = {}
    for key in ("fp32", "bf16"):
        rate = rates.get(key, {}).get("gflops_per_s")
        dense = {
            phase: (flops[phase] / (rate * 1e9) if rate else None)
            for phase in ("denoiser", "generation")
        }
        parts = [dense["denoiser"], dense["generation"], recommender["seconds"]]
        floors[key] = {
            **dense,
            "recommender": recommender["seconds"],
            "epoch": None if None in parts else sum(parts),
        }
    return floors


def _graph_bytes(nnz: int, n_nodes: int) -> int:
    # torch sparse CSR: float32 values + int64 column indices per entry, int64 row pointers.
    return 12 * nnz + 8 * (n_nodes + 1)


def memory_estimate(model: Any, rss_before: int | None) -> dict[str, Any]:
    """The expected peak memory from the fitted model's sizes (see the module docstring)."""
    network, denoisers = model.network_, model.denoisers_
    n_users, n_items = model.n_users_, model.n_items_
    n_modalities = len(model.modalities_)
    n_nodes = n_users + n_items
    nnz = int(model.interactions_.nnz)
    batch = min(model.batch_size, n_users)
    dim = model.embedding_dim
    params = sum(p.numel() for p in network.parameters())
    params += sum(p.numel() for d in denoisers for p in d.parameters())
    generated = 0  # entries of the (U+I) × (U+I) generated graphs (both blocks, self-loops)
    if model.generated_graphs_ is not None:
        generated = sum(g.nnz for g in model.generated_graphs_)
    adjacency = 2 * nnz + n_nodes
    pairs = {
        "modal_modal": n_modalities * (n_modalities - 1) // 2,
        "main_modal": n_modalities,
        None: 0,
    }[model.contrastive if model.contrastive_weight > 0 else None]
    # One modality's activations at a time (the trainer runs backward per modality).
    # Six rows: four in use, and the next item's noise and dropout draw being drawn ahead.
    dense_denoiser = 4 * batch * n_items * 6 if denoisers else 0

    # InfoNCE (see diffmm.losses): each call keeps its two gradients, (B × D) and
    # (nodes × D), for the backward; its exponentials exist one block at a time.
    block = min(INFO_NCE_BLOCK_BYTES, 4 * batch * max(n_users, n_items)) if pairs else 0
    similarities = pairs * 4 * dim * (n_users + n_items + 2 * batch) + block
    dense_recommender = 4 * n_nodes * dim * (12 * n_modalities + 8) + similarities
    # Gradients: the network's, and one denoiser's at a time (stepped after its backward).
    largest_denoiser = max((sum(p.numel() for p in d.parameters()) for d in denoisers), default=0)
    parts = {
        "parameters_adam_snapshots": 5 * 4 * params + 4 * largest_denoiser,
        "graphs": _graph_bytes(adjacency, n_nodes) + 2 * _graph_bytes(generated, n_nodes),
        "interactions": 64 * nnz,
        "dense_peak": max(dense_denoiser, dense_recommender),
    }
    model_bytes = sum(parts.values())
    return {
        "parts_gb": {k: v / GB for k, v in parts.items()},
        "dense_denoiser_gb": dense_denoiser / GB,
        "dense_recommender_gb": dense_recommender / GB,
        "parameters": params,
        "model_gb": model_bytes / GB,
        "rss_gb": None if rss_before is None else (rss_before + model_bytes) / GB,
    }


# -- one scenario (in a child process) ----------------------------------------------------------


def _save_synthetic(name: str, folder: Path) -> None:
    from diffmm.datasets import make_synthetic

    data = make_synthetic(**SYNTHETIC[name]["data"], random_state=0)
    for split in ("train", "validation"):
        matrix = getattr(data, split)
        np.save(folder / f"{split}_indptr.npy", matrix.indptr)
        np.save(folder / f"{split}_indices.npy", matrix.indices)
    for modality, values in data.features.items():
        np.save(folder / f"feature_{modality}.npy", values)
    meta = {"shape": list(data.train.shape), "modalities": list(data.features)}
    (folder / "meta.json").write_text(json.dumps(meta))


def _load_synthetic(folder: Path) -> tuple[sp.csr_matrix, sp.csr_matrix, dict[str, np.ndarray]]:
    meta = json.loads((folder / "meta.json").read_text())
    shape = tuple(meta["shape"])
    splits = []
    for split in ("train", "validation"):
        indptr = np.load(folder / f"{split}_indptr.npy")
        indices = np.load(folder / f"{split}_indices.npy")
        ones = np.ones(len(indices), dtype=np.float32)
        splits.append(sp.csr_matrix((ones, indices, indptr), shape=shape))
    features = {m: np.load(folder / f"feature_{m}.npy") for m in meta["modalities"]}
    return splits[0], splits[1], features


def _estimator(job: dict[str, Any]) -> Any:
    from diffmm import DiffMMRecommender

    name = job["scenario"]
    settings = {
        "epochs": job["epochs"],
        "device": job["device"],
        "random_state": 0,
        "patience": None,
    }
    accepts_precision = "precision" in inspect.signature(DiffMMRecommender).parameters
    if job["precision"] != "fp32" or accepts_precision:
        if not accepts_precision:
            raise SystemExit(
                f"--precision {job['precision']}: this diffmm's DiffMMRecommender has no "
                "'precision' parameter yet; run with --precision fp32."
            )
        settings["precision"] = job["precision"]
    if not job.get("copy_features", True):
        settings["copy_features"] = False
    if name == "tiktok":
        return DiffMMRecommender.from_preset("tiktok", **settings)
    spec = SYNTHETIC[name]
    settings.update(spec["params"])
    if spec["preset"] is None:
        return DiffMMRecommender(**settings)
    return DiffMMRecommender.from_preset(spec["preset"], **settings)


def _warm_up_torch(device: torch.device) -> None:
    """One tiny Adam step, so that the baseline RSS holds what torch loads on first use.

    (The first optimiser step imports ``torch._dynamo``, about 100 MB; on CUDA the context.)
    """
    import diffmm  # noqa: F401  (scikit-learn, pandas: part of the process baseline too)

    layer = torch.nn.Linear(4, 4).to(device)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(2, 4, device=device)).sum().backward()
    optimizer.step()
    _sync(device)


def _phase_medians(history: list[dict[str, Any]]) -> dict[str, Any]:
    measured = history[1:] if len(history) > 1 else history
    medians = {}
    for phase in PHASES:
        values = [r[f"seconds_{phase}"] for r in measured if f"seconds_{phase}" in r]
        medians[phase] = statistics.median(values) if values else None
    totals = [sum(r.get(f"seconds_{p}", 0.0) for p in PHASES) for r in measured]
    medians["total"] = statistics.median(totals)
    if len(history) > 1:
        note = f"median of epochs 2-{len(history)}; epoch 1 skipped as warm-up"
    else:
        note = "one epoch, warm-up included"
    return {"seconds": medians, "epochs_run": len(history), "epochs_note": note}


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in this process and return its measurements."""
    name = job["scenario"]
    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    _warm_up_torch(device)
    if name == "tiktok":
        from diffmm.datasets import load_tiktok

        data = load_tiktok(job["tiktok_path"])
        train, validation, features = data.train, data.validation, data.features
        del data
    else:
        train, validation, features = _load_synthetic(Path(job["cache"]))
    rss_before, peak_before = _current_rss(), _peak_rss()
    n_users, n_items = train.shape
    print(
        f"[{name}] {n_users} users, {n_items} items, {train.nnz} training interactions; "
        f"RSS before training {_fmt(_gb(rss_before))} GB; fitting {job['epochs']} epoch(s) on "
        f"{device} with {job['threads']} thread(s)",
        flush=True,
    )
    model = _estimator(job)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    model.fit(train, features, validation_data=validation)
    _sync(device)
    fit_seconds = time.perf_counter() - start
    peak_fit = _peak_rss()
    gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    print(f"[{name}] fitted in {fit_seconds:.1f} s; measuring recommend and matmul", flush=True)

    recommend = recommend_throughput(model)
    params = model.get_params()
    layers = denoiser_layers(
        n_items, tuple(params["denoiser_hidden_dims"]), params["time_embedding_dim"]
    )
    batch = min(params["batch_size"], n_users)
    rates = matmul_rates(layers, batch, device)
    fwd = forward_flops(layers)
    passes = fwd * n_users * len(model.modalities_) if params["generate_graphs"] else 0
    sparse_first = 0
    if params["generate_graphs"] and params["sampling_steps"] == 0:
        hidden = layers[0][1]
        sparse_first = 2 * n_items * hidden * n_users * len(model.modalities_)
    flops = {
        "forward_per_user": fwd,
        "denoiser": 2.5 * passes,
        "generation": params["diffusion_steps"] * passes - sparse_first,
    }
    phases = _phase_medians(model.history_)
    rate_key = "bf16" if job["precision"] == "bf16" else "fp32"
    recommender = recommender_floor(model, train, device)
    floors = phase_floors(flops, rates, recommender)
    measured = {p: phases["seconds"][p] for p in ("denoiser", "generation", "recommender")}
    measured["epoch"] = sum(value or 0.0 for value in measured.values())
    over_floor = {
        phase: (measured[phase] / floor if measured[phase] and floor else None)
        for phase, floor in floors[rate_key].items()
    }
    # Efficiency of the dense phases: the share of the measured matmul rate, floor / seconds.
    efficiency = {
        phase: (1 / over_floor[phase] if over_floor[phase] and flops[phase] else None)
        for phase in ("denoiser", "generation")
    }
    return {
        "scenario": name,
        "device": str(device),
        "precision": job["precision"],
        "threads": torch.get_num_threads(),
        "blas_threads": _blas_threads(),
        "users": n_users,
        "items": n_items,
        "interactions": int(train.nnz),
        "validation_interactions": int(validation.nnz) if validation is not None else 0,
        "modalities": {m: int(f.shape[1]) for m, f in features.items()},
        "params": {k: _jsonable(v) for k, v in params.items()},
        "fit_seconds": fit_seconds,
        **phases,
        "flops": flops,
        "efficiency_rate": rate_key,
        "efficiency": efficiency,
        "floors": floors,
        "over_floor": over_floor,
        "recommender_floor": recommender,
        "matmul": {"batch": batch, "layers": [list(layer) for layer in layers], **rates},
        "recommend": recommend,
        "memory": {
            "rss_before_training_gb": _gb(rss_before),
            "peak_rss_before_training_gb": _gb(peak_before),
            "peak_rss_fit_gb": _gb(peak_fit),
            "peak_rss_end_gb": _gb(_peak_rss()),
            "gpu_peak_allocated_gb": _gb(gpu_peak),
            "estimate": memory_estimate(model, rss_before),
        },
        "history": [{k: _jsonable(v) for k, v in record.items()} for record in model.history_],
        "cuda": _cuda_info(device),
    }


def _cuda_info(device: torch.device) -> dict[str, Any] | None:
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    return {
        "cuda_device": props.name,
        "cuda_memory_gb": props.total_memory / GB,
        "cuda_version": torch.version.cuda,
    }


def _blas_threads() -> dict[str, int] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return {f"{i['internal_api']}:{i['user_api']}": i["num_threads"] for i in threadpool_info()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.device, Path)):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator):
        return None
    return value


def _gb(value: float | None) -> float | None:
    return None if value is None else round(value / GB, 3)


def _worker(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    result = measure(job)
    Path(job["result"]).write_text(json.dumps(result, indent=1))


# -- the parent: machine info, children, tables ----------------------------------------------


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first CPU's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model() -> str:
    if "model name" in _cpuinfo():
        return _cpuinfo()["model name"]
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Instruction-set features that decide the matmul rates this suite measures.
KIND_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_kind() -> dict[str, Any]:
    """The CPU's vendor, its features from :data:`KIND_FLAGS` and a short name for the kind.

    The project's machines come in kinds (an AMD EPYC with AVX-512 BF16, an Intel Xeon with
    AMX, ...) whose matmul rates differ by several times: every figure names its kind.
    """
    vendor, flags = _cpuinfo().get("vendor_id"), set(_cpuinfo().get("flags", "").split())
    features = [flag for flag in KIND_FLAGS if flag in flags]
    maker = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor or "", vendor)
    if "amx_bf16" in flags:
        extras = "AMX"
    elif "avx512_bf16" in flags:
        extras = "AVX-512 BF16"
    elif "avx512f" in flags:
        extras = "AVX-512"
    else:
        extras = "AVX2" if "avx2" in flags else platform.machine()
    name = f"{maker or platform.machine()} {extras}, {os.cpu_count()} logical CPUs"
    return {"vendor": vendor, "features": features, "kind": name}


def _memory_total() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GB
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    import diffmm

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": _cpu_model(),
        **cpu_kind(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": _memory_total(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "diffmm": diffmm.__version__,
        "commit": commit or None,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_device": None,  # filled in from the scenarios (the parent never touches the GPU)
    }


def _default_label(
    device: torch.device, gpu: str | None, threads: int, precision: str, quick: bool
) -> str:
    if device.type == "cuda":
        label = "cuda-" + re.sub(r"[^a-z0-9]+", "-", (gpu or "").lower()).strip("-")
        label = label.rstrip("-")
    else:
        label = f"cpu-{threads}t"
    if precision != "fp32":
        label += f"-{precision}"
    return label + ("-quick" if quick else "")


def _run_child(job: dict[str, Any], folder: Path, env: dict[str, str], run: str) -> int:
    path = folder / f"{run}_job.json"
    path.write_text(json.dumps(job))
    command = [sys.executable, __file__, "--worker-job", str(path)]
    return subprocess.run(command, env=env, check=False).returncode


def run_scenario(
    name: str,
    args: argparse.Namespace,
    device: torch.device,
    folder: Path,
    env: dict[str, str],
    precision: str = "fp32",
    round_: int = 1,
) -> dict[str, Any]:
    """Generate the data (synthetic, once per scenario) and measure one run in a fresh process."""
    epochs = args.epochs or DEFAULT_EPOCHS[name]
    run = f"{name}_{precision}_{round_}"
    job = {
        "scenario": name,
        "epochs": epochs,
        "device": str(device),
        "precision": precision,
        "copy_features": not args.no_feature_copy,
        "threads": args.threads,
        "tiktok_path": str(args.tiktok_path),
        "cache": str(folder / name),
        "result": str(folder / f"{run}_result.json"),
    }
    if name == "tiktok":
        if not (args.tiktok_path / "trnMat.pkl").is_file():
            reason = f"no TikTok data at {args.tiktok_path} (pass --tiktok-path)"
            print(f"[tiktok] skipped: {reason}", flush=True)
            return {"scenario": name, "precision": precision, "round": round_, "skipped": reason}
    elif not (folder / name).exists():
        (folder / name).mkdir()
        print(f"[{name}] generating synthetic data", flush=True)
        _save_synthetic(name, folder / name)
    code = _run_child(job, folder, env, run)
    if code != 0:
        error = f"the measuring process exited with code {code}"
        return {"scenario": name, "precision": precision, "round": round_, "error": error}
    return {**json.loads(Path(job["result"]).read_text()), "round": round_}


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "–"
    return format(value, spec)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _run_name(s: dict[str, Any]) -> str:
    return s["scenario"] + (f" #{s['round']}" if s.get("round", 1) > 1 else "")


def _floor_lines(done: list[dict[str, Any]]) -> list[str]:
    """Each phase against its floor, and the run-to-run spread of the recommender step."""
    done = [s for s in done if "floors" in s]
    if not done:
        return []
    lines = [
        "",
        "## Each phase against its floor",
        "",
        "Floor: the seconds a phase's matrix products need at the rates measured in the same "
        "process (the denoiser and generation FLOPs at the denoisers' matmul rate in the run's "
        "precision; the recommender step's InfoNCE products and sparse products, in fp32 in "
        "both precisions, each timed at its own shape). Ratio = measured / floor (1.00× is "
        "the floor). The epoch is the three phases.",
        "",
        "| scenario | precision | denoiser | generation | recommender | epoch "
        "| epoch floor fp32 / bf16 s | recommender floor: InfoNCE + sparse s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in done:
        ratios, floors, rec = s["over_floor"], s["floors"], s["recommender_floor"]
        cell = {
            p: (
                f"{_fmt(ratios[p])}× ({_fmt(floors[s['precision']][p])} s)"
                if ratios.get(p)
                else "–"
            )
            for p in ("denoiser", "generation", "recommender", "epoch")
        }
        lines.append(
            f"| {_run_name(s)} | {s['precision']} | {cell['denoiser']} | {cell['generation']} "
            f"| {cell['recommender']} | {cell['epoch']} "
            f"| {_fmt(floors['fp32']['epoch'])} / {_fmt(floors['bf16']['epoch'])} "
            f"| {_fmt(rec['contrastive_seconds'])} + {_fmt(rec['sparse_seconds'])} |"
        )
    groups: dict[tuple[str, str], list[float]] = {}
    for s in done:
        value = s["seconds"]["recommender"]
        if value is not None:
            groups.setdefault((s["scenario"], s["precision"]), []).append(value)
    if any(len(v) > 1 for v in groups.values()) or len({p for _, p in groups}) > 1:
        lines += [
            "",
            "Recommender step from run to run (median s/epoch of each run; spread = "
            "(max − min) / median):",
            "",
            "| scenario | precision | runs | seconds | spread | against fp32 (median) |",
            "|---|---|---|---|---|---|",
        ]
        for (scenario, precision), values in groups.items():
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median if median else None
            fp32 = groups.get((scenario, "fp32"))
            against = median / statistics.median(fp32) if fp32 else None
            lines.append(
                f"| {scenario} | {precision} | {len(values)} "
                f"| {', '.join(_fmt(v) for v in values)} | {_pct(spread)} "
                f"| {_fmt(against)}× |"
            )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The results as markdown: machine, main table, matmul rates, memory estimate, notes."""
    machine = report["machine"]
    lines = [
        f"# Speed and memory: {report['label']}",
        "",
        f"Run {report['created']} with `{report['command']}`.",
        "",
        f"- CPU: {machine['cpu']} ({machine['usable_cpus']} usable of "
        f"{machine['logical_cpus']} logical CPUs, {_fmt(machine['memory_gb'], '.0f')} GB, "
        f"capability {machine['cpu_capability']})",
        f"- CPU kind: {machine.get('kind', '?')} (features: "
        f"{', '.join(machine.get('features') or []) or 'none of ' + ', '.join(KIND_FLAGS)})",
        f"- GPU: {machine['cuda_device'] or 'none used'}; float32 matmul precision "
        f"{machine['float32_matmul_precision']!r}",
        f"- Python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}, "
        f"diffmm {machine['diffmm']} (commit {machine['commit']})",
        "",
    ]
    done = [s for s in report["scenarios"] if "seconds" in s]
    header = (
        "| scenario | device | precision | threads | users | items | interactions "
        "| denoiser s | generation s | recommender s | evaluation s | total s/epoch "
        "| denoiser eff. | generation eff. | peak RSS GB | GPU peak GB | estimate GB "
        "| recommend users/s | rec/bare time |"
    )
    lines += [header, "|" + "---|" * header.count(" | ") + "---|"]
    for s in done:
        sec, mem = s["seconds"], s["memory"]
        estimate = mem["estimate"]
        on_gpu = mem["gpu_peak_allocated_gb"] is not None
        lines.append(
            "| "
            + " | ".join(
                [
                    _run_name(s),
                    s["device"],
                    s["precision"],
                    str(s["threads"]),
                    f"{s['users']:,}",
                    f"{s['items']:,}",
                    f"{s['interactions']:,}",
                    *(_fmt(sec[p]) for p in (*PHASES, "total")),
                    _pct(s["efficiency"]["denoiser"]),
                    _pct(s["efficiency"]["generation"]),
                    _fmt(mem["peak_rss_fit_gb"]),
                    _fmt(mem["gpu_peak_allocated_gb"]),
                    _fmt(estimate["model_gb"] if on_gpu else estimate["rss_gb"]),
                    f"{s['recommend']['recommend_users_per_s']:,.0f}",
                    f"{s['recommend']['recommend_over_bare']:.1f}×",
                ]
            )
            + " |"
        )
    for s in report["scenarios"]:
        if "seconds" not in s:
            lines.append(f"\n{_run_name(s)}: {s.get('skipped') or s.get('error')}")
    if not done:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Seconds are medians per epoch ("
        + "; ".join(f"{s['scenario']}: {s['epochs_note']}" for s in done)
        + "). Efficiency: the phase's FLOPs (denoiser 2.5·F·U·M, generation "
        "T·F·U·M − 2·I·h·U·M) over its "
        "seconds and the measured matmul rate below. Peak RSS: `ru_maxrss` of the scenario's "
        "process up to the end of `fit`. Estimate: the memory formula of "
        "`benchmarks/speed.py` (on CUDA without the process' RSS, to compare with the GPU "
        "peak). rec/bare: `recommend` time over a bare torch matmul + top-k on the same factors.",
    ]
    lines += _floor_lines(done)
    lines += [
        "",
        "## Dense matmul throughput (GFLOP/s) for the denoiser's shapes",
        "",
        "| scenario | shape | fp32 | bf16 |",
        "|---|---|---|---|",
    ]
    for s in done:
        mm = s["matmul"]
        for index in range(len(mm["layers"])):
            cells = [
                _fmt(mm[key]["layers"][index]["gflops_per_s"], ".0f")
                if "layers" in mm.get(key, {})
                else "n/a"
                for key in ("fp32", "bf16")
            ]
            shape = mm["fp32"]["layers"][index]["shape"] if "layers" in mm["fp32"] else "?"
            lines.append(f"| {s['scenario']} | {shape} | {cells[0]} | {cells[1]} |")
        combined = [_fmt(mm.get(k, {}).get("gflops_per_s"), ".0f") for k in ("fp32", "bf16")]
        lines.append(f"| {s['scenario']} | all layers | {combined[0]} | {combined[1]} |")
    lines += [
        "",
        "## Memory: measured and estimated (GB)",
        "",
        "| scenario | RSS before fit | peak RSS (fit) | GPU peak | estimate (RSS) "
        "| params+Adam+snapshots | graphs | interactions | dense peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in done:
        mem, est = s["memory"], s["memory"]["estimate"]
        parts = est["parts_gb"]
        lines.append(
            f"| {s['scenario']} | {_fmt(mem['rss_before_training_gb'])} "
            f"| {_fmt(mem['peak_rss_fit_gb'])} | {_fmt(mem['gpu_peak_allocated_gb'])} "
            f"| {_fmt(est['rss_gb'])} | {_fmt(parts['parameters_adam_snapshots'])} "
            f"| {_fmt(parts['graphs'])} "
            f"| {_fmt(parts['interactions'])} | {_fmt(parts['dense_peak'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help="comma-separated list from: tiktok, sports, large (default: all three)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs per scenario (default 3 tiktok, 1 else)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="fp32, bf16, or both as fp32,bf16: each scenario is run in each, alternating",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every scenario and precision this many times, each in a fresh process, "
        "to show the spread from run to run (default 1)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and BLAS threads (default: torch's)"
    )
    parser.add_argument(
        "--no-feature-copy",
        action="store_true",
        help="fit with copy_features=False (the model references the features, no copy)",
    )
    parser.add_argument("--label", default=None, help="results file suffix (default: device)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--tiktok-path", type=Path, default=ROOT.parent / "shared" / "data" / "tiktok"
    )
    parser.add_argument(
        "--quick", action="store_true", help="only a tiny synthetic scenario (smoke test)"
    )
    parser.add_argument("--worker-job", help=argparse.SUPPRESS)  # one scenario, in a child
    args = parser.parse_args(argv)
    if args.worker_job:
        _worker(args.worker_job)
        return {}

    names = ["quick"] if args.quick else [s.strip() for s in args.scenarios.split(",") if s]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        parser.error(f"--precision takes fp32, bf16 or fp32,bf16, got {args.precision!r}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    unknown = sorted(set(names) - set(DEFAULT_SCENARIOS) - {"quick"})
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(DEFAULT_SCENARIOS)}")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available")
    args.threads = args.threads or torch.get_num_threads()
    # Children use exactly these threads, in torch and in NumPy's BLAS (recommend's matmul).
    env = {
        **os.environ,
        **{
            var: str(args.threads)
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    report: dict[str, Any] = {
        "label": args.label,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "scenarios": [],
    }
    with tempfile.TemporaryDirectory(prefix="diffmm-speed-") as tmp:
        for name in names:
            # Alternating precisions within each round: a drift of the machine's speed over
            # the run then touches both alike.
            for round_ in range(1, args.rounds + 1):
                for precision in precisions:
                    report["scenarios"].append(
                        run_scenario(name, args, device, Path(tmp), env, precision, round_)
                    )
    for scenario in report["scenarios"]:
        if scenario.get("cuda"):
            report["machine"].update(scenario["cuda"])
            break
    label = args.label or _default_label(
        device, report["machine"]["cuda_device"], args.threads, "-".join(precisions), args.quick
    )
    report["label"] = label
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speed_{label}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"speed_{label}.md").write_text(text)
    print(text)
    print(f"Wrote {args.out / f'speed_{label}.json'} and .md")
    if any("error" in s for s in report["scenarios"]):
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
