"""Sparse CSR × dense products whose backward reuses a transpose built once.

torch's autograd for ``csr @ dense`` transposes the CSR matrix (a conversion with a sort) on
every backward. The graphs of DiffMM are constant within an epoch, so the transpose is built
once (:func:`transpose_csr`), or not at all for a symmetric matrix such as the normalised
adjacency ``A``, and handed to :func:`spmm`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["add_csr_", "csr_rows", "sparse_csr", "spmm", "transpose_csr"]


def sparse_csr(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: int | tuple[int, int]
) -> torch.Tensor:
    """A CSR tensor from its parts (square when ``size`` is an int), without torch's warnings.

    The parts come from the package's own construction, so torch's invariant checks are
    skipped.
    """
    shape = (size, size) if isinstance(size, int) else tuple(size)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def csr_rows(matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A SciPy CSR matrix (e.g. a slice of interaction rows) as a float32 torch CSR tensor.

    On the CPU the values may share memory with ``matrix.data`` (when it is float32 already):
    pass a slice, which SciPy copies, or a matrix that is not modified afterwards.
    """
    parts = (matrix.indptr, matrix.indices, matrix.data.astype(np.float32, copy=False))
    crow, col, values = (torch.from_numpy(np.asarray(a)).to(device) for a in parts)
    return sparse_csr(crow.long(), col.long(), values, matrix.shape)


def transpose_csr(matrix: torch.Tensor) -> torch.Tensor:
    """The transpose of a sparse CSR matrix, as a sparse CSR matrix on the same device.

    Built with tensor operations (a stable sort of the column indices), without a host
    synchronisation on CUDA. Within each row of the result the column indices are sorted;
    duplicate entries stay duplicates.

    Parameters
    ----------
    matrix : sparse CSR Tensor of shape (n_rows, n_cols)
        Two-dimensional, without dense dimensions.

    Returns
    -------
    Tensor
        Sparse CSR tensor of shape (n_cols, n_rows) with the same values, dtype, index dtype
        and device.

    Examples
    --------
    >>> import torch
    >>> m = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]]).to_sparse_csr()
    >>> transpose_csr(m).to_dense()
    tensor([[0., 2.],
            [1., 0.],
            [0., 3.]])
    """
    if matrix.layout != torch.sparse_csr:
        raise TypeError(f"transpose_csr needs a sparse CSR tensor, got layout {matrix.layout}.")
    if matrix.ndim != 2 or matrix.dense_dim() != 0:
        raise ValueError("transpose_csr needs a two-dimensional CSR matrix without dense dims.")
    n_rows, n_cols = matrix.shape
    crow, col, values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    index_dtype, device = crow.dtype, crow.device
    rows = _row_indices(matrix)
    # CSR stores entries row by row, so a stable sort by column orders them by (column, row).
    sorted_col, order = torch.sort(col.to(torch.int64), stable=True)
    bounds = torch.arange(n_cols + 1, device=device)
    crow_t = torch.searchsorted(sorted_col, bounds)
    return sparse_csr(
        crow_t.to(index_dtype), rows[order].to(index_dtype), values[order], (n_cols, n_rows)
    )


def add_csr_(
    dense: torch.Tensor,
    matrix: torch.Tensor,
    *,
    row_scale: torch.Tensor | None = None,
    alpha: float = 1.0,
) -> torch.Tensor:
    """``dense += alpha · diag(row_scale) · matrix`` in place, at the matrix's entries only.

    Adds a sparse matrix to a dense tensor of its shape in a pass over its stored entries,
    where ``dense += matrix.to_dense()`` would build a dense copy and pass over every element.
    Each entry adds ``row_scale[i] · (alpha · value)``; elsewhere ``dense`` is left untouched.
    With ``alpha`` = ±1 this rounds as the dense expression
    ``dense + alpha · row_scale[:, None] · matrix.to_dense()`` does. Not differentiable.

    Parameters
    ----------
    dense : Tensor of shape (n_rows, n_cols)
        Updated in place.
    matrix : sparse CSR Tensor of shape (n_rows, n_cols)
        Two-dimensional, without dense dimensions, on ``dense``'s device; entries are assumed
        unique (duplicates are summed).
    row_scale : Tensor of shape (n_rows,) or (n_rows, 1), optional
        A factor per row; none by default.
    alpha : float, default=1.0

    Returns
    -------
    Tensor
        ``dense`` itself.

    Examples
    --------
    >>> import torch
    >>> m = torch.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse_csr()
    >>> add_csr_(torch.ones(2, 2), m, row_scale=torch.tensor([10.0, 1.0]), alpha=-1.0)
    tensor([[ 1., -9.],
            [-1.,  1.]])
    """
    if matrix.layout != torch.sparse_csr:
        raise TypeError(f"add_csr_ needs a sparse CSR matrix, got layout {matrix.layout}.")
    if matrix.ndim != 2 or matrix.dense_dim() != 0 or dense.shape != matrix.shape:
        raise ValueError(
            f"add_csr_ needs a two-dimensional CSR matrix of the dense tensor's shape "
            f"{tuple(dense.shape)}, got {tuple(matrix.shape)}."
        )
    rows, col = _row_indices(matrix), matrix.col_indices()
    terms = matrix.values().to(dense.dtype)
    if alpha != 1.0:
        terms = terms * alpha
    if row_scale is not None:
        terms = row_scale.reshape(-1).to(dense.dtype)[rows] * terms
    return dense.index_put_((rows, col.to(torch.int64)), terms, accumulate=True)


def spmm(
    matrix: torch.Tensor,
    dense: torch.Tensor,
    matrix_t: torch.Tensor | None = None,
    *,
    symmetric: bool = False,
) -> torch.Tensor:
    """``matrix @ dense`` for a constant sparse matrix, differentiable in ``dense``.

    The gradient with respect to ``dense`` is ``matrix_t @ grad``, with ``matrix_t`` given
    once by the caller (or ``matrix`` itself when ``symmetric``), so no transpose or layout
    conversion happens in the backward pass. The backward is itself built from ``spmm``, so
    higher-order gradients with respect to ``dense`` work too.

    Parameters
    ----------
    matrix : sparse Tensor of shape (n_rows, n_cols)
        Usually CSR. Its values are constants: a ``matrix`` whose values require grad raises
        ``ValueError`` (use ``matrix @ dense`` for that).
    dense : Tensor of shape (n_cols, k)
        Same dtype and device as ``matrix``.
    matrix_t : sparse Tensor of shape (n_cols, n_rows), optional
        The transpose of ``matrix``, e.g. from :func:`transpose_csr`. Trusted, not checked
        entry by entry. When it is missing and ``symmetric`` is false, the backward builds it
        with :func:`transpose_csr` on each call (correct, but the per-call cost this function
        exists to avoid).
    symmetric : bool, default=False
        ``matrix`` equals its transpose (e.g. the normalised adjacency): the backward
        multiplies by ``matrix`` itself. Excludes ``matrix_t``.

    Returns
    -------
    Tensor of shape (n_rows, k)

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([[1.0, 2.0], [2.0, 0.0]]).to_sparse_csr()
    >>> x = torch.ones(2, 1, requires_grad=True)
    >>> y = spmm(a, x, symmetric=True)
    >>> y.sum().backward()
    >>> y.detach().squeeze(1), x.grad.squeeze(1)
    (tensor([3., 2.]), tensor([3., 2.]))
    """
    if matrix.requires_grad or (matrix_t is not None and matrix_t.requires_grad):
        raise ValueError("spmm treats the sparse matrix as a constant; its values require grad.")
    if symmetric:
        if matrix_t is not None:
            raise ValueError("Pass either matrix_t or symmetric=True, not both.")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"A symmetric matrix must be square, got shape {tuple(matrix.shape)}.")
        matrix_t = matrix
    elif matrix_t is not None and tuple(matrix_t.shape) != tuple(matrix.shape)[::-1]:
        raise ValueError(
            f"matrix_t has shape {tuple(matrix_t.shape)}, expected {tuple(matrix.shape)[::-1]}."
        )
    return _SparseMatmul.apply(matrix, matrix_t, dense)


def _product(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense``; on the CPU for a CSR matrix, into a fresh output without its zeroing.

    On the CPU, torch's ``csr @ dense`` zero-fills an output, has MKL write into a second
    buffer and copies it back, which costs more than the product itself (see the performance
    page).
    ``addmm(out, matrix, dense, beta=0, out=out)`` calls the same MKL routine on ``out``
    directly (``beta=0`` ignores its contents), with bit-identical results.
    """
    if (
        matrix.device.type == "cpu"
        and matrix.layout == torch.sparse_csr
        and dense.dtype in (torch.float32, torch.float64)
    ):
        out = dense.new_empty(matrix.shape[0], dense.shape[1])
        return torch.addmm(out, matrix, dense, beta=0, out=out)
    return matrix @ dense


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix, matrix_t, dense):
        ctx.matrix, ctx.matrix_t = matrix, matrix_t
        return _product(matrix, dense)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[2]:
            return None, None, None
        matrix_t = ctx.matrix_t
        if matrix_t is None:
            matrix_t = transpose_csr(ctx.matrix)
        # Through the Function again, so that a double backward also avoids conversions.
        return None, None, _SparseMatmul.apply(matrix_t, ctx.matrix, grad)


def _row_indices(matrix: torch.Tensor) -> torch.Tensor:
    """The row (int64) of each stored entry of a CSR matrix, without a host synchronisation."""
    crow = matrix.crow_indices()
    return torch.repeat_interleave(
        torch.arange(matrix.shape[0], device=crow.device),
        torch.diff(crow).to(torch.int64),
        output_size=matrix.col_indices().numel(),
    )
