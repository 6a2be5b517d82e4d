"""Loss functions of DiffMM (SPEC §3, §6), as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    sum over every row of ``view_y``; computed with ``logsumexp`` for stability.

    Parameters
    ----------
    view_x, view_y : Tensor of shape (n_nodes, dim)
    nodes : LongTensor of shape (batch,)
    temperature : float
    """
    # Scaling the (batch, dim) side by 1/τ before the product saves a pass over the
    # (batch, n_nodes) similarity matrix.
    x = F.normalize(view_x[nodes], dim=-1) / temperature
    y = F.normalize(view_y, dim=-1)
    positive = (x * y[nodes]).sum(-1)
    return (torch.logsumexp(x @ y.T, dim=-1) - positive).mean()


def diffusion_loss(x0: torch.Tensor, x0_pred: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``weight_u · mean_items (x0 − x̂0)²`` (SPEC §3)."""
    return (weights * (x0 - x0_pred).pow(2).mean(-1)).mean()


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
