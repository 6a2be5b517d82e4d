"""Tests for :mod:`diffmm._sparse` against dense float64 products."""

from __future__ import annotations

import warnings

import pytest
import torch

from diffmm._sparse import add_csr_, spmm, transpose_csr


def to_csr(dense: torch.Tensor, index_dtype: torch.dtype = torch.int64) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = dense.to_sparse_csr()
        return torch.sparse_csr_tensor(
            m.crow_indices().to(index_dtype),
            m.col_indices().to(index_dtype),
            m.values(),
            m.shape,
        )


def random_dense(n_rows, n_cols, density, seed, *, symmetric=False, empty_rows=()):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(n_rows, n_cols, dtype=torch.float64, generator=gen)
    mask = torch.rand(n_rows, n_cols, generator=gen) < density
    dense = values * mask
    if symmetric:
        dense = torch.triu(dense) + torch.triu(dense, 1).T
    for r in empty_rows:
        dense[r] = 0.0
        if symmetric:
            dense[:, r] = 0.0
    return dense


CASES = {
    "square": dict(n_rows=9, n_cols=9, density=0.3, seed=0),
    "rectangular": dict(n_rows=7, n_cols=12, density=0.25, seed=1, empty_rows=(0, 3, 6)),
    "tall": dict(n_rows=13, n_cols=4, density=0.4, seed=2, empty_rows=(5, 12)),
    "zero_nnz": dict(n_rows=6, n_cols=5, density=0.0, seed=3),
}


# ---------------------------------------------------------------------------
# transpose_csr
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_transpose_csr_matches_dense_transpose(case, index_dtype):
    dense = random_dense(**CASES[case])
    t = transpose_csr(to_csr(dense, index_dtype))
    assert t.layout == torch.sparse_csr
    assert t.shape == dense.T.shape
    assert t.crow_indices().dtype == index_dtype and t.col_indices().dtype == index_dtype
    assert t.values().dtype == dense.dtype
    torch.testing.assert_close(t.to_dense(), dense.T, rtol=0, atol=0)
    # Columns sorted within each row of the transpose.
    crow, col = t.crow_indices().tolist(), t.col_indices().tolist()
    for r in range(t.shape[0]):
        assert col[crow[r] : crow[r + 1]] == sorted(col[crow[r] : crow[r + 1]])


def test_transpose_csr_unsorted_columns_and_duplicates():
    # Valid for multiplication though not canonical: columns out of order, one entry twice.
    crow = torch.tensor([0, 3, 3, 5])
    col = torch.tensor([2, 0, 2, 1, 0])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.sparse_csr_tensor(crow, col, values, (3, 3), check_invariants=False)
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0, 2], expected[0, 0], expected[2, 1], expected[2, 0] = 4.0, 2.0, 4.0, 5.0
    dense_rhs = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(transpose_csr(m) @ dense_rhs, expected.T)


def test_transpose_csr_twice_is_identity():
    dense = random_dense(**CASES["rectangular"])
    m = to_csr(dense)
    tt = transpose_csr(transpose_csr(m))
    assert torch.equal(tt.crow_indices(), m.crow_indices())
    assert torch.equal(tt.col_indices(), m.col_indices())
    assert torch.equal(tt.values(), m.values())


def test_transpose_csr_rejects_other_layouts():
    with pytest.raises(TypeError, match="sparse CSR"):
        transpose_csr(torch.eye(3))
    with pytest.raises(TypeError, match="sparse CSR"):
        transpose_csr(torch.eye(3).to_sparse())


# ---------------------------------------------------------------------------
# spmm
# ---------------------------------------------------------------------------


def how(dense_matrix, mode):
    """``(matrix, kwargs)`` for the three ways of giving the backward its transpose."""
    m = to_csr(dense_matrix)
    if mode == "symmetric":
        return m, {"symmetric": True}
    if mode == "matrix_t":
        return m, {"matrix_t": transpose_csr(m)}
    return m, {}  # transpose built in the backward


MODES = ["symmetric", "matrix_t", "lazy"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_spmm_value_and_gradient_match_dense(case, mode):
    params = CASES[case]
    symmetric = mode == "symmetric"
    if symmetric:
        params = {**params, "n_cols": params["n_rows"], "symmetric": True}
    a = random_dense(**params)
    matrix, kwargs = how(a, mode)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(a.shape[1], 3, dtype=torch.float64, generator=gen, requires_grad=True)
    upstream = torch.randn(a.shape[0], 3, dtype=torch.float64, generator=gen)
    out = spmm(matrix, x, **kwargs)
    torch.testing.assert_close(out, a @ x.detach())
    out.backward(upstream)
    torch.testing.assert_close(x.grad, a.T @ upstream)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["square", "rectangular", "zero_nnz"])
def test_spmm_gradcheck(case, mode):
    params = CASES[case]
    if mode == "symmetric":
        params = {**params, "n_cols": params["n_rows"], "symmetric": True}
    a = random_dense(**params)
    matrix, kwargs = how(a, mode)
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(a.shape[1], 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d: spmm(matrix, d, **kwargs), (x,))
    assert torch.autograd.gradgradcheck(lambda d: spmm(matrix, d, **kwargs) ** 2, (x,))


def test_spmm_chain_through_a_graph_encoder():
    # A·(G·x) + A·x, as in the network: a symmetric A and a non-symmetric G with its transpose.
    a = random_dense(10, 10, 0.3, 11, symmetric=True, empty_rows=(4,))
    g = random_dense(10, 10, 0.2, 12, empty_rows=(0, 7))
    A, G = to_csr(a), to_csr(g)
    G_t = transpose_csr(G)
    x = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)

    def encoder(v):
        return spmm(A, spmm(G, v, G_t), symmetric=True) + spmm(A, v, symmetric=True)

    assert torch.autograd.gradcheck(encoder, (x,))
    encoder(x).pow(2).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    (a @ (g @ xr) + a @ xr).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


def test_spmm_matches_torch_in_float32_with_expanded_upstream_gradient():
    # out.sum() sends a stride-0 (expanded) gradient into the backward.
    a = random_dense(30, 30, 0.1, 13, symmetric=True).float()
    m = to_csr(a)
    x = torch.randn(30, 8, requires_grad=True)
    spmm(m, x, symmetric=True).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (m @ xr).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "expanded"])
def test_spmm_forward_is_bit_identical_to_torch(case, index_dtype, dtype, layout):
    # The CPU path writes into uninitialised memory (addmm with beta=0): empty rows and an
    # empty matrix must still come out as zeros, and every entry as torch's own product.
    m = to_csr(random_dense(**CASES[case]).to(dtype), index_dtype)
    n_cols = m.shape[1]
    x = {
        "contiguous": torch.randn(n_cols, 5, dtype=dtype),
        "transposed": torch.randn(5, n_cols, dtype=dtype).T,
        "expanded": torch.randn(1, 5, dtype=dtype).expand(n_cols, 5),
    }[layout]
    torch.full((4096,), float("nan"))  # leave NaNs in freed memory for the output to reuse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = m @ x
    assert torch.equal(spmm(m, x), expected)


@pytest.mark.parametrize("mode", ["symmetric", "matrix_t"])
def test_spmm_backward_converts_nothing(mode):
    a = random_dense(40, 40, 0.1, 14, symmetric=True).float()
    matrix, kwargs = how(a, mode)
    x = torch.randn(40, 8, requires_grad=True)
    out = spmm(matrix, x, **kwargs)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out.sum().backward()
    names = {e.key for e in prof.key_averages()}
    for conversion in (
        "aten::_to_sparse_csr",
        "aten::to_sparse_csr",
        "aten::sort",
        "aten::_convert_indices_from_csr_to_coo",
    ):
        assert conversion not in names


def test_spmm_without_grad_is_a_plain_product():
    a = random_dense(**CASES["rectangular"])
    x = torch.randn(12, 2, dtype=torch.float64)
    out = spmm(to_csr(a), x)
    assert not out.requires_grad
    torch.testing.assert_close(out, a @ x)


def test_spmm_rejects_bad_arguments():
    a = random_dense(**CASES["square"])
    m = to_csr(a)
    x = torch.randn(9, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="not both"):
        spmm(m, x, transpose_csr(m), symmetric=True)
    with pytest.raises(ValueError, match="expected"):
        spmm(to_csr(random_dense(**CASES["rectangular"])), torch.randn(12, 2).double(), m)
    with pytest.raises(ValueError, match="square"):
        spmm(to_csr(random_dense(**CASES["rectangular"])), x, symmetric=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainable = m.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="constant"):
        spmm(trainable, x, symmetric=True)


# ---------------------------------------------------------------------------
# add_csr_
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("alpha", [1.0, -1.0, 0.3])
def test_add_csr_matches_the_dense_expression(case, index_dtype, alpha):
    a = random_dense(**CASES[case])
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(a.shape, dtype=torch.float64, generator=gen)
    scale = torch.rand(a.shape[0], 1, dtype=torch.float64, generator=gen)
    target = base.clone()
    assert add_csr_(target, to_csr(a, index_dtype), row_scale=scale, alpha=alpha) is target
    expected = base + scale * (alpha * a)
    torch.testing.assert_close(target, expected, rtol=0, atol=0)
    # Elsewhere the dense tensor is untouched (bit for bit, even where base + 0 would round).
    assert torch.equal(target[a == 0], base[a == 0])


def test_add_csr_in_float32_rounds_as_the_dense_expression_for_unit_alpha():
    a = random_dense(40, 60, 0.2, 8).float()
    base = torch.randn(40, 60, generator=torch.Generator().manual_seed(9))
    scale = torch.rand(40, 1, generator=torch.Generator().manual_seed(10))
    for alpha in (1.0, -1.0):
        got = add_csr_(base.clone(), to_csr(a), row_scale=scale, alpha=alpha)
        assert torch.equal(got, base + scale * (alpha * a))
    assert torch.equal(add_csr_(base.clone(), to_csr(a), alpha=-1.0), base - a)


def test_add_csr_rejects_bad_arguments():
    m = to_csr(random_dense(3, 4, 0.5, 11))
    with pytest.raises(TypeError, match="sparse CSR"):
        add_csr_(torch.zeros(3, 4, dtype=torch.float64), m.to_dense())
    with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
        add_csr_(torch.zeros(3, 5, dtype=torch.float64), m)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_spmm_and_transpose_on_cuda():
    a = random_dense(50, 70, 0.1, 15, empty_rows=(3, 49))
    m = to_csr(a).cuda()
    t = transpose_csr(m)
    assert t.device.type == "cuda"
    torch.testing.assert_close(t.to_dense().cpu(), a.T)
    x = torch.randn(70, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    upstream = torch.randn(50, 5, dtype=torch.float64, device="cuda")
    out = spmm(m, x, t)
    torch.testing.assert_close(out.cpu(), a @ x.detach().cpu())
    out.backward(upstream)
    torch.testing.assert_close(x.grad.cpu(), a.T @ upstream.cpu())
    base = torch.randn(50, 70, dtype=torch.float64, device="cuda")
    got = add_csr_(base.clone(), m, row_scale=torch.arange(50.0, device="cuda"), alpha=-1.0)
    torch.testing.assert_close(got.cpu(), (base.cpu() - torch.arange(50.0)[:, None] * a))
