"""Inference without training: denoising interaction rows, folding in new users, cold items.

Pure torch functions over fitted modules; nothing here changes a module's weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ._model import Denoiser, DiffMMNetwork
from .diffusion import DiffusionSchedule, q_sample, reverse_step

__all__ = ["denoise_rows", "isolated_item_factors", "propagation_user_factors"]


@torch.no_grad()
def denoise_rows(
    denoiser: Denoiser,
    schedule: DiffusionSchedule,
    x0: torch.Tensor,
    *,
    sampling_steps: int = 0,
    sampling_noise: bool = False,
    randn: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run the reverse process from interaction rows ``x0`` (SPEC §4), without input dropout.

    Starts from ``x0`` itself, or from ``q_sample(x0, sampling_steps − 1)`` when
    ``sampling_steps > 0``; with ``sampling_noise`` the reverse steps add posterior noise for
    t > 0.

    Parameters
    ----------
    x0 : Tensor of shape (batch, n_items)
        Dense, or a sparse CSR matrix: the first step (or the noising, with
        ``sampling_steps > 0``) then reads only its stored entries, and, when the chain starts
        from the clean rows, the first step's first layer multiplies only those. Never
        written to.
    randn : callable, optional
        ``randn(shape)`` returns standard normal noise; required when ``sampling_steps > 0`` or
        ``sampling_noise``.

    Returns
    -------
    Tensor of shape (batch, n_items)
    """
    was_training = denoiser.training
    denoiser.eval()
    try:
        x = x0
        batch = x0.shape[0]
        if (sampling_steps > 0 or sampling_noise) and randn is None:
            raise ValueError("sampling_steps > 0 or sampling_noise needs a noise source.")
        if sampling_steps > 0:
            t0 = torch.full((batch,), sampling_steps - 1, dtype=torch.int64, device=x0.device)
            x = q_sample(schedule, x, t0, randn(tuple(x.shape)))
        # Each step's x_{t−1}, in place; x0 is never written to.
        chain = torch.empty(tuple(x0.shape), dtype=x0.dtype, device=x0.device)
        for step in reversed(range(schedule.steps)):
            t = torch.full((batch,), step, dtype=torch.int64, device=x0.device)
            noise = randn(tuple(x.shape)) if sampling_noise else None
            x = reverse_step(schedule, denoiser(x, t), x, t, noise, out=chain)
        return x
    finally:
        denoiser.train(was_training)


def propagation_user_factors(
    histories: sp.csr_matrix, item_factors: np.ndarray, item_degrees: np.ndarray
) -> np.ndarray:
    """One hop of symmetric-normalised propagation from a user's items to the user.

    What the graph encoder's propagation does for a user node ``u`` with history ``H``
    (self-loops included in the degrees): ``Σ_{i∈H} e_i / sqrt((|H|+1)(d_i+1))``.

    Parameters
    ----------
    histories : csr_matrix of shape (n_users, n_items)
        Binary interaction rows.
    item_factors : ndarray of shape (n_items, dim)
        The fitted items' output embeddings.
    item_degrees : ndarray of shape (n_items,)
        Training degrees of the items.

    Returns
    -------
    ndarray of shape (n_users, dim)
    """
    weighted = item_factors / np.sqrt(item_degrees + 1.0)[:, None]
    user_degree = np.asarray(histories.sum(axis=1)).reshape(-1, 1)
    return np.asarray(histories @ weighted) / np.sqrt(user_degree + 1.0)


@torch.no_grad()
def isolated_item_factors(network: DiffMMNetwork, features: list[torch.Tensor]) -> torch.Tensor:
    """The encoder's output for items with features and no edge (SPEC §5).

    An item with no interaction and no generated edge has only its self-loop in ``A`` and no
    row in the generated graphs, and a new item has no ID embedding (taken as zero), so per
    modality ``h_m = normalize(φ_m(F_m))``, ``H = (L+1)·H_0`` and the output is
    ``(L+1)·H_0 + λ_ris·normalize(H_0)``.

    Parameters
    ----------
    features : list of Tensor of shape (n_new_items, d_m)
        One per modality, in the network's order.
    """
    cfg = network.config
    weights = torch.softmax(network.fusion_weights, dim=0)
    fused = sum(
        weights[m] * F.normalize(projection(f.to(torch.float32)), dim=-1)
        for m, (projection, f) in enumerate(zip(network.projections, features, strict=True))
    )
    return (cfg.n_layers + 1) * fused + cfg.residual_weight * F.normalize(fused, dim=-1)
