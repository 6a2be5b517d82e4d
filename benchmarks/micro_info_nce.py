"""Micro-benchmark: InfoNCE and sparse × dense backward, old implementation against new.

Shapes are those of DiffMM's recommender step on TikTok (9,308 users, 6,710 items, D = 64,
batches of 1,024 interactions):

* ``info_nce`` forward + backward, for the user call (x and y views of 9,308 × 64, 1,024 nodes
  drawn at random with repeats) and the item call (6,710 rows). With the TikTok folder
  present, also for the users and items of a real batch of training interactions, which repeat
  more (active users, popular items). Then the trainer's whole 'main_modal' term: four calls
  (2 modalities × users, items) and one backward.
* The backward of ``A @ E`` for a random symmetric CSR matrix of 16,018 nodes and about 135,000
  stored entries (the size of TikTok's normalised adjacency) and E of 16,018 × 64: torch's
  ``matrix @ dense`` against :func:`diffmm._sparse.spmm` with ``symmetric=True`` and with a
  transpose built once; the forward products are timed too.

Each measurement alternates the contenders (old, new, old, new, ...) so that load from other
processes hits both alike; the median (and the minimum) of the repeats are reported, with the
ratio of the medians. Float32 on the CPU unless ``--device`` (on CUDA ``info_nce`` is the
direct formula, so only the ``spmm`` lines compare different code there).

Run::

    python benchmarks/micro_info_nce.py --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from diffmm._sparse import spmm, transpose_csr
from diffmm.losses import info_nce

ROOT = Path(__file__).resolve().parents[1]
TIKTOK = ROOT.parent / "shared" / "data" / "tiktok"
N_USERS, N_ITEMS, DIM, BATCH = 9308, 6710, 64, 1024


def old_info_nce(view_x, view_y, nodes, temperature):
    """``info_nce`` as it was before the custom autograd Function (the reference)."""
    x = F.normalize(view_x[nodes], dim=-1) / temperature
    y = F.normalize(view_y, dim=-1)
    positive = (x * y[nodes]).sum(-1)
    return (torch.logsumexp(x @ y.T, dim=-1) - positive).mean()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int, device: str, warmup: int = 2
) -> dict[str, list[float]]:
    """Milliseconds of each callable, run in turn (a, b, a, b, ...) ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(warmup + repeats):
        for name, fn in contenders.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def report(title: str, times: dict[str, list[float]], baseline: str) -> None:
    """One line: median (min) milliseconds per contender, and the ratio of the medians."""
    med = {name: statistics.median(ts) for name, ts in times.items()}
    parts = [f"{name} {med[name]:7.2f} ({min(ts):7.2f}) ms" for name, ts in times.items()]
    ratios = [f"{baseline}/{name} = {med[baseline] / med[name]:4.2f}x" for name in med]
    print(f"{title:<36} " + "  ".join(parts) + "   " + "  ".join(ratios[1:]))


def bench_info_nce(n_rows, nodes, temperature, repeats, device, gen) -> dict[str, list]:
    vx = torch.randn(n_rows, DIM, generator=gen).to(device).requires_grad_(True)
    vy = torch.randn(n_rows, DIM, generator=gen).to(device).requires_grad_(True)
    nodes = nodes.to(device)

    def step(fn):
        def run():
            vx.grad = vy.grad = None
            fn(vx, vy, nodes, temperature).backward()

        return run

    # Same value and gradients, up to float32 rounding.
    step(old_info_nce)()
    old_grads = vx.grad.clone(), vy.grad.clone()
    step(info_nce)()
    for a, b in zip((vx.grad, vy.grad), old_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    return interleaved({"old": step(old_info_nce), "new": step(info_nce)}, repeats, device)


def bench_contrastive(users, items, temperature, repeats, device, gen) -> dict[str, list]:
    """The trainer's 'main_modal' term: 2 modalities × (users, items), one backward."""
    n = N_USERS + N_ITEMS
    output = torch.randn(n, DIM, generator=gen).to(device).requires_grad_(True)
    views = [torch.randn(n, DIM, generator=gen).to(device).requires_grad_(True) for _ in "ab"]
    users, items = users.to(device), items.to(device)

    def step(fn):
        def run():
            total = output.new_zeros(())
            for z in views:
                total = total + fn(output[:N_USERS], z[:N_USERS], users, temperature)
                total = total + fn(output[N_USERS:], z[N_USERS:], items, temperature)
            total.backward()

        return run

    return interleaved({"old": step(old_info_nce), "new": step(info_nce)}, repeats, device)


def random_symmetric_csr(n_users, n_items, n_edges, gen, device) -> torch.Tensor:
    """``D^-1/2 (B + I) D^-1/2`` of a random bipartite graph: the shape of the adjacency."""
    users = torch.randint(0, n_users, (n_edges,), generator=gen)
    items = torch.randint(0, n_items, (n_edges,), generator=gen) + n_users
    n = n_users + n_items
    loops = torch.arange(n)
    rows = torch.cat([users, items, loops])
    cols = torch.cat([items, users, loops])
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(len(rows)), (n, n))
    coo = coo.coalesce()
    coo = torch.sparse_coo_tensor(
        coo.indices(), torch.ones_like(coo.values()), (n, n), is_coalesced=True
    )
    degree = torch.sparse.sum(coo, dim=1).to_dense()
    d = degree.pow(-0.5)
    i = coo.indices()
    values = d[i[0]] * d[i[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_coo_tensor(i, values, (n, n)).coalesce().to_sparse_csr().to(device)


def bench_spmm(repeats, device, gen) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = random_symmetric_csr(N_USERS, N_ITEMS, 59_541, gen, device)
        a_t = transpose_csr(a)
        print(f"sparse matrix: {a.shape[0]} nodes, {a.values().numel()} stored entries")
        dense = torch.randn(a.shape[0], DIM, generator=gen).to(device).requires_grad_(True)
        upstream = torch.randn(a.shape[0], DIM, generator=gen).to(device)

        def backward_of(product):
            def run():
                dense.grad = None
                out = product()
                start = time.perf_counter()
                out.backward(upstream)
                sync(device)
                run.backward_ms.append((time.perf_counter() - start) * 1e3)

            run.backward_ms = []
            return run

        products = {
            "torch": lambda: a @ dense,
            "spmm_sym": lambda: spmm(a, dense, symmetric=True),
            "spmm_t": lambda: spmm(a, dense, a_t),
        }
        # Same gradients.
        grads = {}
        for name, product in products.items():
            dense.grad = None
            product().backward(upstream)
            grads[name] = dense.grad.clone()
        for name in ("spmm_sym", "spmm_t"):
            torch.testing.assert_close(grads[name], grads["torch"], rtol=1e-5, atol=1e-6)

        runs = {name: backward_of(p) for name, p in products.items()}
        total = interleaved(runs, repeats, device)
        backward = {name: run.backward_ms[2:] for name, run in runs.items()}
        with torch.no_grad():
            forward = interleaved(
                {"torch": lambda: a @ dense, "spmm": lambda: spmm(a, dense, symmetric=True)},
                repeats,
                device,
            )
        transposes = interleaved({"transpose_csr": lambda: transpose_csr(a)}, repeats, device)
    report("A @ E backward only", backward, "torch")
    report("A @ E forward + backward", total, "torch")
    report("A @ E forward (no grad)", forward, "torch")
    report("transpose_csr (once per graph)", transposes, "transpose_csr")


def tiktok_batch(gen: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not (TIKTOK / "trnMat.pkl").exists():
        return None
    from diffmm.datasets import load_tiktok

    train = load_tiktok(TIKTOK).train.tocoo()
    batch = gen.permutation(train.nnz)[:BATCH]
    return torch.as_tensor(train.row[batch]), torch.as_tensor(train.col[batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--skip-spmm", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"tau = {args.temperature}, {args.repeats} interleaved repeats; median (min) ms"
    )
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("users, uniform nodes", N_USERS, torch.randint(0, N_USERS, (BATCH,), generator=gen)),
        ("items, uniform nodes", N_ITEMS, torch.randint(0, N_ITEMS, (BATCH,), generator=gen)),
    ]
    real = tiktok_batch(np.random.default_rng(0))
    if real is not None:
        cases += [
            ("users, TikTok batch", N_USERS, real[0]),
            ("items, TikTok batch", N_ITEMS, real[1]),
        ]
    for title, n_rows, nodes in cases:
        times = bench_info_nce(n_rows, nodes, args.temperature, args.repeats, args.device, gen)
        report(f"info_nce {title} ({nodes.unique().numel()} unique)", times, "old")
    batches = [("uniform", cases[0][2], cases[1][2])]
    if real is not None:
        batches.append(("TikTok batch", *real))
    for title, users, items in batches:
        times = bench_contrastive(users, items, args.temperature, args.repeats, args.device, gen)
        report(f"4 info_nce + backward, {title}", times, "old")
    if not args.skip_spmm:
        bench_spmm(args.repeats, args.device, gen)


if __name__ == "__main__":
    main()
