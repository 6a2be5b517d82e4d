"""Reference implementations the tests check the package against (not package code).

Straightforward forms of formulas the package computes in fused or in-place ways: the
posterior of the diffusion model, and the two denoiser losses through autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffmm.diffusion import DiffusionSchedule, _check_t, _check_x, _gather


def posterior_mean_variance(
    schedule: DiffusionSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and variance of the posterior q(x_{t−1} | x_t, x_0) ((D3)).

    Parameters
    ----------
    schedule : DiffusionSchedule
    x0 : Tensor of shape (batch, ...)
        Clean (or predicted clean) inputs; any float dtype.
    x_t : Tensor, same shape and dtype as x0
        Noisy inputs at step ``t``.
    t : LongTensor of shape (batch,)
        Step per row, in ``[0, steps)``.

    Returns
    -------
    mean : Tensor, same shape as x0
        ``c1_t·x0 + c2_t·x_t``.
    variance : Tensor of shape (batch, 1, ..., 1)
        Posterior variance per row (0 where ``t = 0``); broadcastable to ``x0``.
    log_variance : Tensor of shape (batch, 1, ..., 1)
        Clipped log variance per row (finite everywhere).

    """
    _check_x("x0", x0)
    _check_x("x_t", x_t, like=x0)
    _check_t(schedule, t, x0.shape[0])
    c1 = _gather(schedule, "posterior_mean_coef1", t, x0)
    c2 = _gather(schedule, "posterior_mean_coef2", t, x0)
    mean = c1 * x0 + c2 * x_t  # (D3)
    var = _gather(schedule, "posterior_variance", t, x0)
    log_var = _gather(schedule, "posterior_log_variance_clipped", t, x0)
    return mean, var, log_var


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
