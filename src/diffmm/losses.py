"""Loss functions of DiffMM (model page §3, §6), as pure functions of tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._normalize import normalize_rows
from ._sparse import add_csr_

__all__ = [
    "bpr_loss",
    "denoiser_losses",
    "info_nce",
    "l2_penalty",
]


def bpr_loss(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """``−mean log σ(e_u·e_i − e_u·e_j)`` over the rows (model page §6).

    Examples
    --------
    >>> import torch
    >>> e = torch.ones(2, 3)
    >>> round(float(bpr_loss(e, e, torch.zeros(2, 3))), 4)
    0.0486
    """
    diff = (users * positives).sum(-1) - (users * negatives).sum(-1)
    return -F.logsigmoid(diff).mean()


def l2_penalty(*tables: torch.Tensor) -> torch.Tensor:
    """Sum of squared Frobenius norms of the given tables (model page §6's L2 term, unweighted)."""
    return sum(t.pow(2).sum() for t in tables)


def info_nce(
    view_x: torch.Tensor, view_y: torch.Tensor, nodes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of ``view_x[nodes]`` against all rows of ``view_y`` (model page §6).

    ``−mean_n log(exp(x_n·y_n/τ) / Σ_{n'} exp(x_n·y_{n'}/τ))`` on L2-normalised rows, with the
    mean over the entries of ``nodes`` (duplicates count as often as they appear) and the sum
    over every row of ``view_y``.

    On CPU, repeated nodes are computed once and weighted by their counts, and the
    (batch, n_nodes) similarities are computed in blocks of rows, exponentiated in place
    (shifted by the row maximum where the temperature could make them overflow), and each
    block's share of the gradients is computed from it at once: two matrix products, with
    one block in memory at a time; higher-order gradients are not supported there. On
    other devices, where the few passes over the similarities cost less than extra kernel
    launches, it is the direct ``logsumexp`` formula. Both give the same value and gradients
    up to floating-point rounding.

    Parameters
    ----------
    view_x, view_y : Tensor of shape (n_nodes, dim)
        Two views of the same nodes, floating point, on one device.
    nodes : LongTensor of shape (batch,)
        Rows of ``view_x`` (and their positives in ``view_y``) in the batch; repeats allowed.
    temperature : float
        ``τ > 0``.

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> x = torch.eye(3)
    >>> round(float(info_nce(x, x, torch.tensor([0, 2]), 0.5)), 4)
    0.2395
    """
    return _info_nce_normalized(view_x, normalize_rows(view_y), nodes, temperature)


def _info_nce_normalized(
    view_x: torch.Tensor, y: torch.Tensor, nodes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """:func:`info_nce` for a ``view_y`` whose rows the caller has L2-normalised already.

    The same value and gradients as ``info_nce(view_x, view_y, nodes, temperature)`` with
    ``y = normalize_rows(view_y)``: a caller that uses one view in several terms normalises
    it once (the recommender step does, for each modality's view).
    """
    if view_x.device.type != "cpu":
        # Launch-bound on CUDA, where the blocked path below is slower (performance page).
        # Scaling the (batch, dim) side by 1/τ saves a pass over the (batch, n_nodes) logits.
        x = normalize_rows(view_x[nodes]) / temperature
        positive = (x * y[nodes]).sum(-1)
        return (torch.logsumexp(x @ y.T, dim=-1) - positive).mean()
    # Every term depends on its node only: compute each distinct node once.
    rows, counts = torch.unique(nodes, return_counts=True)
    # Normalisation and 1/τ stay with autograd; they touch (batch, dim) tensors only.
    x = normalize_rows(view_x[rows]) / temperature
    # |x·y| ≤ 1/τ on normalised rows: each exponential lies within exp(±1/τ) and a row's sum
    # below n·exp(1/τ), so for any usual τ they are computed as they are. Only where that
    # could overflow (or underflow to zero) is each row shifted by its exact maximum, at the
    # cost of two more passes over the similarities.
    limit = math.log(torch.finfo(x.dtype).max) - 4.0
    shifted = 1.0 / abs(temperature) + math.log(max(y.shape[0], 1)) >= limit
    return _InfoNCE.apply(x, y, rows, counts, nodes.numel(), shifted, _block_rows(y))


#: Bytes of the one (block, n_nodes) piece of exponentials :func:`info_nce` holds on the CPU:
#: used for the value and both gradients while still in cache, then overwritten (see the
#: performance page). Memory estimates (``benchmarks/speed.py``) read it.
INFO_NCE_BLOCK_BYTES = 8 << 20


def _block_rows(y: torch.Tensor) -> int:
    return max(1, INFO_NCE_BLOCK_BYTES // max(y.shape[0] * y.element_size(), 1))


class _InfoNCE(torch.autograd.Function):
    """``Σ_b c_b·(logsumexp_n(x_b·y_n) − x_b·y_{rows_b}) / total`` for prepared ``x`` and ``y``.

    The loss is linear in its per-row terms, so the gradients are known up to the upstream
    scalar as soon as a block's exponentials are: the forward pass computes them block by
    block (two matrix products on the block just computed) and the backward pass only scales
    them. Memory is one block, whatever the number of nodes; higher-order gradients are not
    supported.
    """

    @staticmethod
    def forward(ctx, x, y, rows, counts, total, shifted, block):
        counts = counts.to(x.dtype)
        weights = counts / total  # d value / d term_b
        lse = x.new_empty(x.shape[0])
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_y = torch.zeros_like(y) if ctx.needs_input_grad[1] else None
        buffer = x.new_empty(min(block, x.shape[0]), y.shape[0])
        for start in range(0, x.shape[0], block):
            stop = min(start + block, x.shape[0])
            e = torch.mm(x[start:stop], y.T, out=buffer[: stop - start])
            if shifted:
                maxima = e.amax(dim=1)
                e.sub_(maxima[:, None])
            sums = e.exp_().sum(dim=1)
            torch.log(sums, out=lse[start:stop])
            if shifted:
                lse[start:stop] += maxima
            # d lse_b / d x_b = Σ_n P_bn·y_n and d lse_b / d y_n = P_bn·x_b, with
            # P = E / sums: fold the weight and 1/sums into a (block,) scale.
            scale = (weights[start:stop] / sums)[:, None]
            if grad_x is not None:
                torch.mm(e, y, out=grad_x[start:stop]).mul_(scale)
            if grad_y is not None:
                grad_y.addmm_(e.T, x[start:stop] * scale)
        positives = y[rows]
        positive = (x * positives).sum(dim=-1)
        if grad_x is not None:
            grad_x.sub_(positives * weights[:, None])
        if grad_y is not None:
            grad_y.index_add_(0, rows, x * weights[:, None], alpha=-1)
        ctx.save_for_backward(grad_x, grad_y)
        return ((lse - positive) * counts).sum() / total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grad_x, grad_y = (None if g is None else g * grad for g in ctx.saved_tensors)
        return grad_x, grad_y, None, None, None, None, None


def denoiser_losses(
    x0_pred: torch.Tensor,
    x0: torch.Tensor,
    weights: torch.Tensor,
    modality_item_embeddings: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`diffusion_loss` and :func:`alignment_loss` of one prediction, in fewer passes.

    The values and the gradient with respect to ``x0_pred`` are those of the two functions
    (up to float rounding), for ``target = x0 @ item_embeddings`` (which the caller can form
    from the sparse rows). The forward pass keeps the residual ``x̂0 − x0`` and the backward
    pass builds the gradient from it in two passes: about half the passes over the
    (batch, items) rows of the two functions through autograd, and fewer tensors of that
    size. Only ``x0_pred`` may require grad; a lower-precision ``x0_pred`` (bf16 autocast) is
    read as float32.

    Parameters
    ----------
    x0_pred : Tensor of shape (batch, n_items)
    x0 : Tensor of shape (batch, n_items), float32
        Dense, or a sparse CSR matrix (read at its entries only, with the same result).
    weights : Tensor of shape (batch,)
        Per-user weights of the diffusion loss.
    modality_item_embeddings : Tensor of shape (n_items, dim)
    target : Tensor of shape (batch, dim)
        ``x0 @ item_embeddings``.

    Returns
    -------
    diffusion, alignment : 0-d Tensors

    Examples
    --------
    >>> import torch
    >>> x0 = torch.tensor([[1.0, 0.0]])
    >>> pred = torch.tensor([[0.5, 0.5]], requires_grad=True)
    >>> emb = torch.eye(2)
    >>> d, a = denoiser_losses(pred, x0, torch.ones(1), emb, x0 @ emb)
    >>> round(float(d), 6), round(float(a), 6)
    (0.25, 0.25)
    """
    for name, value in [
        ("x0", x0),
        ("weights", weights),
        ("modality_item_embeddings", modality_item_embeddings),
        ("target", target),
    ]:
        if value.requires_grad:
            raise ValueError(f"denoiser_losses differentiates x0_pred only; detach {name}.")
    return _DenoiserLosses.apply(x0_pred, x0, weights, modality_item_embeddings, target)


class _DenoiserLosses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0_pred, x0, weights, embeddings, target):
        n_items = x0.shape[1]
        pred = x0_pred.to(x0.dtype)  # no copy at float32
        aligned = torch.addmm(target, pred, embeddings, beta=-1)  # x̂0·φ_m(F_m) − x0·E_i
        if x0.layout == torch.sparse_csr:  # pred − x0 at x0's entries, in pred's own copy
            residual = add_csr_(pred if pred is not x0_pred else pred.clone(), x0, alpha=-1.0)
        else:
            residual = torch.sub(pred, x0)
        per_user = torch.linalg.vector_norm(residual, dim=-1).square_() / n_items
        ctx.save_for_backward(residual, aligned, embeddings, weights)
        return (weights * per_user).mean(), aligned.square().mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_diffusion, grad_alignment):
        residual, aligned, embeddings, weights = ctx.saved_tensors
        # d/dx̂0 of mean_u w_u·mean_i r² is 2·w_u·r / (batch·n_items), and of mean_{u,d} a²
        # (a = x̂0·φ − x0·E) it is 2·a·φᵀ / (batch·dim).
        scale = (2.0 / residual.numel()) * grad_diffusion * weights
        grad = torch.mul(residual, scale[:, None])
        grad.addmm_(aligned * ((2.0 / aligned.numel()) * grad_alignment), embeddings.T)
        return grad, None, None, None, None
