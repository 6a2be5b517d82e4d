"""Loss functions of DiffMM (SPEC §3, §6), as pure functions of tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["alignment_loss", "bpr_loss", "diffusion_loss", "info_nce", "l2_penalty"]


def bpr_loss(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """``−mean log σ(e_u·e_i − e_u·e_j)`` over the rows (SPEC §6).

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
    """Sum of squared Frobenius norms of the given tables (SPEC §6's L2 term, unweighted)."""
    return sum(t.pow(2).sum() for t in tables)


def info_nce(
    view_x: torch.Tensor, view_y: torch.Tensor, nodes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of ``view_x[nodes]`` against all rows of ``view_y`` (SPEC §6).

    ``−mean_n log(exp(x_n·y_n/τ) / Σ_{n'} exp(x_n·y_{n'}/τ))`` on L2-normalised rows, with the
    mean over the entries of ``nodes`` (duplicates count as often as they appear) and the sum
    over every row of ``view_y``.

    On CPU, repeated nodes are computed once and weighted by their counts, and the
    (batch, n_nodes) similarities are computed once, in blocks of rows, exponentiated in place
    with a per-row shift (no overflow for any temperature) and kept for the backward pass,
    which needs only two matrix products; higher-order gradients are not supported there. On
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
    if view_x.device.type != "cpu":
        # Launch-bound on CUDA: at TikTok sizes on an H200 the path below was ~8% slower.
        # Scaling the (batch, dim) side by 1/τ saves a pass over the (batch, n_nodes) logits.
        x = F.normalize(view_x[nodes], dim=-1) / temperature
        y = F.normalize(view_y, dim=-1)
        positive = (x * y[nodes]).sum(-1)
        return (torch.logsumexp(x @ y.T, dim=-1) - positive).mean()
    # Every term depends on its node only: compute each distinct node once.
    rows, counts = torch.unique(nodes, return_counts=True)
    # Normalisation and 1/τ stay with autograd; they touch (batch, dim) tensors only.
    x = F.normalize(view_x[rows], dim=-1) / temperature
    y = F.normalize(view_y, dim=-1)
    positive = (x * y[rows]).sum(-1)
    # |x·y| ≤ 1/τ on normalised rows, so with the positive as shift every exponent is at most
    # 2/τ and the row sum at most n·exp(2/τ), at least ~1 (the positive's own term). If that
    # could overflow, shift by the exact row maximum instead (one more pass).
    limit = math.log(torch.finfo(x.dtype).max) - 4.0
    safe = 2.0 / abs(temperature) + math.log(max(y.shape[0], 1)) < limit
    shift = positive.detach() if safe else None
    per_row = _RowLogSumExp.apply(x, y, shift, _block_rows(y)) - positive
    return (per_row * counts.to(per_row.dtype)).sum() / nodes.numel()


# The (block, n_nodes) pieces stay under glibc's largest mmap threshold (32 MiB), so
# freed blocks are reused from the heap instead of being mapped afresh, a page fault per 4 KiB
# that at TikTok sizes costs about as much as the matrix product itself.
_BLOCK_BYTES = 8 << 20


def _block_rows(y: torch.Tensor) -> int:
    return max(1, _BLOCK_BYTES // max(y.shape[0] * y.element_size(), 1))


# Above this size a call's exponentials are not kept for the backward but recomputed there
# (bit for bit the same): memory per call stays at one block of rows however many nodes there
# are (at Amazon-Sports size ~0.4 GB per batch), for one more product per block.
_KEEP_BYTES = 64 << 20


def _exponentials(x, y, shifts, block, *, find_shifts=False):
    """``(start, exp(x[start:stop] @ y.T − shifts[start:stop]))`` per block of rows.

    With ``find_shifts`` each block's row maxima are first written into ``shifts``. The
    forward pass and the backward's recomputation both come through here, so they compute
    the same exponentials bit for bit.
    """
    for start in range(0, x.shape[0], block):
        stop = min(start + block, x.shape[0])
        e = torch.mm(x[start:stop], y.T)
        if find_shifts:
            torch.amax(e, dim=1, out=shifts[start:stop])
        yield start, e.sub_(shifts[start:stop, None]).exp_()


class _RowLogSumExp(torch.autograd.Function):
    """``logsumexp(x @ y.T, dim=1)``, keeping ``exp(x @ y.T − shift)`` for the backward.

    ``shift`` (detached, shape (batch,)) must keep the exponents from overflowing; ``None``
    uses the row maxima. The result does not depend on it, hence no gradient for it. Past
    ``_KEEP_BYTES`` the exponentials are recomputed in the backward instead of kept.
    """

    @staticmethod
    def forward(ctx, x, y, shift, block):
        n_rows = x.shape[0]
        sums = x.new_empty(n_rows)
        shifts = x.new_empty(n_rows) if shift is None else shift
        keep = n_rows * y.shape[0] * x.element_size() <= _KEEP_BYTES
        blocks = []
        for start, e in _exponentials(x, y, shifts, block, find_shifts=shift is None):
            torch.sum(e, dim=1, out=sums[start : start + e.shape[0]])
            if keep:
                blocks.append(e)
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(x, y, sums, shifts, *blocks)
        ctx.block = block
        return shifts + sums.log()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, y, sums, shifts, *blocks = ctx.saved_tensors
        if blocks:
            starts = range(0, x.shape[0], ctx.block)
            exponentials = zip(starts, blocks, strict=True)
        else:
            exponentials = _exponentials(x, y, shifts, ctx.block)
        # d lse_b / d x_b = Σ_n P_bn y_n with P = E / sums: fold 1/sums into the (batch,) scale.
        scale = (grad / sums)[:, None]
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_y = torch.zeros_like(y) if ctx.needs_input_grad[1] else None
        for start, e in exponentials:
            stop = start + e.shape[0]
            if grad_x is not None:
                torch.mm(e, y, out=grad_x[start:stop])
            if grad_y is not None:
                grad_y.addmm_(e.T, x[start:stop] * scale[start:stop])
        if grad_x is not None:
            grad_x.mul_(scale)
        return grad_x, grad_y, None, None


def diffusion_loss(x0: torch.Tensor, x0_pred: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``weight_u · mean_items (x0 − x̂0)²`` (SPEC §3).

    The squared error goes through ``mse_loss``, whose forward and backward are one fused
    pass each over the (batch, items) rows.
    """
    per_user = F.mse_loss(x0_pred, x0.to(x0_pred.dtype), reduction="none").mean(-1)
    return (weights * per_user).mean()


def alignment_loss(
    x0_pred: torch.Tensor,
    x0: torch.Tensor,
    modality_item_embeddings: torch.Tensor,
    item_embeddings: torch.Tensor,
) -> torch.Tensor:
    """Modality-aware signal injection: ``mean_D (x̂0·φ_m(F_m) − x0·E_i)²``, batch mean (SPEC §3).

    ``modality_item_embeddings`` and ``item_embeddings`` come detached from the recommender.
    """
    return (x0_pred @ modality_item_embeddings - x0 @ item_embeddings).pow(2).mean(-1).mean()
