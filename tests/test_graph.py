"""Tests for :mod:`diffmm._graph` against dense float64 NumPy references (SPEC "Data", §4)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmm._graph import adjacency_from_matrix, bipartite_adjacency, drop_edges, top_k_graph

# ---------------------------------------------------------------------------
# Independent dense reference, straight from SPEC "Data":
#   B = [[0, R], [Rᵀ, 0]] + Id,  A = D^-1/2 B D^-1/2,  D = row sums of B.
# ---------------------------------------------------------------------------


def reference_adjacency(r: np.ndarray) -> np.ndarray:
    r = (np.asarray(r, dtype=np.float64) != 0).astype(np.float64)  # binarised R
    n_users, n_items = r.shape
    n = n_users + n_items
    b = np.zeros((n, n))
    b[:n_users, n_users:] = r
    b[n_users:, :n_users] = r.T
    b += np.eye(n)
    d = b.sum(axis=1)
    d_inv_sqrt = 1.0 / np.sqrt(d)
    return d_inv_sqrt[:, None] * b * d_inv_sqrt[None, :]


def reference_adjacency_without_self_loops(r: np.ndarray) -> np.ndarray:
    """LightGCN's ``D^-1/2 B D^-1/2``, ``D`` the row sums of ``B``; isolated nodes get 0."""
    r = (np.asarray(r, dtype=np.float64) != 0).astype(np.float64)
    n_users, n_items = r.shape
    b = np.zeros((n_users + n_items,) * 2)
    b[:n_users, n_users:] = r
    b[n_users:, :n_users] = r.T
    d = b.sum(axis=1)
    d_inv_sqrt = np.divide(1.0, np.sqrt(d), out=np.zeros_like(d), where=d > 0)
    return d_inv_sqrt[:, None] * b * d_inv_sqrt[None, :]


def dense_r(users, items, n_users, n_items) -> np.ndarray:
    r = np.zeros((n_users, n_items))
    for u, i in zip(users, items, strict=True):
        r[u, i] = 1.0
    return r


def to_dense64(graph: torch.Tensor) -> np.ndarray:
    return graph.to_dense().to(torch.float64).numpy()


def assert_valid_csr(graph: torch.Tensor, n: int) -> None:
    assert graph.layout == torch.sparse_csr
    assert tuple(graph.shape) == (n, n)
    crow, col = graph.crow_indices(), graph.col_indices()
    assert crow.shape == (n + 1,)
    assert int(crow[0]) == 0
    assert int(crow[-1]) == col.numel() == graph.values().numel()
    assert bool((torch.diff(crow) >= 0).all())
    if col.numel():
        assert int(col.min()) >= 0 and int(col.max()) < n
    # Columns strictly increasing inside every row (canonical CSR, no duplicates).
    for row in range(n):
        seg = col[crow[row] : crow[row + 1]]
        assert bool((torch.diff(seg) > 0).all())
    # torch's own invariant checker accepts it.
    torch.sparse_csr_tensor(crow, col, graph.values(), graph.shape, check_invariants=True)


def as_edges(users, items):
    return torch.tensor(users, dtype=torch.int64), torch.tensor(items, dtype=torch.int64)


# ---------------------------------------------------------------------------
# bipartite_adjacency
# ---------------------------------------------------------------------------


def test_bipartite_adjacency_small_golden_by_hand():
    # 1 user, 1 item, one edge: B = [[1, 1], [1, 1]], D = (2, 2), A = B / 2.
    graph = bipartite_adjacency(*as_edges([0], [0]), 1, 1)
    np.testing.assert_allclose(to_dense64(graph), [[0.5, 0.5], [0.5, 0.5]], rtol=1e-6)
    # 1 user with 2 items: deg(u) = 3, deg(i) = 2, A[u, i] = 1/sqrt(6), A[u, u] = 1/3.
    graph = bipartite_adjacency(*as_edges([0, 0], [0, 1]), 1, 2)
    s = 1.0 / np.sqrt(6.0)
    expected = [[1 / 3, s, s], [s, 0.5, 0.0], [s, 0.0, 0.5]]
    np.testing.assert_allclose(to_dense64(graph), expected, rtol=1e-6)


def test_bipartite_adjacency_matches_dense_reference():
    rng = np.random.default_rng(0)
    n_users, n_items = 7, 9
    r = (rng.random((n_users, n_items)) < 0.3).astype(float)
    r[3] = 0.0  # a user with no edges
    r[:, 5] = 0.0  # an item with no edges
    users, items = np.nonzero(r)
    graph = bipartite_adjacency(*as_edges(users, items), n_users, n_items)
    assert graph.dtype == torch.float32
    assert_valid_csr(graph, n_users + n_items)
    expected = reference_adjacency(r)
    np.testing.assert_allclose(to_dense64(graph), expected, rtol=1e-6, atol=1e-7)
    # Isolated nodes get only a self-loop of weight 1 (degree 1).
    for node in (3, n_users + 5):
        row = to_dense64(graph)[node]
        assert row[node] == pytest.approx(1.0)
        assert np.count_nonzero(row) == 1
    # Stored entries are exactly the non-zeros of B + I (2·nnz(R) + U + I).
    assert graph.values().numel() == 2 * int(r.sum()) + n_users + n_items


def test_bipartite_adjacency_duplicate_edges_count_once():
    users = [0, 0, 0, 1, 2, 2]
    items = [1, 1, 1, 0, 3, 3]
    graph = bipartite_adjacency(*as_edges(users, items), 3, 4)
    r = dense_r(users, items, 3, 4)  # binarised
    np.testing.assert_allclose(to_dense64(graph), reference_adjacency(r), rtol=1e-6, atol=1e-7)
    assert graph.values().numel() == 2 * 3 + 3 + 4
    assert_valid_csr(graph, 7)


def test_bipartite_adjacency_unsorted_input_order_irrelevant():
    users = [2, 0, 1, 0, 2]
    items = [0, 3, 1, 0, 2]
    a = bipartite_adjacency(*as_edges(users, items), 3, 4)
    perm = [4, 2, 0, 3, 1]
    b = bipartite_adjacency(*as_edges([users[p] for p in perm], [items[p] for p in perm]), 3, 4)
    assert torch.equal(a.crow_indices(), b.crow_indices())
    assert torch.equal(a.col_indices(), b.col_indices())
    assert torch.equal(a.values(), b.values())


def test_bipartite_adjacency_no_edges_is_identity():
    empty = torch.zeros(0, dtype=torch.int64)
    graph = bipartite_adjacency(empty, empty, 3, 2)
    assert_valid_csr(graph, 5)
    np.testing.assert_array_equal(to_dense64(graph), np.eye(5))


def test_bipartite_adjacency_usable_in_matmul():
    rng = np.random.default_rng(1)
    r = (rng.random((5, 6)) < 0.4).astype(float)
    graph = bipartite_adjacency(*as_edges(*np.nonzero(r)), 5, 6)
    x = torch.randn(11, 3, generator=torch.Generator().manual_seed(0))
    expected = reference_adjacency(r) @ x.double().numpy()
    np.testing.assert_allclose((graph @ x).double().numpy(), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# bipartite_adjacency(self_loops=False): LightGCN's graph
# ---------------------------------------------------------------------------


def test_adjacency_without_self_loops_matches_dense_reference():
    rng = np.random.default_rng(5)
    n_users, n_items = 7, 9
    r = (rng.random((n_users, n_items)) < 0.3).astype(float)
    r[3] = 0.0  # a user with no edges
    r[:, 5] = 0.0  # an item with no edges
    users, items = np.nonzero(r)
    graph = bipartite_adjacency(*as_edges(users, items), n_users, n_items, self_loops=False)
    assert graph.dtype == torch.float32
    assert_valid_csr(graph, n_users + n_items)
    a = to_dense64(graph)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, reference_adjacency_without_self_loops(r), rtol=1e-6, atol=1e-7)
    assert not np.diag(a).any()
    # Isolated nodes have empty rows (degree 0 gives 0, not inf or nan).
    for node in (3, n_users + 5):
        assert not a[node].any() and not a[:, node].any()
    # Stored entries are exactly the non-zeros of B.
    assert graph.values().numel() == 2 * int(r.sum())


def test_adjacency_without_self_loops_golden_by_hand():
    # 1 user with 2 items: deg(u) = 2, deg(i) = 1, A[u, i] = 1/sqrt(2), nothing else.
    graph = bipartite_adjacency(*as_edges([0, 0, 0], [0, 1, 1]), 1, 2, self_loops=False)
    s = 1.0 / np.sqrt(2.0)
    np.testing.assert_allclose(
        to_dense64(graph), [[0.0, s, s], [s, 0.0, 0.0], [s, 0.0, 0.0]], rtol=1e-6
    )


def test_adjacency_without_self_loops_and_no_edges_is_empty():
    empty = torch.zeros(0, dtype=torch.int64)
    graph = bipartite_adjacency(empty, empty, 3, 2, self_loops=False)
    assert_valid_csr(graph, 5)
    assert graph.values().numel() == 0
    np.testing.assert_array_equal(to_dense64(graph), np.zeros((5, 5)))
    x = torch.ones(5, 2)
    np.testing.assert_array_equal((graph @ x).numpy(), np.zeros((5, 2)))


def test_self_loops_default_is_unchanged():
    rng = np.random.default_rng(6)
    users, items = np.nonzero(rng.random((5, 6)) < 0.4)
    a = bipartite_adjacency(*as_edges(users, items), 5, 6)
    b = bipartite_adjacency(*as_edges(users, items), 5, 6, self_loops=True)
    assert torch.equal(a.col_indices(), b.col_indices())
    assert torch.equal(a.values(), b.values())


@pytest.mark.parametrize("fmt", ["csr", "coo", "csc"])
def test_adjacency_from_matrix_without_self_loops(fmt):
    rng = np.random.default_rng(7)
    dense = (rng.random((6, 8)) < 0.35) * rng.integers(1, 4, size=(6, 8))  # weighted
    dense[0] = 0  # empty user
    dense[:, 2] = 0  # empty item
    graph = adjacency_from_matrix(sp.csr_matrix(dense).asformat(fmt), self_loops=False)
    assert_valid_csr(graph, 14)
    np.testing.assert_allclose(
        to_dense64(graph), reference_adjacency_without_self_loops(dense), rtol=1e-6, atol=1e-7
    )


# ---------------------------------------------------------------------------
# adjacency_from_matrix
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr", "coo", "csc"])
def test_adjacency_from_matrix_matches_reference(fmt):
    rng = np.random.default_rng(2)
    dense = (rng.random((6, 8)) < 0.35) * rng.integers(1, 4, size=(6, 8))  # weighted
    dense[0] = 0  # empty user
    matrix = sp.csr_matrix(dense).asformat(fmt)
    graph = adjacency_from_matrix(matrix)
    assert_valid_csr(graph, 14)
    np.testing.assert_allclose(to_dense64(graph), reference_adjacency(dense), rtol=1e-6, atol=1e-7)


def test_adjacency_from_matrix_duplicates_and_explicit_zeros():
    # COO with a duplicated entry (summed to 2 -> binarised to 1) and an explicit zero.
    rows = np.array([0, 0, 1, 2, 2])
    cols = np.array([1, 1, 0, 2, 3])
    data = np.array([1.0, 1.0, 1.0, 0.0, 5.0])
    matrix = sp.coo_matrix((data, (rows, cols)), shape=(3, 4))
    graph = adjacency_from_matrix(matrix)
    expected = reference_adjacency(matrix.toarray())
    np.testing.assert_allclose(to_dense64(graph), expected, rtol=1e-6, atol=1e-7)
    assert graph.values().numel() == 2 * 3 + 7


def test_adjacency_from_matrix_duplicates_cancelling_to_zero_are_no_edge():
    # As a matrix, R[0, 1] = 1 + (-1) = 0, so there is no edge (0, 1).
    matrix = sp.coo_matrix((np.array([1.0, -1.0, 1.0]), ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    graph = adjacency_from_matrix(matrix)
    np.testing.assert_allclose(
        to_dense64(graph), reference_adjacency(matrix.toarray()), rtol=1e-6, atol=1e-7
    )


# ---------------------------------------------------------------------------
# top_k_graph
# ---------------------------------------------------------------------------


def test_top_k_graph_edges_match_reference():
    n_users, n_items = 4, 6
    user_indices = torch.tensor([0, 2, 3])
    top_items = torch.tensor([[5, 1], [0, 1], [1, 1]])  # user 3 repeats item 1
    graph = top_k_graph(user_indices, top_items, n_users, n_items)
    assert_valid_csr(graph, n_users + n_items)
    r = np.zeros((n_users, n_items))
    r[0, [5, 1]] = 1
    r[2, [0, 1]] = 1
    r[3, 1] = 1
    # user 1 is not in user_indices: only a self-loop.
    np.testing.assert_allclose(to_dense64(graph), reference_adjacency(r), rtol=1e-6, atol=1e-7)


def test_top_k_graph_k1_batch_of_all_users():
    rng = np.random.default_rng(3)
    n_users, n_items = 6, 5
    top = rng.integers(0, n_items, size=(n_users, 1))
    graph = top_k_graph(torch.arange(n_users), torch.as_tensor(top), n_users, n_items)
    r = np.zeros((n_users, n_items))
    r[np.arange(n_users), top[:, 0]] = 1
    np.testing.assert_allclose(to_dense64(graph), reference_adjacency(r), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# drop_edges
# ---------------------------------------------------------------------------


def random_graph(n_users=60, n_items=80, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(r)
    return bipartite_adjacency(*as_edges(users, items), n_users, n_items)


def entries(graph: torch.Tensor) -> dict[tuple[int, int], float]:
    coo = graph.to_sparse_coo().coalesce()
    idx = coo.indices().numpy()
    vals = coo.values().double().numpy()
    return {(int(r), int(c)): float(v) for r, c, v in zip(idx[0], idx[1], vals, strict=True)}


def test_drop_edges_keep_rate_one_is_identity():
    graph = random_graph(10, 12, 0.3)
    out = drop_edges(graph, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out.crow_indices(), graph.crow_indices())
    assert torch.equal(out.col_indices(), graph.col_indices())
    assert torch.equal(out.values(), graph.values())


@pytest.mark.parametrize("keep_rate", [0.5, 0.8])
def test_drop_edges_kept_entries_are_scaled_subset(keep_rate):
    graph = random_graph(20, 25, 0.3)
    out = drop_edges(graph, keep_rate, torch.Generator().manual_seed(1))
    n = graph.shape[0]
    assert_valid_csr(out, n)
    assert out.dtype == graph.dtype
    before, after = entries(graph), entries(out)
    assert 0 < len(after) < len(before)
    for key, value in after.items():
        assert key in before
        assert value == pytest.approx(before[key] / keep_rate, rel=1e-6)


@pytest.mark.parametrize("keep_rate", [0.3, 0.5, 0.9])
def test_drop_edges_empirical_keep_fraction(keep_rate):
    graph = random_graph(100, 120, 0.3, seed=4)
    n_entries = graph.values().numel()
    assert n_entries > 5000
    out = drop_edges(graph, keep_rate, torch.Generator().manual_seed(7))
    frac = out.values().numel() / n_entries
    sigma = np.sqrt(keep_rate * (1 - keep_rate) / n_entries)
    assert abs(frac - keep_rate) < 5 * sigma


def test_drop_edges_generator_reproducible():
    graph = random_graph(30, 40, 0.2)
    a = drop_edges(graph, 0.5, torch.Generator().manual_seed(123))
    b = drop_edges(graph, 0.5, torch.Generator().manual_seed(123))
    c = drop_edges(graph, 0.5, torch.Generator().manual_seed(124))
    assert torch.equal(a.crow_indices(), b.crow_indices())
    assert torch.equal(a.col_indices(), b.col_indices())
    assert torch.equal(a.values(), b.values())
    assert not torch.equal(a.col_indices(), c.col_indices()) or not torch.equal(
        a.crow_indices(), c.crow_indices()
    )


def test_drop_edges_result_usable_in_matmul():
    graph = random_graph(15, 10, 0.3)
    out = drop_edges(graph, 0.6, torch.Generator().manual_seed(5))
    x = torch.randn(25, 4, generator=torch.Generator().manual_seed(0))
    expected = to_dense64(out) @ x.double().numpy()
    np.testing.assert_allclose((out @ x).double().numpy(), expected, rtol=1e-5, atol=1e-6)
    # Also usable in backward w.r.t. the dense operand.
    x.requires_grad_(True)
    (out @ x).sum().backward()
    np.testing.assert_allclose(
        x.grad.double().numpy(),
        np.repeat(to_dense64(out).sum(axis=0)[:, None], 4, axis=1),
        rtol=1e-5,
        atol=1e-6,
    )


def test_drop_edges_keeps_each_entry_independently_including_self_loops():
    # Over many draws every stored entry (off-diagonal in both directions, self-loops)
    # survives with probability ≈ keep_rate; the two directions of an edge are independent.
    graph = random_graph(6, 6, 0.5, seed=9)
    stored = to_dense64(graph) != 0
    n_draws = 400
    gen = torch.Generator().manual_seed(11)
    kept = np.stack(
        [to_dense64(drop_edges(graph, 0.5, gen)) != 0 for _ in range(n_draws)]
    )  # (draws, n, n)
    assert not kept[:, ~stored].any()
    fractions = kept.mean(axis=0)[stored]
    assert np.all(np.abs(fractions - 0.5) < 0.1)
    diag = np.diag(kept.mean(axis=0))
    assert abs(diag.mean() - 0.5) < 0.03
    u, i = np.argwhere(stored[:6, 6:])[0]
    both = (kept[:, u, 6 + i] & kept[:, 6 + i, u]).mean()
    assert abs(both - 0.25) < 0.08


# ---------------------------------------------------------------------------
# Property test: spectral invariants of D^-1/2 (B + I) D^-1/2
# ---------------------------------------------------------------------------


@st.composite
def small_bipartite(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 6))
    n_edges = draw(st.integers(0, 20))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n_edges, max_size=n_edges))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n_edges, max_size=n_edges))
    return n_users, n_items, users, items


@settings(max_examples=60, deadline=None)
@given(small_bipartite())
def test_property_normalised_adjacency_invariants(case):
    n_users, n_items, users, items = case
    graph = bipartite_adjacency(*as_edges(users, items), n_users, n_items)
    a = to_dense64(graph)
    r = dense_r(users, items, n_users, n_items)
    np.testing.assert_allclose(a, reference_adjacency(r), rtol=1e-6, atol=1e-7)
    # Symmetric, non-negative.
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    assert (a >= 0).all()
    # Diagonal is 1/deg (self-loop of a node of degree deg in B + I).
    deg = np.concatenate([r.sum(axis=1), r.sum(axis=0)]) + 1.0
    np.testing.assert_allclose(np.diag(a), 1.0 / deg, rtol=1e-6)
    # sqrt(deg) is a fixed point, so 1 is an eigenvalue; the spectrum lies in [-1, 1].
    np.testing.assert_allclose(a @ np.sqrt(deg), np.sqrt(deg), rtol=1e-5)
    eig = np.linalg.eigvalsh((a + a.T) / 2)
    assert eig.max() == pytest.approx(1.0, abs=1e-5)
    assert eig.min() >= -1.0 - 1e-5


@settings(max_examples=40, deadline=None)
@given(small_bipartite())
def test_property_adjacency_without_self_loops_invariants(case):
    n_users, n_items, users, items = case
    graph = bipartite_adjacency(*as_edges(users, items), n_users, n_items, self_loops=False)
    a = to_dense64(graph)
    r = dense_r(users, items, n_users, n_items)
    np.testing.assert_allclose(a, reference_adjacency_without_self_loops(r), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    assert (a >= 0).all() and not np.diag(a).any()
    # sqrt(deg) is a fixed point (isolated nodes map to 0 on both sides); spectrum in [-1, 1],
    # symmetric about 0 because the graph is bipartite.
    deg = np.concatenate([r.sum(axis=1), r.sum(axis=0)])
    np.testing.assert_allclose(a @ np.sqrt(deg), np.sqrt(deg), rtol=1e-5, atol=1e-6)
    eig = np.linalg.eigvalsh((a + a.T) / 2)
    assert eig.max() <= 1.0 + 1e-5 and eig.min() >= -1.0 - 1e-5
    np.testing.assert_allclose(np.sort(eig), np.sort(-eig), atol=1e-5)
