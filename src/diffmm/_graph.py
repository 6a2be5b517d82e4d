"""Pure graph functions: the normalised bipartite adjacency, generated graphs, edge dropout.

Graphs are torch sparse CSR tensors of shape (U+I, U+I), users first. Everything here works on
whatever device its inputs live on and never builds a dense users × items array.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch

from ._sparse import sparse_csr
from ._validation import binarize

__all__ = [
    "adjacency_from_matrix",
    "bipartite_adjacency",
    "drop_edges",
    "item_knn_graph",
    "top_k_graph",
]


def bipartite_adjacency(
    users: torch.Tensor,
    items: torch.Tensor,
    n_users: int,
    n_items: int,
    *,
    self_loops: bool = True,
) -> torch.Tensor:
    """``D^-1/2 (B + I) D^-1/2`` for ``B = [[0, R], [Rᵀ, 0]]`` with R given by its edges.

    Model page, "Data and graphs" (and §4 for generated graphs): duplicate edges count once,
    every node gets a self-loop, ``D`` are the row sums of ``B + I``. With
    ``self_loops=False`` it is LightGCN's ``D^-1/2 B D^-1/2`` with ``D`` the row sums of
    ``B``; a node without edges has an empty row.

    Parameters
    ----------
    users, items : LongTensor of shape (n_edges,)
        Edge endpoints as user and item indices.
    n_users, n_items : int
        Sizes of the two node sets.
    self_loops : bool, default=True
        Add the identity to ``B`` before normalising.

    Returns
    -------
    Tensor
        Sparse CSR tensor of shape (n_users + n_items, n_users + n_items), float32, on the
        device of ``users``.
    """
    device = users.device
    n = n_users + n_items
    users = users.to(torch.int64)
    items = items.to(torch.int64)
    # Deduplicate user–item edges (binarised R).
    keys = torch.unique(users * n_items + items)
    u, i = keys // n_items, keys % n_items
    rows, cols = [u, i + n_users], [i + n_users, u]
    if self_loops:
        nodes = torch.arange(n, device=device)
        rows.append(nodes)
        cols.append(nodes)
    rows, cols = torch.cat(rows), torch.cat(cols)
    degree = torch.bincount(rows, minlength=n).to(torch.float32)
    # Without self-loops an isolated node has degree 0: give it 0, not inf.
    d_inv_sqrt = torch.where(degree > 0, degree.clamp(min=1.0).pow(-0.5), 0.0)
    values = d_inv_sqrt[rows] * d_inv_sqrt[cols]
    order = torch.argsort(rows * n + cols)
    rows, cols, values = rows[order], cols[order], values[order]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return sparse_csr(crow, cols, values, n)


def adjacency_from_matrix(
    matrix: sp.spmatrix, device: torch.device | str = "cpu", *, self_loops: bool = True
) -> torch.Tensor:
    """The normalised bipartite adjacency ``A`` of a users × items interaction matrix.

    ``self_loops`` as in :func:`bipartite_adjacency` (``False`` for LightGCN).
    """
    coo = binarize(matrix).tocoo()  # R as a matrix: duplicates summing to zero are no edge
    users = torch.as_tensor(coo.row, dtype=torch.int64, device=device)
    items = torch.as_tensor(coo.col, dtype=torch.int64, device=device)
    return bipartite_adjacency(
        users, items, matrix.shape[0], matrix.shape[1], self_loops=self_loops
    )


def top_k_graph(
    user_indices: torch.Tensor, top_items: torch.Tensor, n_users: int, n_items: int
) -> torch.Tensor:
    """The generated graph ``G_m`` from each user's top-k items (model page §4), before dropout.

    Parameters
    ----------
    user_indices : LongTensor of shape (n_rows,)
        The user of each row of ``top_items``.
    top_items : LongTensor of shape (n_rows, k)
        Item indices to connect to that user.
    """
    k = top_items.shape[1]
    users = user_indices.to(torch.int64).repeat_interleave(k)
    return bipartite_adjacency(users, top_items.reshape(-1), n_users, n_items)


def drop_edges(
    graph: torch.Tensor, keep_rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep each stored entry with probability ``keep_rate``, scaling kept values by its inverse.

    model page §4: applied to every stored entry of ``G_m`` (self-loops included), once per epoch.
    ``keep_rate == 1`` returns the graph unchanged.
    """
    if keep_rate >= 1.0:
        return graph
    crow, col, values = graph.crow_indices(), graph.col_indices(), graph.values()
    n = graph.shape[0]
    # Draw where the generator lives (a CUDA generator cannot fill a CPU tensor).
    where = generator.device if generator is not None else values.device
    draw = torch.rand(values.shape, generator=generator, device=where).to(values.device)
    mask = draw < keep_rate
    rows = torch.repeat_interleave(torch.arange(n, device=values.device), torch.diff(crow))
    counts = torch.bincount(rows[mask], minlength=n)
    new_crow = torch.zeros(n + 1, dtype=torch.int64, device=values.device)
    new_crow[1:] = torch.cumsum(counts, 0)
    return sparse_csr(new_crow, col[mask], values[mask] / keep_rate, n)


@torch.no_grad()
def item_knn_graph(
    queries: list[torch.Tensor],
    keys: list[torch.Tensor] | None = None,
    k: int = 10,
    *,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """The items' nearest neighbours by feature similarity, averaged over modalities.

    Per modality, each query item links to the ``k`` key items whose features are most
    cosine-similar to its own (itself included when ``keys`` is ``None``: the queries are the
    keys), each with weight ``1/k``; the modalities' graphs are averaged, so every row sums
    to 1 (FREEDOM's frozen item–item graph). Never builds more than ``chunk_size`` rows of
    similarities at a time.

    Parameters
    ----------
    queries : list of Tensor of shape (n_queries, d_m)
        One per modality.
    keys : list of Tensor of shape (n_keys, d_m), optional
        The candidate neighbours (default: the queries).
    k : int
        Neighbours per item and modality (at most ``n_keys``).

    Returns
    -------
    Tensor
        Sparse CSR of shape (n_queries, n_keys), float32.
    """
    keys = queries if keys is None else keys
    n_queries, n_keys = int(queries[0].shape[0]), int(keys[0].shape[0])
    k = min(k, n_keys)
    device = queries[0].device
    rows = torch.arange(n_queries, device=device).repeat_interleave(k)
    parts = []
    for q, key in zip(queries, keys, strict=True):
        q = torch.nn.functional.normalize(q.to(torch.float32), dim=-1)
        key = torch.nn.functional.normalize(key.to(torch.float32), dim=-1)
        cols = torch.cat(
            [
                torch.topk(q[start : start + chunk_size] @ key.T, k, dim=-1).indices
                for start in range(0, n_queries, chunk_size)
            ]
        )
        parts.append(rows * n_keys + cols.reshape(-1))
    weight = 1.0 / (k * len(queries))
    edges, counts = torch.unique(torch.cat(parts), return_counts=True)  # sorted by (row, col)
    crow = torch.zeros(n_queries + 1, dtype=torch.int64, device=device)
    crow[1:] = torch.cumsum(torch.bincount(edges // n_keys, minlength=n_queries), 0)
    return sparse_csr(crow, edges % n_keys, counts.to(torch.float32) * weight, (n_queries, n_keys))
